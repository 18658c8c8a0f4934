/* The CPU backend: fp32 everywhere, OpenBLAS for GEMMs, OpenMP for the
 * rest. It is the reference every other backend is checked against, so it
 * favours clarity; the hot loops are still written to vectorise. */
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/blas.h"
#include "backend/cpu/fastmath.h"

static void *cpu_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(void *d, const void *s, size_t bytes) { memmove(d, s, bytes); }
/* Host and backend memory are the same here. */
static void cpu_transfer(void *d, const void *s, size_t bytes) {
    if (bytes) memcpy(d, s, bytes);
}

/* Few rows (decoding): a 4 x 4 register tile of (weight row, input row)
 * dot products streams each weight row once while the inputs stay in L1.
 * BLAS would first pack the whole weight matrix, which costs more than the
 * product itself at this size. */
#define SMALL_N 32
#define SMALL_N_MIN_BYTES ((size_t)8 << 20)
#if defined(__AVX512F__)
#include <immintrin.h>
/* out[r][c] = dot(w[r], x[c]) for a 4 x 4 tile, 16 accumulators in zmm
 * registers, fused multiply-adds, masked loads for the K tail. */
static void tile_4x4(const float *const w[4], const float *const x[4], int K, float out[4][4]) {
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
           a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (int i = 0; i < K; i += 16) {
        __mmask16 m = K - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - i)) - 1);
        __m512 w0 = _mm512_maskz_loadu_ps(m, w[0] + i), w1 = _mm512_maskz_loadu_ps(m, w[1] + i),
               w2 = _mm512_maskz_loadu_ps(m, w[2] + i), w3 = _mm512_maskz_loadu_ps(m, w[3] + i);
        __m512 x0 = _mm512_maskz_loadu_ps(m, x[0] + i);
        a00 = _mm512_fmadd_ps(w0, x0, a00), a10 = _mm512_fmadd_ps(w1, x0, a10);
        a20 = _mm512_fmadd_ps(w2, x0, a20), a30 = _mm512_fmadd_ps(w3, x0, a30);
        __m512 x1 = _mm512_maskz_loadu_ps(m, x[1] + i);
        a01 = _mm512_fmadd_ps(w0, x1, a01), a11 = _mm512_fmadd_ps(w1, x1, a11);
        a21 = _mm512_fmadd_ps(w2, x1, a21), a31 = _mm512_fmadd_ps(w3, x1, a31);
        __m512 x2 = _mm512_maskz_loadu_ps(m, x[2] + i);
        a02 = _mm512_fmadd_ps(w0, x2, a02), a12 = _mm512_fmadd_ps(w1, x2, a12);
        a22 = _mm512_fmadd_ps(w2, x2, a22), a32 = _mm512_fmadd_ps(w3, x2, a32);
        __m512 x3 = _mm512_maskz_loadu_ps(m, x[3] + i);
        a03 = _mm512_fmadd_ps(w0, x3, a03), a13 = _mm512_fmadd_ps(w1, x3, a13);
        a23 = _mm512_fmadd_ps(w2, x3, a23), a33 = _mm512_fmadd_ps(w3, x3, a33);
    }
    out[0][0] = _mm512_reduce_add_ps(a00), out[0][1] = _mm512_reduce_add_ps(a01);
    out[0][2] = _mm512_reduce_add_ps(a02), out[0][3] = _mm512_reduce_add_ps(a03);
    out[1][0] = _mm512_reduce_add_ps(a10), out[1][1] = _mm512_reduce_add_ps(a11);
    out[1][2] = _mm512_reduce_add_ps(a12), out[1][3] = _mm512_reduce_add_ps(a13);
    out[2][0] = _mm512_reduce_add_ps(a20), out[2][1] = _mm512_reduce_add_ps(a21);
    out[2][2] = _mm512_reduce_add_ps(a22), out[2][3] = _mm512_reduce_add_ps(a23);
    out[3][0] = _mm512_reduce_add_ps(a30), out[3][1] = _mm512_reduce_add_ps(a31);
    out[3][2] = _mm512_reduce_add_ps(a32), out[3][3] = _mm512_reduce_add_ps(a33);
}
/* One input row (batch-1 decoding): 8 weight rows at a time, memory-bound. */
static void rows_8x1(const float *w, const float *x, int K, int no, float *out) {
    __m512 acc[8];
    for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
    const float *wr[8];
    for (int r = 0; r < 8; r++) wr[r] = w + (size_t)(r < no ? r : 0) * K;
    for (int i = 0; i < K; i += 16) {
        __mmask16 m = K - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - i)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, wr[r] + i), xv, acc[r]);
    }
    for (int r = 0; r < no; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}
