/* cmd_predict.c — `segqa predict`: deployment QA. A checkpoint plus an image and a contour (NIfTI),
 * a CSV of pairs, or JSON requests on stdin -> the estimated Dice of each contour and
 * accept/reject, optionally with a visual QC report.
 *
 * This file is the argv side: options, checks, dispatch. The model and preprocessing live in
 * train/predictor.h, contour input rules in data/mask.h, rows in cmd_predict_rows.c, the JSON
 * server in cmd_predict_stdin.c, the report in train/qc_report.h. Exit codes in predict.h.
 */
#include "cli.h"
#include "predict.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "data/pairs.h"
#include "nn/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct predict_args {
    char ckpt[SQ_PATH_MAX], image[SQ_PATH_MAX], contour[SQ_PATH_MAX], pairs_csv[SQ_PATH_MAX];
    char report[SQ_PATH_MAX], format[16], device[8], label[256], resample[16], crop[16];
    char calibration[SQ_PATH_MAX], accept_if[16];
    double threshold, mask_threshold, coverage;
    long long threads;
    int use_stdin;
} predict_args;

/* Every pair's outcome for the report, and the counts that make the exit code. */
typedef struct batch {
    sq_qc_item *items;
    int n, failed, rejected;
} batch;

static const char predict_description[] =
    "Estimate the Dice score of each contour without a ground truth, and accept\n"
    "or reject it. Preprocessing is read from the checkpoint. A contour may be a\n"
    "label map (--label), a float map (cut at --mask-threshold) or on another grid\n"
    "(--resample nearest). --pairs goes on past a bad pair (an error row). --stdin\n"
    "serves one JSON request per line with the model kept loaded. Exit code 0 when\n"
    "every contour is accepted, 3 when any is rejected, 6 when any pair could not be\n"
    "estimated (--pairs; takes precedence over 3).";

static sq_code parse_args(int argc, char **argv, predict_args *a, int *help, sq_status *st) {
    const sq_option opts[] = {
        {"checkpoint", 'c', SQ_OPT_STRING, a->ckpt, sizeof a->ckpt, "FILE.h5",
         "trained model (best.h5 or last.h5 of a run)", NULL, 0, 0},
        {"image", 'i', SQ_OPT_STRING, a->image, sizeof a->image, "FILE", "image (NIfTI)", NULL, 0,
         0},
        {"contour", 'm', SQ_OPT_STRING, a->contour, sizeof a->contour, "FILE",
         "contour (NIfTI): binary, label map or float map", NULL, 0, 0},
        {"pairs", 'p', SQ_OPT_STRING, a->pairs_csv, sizeof a->pairs_csv, "FILE.csv",
         "CSV with columns image, contour (and id, site): many pairs", NULL, 0, 0},
        {"stdin", 0, SQ_OPT_FLAG, &a->use_stdin, 0, NULL,
         "serve JSON requests {\"id\",\"image\",\"contour\"} on stdin, one per line", NULL, 0, 0},
        {"label", 'l', SQ_OPT_STRING, a->label, sizeof a->label, "L|L1,L2|all",
         "labels of a label-map contour that make up the structure", NULL, 0, 0},
        {"mask-threshold", 0, SQ_OPT_DOUBLE, &a->mask_threshold, 0, "X",
         "a float contour is inside where its value is at least X", NULL, -1e30, 1e30},
        {"resample", 0, SQ_OPT_CHOICE, a->resample, sizeof a->resample, "HOW",
         "a contour on another grid: refuse it, or map it by nearest neighbour", "none|nearest", 0,
         0},
        {"threshold", 0, SQ_OPT_DOUBLE, &a->threshold, 0, "X",
         "accept a contour when its estimated Dice is at least X", NULL, 0, 1},
        {"coverage", 0, SQ_OPT_DOUBLE, &a->coverage, 0, "P",
         "nominal coverage of the interval printed beside each estimate (0.5..0.99)", NULL, 0.5,
         0.99},
        {"calibration", 0, SQ_OPT_STRING, a->calibration, sizeof a->calibration, "FILE",
         "interval calibration (a CV's calibration.json) instead of the checkpoint's own", NULL, 0,
         0},
        {"accept-if", 0, SQ_OPT_CHOICE, a->accept_if, sizeof a->accept_if, "WHAT",
         "accept when the estimate, or the interval's lower end, is at least --threshold",
         "estimate|lower", 0, 0},
        {"crop", 0, SQ_OPT_CHOICE, a->crop, sizeof a->crop, "HOW",
         "crop policy expected of the checkpoint (it stores its own; a mismatch is an error)",
         "center|contour", 0, 0},
        {"report", 0, SQ_OPT_STRING, a->report, sizeof a->report, "DIR",
         "write a QC report: one PNG per pair and DIR/index.html, worst first", NULL, 0, 0},
        {"format", 'f', SQ_OPT_CHOICE, a->format, sizeof a->format, "FMT", "output", "table|json",
         0, 0},
        {"threads", 't', SQ_OPT_INT, &a->threads, 0, "N", "compute threads", NULL, 1, 1024},
        {"device", 0, SQ_OPT_CHOICE, a->device, sizeof a->device, "DEV", SQ_CLI_DEVICE_HELP,
         "cpu|cuda|auto", 0, 0},
    };
    const sq_cli_spec spec = {
        .command = "predict",
        .usage = "segqa predict --checkpoint FILE.h5 (--image IMG --contour MASK | --pairs "
                 "FILE.csv | --stdin)",
        .description = predict_description,
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
    };
    sq_cli_args ca;
    SQ_TRY(sq_cli_parse(&spec, argc, argv, &ca, st));
    *help = ca.help;
    return SQ_OK;
}

