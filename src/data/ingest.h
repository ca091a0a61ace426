/* ingest.h — NIfTI folder or CSV manifest (+ optional clinical CSV) -> one HDF5 site file.
 *
 * Folder input:  DIR/images/<case>.nii[.gz], DIR/labels/<case>.nii[.gz] (same file name), and
 *   optionally DIR/contours/<case>.nii[.gz] (contour "given") and/or
 *   DIR/contours/<name>/<case>.nii[.gz] (contour <name>). Case id = file name without extension;
 *   patient id = case id.
 * Manifest input (a .csv file): header with columns case, image, gt and optionally patient, site
 *   and any number of contour columns (named "contour" or "contour_<name>"); relative paths are
 *   relative to the manifest's folder; empty contour cells are skipped.
 * Clinical CSV: a header with a column "case" or "patient" and any other columns; numeric cells
 *   become JSON numbers, others strings; matched by case id, else by patient id.
 *
 * Each case: read image and GT (checked: shape/affine agree, integer labels, finite intensities),
 * select labels, reject an empty GT, centre crop/pad to the site shape, normalise the image
 * (percentiles lo/hi -> 0..255), and store every contour with its Dice against the cropped GT.
 */
#ifndef SEGQA_DATA_INGEST_H
#define SEGQA_DATA_INGEST_H

#include "core/status.h"
#include "data/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_ingest_opts {
    const char *input;    /* folder or manifest .csv */
    const char *output;   /* site .h5 */
    const char *clinical; /* clinical .csv or NULL/"" */
    const char *site;     /* site name or NULL/"" (folder/manifest base name) */
    int shape[3];         /* D, H, W */
    double lo_pct, hi_pct;
    sq_label_set labels;
    int limit;    /* > 0: first N cases only */
    int progress; /* print a progress line */
} sq_ingest_opts;

typedef struct sq_ingest_stats {
    int n_cases, n_contours;
    double seconds;
} sq_ingest_stats;

sq_code sq_ingest(const sq_ingest_opts *o, sq_ingest_stats *stats, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
