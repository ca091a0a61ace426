/* nb_ref.c — float64 references of the backend ops (see nb_ref.h). */
#include "nb_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- convolution ------------------------------------------------------------------------------
 */

typedef struct idx5 {
    int n, c, d, h, w;
} idx5;

static idx5 unravel(sq_shape5 s, size_t i) {
    idx5 r;
    r.w = (int)(i % (size_t)s.w), i /= (size_t)s.w;
    r.h = (int)(i % (size_t)s.h), i /= (size_t)s.h;
    r.d = (int)(i % (size_t)s.d), i /= (size_t)s.d;
    r.c = (int)(i % (size_t)s.c), i /= (size_t)s.c;
    r.n = (int)i;
    return r;
}

static size_t ravel(sq_shape5 s, int n, int c, int d, int h, int w) {
    return ((((size_t)n * s.c + c) * s.d + d) * s.h + h) * s.w + w;
}

static size_t widx(const sq_conv3d *p, int cig, int oc, int icl, int kd, int kh, int kw) {
    return ((((size_t)oc * cig + icl) * p->k[0] + kd) * p->k[1] + kh) * p->k[2] + kw;
}

double nb_ref_conv_y(const nb_conv_ref *r, size_t yi) {
    const sq_conv3d *p = r->p;
    const sq_shape5 i = p->in, o = sq_conv3d_out(p);
    const int cig = i.c / r->groups, cog = p->cout / r->groups;
    const idx5 y = unravel(o, yi);
    const int g = y.c / cog;
    double acc = r->b ? r->b[y.c] : 0.0;
    for (int icl = 0; icl < cig; icl++)
        for (int kd = 0; kd < p->k[0]; kd++) {
            const int id = y.d * p->stride[0] - p->pad[0] + kd;
            if (id < 0 || id >= i.d) continue;
            for (int kh = 0; kh < p->k[1]; kh++) {
                const int ih = y.h * p->stride[1] - p->pad[1] + kh;
                if (ih < 0 || ih >= i.h) continue;
                for (int kw = 0; kw < p->k[2]; kw++) {
                    const int iw = y.w * p->stride[2] - p->pad[2] + kw;
                    if (iw < 0 || iw >= i.w) continue;
                    acc += (double)r->x[ravel(i, y.n, g * cig + icl, id, ih, iw)] *
                           r->w[widx(p, cig, y.c, icl, kd, kh, kw)];
                }
            }
        }
    return acc;
}

/* The output coordinate that reads input coordinate `in` through kernel tap `k`, or -1. */
static int out_of(int in, int k, int stride, int pad, int extent) {
    const int t = in + pad - k;
    if (t < 0 || t % stride) return -1;
    return t / stride < extent ? t / stride : -1;
}

double nb_ref_conv_dx(const nb_conv_ref *r, size_t xi) {
    const sq_conv3d *p = r->p;
    const sq_shape5 i = p->in, o = sq_conv3d_out(p);
    const int cig = i.c / r->groups, cog = p->cout / r->groups;
    const idx5 x = unravel(i, xi);
    const int g = x.c / cig, icl = x.c % cig;
    double acc = 0.0;
    for (int ocl = 0; ocl < cog; ocl++) {
        const int oc = g * cog + ocl;
        for (int kd = 0; kd < p->k[0]; kd++) {
            const int od = out_of(x.d, kd, p->stride[0], p->pad[0], o.d);
            if (od < 0) continue;
            for (int kh = 0; kh < p->k[1]; kh++) {
                const int oh = out_of(x.h, kh, p->stride[1], p->pad[1], o.h);
                if (oh < 0) continue;
                for (int kw = 0; kw < p->k[2]; kw++) {
                    const int ow = out_of(x.w, kw, p->stride[2], p->pad[2], o.w);
                    if (ow < 0) continue;
                    acc += (double)r->w[widx(p, cig, oc, icl, kd, kh, kw)] *
                           r->dy[ravel(o, x.n, oc, od, oh, ow)];
                }
            }
        }
    }
    return acc;
}

