/* Row-wise and element-wise ops: RMSNorm, RoPE, SwiGLU, embedding, the QKV
 * split/merge and KV-cache writes, add. Int arrays (ids, pos, slot) are
 * device pointers. Math mirrors backend_cpu.c, with accurate expf. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

#include <cub/device/device_radix_sort.cuh>

#define GRID_STRIDE(i, total) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (total); i += (size_t)gridDim.x * blockDim.x)

/* ---- RMSNorm: one block per row ---- */

/* dx (NULL: none) is added into x first (add_rmsnorm_forward); the
 * squares are summed from the same values either way, so the fused op
 * gives rmsnorm_forward's bits. */
__global__ void rmsnorm_forward_kernel(float *out, __nv_bfloat16 *o16, float *rstd, float *x, const float *dx,
                                       const float *w, int C, float eps) {
    __shared__ float sh[32];
    float *xn = x + (size_t)blockIdx.x * C;
    const float *dn = dx ? dx + (size_t)blockIdx.x * C : NULL;
    float *on = out + (size_t)blockIdx.x * C;
    float ss = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float v = xn[i];
        if (dn) {
            v = __fadd_rn(v, dn[i]);
            xn[i] = v;
        }
        ss += v * v;
    }
    ss = block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    __nv_bfloat16 *o16n = o16 ? o16 + (size_t)blockIdx.x * C : NULL;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float v = w[i] * (xn[i] * r);
        on[i] = v;
        if (o16n) o16n[i] = __float2bfloat16_rn(v);
    }
}

/* The same arithmetic with the row in registers, for C <= 256 PER: thread
 * t owns elements t + 256 j (j = 0 .. PER - 1) as above, issues all its
 * loads of x (and dx) before using any, sums its squares in the same order
 * with the same expression, and writes the outputs from registers. Same
 * bits as rmsnorm_forward_kernel; no second round of loads of x. */
template <int PER, bool DX>
__global__ void __launch_bounds__(256) rmsnorm_forward_reg_kernel(float *out, __nv_bfloat16 *o16, float *rstd,
                                                                  float *x, const float *dx, const float *w, int C,
                                                                  float eps) {
    __shared__ float sh[32];
    float *xn = x + (size_t)blockIdx.x * C;
    float *on = out + (size_t)blockIdx.x * C;
    float v[PER], wv[PER];
#pragma unroll
    for (int j = 0; j < PER; j++) {
        int i = threadIdx.x + 256 * j;
        v[j] = i < C ? xn[i] : 0.0f;
    }
    if (DX) {
        const float *dn = dx + (size_t)blockIdx.x * C;
        float d[PER];
#pragma unroll
        for (int j = 0; j < PER; j++) {
            int i = threadIdx.x + 256 * j;
            d[j] = i < C ? dn[i] : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < PER; j++) {
            int i = threadIdx.x + 256 * j;
            if (i < C) {
                v[j] = __fadd_rn(v[j], d[j]);
                xn[i] = v[j];
            }
        }
    }
    float ss = 0;
#pragma unroll
    for (int j = 0; j < PER; j++)
        if (threadIdx.x + 256 * j < C) ss += v[j] * v[j];
    const bool WPRE = PER <= 16; /* w in flight during the reduction (PER 32: loaded where used, no spill) */
#pragma unroll
    for (int j = 0; j < PER; j++) {
        int i = threadIdx.x + 256 * j;
        wv[j] = WPRE && i < C ? w[i] : 0.0f;
    }
    ss = block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    __nv_bfloat16 *o16n = o16 ? o16 + (size_t)blockIdx.x * C : NULL;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        int i = threadIdx.x + 256 * j;
        if (i < C) {
            float y = (WPRE ? wv[j] : w[i]) * (v[j] * r);
            on[i] = y;
            if (o16n) o16n[i] = __float2bfloat16_rn(y);
        }
    }
}

