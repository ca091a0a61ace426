/* model.c — the QA network: registry, planning, forward and backward (see model.h).
 *
 * One builder function (build_net) walks the architecture of DESIGN.md §3 in forward order. The
 * first walk (in sq_model_create) registers every parameter and BN statistic by name, in the order
 * of the PyTorch reference's named_parameters()/named_buffers(); every later walk (sq_model_plan)
 * finds them again by position, checks the name and emits a flat list of ops over tensors carved
 * from one activation arena. Forward runs the ops in order, backward in reverse. A tensor read by
 * several ops gets its gradient accumulated: the first backward writer overwrites, later ones write
 * into a scratch slot that is then added. A gradient lives only from the backward of its tensor's
 * last reader to the backward of its producer, so gradients share the gradient arena: each gets
 * the lowest offset free over its lifetime (plan_gradients).
 */
#include "model/model.h"

#include "core/rng.h"
#include "core/tensor.h"
#include "core/timer.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS  1e-3f
#define ALIGN_F 16 /* floats per 64 bytes */

enum { OP_CONV, OP_DW, OP_BN, OP_ACT, OP_GAP, OP_CHSCALE, OP_POOL, OP_RESIZE, OP_FUSE, OP_PRELU };
enum { INIT_HE, INIT_ZERO, INIT_ONE, INIT_PRELU };

typedef struct sq_op {
    int kind;
    int x, x2, y; /* x2: CHSCALE / scaled-CONV scale, BN residual; -1 none */
    int k, xs[3]; /* FUSE inputs */
    sq_conv3d conv;
    sq_pool3d pool;
    sq_resize3d rs;
    sq_bn bn;
    sq_act act;
    sq_shape5 s;   /* input shape for shape-only ops */
    long w, b;     /* parameter offsets (floats), -1 none; BN gamma/beta, PReLU alpha, FUSE w */
    long rm, rv;   /* BN running statistics (state offsets) */
    size_t sm, si; /* BN save_mean / save_invstd (arena offsets) */
} sq_op;

typedef struct sq_tens {
    sq_shape5 s;
    size_t off;  /* floats into the activation arena */
    size_t goff; /* floats into the gradient arena (shared between gradients not live together) */
} sq_tens;

struct sq_model {
    sq_model_config cfg;
    sq_backend *be;
    sq_param_info *params, *state;
    unsigned char *pinit; /* INIT_* per param */
    int np, ns, cap_p, cap_s;
    size_t pfloats, sfloats;
    sq_buf *pbuf, *gbuf, *sbuf;
    /* plan */
    int plan_n, plan_grad, training;
    long plans_built; /* full plans made so far (a same-shape re-plan is a no-op) */
    sq_op *ops;
    int nops;
    sq_tens *t;
    int nt;
    int in_t, out_t, target_t, loss_t;
    size_t arena_floats, garena_floats; /* garena: gradients, followed by the 3 scratch slots */
    size_t slot_len[3]; /* floats of scratch slots 0-2: the largest gradient that reaches each
                           slot as a second writer (plan_scratch) */
    sq_buf *abuf, *gabuf;
    unsigned char *ready;
    int loss_done;
    int profile;               /* time every op (sq_model_set_profile) */
    const sq_bn_sync *bn_sync; /* synchronised BN group in training, NULL: local */
    size_t *gready;            /* per op: gradients at [gready[i], pfloats) are final once
                                  backward has run ops nops-1 .. i */
    sq_grad_hook_fn grad_hook; /* sq_model_set_grad_hook */
    void *grad_hook_ctx;
    double *op_fwd_ms, *op_bwd_ms; /* per op, accumulated */
};

/* ---- builder ----------------------------------------------------------------------------------
 */

typedef struct build {
    sq_model *m;
    int registering;
    int pidx, sidx;
    sq_op *ops;
    int nops, cap_ops;
    sq_tens *t;
    int nt, cap_t;
    size_t arena;
    int64_t flops;
    sq_status *st;
    sq_code rc;
} build;

static size_t round16(size_t n) {
    return (n + ALIGN_F - 1) / ALIGN_F * ALIGN_F;
}

static int failed(build *b) {
    return b->rc != SQ_OK;
}

