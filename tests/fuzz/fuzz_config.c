/* fuzz_config.c — libFuzzer target: a `--config FILE.json` read as segqa reads it (UTF-8 check,
 * cJSON parse with line/column errors) and applied to an option table with every option type
 * and bounds, as the commands declare them. */
#include "fuzz_util.h"

#include "core/json.h"
#include "core/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    if (fuzz_write_file("config", ".json", data, size, path, sizeof path)) return 0;
    long long epochs = 200, batch = 2;
    double lr = 0.002, frac = 0.1;
    int flag = 0;
    char out[64] = "runs/x", device[8] = "cpu";
    const sq_option opts[] = {
        {"epochs", 'e', SQ_OPT_INT, &epochs, 0, "N", "", NULL, 1, 100000},
        {"batch", 'b', SQ_OPT_INT, &batch, 0, "N", "", NULL, 1, 64},
        {"lr", 0, SQ_OPT_DOUBLE, &lr, 0, "X", "", NULL, 0, 0},
        {"val-fraction", 0, SQ_OPT_DOUBLE, &frac, 0, "F", "", NULL, 0, 0.9},
        {"no-figures", 0, SQ_OPT_FLAG, &flag, 0, NULL, "", NULL, 0, 0},
        {"out", 'o', SQ_OPT_STRING, out, sizeof out, "DIR", "", NULL, 0, 0},
        {"device", 0, SQ_OPT_CHOICE, device, sizeof device, "DEV", "", "cpu|cuda|auto", 0, 0},
    };
    sq_status st;
    (void)sq_options_apply_file(opts, (int)(sizeof opts / sizeof opts[0]), path, &st);
    cJSON *back = sq_options_to_json(opts, (int)(sizeof opts / sizeof opts[0]));
    cJSON_Delete(back);
    unlink(path);
    return 0;
}
