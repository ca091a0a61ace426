/* nb_cases.c — THE case table of the conformance suite: every op of nn/backend.h with its shapes
 * and parameters, in the manner of ggml's test-backend-ops. Each case runs forward and backward
 * (where the op has one) through the driver of its op family.
 *
 * "small" cases are odd shapes (sizes 1, 3, 5, 7, primes, depth 1, width 1) checked in full and
 * with finite differences; "large" cases are the network's real shapes for the paper input
 * (batch 2, 2 x 28 x 160 x 160, anisotropic spacing: stem stride (1,2,2), stages at 28x80x80,
 * 28x40x40, 14x20x20, 7x10x10, 4x5x5, BiFPN levels 64 channels at 14x20x20 .. 1x2x2) plus the
 * shapes named in the brief of this suite; --small skips them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nb.h"

/* clang-format off */
#define S5(n, c, d, h, w) {n, c, d, h, w}
#define K(a, b, c) {a, b, c}
#define CONV(op, lg, note, n, c, d, h, w, co, k, s, p, bias) \
    {op, lg, note, .u.conv = {n, c, d, h, w, co, k, s, p, bias}}
#define BN(lg, note, shape, act, res, train, running, sync) \
    {NB_BN, lg, note, .u.bn = {shape, act, res, train, running, sync}}
#define BNO(lg, note, shape, act, res, train, running, sync, offset) \
    {NB_BN, lg, note, .u.bn = {shape, act, res, train, running, sync, offset}}
#define VEC(op, lg, note, n, act, alias, alpha, steps, wd) \
    {op, lg, note, .u.vec = {n, act, alias, alpha, steps, wd}}
#define SHAPE(op, lg, note, sh) {op, lg, note, .u.shape = sh}
#define POOL(lg, note, shape, k, s, p, ceil, ties) \
    {NB_MAXPOOL, lg, note, .u.pool = {{shape, k, s, p, ceil}, ties}}
#define RESIZE(lg, note, shape, out) {NB_RESIZE, lg, note, .u.rs = {shape, out}}
#define FUSE(lg, note, shape, k, ...) {NB_FUSE, lg, note, .u.fuse = {shape, k, {__VA_ARGS__}}}
/* clang-format on */

#define A_NONE    SQ_ACT_NONE
#define A_RELU    SQ_ACT_RELU
#define A_SIGMOID SQ_ACT_SIGMOID
#define A_SWISH   SQ_ACT_SWISH

/* 2 x 32 x 28 x 80 x 80: the stage-1 activations of the paper shape */
#define N_ACT 11468800

