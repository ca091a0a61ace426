/* nb_memory.c — the backend contract outside the op table, on whichever backend is under test:
 * memory (buf_alloc zero-fills, buf_size, upload/download/copy/fill at byte offsets, buf_host NULL
 * exactly for device memory, buf_native), the stream and events; bad shapes failing cleanly with
 * SQ_ERR_RANGE; and hand values of the PyTorch rules (pooling output sizes, nearest resize 3 -> 7,
 * Adam's first step).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pass_line(const char *what, int ok, const char *detail) {
    nb_expect("mem", what, ok);
    if (!ok && detail && !nb.quiet) printf("          %s\n", detail);
}

#define OKC(expr, what)                                                                            \
    do {                                                                                           \
        sq_status st_;                                                                             \
        sq_status_clear(&st_);                                                                     \
        sq_code rc_ = (expr);                                                                      \
        if (rc_ != SQ_OK) fail_msg("%s: %s", what, st_.msg);                                       \
    } while (0)
#define ST (&st_)

static void mem_alloc_zero(sq_backend *be) {
    sq_status st;
    sq_status_clear(&st);
    sq_buf *b = NULL;
    assert_int_equal(be->buf_alloc(be, 4099, &b, &st), SQ_OK);
    unsigned char *h = malloc(4099);
    assert_non_null(h);
    memset(h, 0x77, 4099);
    OKC(be->download(be, h, b, 0, 4099, ST), "download");
    int zero = 1;
    for (int i = 0; i < 4099; i++)
        zero &= h[i] == 0;
    pass_line("buf_alloc zero-filled (4099 B)", zero, NULL);
    pass_line("buf_size >= requested", be->buf_size(be, b) >= 4099, NULL);
    pass_line("buf_host NULL iff device memory",
              (be->buf_host(be, b) == NULL) == (be->device_memory != 0), NULL);
    pass_line("buf_native non-NULL", be->buf_native(be, b) != NULL, NULL);
    be->buf_free(be, b);
    be->buf_free(be, NULL); /* a no-op */
    free(h);
}

/* upload at an odd byte offset, copy between buffers at offsets, fill a byte range. */
static void mem_copies(sq_backend *be) {
    sq_status st;
    sq_status_clear(&st);
    enum { N = 1000 };
    unsigned char src[N], got[N], want[N];
    for (int i = 0; i < N; i++)
        src[i] = (unsigned char)(i * 37 + 11);
    sq_buf *a = NULL, *b = NULL;
    assert_int_equal(be->buf_alloc(be, N, &a, &st), SQ_OK);
    assert_int_equal(be->buf_alloc(be, N, &b, &st), SQ_OK);
    OKC(be->upload(be, a, 3, src, N - 3, ST), "upload");
    OKC(be->sync(be, ST), "sync");
    OKC(be->download(be, got, a, 3, N - 3, ST), "download");
    pass_line("upload/download at byte offset 3", !memcmp(got, src, N - 3), NULL);
    OKC(be->copy(be, b, 100, a, 7, 500, ST), "copy");
    OKC(be->download(be, got, b, 0, N, ST), "download");
    memset(want, 0, N);
    memcpy(want + 100, src + 4, 500);
    pass_line("copy 500 B from offset 7 to offset 100", !memcmp(got, want, N), NULL);
    OKC(be->fill(be, b, 201, 0xA5, 299, ST), "fill");
    OKC(be->download(be, got, b, 0, N, ST), "download");
    memset(want + 201, 0xA5, 299);
    pass_line("fill 0xA5 over [201, 500)", !memcmp(got, want, N), NULL);
    be->buf_free(be, a);
    be->buf_free(be, b);
}

static void mem_events(sq_backend *be) {
    void *ev = NULL;
    OKC(be->event_create(be, &ev, ST), "event_create");
    pass_line("event_create hands out a token", ev != NULL, NULL);
    OKC(be->event_record(be, ev, ST), "event_record");
    OKC(be->stream_wait(be, ev, ST), "stream_wait");
    OKC(be->sync(be, ST), "sync");
    be->event_destroy(be, ev);
    be->event_destroy(be, NULL);
    pass_line("stream NULL iff host memory (synchronous)",
              (be->stream(be) == NULL) == (be->device_memory == 0), NULL);
}

void nb_test_memory(void **state) {
    (void)state;
    const long f0 = nb.fails;
    if (!nb_begin("memory", 0, "buffers, copies, stream, events")) return;
    mem_alloc_zero(nb.be);
    mem_copies(nb.be);
    mem_events(nb.be);
    assert_int_equal(nb.fails - f0, 0);
}

/* ---- bad shapes ------------------------------------------------------------------------------ */

static void expect_range(const char *what, sq_code rc, const sq_status *st) {
    pass_line(what, rc == SQ_ERR_RANGE, st->msg);
    if (!nb.quiet) printf("          message: %s\n", st->msg);
}

