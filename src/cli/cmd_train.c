/* cmd_train.c — `segqa cv` (K-fold cross-validation, folds per patient) and `segqa train` (one
 * model on all given sites). Both share one option table and src/train/trainer.c; they run as one
 * MPI job (`mpirun -np W segqa cv ...` or `srun --mpi=pmix`), or as a single process.
 */
#include "cli.h"

#include "baseline/beside.h"
#include "core/log.h"
#include "core/tensor.h"
#include "hpc/comm.h"
#include "hpc/signals.h"
#include "train/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct train_cli {
    long long folds, epochs, batch, val_every, workers, threads, seed, decay_epoch, warmup,
        fpn_channels, fpn_repeats, expansion, stop_after, bn_freeze;
    double val_fraction, lr, lr_decayed, clip, fail_rate, gt_rate, low, high, bn_momentum,
        comm_timeout;
    int no_failures, no_figures;
    int deterministic;
    char out[4096], splits[4096], augment[16], depth_rule[16], sync_bn[8], device[8], comm[8],
        split_by[16], on_nan[8], recipe[16], calibration[4096], crop[16], crop_shape[64],
        recalibrate[8];
    double crop_margin;
} train_cli;

static void defaults(train_cli *c, int cv) {
    sq_train_opts d = sq_train_opts_default();
    memset(c, 0, sizeof *c);
    c->folds = cv ? d.nfolds : 0;
    c->epochs = d.epochs;
    c->batch = d.batch;
    c->val_every = d.val_every;
    c->workers = d.workers;
    c->threads = 0;
    c->seed = (long long)d.seed;
    c->decay_epoch = d.lr.decay_epoch;
    c->warmup = d.lr.warmup_steps;
    c->fpn_channels = d.model.fpn_channels;
    c->fpn_repeats = d.model.fpn_repeats;
    c->expansion = d.model.expansion;
    c->val_fraction = d.val_fraction;
    c->lr = d.lr.base_lr;
    c->lr_decayed = d.lr.decayed_lr;
    c->clip = d.clip;
    c->fail_rate = d.fail_rate;
    c->gt_rate = d.gt_rate;
    c->low = d.rule.low;
    c->high = d.rule.high;
    c->bn_momentum = d.model.bn_momentum;
    c->bn_freeze = d.bn_freeze_epochs;
    snprintf(c->sync_bn, sizeof c->sync_bn, "%s", d.sync_bn ? "on" : "off");
    snprintf(c->on_nan, sizeof c->on_nan, "%s", d.on_nan_skip ? "skip" : "stop");
    snprintf(c->recalibrate, sizeof c->recalibrate, "%s", d.recalibrate ? "on" : "off");
    snprintf(c->out, sizeof c->out, "%s", cv ? "runs/cv" : "runs/train");
    snprintf(c->augment, sizeof c->augment, "paper");
    snprintf(c->device, sizeof c->device, "cpu");
    snprintf(c->comm, sizeof c->comm, "%s", d.comm);
    c->comm_timeout = d.comm_timeout;
    snprintf(c->depth_rule, sizeof c->depth_rule, "anisotropic");
    snprintf(c->split_by, sizeof c->split_by, "patient");
    snprintf(c->recipe, sizeof c->recipe, "none");
    snprintf(c->crop, sizeof c->crop, "center");
    c->crop_margin = d.crop_margin;
}

/* ---- recipes: named presets of training options (docs/training.md) ----
 * Applied on top of the defaults and under --config and the command line, so any option given
 * beside a recipe overrides it. Both expect the contours of `segqa contours` with its defaults
 * (atlas 1, perturb 1, near 2 per case). Chosen on validation patients (--val-fraction), never on
 * test folds; the ablation is in docs/training.md. */
typedef struct train_recipe {
    const char *name;
    const char *json; /* keys are long option names */
} train_recipe;

static const train_recipe k_recipes[] = {
    {"demo", "{\"epochs\": 6, \"batch\": 8, \"val-every\": 2, \"lr\": 0.005, "
             "\"lr-decayed\": 0.0005, \"decay-epoch\": 5, \"augment\": \"robust\", "
             "\"fail-rate\": 0.2, \"gt-rate\": 0, \"recalibrate\": \"on\", "
             "\"bn-freeze-epochs\": 1}"},
    {"reference", "{\"epochs\": 20, \"batch\": 8, \"val-every\": 4, \"lr\": 0.005, "
                  "\"lr-decayed\": 0.0005, \"decay-epoch\": 16, \"augment\": \"robust\", "
                  "\"fail-rate\": 0.2, \"gt-rate\": 0, \"recalibrate\": \"on\", "
                  "\"bn-freeze-epochs\": 2}"},
};