template <int PER>
static void rmsnorm_reg_launch(float *out, __nv_bfloat16 *o16, float *rstd, float *x, const float *dx,
                               const float *w, int N, int C, float eps) {
    if (dx) rmsnorm_forward_reg_kernel<PER, true><<<N, 256, 0, cuda_stream()>>>(out, o16, rstd, x, dx, w, C, eps);
    else rmsnorm_forward_reg_kernel<PER, false><<<N, 256, 0, cuda_stream()>>>(out, o16, rstd, x, dx, w, C, eps);
}

static void rmsnorm_launch(float *out, float *rstd, float *x, const float *dx, const float *w, int N, int C,
                           float eps, const char *op) {
    if (N <= 0) return;
    __nv_bfloat16 *o16 = cuda_act16_target((size_t)N * C);
    int per = (C + 255) / 256; /* elements per thread */
    if (per <= 1) rmsnorm_reg_launch<1>(out, o16, rstd, x, dx, w, N, C, eps);
    else if (per <= 2) rmsnorm_reg_launch<2>(out, o16, rstd, x, dx, w, N, C, eps);
    else if (per <= 4) rmsnorm_reg_launch<4>(out, o16, rstd, x, dx, w, N, C, eps);
    else if (per <= 8) rmsnorm_reg_launch<8>(out, o16, rstd, x, dx, w, N, C, eps);
    else if (per <= 16) rmsnorm_reg_launch<16>(out, o16, rstd, x, dx, w, N, C, eps);
    else if (per <= 32) rmsnorm_reg_launch<32>(out, o16, rstd, x, dx, w, N, C, eps);
    else rmsnorm_forward_kernel<<<N, 256, 0, cuda_stream()>>>(out, o16, rstd, x, dx, w, C, eps);
    cuda_after_launch(op);
    if (o16) cuda_act16_produced(out, (size_t)N * C);
}

void cu_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps) {
    rmsnorm_launch(out, rstd, (float *)x, NULL, w, N, C, eps, "rmsnorm_forward");
}

void cu_add_rmsnorm_forward(float *x, const float *dx, float *out, float *rstd, const float *w, int N, int C,
                            float eps) {
    if (N > 0) cuda_shadow_touch(x, (size_t)N * C * sizeof(float));
    rmsnorm_launch(out, rstd, x, dx, w, N, C, eps, "add_rmsnorm_forward");
}

/* dx = r * (w*g - xhat * mean(w*g*xhat)), accumulated */
/* dx += ...; where dx16 is given, the sum also rounded to bf16 for the
 * GEMM that reads the residual stream's gradient next (matmul_backward's
 * dinp, then its dw from the kept copy) */
__global__ void rmsnorm_backward_kernel(float *dx, __nv_bfloat16 *dx16, const float *dout, const float *x,
                                        const float *w, const float *rstd, int C) {
    __shared__ float sh[32];
    size_t off = (size_t)blockIdx.x * C;
    const float *xn = x + off, *gn = dout + off;
    float *dxn = dx + off;
    float r = rstd[blockIdx.x], dot = 0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dot += w[i] * gn[i] * xn[i] * r;
    dot = block_sum(dot, sh) / C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float v = dxn[i] + r * (w[i] * gn[i] - xn[i] * r * dot);
        dxn[i] = v;
        if (dx16) dx16[off + i] = __float2bfloat16_rn(v);
    }
}

void cu_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                         int N, int C) {
    if (N <= 0) return;
    __nv_bfloat16 *dx16 = cuda_act16_target((size_t)N * C);
    rmsnorm_backward_kernel<<<N, 256, 0, cuda_stream()>>>(dx, dx16, dout, x, w, rstd, C);
    cuda_after_launch("rmsnorm_backward dx");
    cuda_fp32_written(dx, (size_t)N * C * sizeof(float));
    if (dw) cuda_colsum("rmsnorm_backward dw", dw, dout, x, rstd, N, C); /* dw += sum g * x * r */
    /* the copy is valid once every launch of the op is issued: the column
     * sum reads dout, x and rstd only */
    if (dx16) cuda_act16_produced(dx, (size_t)N * C);
}