double nb_ref_conv_dw(const nb_conv_ref *r, size_t wi) {
    const sq_conv3d *p = r->p;
    const sq_shape5 i = p->in, o = sq_conv3d_out(p);
    const int cig = i.c / r->groups, cog = p->cout / r->groups;
    const int kw = (int)(wi % (size_t)p->k[2]), kh = (int)(wi / (size_t)p->k[2] % (size_t)p->k[1]);
    const size_t rest = wi / ((size_t)p->k[2] * p->k[1]);
    const int kd = (int)(rest % (size_t)p->k[0]);
    const int icl = (int)(rest / (size_t)p->k[0] % (size_t)cig);
    const int oc = (int)(rest / (size_t)p->k[0] / (size_t)cig);
    const int ic = (oc / cog) * cig + icl;
    double acc = 0.0;
    for (int n = 0; n < o.n; n++)
        for (int od = 0; od < o.d; od++) {
            const int id = od * p->stride[0] - p->pad[0] + kd;
            if (id < 0 || id >= i.d) continue;
            for (int oh = 0; oh < o.h; oh++) {
                const int ih = oh * p->stride[1] - p->pad[1] + kh;
                if (ih < 0 || ih >= i.h) continue;
                const float *dyr = r->dy + ravel(o, n, oc, od, oh, 0);
                const float *xr = r->x + ravel(i, n, ic, id, ih, 0);
                for (int ow = 0; ow < o.w; ow++) {
                    const int iw = ow * p->stride[2] - p->pad[2] + kw;
                    if (iw >= 0 && iw < i.w) acc += (double)xr[iw] * dyr[ow];
                }
            }
        }
    return acc;
}

double nb_ref_conv_db(const nb_conv_ref *r, int oc) {
    const sq_shape5 o = sq_conv3d_out(r->p);
    const size_t S = (size_t)o.d * o.h * o.w;
    double acc = 0.0;
    for (int n = 0; n < o.n; n++) {
        const float *dyp = r->dy + ((size_t)n * o.c + oc) * S;
        for (size_t j = 0; j < S; j++)
            acc += dyp[j];
    }
    return acc;
}

/* ---- activations ----------------------------------------------------------------------------- */

static double sig(double z) {
    return 1.0 / (1.0 + exp(-z));
}

double nb_ref_act(sq_act a, double z) {
    switch (a) {
    case SQ_ACT_RELU: return z > 0 ? z : 0;
    case SQ_ACT_SIGMOID: return sig(z);
    case SQ_ACT_SWISH: return z * sig(z);
    default: return z;
    }
}

double nb_ref_act_grad(sq_act a, double z) {
    const double s = sig(z);
    switch (a) {
    case SQ_ACT_RELU: return z > 0 ? 1 : 0;
    case SQ_ACT_SIGMOID: return s * (1 - s);
    case SQ_ACT_SWISH: return s * (1 + z * (1 - s));
    default: return 1;
    }
}

/* ---- BatchNorm ---------------------------------------------------------------------------------
 */

/* Per-channel mean and biased variance of the replicated batch (identical copies: same values). */
static void bn_moments(const nb_bn_ref_in *in, int c, double *mean, double *var) {
    const sq_shape5 s = in->s;
    const size_t S = (size_t)s.d * s.h * s.w, M = (size_t)s.n * S;
    double m = 0, v = 0;
    for (int n = 0; n < s.n; n++)
        for (size_t i = 0; i < S; i++)
            m += in->x[((size_t)n * s.c + c) * S + i];
    m /= (double)M;
    for (int n = 0; n < s.n; n++)
        for (size_t i = 0; i < S; i++) {
            const double d = in->x[((size_t)n * s.c + c) * S + i] - m;
            v += d * d;
        }
    *mean = m;
    *var = v / (double)M;
}

void nb_ref_bn_fwd(const nb_bn_ref_in *in, double *y, double *rm, double *rv, double *sm,
                   double *si) {
    const sq_shape5 s = in->s;
    const size_t S = (size_t)s.d * s.h * s.w;
    const double Mg = (double)s.n * (double)S * in->replicas; /* group element count */
    for (int c = 0; c < s.c; c++) {
        double mean, var;
        bn_moments(in, c, &mean, &var);
        const double unb = Mg > 1 ? var * Mg / (Mg - 1) : var;
        if (in->training) {
            rm[c] = (1 - in->momentum) * in->rm[c] + in->momentum * mean;
            rv[c] = (1 - in->momentum) * in->rv[c] + in->momentum * unb;
        } else {
            rm[c] = in->rm[c];
            rv[c] = in->rv[c];
            mean = in->rm[c];
            var = in->rv[c];
        }
        const double inv = 1.0 / sqrt(var + in->eps);
        sm[c] = mean;
        si[c] = inv;
        for (int n = 0; n < s.n; n++)
            for (size_t i = 0; i < S; i++) {
                const size_t o = ((size_t)n * s.c + c) * S + i;
                const double z = in->gamma[c] * (in->x[o] - mean) * inv + in->beta[c];
                y[o] = nb_ref_act(in->act, z) + (in->res ? in->res[o] : 0.0);
            }
    }
}