static void bfail(build *b, sq_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bfail(build *b, sq_code code, const char *fmt, ...) {
    if (failed(b)) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->rc = sq_fail(b->st, code, "model: %s", msg);
}

static int new_tensor(build *b, sq_shape5 s) {
    if (failed(b)) return -1;
    if (b->nt == b->cap_t) {
        int cap = b->cap_t ? 2 * b->cap_t : 256;
        sq_tens *nt = realloc(b->t, (size_t)cap * sizeof *nt);
        if (!nt) {
            bfail(b, SQ_ERR_NOMEM, "out of memory planning tensors");
            return -1;
        }
        b->t = nt;
        b->cap_t = cap;
    }
    size_t numel = (size_t)sq_shape5_numel(s);
    b->t[b->nt].s = s;
    b->t[b->nt].off = b->arena;
    b->arena += round16(numel);
    return b->nt++;
}

static size_t arena_vec(build *b, int c) {
    size_t off = b->arena;
    b->arena += round16((size_t)c);
    return off;
}

static sq_op *new_op(build *b, int kind) {
    if (failed(b)) return NULL;
    if (b->nops == b->cap_ops) {
        int cap = b->cap_ops ? 2 * b->cap_ops : 256;
        sq_op *no = realloc(b->ops, (size_t)cap * sizeof *no);
        if (!no) {
            bfail(b, SQ_ERR_NOMEM, "out of memory planning ops");
            return NULL;
        }
        b->ops = no;
        b->cap_ops = cap;
    }
    sq_op *o = &b->ops[b->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->x = o->x2 = o->y = -1;
    o->w = o->b = o->rm = o->rv = -1;
    return o;
}

/* Register (first walk) or find again (later walks) a named tensor; returns its float offset. */
static long reg(build *b, int is_state, int init, const char *name, int ndim, const int *shape) {
    if (failed(b)) return -1;
    sq_model *m = b->m;
    sq_param_info **arr = is_state ? &m->state : &m->params;
    int *cnt = is_state ? &m->ns : &m->np;
    int *cap = is_state ? &m->cap_s : &m->cap_p;
    size_t *tot = is_state ? &m->sfloats : &m->pfloats;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= shape[i];
    if (b->registering) {
        if (*cnt == *cap) {
            int nc = *cap ? 2 * *cap : 256;
            sq_param_info *na = realloc(*arr, (size_t)nc * sizeof *na);
            if (!na) {
                bfail(b, SQ_ERR_NOMEM, "out of memory registering '%s'", name);
                return -1;
            }
            *arr = na;
            *cap = nc;
            if (!is_state) {
                unsigned char *ni = realloc(m->pinit, (size_t)nc);
                if (!ni) {
                    bfail(b, SQ_ERR_NOMEM, "out of memory registering '%s'", name);
                    return -1;
                }
                m->pinit = ni;
            }
        }
        sq_param_info *p = &(*arr)[*cnt];
        memset(p, 0, sizeof *p);
        if (strlen(name) >= SQ_PARAM_NAME_MAX) {
            bfail(b, SQ_ERR_INTERNAL, "tensor name '%s' too long", name);
            return -1;
        }
        strcpy(p->name, name);
        p->ndim = ndim;
        for (int i = 0; i < ndim; i++)
            p->shape[i] = shape[i];
        p->numel = numel;
        p->off = *tot;
        *tot += round16((size_t)numel);
        if (!is_state) m->pinit[*cnt] = (unsigned char)init;
        (*cnt)++;
        return (long)p->off;
    }
    int *idx = is_state ? &b->sidx : &b->pidx;
    if (*idx >= *cnt || strcmp((*arr)[*idx].name, name) != 0 || (*arr)[*idx].numel != numel) {
        bfail(b, SQ_ERR_INTERNAL, "registry mismatch at '%s'", name);
        return -1;
    }
    return (long)(*arr)[(*idx)++].off;
}

static long reg_param(build *b, int init, const char *name, int ndim, int s0, int s1, int s2,
                      int s3, int s4) {
    int shape[5] = {s0, s1, s2, s3, s4};
    return reg(b, 0, init, name, ndim, shape);
}

static const char *nm(char *buf, const char *prefix, const char *suffix) {
    snprintf(buf, SQ_PARAM_NAME_MAX + 32, "%s.%s", prefix, suffix);
    return buf;
}

static sq_shape5 tshape(build *b, int t) {
    if (t < 0) {
        sq_shape5 z = {0, 0, 0, 0, 0};
        return z;
    }
    return b->t[t].s;
}

/* Dense or depthwise convolution, padding k/2, weight "<name>.weight" (+ "<name>.bias"). */
static int L_conv(build *b, int x, const char *name, int cout, int k, const int stride[3],
                  int depthwise, int bias) {
    if (failed(b)) return -1;
    char buf[SQ_PARAM_NAME_MAX + 32];
    sq_shape5 in = tshape(b, x);
    int cin_g = depthwise ? 1 : in.c;
    if (depthwise) cout = in.c;
    long w = reg_param(b, INIT_HE, nm(buf, name, "weight"), 5, cout, cin_g, k, k, k);
    long bo = bias ? reg_param(b, INIT_ZERO, nm(buf, name, "bias"), 1, cout, 0, 0, 0, 0) : -1;
    sq_op *o = new_op(b, depthwise ? OP_DW : OP_CONV);
    if (!o) return -1;
    o->x = x;
    o->w = w;
    o->b = bo;
    o->conv.in = in;
    o->conv.cout = cout;
    for (int a = 0; a < 3; a++) {
        o->conv.k[a] = k;
        o->conv.stride[a] = stride ? stride[a] : 1;
        o->conv.pad[a] = k / 2;
    }
    sq_shape5 out = sq_conv3d_out(&o->conv);
    o->y = new_tensor(b, out);
    b->flops += 2 * (sq_shape5_numel(out) / in.n) * (int64_t)cin_g * k * k * k;
    return o->y;
}

static int L_bn(build *b, int x, const char *name, sq_act act, int residual) {
    if (failed(b)) return -1;
    char buf[SQ_PARAM_NAME_MAX + 32];
    sq_shape5 s = tshape(b, x);
    int c = s.c;
    long g = reg_param(b, INIT_ONE, nm(buf, name, "weight"), 1, c, 0, 0, 0, 0);
    long be = reg_param(b, INIT_ZERO, nm(buf, name, "bias"), 1, c, 0, 0, 0, 0);
    int shape[1] = {c};
    long rm = reg(b, 1, INIT_ZERO, nm(buf, name, "running_mean"), 1, shape);
    long rv = reg(b, 1, INIT_ONE, nm(buf, name, "running_var"), 1, shape);
    sq_op *o = new_op(b, OP_BN);
    if (!o) return -1;
    o->x = x;
    o->x2 = residual;
    o->w = g;
    o->b = be;
    o->rm = rm;
    o->rv = rv;
    o->bn.shape = s;
    o->bn.eps = BN_EPS;
    o->bn.momentum = (float)b->m->cfg.bn_momentum;
    o->bn.training = 1;
    o->bn.act = act;
    o->sm = arena_vec(b, c);
    o->si = arena_vec(b, c);
    o->y = new_tensor(b, s);
    return o->y;
}

static int L_act(build *b, int x, sq_act act) {
    sq_op *o = new_op(b, OP_ACT);
    if (!o) return -1;
    o->x = x;
    o->act = act;
    o->s = tshape(b, x);
    o->y = new_tensor(b, o->s);
    return o->y;
}

static int L_gap(build *b, int x) {
    sq_op *o = new_op(b, OP_GAP);
    if (!o) return -1;
    o->x = x;
    o->s = tshape(b, x);
    sq_shape5 y = {o->s.n, o->s.c, 1, 1, 1};
    o->y = new_tensor(b, y);
    return o->y;
}

static int L_chscale(build *b, int x, int scale) {
    sq_op *o = new_op(b, OP_CHSCALE);
    if (!o) return -1;
    o->x = x;
    o->x2 = scale;
    o->s = tshape(b, x);
    o->y = new_tensor(b, o->s);
    return o->y;
}

/* Max-pool, kernel 3, padding 1, the given per-axis strides (output = ceil(in / stride)). */
static int L_pool(build *b, int x, const int stride[3]) {
    sq_op *o = new_op(b, OP_POOL);
    if (!o) return -1;
    o->x = x;
    o->pool.in = tshape(b, x);
    for (int a = 0; a < 3; a++) {
        o->pool.k[a] = 3;
        o->pool.stride[a] = stride[a];
        o->pool.pad[a] = 1;
    }
    o->pool.ceil_mode = 0;
    o->y = new_tensor(b, sq_pool3d_out(&o->pool));
    return o->y;
}

static int L_resize(build *b, int x, int like) {
    sq_op *o = new_op(b, OP_RESIZE);
    if (!o) return -1;
    sq_shape5 t = tshape(b, like), s = tshape(b, x);
    o->x = x;
    o->rs.in = s;
    o->rs.out[0] = t.d;
    o->rs.out[1] = t.h;
    o->rs.out[2] = t.w;
    sq_shape5 y = {s.n, s.c, t.d, t.h, t.w};
    o->y = new_tensor(b, y);
    return o->y;
}

static int L_fuse(build *b, const char *wname, int k, const int *xs) {
    if (failed(b)) return -1;
    long w = reg_param(b, INIT_ONE, wname, 1, k, 0, 0, 0, 0);
    sq_op *o = new_op(b, OP_FUSE);
    if (!o) return -1;
    o->k = k;
    o->s = tshape(b, xs[0]);
    for (int i = 0; i < k; i++) {
        sq_shape5 si = tshape(b, xs[i]);
        if (memcmp(&si, &o->s, sizeof si) != 0) {
            bfail(b, SQ_ERR_INTERNAL, "fusion '%s': input %d shape differs", wname, i);
            return -1;
        }
        o->xs[i] = xs[i];
    }
    o->w = w;
    o->y = new_tensor(b, o->s);
    return o->y;
}

static int L_prelu(build *b, int x, const char *name) {
    if (failed(b)) return -1;
    char buf[SQ_PARAM_NAME_MAX + 32];
    sq_shape5 s = tshape(b, x);
    long a = reg_param(b, INIT_PRELU, nm(buf, name, "weight"), 1, s.c, 0, 0, 0, 0);
    sq_op *o = new_op(b, OP_PRELU);
    if (!o) return -1;
    o->x = x;
    o->w = a;
    o->s = s;
    o->y = new_tensor(b, s);
    return o->y;
}

/* The channel scale and the 1x1x1 projection after it: one op (a scaled convolution, no scaled
 * tensor kept) where the backend has the fusion, else a CHSCALE then a CONV. */
static int L_scaled_project(build *b, int x, int scale, const char *name, int cout) {
    const sq_backend *be = b->m->be;
    if (!be || !be->conv1x1_scaled_fwd || !be->conv1x1_scaled_bwd)
        return L_conv(b, L_chscale(b, x, scale), name, cout, 1, NULL, 0, 0);
    const int y = L_conv(b, x, name, cout, 1, NULL, 0, 0);
    if (y >= 0) b->ops[b->nops - 1].x2 = scale;
    return y;
}

/* MBConv: [expand 1x1 + BN + swish] → depthwise k + BN + swish → SE → project 1x1 + BN (+ x). */
static int mbconv(build *b, int x, const char *p, int cout, int expand, int k, const int stride[3],
                  double se_ratio) {
    char n1[SQ_PARAM_NAME_MAX + 32];
    sq_shape5 in = tshape(b, x);
    int h = x;
    if (expand != 1) {
        h = L_conv(b, h, nm(n1, p, "expand"), in.c * expand, 1, NULL, 0, 0);
        h = L_bn(b, h, nm(n1, p, "expand_bn"), SQ_ACT_SWISH, -1);
    }
    h = L_conv(b, h, nm(n1, p, "dw"), 0, k, stride, 1, 0);
    h = L_bn(b, h, nm(n1, p, "dw_bn"), SQ_ACT_SWISH, -1);
    int sq = (int)(in.c * se_ratio);
    if (sq < 1) sq = 1;
    int mid = tshape(b, h).c;
    int s = L_gap(b, h);
    s = L_conv(b, s, nm(n1, p, "se.reduce"), sq, 1, NULL, 0, 1);
    s = L_act(b, s, SQ_ACT_SWISH);
    s = L_conv(b, s, nm(n1, p, "se.expand"), mid, 1, NULL, 0, 1);
    s = L_act(b, s, SQ_ACT_SIGMOID);
    h = L_scaled_project(b, h, s, nm(n1, p, "project"), cout);
    int residual = (in.c == cout && stride[0] == 1 && stride[1] == 1 && stride[2] == 1) ? x : -1;
    return L_bn(b, h, nm(n1, p, "project_bn"), SQ_ACT_NONE, residual);
}

static int conv_bn(build *b, int x, const char *p, int cout, int k, const int stride[3],
                   sq_act act) {
    char n1[SQ_PARAM_NAME_MAX + 32];
    x = L_conv(b, x, nm(n1, p, "conv"), cout, k, stride, 0, 0);
    return L_bn(b, x, nm(n1, p, "bn"), act, -1);
}

/* BiFPN node: fast normalised fusion → depthwise 3x3x3 → pointwise 1x1x1 → BN → swish. */
static int node(build *b, const char *p, int k, const int *xs) {
    char n1[SQ_PARAM_NAME_MAX + 32];
    int c = tshape(b, xs[0]).c;
    int h = L_fuse(b, nm(n1, p, "w"), k, xs);
    h = L_conv(b, h, nm(n1, p, "dw"), 0, 3, NULL, 1, 0);
    h = L_conv(b, h, nm(n1, p, "pw"), c, 1, NULL, 0, 0);
    return L_bn(b, h, nm(n1, p, "bn"), SQ_ACT_SWISH, -1);
}

typedef struct stage_def {
    int expand, k, stride2, cout, reps;
} stage_def;

static const stage_def k_b0[7] = {{1, 3, 0, 16, 1}, {0, 3, 1, 24, 2},  {0, 5, 1, 40, 2},
                                  {0, 3, 1, 80, 3}, {0, 5, 0, 112, 3}, {0, 5, 1, 192, 4},
                                  {0, 3, 0, 320, 1}};

static void build_net(build *b, int n) {
    const sq_model_config *c = &b->m->cfg;
    int dhw[3] = {c->depth, c->height, c->width};
    int strides[SQ_MODEL_STEPS][3], sizes[SQ_MODEL_STEPS][3];
    sq_model_stride_plan(c, dhw, strides, sizes);
    static const int one[3] = {1, 1, 1};
    sq_shape5 xin = {n, c->in_channels, c->depth, c->height, c->width};
    b->m->in_t = new_tensor(b, xin);
    int x = conv_bn(b, b->m->in_t, "backbone.stem", c->stem_channels, 3, strides[0], SQ_ACT_SWISH);
    int step = 1, feats[3], nf = 0;
    char p[SQ_PARAM_NAME_MAX];
    for (int si = 0; si < 7; si++) {
        const stage_def *sd = &k_b0[si];
        for (int bi = 0; bi < sd->reps; bi++) {
            const int *stride = one;
            if (bi == 0 && sd->stride2) stride = strides[step++];
            snprintf(p, sizeof p, "backbone.s%d.b%d", si + 1, bi + 1);
            x = mbconv(b, x, p, sd->cout, sd->expand ? sd->expand : c->expansion, sd->k, stride,
                       c->se_ratio);
        }
        if (si == 2 || si == 4 || si == 6) feats[nf++] = x;
    }
    const int *down[4] = {strides[3], strides[4], strides[5], strides[6]};
    int C = c->fpn_channels;
    int lv[5];
    lv[0] = conv_bn(b, feats[0], "fpn.lateral.p3", C, 1, NULL, SQ_ACT_NONE);
    lv[1] = conv_bn(b, feats[1], "fpn.lateral.p4", C, 1, NULL, SQ_ACT_NONE);
    lv[2] = conv_bn(b, feats[2], "fpn.lateral.p5", C, 1, NULL, SQ_ACT_NONE);
    int p6 = conv_bn(b, feats[2], "fpn.lateral.p6", C, 1, NULL, SQ_ACT_NONE);
    lv[3] = L_pool(b, p6, down[2]);
    lv[4] = L_pool(b, lv[3], down[3]);
    for (int r = 0; r < c->fpn_repeats; r++) {
        char q[SQ_PARAM_NAME_MAX], nn[SQ_PARAM_NAME_MAX + 40];
        snprintf(q, sizeof q, "fpn.cell%d", r + 1);
        int td[5], out[5], xs[3];
        xs[0] = lv[3], xs[1] = L_resize(b, lv[4], lv[3]);
        td[3] = node(b, nm(nn, q, "p6_td"), 2, xs);
        xs[0] = lv[2], xs[1] = L_resize(b, td[3], lv[2]);
        td[2] = node(b, nm(nn, q, "p5_td"), 2, xs);
        xs[0] = lv[1], xs[1] = L_resize(b, td[2], lv[1]);
        td[1] = node(b, nm(nn, q, "p4_td"), 2, xs);
        xs[0] = lv[0], xs[1] = L_resize(b, td[1], lv[0]);
        out[0] = node(b, nm(nn, q, "p3_out"), 2, xs);
        xs[0] = lv[1], xs[1] = td[1], xs[2] = L_pool(b, out[0], down[0]);
        out[1] = node(b, nm(nn, q, "p4_out"), 3, xs);
        xs[0] = lv[2], xs[1] = td[2], xs[2] = L_pool(b, out[1], down[1]);
        out[2] = node(b, nm(nn, q, "p5_out"), 3, xs);
        xs[0] = lv[3], xs[1] = td[3], xs[2] = L_pool(b, out[2], down[2]);
        out[3] = node(b, nm(nn, q, "p6_out"), 3, xs);
        xs[0] = lv[4], xs[1] = L_pool(b, out[3], down[3]);
        out[4] = node(b, nm(nn, q, "p7_out"), 2, xs);
        memcpy(lv, out, sizeof lv);
    }
    int h = lv[0];
    static const char *hn[4] = {"head.fuse.p4.w", "head.fuse.p5.w", "head.fuse.p6.w",
                                "head.fuse.p7.w"};
    for (int l = 0; l < 4; l++) {
        int xs[2] = {lv[l + 1], L_pool(b, h, down[l])};
        h = L_fuse(b, hn[l], 2, xs);
    }
    h = L_bn(b, h, "head.bn", SQ_ACT_NONE, -1);
    h = L_prelu(b, h, "head.prelu");
    h = L_conv(b, h, "head.conv", 1, 1, NULL, 0, 1);
    h = L_gap(b, h);
    b->m->out_t = L_act(b, h, SQ_ACT_SIGMOID);
    sq_shape5 ts = {n, 1, 1, 1, 1};
    b->m->target_t = new_tensor(b, ts);
    sq_shape5 ls = {1, 1, 1, 1, 1};
    b->m->loss_t = new_tensor(b, ls);
}

/* ---- lifetime, registry ------------------------------------------------------------------------
 */

static void free_plan(sq_model *m) {
    if (m->be) {
        m->be->buf_free(m->be, m->abuf);
        m->be->buf_free(m->be, m->gabuf);
    }
    m->abuf = m->gabuf = NULL;
    free(m->ops);
    free(m->t);
    free(m->ready);
    free(m->op_fwd_ms);
    free(m->op_bwd_ms);
    free(m->gready);
    m->gready = NULL;
    m->op_fwd_ms = m->op_bwd_ms = NULL;
    m->ops = NULL;
    m->t = NULL;
    m->ready = NULL;
    m->nops = m->nt = 0;
    m->plan_n = 0;
    m->loss_done = 0;
}

void sq_model_destroy(sq_model *m) {
    if (!m) return;
    free_plan(m);
    if (m->be) {
        m->be->buf_free(m->be, m->pbuf);
        m->be->buf_free(m->be, m->gbuf);
        m->be->buf_free(m->be, m->sbuf);
    }
    free(m->params);
    free(m->state);
    free(m->pinit);
    free(m);
}

sq_code sq_model_create(const sq_model_config *c, sq_backend *be, sq_model **out, sq_status *st) {
    *out = NULL;
    SQ_TRY(sq_model_config_check(c, st));
    sq_model *m = calloc(1, sizeof *m);
    if (!m) return sq_fail(st, SQ_ERR_NOMEM, "model: out of memory");
    m->cfg = *c;
    m->be = be;
    m->training = 1;
    build b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.registering = 1;
    b.st = st;
    build_net(&b, 1);
    free(b.ops);
    free(b.t);
    if (b.rc != SQ_OK) {
        sq_model_destroy(m);
        return b.rc;
    }
    sq_code rc = SQ_OK;
    if (be) {
        size_t pb = (m->pfloats ? m->pfloats : 1) * sizeof(float);
        size_t sb = (m->sfloats ? m->sfloats : 1) * sizeof(float);
        rc = be->buf_alloc(be, pb, &m->pbuf, st);
        if (rc == SQ_OK) rc = be->buf_alloc(be, pb, &m->gbuf, st);
        if (rc == SQ_OK) rc = be->buf_alloc(be, sb, &m->sbuf, st);
        if (rc == SQ_OK) rc = sq_model_init(m, 0, st);
    }
    if (rc != SQ_OK) {
        sq_model_destroy(m);
        return sq_context(st, "model");
    }
    *out = m;
    return SQ_OK;
}

const sq_model_config *sq_model_get_config(const sq_model *m) {
    return &m->cfg;
}
sq_backend *sq_model_backend(const sq_model *m) {
    return m->be;
}
int sq_model_nparams(const sq_model *m) {
    return m->np;
}
const sq_param_info *sq_model_param(const sq_model *m, int i) {
    return i >= 0 && i < m->np ? &m->params[i] : NULL;
}
int sq_model_nstate(const sq_model *m) {
    return m->ns;
}
const sq_param_info *sq_model_state(const sq_model *m, int i) {
    return i >= 0 && i < m->ns ? &m->state[i] : NULL;
}
int sq_model_find(const sq_model *m, int kind, const char *name) {
    const sq_param_info *a = kind ? m->state : m->params;
    int n = kind ? m->ns : m->np;
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i].name, name)) return i;
    return -1;
}
size_t sq_model_params_floats(const sq_model *m) {
    return m->pfloats;
}
size_t sq_model_state_floats(const sq_model *m) {
    return m->sfloats;
}
int64_t sq_model_param_count(const sq_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->np; i++)
        n += m->params[i].numel;
    return n;
}
sq_buf *sq_model_params_buf(const sq_model *m) {
    return m->pbuf;
}
sq_buf *sq_model_grads_buf(const sq_model *m) {
    return m->gbuf;
}
sq_buf *sq_model_state_buf(const sq_model *m) {
    return m->sbuf;
}
long sq_model_plans_built(const sq_model *m) {
    return m->plans_built;
}