/* ---- RoPE (rotate-half), in place; pos, cos_t, sin_t on the device ---- */

/* The rotation of the pair (a, b) by (c, s), each product and sum
 * rounded on its own (no fused multiply-add: the CPU's arithmetic, and
 * the same bits in every kernel that rotates). */
__device__ __forceinline__ float rope_lo(float a, float b, float c, float s) {
    return __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
}
__device__ __forceinline__ float rope_hi(float a, float b, float c, float s) {
    return __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

/* Rows on grid.y, (head, pair) on grid.x; VEC = 4: four pairs per thread
 * with float4 loads (half % 4 == 0, aligned buffers), the same arithmetic
 * per pair. */
template <int VEC>
__global__ void rope_kernel(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H,
                            int HD, float sgn) {
    int half = HD / 2; /* an odd HD leaves its last channel alone, as on the CPU */
    int e = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (e >= H * half) return;
    int h = e / half, i = e - h * half;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        size_t t = (size_t)pos[n] * half + i;
        float *v = x + ((size_t)n * H + h) * HD;
        if (VEC == 4) {
            float4 a = *(const float4 *)(v + i), b = *(const float4 *)(v + i + half);
            float4 c = *(const float4 *)(cos_t + t), s = *(const float4 *)(sin_t + t);
            s = make_float4(sgn * s.x, sgn * s.y, sgn * s.z, sgn * s.w);
            *(float4 *)(v + i) = make_float4(rope_lo(a.x, b.x, c.x, s.x), rope_lo(a.y, b.y, c.y, s.y),
                                             rope_lo(a.z, b.z, c.z, s.z), rope_lo(a.w, b.w, c.w, s.w));
            *(float4 *)(v + i + half) = make_float4(rope_hi(a.x, b.x, c.x, s.x), rope_hi(a.y, b.y, c.y, s.y),
                                                    rope_hi(a.z, b.z, c.z, s.z), rope_hi(a.w, b.w, c.w, s.w));
        } else {
            float c = cos_t[t], s = sgn * sin_t[t];
            float a = v[i], b = v[i + half];
            v[i] = rope_lo(a, b, c, s);
            v[i + half] = rope_hi(a, b, c, s);
        }
    }
}

void cu_rope_apply(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H, int HD,
                   int inverse) {
    int half = HD / 2;
    if (N <= 0 || H <= 0 || half <= 0) return;
    float sgn = inverse ? -1.0f : 1.0f;
    if (half % 4 == 0 && cuda_aligned16(x, cos_t, sin_t, NULL))
        rope_kernel<4><<<cuda_rows_grid(N, H * half / 4), 256, 0, cuda_stream()>>>(x, pos, cos_t, sin_t, N, H, HD,
                                                                                 sgn);
    else
        rope_kernel<1><<<cuda_rows_grid(N, H * half), 256, 0, cuda_stream()>>>(x, pos, cos_t, sin_t, N, H, HD, sgn);
    cuda_after_launch("rope_apply");
}

/* ---- SwiGLU ---- */

/* Rows on grid.y (a stride loop past 65535), four columns per thread on
 * grid.x, so no thread divides an index; float4 loads where K % 4 == 0 and
 * the buffers are 16-byte aligned, one column otherwise. The
 * arithmetic per element is the scalar one either way. */
