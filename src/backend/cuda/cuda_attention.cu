/* Causal GQA attention on the device, fp32. Never stores T x T: the
 * forward keeps each row's log-sum-exp; the backward recomputes scores tile
 * by tile. Correctness first: one warp works on a few rows, a lane owns one
 * key (or query) of a 32-wide tile for the scores and HD/32 channels for
 * the outputs; no atomics, so results are deterministic.
 *
 * Shared-memory tiles read lane-by-row are padded to HD+1 floats per row
 * so the 32 lanes hit 32 different banks. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

extern "C" {
#include "backend/cuda/backend_cuda.h"
}

#define ATT_WARPS 8
#define ATT_RPW 4                       /* rows per warp */
#define ATT_BQ (ATT_WARPS * ATT_RPW)    /* rows per block: 32 */
#define ATT_KT 32                       /* keys (or queries) per tile: one per lane */
#define ATT_MAX_HD 256

/* ---- forward: block = 32 query rows of one (b, h) ---- */

/* seg (B*T, or NULL): packed rows; query t of row b sees keys
 * seg[b*T + t] .. t only. */
__device__ __forceinline__ bool att_sees(const int32_t *seg, int b, int T, int t, int j) {
    return j <= t && (!seg || j >= seg[(size_t)b * T + t]);
}