/* Scratch slot k's offset in the gradient arena, and the arena's end. */
static size_t scratch_off(const sq_model *m, int k) {
    size_t off = m->garena_floats;
    for (int j = 0; j < k; j++)
        off += m->slot_len[j];
    return off;
}
static size_t scratch_end(const sq_model *m) {
    return scratch_off(m, 3);
}

size_t sq_model_arena_bytes(const sq_model *m) {
    return (m->arena_floats + (m->plan_grad ? scratch_end(m) : 0)) * sizeof(float);
}

sq_code sq_model_flops(const sq_model_config *c, int64_t *flops, sq_status *st) {
    SQ_TRY(sq_model_config_check(c, st));
    sq_model m;
    memset(&m, 0, sizeof m);
    m.cfg = *c;
    build b;
    memset(&b, 0, sizeof b);
    b.m = &m;
    b.registering = 1;
    b.st = st;
    build_net(&b, 1);
    free(b.ops);
    free(b.t);
    free(m.params);
    free(m.state);
    free(m.pinit);
    *flops = b.flops;
    return b.rc;
}

sq_code sq_model_init(sq_model *m, uint64_t seed, sq_status *st) {
    float *p = calloc(m->pfloats ? m->pfloats : 1, sizeof *p);
    float *s = calloc(m->sfloats ? m->sfloats : 1, sizeof *s);
    if (!p || !s) {
        free(p);
        free(s);
        return sq_fail(st, SQ_ERR_NOMEM, "model init: out of memory");
    }
    for (int i = 0; i < m->np; i++) {
        const sq_param_info *pi = &m->params[i];
        float *dst = p + pi->off;
        sq_rng r;
        sq_rng_init(&r, seed, 0x5e9au, (uint32_t)i); /* one stream per tensor: order-stable */
        switch (m->pinit[i]) {
        case INIT_HE: {
            if (!strcmp(pi->name, "head.conv.weight")) { /* the regressor: start near sigmoid(0) */
                for (int64_t j = 0; j < pi->numel; j++)
                    dst[j] = 0.01f * sq_rng_normal(&r);
                break;
            }
            /* fan_out = cout/groups * k^3 as EfficientNet; weight (cout, cin/g, k, k, k) */
            int64_t kvol = (int64_t)pi->shape[2] * pi->shape[3] * pi->shape[4];
            int64_t fan_out =
                pi->shape[1] == 1 && pi->shape[0] > 1 && strstr(pi->name, ".dw.") != NULL
                    ? kvol
                    : (int64_t)pi->shape[0] * kvol;
            float sd = sqrtf(2.0f / (float)fan_out);
            for (int64_t j = 0; j < pi->numel; j++)
                dst[j] = sd * sq_rng_normal(&r);
            break;
        }
        case INIT_ONE:
            for (int64_t j = 0; j < pi->numel; j++)
                dst[j] = 1.0f;
            break;
        case INIT_PRELU:
            for (int64_t j = 0; j < pi->numel; j++)
                dst[j] = 0.25f;
            break;
        default: break;
        }
    }
    for (int i = 0; i < m->ns; i++) {
        const sq_param_info *si = &m->state[i];
        float v = strstr(si->name, "running_var") ? 1.0f : 0.0f;
        for (int64_t j = 0; j < si->numel; j++)
            s[si->off + j] = v;
    }
    sq_code rc = sq_model_set_params(m, p, st);
    if (rc == SQ_OK) rc = sq_model_set_state(m, s, st);
    free(p);
    free(s);
    return rc;
}

