/* site.h — the segqa HDF5 site file: one file per site, self-describing, readable by h5py.
 *
 * Layout (docs/data-format.md is the reference):
 *   /                  attrs format="segqa-site", format_version=1, site, shape=int32[3] (D,H,W),
 *                      spacing=float64[3] (z,y,x mm), axes="zyx", n_cases, preprocessing (JSON
 * text) /cases/<id>/image  float32 [D][H][W]  (one chunk per volume, shuffle + gzip) /cases/<id>/gt
 * uint8   [D][H][W]  binary ground truth /cases/<id>/contours/<name>  uint8 [D][H][W] with attrs
 * method, params (JSON), dice /cases/<id> attrs  patient, source (JSON: original files, shape,
 * spacing, percentiles), clinical (JSON object) and one attr "clinical_<key>" per variable.
 *
 * Writing goes to "<path>.tmp.<pid>" and is renamed onto <path> by sq_site_writer_commit; any
 * failure (or sq_site_writer_abort) removes the temp file, so no partial site file is ever left.
 * HDF5 is not safe for concurrent use: one thread at a time per process touches these functions
 * (the loader's reader thread).
 */
#ifndef SEGQA_DATA_SITE_H
#define SEGQA_DATA_SITE_H

#include "core/status.h"
#include "data/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_SITE_FORMAT         "segqa-site"
#define SQ_SITE_FORMAT_VERSION 1
#define SQ_NAME_MAX            128

typedef struct sq_site_info {
    char site[SQ_NAME_MAX];
    int shape[3];        /* D, H, W */
    double spacing[3];   /* z, y, x mm (of the first case; per-case spacing is in `source`) */
    char *preprocessing; /* JSON text, owned (malloc) */
    int n_cases;         /* filled by the reader */
} sq_site_info;

typedef struct sq_contour {
    char name[SQ_NAME_MAX];
    char method[SQ_NAME_MAX]; /* "given", "atlas", "perturb", ... */
    char *params;             /* JSON text, owned (malloc); may be NULL -> "{}" */
    double dice;              /* against the case's gt */
    sq_volume mask;           /* U8 binary; data NULL when not loaded */
} sq_contour;

typedef struct sq_case {
    char id[SQ_NAME_MAX];
    char patient[SQ_NAME_MAX];
    char *clinical;  /* JSON object text or NULL, owned */
    char *source;    /* JSON object text or NULL, owned */
    sq_volume image; /* F32, normalised */
    sq_volume gt;    /* U8 binary */
    int ncontours;
    sq_contour *contours; /* malloc'ed array */
} sq_case;

void sq_case_free(sq_case *c);
/* Append a contour (takes ownership of mask data and params). */
sq_code sq_case_add_contour(sq_case *c, const char *name, const char *method, char *params,
                            double dice, sq_volume *mask, sq_status *st);

/* ---- writing ---- */
typedef struct sq_site_writer sq_site_writer;
sq_code sq_site_writer_open(const char *path, const sq_site_info *info, sq_site_writer **w,
                            sq_status *st);
/* Case volumes must have info->shape. */
sq_code sq_site_writer_add(sq_site_writer *w, const sq_case *c, sq_status *st);
/* Close and rename onto the final path; frees w (also on failure). */
sq_code sq_site_writer_commit(sq_site_writer *w, sq_status *st);
/* Close, remove the temp file, free w. NULL is fine. */
void sq_site_writer_abort(sq_site_writer *w);

/* ---- reading ---- */
typedef struct sq_site sq_site;
/* Open read-only and check format name, version, shape and the per-case schema. */
sq_code sq_site_open(const char *path, sq_site **s, sq_status *st);
void sq_site_close(sq_site *s);
const sq_site_info *sq_site_get_info(const sq_site *s);
const char *sq_site_path(const sq_site *s);
int sq_site_ncases(const sq_site *s);
/* Metadata of case i (id, patient, clinical, source, contour names/methods/params/dice): no
 * volumes loaded. Owned by the site; valid until sq_site_close. */
const sq_case *sq_site_case_meta(const sq_site *s, int i);
/* Load "image" (F32), "gt" or "contours/<name>" (U8) of case i into a fresh volume. */
sq_code sq_site_read_volume(sq_site *s, int i, const char *what, sq_volume *out, sq_status *st);
/* Load a whole case (image, gt, every contour) into *c (free with sq_case_free). */
sq_code sq_site_read_case(sq_site *s, int i, sq_case *c, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
