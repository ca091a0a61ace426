/* fuzz_util.h — shared by the libFuzzer targets: the input as a temporary file (the readers under
 * test take paths, as segqa does), removed after each run. */
#ifndef SEGQA_FUZZ_UTIL_H
#define SEGQA_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The libFuzzer entry points (declared here: warnings are errors). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Write data to /tmp/segqa-fuzz-<pid>-<tag><ext>; path receives the name. 0 on success. */
static int fuzz_write_file(const char *tag, const char *ext, const uint8_t *data, size_t size,
                           char *path, size_t n) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, n, "%s/segqa-fuzz-%ld-%s%s", dir && *dir ? dir : "/tmp", (long)getpid(), tag,
             ext);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) == 0 && put == size ? 0 : -1;
}

#endif
