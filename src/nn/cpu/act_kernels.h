/* act_kernels.h — the element-wise kernels of BatchNorm and the activations, compiled once per ISA.
 *
 * cpu_ops.c includes this file twice: with AK_SUFFIX avx2 and AK_TARGET the avx2,fma target
 * attribute (AK_FMA an explicit fused multiply-add), and with AK_SUFFIX portable and no target
 * (baseline x86-64, AK_FMA a * b + c). Both use GCC vector extensions of 8 floats (two SSE
 * registers on the baseline); masks replace branches. The AVX2 variant's exp uses fused
 * multiply-adds, so its results differ from the portable one's in the last bits; neither depends
 * on the thread count. Reductions: float vector partial sums over blocks of AK_RBLOCK elements,
 * accumulated in double.
 * Not for: anything but cpu_ops.c.
 */
#define AK_CAT2(a, b) a##_##b
#define AK_CAT(a, b)  AK_CAT2(a, b)
#define AKN(name)     AK_CAT(name, AK_SUFFIX)
#define AK_INLINE     static inline __attribute__((always_inline)) AK_TARGET
#define AK_LD(p)      ((v8)(*(const v8u *)(p)))

AK_INLINE v8 AKN(vsel)(v8i m, v8 a, v8 b) {
    return (v8)((m & (v8i)a) | (~m & (v8i)b));
}

/* exp: Cephes-style range reduction + degree-6 polynomial (about 2 ulp), round-to-nearest by the
 * 1.5 * 2^23 trick, 2^n built in the exponent bits. */
AK_INLINE v8 AKN(vexp)(v8 x) {
    const v8 hi = (v8){0} + 88.0f, lo = (v8){0} - 87.0f, magic = (v8){0} + 12582912.0f;
    x = AKN(vsel)(x > hi, hi, x);
    x = AKN(vsel)(x < lo, lo, x);
    const v8 tm = AK_FMA(x, (v8){0} + 1.44269504088896341f, magic);
    const v8i n = (v8i)tm - (v8i)magic;
    const v8 fn = tm - magic;
    const v8 r = AK_FMA(fn, (v8){0} + 2.12194440e-4f, AK_FMA(fn, (v8){0} - 0.693359375f, x));
    v8 p = (v8){0} + 1.9875691500e-4f;
    p = AK_FMA(p, r, (v8){0} + 1.3981999507e-3f);
    p = AK_FMA(p, r, (v8){0} + 8.3334519073e-3f);
    p = AK_FMA(p, r, (v8){0} + 4.1665795894e-2f);
    p = AK_FMA(p, r, (v8){0} + 1.6666665459e-1f);
    p = AK_FMA(p, r, (v8){0} + 5.0000001201e-1f);
    const v8 e = AK_FMA(p * r, r, r) + 1.0f;
    return e * (v8)((n + 127) << 23);
}

AK_INLINE v8 AKN(vsig)(v8 z) {
    return 1.0f / (1.0f + AKN(vexp)(-z));
}

AK_INLINE v8 AKN(vact)(sq_act a, v8 z) {
    switch (a) {
    case SQ_ACT_RELU: return (v8)((v8i)z & (z > 0.0f));
    case SQ_ACT_SIGMOID: return AKN(vsig)(z);
    case SQ_ACT_SWISH: return z * AKN(vsig)(z);
    default: return z;
    }
}

/* dy * act'(z) */
AK_INLINE v8 AKN(vactd)(sq_act a, v8 z, v8 dy) {
    switch (a) {
    case SQ_ACT_RELU: return (v8)((v8i)dy & (z > 0.0f));
    case SQ_ACT_SIGMOID: {
        const v8 sg = AKN(vsig)(z);
        return dy * sg * (1.0f - sg);
    }
    case SQ_ACT_SWISH: {
        const v8 sg = AKN(vsig)(z);
        return dy * sg * (1.0f + z * (1.0f - sg));
    }
    default: return dy;
    }
}

/* Lanes [0, m) set. */
AK_INLINE v8i AKN(lane_lt)(size_t m) {
    const v8i idx = {0, 1, 2, 3, 4, 5, 6, 7};
    return idx < (int)m;
}

AK_INLINE v8 AKN(vload_part)(const float *p, size_t n) {
    v8 v = {0};
    memcpy(&v, p, n * sizeof(float));
    return v;
}

/* y[i] = act(x[i] * sa + sb) (+ r[i] where r is not NULL); y may equal x. */
static AK_TARGET void AKN(act_apply)(sq_act a, float *y, const float *x, const float *r, size_t n,
                                     float sa, float sb) {
    const v8 va = (v8){0} + sa, vb = (v8){0} + sb;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 v = AKN(vact)(a, AK_FMA(AK_LD(x + i), va, vb));
        if (r) v += AK_LD(r + i);
        *(v8u *)(y + i) = v;
    }
    if (i < n) {
        v8 v = AKN(vact)(a, AK_FMA(AKN(vload_part)(x + i, n - i), va, vb));
        if (r) v += AKN(vload_part)(r + i, n - i);
        memcpy(y + i, &v, (n - i) * sizeof(float));
    }
}