sq_code sq_model_get_params(const sq_model *m, float *dst, sq_status *st) {
    return m->be->download(m->be, dst, m->pbuf, 0, m->pfloats * sizeof(float), st);
}
sq_code sq_model_set_params(sq_model *m, const float *src, sq_status *st) {
    SQ_TRY(m->be->upload(m->be, m->pbuf, 0, src, m->pfloats * sizeof(float), st));
    return m->be->sync(m->be, st);
}
sq_code sq_model_get_grads(const sq_model *m, float *dst, sq_status *st) {
    return m->be->download(m->be, dst, m->gbuf, 0, m->pfloats * sizeof(float), st);
}
sq_code sq_model_get_state(const sq_model *m, float *dst, sq_status *st) {
    return m->be->download(m->be, dst, m->sbuf, 0, m->sfloats * sizeof(float), st);
}
sq_code sq_model_set_state(sq_model *m, const float *src, sq_status *st) {
    SQ_TRY(m->be->upload(m->be, m->sbuf, 0, src, m->sfloats * sizeof(float), st));
    return m->be->sync(m->be, st);
}

/* ---- planning -------------------------------------------------------------------------------- */

/* End (floats) of the parameter starting at offset `off`; 0 for none (-1). */
static size_t param_end(const sq_model *m, long off) {
    if (off < 0) return 0;
    for (int i = 0; i < m->np; i++)
        if (m->params[i].off == (size_t)off) return m->params[i].off + (size_t)m->params[i].numel;
    return m->pfloats; /* not a parameter start: be conservative, nothing above is final */
}

