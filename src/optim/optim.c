/* optim.c — Adam over flat buffers, the step schedule and gradient clipping (see optim.h). */
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sq_adam_opt {
    sq_backend *be;
    size_t n;
    sq_adam_config cfg;
    sq_buf *m, *v;
    long step;
};

sq_adam_config sq_adam_config_default(void) {
    sq_adam_config c = {0.9f, 0.999f, 1e-8f, 0.0f};
    return c;
}

sq_code sq_adam_create(sq_backend *be, size_t n, const sq_adam_config *cfg, sq_adam_opt **out,
                       sq_status *st) {
    *out = NULL;
    if (!(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1 && cfg->eps > 0))
        return sq_fail(st, SQ_ERR_RANGE, "adam: betas must be in [0, 1) and eps > 0");
    sq_adam_opt *o = calloc(1, sizeof *o);
    if (!o) return sq_fail(st, SQ_ERR_NOMEM, "adam: out of memory");
    o->be = be;
    o->n = n;
    o->cfg = *cfg;
    size_t bytes = (n ? n : 1) * sizeof(float);
    sq_code rc = be->buf_alloc(be, bytes, &o->m, st);
    if (rc == SQ_OK) rc = be->buf_alloc(be, bytes, &o->v, st);
    if (rc != SQ_OK) {
        sq_adam_destroy(o);
        return sq_context(st, "adam moments (%zu floats)", n);
    }
    *out = o;
    return SQ_OK;
}

void sq_adam_destroy(sq_adam_opt *o) {
    if (!o) return;
    o->be->buf_free(o->be, o->m);
    o->be->buf_free(o->be, o->v);
    free(o);
}

sq_code sq_adam_step(sq_adam_opt *o, sq_buf *params, sq_buf *grads, float lr, sq_status *st) {
    sq_adam p;
    p.lr = lr;
    p.beta1 = o->cfg.beta1;
    p.beta2 = o->cfg.beta2;
    p.eps = o->cfg.eps;
    p.weight_decay = o->cfg.weight_decay;
    p.step = o->step + 1;
    SQ_TRY(o->be->adam(o->be, &p, (int64_t)o->n, sq_view_of(params, 0), sq_view_of(grads, 0),
                       sq_view_of(o->m, 0), sq_view_of(o->v, 0), st));
    o->step++;
    return SQ_OK;
}

long sq_adam_steps(const sq_adam_opt *o) {
    return o->step;
}
size_t sq_adam_size(const sq_adam_opt *o) {
    return o->n;
}
const sq_adam_config *sq_adam_get_config(const sq_adam_opt *o) {
    return &o->cfg;
}

sq_code sq_adam_get_state(const sq_adam_opt *o, float *m, float *v, long *step, sq_status *st) {
    SQ_TRY(o->be->download(o->be, m, o->m, 0, o->n * sizeof(float), st));
    SQ_TRY(o->be->download(o->be, v, o->v, 0, o->n * sizeof(float), st));
    *step = o->step;
    return SQ_OK;
}

sq_code sq_adam_set_state(sq_adam_opt *o, const float *m, const float *v, long step,
                          sq_status *st) {
    if (step < 0) return sq_fail(st, SQ_ERR_RANGE, "adam: negative step %ld", step);
    SQ_TRY(o->be->upload(o->be, o->m, 0, m, o->n * sizeof(float), st));
    SQ_TRY(o->be->upload(o->be, o->v, 0, v, o->n * sizeof(float), st));
    SQ_TRY(o->be->sync(o->be, st));
    o->step = step;
    return SQ_OK;
}

sq_lr_schedule sq_lr_schedule_paper(void) {
    sq_lr_schedule s = {0.002, 0.0002, 120, 0};
    return s;
}

double sq_lr_at(const sq_lr_schedule *s, int epoch, long step) {
    double lr = epoch < s->decay_epoch ? s->base_lr : s->decayed_lr;
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        lr *= (double)(step + 1) / (double)s->warmup_steps;
    return lr;
}

/* The norm is reduced on the backend (sumsq); only its one float crosses to the host. */
sq_code sq_grad_norm(sq_backend *be, sq_buf *grads, size_t n, double *norm, sq_status *st) {
    sq_buf *out = NULL;
    SQ_TRY(be->buf_alloc(be, sizeof(float), &out, st));
    float ss = 0.0f;
    sq_code rc = be->sumsq(be, (int64_t)n, sq_view_of(grads, 0), sq_view_of(out, 0), st);
    if (rc == SQ_OK) rc = be->download(be, &ss, out, 0, sizeof ss, st);
    be->buf_free(be, out);
    *norm = sqrt((double)ss);
    return rc;
}

sq_code sq_clip_grad_norm(sq_backend *be, sq_buf *grads, size_t n, double max_norm,
                          double *norm_out, sq_status *st) {
    double norm;
    SQ_TRY(sq_grad_norm(be, grads, n, &norm, st));
    if (norm_out) *norm_out = norm;
    if (!isfinite(norm)) return sq_fail(st, SQ_ERR_RANGE, "grad norm is not finite (%g)", norm);
    if (max_norm > 0 && norm > max_norm) {
        float c = (float)(max_norm / (norm + 1e-6));
        SQ_TRY(be->scale(be, (int64_t)n, c, sq_view_of(grads, 0), sq_view_of(grads, 0), st));
    }
    return SQ_OK;
}