/* g[i] = dy[i] * act'(z) with z = x[i] * sa + sb; g may equal dy. */
static AK_TARGET void AKN(act_grad)(sq_act a, float *g, const float *dy, const float *x, size_t n,
                                    float sa, float sb) {
    if (a == SQ_ACT_NONE) {
        if (g != dy) memmove(g, dy, n * sizeof(float));
        return;
    }
    const v8 va = (v8){0} + sa, vb = (v8){0} + sb;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        *(v8u *)(g + i) = AKN(vactd)(a, AK_FMA(AK_LD(x + i), va, vb), AK_LD(dy + i));
    if (i < n) {
        const v8 v = AKN(vactd)(a, AK_FMA(AKN(vload_part)(x + i, n - i), va, vb),
                                AKN(vload_part)(dy + i, n - i));
        memcpy(g + i, &v, (n - i) * sizeof(float));
    }
}

/* Horizontal sum of a vector, lanes in order. */
AK_INLINE float AKN(hsum)(v8 v) {
    float s = 0.0f;
    for (int k = 0; k < 8; k++)
        s += v[k];
    return s;
}

/* *sg += sum g', *sgx += sum g' * (x - mean) * invstd, with g' = dy * act'(x * sa + sb); where
 * gout is not NULL, g' is stored there too (gout may equal dy). */
static AK_TARGET void AKN(bn_grad_sums)(sq_act a, float *gout, const float *dy, const float *x,
                                        size_t n, float sa, float sb, float mean, float invstd,
                                        double *sg, double *sgx) {
    const v8 va = (v8){0} + sa, vb = (v8){0} + sb, vm = (v8){0} + mean, vi = (v8){0} + invstd;
    for (size_t lo = 0; lo < n; lo += AK_RBLOCK) {
        const size_t hi = lo + AK_RBLOCK < n ? lo + AK_RBLOCK : n;
        v8 a0 = {0}, a1 = {0};
        size_t i = lo;
        for (; i + 8 <= hi; i += 8) {
            const v8 xv = AK_LD(x + i);
            const v8 g = AKN(vactd)(a, AK_FMA(xv, va, vb), AK_LD(dy + i));
            if (gout) *(v8u *)(gout + i) = g;
            a0 += g;
            a1 = AK_FMA(g, (xv - vm) * vi, a1);
        }
        if (i < hi) {
            const size_t m = hi - i;
            const v8 xv = AKN(vload_part)(x + i, m);
            v8 g = AKN(vactd)(a, AK_FMA(xv, va, vb), AKN(vload_part)(dy + i, m));
            g = AKN(vsel)(AKN(lane_lt)(m), g, (v8){0});
            if (gout) memcpy(gout + i, &g, m * sizeof(float));
            a0 += g;
            a1 = AK_FMA(g, (xv - vm) * vi, a1);
        }
        *sg += AKN(hsum)(a0);
        *sgx += AKN(hsum)(a1);
    }
}

/* dx[i] = k * (g[i] - mg - (x[i] - mean) * invstd * mgx), g read from gin (g' stored by
 * bn_grad_sums) or, where gin is NULL, recomputed from dy and x. dx may equal gin. */
static AK_TARGET void AKN(bn_grad_apply)(sq_act a, float *dx, const float *gin, const float *dy,
                                         const float *x, size_t n, float sa, float sb, float mean,
                                         float invstd, float k, float mg, float mgx) {
    const v8 va = (v8){0} + sa, vb = (v8){0} + sb, vm = (v8){0} + mean, vi = (v8){0} + invstd;
    const v8 vk = (v8){0} + k, vmg = (v8){0} + mg, vmgx = (v8){0} + mgx;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const v8 xv = AK_LD(x + i);
        const v8 g = gin ? AK_LD(gin + i) : AKN(vactd)(a, AK_FMA(xv, va, vb), AK_LD(dy + i));
        *(v8u *)(dx + i) = vk * (g - vmg - ((xv - vm) * vi) * vmgx);
    }
    if (i < n) {
        const size_t m = n - i;
        const v8 xv = AKN(vload_part)(x + i, m);
        const v8 g = gin ? AKN(vload_part)(gin + i, m)
                         : AKN(vactd)(a, AK_FMA(xv, va, vb), AKN(vload_part)(dy + i, m));
        const v8 v = vk * (g - vmg - ((xv - vm) * vi) * vmgx);
        memcpy(dx + i, &v, m * sizeof(float));
    }
}
