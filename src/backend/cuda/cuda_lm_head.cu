/* The fused LM head on the device: per chunk of rows, one cuBLAS GEMM for
 * the logits, then one block per row for max / log-sum-exp / entropy (and,
 * backward, the softmax gradient written over the chunk), then GEMMs for
 * dx and dw. Only a (rows, V) chunk of logits exists at a time. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

extern "C" {
#include "backend/cuda/backend_cuda.h"
}

#define LM_THREADS 512
/* 2 GB of fp32 logits per chunk (3533 rows at a 151,936 vocabulary): the
 * weight gradient's GEMM accumulates into the fp32 dw once per chunk, and
 * at 256 MB chunks (441 rows) those passes over dw and the short GEMMs
 * cost 7% of a 0.5B-shape training step */
#define LM_CHUNK_FLOATS ((size_t)512 << 20)

static int g_chunk_rows; /* 0: from LM_CHUNK_FLOATS */

extern "C" void cuda_set_lm_head_chunk(int rows) { g_chunk_rows = rows > 0 ? rows : 0; }

static int lm_chunk(int N, int V) {
    size_t r = g_chunk_rows ? (size_t)g_chunk_rows : LM_CHUNK_FLOATS / (V > 0 ? (size_t)V : 1);
    if (r < 1) r = 1;
    return r < (size_t)N ? (int)r : N;
}

/* One logit into a thread's running max m and sums s = sum exp(z - m),
 * sz = sum exp(z - m) z, rescaled when the max rises. */
__device__ __forceinline__ void lse_add(float z, float &m, float &s, float &sz) {
    if (z > m) {
        float c = expf(m - z); /* 0 for the first element */
        s *= c, sz *= c, m = z;
    }
    float e = expf(z - m);
    s += e;
    sz += e * z;
}

/* max and log-sum-exp of z = l * inv_t over one row; every thread gets
 * them. One pass over the row (VEC = 4: float4 loads, for V % 4 == 0 and
 * 16-byte aligned rows): each thread keeps its own max and sums; the block
 * combines them in double against the row's max. */
template <int VEC>
__device__ float row_lse(const float *l, int V, float inv_t, float *sh_f, double *sh_d, float *ent) {
    float m = -INFINITY, s = 0.0f, sz = 0.0f;
    if (VEC == 4) {
        const float4 *l4 = (const float4 *)l;
#pragma unroll 2
        for (int j = threadIdx.x; j < V / 4; j += blockDim.x) {
            float4 v = l4[j];
            lse_add(v.x * inv_t, m, s, sz);
            lse_add(v.y * inv_t, m, s, sz);
            lse_add(v.z * inv_t, m, s, sz);
            lse_add(v.w * inv_t, m, s, sz);
        }
    } else {
        for (int j = threadIdx.x; j < V; j += blockDim.x) lse_add(l[j] * inv_t, m, s, sz);
    }
    float M = block_max(m, sh_f);
    float c = expf(m - M); /* 0 for a thread that saw no element */
    double S = block_sum((double)(s * c), sh_d);
    float lse = M + (float)log(S);
    if (ent) {
        double SZ = block_sum((double)(sz * c), sh_d);
        *ent = lse - (float)(SZ / S);
    }
    return lse;
}

/* float4 rows: every row of V floats starts 16-byte aligned */
static int lm_vec(int V, const void *a, const void *b) { return V % 4 == 0 && cuda_aligned16(a, b, NULL, NULL); }

template <int VEC>
__global__ void __launch_bounds__(LM_THREADS) lm_forward_rows_kernel(float *logp, float *ent, const float *lg,
                                                                     const int32_t *target, int r0, int V,
                                                                     float inv_t) {
    __shared__ float sh_f[32];
    __shared__ double sh_d[32];
    int n = r0 + blockIdx.x, tg = target[n];
    const float *row = lg + (size_t)blockIdx.x * V;
    if (tg < 0) { /* block-uniform */
        if (threadIdx.x == 0) {
            logp[n] = 0.0f;
            if (ent) ent[n] = 0.0f;
        }
        return;
    }
    float e = 0.0f;
    float lse = row_lse<VEC>(row, V, inv_t, sh_f, sh_d, ent ? &e : NULL);
    if (threadIdx.x == 0) {
        logp[n] = row[tg] * inv_t - lse;
        if (ent) ent[n] = e;
    }
}

void cu_lm_head_logprob_forward(float *logp, float *ent, float *logits_out, const float *x, const float *w,
                                const int32_t *target, int N, int C, int V, float temp) {
    if (N <= 0) return;
    int R = lm_chunk(N, V);
    float *buf = logits_out ? NULL : (float *)cuda_scratch((size_t)R * V * sizeof(float));
    if (!logits_out && !buf) return;
    float inv_t = 1.0f / temp;
    for (int r0 = 0; r0 < N; r0 += R) {
        int rows = N - r0 < R ? N - r0 : R;
        float *lg = logits_out ? logits_out + (size_t)r0 * V : buf;
        cuda_sgemm("lm_head_logprob_forward logits", 0, 1, rows, V, C, 1.0f, x + (size_t)r0 * C, C, w, C, 0.0f, lg,
                   V);
        if (lm_vec(V, lg, NULL))
            lm_forward_rows_kernel<4><<<rows, LM_THREADS, 0, cuda_stream()>>>(logp, ent, lg, target, r0, V, inv_t);
        else
            lm_forward_rows_kernel<1><<<rows, LM_THREADS, 0, cuda_stream()>>>(logp, ent, lg, target, r0, V, inv_t);
        cuda_after_launch("lm_head_logprob_forward rows");
    }
}