#define HAVE_ROWS_8X1 1
#else
/* Portable versions (AVX2 and others: the compiler vectorises the i loops;
 * eight independent sums per loop keep the FMA units busy). */
static void tile_4x4(const float *const w[4], const float *const x[4], int K, float out[4][4]) {
    for (int r = 0; r < 4; r++) {
        const float *restrict wr = w[r], *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2],
                              *restrict x3 = x[3];
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
        for (int i = 0; i < K; i++) {
            float wv = wr[i];
            a0 += wv * x0[i], a1 += wv * x1[i], a2 += wv * x2[i], a3 += wv * x3[i];
        }
        out[r][0] = a0, out[r][1] = a1, out[r][2] = a2, out[r][3] = a3;
    }
}
/* One input row (batch-1 decoding): 8 weight rows against one x, so the
 * weights stream once and x stays in registers/L1. */
static void rows_8x1(const float *w, const float *x, int K, int no, float *out) {
    const float *wr[8];
    for (int r = 0; r < 8; r++) wr[r] = w + (size_t)(r < no ? r : 0) * K;
    const float *restrict w0 = wr[0], *restrict w1 = wr[1], *restrict w2 = wr[2], *restrict w3 = wr[3],
                          *restrict w4 = wr[4], *restrict w5 = wr[5], *restrict w6 = wr[6], *restrict w7 = wr[7];
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7)
    for (int i = 0; i < K; i++) {
        float xv = x[i];
        a0 += w0[i] * xv, a1 += w1[i] * xv, a2 += w2[i] * xv, a3 += w3[i] * xv;
        a4 += w4[i] * xv, a5 += w5[i] * xv, a6 += w6[i] * xv, a7 += w7[i] * xv;
    }
    float a[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int r = 0; r < no; r++) out[r] = a[r];
}
#define HAVE_ROWS_8X1 1
#endif

static void matmul_small_n(float *out, const float *inp, const float *w, int N, int K, int O) {
#ifdef HAVE_ROWS_8X1
    if (N == 1) {
#pragma omp parallel for schedule(static) if ((size_t)O * K > 65536)
        for (int o0 = 0; o0 < O; o0 += 8) rows_8x1(w + (size_t)o0 * K, inp, K, O - o0 < 8 ? O - o0 : 8, out + o0);
        return;
    }
#endif
#pragma omp parallel for schedule(static) if ((size_t)O * K > 65536)
    for (int o0 = 0; o0 < O; o0 += 4) {
        int no = O - o0 < 4 ? O - o0 : 4;
        const float *wr[4];
        for (int r = 0; r < 4; r++) wr[r] = w + (size_t)(o0 + (r < no ? r : 0)) * K;
        for (int n0 = 0; n0 < N; n0 += 4) {
            int nn = N - n0 < 4 ? N - n0 : 4;
            const float *xr[4];
            for (int c = 0; c < 4; c++) xr[c] = inp + (size_t)(n0 + (c < nn ? c : 0)) * K;
            float t[4][4];
            tile_4x4(wr, xr, K, t);
            for (int r = 0; r < no; r++)
                for (int c = 0; c < nn; c++) out[(size_t)(n0 + c) * O + o0 + r] = t[r][c];
        }
    }
}

static void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K, int O) {
    /* Few rows: stream the weights once. BLAS wins again once N grows and
     * the weights are cache-resident (its packing is then cheap). */
    if (N <= 4 || (N <= SMALL_N && (size_t)O * K * sizeof(float) > SMALL_N_MIN_BYTES))
        matmul_small_n(out, inp, w, N, K, O);
    else blas_sgemm(0, 1, N, O, K, 1.0f, inp, K, w, K, 0.0f, out, O);
    if (bias) {
#pragma omp parallel for if ((size_t)N * O > 32768)
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * O;
#pragma omp simd
            for (int j = 0; j < O; j++) o[j] += bias[j];
        }
    }
}