__device__ __forceinline__ float swiglu_f(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* d(up) = d * silu(g) in the CPU's rounding order, and d(gate) */
__device__ __forceinline__ void swiglu_b(float g, float u, float d, float *dg, float *du) {
    float sg = 1.0f / (1.0f + expf(-g));
    *du = d * (g * sg);
    *dg = d * u * sg * (1.0f + g * (1.0f - sg));
}

/* h (fp32; NULL: not written) and, where h16 is given, its bf16 copy */
template <int VEC>
__global__ void swiglu_forward_kernel(float *h, __nv_bfloat16 *h16, const float *gu, int N, int K) {
    int i = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= K) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        const float *g = gu + (size_t)n * 2 * K + i, *u = g + K;
        size_t o = (size_t)n * K + i;
        if (VEC == 4) {
            float4 a = *(const float4 *)g, b = *(const float4 *)u;
            float4 v = make_float4(swiglu_f(a.x, b.x), swiglu_f(a.y, b.y), swiglu_f(a.z, b.z), swiglu_f(a.w, b.w));
            if (h) *(float4 *)(h + o) = v;
            if (h16) {
                *(__nv_bfloat162 *)(h16 + o) = __floats2bfloat162_rn(v.x, v.y);
                *(__nv_bfloat162 *)(h16 + o + 2) = __floats2bfloat162_rn(v.z, v.w);
            }
        } else {
            float v = swiglu_f(*g, *u);
            if (h) h[o] = v;
            if (h16) h16[o] = __float2bfloat16_rn(v);
        }
    }
}

/* dgu (fp32; NULL: not written) and, where d16 is given, its bf16 copy
 * for the GEMMs that read it next (matmul_backward's dinp and dw); where
 * h16 is given, also h = swiglu(gu) in bf16 with the forward's arithmetic */
template <int VEC>
__global__ void swiglu_backward_kernel(float *dgu, __nv_bfloat16 *d16, __nv_bfloat16 *h16, const float *dh,
                                       const float *gu, int N, int K) {
    int i = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= K) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        size_t r = (size_t)n * 2 * K + i, o = (size_t)n * K + i;
        if (VEC == 4) {
            float4 g = *(const float4 *)(gu + r), u = *(const float4 *)(gu + r + K), d = *(const float4 *)(dh + o);
            float4 dg, du;
            swiglu_b(g.x, u.x, d.x, &dg.x, &du.x);
            swiglu_b(g.y, u.y, d.y, &dg.y, &du.y);
            swiglu_b(g.z, u.z, d.z, &dg.z, &du.z);
            swiglu_b(g.w, u.w, d.w, &dg.w, &du.w);
            if (dgu) {
                *(float4 *)(dgu + r) = dg;
                *(float4 *)(dgu + r + K) = du;
            }
            if (d16) {
                *(__nv_bfloat162 *)(d16 + r) = __floats2bfloat162_rn(dg.x, dg.y);
                *(__nv_bfloat162 *)(d16 + r + 2) = __floats2bfloat162_rn(dg.z, dg.w);
                *(__nv_bfloat162 *)(d16 + r + K) = __floats2bfloat162_rn(du.x, du.y);
                *(__nv_bfloat162 *)(d16 + r + K + 2) = __floats2bfloat162_rn(du.z, du.w);
            }
            if (h16) {
                *(__nv_bfloat162 *)(h16 + o) = __floats2bfloat162_rn(swiglu_f(g.x, u.x), swiglu_f(g.y, u.y));
                *(__nv_bfloat162 *)(h16 + o + 2) = __floats2bfloat162_rn(swiglu_f(g.z, u.z), swiglu_f(g.w, u.w));
            }
        } else {
            float g = gu[r], u = gu[r + K], dg, du;
            swiglu_b(g, u, dh[o], &dg, &du);
            if (dgu) dgu[r] = dg, dgu[r + K] = du;
            if (d16) d16[r] = __float2bfloat16_rn(dg), d16[r + K] = __float2bfloat16_rn(du);
            if (h16) h16[o] = __float2bfloat16_rn(swiglu_f(g, u));
        }
    }
}

