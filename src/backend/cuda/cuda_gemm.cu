/* The matmul op pair over cuda_sgemm (cuda_bf16.cu: bf16 tensor cores or fp32),
 * and the deterministic column sum that bias and norm-weight gradients use. */
#include "backend/cuda/cuda_common.cuh"

/* out(N,O) += bias(O) on every row: rows on grid.y, VEC columns per
 * thread (4: O % 4 == 0, aligned buffers) */
template <int VEC>
__global__ void bias_add_kernel(float *out, const float *bias, int N, int O) {
    int j = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (j >= O) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        float *o = out + (size_t)n * O + j;
        if (VEC == 4) {
            float4 a = *(const float4 *)o, b = *(const float4 *)(bias + j);
            *(float4 *)o = make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z),
                                       __fadd_rn(a.w, b.w));
        } else {
            *o = __fadd_rn(*o, bias[j]);
        }
    }
}

#define COLSUM_ROWS 8   /* row lanes of a block */
#define COLSUM_SLICE 64 /* rows a block sums, at least */
#define COLSUM_MAX_SLICES 1024

/* Pass 1: block (32 columns) x (8 row lanes) over one slice of rows; each
 * thread sums every 8th row of the slice in double, lane 0 adds the 8
 * partials in a fixed order and writes the slice's sum. */
__global__ void colsum_slices_kernel(double *part, const float *a, const float *b, const float *rs, int N, int C,
                                     int slice) {
    __shared__ double sh[COLSUM_ROWS][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    int n0 = blockIdx.y * slice, n1 = n0 + slice < N ? n0 + slice : N;
    double s = 0;
    if (c < C)
        for (int n = n0 + threadIdx.y; n < n1; n += COLSUM_ROWS) {
            size_t i = (size_t)n * C + c;
            float v = a[i];
            if (b) v *= b[i];
            if (rs) v *= rs[n];
            s += v;
        }
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        double t = 0;
        for (int r = 0; r < COLSUM_ROWS; r++) t += sh[r][threadIdx.x];
        part[(size_t)blockIdx.y * C + c] = t;
    }
}

/* Pass 2: each column adds its slices' sums in slice order. */
__global__ void colsum_combine_kernel(float *dst, const double *part, int C, int slices) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double t = 0;
    for (int p = 0; p < slices; p++) t += part[(size_t)p * C + c];
    dst[c] += (float)t;
}

static CudaBuf g_colsum;

void cuda_colsum_trim(void) { cuda_buf_free(&g_colsum); }

/* Slices of at least COLSUM_SLICE rows, at most COLSUM_MAX_SLICES of them:
 * 256 blocks per 32 columns at 16k rows, where one block per 32 columns
 * walking every row left most of the GPU idle. */
void cuda_colsum(const char *op, float *dst, const float *a, const float *b, const float *rs, int N, int C) {
    if (C <= 0 || N <= 0) return;
    int slices = (N + COLSUM_SLICE - 1) / COLSUM_SLICE;
    if (slices > COLSUM_MAX_SLICES) slices = COLSUM_MAX_SLICES;
    int slice = (N + slices - 1) / slices;
    slices = (N + slice - 1) / slice;
    double *part = (double *)cuda_buf_grow(&g_colsum, (size_t)slices * C * sizeof(double), "column sum partials");
    if (!part) return;
    colsum_slices_kernel<<<dim3((C + 31) / 32, slices), dim3(32, COLSUM_ROWS), 0, cuda_stream()>>>(part, a, b, rs, N,
                                                                                                 C, slice);
    cuda_after_launch(op);
    colsum_combine_kernel<<<(C + 255) / 256, 256, 0, cuda_stream()>>>(dst, part, C, slices);
    cuda_after_launch(op);
}

void cu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K, int O) {
    cuda_sgemm("matmul_forward", 0, 1, N, O, K, 1.0f, inp, K, w, K, 0.0f, out, O);
    if (bias && N > 0 && O > 0) {
        if (O % 4 == 0 && cuda_aligned16(out, bias, NULL, NULL))
            bias_add_kernel<4><<<cuda_rows_grid(N, O / 4), 256, 0, cuda_stream()>>>(out, bias, N, O);
        else
            bias_add_kernel<1><<<cuda_rows_grid(N, O), 256, 0, cuda_stream()>>>(out, bias, N, O);
        cuda_after_launch("matmul_forward bias");
    }
}

void cu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                        int N, int K, int O, int accumulate_dinp) {
    if (dinp) cuda_sgemm("matmul_backward dinp", 0, 0, N, K, O, 1.0f, dout, O, w, K, accumulate_dinp ? 1.0f : 0.0f, dinp, K);
    if (dw) cuda_sgemm("matmul_backward dw", 1, 0, O, K, N, 1.0f, dout, O, inp, K, 1.0f, dw, K);
    if (dbias && cuda_fp32_is_unwritten(dout, (size_t)N * O))
        cuda_note_msg("matmul_backward dbias", "dout was written in bf16 only (swiglu_backward_gemm)");
    else if (dbias) cuda_colsum("matmul_backward dbias", dbias, dout, NULL, NULL, N, O);
}
