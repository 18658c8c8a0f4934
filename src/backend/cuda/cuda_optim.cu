/* Optimizer-side ops: the deterministic sum of squares (gradient norm),
 * scale (clipping) and the fused AdamW step. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

/* Fixed 64k-element chunks, one block each, reduced in a fixed tree order,
 * then one block sums the chunk partials in a fixed order: the result
 * depends only on n and the data, never on timing or on the device's
 * multiprocessor count. */
#define SUMSQ_CHUNK (1 << 16)
#define SUMSQ_THREADS 256

__global__ void sumsq_chunks_kernel(double *part, const float *x, size_t n) {
    __shared__ double sh[32];
    size_t b = (size_t)blockIdx.x * SUMSQ_CHUNK, e = b + SUMSQ_CHUNK < n ? b + SUMSQ_CHUNK : n;
    double s = 0;
    for (size_t i = b + threadIdx.x; i < e; i += SUMSQ_THREADS) s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void sumsq_final_kernel(double *out, const double *part, size_t nc) {
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = threadIdx.x; i < nc; i += blockDim.x) s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) *out = s;
}

static double *g_part;  /* chunk partials + the result in the last slot */
static size_t g_part_n;

void cuda_sumsq_trim(void) {
    if (g_part) cuda_note("trim", cudaFree(g_part));
    g_part = NULL;
    g_part_n = 0;
}

double cu_sumsq(const float *x, size_t n) {
    if (!n) return 0.0;
    size_t nc = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    if (nc + 1 > g_part_n) {
        if (g_part) cudaFree(g_part);
        g_part = NULL;
        g_part_n = 0;
        cudaError_t e = cudaMalloc(&g_part, (nc + 1) * sizeof(double));
        if (e != cudaSuccess) {
            cuda_note("sumsq alloc", e);
            g_part = NULL;
            return NAN;
        }
        g_part_n = nc + 1;
    }
    sumsq_chunks_kernel<<<(unsigned)nc, SUMSQ_THREADS, 0, cuda_stream()>>>(g_part, x, n);
    cuda_after_launch("sumsq chunks");
    sumsq_final_kernel<<<1, 1024, 0, cuda_stream()>>>(g_part + nc, g_part, nc);
    cuda_after_launch("sumsq final");
    double s = NAN;
    cuda_note("sumsq result", cudaMemcpy(&s, g_part + nc, sizeof s, cudaMemcpyDeviceToHost));
    return s;
}

__global__ void scale_kernel(float *x, float s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

void cu_scale(float *x, float s, size_t n) {
    if (!n) return;
    cuda_shadow_touch(x, n * sizeof(float));
    scale_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(x, s, n);
    cuda_after_launch("scale");
}

/* Torch AdamW; the scalars are formed on the host exactly as the CPU
 * backend forms them, so both round the same way. */
__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float beta1, float beta2,
                             float eps, float step, float bc2s, float decay, float gscale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = __fmul_rn(g[i], gscale); /* rounded, never fused: scale_kernel's value */
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * mi / (sqrtf(vi) / bc2s + eps);
    }
}

void cu_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                     float eps, float wd, int t, float gscale) {
    if (!n) return;
    cuda_shadow_touch(p, n * sizeof(float));
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    float step = lr / bc1, bc2s = sqrtf(bc2), decay = 1.0f - lr * wd;
    adamw_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(p, g, m, v, n, beta1, beta2, eps, step, bc2s, decay,
                                                                 gscale);
    cuda_after_launch("adamw_update");
}
