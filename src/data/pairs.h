/* pairs.h — the list of (image, contour) pairs that `segqa predict --pairs` estimates, read from
 * a CSV with a header naming the columns image and contour (and optionally id or case, site).
 *
 * A malformed row does not stop the list: it becomes a pair whose `error` says what is wrong
 * (file, line, what was expected), so a batch never loses its good rows to one bad one. Only a
 * file that cannot be read or has no usable header fails as a whole.
 *
 * Not for: reading the NIfTI files themselves (nifti.h, mask.h).
 */
#ifndef SEGQA_DATA_PAIRS_H
#define SEGQA_DATA_PAIRS_H

#include "core/fileio.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_pair {
    char id[256];
    char site[64];
    char image[SQ_PATH_MAX];
    char contour[SQ_PATH_MAX];
    char error[512]; /* "" = well formed */
} sq_pair;

/* Paths relative to the CSV's folder. *out is malloc'ed (free()), *n >= 1 on success. */
sq_code sq_pairs_read_csv(const char *path, sq_pair **out, int *n, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