/* The value of --recipe on the command line (last one wins), or NULL. */
static const char *recipe_arg(int argc, char **argv) {
    const char *r = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--recipe") && i + 1 < argc)
            r = argv[++i];
        else if (!strncmp(argv[i], "--recipe=", 9))
            r = argv[i] + 9;
    }
    return r;
}

/* Apply the recipe named on the command line, if any, to the option table's variables. */
static sq_code apply_recipe(int argc, char **argv, const sq_option *opts, int nopts,
                            sq_status *st) {
    const char *name = recipe_arg(argc, argv);
    if (!name || !strcmp(name, "none")) return SQ_OK;
    for (size_t k = 0; k < sizeof k_recipes / sizeof k_recipes[0]; k++) {
        if (strcmp(name, k_recipes[k].name) != 0) continue;
        cJSON *obj = cJSON_Parse(k_recipes[k].json);
        if (!obj) return sq_fail(st, SQ_ERR_INTERNAL, "recipe %s: bad JSON", name);
        char origin[64];
        snprintf(origin, sizeof origin, "recipe %s", name);
        sq_code rc = sq_options_apply_json(opts, nopts, obj, origin, st);
        cJSON_Delete(obj);
        return rc;
    }
    return sq_fail(st, SQ_ERR_USAGE, "--recipe '%s': expected demo, reference or none", name);
}

/* --crop, --crop-shape, --crop-margin into the trainer's options. */
static sq_code crop_opts(const train_cli *c, sq_train_opts *o, sq_status *st) {
    o->crop_contour = !strcmp(c->crop, "contour");
    o->crop_margin = c->crop_margin;
    if (!c->crop_shape[0]) return SQ_OK;
    if (!o->crop_contour) return sq_fail(st, SQ_ERR_USAGE, "--crop-shape needs --crop contour");
    int64_t shp[SQ_MAX_DIMS];
    int nd = 0;
    SQ_TRY(sq_parse_shape(c->crop_shape, shp, &nd, st));
    if (nd != 3)
        return sq_fail(st, SQ_ERR_USAGE, "--crop-shape: expected DxHxW, got '%s'", c->crop_shape);
    for (int a = 0; a < 3; a++)
        o->crop_shape[a] = (int)shp[a];
    return SQ_OK;
}

/* Compute threads per rank when not given: the online cores shared by the ranks of this node. */
static int auto_threads(int world_size) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!ls) ls = getenv("SLURM_NTASKS_PER_NODE");
    int local = ls ? atoi(ls) : world_size;
    if (local < 1) local = 1;
    int t = (int)(cores / local);
    return t < 1 ? 1 : t;
}

/* The trainer's options from the parsed command line. */
static void fill_train_opts(const train_cli *c, const sq_cli_args *a, const sq_world *w,
                            sq_train_opts *o) {
    *o = sq_train_opts_default();
    o->sites = (const char *const *)a->pos;
    o->nsites = a->npos;
    o->nfolds = (int)c->folds;
    o->split_by_site = !strcmp(c->split_by, "site");
    if (o->split_by_site) o->nfolds = a->npos; /* leave-one-site-out: one fold per site file */
    o->splits_path = c->splits;
    o->run_dir = c->out;
    o->epochs = (int)c->epochs;
    o->batch = (int)c->batch;
    o->val_every = (int)c->val_every;
    o->val_fraction = c->val_fraction;
    o->workers = (int)c->workers;
    o->threads = c->threads > 0 ? (int)c->threads : auto_threads(w->size);
    o->seed = (uint64_t)c->seed;
    o->lr.base_lr = c->lr;
    o->lr.decayed_lr = c->lr_decayed;
    o->lr.decay_epoch = (int)c->decay_epoch;
    o->lr.warmup_steps = c->warmup;
    o->clip = c->clip;
    o->augment = c->augment;
    o->fail_rate = c->fail_rate;
    o->gt_rate = c->gt_rate;
    o->failures = !c->no_failures;
    o->figures = !c->no_figures;
    o->max_steps = (int)c->stop_after;
    o->rule.low = c->low;
    o->rule.high = c->high;
    o->model.expansion = (int)c->expansion;
    o->model.fpn_channels = (int)c->fpn_channels;
    o->model.fpn_repeats = (int)c->fpn_repeats;
    o->model.bn_momentum = c->bn_momentum;
    o->bn_freeze_epochs = (int)c->bn_freeze;
    o->sync_bn = !strcmp(c->sync_bn, "on");
    o->on_nan_skip = !strcmp(c->on_nan, "skip");
    o->device = c->device;
    o->deterministic = c->deterministic;
    o->comm = c->comm;
    o->comm_timeout = c->comm_timeout;
    o->calibration_path = c->calibration;
    o->recalibrate = !strcmp(c->recalibrate, "on");
}