/* h16 / d16 NULL: fp32 precision, or no room for a copy */
static void swiglu_forward_launch(float *h, __nv_bfloat16 *h16, const float *gu, int N, int K) {
    if (K % 4 == 0 && cuda_aligned16(h, h16, gu, NULL))
        swiglu_forward_kernel<4><<<cuda_rows_grid(N, K / 4), 256, 0, cuda_stream()>>>(h, h16, gu, N, K);
    else
        swiglu_forward_kernel<1><<<cuda_rows_grid(N, K), 256, 0, cuda_stream()>>>(h, h16, gu, N, K);
    cuda_after_launch("swiglu_forward");
}

static void swiglu_backward_launch(float *dgu, __nv_bfloat16 *d16, __nv_bfloat16 *h16, const float *dh,
                                   const float *gu, int N, int K) {
    if (K % 4 == 0 && cuda_aligned16(dgu, d16, dh, gu) && cuda_aligned16(h16, NULL, NULL, NULL))
        swiglu_backward_kernel<4>
            <<<cuda_rows_grid(N, K / 4), 256, 0, cuda_stream()>>>(dgu, d16, h16, dh, gu, N, K);
    else
        swiglu_backward_kernel<1><<<cuda_rows_grid(N, K), 256, 0, cuda_stream()>>>(dgu, d16, h16, dh, gu, N, K);
    cuda_after_launch("swiglu_backward");
}

void cu_swiglu_forward(float *h, const float *gu, int N, int K) {
    if (N <= 0 || K <= 0) return;
    size_t total = (size_t)N * K;
    __nv_bfloat16 *h16 = cuda_act16_target(total);
    swiglu_forward_launch(h, h16, gu, N, K);
    cuda_fp32_written(h, total * sizeof(float));
    if (h16) cuda_act16_produced(h, total);
}

void cu_swiglu_backward(float *dgu, const float *dh, const float *gu, int N, int K) {
    if (N <= 0 || K <= 0) return;
    size_t total = (size_t)N * 2 * K;
    __nv_bfloat16 *d16 = cuda_act16_target(total);
    swiglu_backward_launch(dgu, d16, NULL, dh, gu, N, K);
    cuda_fp32_written(dgu, total * sizeof(float));
    if (d16) cuda_act16_produced(dgu, total);
}

/* The GEMM-only forms (backend.h): in bf16 precision the outputs go to the
 * hand-offs only, their fp32 ranges marked unwritten (the GEMMs that read
 * them find the copies: 1.5 of SwiGLU's 3.5 GB a layer at the 1.5B shape
 * not written); in fp32 precision, or without room for a copy, fp32. */
void cu_swiglu_forward_gemm(float *h, const float *gu, int N, int K) {
    if (N <= 0 || K <= 0) return;
    size_t total = (size_t)N * K;
    __nv_bfloat16 *h16 = cuda_act16_target(total);
    if (!h16) { /* full precision, or no room for the copy */
        cu_swiglu_forward(h, gu, N, K);
        return;
    }
    swiglu_forward_launch(NULL, h16, gu, N, K);
    cuda_fp32_unwritten(h, total);
    cuda_act16_produced(h, total);
}

void cu_swiglu_backward_gemm(float *dgu, float *h, const float *dh, const float *gu, int N, int K) {
    if (N <= 0 || K <= 0) return;
    size_t nd = (size_t)N * 2 * K, nh = (size_t)N * K;
    __nv_bfloat16 *d16 = cuda_act16_target_in(0, nd), *h16 = d16 ? cuda_act16_target_in(1, nh) : NULL;
    if (!h16) { /* full precision: h by the forward kernel, then the plain backward */
        swiglu_forward_launch(h, NULL, gu, N, K);
        cuda_fp32_written(h, nh * sizeof(float));
        cu_swiglu_backward(dgu, dh, gu, N, K);
        return;
    }
    swiglu_backward_launch(NULL, d16, h16, dh, gu, N, K);
    cuda_fp32_unwritten(dgu, nd);
    cuda_fp32_unwritten(h, nh);
    cuda_act16_produced_in(0, dgu, nd);
    cuda_act16_produced_in(1, h, nh);
}