static void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                            const float *w, int N, int K, int O, int accumulate_dinp) {
    if (dinp)
        blas_sgemm(0, 0, N, K, O, 1.0f, dout, O, w, K, accumulate_dinp ? 1.0f : 0.0f, dinp, K);
    if (dw) blas_sgemm(1, 0, O, K, N, 1.0f, dout, O, inp, K, 1.0f, dw, K);
    if (dbias) {
#pragma omp parallel for if ((size_t)N * O > 32768)
        for (int j = 0; j < O; j++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * O + j];
            dbias[j] += (float)s;
        }
    }
}

static void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps) {
#pragma omp parallel for if ((size_t)N * C > 16384)
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        float *on = out + (size_t)n * C;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++) ss += xn[i] * xn[i];
        float r = 1.0f / sqrtf(ss / C + eps);
        rstd[n] = r;
#pragma omp simd
        for (int i = 0; i < C; i++) on[i] = w[i] * (xn[i] * r);
    }
}

static void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                             const float *rstd, int N, int C) {
    /* dx = r * (w*g - xhat * mean(w*g*xhat)), dw += sum g * xhat */
#pragma omp parallel for if ((size_t)N * C > 16384)
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C, *gn = dout + (size_t)n * C;
        float *dxn = dx + (size_t)n * C;
        float r = rstd[n], dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < C; i++) dot += w[i] * gn[i] * xn[i] * r;
        dot /= C;
#pragma omp simd
        for (int i = 0; i < C; i++) dxn[i] += r * (w[i] * gn[i] - xn[i] * r * dot);
    }
    if (dw) {
        /* parallel over channels: no write races */
#pragma omp parallel for if ((size_t)N * C > 16384)
        for (int i = 0; i < C; i++) {
            float s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * C + i] * x[(size_t)n * C + i] * rstd[n];
            dw[i] += s;
        }
    }
}

static void rope_apply(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H, int HD,
                       int inverse) {
    int half = HD / 2;
    float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for if ((size_t)N * H * HD > 16384)
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < H; h++) {
            float *v = x + ((size_t)n * H + h) * HD;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], si = sgn * s[i];
                v[i] = a * c[i] - b * si;
                v[i + half] = b * c[i] + a * si;
            }
        }
    }
}

static inline __attribute__((always_inline)) float dotf(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline __attribute__((always_inline)) void axpyf(float *y, float a, const float *x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* Attention works on query blocks of ATT_BLOCK rows of one head: scores
 * for the block against all keys up to its last row come from one GEMM
 * (strided views straight into the (B,T,H,HD) layouts), so the T x T matrix
 * never exists and the inner loops are BLAS. Inside our parallel regions
 * OpenBLAS's OpenMP build runs single-threaded, as wanted. */
#define ATT_BLOCK 64

/* Softmax over the causal prefix of each score row; returns lse per row.
 * s(R, ld): row r belongs to query t0 + r and may see keys [0, t0 + r]. */
static void causal_softmax_rows(float *s, int ld, int R, int t0, const int32_t *lo, float *lse_out) {
    for (int r = 0; r < R; r++) {
        float *row = s + (size_t)r * ld;
        int n = t0 + r + 1, a = lo ? lo[r] : 0;
        float m = -INFINITY;
        for (int j = a; j < n; j++) m = row[j] > m ? row[j] : m;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = a; j < n; j++) {
            row[j] = fast_expf(row[j] - m);
            sum += row[j];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = a; j < n; j++) row[j] *= inv;
        for (int j = 0; j < a; j++) row[j] = 0.0f;
        for (int j = n; j < ld; j++) row[j] = 0.0f;
        lse_out[r] = m + logf(sum);
    }
}

static void attention_forward_seg(float *out, float *lse, const float *q, const float *k, const float *v,
                                  const int32_t *seg, int B, int T, int NH, int KVH, int HD) {
    float scale = 1.0f / sqrtf((float)HD);
    int group = NH / KVH, nblk = (T + ATT_BLOCK - 1) / ATT_BLOCK;
    size_t qs = (size_t)NH * HD, ks = (size_t)KVH * HD;
#pragma omp parallel
    {
        float *sc = malloc((size_t)ATT_BLOCK * T * sizeof(float));
#pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int blk = nblk - 1; blk >= 0; blk--) { /* big blocks first */
                    int kh = h / group, t0 = blk * ATT_BLOCK;
                    int R = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, n = t0 + R;
                    const float *qb = q + ((size_t)b * T + t0) * qs + (size_t)h * HD;
                    const float *kb = k + (size_t)b * T * ks + (size_t)kh * HD;
                    const float *vb = v + (size_t)b * T * ks + (size_t)kh * HD;
                    blas_sgemm(0, 1, R, n, HD, scale, qb, (int)qs, kb, (int)ks, 0.0f, sc, n);
                    causal_softmax_rows(sc, n, R, t0, seg ? seg + (size_t)b * T + t0 : NULL,
                                        lse + ((size_t)b * NH + h) * T + t0);
                    blas_sgemm(0, 0, R, HD, n, 1.0f, sc, n, vb, (int)ks, 0.0f,
                               out + ((size_t)b * T + t0) * qs + (size_t)h * HD, (int)qs);
                }
        free(sc);
    }
}