/* dl(row) = g/temp * (onehot(target) - softmax(z)), or 0 where the row has
 * no target or no gradient, into dst (fp32; src may equal dst) or, when
 * d16 is given, only into d16 rounded to bf16 (the dx and dw GEMMs' input,
 * the same values they would round it to). */
__device__ __forceinline__ float lm_grad(float l, float inv_t, float lse, float g, int j, int tg) {
    /* the target's term: the same sum, in the same order, as writing the
     * softmax part and adding g to it afterwards */
    float v = -g * expf(l * inv_t - lse);
    if (j == tg) v += g;
    return v;
}

template <int VEC>
__global__ void __launch_bounds__(LM_THREADS) lm_backward_rows_kernel(float *dst, __nv_bfloat16 *d16,
                                                                      const float *src, const float *dlogp,
                                                                      const int32_t *target, int r0, int V,
                                                                      float inv_t) {
    __shared__ float sh_f[32];
    __shared__ double sh_d[32];
    int n = r0 + blockIdx.x, tg = target[n];
    float g = dlogp[n];
    const float *l = src + (size_t)blockIdx.x * V;
    float *d = dst + (size_t)blockIdx.x * V;
    __nv_bfloat16 *h = d16 ? d16 + (size_t)blockIdx.x * V : NULL;
    int none = tg < 0 || g == 0.0f; /* block-uniform */
    float lse = none ? 0.0f : row_lse<VEC>(l, V, inv_t, sh_f, sh_d, NULL);
    g *= inv_t;
    if (VEC == 4) {
        const float4 *l4 = (const float4 *)l;
        for (int q = threadIdx.x; q < V / 4; q += blockDim.x) {
            int j = 4 * q;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (!none) {
                float4 x = l4[q];
                v = make_float4(lm_grad(x.x, inv_t, lse, g, j, tg), lm_grad(x.y, inv_t, lse, g, j + 1, tg),
                                lm_grad(x.z, inv_t, lse, g, j + 2, tg), lm_grad(x.w, inv_t, lse, g, j + 3, tg));
            }
            if (h) {
                *(__nv_bfloat162 *)(h + j) = __floats2bfloat162_rn(v.x, v.y);
                *(__nv_bfloat162 *)(h + j + 2) = __floats2bfloat162_rn(v.z, v.w);
            } else {
                *(float4 *)(d + j) = v;
            }
        }
    } else {
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float v = none ? 0.0f : lm_grad(l[j], inv_t, lse, g, j, tg);
            if (h) h[j] = __float2bfloat16_rn(v);
            else d[j] = v;
        }
    }
}

void cu_lm_head_logprob_backward(float *dx, float *dw, const float *dlogp, const float *x, const float *w,
                                 const float *logits, const int32_t *target, int N, int C, int V, float temp) {
    if (N <= 0) return;
    int R = lm_chunk(N, V);
    float *lg = (float *)cuda_scratch((size_t)R * V * sizeof(float));
    if (!lg) return;
    float inv_t = 1.0f / temp;
    for (int r0 = 0; r0 < N; r0 += R) {
        int rows = N - r0 < R ? N - r0 : R;
        const float *src = lg;
        if (logits) src = logits + (size_t)r0 * V;
        else cuda_sgemm("lm_head_logprob_backward logits", 0, 1, rows, V, C, 1.0f, x + (size_t)r0 * C, C, w, C, 0.0f,
                        lg, V);
        /* bf16: the gradient goes to the GEMMs' bf16 hand-off only (the dx
         * GEMM takes it, the dw GEMM reuses it: cuda_bf16.cu) */
        __nv_bfloat16 *g16 = cuda_act16_target((size_t)rows * V);
        if (lm_vec(V, lg, src))
            lm_backward_rows_kernel<4><<<rows, LM_THREADS, 0, cuda_stream()>>>(lg, g16, src, dlogp, target, r0, V,
                                                                             inv_t);
        else
            lm_backward_rows_kernel<1><<<rows, LM_THREADS, 0, cuda_stream()>>>(lg, g16, src, dlogp, target, r0, V,
                                                                             inv_t);
        cuda_after_launch("lm_head_logprob_backward rows");
        if (g16) cuda_act16_produced(lg, (size_t)rows * V);
        cuda_sgemm("lm_head_logprob_backward dx", 0, 0, rows, C, V, 1.0f, lg, V, w, C, 0.0f, dx + (size_t)r0 * C, C);
        /* the fp32 chunk does not hold the gradient in that case: the dw
         * GEMM must find the copy the dx GEMM used */
        if (g16 && dw && !cuda_bf16_kept(lg, (size_t)rows * V)) {
            cuda_note("lm_head_logprob_backward (bf16 gradient copy lost)", cudaErrorInvalidValue);
            return;
        }
        if (dw) cuda_sgemm("lm_head_logprob_backward dw", 1, 0, V, C, rows, 1.0f, lg, V, x + (size_t)r0 * C, C, 1.0f,
                           dw, C);
    }
}
