/* qc_report.h — the visual QC report of `segqa predict --report DIR`: one PNG per pair (the 3
 * axial slices where the contour is largest, the contour's outline over the image, the estimate
 * and the decision written on it) and DIR/index.html listing every pair worst first with its
 * thumbnail and decision. The page is self-contained: relative links to the PNGs beside it, no
 * script, no server, no external asset.
 *
 * Not for: the run folder's training figures (report.h).
 */
#ifndef SEGQA_TRAIN_QC_REPORT_H
#define SEGQA_TRAIN_QC_REPORT_H

#include "core/fileio.h"
#include "core/status.h"
#include "data/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_qc_item {
    char id[256];
    char image[SQ_PATH_MAX], contour[SQ_PATH_MAX]; /* paths, shown on the page */
    int ok;                                        /* estimated (else error holds why not) */
    float estimate;
    int accept;
    int has_interval;
    double lo, hi, coverage; /* the estimate's calibrated interval, when has_interval */
    char error[SQ_STATUS_MSG_MAX];
    char png[300]; /* file name of its picture inside DIR ("" = none) */
} sq_qc_item;

/* The picture of one case: DIR/<item->png>, written atomically. img F32 and con U8 on one grid. */
sq_code sq_qc_write_case_png(const char *dir, const sq_qc_item *item, const sq_volume *img,
                             const sq_volume *con, sq_status *st);

/* DIR/index.html: failed pairs first, then by estimate ascending (worst first). */
sq_code sq_qc_write_index(const char *dir, const sq_qc_item *items, int n, double threshold,
                          sq_status *st);

/* A file-name-safe PNG name for an id: "<index>-<id with [^A-Za-z0-9._-] as _>.png". */
void sq_qc_png_name(int index, const char *id, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
