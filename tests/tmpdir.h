/* tmpdir.h — a fresh temporary folder per test file, for cmocka group setup and teardown:
 * setup returns sq_test_mkdtemp(g_dir, sizeof g_dir, "nifti"), teardown sq_test_rmtree(g_dir).
 */
#ifndef SEGQA_TESTS_TMPDIR_H
#define SEGQA_TESTS_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

/* Creates dir = /tmp/segqa-test-<tag>-XXXXXX; 0 on success, -1 on failure (cmocka's way). */
static inline int sq_test_mkdtemp(char *dir, size_t n, const char *tag) {
    snprintf(dir, n, "/tmp/segqa-test-%s-XXXXXX", tag);
    return mkdtemp(dir) ? 0 : -1;
}

/* rm -rf dir; 0 on success, -1 on failure. */
static inline int sq_test_rmtree(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