template <int NR>
__global__ void __launch_bounds__(ATT_WARPS * 32) attn_fwd_kernel(float *out, float *lse, const float *q, const float *k,
                                                                  const float *v, const int32_t *seg, int T, int NH,
                                                                  int KVH, int HD, float scale) {
    extern __shared__ float sm[];
    const int HP = HD + 1;
    float *Qs = sm, *Ks = Qs + ATT_BQ * HD, *Vs = Ks + ATT_KT * HP;
    int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * ATT_BQ, kh = h / (NH / KVH);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int i = threadIdx.x; i < ATT_BQ * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD, t = t0 + r;
        Qs[i] = t < T ? q[(((size_t)b * T + t) * NH + h) * HD + d] : 0.0f;
    }
    float m[ATT_RPW], l[ATT_RPW], o[ATT_RPW][NR];
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < NR; c++) o[i][c] = 0.0f;
    }
    int kend = min(T, t0 + ATT_BQ);
    for (int j0 = 0; j0 < kend; j0 += ATT_KT) {
        __syncthreads();
        for (int i = threadIdx.x; i < ATT_KT * HD; i += blockDim.x) {
            int jj = i / HD, d = i % HD, key = j0 + jj;
            size_t g = (((size_t)b * T + key) * KVH + kh) * HD + d;
            Ks[jj * HP + d] = key < T ? k[g] : 0.0f;
            Vs[jj * HP + d] = key < T ? v[g] : 0.0f;
        }
        __syncthreads();
        /* this warp's rows are tw0 .. tw0+3; the last valid one sees most */
        int tw0 = t0 + w * ATT_RPW, tlast = min(T - 1, tw0 + ATT_RPW - 1);
        if (tw0 >= T || j0 > tlast) continue; /* warp-uniform */
        /* scores for the 4 rows at once: one K load feeds 4 FMAs */
        float s[ATT_RPW] = {0.0f}, p[ATT_RPW];
        const float *kr = Ks + lane * HP, *qw = Qs + w * ATT_RPW * HD;
        for (int d = 0; d < HD; d++) {
            float kd = kr[d];
#pragma unroll
            for (int i = 0; i < ATT_RPW; i++) s[i] += qw[i * HD + d] * kd;
        }
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            int t = tw0 + i;
            p[i] = 0.0f;
            if (t >= T || j0 > t) continue; /* warp-uniform */
            float sc = att_sees(seg, b, T, t, j0 + lane) ? s[i] * scale : -INFINITY;
            float mnew = fmaxf(m[i], warp_max(sc));
            if (mnew == -INFINITY) continue; /* warp-uniform: a packed row's keys start in a later tile */
            float corr = expf(m[i] - mnew);
            p[i] = expf(sc - mnew);
            l[i] = l[i] * corr + warp_sum(p[i]);
            m[i] = mnew;
#pragma unroll
            for (int c = 0; c < NR; c++) o[i][c] *= corr;
        }
        /* P V: one V load feeds the 4 rows (masked p are exactly 0) */
        int lim = min(ATT_KT, tlast - j0 + 1);
        for (int jj = 0; jj < lim; jj++) {
            float pj[ATT_RPW];
#pragma unroll
            for (int i = 0; i < ATT_RPW; i++) pj[i] = __shfl_sync(0xffffffffu, p[i], jj);
#pragma unroll
            for (int c = 0; c < NR; c++) {
                int d = lane + 32 * c;
                if (d < HD) {
                    float vd = Vs[jj * HP + d];
#pragma unroll
                    for (int i = 0; i < ATT_RPW; i++) o[i][c] += pj[i] * vd;
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        int t = t0 + w * ATT_RPW + i;
        if (t >= T) continue;
        float inv = 1.0f / l[i];
        float *orow = out + (((size_t)b * T + t) * NH + h) * HD;
#pragma unroll
        for (int c = 0; c < NR; c++) {
            int d = lane + 32 * c;
            if (d < HD) orow[d] = o[i][c] * inv;
        }
        if (lane == 0) lse[((size_t)b * NH + h) * T + t] = m[i] + logf(l[i]);
    }
}

#define ATT_DISPATCH(NRV, KERNEL, GRID, SMEM, ...)                                                     \
    do {                                                                                             \
        switch (NRV) {                                                                               \
        case 1: cudaFuncSetAttribute(KERNEL<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);  \
            KERNEL<1><<<GRID, ATT_WARPS * 32, SMEM, cuda_stream()>>>(__VA_ARGS__); break;                          \
        case 2: cudaFuncSetAttribute(KERNEL<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);  \
            KERNEL<2><<<GRID, ATT_WARPS * 32, SMEM, cuda_stream()>>>(__VA_ARGS__); break;                          \
        case 4: cudaFuncSetAttribute(KERNEL<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);  \
            KERNEL<4><<<GRID, ATT_WARPS * 32, SMEM, cuda_stream()>>>(__VA_ARGS__); break;                          \
        default: cudaFuncSetAttribute(KERNEL<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM); \
            KERNEL<8><<<GRID, ATT_WARPS * 32, SMEM, cuda_stream()>>>(__VA_ARGS__); break;                          \
        }                                                                                            \
    } while (0)

static int att_shape_ok(const char *op, int NH, int KVH, int HD) {
    if (HD < 1 || HD > ATT_MAX_HD || KVH < 1 || NH % KVH != 0) {
        cuda_note(op, cudaErrorInvalidValue); /* head size over 256 or NH not a multiple of KVH */
        return 0;
    }
    return 1;
}

static int attn_forward_rows(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                             int NH, int KVH, int HD);

static void attn_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg,
                         int B, int T, int NH, int KVH, int HD) {
    if (B <= 0 || T <= 0 || NH <= 0 || !att_shape_ok("attention_forward", NH, KVH, HD)) return;
    if (cuda_precision() == CUDA_PREC_BF16) {
        /* tensor-core flash attention, the decode attention's arithmetic */
        if (!seg && cuda_flash_forward(out, lse, q, k, v, B, T, NH, KVH, HD) == 0) return;
        /* batch invariance for the other shapes: the split decode kernel's
         * arithmetic, row by row */
        if (!seg && cuda_batch_invariant() >= 1 && attn_forward_rows(out, lse, q, k, v, B, T, NH, KVH, HD) == 0)
            return;
        cuda_attention_forward_gemm(out, lse, q, k, v, seg, B, T, NH, KVH, HD);
        return;
    }
    size_t smem = (size_t)(ATT_BQ * HD + 2 * ATT_KT * (HD + 1)) * sizeof(float);
    dim3 grid((T + ATT_BQ - 1) / ATT_BQ, NH, B);
    ATT_DISPATCH(cuda_att_nr(HD), attn_fwd_kernel, grid, smem, out, lse, q, k, v, seg, T, NH, KVH, HD,
                 1.0f / sqrtf((float)HD));
    cuda_after_launch("attention_forward");
}

void cu_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                          int NH, int KVH, int HD) {
    attn_forward(out, lse, q, k, v, NULL, B, T, NH, KVH, HD);
}

void cu_attention_forward_seg(float *out, float *lse, const float *q, const float *k, const float *v,
                              const int32_t *seg_start, int B, int T, int NH, int KVH, int HD) {
    attn_forward(out, lse, q, k, v, seg_start, B, T, NH, KVH, HD);
}

/* ---- backward ---- */