void nb_ref_bn_bwd(const nb_bn_ref_in *in, const float *sm, const float *si, const float *dy,
                   double *dx, double *dgamma, double *dbeta) {
    const sq_shape5 s = in->s;
    const size_t S = (size_t)s.d * s.h * s.w, M = (size_t)s.n * S;
    for (int c = 0; c < s.c; c++) {
        const double mean = sm[c], inv = si[c], g = in->gamma[c], b = in->beta[c];
        double sg = 0, sgx = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int n = 0; n < s.n; n++)
                for (size_t i = 0; i < S; i++) {
                    const size_t o = ((size_t)n * s.c + c) * S + i;
                    const double xh = (in->x[o] - mean) * inv;
                    const double gp = dy[o] * nb_ref_act_grad(in->act, g * xh + b);
                    if (pass == 0) {
                        sg += gp;
                        sgx += gp * xh;
                    } else if (in->training) {
                        dx[o] = g * inv * (gp - sg / (double)M - xh * sgx / (double)M);
                    } else {
                        dx[o] = g * inv * gp;
                    }
                }
        dgamma[c] = sgx;
        dbeta[c] = sg;
    }
}

/* ---- pooling, resize, fusion --------------------------------------------------------------- */

/* The input index of the first maximum of output window (pl, od, oh, ow), or -1 (all padding). */
static long pool_arg(const sq_pool3d *p, const float *x, int pl, int od, int oh, int ow) {
    const sq_shape5 s = p->in;
    const size_t S = (size_t)s.d * s.h * s.w;
    double best = -INFINITY;
    long arg = -1;
    for (int kd = 0; kd < p->k[0]; kd++)
        for (int kh = 0; kh < p->k[1]; kh++)
            for (int kw = 0; kw < p->k[2]; kw++) {
                const int d = od * p->stride[0] - p->pad[0] + kd,
                          h = oh * p->stride[1] - p->pad[1] + kh,
                          w = ow * p->stride[2] - p->pad[2] + kw;
                if (d < 0 || h < 0 || w < 0 || d >= s.d || h >= s.h || w >= s.w) continue;
                const long i = (long)((size_t)pl * S + ((size_t)d * s.h + h) * s.w + w);
                if (arg < 0 || x[i] > best) {
                    best = x[i];
                    arg = i;
                }
            }
    return arg;
}

void nb_ref_pool(const sq_pool3d *p, const float *x, const float *dy, double *y, double *dx) {
    const sq_shape5 s = p->in, o = sq_pool3d_out(p);
    memset(dx, 0, (size_t)sq_shape5_numel(s) * sizeof *dx);
    size_t yi = 0;
    for (int pl = 0; pl < s.n * s.c; pl++)
        for (int od = 0; od < o.d; od++)
            for (int oh = 0; oh < o.h; oh++)
                for (int ow = 0; ow < o.w; ow++, yi++) {
                    const long a = pool_arg(p, x, pl, od, oh, ow);
                    y[yi] = a < 0 ? -INFINITY : x[a];
                    if (a >= 0) dx[a] += dy[yi];
                }
}

void nb_ref_resize(const sq_resize3d *p, const float *x, const float *dy, double *y, double *dx) {
    const sq_shape5 s = p->in;
    memset(dx, 0, (size_t)sq_shape5_numel(s) * sizeof *dx);
    size_t yi = 0;
    for (int pl = 0; pl < s.n * s.c; pl++)
        for (int d = 0; d < p->out[0]; d++)
            for (int h = 0; h < p->out[1]; h++)
                for (int w = 0; w < p->out[2]; w++, yi++) {
                    const int id = (int)floor((double)d * s.d / p->out[0]),
                              ih = (int)floor((double)h * s.h / p->out[1]),
                              iw = (int)floor((double)w * s.w / p->out[2]);
                    const size_t xi =
                        (size_t)pl * s.d * s.h * s.w + ((size_t)id * s.h + ih) * s.w + iw;
                    y[yi] = x[xi];
                    dx[xi] += dy[yi];
                }
}

void nb_ref_fuse(size_t n, int k, const float *const *xs, const float *w, const float *dy,
                 double *y, double **dxs, double *dw) {
    double T = 1e-4;
    for (int i = 0; i < k; i++)
        T += w[i] > 0 ? w[i] : 0;
    for (int i = 0; i < k; i++)
        dw[i] = 0;
    for (size_t j = 0; j < n; j++) {
        double acc = 0;
        for (int i = 0; i < k; i++)
            acc += (w[i] > 0 ? w[i] : 0) * (double)xs[i][j];
        y[j] = acc / T;
    }
    for (int i = 0; i < k; i++) {
        const double wi = w[i] > 0 ? w[i] : 0;
        for (size_t j = 0; j < n; j++) {
            dxs[i][j] = wi / T * dy[j];
            if (w[i] > 0) dw[i] += (double)dy[j] * (xs[i][j] - y[j]) / T;
        }
    }
}