static void attention_backward_seg(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                   const float *lse, const float *q, const float *k, const float *v,
                                   const int32_t *seg, int B, int T, int NH, int KVH, int HD) {
    float scale = 1.0f / sqrtf((float)HD);
    int group = NH / KVH, nblk = (T + ATT_BLOCK - 1) / ATT_BLOCK;
    size_t qs = (size_t)NH * HD, ks = (size_t)KVH * HD;
    memset(dk, 0, (size_t)B * T * ks * sizeof(float));
    memset(dv, 0, (size_t)B * T * ks * sizeof(float));
    /* One task per (sequence, kv head): it owns that slice of dk/dv. */
#pragma omp parallel
    {
        float *p = malloc((size_t)ATT_BLOCK * T * sizeof(float));
        float *dp = malloc((size_t)ATT_BLOCK * T * sizeof(float));
        float D[ATT_BLOCK];
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int kh = 0; kh < KVH; kh++) {
                const float *kb = k + (size_t)b * T * ks + (size_t)kh * HD;
                const float *vb = v + (size_t)b * T * ks + (size_t)kh * HD;
                float *dkb = dk + (size_t)b * T * ks + (size_t)kh * HD;
                float *dvb = dv + (size_t)b * T * ks + (size_t)kh * HD;
                for (int h = kh * group; h < (kh + 1) * group; h++)
                    for (int blk = 0; blk < nblk; blk++) {
                        int t0 = blk * ATT_BLOCK, R = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, n = t0 + R;
                        size_t off = ((size_t)b * T + t0) * qs + (size_t)h * HD;
                        const float *qb = q + off, *gb = dout + off, *ob = out + off;
                        const float *lb = lse + ((size_t)b * NH + h) * T + t0;
                        /* P = exp(scale Q K^T - lse), causal */
                        blas_sgemm(0, 1, R, n, HD, scale, qb, (int)qs, kb, (int)ks, 0.0f, p, n);
                        for (int r = 0; r < R; r++) {
                            float *row = p + (size_t)r * n;
                            int lim = t0 + r + 1, a = seg ? seg[(size_t)b * T + t0 + r] : 0;
                            float l = lb[r];
#pragma omp simd
                            for (int j = a; j < lim; j++) row[j] = fast_expf(row[j] - l);
                            for (int j = 0; j < a; j++) row[j] = 0.0f;
                            for (int j = lim; j < n; j++) row[j] = 0.0f;
                            float d = 0;
                            const float *g = gb + (size_t)r * qs, *o = ob + (size_t)r * qs;
#pragma omp simd reduction(+ : d)
                            for (int i = 0; i < HD; i++) d += g[i] * o[i];
                            D[r] = d;
                        }
                        /* dV += P^T dO */
                        blas_sgemm(1, 0, n, HD, R, 1.0f, p, n, gb, (int)qs, 1.0f, dvb, (int)ks);
                        /* dP = dO V^T; dS = P (dP - D) scale */
                        blas_sgemm(0, 1, R, n, HD, 1.0f, gb, (int)qs, vb, (int)ks, 0.0f, dp, n);
                        for (int r = 0; r < R; r++) {
                            float *pr = p + (size_t)r * n, *dr = dp + (size_t)r * n;
#pragma omp simd
                            for (int j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - D[r]) * scale;
                        }
                        /* dQ = dS K ; dK += dS^T Q */
                        blas_sgemm(0, 0, R, HD, n, 1.0f, dp, n, kb, (int)ks, 0.0f, dq + off, (int)qs);
                        blas_sgemm(1, 0, n, HD, R, 1.0f, dp, n, qb, (int)qs, 1.0f, dkb, (int)ks);
                    }
            }
        free(p);
        free(dp);
    }
}

