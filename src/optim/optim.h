/* optim.h — Adam (torch.optim.Adam semantics, bias-corrected), the paper's step learning-rate
 * schedule with optional linear warm-up, and global gradient-norm clipping, over the flat parameter
 * and gradient buffers of the model (one call updates every tensor).
 *
 * Not for: knowing the model (it sees flat buffers only) or files (the checkpoint reads and writes
 * the moment buffers through sq_adam_get_state / sq_adam_set_state).
 */
#ifndef SEGQA_OPTIM_OPTIM_H
#define SEGQA_OPTIM_OPTIM_H

#include "core/status.h"
#include "nn/backend.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_adam_config {
    float beta1, beta2, eps, weight_decay; /* 0.9, 0.999, 1e-8, 0 (PyTorch defaults) */
} sq_adam_config;

sq_adam_config sq_adam_config_default(void);

typedef struct sq_adam_opt sq_adam_opt;

/* Moments m and v of `n` floats on the backend, zeroed; step 0. */
sq_code sq_adam_create(sq_backend *be, size_t n, const sq_adam_config *cfg, sq_adam_opt **out,
                       sq_status *st);
void sq_adam_destroy(sq_adam_opt *o);

/* One update at learning rate `lr`: step += 1, then torch.optim.Adam's update of every float. */
sq_code sq_adam_step(sq_adam_opt *o, sq_buf *params, sq_buf *grads, float lr, sq_status *st);

long sq_adam_steps(const sq_adam_opt *o); /* updates done so far (PyTorch's state['step']) */
size_t sq_adam_size(const sq_adam_opt *o);
const sq_adam_config *sq_adam_get_config(const sq_adam_opt *o);
/* Host copies of the moments (n floats each) and the step count, for checkpoints. */
sq_code sq_adam_get_state(const sq_adam_opt *o, float *m, float *v, long *step, sq_status *st);
sq_code sq_adam_set_state(sq_adam_opt *o, const float *m, const float *v, long step, sq_status *st);

/* The learning rate schedule: base_lr until decay_epoch, then decayed_lr (paper: 0.002 → 0.0002
 * at epoch 120), multiplied during the first warmup_steps global steps by (step + 1) /
 * warmup_steps. */
typedef struct sq_lr_schedule {
    double base_lr, decayed_lr;
    int decay_epoch;
    long warmup_steps; /* 0: none */
} sq_lr_schedule;

sq_lr_schedule sq_lr_schedule_paper(void);
/* epoch counts from 0; step is the global step (0 for the first update). */
double sq_lr_at(const sq_lr_schedule *s, int epoch, long step);

/* Global L2 norm of n floats of `grads` (computed in double). */
sq_code sq_grad_norm(sq_backend *be, sq_buf *grads, size_t n, double *norm, sq_status *st);
/* If the global norm exceeds max_norm > 0, scale the gradients by max_norm / (norm + 1e-6)
 * (torch.nn.utils.clip_grad_norm_). *norm_out (may be NULL) receives the norm before clipping. */
sq_code sq_clip_grad_norm(sq_backend *be, sq_buf *grads, size_t n, double max_norm,
                          double *norm_out, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