/* After a CV on sites with clinical variables: the GBDT on the same folds, beside the network. */
static void clinical_beside(const sq_train_opts *o) {
    sq_bl_beside b;
    sq_status st;
    sq_status_clear(&st);
    if (sq_bl_cv_beside(o->run_dir, o->sites, o->nsites, o->seed, &b, &st) != SQ_OK)
        sq_warn("clinical baseline beside the network skipped: %s", st.msg);
    else if (b.done) {
        sq_bl_beside_print(stdout, &b);
        fflush(stdout);
    } else
        sq_debug("no clinical baseline: %s", b.why);
}

enum { TRAIN_MAX_OPTS = 64 };

/* The option table of `cv` (all of it) or `train` (no folds, split-by or splits) into opts. */
static int train_options(train_cli *c, int cv, sq_option *opts) {
    const sq_option all[] = {
        {"out", 'o', SQ_OPT_STRING, c->out, sizeof c->out, "DIR", "run folder", NULL, 0, 0},
        {"recipe", 0, SQ_OPT_CHOICE, c->recipe, sizeof c->recipe, "NAME",
         "preset of training options (docs/training.md); options given beside it override it",
         "demo|reference|none", 0, 0},
        {"folds", 'k', SQ_OPT_INT, &c->folds, 0, "K", "cross-validation folds (per patient)", NULL,
         2, 64},
        {"split-by", 0, SQ_OPT_CHOICE, c->split_by, sizeof c->split_by, "patient|site",
         "folds per patient, or leave-one-site-out (one fold per site file; --folds ignored)",
         "patient|site", 0, 0},
        {"splits", 0, SQ_OPT_STRING, c->splits, sizeof c->splits, "FILE",
         "reuse the folds of a splits.json", NULL, 0, 0},
        {"epochs", 'e', SQ_OPT_INT, &c->epochs, 0, "N", "training epochs", NULL, 1, 100000},
        {"batch", 'b', SQ_OPT_INT, &c->batch, 0, "N", "samples per step on each rank", NULL, 1, 64},
        {"val-every", 0, SQ_OPT_INT, &c->val_every, 0, "N", "validate every N epochs", NULL, 1,
         100000},
        {"val-fraction", 0, SQ_OPT_DOUBLE, &c->val_fraction, 0, "F",
         "share of training patients held out for validation", NULL, 0, 0.9},
        {"lr", 0, SQ_OPT_DOUBLE, &c->lr, 0, "X", "learning rate", NULL, 1e-9, 10},
        {"lr-decayed", 0, SQ_OPT_DOUBLE, &c->lr_decayed, 0, "X", "learning rate after decay", NULL,
         1e-12, 10},
        {"decay-epoch", 0, SQ_OPT_INT, &c->decay_epoch, 0, "N", "epoch of the step decay", NULL, 0,
         100000},
        {"warmup-steps", 0, SQ_OPT_INT, &c->warmup, 0, "N", "linear warm-up steps", NULL, 0,
         10000000},
        {"clip", 0, SQ_OPT_DOUBLE, &c->clip, 0, "X", "gradient-norm clipping (0: off)", NULL, 0,
         1e9},
        {"augment", 'a', SQ_OPT_CHOICE, c->augment, sizeof c->augment, "PRESET",
         "augmentation: the paper's, robust (+ failure cases) or none", "paper|robust|none", 0, 0},
        {"fail-rate", 0, SQ_OPT_DOUBLE, &c->fail_rate, 0, "F",
         "failure-case injection rate of the robust preset", NULL, 0, 1},
        {"gt-rate", 0, SQ_OPT_DOUBLE, &c->gt_rate, 0, "F",
         "share of training samples shown with the GT itself as contour (target 1)", NULL, 0, 1},
        {"recalibrate", 0, SQ_OPT_CHOICE, c->recalibrate, sizeof c->recalibrate, "on|off",
         "map the estimate by sigmoid(a logit + b) fitted on each fold's validation patients "
         "(docs/training.md), stored in its checkpoints",
         "on|off", 0, 0},
        {"calibration", 0, SQ_OPT_STRING, c->calibration, sizeof c->calibration, "FILE",
         "interval calibration (a CV's calibration.json) to store in every checkpoint", NULL, 0, 0},
        {"no-failures", 0, SQ_OPT_FLAG, &c->no_failures, 0, NULL,
         "skip the failure-case study on the test folds", NULL, 0, 0},
        {"no-figures", 0, SQ_OPT_FLAG, &c->no_figures, 0, NULL, "do not draw figures", NULL, 0, 0},
        {"low", 0, SQ_OPT_DOUBLE, &c->low, 0, "X", "accuracy rule: lower Dice threshold", NULL, 0,
         1},
        {"high", 0, SQ_OPT_DOUBLE, &c->high, 0, "X", "accuracy rule: upper Dice threshold", NULL, 0,
         1},
        {"seed", 's', SQ_OPT_INT, &c->seed, 0, "N", "seed of folds, init and augmentation", NULL, 0,
         9.0e15},
        {"workers", 'w', SQ_OPT_INT, &c->workers, 0, "N", "augmentation threads per rank", NULL, 1,
         256},
        {"threads", 't', SQ_OPT_INT, &c->threads, 0, "N",
         "compute threads per rank (0: cores / ranks on the node)", NULL, 0, 1024},
        {"depth-rule", 0, SQ_OPT_CHOICE, c->depth_rule, sizeof c->depth_rule, "RULE",
         "downsampling rule", "anisotropic|isotropic", 0, 0},
        {"expansion", 0, SQ_OPT_INT, &c->expansion, 0, "N", "MBConv expansion factor", NULL, 1, 8},
        {"fpn-channels", 0, SQ_OPT_INT, &c->fpn_channels, 0, "N", "BiFPN width", NULL, 4, 512},
        {"fpn-repeats", 0, SQ_OPT_INT, &c->fpn_repeats, 0, "N", "BiFPN cells", NULL, 1, 8},
        {"bn-momentum", 0, SQ_OPT_DOUBLE, &c->bn_momentum, 0, "X",
         "BatchNorm running-statistics momentum (PyTorch convention)", NULL, 1e-6, 1},
        {"bn-freeze-epochs", 0, SQ_OPT_INT, &c->bn_freeze, 0, "N",
         "train the last N epochs with BatchNorm on its running statistics (as evaluated), "
         "frozen (docs/training.md)",
         NULL, 0, 100000},
        {"sync-bn", 0, SQ_OPT_CHOICE, c->sync_bn, sizeof c->sync_bn, "on|off",
         "synchronised BatchNorm over each data-parallel group", "on|off", 0, 0},
        {"on-nan", 0, SQ_OPT_CHOICE, c->on_nan, sizeof c->on_nan, "stop|skip",
         "a step whose loss or gradient is NaN/Inf (message names its cases): stop the run, or "
         "skip the step",
         "stop|skip", 0, 0},
        {"stop-after-steps", 0, SQ_OPT_INT, &c->stop_after, 0, "N",
         "act as if preempted after N steps (checkpoint, exit 75)", NULL, 0, 1e12},
        {"device", 0, SQ_OPT_CHOICE, c->device, sizeof c->device, "DEV", SQ_CLI_DEVICE_HELP,
         "cpu|cuda|auto", 0, 0},
        {"deterministic", 0, SQ_OPT_FLAG, &c->deterministic, 0, NULL,
         "CUDA: deterministic cuDNN algorithms only", NULL, 0, 0},
        {"comm", 0, SQ_OPT_CHOICE, c->comm, sizeof c->comm, "LIB", SQ_CLI_COMM_HELP,
         "auto|nccl|mpi", 0, 0},
        {"comm-timeout", 0, SQ_OPT_DOUBLE, &c->comm_timeout, 0, "S", SQ_CLI_COMM_TIMEOUT_HELP, NULL,
         0.1, 1e6},
        {"crop", 0, SQ_OPT_CHOICE, c->crop, sizeof c->crop, "HOW",
         "model input: the site's grid (center) or each contour's box resampled (contour), as "
         "predict will see it; stored in the checkpoint",
         "center|contour", 0, 0},
        {"crop-shape", 0, SQ_OPT_STRING, c->crop_shape, sizeof c->crop_shape, "DxHxW",
         "--crop contour: the model's input shape (default: the site's)", NULL, 0, 0},
        {"crop-margin", 0, SQ_OPT_DOUBLE, &c->crop_margin, 0, "F",
         "--crop contour: box margin per side, share of its extent", NULL, 0, 2},
    };
    _Static_assert(sizeof all / sizeof all[0] <= TRAIN_MAX_OPTS, "TRAIN_MAX_OPTS too small");
    int nopts = (int)(sizeof all / sizeof all[0]);
    memcpy(opts, all, sizeof all);
    if (!cv) { /* `train` has no folds, split-by or splits (entries 2..4) */
        memmove(&opts[2], &opts[5], (size_t)(nopts - 5) * sizeof opts[0]);
        nopts -= 3;
    }
    return nopts;
}

