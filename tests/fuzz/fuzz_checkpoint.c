/* fuzz_checkpoint.c — libFuzzer target: the checkpoint loader. The model is built once from the
 * config of a real checkpoint (SEGQA_FUZZ_MODEL_FROM, set by tests/fuzz/run.sh); each input is
 * read for its config and then loaded into that model (with the optimiser state). */
#include "fuzz_util.h"

#include "model/model.h"
#include "nn/registry.h"
#include "optim/optim.h"
#include "train/checkpoint.h"

static sq_model *g_model;
static sq_adam_opt *g_opt;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *from = getenv("SEGQA_FUZZ_MODEL_FROM");
    sq_status st;
    sq_model_config c;
    if (!from || sq_checkpoint_read_config(from, &c, &st) != SQ_OK) {
        fprintf(stderr, "fuzz_checkpoint: set SEGQA_FUZZ_MODEL_FROM to a checkpoint\n");
        exit(2);
    }
    sq_backend_opts bo = sq_backend_opts_default();
    bo.threads = 1;
    sq_backend *be = sq_backend_create("cpu", &bo, NULL, 0, &st);
    if (!be || sq_model_create(&c, be, &g_model, &st) != SQ_OK) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", st.msg);
        exit(2);
    }
    sq_adam_config ac = sq_adam_config_default();
    if (sq_adam_create(be, sq_model_params_floats(g_model), &ac, &g_opt, &st) != SQ_OK) exit(2);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    if (fuzz_write_file("ckpt", ".h5", data, size, path, sizeof path)) return 0;
    sq_status st;
    sq_model_config c;
    sq_ckpt_info info;
    if (sq_checkpoint_read_config(path, &c, &st) == SQ_OK)
        (void)sq_checkpoint_load(path, g_model, g_opt, &info, &st);
    unlink(path);
    return 0;
}
