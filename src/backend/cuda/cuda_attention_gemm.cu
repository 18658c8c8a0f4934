/* Causal GQA attention for training in bf16 precision: the products run
 * on the tensor cores as strided-batched cuBLAS GEMMs, the softmax and its
 * gradient in row kernels, and T x T scores never exist at once: queries
 * go in blocks of rows (for one head of each kv group at a time) sized so
 * the block's scores fit a fixed budget, and a block only meets the keys
 * it can see (0 .. its last row).
 *
 * Layout: q, k, v (and dout) are rounded to bf16 and transposed to
 * head-major (B, H, T, HD), so the G query heads of kv head kh are rows
 * ((b*KVH + kh)*G + g)*T + t and one batched GEMM over i = b*KVH + kh
 * covers every sequence and kv head with uniform strides. Numerics as in
 * FlashAttention 2: fp32 scores, log-sum-exp and accumulation; the
 * probabilities P and dS = P (dP - D) enter the second GEMMs in bf16. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

extern "C" {
#include "backend/cuda/backend_cuda.h"
}

#define AG_BUDGET ((size_t)512 << 20) /* bytes of S, dP, P, dS per block */

/* dst(B,H,T,HD) bf16 <- src(B,T,H,HD) fp32 */
__global__ void ag_to_heads_kernel(__nv_bfloat16 *dst, const float *src, int B, int T, int H, int HD) {
    size_t total = (size_t)B * T * H * HD;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        int d = (int)(e % HD);
        size_t r = e / HD;
        int h = (int)(r % H);
        size_t bt = r / H;
        int t = (int)(bt % T), b = (int)(bt / T);
        dst[(((size_t)b * H + h) * T + t) * HD + d] = __float2bfloat16_rn(src[e]);
    }
}

/* dst(B,T,H,HD) fp32 <- src(B,H,T,HD) fp32 */
__global__ void ag_from_heads_kernel(float *dst, const float *src, int B, int T, int H, int HD) {
    size_t total = (size_t)B * T * H * HD;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        int d = (int)(e % HD);
        size_t r = e / HD;
        int h = (int)(r % H);
        size_t bt = r / H;
        int t = (int)(bt % T), b = (int)(bt / T);
        dst[e] = src[(((size_t)b * H + h) * T + t) * HD + d];
    }
}

/* One warp per score row of a block: row r of batch i is query t = t0 + r
 * of head h = kh*G + g in sequence b (i = b*KVH + kh); it sees keys
 * 0..t of the nk in the row. Writes P (bf16, 0 beyond t) and lse. */
__global__ void ag_softmax_kernel(__nv_bfloat16 *P, float *lse, const float *S, const int32_t *seg, int rows, int nk,
                                  int t0, int g, int G, int KVH, int NH, int T, int nrows_total) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= nrows_total) return;
    int i = row / rows, r = row % rows, t = t0 + r, b = i / KVH, kh = i % KVH, h = kh * G + g;
    const float *s = S + (size_t)row * nk;
    __nv_bfloat16 *p = P + (size_t)row * nk;
    int lim = min(nk, t + 1), lo = seg ? seg[(size_t)b * T + t] : 0; /* keys lo .. t */
    float m = -INFINITY;
    for (int j = lo + lane; j < lim; j += 32) m = fmaxf(m, s[j]);
    m = warp_max(m);
    float l = 0.0f;
    for (int j = lo + lane; j < lim; j += 32) l += expf(s[j] - m);
    l = warp_sum(l);
    float inv = 1.0f / l;
    for (int j = lane; j < nk; j += 32) p[j] = __float2bfloat16_rn(j >= lo && j < lim ? expf(s[j] - m) * inv : 0.0f);
    if (lane == 0) lse[((size_t)b * NH + h) * T + t] = m + logf(l);
}

/* Backward rows: P = exp(S - lse) (0 beyond t), dS = P (dP - D). */
__global__ void ag_dsoftmax_kernel(__nv_bfloat16 *P, __nv_bfloat16 *dS, const float *S, const float *dP,
                                   const float *lse, const float *D, const int32_t *seg, int rows, int nk, int t0,
                                   int g, int G, int KVH, int NH, int T, int nrows_total) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= nrows_total) return;
    int i = row / rows, r = row % rows, t = t0 + r, b = i / KVH, kh = i % KVH, h = kh * G + g;
    size_t li = ((size_t)b * NH + h) * T + t;
    float L = lse[li], Dv = D[li];
    const float *s = S + (size_t)row * nk, *dp = dP + (size_t)row * nk;
    __nv_bfloat16 *p = P + (size_t)row * nk, *ds = dS + (size_t)row * nk;
    int lo = seg ? seg[(size_t)b * T + t] : 0;
    for (int j = lane; j < nk; j += 32) {
        float pv = j <= t && j >= lo ? expf(s[j] - L) : 0.0f;
        p[j] = __float2bfloat16_rn(pv);
        ds[j] = __float2bfloat16_rn(pv * (dp[j] - Dv));
    }
}

