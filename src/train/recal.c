/* recal.c — the estimate's recalibration map (see recal.h): a two-parameter Levenberg-Marquardt
 * least-squares fit of sigmoid(a * logit(est) + b) to the true Dice. */
#include "train/recal.h"

#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double logit_clipped(double p) {
    const double e = 1e-4;
    p = p < e ? e : p > 1 - e ? 1 - e : p;
    return log(p / (1 - p));
}

static double sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}

sq_recal sq_recal_identity(void) {
    return (sq_recal){1.0, 0.0, 0, NAN, NAN};
}

double sq_recal_apply(const sq_recal *r, double est) {
    if (!r || (r->a == 1.0 && r->b == 0.0)) return est;
    return sigmoid(r->a * logit_clipped(est) + r->b);
}

static double sse_of(const double *z, const double *y, int n, double a, double b) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        const double d = sigmoid(a * z[i] + b) - y[i];
        s += d * d;
    }
    return s;
}

/* One damped Gauss-Newton step from (a, b): the normal equations J'J + lambda diag(J'J). */
static void lm_step(const double *z, const double *y, int n, double a, double b, double lambda,
                    double *da, double *db) {
    double jaa = 0, jab = 0, jbb = 0, ga = 0, gb = 0;
    for (int i = 0; i < n; i++) {
        const double s = sigmoid(a * z[i] + b), d = s * (1 - s), r = s - y[i];
        jaa += d * d * z[i] * z[i], jab += d * d * z[i], jbb += d * d;
        ga += d * z[i] * r, gb += d * r;
    }
    jaa *= 1 + lambda, jbb *= 1 + lambda;
    const double det = jaa * jbb - jab * jab;
    if (!(fabs(det) > 1e-300)) {
        *da = *db = 0;
        return;
    }
    *da = -(jbb * ga - jab * gb) / det;
    *db = -(jaa * gb - jab * ga) / det;
}

static void lm_fit(const double *z, const double *y, int n, double *a, double *b) {
    double lambda = 1e-3, sse = sse_of(z, y, n, *a, *b);
    for (int it = 0; it < 200 && lambda < 1e12; it++) {
        double da, db;
        lm_step(z, y, n, *a, *b, lambda, &da, &db);
        const double s2 = sse_of(z, y, n, *a + da, *b + db);
        if (s2 < sse) {
            *a += da, *b += db;
            lambda /= 3;
            if (sse - s2 < 1e-14 * (1 + sse)) break;
            sse = s2;
        } else {
            lambda *= 4;
        }
    }
}

/* Variance of the clipped logits of est (fills z). */
static double logit_variance(const double *est, int n, double *z) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        z[i] = logit_clipped(est[i]), m += z[i] / n;
    for (int i = 0; i < n; i++)
        v += (z[i] - m) * (z[i] - m) / n;
    return v;
}

sq_recal sq_recal_fit(const double *est, const double *y, int n) {
    sq_recal r = sq_recal_identity();
    r.n = n;
    if (n < 1) return r;
    double raw = 0;
    for (int i = 0; i < n; i++)
        raw += (est[i] - y[i]) * (est[i] - y[i]);
    r.mse_raw = r.mse = raw / n; /* the identity's, until a fit does better */
    double *z = n >= SQ_RECAL_MIN_SAMPLES ? malloc(sizeof(double) * (size_t)n) : NULL;
    if (!z) return r;
    double a = 1.0, b = 0.0, fitted = raw;
    if (logit_variance(est, n, z) > 1e-6) { /* else (nearly) constant: a is not identifiable */
        lm_fit(z, y, n, &a, &b);
        fitted = sse_of(z, y, n, a, b);
    }
    free(z);
    if (a >= SQ_RECAL_A_MIN && a <= SQ_RECAL_A_MAX && isfinite(b) && fitted < raw)
        r.a = a, r.b = b, r.mse = fitted / n;
    return r;
}

void sq_recal_to_text(const sq_recal *r, char *buf, size_t cap) {
    snprintf(buf, cap,
             "{\"map\":\"sigmoid(a*logit(est)+b)\",\"a\":%.17g,\"b\":%.17g,\"n\":%d,"
             "\"mse_raw\":%.9g,\"mse\":%.9g}",
             r->a, r->b, r->n, isfinite(r->mse_raw) ? r->mse_raw : -1.0,
             isfinite(r->mse) ? r->mse : -1.0);
}

sq_code sq_recal_from_text(const char *text, const char *origin, sq_recal *r, sq_status *st) {
    *r = sq_recal_identity();
    if (!text || !*text) return SQ_OK;
    cJSON *j = NULL;
    SQ_TRY(sq_json_parse(text, origin, &j, st));
    double n = 0;
    sq_code rc = sq_json_get_number(j, "a", &r->a, 0, origin, st);
    if (rc == SQ_OK) rc = sq_json_get_number(j, "b", &r->b, 0, origin, st);
    if (rc == SQ_OK) rc = sq_json_get_number(j, "n", &n, 1, origin, st);
    cJSON_Delete(j);
    if (rc != SQ_OK) return rc;
    r->n = (int)n;
    if (!(r->a >= SQ_RECAL_A_MIN && r->a <= SQ_RECAL_A_MAX) || !isfinite(r->b))
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: a = %g, b = %g, expected a in [%g, %g] and a finite b", origin, r->a,
                       r->b, SQ_RECAL_A_MIN, SQ_RECAL_A_MAX);
    return SQ_OK;
}