static int64_t numel_of(const sq_model *m, int t) {
    return sq_shape5_numel(m->t[t].s);
}

/* Backward lifetime of each tensor's gradient, in backward steps (op i runs at step nops-1-i, the
 * loss gradient at -1): from the step of its last reader (first written there) to the step of its
 * producer (last read there as dy), both inclusive. Tensors no op reads get an empty lifetime. */
static void grad_lifetimes(const sq_model *m, int *first, int *last) {
    for (int t = 0; t < m->nt; t++)
        first[t] = INT_MAX, last[t] = INT_MIN;
    for (int i = 0; i < m->nops; i++) {
        const sq_op *o = &m->ops[i];
        const int step = m->nops - 1 - i;
        int reads[5] = {o->x, o->x2, -1, -1, -1}, nr = 2;
        if (o->kind == OP_FUSE)
            for (int k = 0; k < o->k; k++)
                reads[nr++] = o->xs[k];
        for (int k = 0; k < nr; k++)
            if (reads[k] >= 0 && step < first[reads[k]]) first[reads[k]] = step;
        if (o->y >= 0 && step > last[o->y]) last[o->y] = step;
    }
    first[m->out_t] = -1; /* the loss gradient */
    if (last[m->out_t] < -1) last[m->out_t] = -1;
}

/* Offsets in the gradient arena: tensors by decreasing size, each at the lowest offset that
 * overlaps no placed tensor live at the same time (first fit). Returns the arena's floats. */
static size_t plan_gradients(sq_model *m, sq_status *st) {
    const int nt = m->nt;
    int *first = malloc((size_t)nt * sizeof(int)), *last = malloc((size_t)nt * sizeof(int)),
        *order = malloc((size_t)nt * sizeof(int)), *placed = malloc((size_t)nt * sizeof(int));
    size_t top = 0;
    if (!first || !last || !order || !placed) {
        sq_fail(st, SQ_ERR_NOMEM, "model plan: out of memory");
        top = SIZE_MAX;
    } else {
        grad_lifetimes(m, first, last);
        int n = 0;
        for (int t = 0; t < nt; t++)
            if (first[t] <= last[t]) order[n++] = t;
        for (int a = 1; a < n; a++) { /* insertion sort by size, larger first; stable */
            const int t = order[a];
            int b = a;
            while (b > 0 && numel_of(m, order[b - 1]) < numel_of(m, t)) {
                order[b] = order[b - 1];
                b--;
            }
            order[b] = t;
        }
        int np = 0;
        for (int a = 0; a < n; a++) {
            const int t = order[a];
            const size_t len = round16((size_t)numel_of(m, t));
            size_t off = 0;
            for (int moved = 1; moved;) { /* raise off past every live, overlapping block */
                moved = 0;
                for (int k = 0; k < np; k++) {
                    const int u = placed[k];
                    const size_t ulen = round16((size_t)numel_of(m, u));
                    if (first[u] > last[t] || first[t] > last[u]) continue;
                    if (off < m->t[u].goff + ulen && m->t[u].goff < off + len) {
                        off = m->t[u].goff + ulen;
                        moved = 1;
                    }
                }
            }
            m->t[t].goff = off;
            placed[np++] = t;
            if (off + len > top) top = off + len;
        }
    }
    free(first), free(last), free(order), free(placed);
    return top;
}

/* The gradients op o writes, with the scratch slot each takes when it is not the first writer
 * (back_op's dst_for calls); slot -1: accumulated without a slot (a BN residual, or a GAP input
 * where the backend has gap_bwd_add). Returns the count. */
