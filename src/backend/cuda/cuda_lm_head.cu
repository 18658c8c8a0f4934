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
#define LM_CHUNK_FLOATS ((size_t)64 << 20) /* 256 MB of logits per chunk */

static int g_chunk_rows; /* 0: from LM_CHUNK_FLOATS */

extern "C" void cuda_set_lm_head_chunk(int rows) { g_chunk_rows = rows > 0 ? rows : 0; }

static int lm_chunk(int N, int V) {
    size_t r = g_chunk_rows ? (size_t)g_chunk_rows : LM_CHUNK_FLOATS / (V > 0 ? (size_t)V : 1);
    if (r < 1) r = 1;
    return r < (size_t)N ? (int)r : N;
}

/* max and log-sum-exp of z = l * inv_t over one row; every thread gets
 * them. Per-thread partials in float, combined in double (as the CPU). */
__device__ float row_lse(const float *l, int V, float inv_t, float *sh_f, double *sh_d, float *ent) {
    float m = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, l[j]);
    m = block_max(m, sh_f) * inv_t;
    float s = 0.0f, sz = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float z = l[j] * inv_t, e = expf(z - m);
        s += e;
        sz += e * z;
    }
    double S = block_sum((double)s, sh_d);
    float lse = m + (float)log(S);
    if (ent) {
        double SZ = block_sum((double)sz, sh_d);
        *ent = lse - (float)(SZ / S);
    }
    return lse;
}

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
    float lse = row_lse(row, V, inv_t, sh_f, sh_d, ent ? &e : NULL);
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
        lm_forward_rows_kernel<<<rows, LM_THREADS, 0, cuda_stream()>>>(logp, ent, lg, target, r0, V, inv_t);
        cuda_after_launch("lm_head_logprob_forward rows");
    }
}

/* dl(row) = g/temp * (onehot(target) - softmax(z)), or 0 where the row has
 * no target or no gradient. src may equal dst. */
__global__ void __launch_bounds__(LM_THREADS) lm_backward_rows_kernel(float *dst, const float *src,
                                                                      const float *dlogp, const int32_t *target,
                                                                      int r0, int V, float inv_t) {
    __shared__ float sh_f[32];
    __shared__ double sh_d[32];
    int n = r0 + blockIdx.x, tg = target[n];
    float g = dlogp[n];
    const float *l = src + (size_t)blockIdx.x * V;
    float *d = dst + (size_t)blockIdx.x * V;
    if (tg < 0 || g == 0.0f) {
        for (int j = threadIdx.x; j < V; j += blockDim.x) d[j] = 0.0f;
        return;
    }
    float lse = row_lse(l, V, inv_t, sh_f, sh_d, NULL);
    g *= inv_t;
    for (int j = threadIdx.x; j < V; j += blockDim.x) d[j] = -g * expf(l[j] * inv_t - lse);
    __syncthreads();
    if (threadIdx.x == 0) d[tg] += g;
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
        lm_backward_rows_kernel<<<rows, LM_THREADS, 0, cuda_stream()>>>(lg, src, dlogp, target, r0, V, inv_t);
        cuda_after_launch("lm_head_logprob_backward rows");
        cuda_sgemm("lm_head_logprob_backward dx", 0, 0, rows, C, V, 1.0f, lg, V, w, C, 0.0f, dx + (size_t)r0 * C, C);
        if (dw) cuda_sgemm("lm_head_logprob_backward dw", 1, 0, V, C, rows, 1.0f, lg, V, x + (size_t)r0 * C, C, 1.0f,
                           dw, C);
    }
}