static sq_code check_args(const predict_args *a, sq_status *st) {
    if (!a->ckpt[0]) return sq_fail(st, SQ_ERR_USAGE, "--checkpoint FILE.h5 is required");
    int single = a->image[0] || a->contour[0];
    int modes = single + !!a->pairs_csv[0] + !!a->use_stdin;
    if (modes != 1 || (single && (!a->image[0] || !a->contour[0])))
        return sq_fail(st, SQ_ERR_USAGE,
                       "give exactly one of: --image and --contour, --pairs FILE.csv, --stdin");
    if (a->use_stdin && a->report[0])
        return sq_fail(st, SQ_ERR_USAGE,
                       "--report needs --image/--contour or --pairs, not --stdin");
    if (a->use_stdin && strcmp(a->format, "table") && strcmp(a->format, "json"))
        return sq_fail(st, SQ_ERR_USAGE, "--format: expected table or json");
    return SQ_OK;
}

static sq_code make_opts(const predict_args *a, predict_opts *o, sq_status *st) {
    memset(o, 0, sizeof *o);
    o->json = !strcmp(a->format, "json") || a->use_stdin;
    o->threshold = a->threshold;
    o->mask = sq_mask_policy_default();
    o->mask.threshold = a->mask_threshold;
    SQ_TRY(sq_resample_parse(a->resample, &o->mask.resample, st));
    if (a->label[0]) {
        o->mask.has_labels = 1;
        SQ_TRY(sq_label_set_parse(a->label, &o->mask.labels, st));
    }
    o->report_dir = a->report[0] ? a->report : NULL;
    return SQ_OK;
}

/* The pairs to run: the CSV's rows, or the one pair of --image/--contour. */
static sq_code load_pairs(const predict_args *a, sq_pair **pairs, int *n, sq_status *st) {
    if (a->pairs_csv[0]) return sq_pairs_read_csv(a->pairs_csv, pairs, n, st);
    *pairs = calloc(1, sizeof **pairs);
    if (!*pairs) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    *n = 1;
    snprintf((*pairs)[0].image, sizeof(*pairs)[0].image, "%s", a->image);
    snprintf((*pairs)[0].contour, sizeof(*pairs)[0].contour, "%s", a->contour);
    snprintf((*pairs)[0].id, sizeof(*pairs)[0].id, "%.255s", a->contour);
    return SQ_OK;
}

/* Estimate one pair, print its row, and keep what the report needs. */
static void run_one(sq_predictor *p, const predict_opts *o, const sq_pair *pr, int index,
                    int error_rows, batch *b, sq_status *err) {
    sq_qc_item *it = &b->items[index];
    memset(it, 0, sizeof *it);
    snprintf(it->id, sizeof it->id, "%s", pr->id);
    snprintf(it->image, sizeof it->image, "%s", pr->image);
    snprintf(it->contour, sizeof it->contour, "%s", pr->contour);
    sq_status_clear(err);
    sq_code rc = pr->error[0] ? sq_fail(err, SQ_ERR_FORMAT, "%s", pr->error)
                              : sq_predictor_estimate(p, pr->image, pr->contour, &o->mask,
                                                      &it->estimate, err);
    it->ok = rc == SQ_OK;
    predict_row row = {.id = pr->id,
                       .image = pr->image,
                       .contour = pr->contour,
                       .site = pr->site,
                       .ok = it->ok,
                       .estimate = it->estimate,
                       .error = err};
    predict_decide(o, o->threshold, &row);
    it->accept = row.accept;
    it->has_interval = row.has_interval;
    it->lo = row.lo, it->hi = row.hi, it->coverage = row.coverage;
    if (it->ok && o->report_dir) {
        sq_qc_png_name(index, pr->id, it->png, sizeof it->png);
        if (sq_qc_write_case_png(o->report_dir, it, sq_predictor_last_image(p),
                                 sq_predictor_last_contour(p), err) != SQ_OK) {
            sq_warn("predict: %s: QC picture not written: %s", pr->id, err->msg);
            it->png[0] = '\0';
        }
    }
    if (!it->ok) snprintf(it->error, sizeof it->error, "%s", err->msg);
    b->failed += !it->ok;
    b->rejected += it->ok && !it->accept;
    if (it->ok || error_rows) predict_print_row(o, &row);
}

/* Single pair or --pairs. A single pair's failure is the command's error (exit 4/5); in a
 * batch it is an error row and the batch goes on. */
