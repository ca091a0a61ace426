/* predict.h — what the files of `segqa predict` share (cmd_predict.c parses argv and dispatches;
 * cmd_predict_rows.c prints result rows; cmd_predict_stdin.c serves JSON lines on stdin).
 * Private to src/cli.
 */
#ifndef SEGQA_CLI_PREDICT_H
#define SEGQA_CLI_PREDICT_H

#include "core/status.h"
#include "data/mask.h"
#include "train/calibration.h"
#include "train/predictor.h"
#include "train/qc_report.h"

/* Exit codes of predict (README "Exit codes"): every pair estimated and accepted, some rejected,
 * some pairs could not be estimated (whatever the others' decisions: a failed pair is unchecked
 * and needs a person, so it takes precedence over a rejection). */
#define SQ_PREDICT_EXIT_ACCEPTED 0
#define SQ_PREDICT_EXIT_REJECTED 3
#define SQ_PREDICT_EXIT_FAILED   6

typedef struct predict_opts {
    int json;         /* --format json */
    double threshold; /* accept when estimate (or, with accept_lower, the lower end) >= threshold */
    int has_interval; /* a calibration is there (checkpoint or --calibration) */
    sq_calibration cal;
    double coverage;  /* nominal coverage of the intervals (the level actually used) */
    int level;        /* its index in cal */
    int accept_lower; /* --accept-if lower */
    sq_mask_policy mask;
    const char *report_dir; /* --report DIR or NULL */
} predict_opts;

/* One case's outcome, as printed. */
typedef struct predict_row {
    const char *id, *image, *contour;
    const char *site; /* "" or NULL: none (then no "site" key) */
    double threshold;
    int ok; /* estimated */
    float estimate;
    int accept;
    const sq_status *error; /* when !ok */
    int has_interval;
    double lo, hi, coverage; /* the estimate's interval at `coverage` */
} predict_row;

/* Fill r's interval (when o has one) and its decision from r->estimate at `threshold`. */
void predict_decide(const predict_opts *o, double threshold, predict_row *r);

/* The table header (table format only). */
void predict_print_header(const predict_opts *o);
/* One row on stdout, table or JSON line, flushed; a failed row also goes to stderr as the
 * usual one-line error. */
void predict_print_row(const predict_opts *o, const predict_row *r);

/* Serve JSON requests on stdin until EOF: one result line per request line. */
int predict_serve_stdin(sq_predictor *p, const predict_opts *o);

#endif
