/* fuzz_site.c — libFuzzer target: the HDF5 site-file reader (schema checks on open, then every
 * volume of every case read back). */
#include "fuzz_util.h"

#include "data/site.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    if (fuzz_write_file("site", ".h5", data, size, path, sizeof path)) return 0;
    sq_status st;
    sq_site *s = NULL;
    if (sq_site_open(path, &s, &st) == SQ_OK) {
        for (int i = 0; i < sq_site_ncases(s) && i < 64; i++) {
            sq_case c;
            if (sq_site_read_case(s, i, &c, &st) == SQ_OK) sq_case_free(&c);
        }
        sq_site_close(s);
    }
    unlink(path);
    return 0;
}
