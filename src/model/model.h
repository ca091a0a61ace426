/* model.h — the segqa QA network (DESIGN.md §3): 3D EfficientNet-B0 backbone (expansion 2, SE,
 * swish), BiFPN on P3–P7 (64 channels, 3 repeats, fast normalised fusion), regression head (chained
 * fusion nodes → BN → PReLU → 1×1×1 conv → global average pool → sigmoid), on the compute backend
 * (nn/backend.h).
 *
 * What lives here: the config and its anisotropy-aware stride plan, the parameter registry (stable
 * names, fixed order, one flat parameter buffer + one flat gradient buffer + one flat buffer of
 * BatchNorm running statistics, every view 64-byte aligned), initialisation, the FLOP count, and
 * forward/backward over an activation arena planned once per input shape (nothing is allocated in a
 * step). tests/parity/segqa_ref.py is the same network in PyTorch with the same names.
 *
 * Not for: the optimiser (optim/), files (train/checkpoint.h), data.
 */
#ifndef SEGQA_MODEL_MODEL_H
#define SEGQA_MODEL_MODEL_H

#include "core/status.h"
#include "nn/backend.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_depth_rule {
    SQ_DEPTH_ANISOTROPIC = 0, /* halve an axis only while its spacing <= 2x the finest (nnU-Net) */
    SQ_DEPTH_ISOTROPIC,       /* halve every axis above size 1 at every stride-2 step */
} sq_depth_rule;

#define SQ_MODEL_STEPS    7 /* stride-2 steps: stem, stages 2, 3, 4, 6, P6, P7 */
#define SQ_PARAM_NAME_MAX 80

typedef struct sq_model_config {
    int in_channels;          /* 2: image + contour */
    int depth, height, width; /* input D, H, W (paper: 28 x 160 x 160) */
    double spacing[3];        /* voxel spacing (D, H, W) in mm (paper: 3.9, 0.59, 0.59) */
    int stem_channels;        /* 32 */
    int expansion;            /* MBConv expansion factor (paper: 2) */
    double se_ratio;          /* 0.25 of the block's input channels */
    int fpn_channels;         /* BiFPN width, 64 */
    int fpn_repeats;          /* BiFPN cells, 3 */
    sq_depth_rule depth_rule;
    double image_scale; /* channel 0 is multiplied by this on entry (1/255: [0,255] -> [0,1]) */
    double bn_momentum; /* running-statistics momentum, PyTorch convention (0.1) */
} sq_model_config;

/* The paper's config: 2 x 28 x 160 x 160 at 3.9 x 0.59 x 0.59 mm, anisotropic. */
sq_model_config sq_model_config_default(void);
/* Checks ranges; the message names the field. */
sq_code sq_model_config_check(const sq_model_config *c, sq_status *st);
/* JSON object with the keys of segqa_ref.py's config ("depth_rule": "anisotropic"|"isotropic"). */
cJSON *sq_model_config_to_json(const sq_model_config *c);
/* Keys absent from `obj` keep the values already in *c; unknown keys are an error. */
sq_code sq_model_config_from_json(const cJSON *obj, sq_model_config *c, const char *origin,
                                  sq_status *st);
const char *sq_depth_rule_name(sq_depth_rule r);
sq_code sq_depth_rule_parse(const char *s, sq_depth_rule *r, sq_status *st);

/* The stride plan for an input of size dhw: strides[i][a] (1 or 2) of step i on axis a (D,H,W),
 * sizes[i][a] the extents after step i (ceil halving). */
void sq_model_stride_plan(const sq_model_config *c, const int dhw[3],
                          int strides[SQ_MODEL_STEPS][3], int sizes[SQ_MODEL_STEPS][3]);

/* One named tensor of the registry. `off` is in floats from the start of its flat buffer
 * (a multiple of 16 = 64 bytes). */
typedef struct sq_param_info {
    char name[SQ_PARAM_NAME_MAX];
    int ndim;
    int shape[5];
    int64_t numel;
    size_t off;
} sq_param_info;

typedef struct sq_model sq_model;

/* Build the registry and allocate the flat buffers (params, grads, BN state) on `be`. The model
 * borrows the backend (destroy it after the model). Parameters start at sq_model_init's values
 * for seed 0. `be` may be NULL: registry and FLOP count only (no buffers, no plan). */
sq_code sq_model_create(const sq_model_config *c, sq_backend *be, sq_model **out, sq_status *st);
void sq_model_destroy(sq_model *m);

const sq_model_config *sq_model_get_config(const sq_model *m);
sq_backend *sq_model_backend(const sq_model *m);