static void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                              int NH, int KVH, int HD) {
    attention_forward_seg(out, lse, q, k, v, NULL, B, T, NH, KVH, HD);
}

static void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                               const float *lse, const float *q, const float *k, const float *v, int B, int T,
                               int NH, int KVH, int HD) {
    attention_backward_seg(dq, dk, dv, dout, out, lse, q, k, v, NULL, B, T, NH, KVH, HD);
}

/* Where key j of a row lives: slot s of a contiguous cache (table NULL),
 * or block table[s MB + j / block] of a paged one. */
static inline size_t cache_row(const int32_t *table, int max_blocks, int block, size_t stride, int s, int j,
                               int KD) {
    if (!table) return (size_t)s * stride + (size_t)j * KD;
    return ((size_t)table[(size_t)s * max_blocks + j / block] * block + j % block) * KD;
}

static void attention_decode_any(float *out, const float *q, const float *k_cache, const float *v_cache,
                                 const int32_t *table, int max_blocks, int block, const int32_t *slot,
                                 const int32_t *len, size_t cache_stride, int S, int NH, int KVH, int HD) {
    float scale = 1.0f / sqrtf((float)HD);
    int KD = KVH * HD;
    int group = NH / KVH;
    int maxlen = 0;
    for (int s = 0; s < S; s++) if (len[s] > maxlen) maxlen = len[s];
#pragma omp parallel
    {
        float *sc = malloc((size_t)(maxlen ? maxlen : 1) * sizeof(float));
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int s = 0; s < S; s++)
            for (int h = 0; h < NH; h++) {
                int kh = h / group, L = len[s];
                const float *qt = q + ((size_t)s * NH + h) * HD;
                float m = -INFINITY;
                for (int j = 0; j < L; j++) {
                    size_t row = cache_row(table, max_blocks, block, cache_stride, slot[s], j, KD);
                    sc[j] = scale * dotf(qt, k_cache + row + (size_t)kh * HD, HD);
                    if (sc[j] > m) m = sc[j];
                }
                float sum = 0;
                for (int j = 0; j < L; j++) {
                    sc[j] = fast_expf(sc[j] - m);
                    sum += sc[j];
                }
                float *ot = out + ((size_t)s * NH + h) * HD;
                memset(ot, 0, HD * sizeof(float));
                float inv = 1.0f / sum;
                for (int j = 0; j < L; j++) {
                    size_t row = cache_row(table, max_blocks, block, cache_stride, slot[s], j, KD);
                    axpyf(ot, sc[j] * inv, v_cache + row + (size_t)kh * HD, HD);
                }
            }
        free(sc);
    }
}

static void attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache,
                             const int32_t *slot, const int32_t *len, size_t cache_stride, int S, int NH, int KVH,
                             int HD) {
    attention_decode_any(out, q, k_cache, v_cache, NULL, 0, 0, slot, len, cache_stride, S, NH, KVH, HD);
}

static void attention_decode_paged(float *out, const float *q, const float *k_pool, const float *v_pool,
                                   const int32_t *table, int max_blocks, int block, const int32_t *slot,
                                   const int32_t *len, int N, int NH, int KVH, int HD) {
    attention_decode_any(out, q, k_pool, v_pool, table, max_blocks, block, slot, len, 0, N, NH, KVH, HD);
}

static void kv_cache_write(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slot,
                           const int32_t *pos, size_t cache_stride, int N, int KD) {
    for (int n = 0; n < N; n++) {
        size_t off = (size_t)slot[n] * cache_stride + (size_t)pos[n] * KD;
        memcpy(k_cache + off, k + (size_t)n * KD, KD * sizeof(float));
        memcpy(v_cache + off, v + (size_t)n * KD, KD * sizeof(float));
    }
}