/* ---- embedding ---- */

__global__ void embedding_forward_kernel(float *out, const int32_t *ids, const float *table, int N, int C) {
    GRID_STRIDE(e, (size_t)N * C) {
        size_t n = e / C, c = e % C;
        out[e] = table[(size_t)ids[n] * C + c];
    }
}

/* The rows sorted by id (a stable radix sort keeps equal ids in row order),
 * then one block per run of equal ids adds its rows into the table row in
 * that order: the CPU's additions in the CPU's order, without atomics, so
 * the result is bit-for-bit repeatable (float atomics would make resumed
 * runs drift), and every distinct id in parallel (one thread per column
 * walking all N rows left most of the GPU idle). */
__global__ void embedding_backward_kernel(float *dtable, const float *__restrict__ dout,
                                          const int32_t *__restrict__ key, const int32_t *__restrict__ row, int N,
                                          int C) {
    int i = blockIdx.x, id = key[i];
    if (i > 0 && key[i - 1] == id) return; /* block-uniform: not the run's first row */
    int end = i + 1;
    while (end < N && key[end] == id) end++;
    float *d = dtable + (size_t)id * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = d[c];
        for (int j = i; j < end; j++) v += dout[(size_t)row[j] * C + c];
        d[c] = v;
    }
}

__global__ void iota_kernel(int32_t *a, int n) {
    GRID_STRIDE(i, (size_t)n) a[i] = (int32_t)i;
}

void cu_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C) {
    size_t total = (size_t)N * C;
    if (!total) return;
    embedding_forward_kernel<<<cuda_blocks(total, 256), 256, 0, cuda_stream()>>>(out, ids, table, N, C);
    cuda_after_launch("embedding_forward");
}

static CudaBuf g_emb; /* sorted ids, row numbers, sorted rows, the sort's scratch */

void cuda_embedding_trim(void) { cuda_buf_free(&g_emb); }

void cu_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C) {
    if (N <= 0 || C <= 0) return;
    size_t tmp = 0;
    cudaError_t e = cub::DeviceRadixSort::SortPairs(NULL, tmp, ids, (int32_t *)NULL, (const int32_t *)NULL,
                                                    (int32_t *)NULL, N, 0, 32, cuda_stream());
    if (e != cudaSuccess) {
        cuda_note("embedding_backward sort", e);
        return;
    }
    size_t ints = ((size_t)3 * N + 63) & ~(size_t)63; /* keeps the scratch 256-byte aligned */
    int32_t *key = (int32_t *)cuda_buf_grow(&g_emb, ints * sizeof(int32_t) + tmp, "embedding_backward sort");
    if (!key) return;
    int32_t *rows = key + N, *sorted = key + 2 * (size_t)N;
    iota_kernel<<<cuda_blocks(N, 256), 256, 0, cuda_stream()>>>(rows, N);
    cuda_after_launch("embedding_backward rows");
    e = cub::DeviceRadixSort::SortPairs(key + ints, tmp, ids, key, rows, sorted, N, 0, 32, cuda_stream());
    if (e != cudaSuccess) {
        cuda_note("embedding_backward sort", e);
        return;
    }
    cuda_after_launch("embedding_backward sort");
    embedding_backward_kernel<<<N, 128, 0, cuda_stream()>>>(dtable, dout, key, sorted, N, C);
    cuda_after_launch("embedding_backward");
}

/* ---- add, QKV split / merge, KV-cache write ---- */

__global__ void add_kernel(float *y, const float *x, size_t n) {
    GRID_STRIDE(i, n) y[i] += x[i];
}

