/* dwconv_kernels.h — the row kernels of the depthwise convolution, compiled once per ISA.
 *
 * cpu_dwconv.c includes this file twice: with DW_SUFFIX avx2 and DW_TARGET the avx2,fma target
 * attribute, and with DW_SUFFIX portable and no target (baseline x86-64 / any GCC target). The
 * code uses GCC vector extensions (8 floats) so both variants come from one source; the AVX2 one
 * uses explicit fused multiply-adds (ISO C mode keeps -ffp-contract=off).
 * Not for: anything but cpu_dwconv.c.
 */
#define DW_CAT2(a, b) a##_##b
#define DW_CAT(a, b)  DW_CAT2(a, b)
#define DWN(name)     DW_CAT(name, DW_SUFFIX)

#define DW_INLINE static inline __attribute__((always_inline)) DW_TARGET
#define DW_LD(p)  (*(const v8u *)(p))
/* even / odd lanes of the 16 floats lo:hi (clang spells GCC's __builtin_shuffle differently; the
 * clang build is the fuzzing one, tests/fuzz/run.sh) */
#ifdef __clang__
#define DW_EVEN(lo, hi) __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14)
#define DW_ODD(lo, hi)  __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15)
#else
#define DW_EVEN(lo, hi) __builtin_shuffle(lo, hi, (v8i){0, 2, 4, 6, 8, 10, 12, 14})
#define DW_ODD(lo, hi)  __builtin_shuffle(lo, hi, (v8i){1, 3, 5, 7, 9, 11, 13, 15})
#endif

/* Interior of a stride-2 phase-split row: input column i goes to padded column j = i + pw, i.e.
 * phase j & 1, slot j >> 1. Sixteen inputs at a time; returns how many were done. */
static DW_TARGET int DWN(deint2)(const float *xr, int W, int pw, float *de, float *dodd) {
    int i = 0;
    for (; i + 16 <= W; i += 16) {
        const v8 lo = DW_LD(xr + i), hi = DW_LD(xr + i + 8);
        *(v8u *)(de + ((i + pw) >> 1)) = DW_EVEN(lo, hi);
        *(v8u *)(dodd + ((i + 1 + pw) >> 1)) = DW_ODD(lo, hi);
    }
    return i;
}

/* One output row: yr[ow] = bias + sum over the nr input rows and KW taps. Even and odd input rows
 * accumulate into separate registers (twice the independent FMA chains), summed at the end. Full
 * 8-lane chunks are computed even at the row end (the extra lanes read the next row or the zeroed
 * slack of P and are not stored). */