static int run(int argc, char **argv, int cv) {
    train_cli c;
    defaults(&c, cv);
    const char *name = cv ? "cv" : "train";
    sq_option opts[TRAIN_MAX_OPTS];
    const int nopts = train_options(&c, cv, opts);
    const sq_cli_spec spec = {
        .command = name,
        .usage = cv ? "segqa cv [options] SITE.h5..." : "segqa train [options] SITE.h5...",
        .description =
            cv ? "K-fold cross-validation with folds made per patient (saved as splits.json,\n"
                 "reusable with --splits). Run it as one MPI job: W ranks and K folds make K fold\n"
                 "groups when W >= K (each data-parallel) and take folds round-robin when W < K.\n"
                 "Writes the run folder: config.json, splits.json, metrics.json, predictions.csv,\n"
                 "curves.csv, fold-*/best.h5 and last.h5, figures. A stopped run resumes when the\n"
                 "same command is run again."
               : "Train one model on all the given sites (multi-site retraining); every rank is\n"
                 "data-parallel. Writes RUN/all/best.h5 and last.h5 for `segqa predict`.",
        .opts = opts,
        .nopts = nopts,
        .min_pos = 1,
        .max_pos = -1,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (apply_recipe(argc, argv, opts, nopts, &st) != SQ_OK) return sq_cli_report(name, &st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report(name, &st);
    if (a.help) return 0;
    if (cv && !strcmp(c.split_by, "site") && a.npos < 2) {
        sq_fail(&st, SQ_ERR_USAGE, "--split-by site needs at least 2 site files, got %d", a.npos);
        return sq_cli_report(name, &st);
    }

    sq_world w;
    if (sq_world_init(NULL, NULL, &w, &st) != SQ_OK) {
        int code = sq_cli_report(name, &st);
        if (w.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
        sq_world_finalize(&w);
        return code;
    }
    if (w.size > 1) sq_log_set_rank(w.rank, 0);
    sq_signals_install();

    sq_train_opts o;
    fill_train_opts(&c, &a, &w, &o);
    sq_code rc = sq_depth_rule_parse(c.depth_rule, &o.model.depth_rule, &st);
    if (rc == SQ_OK) rc = crop_opts(&c, &o, &st);
    cJSON *resolved = sq_options_to_json(opts, nopts);
    if (resolved) {
        cJSON *sites = cJSON_AddArrayToObject(resolved, "sites");
        for (int i = 0; i < a.npos; i++)
            cJSON_AddItemToArray(sites, cJSON_CreateString(a.pos[i]));
        cJSON_AddNumberToObject(resolved, "ranks", w.size);
        cJSON_AddNumberToObject(resolved, "threads_per_rank", o.threads);
    }
    o.config = resolved;
    if (rc == SQ_OK) rc = sq_train_run(&o, &w, &st);
    if (rc == SQ_OK && cv && w.rank == 0) clinical_beside(&o);
    cJSON_Delete(resolved);
    int code = rc == SQ_OK ? 0 : sq_cli_report(name, &st);
    if (rc != SQ_OK && rc != SQ_ERR_INTERRUPTED && w.size > 1) {
        /* other ranks may be waiting in a collective: end the whole job */
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    sq_world_finalize(&w);
    return code;
}

int sq_cmd_cv(int argc, char **argv) {
    return run(argc, argv, 1);
}
int sq_cmd_train(int argc, char **argv) {
    return run(argc, argv, 0);
}