__global__ void add4_kernel(float4 *y, const float4 *x, size_t n4) {
    GRID_STRIDE(i, n4) {
        float4 a = y[i], b = x[i];
        y[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    }
}

void cu_add_inplace(float *y, const float *x, size_t n) {
    if (!n) return;
    cuda_shadow_touch(y, n * sizeof(float));
    size_t n4 = cuda_aligned16(y, x, NULL, NULL) ? n / 4 : 0;
    if (n4) add4_kernel<<<cuda_blocks(n4, 256), 256, 0, cuda_stream()>>>((float4 *)y, (const float4 *)x, n4);
    if (n > 4 * n4) add_kernel<<<cuda_blocks(n - 4 * n4, 256), 256, 0, cuda_stream()>>>(y + 4 * n4, x + 4 * n4,
                                                                                      n - 4 * n4);
    cuda_after_launch("add_inplace");
}

/* dir 0: split qkv -> q, k, v; dir 1: merge back (and, where r16 is
 * given, qkv's bf16 copy for the QKV projection's backward GEMMs). Rows on
 * grid.y, VEC columns per thread (4: QD and KD multiples of 4, aligned
 * buffers, so a group never straddles q, k and v). */
template <int VEC>
__global__ void qkv_kernel(float *qkv, __nv_bfloat16 *r16, float *q, float *k, float *v, int N, int QD, int KD,
                           int merge) {
    int W = QD + 2 * KD, j = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (j >= W) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        float *p = j < QD ? q + (size_t)n * QD + j
                 : j < QD + KD ? k + (size_t)n * KD + (j - QD)
                               : v + (size_t)n * KD + (j - QD - KD);
        size_t o = (size_t)n * W + j;
        float *r = qkv + o;
        if (VEC == 4) {
            if (merge) {
                float4 x = *(const float4 *)p;
                *(float4 *)r = x;
                if (r16) {
                    *(__nv_bfloat162 *)(r16 + o) = __floats2bfloat162_rn(x.x, x.y);
                    *(__nv_bfloat162 *)(r16 + o + 2) = __floats2bfloat162_rn(x.z, x.w);
                }
            } else *(float4 *)p = *(const float4 *)r;
        } else {
            if (merge) {
                *r = *p;
                if (r16) r16[o] = __float2bfloat16_rn(*p);
            } else *p = *r;
        }
    }
}

static void qkv_launch(float *qkv, __nv_bfloat16 *r16, float *q, float *k, float *v, int N, int QD, int KD,
                       int merge) {
    int W = QD + 2 * KD;
    if (N <= 0 || W <= 0) return;
    if (QD % 4 == 0 && KD % 4 == 0 && cuda_aligned16(qkv, q, k, v))
        qkv_kernel<4><<<cuda_rows_grid(N, W / 4), 256, 0, cuda_stream()>>>(qkv, r16, q, k, v, N, QD, KD, merge);
    else
        qkv_kernel<1><<<cuda_rows_grid(N, W), 256, 0, cuda_stream()>>>(qkv, r16, q, k, v, N, QD, KD, merge);
    cuda_after_launch(merge ? "qkv_merge" : "qkv_split");
}

void cu_qkv_split(float *q, float *k, float *v, const float *qkv, int N, int QD, int KD) {
    qkv_launch((float *)qkv, NULL, q, k, v, N, QD, KD, 0);
}

/* the merged gradient feeds the QKV projection's backward GEMMs next */
void cu_qkv_merge(float *qkv, const float *q, const float *k, const float *v, int N, int QD, int KD) {
    size_t n = (size_t)N * (QD + 2 * KD);
    __nv_bfloat16 *r16 = N > 0 ? cuda_act16_target(n) : NULL;
    qkv_launch(qkv, r16, (float *)q, (float *)k, (float *)v, N, QD, KD, 1);
    if (r16) cuda_act16_produced(qkv, n);
}

template <typename KVT>
__global__ void kv_cache_write_kernel(KVT *k_cache, KVT *v_cache, const float *k, const float *v,
                                      const int32_t *slot, const int32_t *pos, size_t stride, int N, int KD) {
    GRID_STRIDE(e, (size_t)N * KD) {
        size_t n = e / KD, d = e % KD;
        size_t off = (size_t)slot[n] * stride + (size_t)pos[n] * KD + d;
        kv_store(k_cache, off, k[e]);
        kv_store(v_cache, off, v[e]);
    }
}