static int grad_writes(const sq_model *m, const sq_op *o, int *t, int *slot) {
    int n = 0;
    if (o->kind == OP_FUSE) {
        for (int i = 0; i < o->k; i++)
            t[n] = o->xs[i], slot[n++] = i;
        return n;
    }
    t[n] = o->x, slot[n++] = (o->kind == OP_GAP && m->be->gap_bwd_add) ? -1 : 0;
    if (o->x2 >= 0) t[n] = o->x2, slot[n++] = o->kind == OP_BN ? -1 : 1;
    return n;
}

/* Scratch slot sizes: run the backward's order of gradient writes; a write to a gradient already
 * written goes through its slot, which must hold that tensor. */
static void plan_scratch(sq_model *m) {
    memset(m->ready, 0, (size_t)m->nt);
    memset(m->slot_len, 0, sizeof m->slot_len);
    for (int i = m->nops - 1; i >= 0; i--) {
        int t[8], slot[8];
        const int n = grad_writes(m, &m->ops[i], t, slot);
        for (int k = 0; k < n; k++) {
            if (t[k] < 0 || t[k] == m->in_t || !m->ready[t[k]] || slot[k] < 0) continue;
            const size_t len = round16((size_t)numel_of(m, t[k]));
            if (len > m->slot_len[slot[k]]) m->slot_len[slot[k]] = len;
        }
        for (int k = 0; k < n; k++)
            if (t[k] >= 0) m->ready[t[k]] = 1;
    }
    memset(m->ready, 0, (size_t)m->nt);
}

sq_code sq_model_plan(sq_model *m, int n, int need_grad, sq_status *st) {
    if (n < 1) return sq_fail(st, SQ_ERR_RANGE, "model plan: batch %d < 1", n);
    if (m->plan_n == n && m->plan_grad == need_grad) return SQ_OK;
    free_plan(m);
    build b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.st = st;
    build_net(&b, n);
    if (b.rc == SQ_OK && (b.pidx != m->np || b.sidx != m->ns))
        b.rc = sq_fail(st, SQ_ERR_INTERNAL, "model plan: registry walk incomplete");
    if (b.rc != SQ_OK) {
        free(b.ops);
        free(b.t);
        return b.rc;
    }
    m->plans_built++;
    m->ops = b.ops;
    m->nops = b.nops;
    m->t = b.t;
    m->nt = b.nt;
    m->arena_floats = b.arena;
    m->ready = calloc((size_t)b.nt, 1);
    m->op_fwd_ms = calloc((size_t)b.nops + 1, sizeof(double));
    m->op_bwd_ms = calloc((size_t)b.nops + 1, sizeof(double));
    m->gready = calloc((size_t)b.nops + 1, sizeof(size_t));
    if (m->gready) { /* prefix maximum of the parameter ends of ops 0..i-1 */
        size_t hi = 0;
        for (int i = 0; i < m->nops; i++) {
            m->gready[i] = hi;
            const long offs[2] = {m->ops[i].w, m->ops[i].b};
            for (int k = 0; k < 2; k++) {
                const size_t e = param_end(m, offs[k]);
                if (e > hi) hi = e;
            }
        }
    }
    if (!m->ready || !m->op_fwd_ms || !m->op_bwd_ms || !m->gready) {
        free_plan(m);
        return sq_fail(st, SQ_ERR_NOMEM, "model plan: out of memory");
    }
    m->garena_floats = need_grad ? plan_gradients(m, st) : 0;
    if (need_grad && m->garena_floats != SIZE_MAX) plan_scratch(m);
    if (m->garena_floats == SIZE_MAX) {
        free_plan(m);
        return st->code;
    }
    sq_code rc = m->be->buf_alloc(m->be, m->arena_floats * sizeof(float), &m->abuf, st);
    if (rc == SQ_OK && need_grad) /* gradient arena + 3 scratch slots for accumulation */
        rc = m->be->buf_alloc(m->be, scratch_end(m) * sizeof(float), &m->gabuf, st);
    if (rc != SQ_OK) {
        free_plan(m);
        return sq_context(st, "model plan (batch %d, %zu MiB of activations)", n,
                          m->arena_floats * sizeof(float) >> 20);
    }
    m->plan_n = n;
    m->plan_grad = need_grad;
    return SQ_OK;
}

void sq_model_set_training(sq_model *m, int training) {
    m->training = training ? 1 : 0;
}

void sq_model_set_bn_sync(sq_model *m, const sq_bn_sync *sync) {
    m->bn_sync = sync;
}

void sq_model_set_grad_hook(sq_model *m, sq_grad_hook_fn fn, void *ctx) {
    m->grad_hook = fn;
    m->grad_hook_ctx = ctx;
}

/* ---- forward ----------------------------------------------------------------------------------
 */

static sq_view A(const sq_model *m, int t) {
    return sq_view_of(m->abuf, m->t[t].off);
}
static sq_view G(const sq_model *m, int t) {
    return sq_view_of(m->gabuf, m->t[t].goff);
}
static sq_view P(const sq_model *m, long off) {
    return off < 0 ? sq_view_none() : sq_view_of(m->pbuf, (size_t)off);
}
static sq_view PG(const sq_model *m, long off) {
    return off < 0 ? sq_view_none() : sq_view_of(m->gbuf, (size_t)off);
}
static sq_view S(const sq_model *m, long off) {
    return sq_view_of(m->sbuf, (size_t)off);
}
static int64_t numel_t(const sq_model *m, int t) {
    return sq_shape5_numel(m->t[t].s);
}

static sq_code run_op(sq_model *m, sq_op *o, sq_status *st) {
    sq_backend *be = m->be;
    switch (o->kind) {
    case OP_CONV:
        if (o->x2 >= 0)
            return be->conv1x1_scaled_fwd(be, &o->conv, A(m, o->x), A(m, o->x2), P(m, o->w),
                                          P(m, o->b), A(m, o->y), st);
        return be->conv3d_fwd(be, &o->conv, A(m, o->x), P(m, o->w), P(m, o->b), A(m, o->y), st);
    case OP_DW:
        return be->dwconv3d_fwd(be, &o->conv, A(m, o->x), P(m, o->w), P(m, o->b), A(m, o->y), st);
    case OP_BN:
        o->bn.training = m->training;
        o->bn.sync = m->training ? m->bn_sync : NULL;
        return be->bn_fwd(be, &o->bn, A(m, o->x), P(m, o->w), P(m, o->b), S(m, o->rm), S(m, o->rv),
                          o->x2 >= 0 ? A(m, o->x2) : sq_view_none(), A(m, o->y),
                          sq_view_of(m->abuf, o->sm), sq_view_of(m->abuf, o->si), st);
    case OP_ACT: return be->act_fwd(be, o->act, numel_t(m, o->x), A(m, o->x), A(m, o->y), st);
    case OP_GAP: return be->gap_fwd(be, o->s, A(m, o->x), A(m, o->y), st);
    case OP_CHSCALE: return be->chscale_fwd(be, o->s, A(m, o->x), A(m, o->x2), A(m, o->y), st);
    case OP_POOL: return be->maxpool3d_fwd(be, &o->pool, A(m, o->x), A(m, o->y), st);
    case OP_RESIZE: return be->resize3d_fwd(be, &o->rs, A(m, o->x), A(m, o->y), st);
    case OP_FUSE: {
        sq_view xs[3];
        for (int i = 0; i < o->k; i++)
            xs[i] = A(m, o->xs[i]);
        return be->fuse_fwd(be, o->s, o->k, xs, P(m, o->w), A(m, o->y), st);
    }
    case OP_PRELU: return be->prelu_fwd(be, o->s, A(m, o->x), P(m, o->w), A(m, o->y), st);
    }
    return sq_fail(st, SQ_ERR_INTERNAL, "model: unknown op kind %d", o->kind);
}