/* D(B,NH,T) = rowsum(dout * out): one warp per row */
__global__ void attn_bwd_dot_kernel(float *D, const float *dout, const float *out, int B, int T, int NH, int HD) {
    size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5; /* over (b, t, h) */
    int lane = threadIdx.x & 31;
    if (row >= (size_t)B * T * NH) return;
    const float *g = dout + row * HD, *o = out + row * HD;
    float s = 0.0f;
    for (int d = lane; d < HD; d += 32) s += g[d] * o[d];
    s = warp_sum(s);
    int h = (int)(row % NH);
    size_t bt = row / NH;
    int t = (int)(bt % T), b = (int)(bt / T);
    if (lane == 0) D[((size_t)b * NH + h) * T + t] = s;
}

void cuda_attention_rowdot(float *D, const float *dout, const float *out, size_t rows, int B, int T, int NH,
                           int HD) {
    attn_bwd_dot_kernel<<<(unsigned)((rows * 32 + 255) / 256), 256, 0, cuda_stream()>>>(D, dout, out, B, T, NH, HD);
    cuda_after_launch("attention_backward D");
}

/* dq for 32 query rows of one (b, h): dq = scale * sum_j P(dP - D) k_j */
template <int NR>
__global__ void __launch_bounds__(ATT_WARPS * 32) attn_bwd_dq_kernel(float *dq, const float *dout, const float *lse,
                                                                     const float *D, const float *q, const float *k,
                                                                     const float *v, const int32_t *seg, int T, int NH,
                                                                     int KVH, int HD, float scale) {
    extern __shared__ float sm[];
    const int HP = HD + 1;
    float *Qs = sm, *Gs = Qs + ATT_BQ * HD, *Ks = Gs + ATT_BQ * HD, *Vs = Ks + ATT_KT * HP;
    int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * ATT_BQ, kh = h / (NH / KVH);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int i = threadIdx.x; i < ATT_BQ * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD, t = t0 + r;
        size_t g = (((size_t)b * T + t) * NH + h) * HD + d;
        Qs[i] = t < T ? q[g] : 0.0f;
        Gs[i] = t < T ? dout[g] : 0.0f;
    }
    float acc[ATT_RPW][NR], L[ATT_RPW], Dr[ATT_RPW];
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        int t = t0 + w * ATT_RPW + i;
        size_t li = ((size_t)b * NH + h) * T + t;
        L[i] = t < T ? lse[li] : 0.0f;
        Dr[i] = t < T ? D[li] : 0.0f;
