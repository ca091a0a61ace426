/* search.c — TPE/random parameter search and the final repeated-CV evaluation (search.h). */
#include "baseline/search.h"

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    STREAM_TPE = 0x54504500u,    /* "TPE": proposals, per trial index */
    STREAM_SEARCH = 0x53450000u, /* "SE": the search's CV repeats */
    STREAM_FINAL = 0x46490000u,  /* "FI": the final CV repeats */
    N_CANDIDATES = 24,
    MAX_GOOD = 25,
};

typedef struct param_desc {
    const char *name;
    double lo, hi;
    int is_log, is_int;
} param_desc;

static const param_desc k_space[SQ_BL_NPARAM] = {
    {"n_estimators", 1, 256, 0, 1},
    {"max_depth", 1, 6, 0, 1},
    {"lambda", 1e-3, 10, 1, 0},
    {"colsample_bynode", 0.2, 1.0, 0, 0},
};

const char *sq_bl_param_name(int k) {
    return k >= 0 && k < SQ_BL_NPARAM ? k_space[k].name : "?";
}

sq_bl_search_opts sq_bl_search_opts_default(void) {
    sq_bl_search_opts o;
    memset(&o, 0, sizeof o);
    o.trials = 64, o.startup = 16, o.batch = 8;
    o.repeats_search = 8, o.repeats_final = 64, o.nfolds = 5;
    o.seed = 2022;
    o.base = sq_gbdt_params_default();
    return o;
}

sq_gbdt_params sq_bl_trial_params(const sq_bl_trial *tr, const sq_gbdt_params *base) {
    sq_gbdt_params p = *base;
    p.n_estimators = (int)tr->x[0];
    p.max_depth = (int)tr->x[1];
    p.lambda = tr->x[2];
    p.colsample_bynode = tr->x[3];
    return p;
}

/* ---- TPE: values live in an internal space u (log for log parameters, ±0.5 around integers) */

static void u_range(const param_desc *d, double *lo, double *hi) {
    *lo = d->is_log ? log(d->lo) : d->is_int ? d->lo - 0.5 : d->lo;
    *hi = d->is_log ? log(d->hi) : d->is_int ? d->hi + 0.5 : d->hi;
}
static double to_u(const param_desc *d, double x) {
    return d->is_log ? log(x) : x;
}
static double from_u(const param_desc *d, double u) {
    double x = d->is_log ? exp(u) : d->is_int ? floor(u + 0.5) : u;
    return fmin(d->hi, fmax(d->lo, x));
}

/* A Parzen estimator on one parameter: m observations plus the prior component. */
typedef struct parzen {
    int m;
    double mu[MAX_GOOD + 512], sigma[MAX_GOOD + 512];
    double lo, hi;
} parzen;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* hyperopt's adaptive Parzen bandwidths: the larger gap to a neighbour, clipped. */
static void parzen_fit(parzen *pz, const double *obs, int m, double lo, double hi) {
    if (m > 500) m = 500;
    pz->lo = lo, pz->hi = hi;
    const double range = hi - lo, prior = 0.5 * (lo + hi);
    int n = 0;
    for (int i = 0; i < m; i++)
        pz->mu[n++] = obs[i];
    pz->mu[n++] = prior;
    qsort(pz->mu, (size_t)n, sizeof(double), cmp_double);
    const double minsig = range / fmin(100.0, 1.0 + m);
    for (int i = 0; i < n; i++) {
        double left = pz->mu[i] - (i ? pz->mu[i - 1] : lo);
        double right = (i + 1 < n ? pz->mu[i + 1] : hi) - pz->mu[i];
        pz->sigma[i] = fmin(range, fmax(minsig, fmax(left, right)));
    }
    for (int i = 0; i < n; i++) /* the prior component is wide */
        if (pz->mu[i] == prior) {
            pz->sigma[i] = range;
            break;
        }
    pz->m = n;
}

static double normal_cdf(double z) {
    return 0.5 * erfc(-z / sqrt(2.0));
}

static double parzen_logpdf(const parzen *pz, double u) {
    double s = 0;
    for (int i = 0; i < pz->m; i++) {
        double sg = pz->sigma[i], z = (u - pz->mu[i]) / sg;
        double mass = normal_cdf((pz->hi - pz->mu[i]) / sg) - normal_cdf((pz->lo - pz->mu[i]) / sg);
        s += exp(-0.5 * z * z) / (sg * sqrt(2 * M_PI) * fmax(mass, 1e-12));
    }
    return log(fmax(s / pz->m, 1e-300));
}

