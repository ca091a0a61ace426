/* shapes.c — output-shape rules shared by every backend (convolution, pooling). */
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