DW_INLINE void DWN(fwd_row)(const int KW, int nr, const float *const *rows, const v8 *const *wts,
                            const int *coff, int Wo, float bias, float *restrict yr) {
    const v8 vb = (v8){0} + bias, z = {0};
    int ow = 0;
    for (; ow + 32 <= Wo; ow += 32) {
        v8 a0 = vb, a1 = vb, a2 = vb, a3 = vb, b0 = z, b1 = z, b2 = z, b3 = z;
        int r = 0;
        for (; r + 2 <= nr; r += 2) {
            const float *rp = rows[r] + ow, *rq = rows[r + 1] + ow;
            const v8 *wr = wts[r], *wq = wts[r + 1];
#pragma GCC unroll 8
            for (int t = 0; t < KW; t++) {
                const float *p = rp + coff[t], *q = rq + coff[t];
                const v8 wv = wr[t], wu = wq[t];
                a0 = DW_FMA(wv, DW_LD(p), a0);
                a1 = DW_FMA(wv, DW_LD(p + 8), a1);
                a2 = DW_FMA(wv, DW_LD(p + 16), a2);
                a3 = DW_FMA(wv, DW_LD(p + 24), a3);
                b0 = DW_FMA(wu, DW_LD(q), b0);
                b1 = DW_FMA(wu, DW_LD(q + 8), b1);
                b2 = DW_FMA(wu, DW_LD(q + 16), b2);
                b3 = DW_FMA(wu, DW_LD(q + 24), b3);
            }
        }
        for (; r < nr; r++) {
            const float *rp = rows[r] + ow;
            const v8 *wr = wts[r];
#pragma GCC unroll 8
            for (int t = 0; t < KW; t++) {
                const float *p = rp + coff[t];
                a0 = DW_FMA(wr[t], DW_LD(p), a0);
                a1 = DW_FMA(wr[t], DW_LD(p + 8), a1);
                a2 = DW_FMA(wr[t], DW_LD(p + 16), a2);
                a3 = DW_FMA(wr[t], DW_LD(p + 24), a3);
            }
        }
        *(v8u *)(yr + ow) = a0 + b0;
        *(v8u *)(yr + ow + 8) = a1 + b1;
        *(v8u *)(yr + ow + 16) = a2 + b2;
        *(v8u *)(yr + ow + 24) = a3 + b3;
    }
    for (; ow + 16 <= Wo; ow += 16) {
        /* two chunks, four chains (row parity x chunk) */
        v8 a0 = vb, a1 = vb, b0 = z, b1 = z;
        int r = 0;
        for (; r + 2 <= nr; r += 2) {
            const float *rp = rows[r] + ow, *rq = rows[r + 1] + ow;
            const v8 *wr = wts[r], *wq = wts[r + 1];
#pragma GCC unroll 8
            for (int t = 0; t < KW; t++) {
                const float *p = rp + coff[t], *q = rq + coff[t];
                a0 = DW_FMA(wr[t], DW_LD(p), a0);
                a1 = DW_FMA(wr[t], DW_LD(p + 8), a1);
                b0 = DW_FMA(wq[t], DW_LD(q), b0);
                b1 = DW_FMA(wq[t], DW_LD(q + 8), b1);
            }
        }
        for (; r < nr; r++) {
            const float *rp = rows[r] + ow;
            const v8 *wr = wts[r];
#pragma GCC unroll 8
            for (int t = 0; t < KW; t++) {
                a0 = DW_FMA(wr[t], DW_LD(rp + coff[t]), a0);
                a1 = DW_FMA(wr[t], DW_LD(rp + coff[t] + 8), a1);
            }
        }
        *(v8u *)(yr + ow) = a0 + b0;
        *(v8u *)(yr + ow + 8) = a1 + b1;
    }
    for (; ow < Wo; ow += 8) {
        /* one chunk (possibly partial), chains split by row parity */
        v8 a0 = vb, b0 = z;
        int r = 0;
        for (; r + 2 <= nr; r += 2) {
            const float *rp = rows[r] + ow, *rq = rows[r + 1] + ow;
            const v8 *wr = wts[r], *wq = wts[r + 1];
#pragma GCC unroll 8
            for (int t = 0; t < KW; t++) {
                a0 = DW_FMA(wr[t], DW_LD(rp + coff[t]), a0);
                b0 = DW_FMA(wq[t], DW_LD(rq + coff[t]), b0);
            }
        }
        for (; r < nr; r++) {
#pragma GCC unroll 8
            for (int t = 0; t < KW; t++)
                a0 = DW_FMA(wts[r][t], DW_LD(rows[r] + ow + coff[t]), a0);
        }
        a0 += b0;
        if (ow + 8 <= Wo) {
            *(v8u *)(yr + ow) = a0;
        } else {
            float tmp[8];
            memcpy(tmp, &a0, sizeof tmp);
            memcpy(yr + ow, tmp, (size_t)(Wo - ow) * sizeof(float));
        }
    }
}

/* UPS: P holds a zero-upsampled plane (factors ud, uh in D and H; only the Dr x Hr real rows are
 * stored and the zero rows are skipped) — the transposed convolution of strided backward data. */
DW_INLINE void DWN(fwd_plane_k)(const int KW, const int UPS, const dw_geo *g, const float *P,
                                const v8 *wv, float bias, float *y) {
    const float *rows[DW_KMAX * DW_KMAX];
    const v8 *wts[DW_KMAX * DW_KMAX];
    const int Hr = UPS ? g->Hr : g->H;
    for (int od = 0; od < g->Do; od++)
        for (int oh = 0; oh < g->Ho; oh++) {
            int nr = 0;
            for (int kd = 0; kd < g->kd; kd++) {
                int id = od * g->sd - g->pd + kd;
                if (id < 0 || id >= g->D) continue;
                if (UPS) {
                    if (id % g->ud) continue;
                    id /= g->ud;
                }
                for (int kh = 0; kh < g->kh; kh++) {
                    int ih = oh * g->sh - g->ph + kh;
                    if (ih < 0 || ih >= g->H) continue;
                    if (UPS) {
                        if (ih % g->uh) continue;
                        ih /= g->uh;
                    }
                    rows[nr] = P + ((size_t)id * Hr + ih) * g->Wp;
                    wts[nr++] = wv + ((size_t)kd * g->kh + kh) * g->kw;
                }
            }
            DWN(fwd_row)
            (KW, nr, rows, wts, g->coff, g->Wo, bias, y + ((size_t)od * g->Ho + oh) * g->Wo);
        }
}

/* y plane (Do,Ho,Wo) = bias + taps over the W-padded, phase-split input plane P; wv holds each
 * tap's weight broadcast to 8 lanes. */