#pragma unroll
        for (int c = 0; c < NR; c++) acc[i][c] = 0.0f;
    }
    int kend = min(T, t0 + ATT_BQ);
    for (int j0 = 0; j0 < kend; j0 += ATT_KT) {
        __syncthreads();
        for (int i = threadIdx.x; i < ATT_KT * HD; i += blockDim.x) {
            int jj = i / HD, d = i % HD, key = j0 + jj;
            size_t g = (((size_t)b * T + key) * KVH + kh) * HD + d;
            Ks[jj * HP + d] = key < T ? k[g] : 0.0f;
            Vs[jj * HP + d] = key < T ? v[g] : 0.0f;
        }
        __syncthreads();
        int tw0 = t0 + w * ATT_RPW, tlast = min(T - 1, tw0 + ATT_RPW - 1);
        if (tw0 >= T || j0 > tlast) continue; /* warp-uniform */
        float s[ATT_RPW] = {0.0f}, dp[ATT_RPW] = {0.0f}, ds[ATT_RPW];
        const float *kr = Ks + lane * HP, *vr = Vs + lane * HP;
        const float *qw = Qs + w * ATT_RPW * HD, *gw = Gs + w * ATT_RPW * HD;
        for (int d = 0; d < HD; d++) {
            float kd = kr[d], vd = vr[d];
#pragma unroll
            for (int i = 0; i < ATT_RPW; i++) {
                s[i] += qw[i * HD + d] * kd;
                dp[i] += gw[i * HD + d] * vd;
            }
        }
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            int t = tw0 + i;
            float pv = (t < T && att_sees(seg, b, T, t, j0 + lane)) ? expf(s[i] * scale - L[i]) : 0.0f;
            ds[i] = pv * (dp[i] - Dr[i]) * scale;
        }
        int lim = min(ATT_KT, tlast - j0 + 1);
        for (int jj = 0; jj < lim; jj++) {
            float dsj[ATT_RPW];
#pragma unroll
            for (int i = 0; i < ATT_RPW; i++) dsj[i] = __shfl_sync(0xffffffffu, ds[i], jj);
#pragma unroll
            for (int c = 0; c < NR; c++) {
                int d = lane + 32 * c;
                if (d < HD) {
                    float kd = Ks[jj * HP + d];
#pragma unroll
                    for (int i = 0; i < ATT_RPW; i++) acc[i][c] += dsj[i] * kd;
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        int t = t0 + w * ATT_RPW + i;
        if (t >= T) continue;
        float *row = dq + (((size_t)b * T + t) * NH + h) * HD;
#pragma unroll
        for (int c = 0; c < NR; c++) {
            int d = lane + 32 * c;
            if (d < HD) row[d] = acc[i][c];
        }
    }
}

/* dk, dv for 32 keys of one (b, kv head), summed over the heads of its
 * group and every query that sees them: dv = sum P dO, dk = sum dS q. */
template <int NR>
__global__ void __launch_bounds__(ATT_WARPS * 32) attn_bwd_dkv_kernel(float *dk, float *dv, const float *dout,
                                                                      const float *lse, const float *D, const float *q,
                                                                      const float *k, const float *v, const int32_t *seg, int T, int NH,
                                                                      int KVH, int HD, float scale) {
    extern __shared__ float sm[];
    const int HP = HD + 1;
    float *Ks = sm, *Vs = Ks + ATT_BQ * HD, *Qs = Vs + ATT_BQ * HD, *Gs = Qs + ATT_KT * HP;
    float *Ls = Gs + ATT_KT * HP, *Ds = Ls + ATT_KT;
    int b = blockIdx.z, kh = blockIdx.y, k0 = blockIdx.x * ATT_BQ, group = NH / KVH;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int i = threadIdx.x; i < ATT_BQ * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD, j = k0 + r;
        size_t g = (((size_t)b * T + j) * KVH + kh) * HD + d;
        Ks[i] = j < T ? k[g] : 0.0f;
        Vs[i] = j < T ? v[g] : 0.0f;
    }
    float ak[ATT_RPW][NR], av[ATT_RPW][NR];
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++)
#pragma unroll
        for (int c = 0; c < NR; c++) ak[i][c] = av[i][c] = 0.0f;
    for (int h = kh * group; h < (kh + 1) * group; h++)
        for (int i0 = k0; i0 < T; i0 += ATT_KT) { /* queries before k0 see none of these keys */
            __syncthreads();
            for (int i = threadIdx.x; i < ATT_KT * HD; i += blockDim.x) {
                int qq = i / HD, d = i % HD, t = i0 + qq;
                size_t g = (((size_t)b * T + t) * NH + h) * HD + d;
                Qs[qq * HP + d] = t < T ? q[g] : 0.0f;
                Gs[qq * HP + d] = t < T ? dout[g] : 0.0f;
            }
            if (threadIdx.x < ATT_KT) {
                int t = i0 + threadIdx.x;
                size_t li = ((size_t)b * NH + h) * T + t;
                Ls[threadIdx.x] = t < T ? lse[li] : 0.0f;
                Ds[threadIdx.x] = t < T ? D[li] : 0.0f;
            }
            __syncthreads();
            int jw0 = k0 + w * ATT_RPW; /* this warp's keys jw0 .. jw0+3 */
            if (jw0 >= T) continue;    /* warp-uniform; no barrier below */
            int t = i0 + lane;
            float s[ATT_RPW] = {0.0f}, dp[ATT_RPW] = {0.0f}, p[ATT_RPW], ds[ATT_RPW];
            const float *qr = Qs + lane * HP, *gr = Gs + lane * HP;
            const float *kw = Ks + w * ATT_RPW * HD, *vw = Vs + w * ATT_RPW * HD;
            for (int d = 0; d < HD; d++) {
                float qd = qr[d], gd = gr[d];
#pragma unroll
                for (int i = 0; i < ATT_RPW; i++) {
                    s[i] += kw[i * HD + d] * qd;
                    dp[i] += vw[i * HD + d] * gd;
                }
            }
#pragma unroll
            for (int i = 0; i < ATT_RPW; i++) { /* keys past T: t >= j fails or t < T fails, so p = 0 */
                int j = jw0 + i;
                p[i] = (t < T && j < T && att_sees(seg, b, T, t, j)) ? expf(s[i] * scale - Ls[lane]) : 0.0f;
                ds[i] = p[i] * (dp[i] - Ds[lane]) * scale;
            }
            int qlo = jw0 - i0 > 0 ? jw0 - i0 : 0, qhi = min(ATT_KT, T - i0);
            for (int qq = qlo; qq < qhi; qq++) {
                float pq[ATT_RPW], dsq[ATT_RPW];
#pragma unroll
                for (int i = 0; i < ATT_RPW; i++) {
                    pq[i] = __shfl_sync(0xffffffffu, p[i], qq);
                    dsq[i] = __shfl_sync(0xffffffffu, ds[i], qq);
                }
#pragma unroll
                for (int c = 0; c < NR; c++) {
                    int d = lane + 32 * c;
                    if (d < HD) {
                        float gd = Gs[qq * HP + d], qd = Qs[qq * HP + d];
#pragma unroll
                        for (int i = 0; i < ATT_RPW; i++) {
                            av[i][c] += pq[i] * gd;
                            ak[i][c] += dsq[i] * qd;
                        }
                    }
                }
            }
        }
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        int j = k0 + w * ATT_RPW + i;
        if (j >= T) continue;
        size_t base = (((size_t)b * T + j) * KVH + kh) * HD;