static void qkv_split(float *q, float *k, float *v, const float *qkv, int N, int QD, int KD) {
    size_t W = (size_t)QD + 2 * KD;
    for (int n = 0; n < N; n++) {
        memcpy(q + (size_t)n * QD, qkv + n * W, QD * sizeof(float));
        memcpy(k + (size_t)n * KD, qkv + n * W + QD, KD * sizeof(float));
        memcpy(v + (size_t)n * KD, qkv + n * W + QD + KD, KD * sizeof(float));
    }
}

static void qkv_merge(float *qkv, const float *q, const float *k, const float *v, int N, int QD, int KD) {
    size_t W = (size_t)QD + 2 * KD;
    for (int n = 0; n < N; n++) {
        memcpy(qkv + n * W, q + (size_t)n * QD, QD * sizeof(float));
        memcpy(qkv + n * W + QD, k + (size_t)n * KD, KD * sizeof(float));
        memcpy(qkv + n * W + QD + KD, v + (size_t)n * KD, KD * sizeof(float));
    }
}

static void swiglu_forward(float *h, const float *gu, int N, int K) {
#pragma omp parallel for if ((size_t)N * K > 16384)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * K, *u = g + K;
        float *hn = h + (size_t)n * K;
        for (int i = 0; i < K; i++) hn[i] = g[i] / (1.0f + fast_expf(-g[i])) * u[i];
    }
}

static void swiglu_backward(float *dgu, const float *dh, const float *gu, int N, int K) {
#pragma omp parallel for if ((size_t)N * K > 16384)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * K, *u = g + K, *d = dh + (size_t)n * K;
        float *dg = dgu + (size_t)n * 2 * K, *du = dg + K;
        for (int i = 0; i < K; i++) {
            float sg = 1.0f / (1.0f + fast_expf(-g[i]));
            float silu = g[i] * sg;
            du[i] = d[i] * silu;
            dg[i] = d[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        }
    }
}

static void embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C) {
#pragma omp parallel for if ((size_t)N * C > 16384)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, C * sizeof(float));
}

static void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C) {
    for (int n = 0; n < N; n++) axpyf(dtable + (size_t)ids[n] * C, 1.0f, dout + (size_t)n * C, C);
}

static void add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

#define LM_CHUNK 64

/* Row statistics of z = logits/temp: returns lse, fills entropy. */
static float row_lse_entropy(const float *l, int V, float inv_t, float *ent) {
    float m = -INFINITY;
    for (int j = 0; j < V; j++) if (l[j] > m) m = l[j];
    m *= inv_t;
    /* 16 float lanes over blocks of 256 entries (vectorises), each block
     * folded into double: a 150k vocabulary sums to ~1e-7 relative */
    double s = 0, sz = 0;
    int j = 0;
    for (; j + 256 <= V; j += 256) {
        float ps[16] = {0}, pz[16] = {0};
        for (int b = 0; b < 256; b += 16)
#pragma omp simd
            for (int u = 0; u < 16; u++) {
                float z = l[j + b + u] * inv_t, e = fast_expf(z - m);
                ps[u] += e;
                pz[u] += e * z;
            }
        for (int u = 0; u < 16; u++) s += ps[u], sz += pz[u];
    }
    for (; j < V; j++) {
        float z = l[j] * inv_t, e = fast_expf(z - m);
        s += e;
        sz += (double)e * z;
    }
    float lse = m + (float)log(s);
    if (ent) *ent = lse - (float)(sz / s);
    return lse;
}

static void lm_head_logprob_forward(float *logp, float *ent, float *logits_out, const float *x, const float *w,
                                    const int32_t *target, int N, int C, int V, float temp) {
    float *buf = logits_out ? NULL : malloc((size_t)LM_CHUNK * V * sizeof(float));
    float inv_t = 1.0f / temp;
    for (int r0 = 0; r0 < N; r0 += LM_CHUNK) {
        int R = N - r0 < LM_CHUNK ? N - r0 : LM_CHUNK;
        float *lg = logits_out ? logits_out + (size_t)r0 * V : buf;
        blas_sgemm(0, 1, R, V, C, 1.0f, x + (size_t)r0 * C, C, w, C, 0.0f, lg, V);
#pragma omp parallel for
        for (int r = 0; r < R; r++) {
            int n = r0 + r;
            if (target[n] < 0) {
                logp[n] = 0;
                if (ent) ent[n] = 0;
                continue;
            }
            float e;
            float lse = row_lse_entropy(lg + (size_t)r * V, V, inv_t, &e);
            logp[n] = lg[(size_t)r * V + target[n]] * inv_t - lse;
            if (ent) ent[n] = e;
        }
    }
    free(buf);
}