/* qkv row value j plus its bias, as the bias add kernel rounds it */
__device__ __forceinline__ float qkv_biased(const float *row, const float *bias, int j) {
    return bias ? __fadd_rn(row[j], bias[j]) : row[j];
}

/* One thread per value of the row's q, k, v: its bias added, q and k
 * rotated (rope_lo / rope_hi, as rope_kernel), q stored, k and v written
 * into the caches. */
template <typename KVT>
__global__ void qkv_rope_cache_kernel(float *q, const float *qkv, const float *bias, const int32_t *pos,
                                      const float *cos_t, const float *sin_t, KVT *k_cache, KVT *v_cache,
                                      const int32_t *slot, size_t stride, int N, int NH, int KVH, int HD) {
    int half = HD / 2, QD = NH * HD, KD = KVH * HD;
    size_t W = (size_t)QD + 2 * KD;
    GRID_STRIDE(e, (size_t)N * W) {
        size_t n = e / W;
        int j = (int)(e % W), hd = j % HD, base = j - hd;
        const float *row = qkv + n * W;
        float val;
        if (j < QD + KD && hd < 2 * half) { /* q or k, rotated (an odd HD's last channel is not) */
            int i = hd < half ? hd : hd - half;
            size_t t = (size_t)pos[n] * half + i;
            float a = qkv_biased(row, bias, base + i), b = qkv_biased(row, bias, base + i + half);
            val = hd < half ? rope_lo(a, b, cos_t[t], sin_t[t]) : rope_hi(a, b, cos_t[t], sin_t[t]);
        } else val = qkv_biased(row, bias, j);
        if (j < QD) {
            q[n * QD + j] = val;
            continue;
        }
        size_t cell = (size_t)slot[n] * stride + (size_t)pos[n] * KD;
        if (j < QD + KD) kv_store(k_cache, cell + (j - QD), val);
        else kv_store(v_cache, cell + (j - QD - KD), val);
    }
}

void cu_qkv_rope_cache(float *q, const float *qkv, const float *bias, const int32_t *pos, const float *cos_t,
                       const float *sin_t, float *k_cache, float *v_cache, const int32_t *slot, size_t cache_stride,
                       int N, int NH, int KVH, int HD) {
    size_t total = (size_t)N * (NH + 2 * (size_t)KVH) * HD;
    if (!total) return;
    if (cuda_kv_bf16())
        qkv_rope_cache_kernel<<<cuda_blocks(total, 256), 256, 0, cuda_stream()>>>(
            q, qkv, bias, pos, cos_t, sin_t, (__nv_bfloat16 *)k_cache, (__nv_bfloat16 *)v_cache, slot, cache_stride, N,
            NH, KVH, HD);
    else
        qkv_rope_cache_kernel<<<cuda_blocks(total, 256), 256, 0, cuda_stream()>>>(
            q, qkv, bias, pos, cos_t, sin_t, k_cache, v_cache, slot, cache_stride, N, NH, KVH, HD);
    cuda_after_launch("qkv_rope_cache");
}

void cu_kv_cache_write(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slot,
                       const int32_t *pos, size_t cache_stride, int N, int KD) {
    size_t total = (size_t)N * KD;
    if (!total) return;
    if (cuda_kv_bf16())
        kv_cache_write_kernel<<<cuda_blocks(total, 256), 256, 0, cuda_stream()>>>(
            (__nv_bfloat16 *)k_cache, (__nv_bfloat16 *)v_cache, k, v, slot, pos, cache_stride, N, KD);
    else
        kv_cache_write_kernel<<<cuda_blocks(total, 256), 256, 0, cuda_stream()>>>(k_cache, v_cache, k, v, slot, pos,
                                                                                cache_stride, N, KD);
    cuda_after_launch("kv_cache_write");
}
