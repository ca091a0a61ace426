/* cpu_dnnl.c — dense (and, for comparison, grouped) 3D convolutions through oneDNN 2.6.
 *
 * One oneDNN engine and stream per backend. Primitives are created once per (direction, shape,
 * groups, bias) and cached in a list; their memory objects are created once too and only get
 * their data handle set per call. Activations and weights stay in the plain NCDHW / OIDHW layout
 * the rest of segqa uses, so no reorder is needed at all (oneDNN picks its gemm-based kernels for
 * plain layouts, which at 1x1x1 are a single sgemm). Weight and bias gradients are computed into a
 * cached scratch and accumulated into the caller's gradient (backend.h: parameter gradients +=).
 */
#include "nn/cpu/cpu.h"

#include "core/tensor.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

enum { DIR_FWD = 0, DIR_BWD_DATA = 1, DIR_BWD_WEIGHTS = 2 };
enum { M_SRC, M_WEI, M_BIA, M_DST, M_COUNT };

typedef struct conv_key {
    int dir, groups, bias;
    sq_conv3d p;
} conv_key;

typedef struct conv_entry {
    conv_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t mem[M_COUNT]; /* NULL where not used */
    float *dw_tmp;              /* bwd weights: diff weights and bias before accumulation */
    float *db_tmp;
    size_t nw;
    struct conv_entry *next;
} conv_entry;

struct sq_cpu_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    conv_entry *head;
    int count;
};

static sq_code dnnl_check(dnnl_status_t s, const char *what, sq_status *st) {
    if (s == dnnl_success) return SQ_OK;
    return sq_fail(st, s == dnnl_out_of_memory ? SQ_ERR_NOMEM : SQ_ERR_UNSUPPORTED,
                   "oneDNN: %s failed (status %d)", what, (int)s);
}

sq_code sq_cpu_dnnl_init(sq_cpu *c, sq_status *st) {
    c->dnnl = calloc(1, sizeof *c->dnnl);
    if (!c->dnnl) return sq_fail(st, SQ_ERR_NOMEM, "oneDNN: out of memory");
    SQ_TRY(dnnl_check(dnnl_engine_create(&c->dnnl->engine, dnnl_cpu, 0), "engine_create", st));
    SQ_TRY(
        dnnl_check(dnnl_stream_create(&c->dnnl->stream, c->dnnl->engine, dnnl_stream_default_flags),
                   "stream_create", st));
    return SQ_OK;
}

static void entry_free(conv_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    for (int i = 0; i < M_COUNT; i++)
        if (e->mem[i]) dnnl_memory_destroy(e->mem[i]);
    sq_free(e->dw_tmp);
    sq_free(e->db_tmp);
    free(e);
}

void sq_cpu_dnnl_destroy(sq_cpu *c) {
    if (!c->dnnl) return;
    conv_entry *e = c->dnnl->head;
    while (e) {
        conv_entry *n = e->next;
        entry_free(e);
        e = n;
    }
    if (c->dnnl->stream) dnnl_stream_destroy(c->dnnl->stream);
    if (c->dnnl->engine) dnnl_engine_destroy(c->dnnl->engine);
    free(c->dnnl);
    c->dnnl = NULL;
}

int sq_cpu_dnnl_cache_size(sq_backend *be) {
    return sq_cpu_of(be)->dnnl->count;
}

typedef struct conv_mds {
    dnnl_memory_desc_t src, wei, bia, dst;
    dnnl_dims_t strides, pad;
} conv_mds;

static sq_code make_mds(const conv_key *k, conv_mds *m, sq_status *st) {
    const sq_conv3d *p = &k->p;
    const sq_shape5 o = sq_conv3d_out(p);
    const int g = k->groups;
    dnnl_dims_t sd = {p->in.n, p->in.c, p->in.d, p->in.h, p->in.w};
    dnnl_dims_t dd = {o.n, o.c, o.d, o.h, o.w};
    SQ_TRY(
        dnnl_check(dnnl_memory_desc_init_by_tag(&m->src, 5, sd, dnnl_f32, dnnl_ncdhw), "md", st));
    SQ_TRY(
        dnnl_check(dnnl_memory_desc_init_by_tag(&m->dst, 5, dd, dnnl_f32, dnnl_ncdhw), "md", st));
    if (g == 1) {
        dnnl_dims_t wd = {p->cout, p->in.c, p->k[0], p->k[1], p->k[2]};
        SQ_TRY(dnnl_check(dnnl_memory_desc_init_by_tag(&m->wei, 5, wd, dnnl_f32, dnnl_oidhw), "md",
                          st));
    } else {
        dnnl_dims_t wd = {g, p->cout / g, p->in.c / g, p->k[0], p->k[1], p->k[2]};
        SQ_TRY(dnnl_check(dnnl_memory_desc_init_by_tag(&m->wei, 6, wd, dnnl_f32, dnnl_goidhw), "md",
                          st));
    }
    dnnl_dims_t bd = {p->cout};
    SQ_TRY(dnnl_check(dnnl_memory_desc_init_by_tag(&m->bia, 1, bd, dnnl_f32, dnnl_x), "md", st));
    for (int a = 0; a < 3; a++) {
        m->strides[a] = p->stride[a];
        m->pad[a] = p->pad[a];
    }
    return SQ_OK;
}