void nb_test_bad_shapes(void **state) {
    (void)state;
    const long f0 = nb.fails;
    if (!nb_begin("shapes", 0, "bad shapes fail cleanly")) return;
    sq_backend *be = nb.be;
    sq_status st;
    sq_status_clear(&st);
    nb_dt t = nb_out(be, 1000);
    sq_conv3d p = {.in = {1, 3, 4, 5, 6}, .cout = 2, .k = {3, 3, 3}, .stride = {1, 1, 1}};
    if (NB_HAS(be, dwconv3d_fwd)) {
        expect_range("dwconv3d cout != c",
                     be->dwconv3d_fwd(be, &p, nb_v(t), nb_v(t), sq_view_none(), nb_v(t), &st), &st);
        p.cout = 3;
        p.k[2] = 9; /* larger than the padded width */
        sq_status_clear(&st);
        expect_range("dwconv3d kernel > padded input",
                     be->dwconv3d_fwd(be, &p, nb_v(t), nb_v(t), sq_view_none(), nb_v(t), &st), &st);
    }
    if (NB_HAS(be, conv3d_fwd)) {
        sq_status_clear(&st);
        expect_range("conv3d kernel > padded input",
                     be->conv3d_fwd(be, &p, nb_v(t), nb_v(t), sq_view_none(), nb_v(t), &st), &st);
    }
    if (NB_HAS(be, maxpool3d_fwd)) {
        const sq_pool3d q = {{1, 1, 4, 4, 4}, {3, 3, 3}, {1, 1, 1}, {2, 2, 2}, 0}; /* pad > k/2 */
        sq_status_clear(&st);
        expect_range("maxpool3d pad > k/2", be->maxpool3d_fwd(be, &q, nb_v(t), nb_v(t), &st), &st);
    }
    nb_free(&t);
    assert_int_equal(nb.fails - f0, 0);
}

/* ---- hand values ------------------------------------------------------------------------------
 */

static void pool_sizes(void) {
    sq_pool3d q = {{1, 1, 6, 5, 7}, {3, 2, 3}, {2, 2, 2}, {1, 1, 1}, 0};
    sq_shape5 o = sq_pool3d_out(&q);
    /* floor((6+2-3)/2)+1 = 3, floor((5+2-2)/2)+1 = 3, floor((7+2-3)/2)+1 = 4 */
    pass_line("pool floor sizes 3,3,4", o.d == 3 && o.h == 3 && o.w == 4, NULL);
    q.ceil_mode = 1;
    o = sq_pool3d_out(&q);
    /* D: ceil(5/2)+1 = 4, (4-1)*2 = 6 < 6+1 kept; H: ceil(5/2)+1 = 4, but 6 >= 5+1: dropped */
    pass_line("pool ceil sizes 4,3,4 (last H window dropped)", o.d == 4 && o.h == 3 && o.w == 4,
              NULL);
}

static void resize_3_to_7(sq_backend *be) {
    /* PyTorch nearest picks floor(dst*in/out): 3 -> 7 is 0,0,0,1,1,2,2 */
    if (!NB_HAS(be, resize3d_fwd)) return;
    const sq_resize3d p = {{1, 1, 1, 1, 3}, {1, 1, 7}};
    const float x[3] = {0, 1, 2}, want[7] = {0, 0, 0, 1, 1, 2, 2};
    float y[7];
    nb_dt xd = nb_in(be, x, 3), yd = nb_out(be, 7);
    sq_status st;
    sq_status_clear(&st);
    if (nb_rc(be->resize3d_fwd(be, &p, nb_v(xd), nb_v(yd), &st), &st, "resize3d_fwd")) {
        nb_get(yd, y);
        pass_line("resize 3 -> 7 is 0,0,0,1,1,2,2", !memcmp(y, want, sizeof y), NULL);
    }
    nb_free(&xd), nb_free(&yd);
}

static void adam_first_step(sq_backend *be) {
    /* p = 1, g = 0.5, lr = 0.1: the first bias-corrected step moves p by lr, to 0.9 */
    if (!NB_HAS(be, adam)) return;
    const float p0 = 1.0f, g = 0.5f, z = 0.0f;
    float p;
    nb_dt pd = nb_in(be, &p0, 1), gd = nb_in(be, &g, 1), md = nb_in(be, &z, 1),
          vd = nb_in(be, &z, 1);
    const sq_adam a = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
    sq_status st;
    sq_status_clear(&st);
    if (nb_rc(be->adam(be, &a, 1, nb_v(pd), nb_v(gd), nb_v(md), nb_v(vd), &st), &st, "adam")) {
        nb_get(pd, &p);
        const double want = 0.9;
        nb_check("mem", "adam p=1 g=.5 lr=.1 -> 0.9", &p, &want, NULL, 1, (nb_tol){1e-6, 0, 0});
    }
    nb_free(&pd), nb_free(&gd), nb_free(&md), nb_free(&vd);
}

void nb_test_pure_rules(void **state) {
    (void)state;
    const long f0 = nb.fails;
    if (!nb_begin("rules", 0, "PyTorch hand values")) return;
    pool_sizes();
    resize_3_to_7(nb.be);
    adam_first_step(nb.be);
    assert_int_equal(nb.fails - f0, 0);
}