#pragma unroll
        for (int c = 0; c < NR; c++) {
            int d = lane + 32 * c;
            if (d < HD) {
                dk[base + d] = ak[i][c];
                dv[base + d] = av[i][c];
            }
        }
    }
}

static void attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                          const float *q, const float *k, const float *v, const int32_t *seg, int B, int T, int NH,
                          int KVH, int HD) {
    if (B <= 0 || T <= 0 || NH <= 0 || !att_shape_ok("attention_backward", NH, KVH, HD)) return;
    if (cuda_precision() == CUDA_PREC_BF16) {
        if (!seg && cuda_flash_backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, KVH, HD) == 0) return;
        cuda_attention_backward_gemm(dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, NH, KVH, HD);
        return;
    }
    size_t rows = (size_t)B * T * NH;
    float *D = (float *)cuda_scratch(rows * sizeof(float));
    if (!D) return;
    cuda_attention_rowdot(D, dout, out, rows, B, T, NH, HD);
    float scale = 1.0f / sqrtf((float)HD);
    int nr = cuda_att_nr(HD);
    size_t smem_q = (size_t)(2 * ATT_BQ * HD + 2 * ATT_KT * (HD + 1)) * sizeof(float);
    dim3 gq((T + ATT_BQ - 1) / ATT_BQ, NH, B);
    ATT_DISPATCH(nr, attn_bwd_dq_kernel, gq, smem_q, dq, dout, lse, D, q, k, v, seg, T, NH, KVH, HD, scale);
    cuda_after_launch("attention_backward dq");
    size_t smem_kv = (size_t)(2 * ATT_BQ * HD + 2 * ATT_KT * (HD + 1) + 2 * ATT_KT) * sizeof(float);
    dim3 gk((T + ATT_BQ - 1) / ATT_BQ, KVH, B);
    ATT_DISPATCH(nr, attn_bwd_dkv_kernel, gk, smem_kv, dk, dv, dout, lse, D, q, k, v, seg, T, NH, KVH, HD, scale);
    cuda_after_launch("attention_backward dk dv");
}

void cu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, int B, int T, int NH, int KVH, int HD) {
    attn_backward(dq, dk, dv, dout, out, lse, q, k, v, NULL, B, T, NH, KVH, HD);
}

void cu_attention_backward_seg(float *dq, float *dk, float *dv, const float *dout, const float *out,
                               const float *lse, const float *q, const float *k, const float *v,
                               const int32_t *seg_start, int B, int T, int NH, int KVH, int HD) {
    attn_backward(dq, dk, dv, dout, out, lse, q, k, v, seg_start, B, T, NH, KVH, HD);
}

/* ---- decode: one warp per (token, head) against its cache slot ---- */