/* Channel 0 of every input sample *= image_scale, in place on the backend (x[:, 0] * s in float,
 * as the PyTorch reference), so the input crosses to the device once and unchanged. */
static sq_code scale_image_channel(sq_model *m, sq_status *st) {
    if (m->cfg.image_scale == 1.0) return SQ_OK;
    const size_t vox = (size_t)m->cfg.depth * m->cfg.height * m->cfg.width;
    const size_t per = (size_t)m->cfg.in_channels * vox;
    for (int i = 0; i < m->plan_n; i++) {
        const sq_view ch0 = sq_view_of(m->abuf, m->t[m->in_t].off + (size_t)i * per);
        SQ_TRY(m->be->scale(m->be, (int64_t)vox, (float)m->cfg.image_scale, ch0, ch0, st));
    }
    return SQ_OK;
}

sq_view sq_model_input(const sq_model *m) {
    return m->plan_n ? sq_view_of(m->abuf, m->t[m->in_t].off) : sq_view_none();
}

sq_code sq_model_forward(sq_model *m, const float *x, float *y, sq_status *st) {
    if (!m->plan_n) return sq_fail(st, SQ_ERR_INTERNAL, "model forward: no plan (sq_model_plan)");
    sq_backend *be = m->be;
    m->loss_done = 0;
    const size_t in_n = (size_t)numel_t(m, m->in_t);
    if (x)
        SQ_TRY(be->upload(be, m->abuf, m->t[m->in_t].off * sizeof(float), x, in_n * sizeof(float),
                          st));
    SQ_TRY(scale_image_channel(m, st));
    for (int i = 0; i < m->nops; i++) {
        double t0 = m->profile ? sq_now() : 0;
        sq_code rc = run_op(m, &m->ops[i], st);
        if (rc != SQ_OK) return sq_context(st, "model forward, op %d of %d", i, m->nops);
        if (m->profile) {
            SQ_TRY(be->sync(be, st));
            m->op_fwd_ms[i] += (sq_now() - t0) * 1e3;
        }
    }
    if (y)
        SQ_TRY(be->download(be, y, m->abuf, m->t[m->out_t].off * sizeof(float),
                            (size_t)m->plan_n * sizeof(float), st));
    return SQ_OK;
}

sq_code sq_model_loss(sq_model *m, const float *target, float *loss, sq_status *st) {
    sq_backend *be = m->be;
    SQ_TRY(be->upload(be, m->abuf, m->t[m->target_t].off * sizeof(float), target,
                      (size_t)m->plan_n * sizeof(float), st));
    SQ_TRY(be->mse_fwd(be, m->plan_n, A(m, m->out_t), A(m, m->target_t), A(m, m->loss_t), st));
    m->loss_done = 1;
    if (loss)
        SQ_TRY(be->download(be, loss, m->abuf, m->t[m->loss_t].off * sizeof(float), sizeof(float),
                            st));
    return SQ_OK;
}

/* ---- backward ----------------------------------------------------------------------------------
 */

typedef struct gdst {
    int t;       /* tensor, -1 none */
    int scratch; /* 1: written into a scratch slot, to be added */
    sq_view v;
} gdst;

/* Where to write the gradient of tensor t (slot = which scratch slot if accumulation needed). */
static gdst dst_for(sq_model *m, int t, int slot) {
    gdst d = {t, 0, sq_view_none()};
    if (t < 0 || t == m->in_t) {
        d.t = -1;
        return d;
    }
    if (!m->ready[t]) {
        d.v = G(m, t);
    } else {
        d.scratch = 1;
        d.v = sq_view_of(m->gabuf, scratch_off(m, slot));
    }
    return d;
}

static sq_code commit(sq_model *m, gdst d, sq_status *st) {
    if (d.t < 0) return SQ_OK;
    if (d.scratch) SQ_TRY(m->be->add(m->be, numel_t(m, d.t), G(m, d.t), d.v, G(m, d.t), st));
    m->ready[d.t] = 1;
    return SQ_OK;
}

/* Dense convolution, or the scaled 1x1x1 projection (x2: the channel scale, its gradient too). */
static sq_code back_conv(sq_model *m, sq_op *o, sq_view dy, gdst d0, sq_status *st) {
    sq_backend *be = m->be;
    if (o->x2 < 0) {
        SQ_TRY(be->conv3d_bwd(be, &o->conv, A(m, o->x), P(m, o->w), dy, d0.v, PG(m, o->w),
                              PG(m, o->b), st));
        return commit(m, d0, st);
    }
    gdst d1 = dst_for(m, o->x2, 1);
    SQ_TRY(be->conv1x1_scaled_bwd(be, &o->conv, A(m, o->x), A(m, o->x2), P(m, o->w), dy, d0.v, d1.v,
                                  PG(m, o->w), PG(m, o->b), st));
    SQ_TRY(commit(m, d0, st));
    return commit(m, d1, st);
}

/* BN (+ activation) and its residual input, whose gradient is dy itself. */
static sq_code back_bn(sq_model *m, sq_op *o, sq_view dy, gdst d0, sq_status *st) {
    sq_backend *be = m->be;
    o->bn.training = m->training;
    o->bn.sync = m->training ? m->bn_sync : NULL;
    SQ_TRY(be->bn_bwd(be, &o->bn, A(m, o->x), P(m, o->w), P(m, o->b), sq_view_of(m->abuf, o->sm),
                      sq_view_of(m->abuf, o->si), dy, d0.v, PG(m, o->w), PG(m, o->b), st));
    SQ_TRY(commit(m, d0, st));
    const int r = o->x2;
    if (r < 0 || r == m->in_t) return SQ_OK;
    if (!m->ready[r])
        SQ_TRY(be->copy(be, m->gabuf, m->t[r].goff * sizeof(float), m->gabuf,
                        m->t[o->y].goff * sizeof(float), (size_t)numel_t(m, r) * sizeof(float),
                        st));
    else
        SQ_TRY(be->add(be, numel_t(m, r), G(m, r), dy, G(m, r), st));
    m->ready[r] = 1;
    return SQ_OK;
}

/* GAP: a second writer accumulates in place where the backend can (no scratch slot). */
static sq_code back_gap(sq_model *m, sq_op *o, sq_view dy, gdst d0, sq_status *st) {
    sq_backend *be = m->be;
    if (d0.scratch && be->gap_bwd_add) return be->gap_bwd_add(be, o->s, dy, G(m, o->x), st);
    SQ_TRY(be->gap_bwd(be, o->s, dy, d0.v, st));
    return commit(m, d0, st);
}