static double parzen_sample(const parzen *pz, sq_rng *r) {
    int i = (int)sq_rng_below(r, (uint32_t)pz->m);
    for (int tries = 0; tries < 64; tries++) {
        double u = pz->mu[i] + pz->sigma[i] * sq_rng_normal(r);
        if (u >= pz->lo && u <= pz->hi) return u;
    }
    return pz->lo + (pz->hi - pz->lo) * sq_rng_uniform_double(r);
}

static void prior_draw(sq_rng *r, double x[SQ_BL_NPARAM]) {
    for (int k = 0; k < SQ_BL_NPARAM; k++) {
        double lo, hi;
        u_range(&k_space[k], &lo, &hi);
        x[k] = from_u(&k_space[k], lo + (hi - lo) * sq_rng_uniform_double(r));
    }
}

typedef struct ranked {
    double mae;
    int idx;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->mae != y->mae) return x->mae < y->mae ? -1 : 1;
    return x->idx - y->idx;
}

/* Fit l (good trials) and g (the rest) for parameter k. */
static void fit_split(const sq_bl_trial *done, const ranked *rk, int n, int ngood, int k, parzen *l,
                      parzen *g) {
    double *obs = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double lo, hi;
    u_range(&k_space[k], &lo, &hi);
    for (int i = 0; i < n; i++)
        obs[i] = to_u(&k_space[k], done[rk[i].idx].x[k]);
    parzen_fit(l, obs, ngood, lo, hi);
    parzen_fit(g, obs + ngood, n - ngood, lo, hi);
    free(obs);
}

static void tpe_propose(const sq_bl_trial *done, int n, sq_rng *r, double x[SQ_BL_NPARAM]) {
    ranked *rk = malloc(sizeof(ranked) * (size_t)n);
    for (int i = 0; i < n; i++)
        rk[i].mae = isfinite(done[i].mae) ? done[i].mae : INFINITY, rk[i].idx = i;
    qsort(rk, (size_t)n, sizeof(ranked), cmp_ranked);
    int ngood = (int)ceil(0.25 * n);
    if (ngood > MAX_GOOD) ngood = MAX_GOOD;
    if (ngood < 1) ngood = 1;
    parzen l[SQ_BL_NPARAM], g[SQ_BL_NPARAM];
    for (int k = 0; k < SQ_BL_NPARAM; k++)
        fit_split(done, rk, n, ngood, k, &l[k], &g[k]);
    double best = -INFINITY;
    for (int c = 0; c < N_CANDIDATES; c++) {
        double cand[SQ_BL_NPARAM], score = 0;
        for (int k = 0; k < SQ_BL_NPARAM; k++) {
            cand[k] = from_u(&k_space[k], parzen_sample(&l[k], r));
            double u = to_u(&k_space[k], cand[k]);
            score += parzen_logpdf(&l[k], u) - parzen_logpdf(&g[k], u);
        }
        if (score > best) {
            best = score;
            memcpy(x, cand, sizeof cand);
        }
    }
    free(rk);
}

void sq_bl_propose(const sq_bl_trial *done, int n, int t, int startup, uint64_t seed,
                   double x[SQ_BL_NPARAM], int *tpe) {
    sq_rng r;
    sq_rng_init(&r, seed, STREAM_TPE, (uint32_t)t);
    *tpe = t >= startup && n > 0;
    if (*tpe)
        tpe_propose(done, n, &r, x);
    else
        prior_draw(&r, x);
}

/* ---- running trials over ranks ---- */

static sq_code par_sum(const sq_bl_par *par, double *buf, int n, sq_status *st) {
    return par && par->sum && par->size > 1 ? par->sum(par->ctx, buf, n, st) : SQ_OK;
}
static int par_rank(const sq_bl_par *par) {
    return par ? par->rank : 0;
}
static int par_size(const sq_bl_par *par) {
    return par && par->size > 0 ? par->size : 1;
}