static sq_code fwd_pd(sq_cpu_dnnl *d, const conv_key *k, conv_mds *m, dnnl_primitive_desc_t *pd,
                      sq_status *st) {
    dnnl_convolution_desc_t cd;
    SQ_TRY(dnnl_check(dnnl_convolution_forward_desc_init(
                          &cd, dnnl_forward_training, dnnl_convolution_direct, &m->src, &m->wei,
                          k->bias ? &m->bia : NULL, &m->dst, m->strides, m->pad, m->pad),
                      "convolution_forward_desc_init", st));
    return dnnl_check(dnnl_primitive_desc_create(pd, &cd, NULL, d->engine, NULL),
                      "convolution forward primitive_desc_create", st);
}

static sq_code entry_create(sq_cpu_dnnl *d, const conv_key *k, conv_entry **out, sq_status *st) {
    conv_entry *e = calloc(1, sizeof *e);
    if (!e) return sq_fail(st, SQ_ERR_NOMEM, "oneDNN cache: out of memory");
    e->key = *k;
    conv_mds m;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    sq_code rc = make_mds(k, &m, st);
    if (rc == SQ_OK) rc = fwd_pd(d, k, &m, &fpd, st);
    if (rc == SQ_OK && k->dir == DIR_FWD) {
        pd = fpd;
        fpd = NULL;
    } else if (rc == SQ_OK && k->dir == DIR_BWD_DATA) {
        dnnl_convolution_desc_t cd;
        rc = dnnl_check(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct,
                                                                 &m.src, &m.wei, &m.dst, m.strides,
                                                                 m.pad, m.pad),
                        "convolution_backward_data_desc_init", st);
        if (rc == SQ_OK)
            rc = dnnl_check(dnnl_primitive_desc_create(&pd, &cd, NULL, d->engine, fpd),
                            "convolution backward-data primitive_desc_create", st);
    } else if (rc == SQ_OK) {
        dnnl_convolution_desc_t cd;
        rc = dnnl_check(dnnl_convolution_backward_weights_desc_init(
                            &cd, dnnl_convolution_direct, &m.src, &m.wei, k->bias ? &m.bia : NULL,
                            &m.dst, m.strides, m.pad, m.pad),
                        "convolution_backward_weights_desc_init", st);
        if (rc == SQ_OK)
            rc = dnnl_check(dnnl_primitive_desc_create(&pd, &cd, NULL, d->engine, fpd),
                            "convolution backward-weights primitive_desc_create", st);
    }
    if (rc == SQ_OK) rc = dnnl_check(dnnl_primitive_create(&e->prim, pd), "primitive_create", st);
    const dnnl_memory_desc_t *mds[M_COUNT] = {&m.src, &m.wei, k->bias ? &m.bia : NULL, &m.dst};
    for (int i = 0; i < M_COUNT && rc == SQ_OK; i++)
        if (mds[i])
            rc = dnnl_check(dnnl_memory_create(&e->mem[i], mds[i], d->engine, DNNL_MEMORY_NONE),
                            "memory_create", st);
    if (rc == SQ_OK && k->dir == DIR_BWD_WEIGHTS) {
        const sq_conv3d *p = &k->p;
        e->nw = (size_t)p->cout * (p->in.c / k->groups) * p->k[0] * p->k[1] * p->k[2];
        e->dw_tmp = sq_alloc(e->nw * sizeof(float));
        e->db_tmp = sq_alloc((size_t)p->cout * sizeof(float));
        if (!e->dw_tmp || !e->db_tmp) rc = sq_fail(st, SQ_ERR_NOMEM, "oneDNN cache: out of memory");
    }
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (rc != SQ_OK) {
        entry_free(e);
        return rc;
    }
    e->next = d->head;
    d->head = e;
    d->count++;
    *out = e;
    return SQ_OK;
}