static sq_code back_op(sq_model *m, sq_op *o, sq_status *st) {
    sq_backend *be = m->be;
    if (!m->ready[o->y])
        return sq_fail(st, SQ_ERR_INTERNAL, "model backward: gradient of tensor %d never produced",
                       o->y);
    sq_view dy = G(m, o->y);
    gdst d0 = dst_for(m, o->x, 0);
    switch (o->kind) {
    case OP_CONV: return back_conv(m, o, dy, d0, st);
    case OP_DW:
        SQ_TRY(be->dwconv3d_bwd(be, &o->conv, A(m, o->x), P(m, o->w), dy, d0.v, PG(m, o->w),
                                PG(m, o->b), st));
        return commit(m, d0, st);
    case OP_BN: return back_bn(m, o, dy, d0, st);
    case OP_ACT:
        SQ_TRY(be->act_bwd(be, o->act, numel_t(m, o->x), A(m, o->x), dy, d0.v, st));
        return commit(m, d0, st);
    case OP_GAP: return back_gap(m, o, dy, d0, st);
    case OP_CHSCALE: {
        gdst d1 = dst_for(m, o->x2, 1);
        SQ_TRY(be->chscale_bwd(be, o->s, A(m, o->x), A(m, o->x2), dy, d0.v, d1.v, st));
        SQ_TRY(commit(m, d0, st));
        return commit(m, d1, st);
    }
    case OP_POOL:
        SQ_TRY(be->maxpool3d_bwd(be, &o->pool, A(m, o->x), dy, d0.v, st));
        return commit(m, d0, st);
    case OP_RESIZE: SQ_TRY(be->resize3d_bwd(be, &o->rs, dy, d0.v, st)); return commit(m, d0, st);
    case OP_FUSE: {
        sq_view xs[3], dxs[3];
        gdst d[3];
        for (int i = 0; i < o->k; i++) {
            xs[i] = A(m, o->xs[i]);
            d[i] = dst_for(m, o->xs[i], i);
            dxs[i] = d[i].v;
        }
        SQ_TRY(be->fuse_bwd(be, o->s, o->k, xs, P(m, o->w), dy, dxs, PG(m, o->w), st));
        for (int i = 0; i < o->k; i++)
            SQ_TRY(commit(m, d[i], st));
        return SQ_OK;
    }
    case OP_PRELU:
        SQ_TRY(be->prelu_bwd(be, o->s, A(m, o->x), P(m, o->w), dy, d0.v, PG(m, o->w), st));
        return commit(m, d0, st);
    }
    return sq_fail(st, SQ_ERR_INTERNAL, "model: unknown op kind %d", o->kind);
}

sq_code sq_model_backward(sq_model *m, sq_status *st) {
    if (!m->plan_grad)
        return sq_fail(st, SQ_ERR_INTERNAL, "model backward: planned without gradients");
    if (!m->loss_done) return sq_fail(st, SQ_ERR_INTERNAL, "model backward: no loss computed");
    sq_backend *be = m->be;
    SQ_TRY(be->fill(be, m->gbuf, 0, 0, m->pfloats * sizeof(float), st));
    memset(m->ready, 0, (size_t)m->nt);
    SQ_TRY(be->mse_bwd(be, m->plan_n, A(m, m->out_t), A(m, m->target_t), 1.0f, G(m, m->out_t), st));
    m->ready[m->out_t] = 1;
    size_t hook_from = m->pfloats;
    for (int i = m->nops - 1; i >= 0; i--) {
        double t0 = m->profile ? sq_now() : 0;
        sq_code rc = back_op(m, &m->ops[i], st);
        if (rc != SQ_OK) return sq_context(st, "model backward, op %d of %d", i, m->nops);
        if (m->profile) {
            SQ_TRY(be->sync(be, st));
            m->op_bwd_ms[i] += (sq_now() - t0) * 1e3;
        }
        if (m->grad_hook && m->gready[i] < hook_from) {
            hook_from = m->gready[i]; /* enqueued, not necessarily finished: the hook orders
                                         itself after them (events) where the backend is async */
            rc = m->grad_hook(m->grad_hook_ctx, hook_from, st);
            if (rc != SQ_OK) return sq_context(st, "model backward, gradient hook after op %d", i);
        }
    }
    return SQ_OK;
}

/* ---- profile ------------------------------------------------------------------------------------
 */

void sq_model_set_profile(sq_model *m, int on) {
    m->profile = on ? 1 : 0;
    if (m->op_fwd_ms) memset(m->op_fwd_ms, 0, (size_t)m->nops * sizeof(double));
    if (m->op_bwd_ms) memset(m->op_bwd_ms, 0, (size_t)m->nops * sizeof(double));
}

static const char *k_kind_names[] = {"conv",    "dwconv",  "bn",     "act",  "gap",
                                     "chscale", "maxpool", "resize", "fuse", "prelu"};

void sq_model_profile_print(const sq_model *m, FILE *f) {
    enum { NK = 10 };
    double kf[NK] = {0}, kb[NK] = {0}, tf = 0, tb = 0;
    int cnt[NK] = {0};
    for (int i = 0; i < m->nops; i++) {
        int k = m->ops[i].kind;
        kf[k] += m->op_fwd_ms[i];
        kb[k] += m->op_bwd_ms[i];
        cnt[k]++;
        tf += m->op_fwd_ms[i];
        tb += m->op_bwd_ms[i];
    }
    fprintf(f, "%-8s %5s %12s %12s\n", "op", "count", "forward ms", "backward ms");
    for (int k = 0; k < NK; k++)
        if (cnt[k]) fprintf(f, "%-8s %5d %12.1f %12.1f\n", k_kind_names[k], cnt[k], kf[k], kb[k]);
    fprintf(f, "%-8s %5d %12.1f %12.1f\n", "total", m->nops, tf, tb);
    /* the ten most expensive ops */
    int top[10], nt = 0;
    for (int i = 0; i < m->nops; i++) {
        double ti = m->op_fwd_ms[i] + m->op_bwd_ms[i];
        int pos = nt < 10 ? nt++ : 10;
        while (pos > 0 && m->op_fwd_ms[top[pos - 1]] + m->op_bwd_ms[top[pos - 1]] < ti) {
            if (pos < 10) top[pos] = top[pos - 1];
            pos--;
        }
        if (pos < 10) top[pos] = i;
    }
    for (int j = 0; j < nt; j++) {
        const sq_op *o = &m->ops[top[j]];
        sq_shape5 s = m->t[o->x].s, y = m->t[o->y].s;
        fprintf(
            f, "  op %3d %-8s %dx%dx%dx%dx%d -> %dx%dx%dx%dx%d k%d s%d%d%d: fwd %.1f bwd %.1f ms\n",
            top[j], k_kind_names[o->kind], s.n, s.c, s.d, s.h, s.w, y.n, y.c, y.d, y.h, y.w,
            o->conv.k[0], o->conv.stride[0], o->conv.stride[1], o->conv.stride[2],
            m->op_fwd_ms[top[j]], m->op_bwd_ms[top[j]]);
    }
}