static sq_code score_trial(const sq_bl_table *t, const sq_bl_search_opts *o, sq_bl_trial *tr,
                           sq_status *st) {
    sq_gbdt_params p = sq_bl_trial_params(tr, &o->base);
    double *mae = malloc(sizeof(double) * (size_t)o->repeats_search);
    if (!mae) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    sq_code rc = SQ_OK;
    for (int rep = 0; rep < o->repeats_search && rc == SQ_OK; rep++) {
        sq_bl_repeat r;
        rc = sq_bl_cv_repeat(SQ_BL_GBDT, t, &p, o->nfolds, o->seed, STREAM_SEARCH + (uint32_t)rep,
                             NULL, NULL, &r, st);
        mae[rep] = r.mae;
    }
    if (rc == SQ_OK) sq_bl_mean_sd(mae, o->repeats_search, &tr->mae, &tr->mae_sd, NULL);
    free(mae);
    return rc;
}

/* Who runs which trial of a round: longest first onto the least-loaded rank (cost ~ trees x
 * depth), the same on every rank. Only the speed depends on it, never the result. */
static void assign_owners(const sq_bl_trial *tr, int nb, int size, int *owner) {
    double load[256] = {0};
    int done[256] = {0};
    if (size > 256) size = 256;
    for (int step = 0; step < nb; step++) {
        int pick = -1;
        for (int i = 0; i < nb; i++)
            if (!done[i] && (pick < 0 || tr[i].x[0] * tr[i].x[1] > tr[pick].x[0] * tr[pick].x[1]))
                pick = i;
        int r = 0;
        for (int k = 1; k < size; k++)
            if (load[k] < load[r]) r = k;
        owner[pick] = r, done[pick] = 1, load[r] += tr[pick].x[0] * tr[pick].x[1];
    }
}

/* One round: trials [t0, t0 + nb) proposed from [0, t0), spread over the ranks. */
static sq_code search_round(const sq_bl_table *t, const sq_bl_search_opts *o, const sq_bl_par *par,
                            sq_bl_trial *tr, int t0, int nb, double *buf, sq_status *st) {
    sq_code rc = SQ_OK;
    for (int i = t0; i < t0 + nb; i++)
        sq_bl_propose(tr, t0, i, o->startup, o->seed, tr[i].x, &tr[i].tpe);
    memset(buf, 0, sizeof(double) * 2 * (size_t)nb);
    int owner[256];
    assign_owners(tr + t0, nb, par_size(par), owner);
    for (int i = t0; i < t0 + nb && rc == SQ_OK; i++) {
        if (owner[i - t0] != par_rank(par)) continue;
        rc = score_trial(t, o, &tr[i], st);
        buf[2 * (i - t0)] = tr[i].mae, buf[2 * (i - t0) + 1] = tr[i].mae_sd;
    }
    /* a failed rank still joins the sum so that no rank waits forever; NaN marks its trials */
    if (rc != SQ_OK)
        for (int k = 0; k < 2 * nb; k++)
            buf[k] = NAN;
    sq_status st2;
    sq_status_clear(&st2);
    sq_code rs = par_sum(par, buf, 2 * nb, rc == SQ_OK ? st : &st2);
    if (rc != SQ_OK) return rc;
    SQ_TRY(rs);
    for (int i = t0; i < t0 + nb; i++) {
        tr[i].mae = buf[2 * (i - t0)], tr[i].mae_sd = buf[2 * (i - t0) + 1];
        if (!isfinite(tr[i].mae))
            return sq_fail(st, SQ_ERR_INTERNAL, "baseline: trial %d failed on rank %d", i,
                           owner[i - t0]);
    }
    return SQ_OK;
}

static sq_code run_search(const sq_bl_table *t, const sq_bl_search_opts *o, const sq_bl_par *par,
                          sq_bl_result *r, sq_status *st) {
    r->ntrials = o->trials;
    r->trials = calloc((size_t)o->trials, sizeof *r->trials);
    double *buf = malloc(sizeof(double) * 2 * (size_t)o->batch);
    if (!r->trials || !buf) {
        free(buf);
        return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    }
    sq_progress pg;
    if (o->progress) sq_progress_begin(&pg, "search", o->trials);
    sq_code rc = SQ_OK;
    for (int t0 = 0; t0 < o->trials && rc == SQ_OK; t0 += o->batch) {
        int nb = o->trials - t0 < o->batch ? o->trials - t0 : o->batch;
        rc = search_round(t, o, par, r->trials, t0, nb, buf, st);
        if (o->progress && rc == SQ_OK) sq_progress_update(&pg, t0 + nb, NULL);
    }
    if (o->progress && rc == SQ_OK) sq_progress_end(&pg, NULL);
    free(buf);
    SQ_TRY(rc);
    r->best = 0;
    for (int i = 1; i < o->trials; i++)
        if (r->trials[i].mae < r->trials[r->best].mae) r->best = i;
    r->best_params = sq_bl_trial_params(&r->trials[r->best], &o->base);
    return SQ_OK;
}