const nb_case nb_cases[] = {
    /* ---- conv3d (dense, oneDNN / cuDNN) ---- */
    CONV(NB_CONV3D, 0, "1x1x1 expand/project", 2, 3, 5, 7, 11, 4, K(1, 1, 1), K(1, 1, 1),
         K(0, 0, 0), 0),
    CONV(NB_CONV3D, 0, "1x1x1", 2, 3, 5, 7, 11, 5, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 1),
    CONV(NB_CONV3D, 0, "k3 s2", 2, 2, 7, 9, 13, 3, K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 0),
    CONV(NB_CONV3D, 0, "stem-like s(1,2,2)", 2, 2, 5, 7, 9, 4, K(3, 3, 3), K(1, 2, 2), K(1, 1, 1),
         0),
    /* the CPU's direct 3x3x3 kernels (cpu_direct.c): W stride 1 with a partial last vector and a
     * bias; stride 2 everywhere on an odd width */
    CONV(NB_CONV3D, 0, "direct k3 s1, W tail", 1, 3, 4, 6, 13, 8, K(3, 3, 3), K(1, 1, 1),
         K(1, 1, 1), 1),
    CONV(NB_CONV3D, 0, "direct k3 s2, odd W", 2, 1, 5, 7, 17, 4, K(3, 3, 3), K(2, 2, 2), K(1, 1, 1),
         0),
    CONV(NB_CONV3D, 0, "depth 1, stride 2 on H", 1, 2, 1, 6, 9, 3, K(1, 3, 3), K(1, 2, 1),
         K(0, 1, 1), 1),
    CONV(NB_CONV3D, 0, "width 1", 1, 1, 4, 5, 1, 2, K(3, 3, 1), K(1, 1, 1), K(1, 1, 0), 0),
    CONV(NB_CONV3D, 0, "mixed k, s, p", 2, 3, 6, 5, 8, 2, K(2, 3, 5), K(2, 1, 3), K(0, 1, 2), 1),
    CONV(NB_CONV3D, 0, "SE on 1x1x1", 1, 7, 1, 1, 1, 5, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 1),
    CONV(NB_CONV3D, 1, "stem (paper)", 2, 2, 28, 160, 160, 32, K(3, 3, 3), K(1, 2, 2), K(1, 1, 1),
         0),
    CONV(NB_CONV3D, 1, "s1 project", 2, 32, 28, 80, 80, 16, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 0),
    CONV(NB_CONV3D, 1, "s2 expand", 2, 16, 28, 80, 80, 32, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 0),
    CONV(NB_CONV3D, 1, "deep 1x1x1", 2, 640, 1, 5, 5, 320, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 0),
    CONV(NB_CONV3D, 1, "s7 project", 2, 384, 4, 5, 5, 320, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 0),
    CONV(NB_CONV3D, 1, "SE reduce", 2, 384, 1, 1, 1, 96, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 1),
    CONV(NB_CONV3D, 1, "SE expand", 2, 96, 1, 1, 1, 384, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 1),
    CONV(NB_CONV3D, 1, "BiFPN pw p3", 2, 64, 14, 20, 20, 64, K(1, 1, 1), K(1, 1, 1), K(0, 0, 0), 0),

    /* ---- dwconv3d (depthwise, own kernels) ---- */
    CONV(NB_DWCONV3D, 0, "depth 1, stride 2 on W", 2, 3, 1, 7, 11, 3, K(1, 3, 3), K(1, 1, 2),
         K(0, 1, 1), 0),
    CONV(NB_DWCONV3D, 0, "stride 2 on D", 1, 2, 5, 6, 13, 2, K(3, 3, 3), K(2, 1, 1), K(1, 1, 1), 1),
    CONV(NB_DWCONV3D, 0, "k5 s2", 2, 3, 7, 9, 17, 3, K(5, 5, 5), K(2, 2, 2), K(2, 2, 2), 0),
    CONV(NB_DWCONV3D, 0, "tiny", 1, 1, 3, 3, 3, 1, K(3, 3, 3), K(1, 1, 1), K(1, 1, 1), 1),
    CONV(NB_DWCONV3D, 0, "k5, stride 2 on H, long rows", 2, 4, 4, 10, 37, 4, K(5, 5, 5), K(1, 2, 1),
         K(2, 2, 2), 1),
    CONV(NB_DWCONV3D, 0, "k3 s2 on W, even width", 1, 3, 3, 5, 40, 3, K(3, 3, 3), K(1, 1, 2),
         K(1, 1, 1), 0),
    CONV(NB_DWCONV3D, 0, "no padding", 1, 2, 5, 7, 23, 2, K(5, 5, 5), K(1, 1, 1), K(0, 0, 0), 0),
    CONV(NB_DWCONV3D, 0, "width 1", 1, 2, 3, 4, 1, 2, K(3, 3, 3), K(1, 1, 1), K(1, 1, 1), 0),
    CONV(NB_DWCONV3D, 0, "k3 s2, odd width", 1, 2, 3, 9, 41, 2, K(3, 3, 3), K(2, 2, 2), K(1, 1, 1),
         1),
    CONV(NB_DWCONV3D, 0, "generic stride 3 on W", 1, 2, 4, 6, 19, 2, K(3, 3, 3), K(1, 1, 3),
         K(1, 1, 1), 0),
    CONV(NB_DWCONV3D, 0, "k3 s(1,2,2), wide: row path", 1, 2, 3, 5, 53, 2, K(3, 3, 3), K(1, 2, 2),
         K(1, 1, 1), 1),
    CONV(NB_DWCONV3D, 0, "k5 s2, wide: row path", 1, 2, 4, 7, 50, 2, K(5, 5, 5), K(2, 2, 2),
         K(2, 2, 2), 0),
    CONV(NB_DWCONV3D, 0, "k3 s(1,2,2)", 2, 3, 4, 9, 12, 3, K(3, 3, 3), K(1, 2, 2), K(1, 1, 1), 1),
    CONV(NB_DWCONV3D, 0, "k5 s(1,2,2)", 1, 2, 5, 6, 7, 2, K(5, 5, 5), K(1, 2, 2), K(2, 2, 2), 0),
    CONV(NB_DWCONV3D, 0, "k7 s3 edge", 1, 2, 7, 9, 10, 2, K(7, 7, 7), K(3, 3, 3), K(3, 3, 3), 1),
    CONV(NB_DWCONV3D, 0, "k7 s1", 1, 3, 5, 7, 9, 3, K(7, 7, 7), K(1, 1, 1), K(3, 3, 3), 0),
    CONV(NB_DWCONV3D, 0, "1x1x1 volume, padded", 1, 2, 1, 1, 1, 2, K(3, 3, 3), K(1, 1, 1),
         K(1, 1, 1), 1),
    CONV(NB_DWCONV3D, 1, "s1 dw (paper)", 2, 32, 28, 80, 80, 32, K(3, 3, 3), K(1, 1, 1), K(1, 1, 1),
         0),
    CONV(NB_DWCONV3D, 1, "s2 dw s(1,2,2)", 2, 32, 28, 80, 80, 32, K(3, 3, 3), K(1, 2, 2),
         K(1, 1, 1), 0),
    CONV(NB_DWCONV3D, 1, "k5 s2", 2, 96, 14, 40, 40, 96, K(5, 5, 5), K(2, 2, 2), K(2, 2, 2), 0),
    CONV(NB_DWCONV3D, 1, "s4 dw", 2, 80, 14, 20, 20, 80, K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 0),
    CONV(NB_DWCONV3D, 1, "s6 dw k5 s2", 2, 224, 7, 10, 10, 224, K(5, 5, 5), K(2, 2, 2), K(2, 2, 2),
         0),
    CONV(NB_DWCONV3D, 1, "BiFPN node dw", 2, 64, 7, 10, 10, 64, K(3, 3, 3), K(1, 1, 1), K(1, 1, 1),
         1),

    /* ---- bn_fwd / bn_bwd ---- */
    BN(0, "", S5(2, 3, 1, 5, 7), A_NONE, 0, 1, 1, 0),
    BN(0, "", S5(2, 3, 3, 2, 5), A_SWISH, 0, 1, 1, 0),
    BN(0, "", S5(1, 4, 3, 5, 1), A_NONE, 1, 1, 1, 0),
    BN(0, "", S5(2, 2, 2, 3, 7), A_RELU, 0, 1, 1, 0),
    BN(0, "", S5(2, 3, 1, 5, 7), A_SWISH, 1, 0, 0, 0),
    BN(0, "3 values per channel", S5(1, 2, 1, 1, 3), A_NONE, 0, 1, 1, 0),
    BN(0, "", S5(2, 3, 1, 5, 7), A_SWISH, 0, 1, 0, 0),
    BN(0, "", S5(2, 3, 3, 2, 5), A_SWISH, 0, 1, 1, 1),
    BN(0, "M=3: unbiased 6/5 not 3/2", S5(1, 2, 1, 1, 3), A_NONE, 0, 1, 1, 1),
    BN(0, "", S5(2, 4, 1, 3, 3), A_RELU, 1, 0, 0, 0),
    BN(0, "M=2 per channel", S5(2, 5, 1, 1, 1), A_NONE, 0, 1, 1, 0),
    BN(0, "", S5(2, 3, 3, 2, 5), A_RELU, 1, 1, 0, 1),
    BNO(0, "mean 30, std 1.4", S5(2, 3, 3, 20, 40), A_SWISH, 0, 1, 1, 0, 30.0f),
    BNO(0, "mean 30, std 1.4", S5(2, 3, 3, 20, 40), A_NONE, 0, 1, 1, 1, 30.0f),
    BN(1, "expand bn (paper)", S5(2, 64, 28, 80, 80), A_SWISH, 0, 1, 1, 0),
    BN(1, "project bn + residual", S5(2, 16, 28, 80, 80), A_NONE, 1, 1, 1, 0),
    BN(1, "SE-sized", S5(2, 640, 1, 1, 1), A_NONE, 0, 1, 1, 0),
    BN(1, "SE-sized", S5(2, 640, 1, 1, 1), A_SWISH, 0, 1, 1, 1),
    BN(1, "BiFPN node", S5(2, 64, 14, 20, 20), A_SWISH, 0, 0, 0, 0),
    BN(1, "BiFPN p4", S5(2, 64, 7, 10, 10), A_SWISH, 0, 1, 1, 1),

    /* ---- act_fwd / act_bwd (each case out of place and in place) ---- */
    VEC(NB_ACT, 0, "", 1009, A_NONE, 0, 0, 0, 0),
    VEC(NB_ACT, 0, "", 1009, A_RELU, 0, 0, 0, 0),
    VEC(NB_ACT, 0, "", 1009, A_SIGMOID, 0, 0, 0, 0),
    VEC(NB_ACT, 0, "", 1009, A_SWISH, 0, 0, 0, 0),
    VEC(NB_ACT, 0, "", 1, A_SWISH, 0, 0, 0, 0),
    VEC(NB_ACT, 0, "tail", 7, A_SIGMOID, 0, 0, 0, 0),
    VEC(NB_ACT, 1, "stage-1 activations", N_ACT, A_SWISH, 0, 0, 0, 0),
    VEC(NB_ACT, 1, "stage-1 activations", N_ACT, A_RELU, 0, 0, 0, 0),
    VEC(NB_ACT, 1, "SE gate", 2 * 384, A_SIGMOID, 0, 0, 0, 0),

    /* ---- prelu, gap, chscale ---- */
    SHAPE(NB_PRELU, 0, "", S5(2, 3, 1, 4, 5)),
    SHAPE(NB_PRELU, 0, "", S5(1, 5, 3, 1, 7)),
    SHAPE(NB_PRELU, 1, "BiFPN p3", S5(2, 64, 14, 20, 20)),
    SHAPE(NB_GAP, 0, "", S5(2, 3, 1, 7, 5)),
    SHAPE(NB_GAP, 0, "single voxel", S5(1, 1, 1, 1, 1)),
    SHAPE(NB_GAP, 0, "", S5(2, 5, 3, 3, 3)),
    SHAPE(NB_GAP, 1, "SE squeeze s1", S5(2, 32, 28, 80, 80)),
    SHAPE(NB_GAP, 1, "SE squeeze s7", S5(2, 384, 4, 5, 5)),
    SHAPE(NB_CHSCALE, 0, "", S5(2, 3, 1, 7, 5)),
    SHAPE(NB_CHSCALE, 0, "", S5(1, 4, 3, 1, 5)),
    SHAPE(NB_CHSCALE, 1, "SE excite s1", S5(2, 32, 28, 80, 80)),

    /* ---- maxpool3d ---- */
    POOL(0, "", S5(2, 2, 5, 7, 9), K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 0, 0),
    POOL(0, "", S5(2, 2, 5, 7, 9), K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 1, 0),
    POOL(0, "depth 1", S5(1, 3, 1, 6, 7), K(1, 3, 3), K(1, 2, 2), K(0, 1, 1), 1, 0),
    POOL(0, "ceil edge", S5(1, 2, 5, 5, 6), K(2, 2, 2), K(2, 2, 2), K(0, 1, 0), 1, 0),
    POOL(0, "ceil, pad 0", S5(1, 2, 5, 7, 6), K(2, 3, 2), K(2, 2, 2), K(0, 0, 0), 1, 0),
    POOL(0, "s2 on H only", S5(1, 2, 3, 7, 5), K(3, 3, 3), K(1, 2, 1), K(1, 1, 1), 0, 0),
    POOL(0, "s(1,2,2)", S5(2, 2, 5, 8, 9), K(3, 3, 3), K(1, 2, 2), K(1, 1, 1), 0, 0),
    POOL(0, "", S5(2, 2, 4, 6, 7), K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 1, 1),
    POOL(0, "", S5(1, 3, 3, 5, 5), K(3, 3, 3), K(1, 1, 1), K(1, 1, 1), 0, 1),
    POOL(1, "p3 -> p4 (model)", S5(2, 64, 14, 20, 20), K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 0, 0),
    POOL(1, "7x20x20 -> 4x10x10", S5(2, 64, 7, 20, 20), K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 0, 0),
    POOL(1, "p5 -> p6 (model)", S5(2, 64, 4, 5, 5), K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 0, 0),
    POOL(1, "s(1,2,2), ceil", S5(2, 64, 14, 40, 40), K(3, 3, 3), K(1, 2, 2), K(1, 1, 1), 1, 0),
    POOL(1, "", S5(2, 64, 7, 10, 10), K(3, 3, 3), K(2, 2, 2), K(1, 1, 1), 0, 1),

    /* ---- resize3d (nearest) ---- */
    RESIZE(0, "x2", S5(2, 3, 2, 5, 7), K(4, 10, 14)),
    RESIZE(0, "up, down, same", S5(1, 2, 3, 7, 5), K(7, 3, 5)),
    RESIZE(0, "from a single voxel", S5(1, 2, 1, 1, 1), K(3, 4, 5)),
    RESIZE(0, "non-integer ratios", S5(1, 1, 5, 3, 13), K(11, 7, 4)),
    RESIZE(1, "4x10x10 -> 7x20x20", S5(2, 64, 4, 10, 10), K(7, 20, 20)),
    RESIZE(1, "7x20x20 -> 4x10x10 (down)", S5(2, 64, 7, 20, 20), K(4, 10, 10)),
    RESIZE(1, "p5 -> p4 (model)", S5(2, 64, 4, 5, 5), K(7, 10, 10)),
    RESIZE(1, "p7 -> p6 (model)", S5(2, 64, 1, 2, 2), K(2, 3, 3)),

    /* ---- fuse ---- */
    FUSE(0, "", S5(2, 3, 1, 5, 7), 2, 0.7f, 1.3f),
    FUSE(0, "a negative weight", S5(2, 3, 1, 5, 7), 3, 0.4f, -0.3f, 1.1f),
    FUSE(0, "all weights negative", S5(1, 2, 3, 1, 5), 2, -0.5f, -0.2f),
    FUSE(0, "", S5(1, 3, 3, 5, 1), 3, 1e-3f, 2.0f, 0.5f),
    FUSE(1, "p3 node k=2", S5(2, 64, 14, 20, 20), 2, 0.9f, 1.2f),
    FUSE(1, "p4 node k=3", S5(2, 64, 7, 10, 10), 3, 1.0f, -0.1f, 0.6f),

    /* ---- add, axpy, scale, sumsq ---- */
    VEC(NB_ADD, 0, "", 517, A_NONE, 0, 0, 0, 0),
    VEC(NB_ADD, 0, "", 517, A_NONE, 1, 0, 0, 0),
    VEC(NB_ADD, 0, "", 517, A_NONE, 2, 0, 0, 0),
    VEC(NB_ADD, 0, "", 1, A_NONE, 1, 0, 0, 0),
    VEC(NB_ADD, 1, "residual gradients", N_ACT, A_NONE, 1, 0, 0, 0),
    VEC(NB_AXPY, 0, "", 517, A_NONE, 0, -0.5f, 0, 0),
    VEC(NB_AXPY, 0, "", 3, A_NONE, 0, 2.0f, 0, 0),
    VEC(NB_AXPY, 1, "", N_ACT, A_NONE, 0, 0.25f, 0, 0),
    VEC(NB_SCALE, 0, "", 517, A_NONE, 0, 0.75f, 0, 0),
    VEC(NB_SCALE, 0, "", 517, A_NONE, 1, -3.0f, 0, 0),
    VEC(NB_SCALE, 0, "", 1, A_NONE, 1, 0.5f, 0, 0),
    VEC(NB_SCALE, 1, "input scaling 1/255", 2 * 2 * 28 * 160 * 160, A_NONE, 1, 1.0f / 255.0f, 0, 0),
    VEC(NB_SUMSQ, 0, "empty", 0, A_NONE, 0, 0, 0, 0),
    VEC(NB_SUMSQ, 0, "", 1, A_NONE, 0, 0, 0, 0),
    VEC(NB_SUMSQ, 0, "", 3, A_NONE, 0, 0, 0, 0),
    VEC(NB_SUMSQ, 0, "", 1001, A_NONE, 0, 0, 0, 0),
    VEC(NB_SUMSQ, 0, "one past a 2048 block", 2049, A_NONE, 0, 0, 0, 0),
    VEC(NB_SUMSQ, 1, "gradient norm", 3999971, A_NONE, 0, 0, 0, 0),

    /* ---- mse_fwd / mse_bwd ---- */
    VEC(NB_MSE, 0, "", 5, A_NONE, 0, 1.0f, 0, 0),
    VEC(NB_MSE, 0, "batch 2 (the model's)", 2, A_NONE, 0, 1.0f, 0, 0),
    VEC(NB_MSE, 0, "", 1, A_NONE, 0, 0.5f, 0, 0),
    VEC(NB_MSE, 1, "", 1000003, A_NONE, 0, 1.0f, 0, 0),

    /* ---- adam ---- */
    VEC(NB_ADAM, 0, "", 1001, A_NONE, 0, 0, 3, 1e-2f),
    VEC(NB_ADAM, 0, "", 1, A_NONE, 0, 0, 2, 0.0f),
    VEC(NB_ADAM, 1, "all parameters", 3999971, A_NONE, 0, 0, 2, 1e-4f),
};

const size_t nb_ncases = sizeof nb_cases / sizeof *nb_cases;

const char *nb_op_name(nb_op op) {
    static const char *n[NB_OP_COUNT] = {"conv3d",  "dwconv3d", "bn",     "act",  "prelu", "gap",
                                         "chscale", "maxpool",  "resize", "fuse", "add",   "axpy",
                                         "scale",   "sumsq",    "mse",    "adam"};
    return (unsigned)op < NB_OP_COUNT ? n[op] : "?";
}

void nb_run_case(const nb_case *c) {
    switch (c->op) {
    case NB_CONV3D:
    case NB_DWCONV3D: nb_conv_run(c); break;
    case NB_BN: nb_bn_run(c); break;
    case NB_MAXPOOL:
    case NB_RESIZE:
    case NB_FUSE: nb_spatial_run(c); break;
    default: nb_elem_run(c); break;
    }
}

void nb_run_op(nb_op op) {
    for (size_t i = 0; i < nb_ncases; i++)
        if (nb_cases[i].op == op) nb_run_case(&nb_cases[i]);
}