template <int NR, typename KVT>
__global__ void __launch_bounds__(32) attn_decode_kernel(float *out, const float *q, const KVT *k_cache,
                                                         const KVT *v_cache, const int32_t *slot,
                                                         const int32_t *len, KvMap map, int NH, int KVH, int HD,
                                                         float scale) {
    extern __shared__ float sm[];
    const int HP = HD + 1, KD = KVH * HD;
    float *qs = sm, *Ks = qs + HD, *Vs = Ks + ATT_KT * HP;
    int n = blockIdx.x, h = blockIdx.y, kh = h / (NH / KVH), lane = threadIdx.x, L = len[n];
    for (int d = lane; d < HD; d += 32) qs[d] = q[((size_t)n * NH + h) * HD + d];
    float m = -INFINITY, l = 0.0f, o[NR];
#pragma unroll
    for (int c = 0; c < NR; c++) o[c] = 0.0f;
    for (int j0 = 0; j0 < L; j0 += ATT_KT) {
        __syncwarp();
        for (int i = lane; i < ATT_KT * HD; i += 32) {
            int jj = i / HD, d = i % HD, key = j0 + jj;
            size_t g = key < L ? kv_row(map, slot[n], key, KD) + (size_t)kh * HD + d : 0; /* no table read past L */
            Ks[jj * HP + d] = key < L ? kv_load(k_cache, g) : 0.0f;
            Vs[jj * HP + d] = key < L ? kv_load(v_cache, g) : 0.0f;
        }
        __syncwarp();
        const float *kr = Ks + lane * HP;
        float s = 0.0f;
        for (int d = 0; d < HD; d++) s += qs[d] * kr[d];
        s = j0 + lane < L ? s * scale : -INFINITY;
        float mnew = fmaxf(m, warp_max(s));
        float p = expf(s - mnew), corr = expf(m - mnew);
        l = l * corr + warp_sum(p);
        m = mnew;
#pragma unroll
        for (int c = 0; c < NR; c++) o[c] *= corr;
        int lim = min(ATT_KT, L - j0);
        for (int jj = 0; jj < lim; jj++) {
            float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
            for (int c = 0; c < NR; c++) {
                int d = lane + 32 * c;
                if (d < HD) o[c] += pj * Vs[jj * HP + d];
            }
        }
    }
    float inv = L > 0 ? 1.0f / l : 0.0f; /* an empty cache reads as zeros, like the CPU */
    float *orow = out + ((size_t)n * NH + h) * HD;
#pragma unroll
    for (int c = 0; c < NR; c++) {
        int d = lane + 32 * c;
        if (d < HD) orow[d] = o[c] * inv;
    }
}

/* ---- decode, grouped: one block per (token, kv head) ----
 * The G = NH/KVH query heads that share a kv head read its cache rows
 * once (the per-head kernel above reads them G times). Four warps split
 * the keys (warp w takes tiles w, w+4, ...); a lane owns one key of a
 * 32-key tile for the scores of all G heads and HD/32 channels for the
 * outputs; the warps' partial softmax states are merged at the end. */
#define DEC_WARPS 4
#define DEC_GMAX 8

template <int NR>
__global__ void __launch_bounds__(DEC_WARPS * 32) attn_decode_gqa_kernel(float *out, const float *q,
                                                                        const float *k_cache, const float *v_cache,
                                                                        const int32_t *slot, const int32_t *len,
                                                                        KvMap map, int NH, int KVH, int HD,
                                                                        float scale) {
    extern __shared__ float sm[];
    int G = NH / KVH, KD = KVH * HD;
    float *qs = sm, *os = qs + G * HD, *ms = os + DEC_WARPS * G * HD, *ls = ms + DEC_WARPS * G;
    int n = blockIdx.x, kh = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5, L = len[n];
    const float *kc = k_cache + (size_t)kh * HD, *vc = v_cache + (size_t)kh * HD;
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) qs[i] = q[((size_t)n * NH + kh * G) * HD + i];
    __syncthreads();
    float m[DEC_GMAX], l[DEC_GMAX], o[DEC_GMAX][NR];