static DW_TARGET void DWN(fwd_plane)(const dw_geo *g, const float *P, const v8 *wv, float bias,
                                     float *y) {
    if (g->ud > 1 || g->uh > 1) {
        switch (g->kw) {
        case 3: DWN(fwd_plane_k)(3, 1, g, P, wv, bias, y); break;
        case 5: DWN(fwd_plane_k)(5, 1, g, P, wv, bias, y); break;
        default: DWN(fwd_plane_k)(g->kw, 1, g, P, wv, bias, y); break;
        }
        return;
    }
    switch (g->kw) {
    case 1: DWN(fwd_plane_k)(1, 0, g, P, wv, bias, y); break;
    case 3: DWN(fwd_plane_k)(3, 0, g, P, wv, bias, y); break;
    case 5: DWN(fwd_plane_k)(5, 0, g, P, wv, bias, y); break;
    default: DWN(fwd_plane_k)(g->kw, 0, g, P, wv, bias, y); break;
    }
}

/* For NR input rows at once: acc[r][0..KW) += sum over the row of dyt[ow] * rows[r][coff[t] + ow];
 * dyt is zero past Wo. NR*KW independent accumulators share each dy load. */
DW_INLINE void DWN(wgt_rows)(const int KW, const int NR, const float *dyt, int Wo8,
                             const float *const *rows, const int *coff, v8 *const *acc) {
    v8 a[3][DW_KMAX] = {{{0}}};
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
        for (int t = 0; t < KW; t++)
            a[r][t] = acc[r][t];
    for (int ow = 0; ow < Wo8; ow += 8) {
        const v8 d = DW_LD(dyt + ow);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
            for (int t = 0; t < KW; t++)
                a[r][t] = DW_FMA(d, DW_LD(rows[r] + coff[t] + ow), a[r][t]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
        for (int t = 0; t < KW; t++)
            acc[r][t] = a[r][t];
}

DW_INLINE void DWN(wgt_plane_k)(const int KW, const int NR, const dw_geo *g, const float *P,
                                const float *dy, double *acc, v8 *vacc, float *dyt) {
    const size_t kvol = (size_t)g->kd * g->kh * g->kw;
    const int Wo8 = (g->Wo + 7) & ~7;
    const float *rows[DW_KMAX * DW_KMAX];
    v8 *accs[DW_KMAX * DW_KMAX];
    for (int i = g->Wo; i < Wo8; i++)
        dyt[i] = 0.0f;
    for (int od = 0; od < g->Do; od++) {
        for (size_t t = 0; t < kvol; t++)
            vacc[t] = (v8){0};
        for (int oh = 0; oh < g->Ho; oh++) {
            memcpy(dyt, dy + ((size_t)od * g->Ho + oh) * g->Wo, (size_t)g->Wo * sizeof(float));
            int nr = 0;
            for (int kd = 0; kd < g->kd; kd++) {
                const int id = od * g->sd - g->pd + kd;
                if (id < 0 || id >= g->D) continue;
                for (int kh = 0; kh < g->kh; kh++) {
                    const int ih = oh * g->sh - g->ph + kh;
                    if (ih < 0 || ih >= g->H) continue;
                    rows[nr] = P + ((size_t)id * g->H + ih) * g->Wp;
                    accs[nr++] = vacc + ((size_t)kd * g->kh + kh) * g->kw;
                }
            }
            int r = 0;
            for (; r + NR <= nr; r += NR)
                DWN(wgt_rows)(KW, NR, dyt, Wo8, rows + r, g->coff, accs + r);
            for (; r < nr; r++)
                DWN(wgt_rows)(KW, 1, dyt, Wo8, rows + r, g->coff, accs + r);
        }
        /* flush the float lanes into double once per output slice */
        for (size_t t = 0; t < kvol; t++) {
            const v8 v = vacc[t];
            acc[t] += ((double)v[0] + v[1]) + ((double)v[2] + v[3]) + ((double)v[4] + v[5]) +
                      ((double)v[6] + v[7]);
        }
    }
}

/* acc (kd,kh,kw) += correlation of dy with the W-padded, phase-split input plane P.
 * vacc: kvol vectors of scratch; dyt: a row of at least Wo rounded up to 8 floats. */
static DW_TARGET void DWN(bwd_weights_plane)(const dw_geo *g, const float *P, const float *dy,
                                             double *acc, v8 *vacc, float *dyt) {
    switch (g->kw) {
    case 1: DWN(wgt_plane_k)(1, 3, g, P, dy, acc, vacc, dyt); break;
    case 3: DWN(wgt_plane_k)(3, 3, g, P, dy, acc, vacc, dyt); break;
    case 5: DWN(wgt_plane_k)(5, 2, g, P, dy, acc, vacc, dyt); break;
    default: DWN(wgt_plane_k)(g->kw, 1, g, P, dy, acc, vacc, dyt); break;
    }
}

/* The flat path: the H padding is materialised too and both H and W are split into stride phases
 * (Pf per d: [h phase][w phase][row][pitch]), so that a whole output slice (Ho x pitch, the columns
 * past Wo are junk) is one long "row" for the kernels above: few, long vector loops instead of many
 * short rows. Tap (kh, kw) starts at fhoff[kh] + fcoff[kw]. ypad holds Ho*pitch rounded up to 8. */
DW_INLINE void DWN(fwd_flat_k)(const int KW, const dw_geo *g, const float *Pf, const v8 *wv,
                               float bias, float *y, float *ypad) {
    const float *rows[DW_KMAX * DW_KMAX];
    const v8 *wts[DW_KMAX * DW_KMAX];
    const int L = g->Ho * g->fpitch;
    for (int od = 0; od < g->Do; od++) {
        int nr = 0;
        for (int kd = 0; kd < g->kd; kd++) {
            const int id = od * g->sd - g->pd + kd;
            if (id < 0 || id >= g->D) continue;
            for (int kh = 0; kh < g->kh; kh++) {
                rows[nr] = Pf + (size_t)id * g->fslice + g->fhoff[kh];
                wts[nr++] = wv + ((size_t)kd * g->kh + kh) * g->kw;
            }
        }
        DWN(fwd_row)(KW, nr, rows, wts, g->fcoff, L, bias, ypad);
        for (int oh = 0; oh < g->Ho; oh++)
            memcpy(y + ((size_t)od * g->Ho + oh) * g->Wo, ypad + (size_t)oh * g->fpitch,
                   (size_t)g->Wo * sizeof(float));
    }
}

static DW_TARGET void DWN(fwd_flat)(const dw_geo *g, const float *Pf, const v8 *wv, float bias,
                                    float *y, float *ypad) {
    switch (g->kw) {
    case 3: DWN(fwd_flat_k)(3, g, Pf, wv, bias, y, ypad); break;
    case 5: DWN(fwd_flat_k)(5, g, Pf, wv, bias, y, ypad); break;
    default: DWN(fwd_flat_k)(g->kw, g, Pf, wv, bias, y, ypad); break;
    }
}

DW_INLINE void DWN(wgt_flat_k)(const int KW, const int NR, const dw_geo *g, const float *Pf,
                               const float *dy, double *acc, v8 *vacc, float *dyt) {
    const size_t kvol = (size_t)g->kd * g->kh * g->kw;
    const int L = g->Ho * g->fpitch, L8 = (L + 7) & ~7;
    const float *rows[DW_KMAX * DW_KMAX];
    v8 *accs[DW_KMAX * DW_KMAX];
    for (int i = 0; i < L8; i++)
        dyt[i] = 0.0f;
    for (int od = 0; od < g->Do; od++) {
        for (size_t t = 0; t < kvol; t++)
            vacc[t] = (v8){0};
        for (int oh = 0; oh < g->Ho; oh++)
            memcpy(dyt + (size_t)oh * g->fpitch, dy + ((size_t)od * g->Ho + oh) * g->Wo,
                   (size_t)g->Wo * sizeof(float));
        int nr = 0;
        for (int kd = 0; kd < g->kd; kd++) {
            const int id = od * g->sd - g->pd + kd;
            if (id < 0 || id >= g->D) continue;
            for (int kh = 0; kh < g->kh; kh++) {
                rows[nr] = Pf + (size_t)id * g->fslice + g->fhoff[kh];
                accs[nr++] = vacc + ((size_t)kd * g->kh + kh) * g->kw;
            }
        }
        int r = 0;
        for (; r + NR <= nr; r += NR)
            DWN(wgt_rows)(KW, NR, dyt, L8, rows + r, g->fcoff, accs + r);
        for (; r < nr; r++)
            DWN(wgt_rows)(KW, 1, dyt, L8, rows + r, g->fcoff, accs + r);
        for (size_t t = 0; t < kvol; t++) {
            const v8 v = vacc[t];
            acc[t] += ((double)v[0] + v[1]) + ((double)v[2] + v[3]) + ((double)v[4] + v[5]) +
                      ((double)v[6] + v[7]);
        }
    }
}

static DW_TARGET void DWN(wgt_flat)(const dw_geo *g, const float *Pf, const float *dy, double *acc,
                                    v8 *vacc, float *dyt) {
    switch (g->kw) {
    case 3: DWN(wgt_flat_k)(3, 3, g, Pf, dy, acc, vacc, dyt); break;
    case 5: DWN(wgt_flat_k)(5, 2, g, Pf, dy, acc, vacc, dyt); break;
    default: DWN(wgt_flat_k)(g->kw, 1, g, Pf, dy, acc, vacc, dyt); break;
    }
}

#undef DWN
#undef DW_INLINE
#undef DW_LD
#undef DW_CAT
#undef DW_CAT2