static void lm_head_logprob_backward(float *dx, float *dw, const float *dlogp, const float *x, const float *w,
                                     const float *logits, const int32_t *target, int N, int C, int V, float temp) {
    float *lg = malloc((size_t)LM_CHUNK * V * sizeof(float));
    float inv_t = 1.0f / temp;
    for (int r0 = 0; r0 < N; r0 += LM_CHUNK) {
        int R = N - r0 < LM_CHUNK ? N - r0 : LM_CHUNK;
        if (logits) memcpy(lg, logits + (size_t)r0 * V, (size_t)R * V * sizeof(float));
        else blas_sgemm(0, 1, R, V, C, 1.0f, x + (size_t)r0 * C, C, w, C, 0.0f, lg, V);
        /* dlogits_j = g/temp * (onehot_j - p_j) */
#pragma omp parallel for
        for (int r = 0; r < R; r++) {
            int n = r0 + r;
            float *l = lg + (size_t)r * V;
            if (target[n] < 0 || dlogp[n] == 0.0f) {
                memset(l, 0, V * sizeof(float));
                continue;
            }
            float lse = row_lse_entropy(l, V, inv_t, NULL);
            float g = dlogp[n] * inv_t;
            for (int j = 0; j < V; j++) l[j] = -g * fast_expf(l[j] * inv_t - lse);
            l[target[n]] += g;
        }
        blas_sgemm(0, 0, R, C, V, 1.0f, lg, V, w, C, 0.0f, dx + (size_t)r0 * C, C);
        if (dw) blas_sgemm(1, 0, V, C, R, 1.0f, lg, V, x + (size_t)r0 * C, C, 1.0f, dw, C);
    }
    free(lg);
}

/* Fixed chunks summed in a fixed order: the result does not depend on the
 * thread count or on which thread finishes first, so a resumed run clips
 * gradients bit-identically. */
static double sumsq(const float *x, size_t n) {
    enum { CHUNK = 1 << 16 };
    size_t nc = (n + CHUNK - 1) / CHUNK;
    double *part = malloc((nc ? nc : 1) * sizeof(double));
#pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t e = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        double s = 0;
        for (size_t i = c * CHUNK; i < e; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nc; c++) s += part[c];
    free(part);
    return s;
}

static void scale_f(float *x, float s, size_t n) {
#pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

static void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                         float eps, float wd, int t, float gscale) {
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    float step = lr / bc1, bc2s = sqrtf(bc2), decay = 1.0f - lr * wd;
#pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gscale; /* rounded here, as scale_f would store it */
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] = p[i] * decay - step * m[i] / (sqrtf(v[i]) / bc2s + eps);
    }
}

static const Backend CPU = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .rope_apply = rope_apply,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .attention_forward_seg = attention_forward_seg,
    .attention_backward_seg = attention_backward_seg,
    .attention_decode = attention_decode,
    .attention_decode_paged = attention_decode_paged,
    .kv_cache_write = kv_cache_write,
    .qkv_split = qkv_split,
    .qkv_merge = qkv_merge,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
    .add_inplace = add_inplace,
    .lm_head_logprob_forward = lm_head_logprob_forward,
    .lm_head_logprob_backward = lm_head_logprob_backward,
    .sumsq = sumsq,
    .scale = scale_f,
    .adamw_update = adamw_update,
    .upload = cpu_transfer,
    .download = cpu_transfer,
};

/* Ops allocate per-call scratch (a vocabulary-wide logits chunk, attention
 * tiles) of a few MB. Above glibc's default 128 KiB threshold each such
 * malloc is a fresh mmap whose pages fault in on every call; keeping them
 * on the heap makes the scratch reuse warm pages. */
static void cpu_malloc_tuning(void) {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

const Backend *backend_cpu(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, cpu_malloc_tuning);
    return &CPU;
}