static void ag_to_heads(__nv_bfloat16 *dst, const float *src, int B, int T, int H, int HD) {
    size_t n = (size_t)B * T * H * HD;
    ag_to_heads_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(dst, src, B, T, H, HD);
    cuda_after_launch("attention (to heads)");
}

static void ag_from_heads(float *dst, const float *src, int B, int T, int H, int HD) {
    size_t n = (size_t)B * T * H * HD;
    ag_from_heads_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(dst, src, B, T, H, HD);
    cuda_after_launch("attention (from heads)");
}

static int g_block_rows; /* 0: from AG_BUDGET */

extern "C" void cuda_set_attention_block_rows(int rows) { g_block_rows = rows > 0 ? rows : 0; }

/* Query rows per block: the scores of all B*KVH sequences-heads for tb
 * rows x T keys, at `per` bytes per score, within the budget; a multiple
 * of 64 (or T). */
static int ag_rows(int B, int KVH, int T, size_t per) {
    if (g_block_rows) return g_block_rows < T ? g_block_rows : T;
    size_t r = AG_BUDGET / ((size_t)B * KVH * T * per);
    if (r >= (size_t)T) return T;
    r = r / 64 * 64;
    return r < 64 ? 64 : (int)r;
}

static size_t al16(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

void cuda_attention_forward_gemm(float *out, float *lse, const float *q, const float *k, const float *v,
                                 const int32_t *seg, int B, int T, int NH, int KVH, int HD) {
    int G = NH / KVH, nb = B * KVH;
    int tb = ag_rows(B, KVH, T, 4 + 2);
    size_t nq = (size_t)B * NH * T * HD, nkv = (size_t)B * KVH * T * HD, ns = (size_t)nb * tb * T;
    size_t o_q = 0, o_k = o_q + al16(nq * 2), o_v = o_k + al16(nkv * 2), o_o = o_v + al16(nkv * 2),
           o_s = o_o + al16(nq * 4), o_p = o_s + al16(ns * 4), total = o_p + al16(ns * 2);
    char *base = (char *)cuda_scratch(total);
    if (!base) return;
    __nv_bfloat16 *qh = (__nv_bfloat16 *)(base + o_q), *kh = (__nv_bfloat16 *)(base + o_k),
                  *vh = (__nv_bfloat16 *)(base + o_v), *P = (__nv_bfloat16 *)(base + o_p);
    float *oh = (float *)(base + o_o), *S = (float *)(base + o_s);
    ag_to_heads(qh, q, B, T, NH, HD);
    ag_to_heads(kh, k, B, T, KVH, HD);
    ag_to_heads(vh, v, B, T, KVH, HD);
    float scale = 1.0f / sqrtf((float)HD);
    for (int g = 0; g < G; g++)
        for (int t0 = 0; t0 < T; t0 += tb) {
            int rows = min(tb, T - t0), nk = t0 + rows; /* keys this block can see */
            const __nv_bfloat16 *qb = qh + ((size_t)g * T + t0) * HD;
            /* S_i(rows, nk) = scale Q_i K_i^T */
            cuda_gemm_bf16_batched("attention_forward S", 0, 1, rows, nk, HD, scale, qb, HD, (long long)G * T * HD, kh,
                                   HD, (long long)T * HD, 0.0f, S, nk, (long long)rows * nk, nb);
            int nr = nb * rows;
            ag_softmax_kernel<<<(nr + 7) / 8, 256, 0, cuda_stream()>>>(P, lse, S, seg, rows, nk, t0, g, G, KVH, NH, T, nr);
            cuda_after_launch("attention_forward softmax");
            /* O_i(rows, HD) = P_i V_i, into head-major fp32 */
            cuda_gemm_bf16_batched("attention_forward PV", 0, 0, rows, HD, nk, 1.0f, P, nk, (long long)rows * nk, vh,
                                   HD, (long long)T * HD, 0.0f, oh + ((size_t)g * T + t0) * HD, HD,
                                   (long long)G * T * HD, nb);
        }
    ag_from_heads(out, oh, B, T, NH, HD);
}

void cuda_attention_backward_gemm(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                  const float *lse, const float *q, const float *k, const float *v, const int32_t *seg,
                                  int B, int T, int NH, int KVH, int HD) {
    int G = NH / KVH, nb = B * KVH;
    int tb = ag_rows(B, KVH, T, 4 + 4 + 2 + 2);
    size_t nq = (size_t)B * NH * T * HD, nkv = (size_t)B * KVH * T * HD, ns = (size_t)nb * tb * T;
    size_t o_q = 0, o_k = o_q + al16(nq * 2), o_v = o_k + al16(nkv * 2), o_do = o_v + al16(nkv * 2),
           o_dq = o_do + al16(nq * 2), o_dk = o_dq + al16(nq * 4), o_dv = o_dk + al16(nkv * 4),
           o_D = o_dv + al16(nkv * 4), o_s = o_D + al16((size_t)B * NH * T * 4), o_dp = o_s + al16(ns * 4),
           o_p = o_dp + al16(ns * 4), o_ds = o_p + al16(ns * 2), total = o_ds + al16(ns * 2);
    char *base = (char *)cuda_scratch(total);
    if (!base) return;
    __nv_bfloat16 *qh = (__nv_bfloat16 *)(base + o_q), *kh = (__nv_bfloat16 *)(base + o_k),
                  *vh = (__nv_bfloat16 *)(base + o_v), *doh = (__nv_bfloat16 *)(base + o_do),
                  *P = (__nv_bfloat16 *)(base + o_p), *dS = (__nv_bfloat16 *)(base + o_ds);
    float *dqh = (float *)(base + o_dq), *dkh = (float *)(base + o_dk), *dvh = (float *)(base + o_dv),
          *D = (float *)(base + o_D), *S = (float *)(base + o_s), *dP = (float *)(base + o_dp);
    size_t rows_bth = (size_t)B * T * NH;
    cuda_attention_rowdot(D, dout, out, rows_bth, B, T, NH, HD);
    ag_to_heads(qh, q, B, T, NH, HD);
    ag_to_heads(kh, k, B, T, KVH, HD);
    ag_to_heads(vh, v, B, T, KVH, HD);
    ag_to_heads(doh, dout, B, T, NH, HD);
    cuda_note("attention_backward zero", cudaMemsetAsync(dkh, 0, nkv * 4, cuda_stream())); /* dK, dV accumulate */
    cuda_note("attention_backward zero", cudaMemsetAsync(dvh, 0, nkv * 4, cuda_stream()));
    float scale = 1.0f / sqrtf((float)HD);
    long long sq = (long long)G * T * HD, skv = (long long)T * HD;
    for (int g = 0; g < G; g++)
        for (int t0 = 0; t0 < T; t0 += tb) {
            int rows = min(tb, T - t0), nk = t0 + rows, nr = nb * rows;
            long long ss = (long long)rows * nk;
            size_t qoff = ((size_t)g * T + t0) * HD;
            cuda_gemm_bf16_batched("attention_backward S", 0, 1, rows, nk, HD, scale, qh + qoff, HD, sq, kh, HD, skv,
                                   0.0f, S, nk, ss, nb);
            cuda_gemm_bf16_batched("attention_backward dP", 0, 1, rows, nk, HD, 1.0f, doh + qoff, HD, sq, vh, HD, skv,
                                   0.0f, dP, nk, ss, nb);
            ag_dsoftmax_kernel<<<(nr + 7) / 8, 256, 0, cuda_stream()>>>(P, dS, S, dP, lse, D, seg, rows, nk, t0, g, G, KVH, NH, T, nr);
            cuda_after_launch("attention_backward dsoftmax");
            /* dQ = scale dS K; dK += scale dS^T Q; dV += P^T dO */
            cuda_gemm_bf16_batched("attention_backward dQ", 0, 0, rows, HD, nk, scale, dS, nk, ss, kh, HD, skv, 0.0f,
                                   dqh + qoff, HD, sq, nb);
            cuda_gemm_bf16_batched("attention_backward dK", 1, 0, nk, HD, rows, scale, dS, nk, ss, qh + qoff, HD, sq,
                                   1.0f, dkh, HD, skv, nb);
            cuda_gemm_bf16_batched("attention_backward dV", 1, 0, nk, HD, rows, 1.0f, P, nk, ss, doh + qoff, HD, sq,
                                   1.0f, dvh, HD, skv, nb);
        }
    ag_from_heads(dq, dqh, B, T, NH, HD);
    ag_from_heads(dk, dkh, B, T, KVH, HD);
    ag_from_heads(dv, dvh, B, T, KVH, HD);
}