/* The final repeats, dealt over ranks; repeat 0 (rank 0) keeps its out-of-fold predictions. */
static sq_code run_final(sq_bl_model model, const sq_bl_table *t, const sq_bl_search_opts *o,
                         const sq_bl_par *par, sq_bl_result *r, sq_status *st) {
    const int nrep = o->repeats_final, n = t->nrows;
    r->nrep = nrep;
    r->gbdt = calloc((size_t)nrep, sizeof *r->gbdt);
    r->naive = calloc((size_t)nrep, sizeof *r->naive);
    r->oof_gbdt = calloc((size_t)n, sizeof(double));
    r->oof_naive = calloc((size_t)n, sizeof(double));
    r->fold = calloc((size_t)n, sizeof(int));
    double *buf = calloc((size_t)nrep * 4, sizeof(double));
    sq_code rc = r->gbdt && r->naive && r->oof_gbdt && r->oof_naive && r->fold && buf
                     ? SQ_OK
                     : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int rep = 0; rep < nrep && rc == SQ_OK; rep++) {
        if (rep % par_size(par) != par_rank(par)) continue;
        const uint32_t stream = STREAM_FINAL + (uint32_t)rep;
        sq_bl_repeat g = {NAN, NAN}, nv;
        if (model == SQ_BL_GBDT)
            rc = sq_bl_cv_repeat(SQ_BL_GBDT, t, &r->best_params, o->nfolds, o->seed, stream,
                                 rep ? NULL : r->oof_gbdt, NULL, &g, st);
        if (rc == SQ_OK)
            rc = sq_bl_cv_repeat(SQ_BL_NAIVE, t, &r->best_params, o->nfolds, o->seed, stream,
                                 rep ? NULL : r->oof_naive, rep ? NULL : r->fold, &nv, st);
        buf[4 * rep] = g.mae, buf[4 * rep + 1] = g.spearman;
        buf[4 * rep + 2] = nv.mae, buf[4 * rep + 3] = nv.spearman;
    }
    if (buf) {
        sq_status st2;
        sq_status_clear(&st2);
        sq_code rs = par_sum(par, buf, 4 * nrep, rc == SQ_OK ? st : &st2);
        if (rc == SQ_OK) rc = rs;
    }
    for (int rep = 0; rep < nrep && rc == SQ_OK; rep++) {
        r->gbdt[rep] = (sq_bl_repeat){buf[4 * rep], buf[4 * rep + 1]};
        r->naive[rep] = (sq_bl_repeat){buf[4 * rep + 2], buf[4 * rep + 3]};
    }
    free(buf);
    return rc;
}

sq_code sq_bl_run(sq_bl_model model, const sq_bl_table *t, const sq_bl_search_opts *o,
                  const sq_bl_par *par, sq_bl_result *r, sq_status *st) {
    memset(r, 0, sizeof *r);
    if (o->trials < 1 || o->batch < 1 || o->repeats_search < 1 || o->repeats_final < 1)
        return sq_fail(st, SQ_ERR_USAGE, "baseline: trials, batch and repeats must be >= 1");
    r->best_params = o->base;
    double t0 = sq_now();
    if (model == SQ_BL_GBDT) SQ_TRY(run_search(t, o, par, r, st));
    r->search_seconds = sq_now() - t0;
    t0 = sq_now();
    SQ_TRY(run_final(model, t, o, par, r, st));
    r->final_seconds = sq_now() - t0;
    return SQ_OK;
}

void sq_bl_result_free(sq_bl_result *r) {
    free(r->trials), free(r->gbdt), free(r->naive), free(r->oof_gbdt), free(r->oof_naive);
    free(r->fold);
    memset(r, 0, sizeof *r);
}