static sq_code entry_get(sq_backend *be, int dir, const sq_conv3d *p, int groups, int bias,
                         conv_entry **out, sq_status *st) {
    sq_cpu_dnnl *d = sq_cpu_of(be)->dnnl;
    conv_key k;
    memset(&k, 0, sizeof k);
    k.dir = dir;
    k.groups = groups;
    k.bias = bias;
    k.p = *p;
    for (conv_entry *e = d->head; e; e = e->next)
        if (memcmp(&e->key, &k, sizeof k) == 0) {
            *out = e;
            return SQ_OK;
        }
    return entry_create(d, &k, out, st);
}

static sq_code run(sq_backend *be, conv_entry *e, int nargs, dnnl_exec_arg_t *args, sq_status *st) {
    sq_cpu_dnnl *d = sq_cpu_of(be)->dnnl;
    SQ_TRY(dnnl_check(dnnl_primitive_execute(e->prim, d->stream, nargs, args), "execute", st));
    return dnnl_check(dnnl_stream_wait(d->stream), "stream_wait", st);
}

static sq_code set(conv_entry *e, int i, const float *ptr, sq_status *st) {
    return dnnl_check(dnnl_memory_set_data_handle(e->mem[i], (void *)ptr), "set_data_handle", st);
}

sq_code sq_cpu_dnnl_conv_fwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                             sq_view b, sq_view y, sq_status *st) {
    conv_entry *e;
    const int bias = b.buf != NULL;
    SQ_TRY(entry_get(be, DIR_FWD, p, groups, bias, &e, st));
    SQ_TRY(set(e, M_SRC, sq_cpu_f(x), st));
    SQ_TRY(set(e, M_WEI, sq_cpu_f(w), st));
    SQ_TRY(set(e, M_DST, sq_cpu_f(y), st));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->mem[M_SRC]},
                               {DNNL_ARG_WEIGHTS, e->mem[M_WEI]},
                               {DNNL_ARG_DST, e->mem[M_DST]},
                               {DNNL_ARG_BIAS, e->mem[M_BIA]}};
    if (bias) SQ_TRY(set(e, M_BIA, sq_cpu_f(b), st));
    return run(be, e, bias ? 4 : 3, args, st);
}

sq_code sq_cpu_dnnl_conv_bwd(sq_backend *be, const sq_conv3d *p, int groups, sq_view x, sq_view w,
                             sq_view dy, sq_view dx, sq_view dw, sq_view db, sq_status *st) {
    conv_entry *e;
    if (dx.buf) {
        SQ_TRY(entry_get(be, DIR_BWD_DATA, p, groups, 0, &e, st));
        SQ_TRY(set(e, M_SRC, sq_cpu_f(dx), st));
        SQ_TRY(set(e, M_WEI, sq_cpu_f(w), st));
        SQ_TRY(set(e, M_DST, sq_cpu_f(dy), st));
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_SRC, e->mem[M_SRC]},
                                   {DNNL_ARG_WEIGHTS, e->mem[M_WEI]},
                                   {DNNL_ARG_DIFF_DST, e->mem[M_DST]}};
        SQ_TRY(run(be, e, 3, args, st));
    }
    if (dw.buf || db.buf) {
        const int bias = db.buf != NULL;
        SQ_TRY(entry_get(be, DIR_BWD_WEIGHTS, p, groups, bias, &e, st));
        SQ_TRY(set(e, M_SRC, sq_cpu_f(x), st));
        SQ_TRY(set(e, M_WEI, e->dw_tmp, st));
        SQ_TRY(set(e, M_DST, sq_cpu_f(dy), st));
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->mem[M_SRC]},
                                   {DNNL_ARG_DIFF_WEIGHTS, e->mem[M_WEI]},
                                   {DNNL_ARG_DIFF_DST, e->mem[M_DST]},
                                   {DNNL_ARG_DIFF_BIAS, e->mem[M_BIA]}};
        if (bias) SQ_TRY(set(e, M_BIA, e->db_tmp, st));
        SQ_TRY(run(be, e, bias ? 4 : 3, args, st));
        float *pw = sq_cpu_f(dw), *pb = sq_cpu_f(db);
        if (pw)
            for (size_t i = 0; i < e->nw; i++)
                pw[i] += e->dw_tmp[i];
        if (pb)
            for (int i = 0; i < p->cout; i++)
                pb[i] += e->db_tmp[i];
    }
    return SQ_OK;
}