static int run_batch(sq_predictor *p, const predict_opts *o, const predict_args *a, sq_status *st) {
    sq_pair *pairs = NULL;
    batch b = {0};
    int n = 0;
    if (load_pairs(a, &pairs, &n, st) != SQ_OK) return sq_cli_report("predict", st);
    if (o->report_dir && sq_mkdirs(o->report_dir, st) != SQ_OK) { /* only once the model loaded */
        free(pairs);
        return sq_cli_report("predict", st);
    }
    b.items = calloc((size_t)n, sizeof *b.items);
    if (!b.items) {
        free(pairs);
        sq_fail(st, SQ_ERR_NOMEM, "out of memory");
        return sq_cli_report("predict", st);
    }
    b.n = n;
    int single = !a->pairs_csv[0];
    sq_status err;
    predict_print_header(o);
    for (int i = 0; i < n; i++)
        run_one(p, o, &pairs[i], i, !single, &b, &err);
    if (o->report_dir && sq_qc_write_index(o->report_dir, b.items, n, o->threshold, st) != SQ_OK)
        sq_warn("predict: %s", st->msg);
    free(pairs);
    free(b.items);
    if (single && b.failed) return sq_cli_report("predict", &err);
    if (b.failed) return SQ_PREDICT_EXIT_FAILED;
    return b.rejected ? SQ_PREDICT_EXIT_REJECTED : SQ_PREDICT_EXIT_ACCEPTED;
}

/* The crop is preprocessing, so it comes from the checkpoint; --crop only states what the
 * caller expects, and a model trained with another policy is refused. */
static sq_code check_crop(const predict_args *a, const sq_predictor *p, sq_status *st) {
    if (a->crop[0] && strcmp(a->crop, sq_predictor_crop(p)))
        return sq_fail(st, SQ_ERR_USAGE,
                       "--crop %s: checkpoint %s was trained with crop %s (the crop is part of "
                       "its preprocessing)",
                       a->crop, a->ckpt, sq_predictor_crop(p));
    return SQ_OK;
}

/* The intervals: from --calibration, else from the checkpoint; none is fine unless
 * --accept-if lower asks for them. */
static sq_code load_intervals(const predict_args *a, const sq_predictor *p, predict_opts *o,
                              sq_status *st) {
    o->accept_lower = !strcmp(a->accept_if, "lower");
    o->level = sq_calib_level(a->coverage);
    if (o->level < 0)
        return sq_fail(st, SQ_ERR_USAGE, "--coverage %g: expected 0.5..0.99", a->coverage);
    o->coverage = 0.50 + 0.01 * o->level;
    if (a->calibration[0]) {
        SQ_TRY(sq_calib_read_file(a->calibration, &o->cal, st));
        o->has_interval = 1;
    } else if (*sq_predictor_calibration(p)) {
        cJSON *j = NULL;
        SQ_TRY(sq_json_parse(sq_predictor_calibration(p), a->ckpt, &j, st));
        sq_code rc = sq_calib_from_json(j, a->ckpt, &o->cal, st);
        cJSON_Delete(j);
        SQ_TRY(rc);
        o->has_interval = 1;
    }
    if (o->accept_lower && !o->has_interval)
        return sq_fail(st, SQ_ERR_USAGE,
                       "--accept-if lower: %s has no interval calibration (train it with "
                       "--calibration, or give --calibration FILE)",
                       a->ckpt);
    return SQ_OK;
}

int sq_cmd_predict(int argc, char **argv) {
    predict_args a;
    memset(&a, 0, sizeof a);
    snprintf(a.format, sizeof a.format, "table");
    snprintf(a.device, sizeof a.device, "cpu");
    snprintf(a.resample, sizeof a.resample, "none");
    snprintf(a.accept_if, sizeof a.accept_if, "estimate");
    a.threshold = 0.8, a.mask_threshold = 0.5, a.threads = 1, a.coverage = 0.9;
    sq_status st;
    sq_status_clear(&st);
    int help = 0;
    predict_opts o;
    if (parse_args(argc, argv, &a, &help, &st) != SQ_OK) return sq_cli_report("predict", &st);
    if (help) return 0;
    if (check_args(&a, &st) != SQ_OK || make_opts(&a, &o, &st) != SQ_OK)
        return sq_cli_report("predict", &st);
    if (!sq_file_exists(a.ckpt)) {
        sq_fail(&st, SQ_ERR_IO, "%s: no such checkpoint", a.ckpt);
        return sq_cli_report("predict", &st);
    }
    char chosen[512];
    sq_backend *be = sq_cli_backend(a.device, (int)a.threads, 0, chosen, sizeof chosen, &st);
    if (!be) return sq_cli_report("predict", &st);
    sq_debug("predict: backend %s", chosen);
    sq_predictor *p = NULL;
    int code;
    if (sq_predictor_open(a.ckpt, be, &p, &st) != SQ_OK || check_crop(&a, p, &st) != SQ_OK ||
        load_intervals(&a, p, &o, &st) != SQ_OK)
        code = sq_cli_report("predict", &st);
    else if (a.use_stdin)
        code = predict_serve_stdin(p, &o);
    else
        code = run_batch(p, &o, &a, &st);
    sq_predictor_close(p);
    be->destroy(be);
    return code;
}
