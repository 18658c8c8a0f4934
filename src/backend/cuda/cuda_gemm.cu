/* The matmul op pair over cuda_sgemm (cuda_bf16.cu: bf16 tensor cores or fp32),
 * and the deterministic column sum that bias and norm-weight gradients use. */
#include "backend/cuda/cuda_common.cuh"

/* out(N,O) += bias(O) on every row */
__global__ void bias_add_kernel(float *out, const float *bias, size_t total, int O) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __fadd_rn(out[i], bias[i % O]);
}

#define COLSUM_ROWS 8
/* Block (32 columns) x (8 row lanes): each thread sums every 8th row of its
 * column in double, then lane 0 adds the 8 partials in a fixed order. */
__global__ void colsum_kernel(float *dst, const float *a, const float *b, const float *rs, int N, int C) {
    __shared__ double part[COLSUM_ROWS][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    double s = 0;
    if (c < C)
        for (int n = threadIdx.y; n < N; n += COLSUM_ROWS) {
            size_t i = (size_t)n * C + c;
            float v = a[i];
            if (b) v *= b[i];
            if (rs) v *= rs[n];
            s += v;
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        double t = 0;
        for (int r = 0; r < COLSUM_ROWS; r++) t += part[r][threadIdx.x];
        dst[c] += (float)t;
    }
}

void cuda_colsum(const char *op, float *dst, const float *a, const float *b, const float *rs, int N, int C) {
    if (C <= 0) return;
    colsum_kernel<<<(C + 31) / 32, dim3(32, COLSUM_ROWS), 0, cuda_stream()>>>(dst, a, b, rs, N, C);
    cuda_after_launch(op);
}

void cu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K, int O) {
    cuda_sgemm("matmul_forward", 0, 1, N, O, K, 1.0f, inp, K, w, K, 0.0f, out, O);
    if (bias && N > 0 && O > 0) {
        size_t total = (size_t)N * O;
        bias_add_kernel<<<cuda_blocks(total, 256), 256, 0, cuda_stream()>>>(out, bias, total, O);
        cuda_after_launch("matmul_forward bias");
    }
}

void cu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                        int N, int K, int O, int accumulate_dinp) {
    if (dinp) cuda_sgemm("matmul_backward dinp", 0, 0, N, K, O, 1.0f, dout, O, w, K, accumulate_dinp ? 1.0f : 0.0f, dinp, K);
    if (dw) cuda_sgemm("matmul_backward dw", 1, 0, O, K, N, 1.0f, dout, O, inp, K, 1.0f, dw, K);
    if (dbias) cuda_colsum("matmul_backward dbias", dbias, dout, NULL, NULL, N, O);
}