#pragma unroll
    for (int g = 0; g < DEC_GMAX; g++) {
        m[g] = -INFINITY, l[g] = 0.0f;
#pragma unroll
        for (int c = 0; c < NR; c++) o[g][c] = 0.0f;
    }
    for (int j0 = w * 32; j0 < L; j0 += DEC_WARPS * 32) { /* warp-uniform */
        int key = j0 + lane;
        float s[DEC_GMAX];
#pragma unroll
        for (int g = 0; g < DEC_GMAX; g++) s[g] = 0.0f;
        if (key < L) {
            const float *kr = kc + kv_row(map, slot[n], key, KD);
            if ((HD & 3) == 0) {
                for (int d = 0; d < HD; d += 4) {
                    float4 k4 = *(const float4 *)(kr + d);
#pragma unroll
                    for (int g = 0; g < DEC_GMAX; g++)
                        if (g < G) {
                            const float *qg = qs + g * HD + d;
                            s[g] += qg[0] * k4.x + qg[1] * k4.y + qg[2] * k4.z + qg[3] * k4.w;
                        }
                }
            } else {
                for (int d = 0; d < HD; d++) {
                    float kd = kr[d];
#pragma unroll
                    for (int g = 0; g < DEC_GMAX; g++)
                        if (g < G) s[g] += qs[g * HD + d] * kd;
                }
            }
        }
        float p[DEC_GMAX];
#pragma unroll
        for (int g = 0; g < DEC_GMAX; g++) {
            p[g] = 0.0f;
            if (g >= G) continue;
            float sc = key < L ? s[g] * scale : -INFINITY;
            float mnew = fmaxf(m[g], warp_max(sc));
            float corr = expf(m[g] - mnew);
            p[g] = key < L ? expf(sc - mnew) : 0.0f;
            l[g] = l[g] * corr + warp_sum(p[g]);
            m[g] = mnew;
#pragma unroll
            for (int c = 0; c < NR; c++) o[g][c] *= corr;
        }
        int lim = min(32, L - j0);
        for (int jj = 0; jj < lim; jj++) {
            const float *vr = vc + kv_row(map, slot[n], j0 + jj, KD);
            float vd[NR];
#pragma unroll
            for (int c = 0; c < NR; c++) {
                int d = lane + 32 * c;
                vd[c] = d < HD ? vr[d] : 0.0f;
            }
#pragma unroll
            for (int g = 0; g < DEC_GMAX; g++) {
                if (g >= G) continue;
                float pj = __shfl_sync(0xffffffffu, p[g], jj);
#pragma unroll
                for (int c = 0; c < NR; c++) o[g][c] += pj * vd[c];
            }
        }
    }
    /* merge the warps: out = sum_w e^(m_w - M) o_w / sum_w e^(m_w - M) l_w */
#pragma unroll
    for (int g = 0; g < DEC_GMAX; g++) {
        if (g >= G) continue;
        if (lane == 0) ms[w * G + g] = m[g], ls[w * G + g] = l[g];
#pragma unroll
        for (int c = 0; c < NR; c++) {
            int d = lane + 32 * c;
            if (d < HD) os[(w * G + g) * HD + d] = o[g][c];
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
        int g = i / HD, d = i % HD;
        float M = -INFINITY;
        for (int ww = 0; ww < DEC_WARPS; ww++) M = fmaxf(M, ms[ww * G + g]);
        float num = 0.0f, den = 0.0f;
        for (int ww = 0; ww < DEC_WARPS; ww++) {
            float mw = ms[ww * G + g];
            if (mw == -INFINITY) continue; /* a warp that saw no keys */
            float f = expf(mw - M);
            num += f * os[(ww * G + g) * HD + d];
            den += f * ls[ww * G + g];
        }
        out[((size_t)n * NH + kh * G + g) * HD + d] = den > 0.0f ? num / den : 0.0f; /* empty cache: zeros */
    }
}

/* attn_decode_kernel over N tokens x NH heads, caches of element KVT */
template <typename KVT>
static void attn_decode_heads(float *out, const float *q, const KVT *k_cache, const KVT *v_cache,
                              const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, int HD,
                              float scale) {
    size_t smem = (size_t)(HD + 2 * ATT_KT * (HD + 1)) * sizeof(float);
    dim3 grid(N, NH); /* tokens on x: a prefill can exceed 65535 rows */
    switch (cuda_att_nr(HD)) {
#define DEC(NRV)                                                                                              \
    case NRV:                                                                                                 \
        cudaFuncSetAttribute(attn_decode_kernel<NRV, KVT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem); \
        attn_decode_kernel<NRV, KVT><<<grid, 32, smem, cuda_stream()>>>(out, q, k_cache, v_cache, slot, len,  \
                                                                        map, NH, KVH, HD, scale);             \
        break;
        DEC(1) DEC(2) DEC(4) DEC(8)
#undef DEC
    }
}

