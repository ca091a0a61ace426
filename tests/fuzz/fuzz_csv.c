/* fuzz_csv.c — libFuzzer target: the CSV readers of `segqa ingest`. The first input byte picks
 * the reader: even — the input is the manifest; odd — the input is the clinical CSV beside a
 * fixed one-case manifest (whose files exist but are not NIfTI, so ingest stops right after the
 * CSVs are read). The pairs CSV of `segqa predict` is read by a static function inside
 * src/cli/cmd_predict.c and is not reachable from here. */
#include "fuzz_util.h"

#include "data/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char csv[512], manifest[512], out[512];
    if (fuzz_write_file("csv", ".csv", data + 1, size - 1, csv, sizeof csv)) return 0;
    const char *fixed = "case,patient,image,gt\nc1,p1,/dev/null,/dev/null\n";
    if (fuzz_write_file("manifest", ".csv", (const uint8_t *)fixed, strlen(fixed), manifest,
                        sizeof manifest))
        return 0;
    snprintf(out, sizeof out, "%s.out.h5", csv);
    sq_ingest_opts o;
    memset(&o, 0, sizeof o);
    int clinical = data[0] & 1;
    o.input = clinical ? manifest : csv;
    o.clinical = clinical ? csv : NULL;
    o.output = out;
    o.shape[0] = 8, o.shape[1] = 8, o.shape[2] = 8;
    o.hi_pct = 99;
    o.labels.all = 1;
    sq_status st;
    sq_ingest_stats s;
    (void)sq_ingest(&o, &s, &st);
    unlink(csv);
    unlink(manifest);
    unlink(out);
    return 0;
}