/* Re-initialise every parameter and BN statistic from Philox(seed), one stream per tensor:
 * convolutions He-normal (fan-out, as EfficientNet) except the final 1-channel regressor, N(0,
 * 0.01) so that estimates start near 0.5; BN gamma 1, beta 0, mean 0, var 1; biases 0; fusion
 * weights 1; PReLU 0.25. */
sq_code sq_model_init(sq_model *m, uint64_t seed, sq_status *st);

/* Registry: learnable parameters (in `params`/`grads`) and BN running statistics (in `state`). */
int sq_model_nparams(const sq_model *m);
const sq_param_info *sq_model_param(const sq_model *m, int i);
int sq_model_nstate(const sq_model *m);
const sq_param_info *sq_model_state(const sq_model *m, int i);
/* Index of a tensor by name in params (kind 0) or state (kind 1), -1 if absent. */
int sq_model_find(const sq_model *m, int kind, const char *name);
/* Total floats of each flat buffer including alignment padding (the all-reduce length). */
size_t sq_model_params_floats(const sq_model *m);
size_t sq_model_state_floats(const sq_model *m);
int64_t sq_model_param_count(const sq_model *m); /* learnable scalars, without padding */
sq_buf *sq_model_params_buf(const sq_model *m);
sq_buf *sq_model_grads_buf(const sq_model *m);
sq_buf *sq_model_state_buf(const sq_model *m);

/* Forward FLOPs per sample (2 per multiply-add of every convolution) at the config's shape. */
sq_code sq_model_flops(const sq_model_config *c, int64_t *flops, sq_status *st);

/* Plan activations for batch n at the config's input shape: ops, one arena (and a gradient arena
 * when `need_grad`), allocated here once. Re-planning with the same (n, need_grad) is a no-op. */
sq_code sq_model_plan(sq_model *m, int n, int need_grad, sq_status *st);
/* Training mode: BN uses batch statistics and updates the running ones. Eval: running ones. */
void sq_model_set_training(sq_model *m, int training);
/* Synchronised BatchNorm: in training every BN layer sums its statistics over `sync`'s group (see
 * sq_bn_sync in nn/backend.h). NULL (the default): per-process statistics. Borrowed pointer. */
void sq_model_set_bn_sync(sq_model *m, const sq_bn_sync *sync);
/* Gradient-ready hook for overlapping the all-reduce with backward: during sq_model_backward,
 * each time more of the flat gradient buffer becomes final, fn(ctx, from) is called with the
 * gradients at float offsets [from, params_floats) final (from only decreases; the last call has
 * from = 0). The ops that produced them are ENQUEUED, not necessarily finished: on an
 * asynchronous backend the hook orders its work after them (be->event_record on the compute
 * stream, then a communication stream waits for that event); the CPU backend's ops are complete
 * on return. There is no host synchronisation between backward ops. An error from fn ends the
 * backward. */
typedef sq_code (*sq_grad_hook_fn)(void *ctx, size_t from, sq_status *st);
void sq_model_set_grad_hook(sq_model *m, sq_grad_hook_fn fn, void *ctx);
size_t sq_model_arena_bytes(const sq_model *m);
/* How many full plans were built (sq_model_plan with the current batch and mode is a no-op that
 * keeps the ops and arenas; tests check that reuse with this count). */
long sq_model_plans_built(const sq_model *m);

/* x is (n, in_channels, D, H, W) on the host; y (n) receives the Dice estimates (may be NULL).
 * x NULL: the input is already in the model's input tensor (sq_model_input), e.g. copied there on
 * the backend's stream by the training input pipeline (src/train/feed.h). */
sq_code sq_model_forward(sq_model *m, const float *x, float *y, sq_status *st);
/* The planned input tensor (n, in_channels, D, H, W) in backend memory (after sq_model_plan). */
sq_view sq_model_input(const sq_model *m);
/* After forward: loss = mean((y - target)^2); target (n) host. loss may be NULL. */
sq_code sq_model_loss(sq_model *m, const float *target, float *loss, sq_status *st);
/* After loss: zero the flat gradient buffer and back-propagate d loss into it. */
sq_code sq_model_backward(sq_model *m, sq_status *st);

/* Per-op timing (syncs after every op): on resets the counters; print sums per op kind and the ten
 * most expensive ops since the last reset. */
void sq_model_set_profile(sq_model *m, int on);
void sq_model_profile_print(const sq_model *m, FILE *f);

/* Host copies of a whole flat buffer (floats, length *_floats()). */
sq_code sq_model_get_params(const sq_model *m, float *dst, sq_status *st);
sq_code sq_model_set_params(sq_model *m, const float *src, sq_status *st);
sq_code sq_model_get_grads(const sq_model *m, float *dst, sq_status *st);
sq_code sq_model_get_state(const sq_model *m, float *dst, sq_status *st);
sq_code sq_model_set_state(sq_model *m, const float *src, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
