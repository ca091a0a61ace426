/* shapes.c — output-shape rules and shape validation shared by every backend (convolution,
 * pooling, resize). */
#include "nn/backend.h"

static int conv_out(int i, int k, int s, int p) {
    return (i + 2 * p - k) / s + 1;
}

sq_shape5 sq_conv3d_out(const sq_conv3d *p) {
    sq_shape5 o = p->in;
    o.c = p->cout;
    o.d = conv_out(p->in.d, p->k[0], p->stride[0], p->pad[0]);
    o.h = conv_out(p->in.h, p->k[1], p->stride[1], p->pad[1]);
    o.w = conv_out(p->in.w, p->k[2], p->stride[2], p->pad[2]);
    return o;
}

/* PyTorch's pooling_output_shape. */
static int pool_out(int i, int k, int s, int p, int ceil_mode) {
    int num = i + 2 * p - k + (ceil_mode ? s - 1 : 0);
    int o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && (o - 1) * s >= i + p) o--;
    return o;
}

sq_shape5 sq_pool3d_out(const sq_pool3d *p) {
    sq_shape5 o = p->in;
    o.d = pool_out(p->in.d, p->k[0], p->stride[0], p->pad[0], p->ceil_mode);
    o.h = pool_out(p->in.h, p->k[1], p->stride[1], p->pad[1], p->ceil_mode);
    o.w = pool_out(p->in.w, p->k[2], p->stride[2], p->pad[2], p->ceil_mode);
    return o;
}

/* ---- validation shared by every backend -------------------------------------------------------
 */

sq_code sq_shape5_check(sq_shape5 s, const char *op, sq_status *st) {
    if (s.n < 1 || s.c < 1 || s.d < 1 || s.h < 1 || s.w < 1)
        return sq_fail(st, SQ_ERR_RANGE, "%s: non-positive extent in shape %dx%dx%dx%dx%d", op, s.n,
                       s.c, s.d, s.h, s.w);
    return SQ_OK;
}

sq_code sq_conv3d_check(const sq_conv3d *p, int depthwise, sq_status *st) {
    const sq_shape5 s = p->in;
    if (s.n < 1 || s.c < 1 || s.d < 1 || s.h < 1 || s.w < 1 || p->cout < 1)
        return sq_fail(st, SQ_ERR_RANGE, "conv3d: non-positive extent in input %dx%dx%dx%dx%d", s.n,
                       s.c, s.d, s.h, s.w);
    if (depthwise && p->cout != s.c)
        return sq_fail(st, SQ_ERR_RANGE, "dwconv3d: cout %d must equal input channels %d", p->cout,
                       s.c);
    const int in[3] = {s.d, s.h, s.w};
    for (int a = 0; a < 3; a++) {
        if (p->k[a] < 1 || p->stride[a] < 1 || p->pad[a] < 0)
            return sq_fail(st, SQ_ERR_RANGE, "conv3d: axis %d: kernel %d stride %d pad %d", a,
                           p->k[a], p->stride[a], p->pad[a]);
        if (in[a] + 2 * p->pad[a] < p->k[a])
            return sq_fail(st, SQ_ERR_RANGE,
                           "conv3d: axis %d: input %d + 2*pad %d is smaller than kernel %d", a,
                           in[a], p->pad[a], p->k[a]);
    }
    return SQ_OK;
}

sq_code sq_pool3d_check(const sq_pool3d *p, sq_status *st) {
    SQ_TRY(sq_shape5_check(p->in, "maxpool3d", st));
    for (int a = 0; a < 3; a++)
        if (p->k[a] < 1 || p->stride[a] < 1 || p->pad[a] < 0 || 2 * p->pad[a] > p->k[a])
            return sq_fail(st, SQ_ERR_RANGE, "maxpool3d: axis %d: kernel %d stride %d pad %d", a,
                           p->k[a], p->stride[a], p->pad[a]);
    const sq_shape5 o = sq_pool3d_out(p);
    if (o.d < 1 || o.h < 1 || o.w < 1)
        return sq_fail(st, SQ_ERR_RANGE, "maxpool3d: empty output %dx%dx%d", o.d, o.h, o.w);
    return SQ_OK;
}

sq_code sq_resize3d_check(const sq_resize3d *p, sq_status *st) {
    SQ_TRY(sq_shape5_check(p->in, "resize3d", st));
    if (p->out[0] < 1 || p->out[1] < 1 || p->out[2] < 1)
        return sq_fail(st, SQ_ERR_RANGE, "resize3d: non-positive target %dx%dx%d", p->out[0],
                       p->out[1], p->out[2]);
    return SQ_OK;
}

sq_code sq_byte_range_check(const char *backend, int present, size_t buf_bytes, size_t off,
                            size_t bytes, const char *what, sq_status *st) {
    if (!present) return sq_fail(st, SQ_ERR_RANGE, "%s: %s: NULL buffer", backend, what);
    if (off > buf_bytes || bytes > buf_bytes - off)
        return sq_fail(st, SQ_ERR_RANGE, "%s: %s: bytes [%zu, %zu) outside a buffer of %zu bytes",
                       backend, what, off, off + bytes, buf_bytes);
    return SQ_OK;
}