/* Decode attention over a contiguous or a paged cache (map) */
static void attn_decode_any(float *out, const float *q, const float *k_cache, const float *v_cache,
                            const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, int HD,
                            const char *op) {
    if (N <= 0 || NH <= 0 || !att_shape_ok(op, NH, KVH, HD)) return;
    float scale = 1.0f / sqrtf((float)HD);
    int G = NH / KVH;
    /* bf16: the flash kernel, the training forward's arithmetic
     * (cuda_flash.cu); for the shapes it does not take, split over the
     * keys (cuda_decode_split.cu); -1 from either: a shape it does not take */
    if (cuda_precision() == CUDA_PREC_BF16 &&
        cuda_flash_decode(out, q, k_cache, v_cache, cuda_kv_bf16(), slot, len, map, N, NH, KVH, HD, op) == 0)
        return;
    if (cuda_precision() == CUDA_PREC_BF16 &&
        cuda_decode_split(out, q, k_cache, v_cache, cuda_kv_bf16(), slot, len, map, N, NH, KVH, HD, NULL, 1, op) != -1)
        return;
    if (G <= DEC_GMAX && N <= 65535 * 64 && !cuda_kv_bf16()) { /* reads fp32 caches only */
        size_t gsm = (size_t)(G * HD * (1 + DEC_WARPS) + 2 * DEC_WARPS * G) * sizeof(float);
        dim3 gg(N, KVH);
        switch (cuda_att_nr(HD)) {
#define DECG(NRV)                                                                                                  \
    case NRV:                                                                                                      \
        cudaFuncSetAttribute(attn_decode_gqa_kernel<NRV>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)gsm);   \
        attn_decode_gqa_kernel<NRV><<<gg, DEC_WARPS * 32, gsm, cuda_stream()>>>(out, q, k_cache, v_cache, slot, len, \
                                                                                map, NH, KVH, HD, scale);          \
        break;
            DECG(1) DECG(2) DECG(4) DECG(8)
#undef DECG
        }
        cuda_after_launch(op);
        return;
    }
    if (cuda_kv_bf16())
        attn_decode_heads(out, q, (const __nv_bfloat16 *)k_cache, (const __nv_bfloat16 *)v_cache, slot, len, map, N,
                          NH, KVH, HD, scale);
    else attn_decode_heads(out, q, k_cache, v_cache, slot, len, map, N, NH, KVH, HD, scale);
    cuda_after_launch(op);
}

void cu_attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache,
                         const int32_t *slot, const int32_t *len, size_t cache_stride, int N, int NH, int KVH,
                         int HD) {
    KvMap map = {NULL, 0, 0, cache_stride};
    attn_decode_any(out, q, k_cache, v_cache, slot, len, map, N, NH, KVH, HD, "attention_decode");
}

/* Paged caches: the same kernels, reading each key's row through the
 * block table (the contiguous instantiations are unchanged). */
void cu_attention_decode_paged(float *out, const float *q, const float *k_pool, const float *v_pool,
                               const int32_t *table, int max_blocks, int block, const int32_t *slot,
                               const int32_t *len, int N, int NH, int KVH, int HD) {
    KvMap map = {table, max_blocks, block, 0};
    attn_decode_any(out, q, k_pool, v_pool, slot, len, map, N, NH, KVH, HD, "attention_decode_paged");
}

/* ---- the training forward through the decode kernel ---- */

/* Row n = b T + t of a (B, T) batch is sequence b's query at position t:
 * it sees keys 0..t of its own row, i.e. slot b of a "cache" holding the
 * batch's K and V (B slots of T positions), with length t + 1. */
__global__ void attn_rows_index_kernel(int32_t *slot, int32_t *len, int N, int T) {
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        slot[n] = n / T;
        len[n] = n % T + 1;
    }
}

/* With batch invariance on (cuda_batch_invariant() >= 1), the bf16
 * training forward of unpacked rows runs cuda_decode_split: the
 * same code, in the same order, that computed the row's attention when
 * the token was sampled (decode reads the KV cache row by row, training
 * reads the batch's K and V in place), so the two agree bit for bit where
 * their inputs do. It also writes the row's log-sum-exp for the backward,
 * which stays the tensor-core one. -1: not applicable (more than DEC_GMAX
 * query heads per kv head, no scratch), the caller uses the GEMM path. */
static int attn_forward_rows(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                             int NH, int KVH, int HD) {
    int G = NH / KVH, N = B * T;
    if (G > DEC_GMAX || (size_t)N * 2 > (size_t)INT32_MAX) return -1;
    int32_t *idx = (int32_t *)cuda_scratch((size_t)2 * N * sizeof(int32_t));
    if (!idx) return -1;
    attn_rows_index_kernel<<<cuda_blocks(N, 256), 256, 0, cuda_stream()>>>(idx, idx + N, N, T);
    cuda_after_launch("attention_forward rows index");
    KvMap map = {NULL, 0, 0, (size_t)T * KVH * HD};
    return cuda_decode_split(out, q, k, v, 0, idx, idx + N, map, N, NH, KVH, HD, lse, T,
                             "attention_forward rows") == -1 ? -1 : 0;
}
