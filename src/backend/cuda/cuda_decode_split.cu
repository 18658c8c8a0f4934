/* bf16 attention of query rows against a KV cache, split over the keys
 * (flash-decoding), used by decode (attention_decode) and, with batch
 * invariance on, by the training forward (the same code for the same
 * row, so a sampled token's attention is bit for bit what training
 * computes).
 *
 * Arithmetic, that of the training attention's GEMM path
 * (cuda_attention_gemm.cu): q, k, v rounded to bf16, fp32 scores, the
 * probabilities normalised by the row's max and sum and rounded to bf16
 * before they weight V. Normalising first needs the row's statistics, so
 * there are three launches:
 *   stats:   per split of DS_KEYS keys, the scores and the split's
 *            (max, sum) per head;
 *   pv:      the row's max and sum from its splits' (in split order), then
 *            the split's probabilities (from the stored scores) times V;
 *   combine: out = the splits' outputs summed in split order.
 * A split covers keys [z DS_KEYS, (z + 1) DS_KEYS), warp w of it the 32
 * keys from z DS_KEYS + 32 w, a lane one key for the scores and HD/32
 * channels for the outputs. The boundaries depend on key positions only,
 * never on the batch, so every row's result is independent of which rows
 * share its launch.
 *
 * Why split: a decode batch of 256 rows is 256 x KVH blocks if a block
 * takes a whole row, four per SM, and the time goes to load latency. With
 * splits there are several times more blocks, and a warp walks 32 keys
 * per pass instead of L / 128 tiles. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

#define DS_WARPS 4
#define DS_KEYS (DS_WARPS * 32) /* keys per split */
#define DS_GMAX 8               /* query heads per kv head */
#define DS_ZGRID 16             /* blocks per (row, kv head); each walks splits z, z + 16, ... */
#define DS_BATCH 8              /* loads in flight per lane */
#define DS_SCRATCH (64u << 20)  /* partials per launch: rows are taken in chunks that fit */

__device__ __forceinline__ float ds_bf16r(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

/* four channels of a key row from d (d % 4 == 0), rounded to bf16 */
__device__ __forceinline__ float4 ds_ld4(const float *kr, int d) {
    float4 v = *(const float4 *)(kr + d);
    return make_float4(ds_bf16r(v.x), ds_bf16r(v.y), ds_bf16r(v.z), ds_bf16r(v.w));
}
__device__ __forceinline__ float4 ds_ld4(const __nv_bfloat16 *kr, int d) {
    uint2 u = *(const uint2 *)(kr + d);
    float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)&u.x), b = __bfloat1622float2(*(const __nv_bfloat162 *)&u.y);
    return make_float4(a.x, a.y, b.x, b.y);
}

/* s[g] = bf16(q_g) . bf16(k row), channels ascending in groups of 4 (qs
 * holds the rounded queries); DS_BATCH loads issued before use */
template <typename KVT>
__device__ __forceinline__ void ds_scores(float *s, const float *qs, const KVT *kr, int G, int HD) {
    if ((HD & 3) == 0) {
        for (int d0 = 0; d0 < HD; d0 += 4 * DS_BATCH) {
            float4 kk[DS_BATCH];
#pragma unroll
            for (int u = 0; u < DS_BATCH; u++)
                if (d0 + 4 * u < HD) kk[u] = ds_ld4(kr, d0 + 4 * u);
#pragma unroll
            for (int u = 0; u < DS_BATCH; u++) {
                if (d0 + 4 * u >= HD) continue;
                int d = d0 + 4 * u;
                float k0 = kk[u].x, k1 = kk[u].y, k2 = kk[u].z, k3 = kk[u].w;
#pragma unroll
                for (int g = 0; g < DS_GMAX; g++)
                    if (g < G) {
                        float4 q4 = *(const float4 *)(qs + g * HD + d);
                        s[g] += q4.x * k0 + q4.y * k1 + q4.z * k2 + q4.w * k3;
                    }
            }
        }
    } else {
        for (int d = 0; d < HD; d++) {
            float kd = ds_bf16r(kv_load(kr, d));
#pragma unroll
            for (int g = 0; g < DS_GMAX; g++)
                if (g < G) s[g] += qs[g * HD + d] * kd;
        }
    }
}

/* the block's G query heads of row n, rounded, into shared memory */
__device__ __forceinline__ void ds_load_q(float *qs, const float *q, int n, int kh, int NH, int G, int HD) {
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) qs[i] = ds_bf16r(q[((size_t)n * NH + kh * G) * HD + i]);
    __syncthreads();
}

/* grid (rows, KVH, min(Z, DS_ZGRID)); pml (rows, KVH, Z, G, 2): (max, sum);
 * psc (rows, KVH, Z, G, DS_KEYS): the scaled scores, which the pv pass
 * reads instead of reading K again */
template <typename KVT, bool PAGED>
__global__ void __launch_bounds__(DS_WARPS * 32) ds_stats_kernel(float *pml, float *psc, const float *q,
                                                                  const KVT *k_cache,
                                                                  const int32_t *slot, const int32_t *len,
                                                                  KvMap map, int n0, int NH, int KVH, int HD,
                                                                  int Z, float scale) {
    extern __shared__ __align__(16) float sm[];
    int G = NH / KVH, KD = KVH * HD;
    float *qs = sm, *ms = qs + G * HD, *ls = ms + DS_WARPS * G;
    int r = blockIdx.x, n = n0 + r, kh = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5, L = len[n];
    if ((int)blockIdx.z * DS_KEYS >= L) return; /* block-uniform */
    const KVT *kc = k_cache + (PAGED ? 0 : (size_t)slot[n] * map.stride) + (size_t)kh * HD;
    ds_load_q(qs, q, n, kh, NH, G, HD);
    for (int z = blockIdx.z; z * DS_KEYS < L; z += gridDim.z) {
        int key = z * DS_KEYS + w * 32 + lane;
        float s[DS_GMAX];
#pragma unroll
        for (int g = 0; g < DS_GMAX; g++) s[g] = 0.0f;
        if (key < L) ds_scores(s, qs, kc + (PAGED ? kv_paged_row(map, slot[n], key, KD) : (size_t)key * KD), G, HD);
        float *scz = psc + (((size_t)r * KVH + kh) * Z + z) * G * DS_KEYS + w * 32 + lane;
#pragma unroll
        for (int g = 0; g < DS_GMAX; g++) {
            if (g >= G) continue;
            float sc = key < L ? s[g] * scale : -INFINITY;
            scz[g * DS_KEYS] = sc;
            float m = warp_max(sc);
            float l = warp_sum(key < L ? expf(sc - m) : 0.0f);
            if (lane == 0) ms[w * G + g] = m, ls[w * G + g] = l;
        }
        __syncthreads();
        if (threadIdx.x < G) { /* the split's warps, in order */
            int g = threadIdx.x;
            float M = -INFINITY, S = 0.0f;
            for (int ww = 0; ww < DS_WARPS; ww++) M = fmaxf(M, ms[ww * G + g]);
            for (int ww = 0; ww < DS_WARPS; ww++)
                if (ms[ww * G + g] != -INFINITY) S += ls[ww * G + g] * expf(ms[ww * G + g] - M);
            float *o = pml + ((((size_t)r * KVH + kh) * Z + z) * G + g) * 2;
            o[0] = M, o[1] = S;
        }
        __syncthreads();
    }
}

/* The channel a lane holds in its c-th output register. A bf16 cache
 * whose rows fill the lanes (HD = 32 NR, NR even) is read as pairs: lane
 * i takes channels 2i, 2i + 1 of each 64, one 4-byte load per pair, so a
 * warp reads a 128-byte row in one load; otherwise lane i takes channels
 * i, i + 32, ... The sums per channel are the same either way. */
template <int NR, typename KVT> __device__ __forceinline__ bool ds_pairs(int HD) {
    return sizeof(KVT) == 2 && NR % 2 == 0 && HD == 32 * NR;
}
__device__ __forceinline__ int ds_ch(int lane, int c, bool pairs) {
    return pairs ? 64 * (c >> 1) + 2 * lane + (c & 1) : lane + 32 * c;
}
/* the lane's NR values of a cache row */
template <int NR> __device__ __forceinline__ void ds_ldv(float *vd, const float *vr, int lane, int HD, bool) {
#pragma unroll
    for (int c = 0; c < NR; c++) vd[c] = lane + 32 * c < HD ? vr[lane + 32 * c] : 0.0f;
}
template <int NR>
__device__ __forceinline__ void ds_ldv(float *vd, const __nv_bfloat16 *vr, int lane, int HD, bool pairs) {
    if (pairs) {
#pragma unroll
        for (int c = 0; c < NR; c += 2) {
            float2 f = __bfloat1622float2(*(const __nv_bfloat162 *)(vr + 64 * (c >> 1) + 2 * lane));
            vd[c] = f.x, vd[c + 1] = f.y;
        }
    } else {
#pragma unroll
        for (int c = 0; c < NR; c++) vd[c] = lane + 32 * c < HD ? __bfloat162float(vr[lane + 32 * c]) : 0.0f;
    }
}

/* grid as the stats; po (rows, KVH, Z, G, HD): each split's P V */
template <int NR, typename KVT, bool PAGED>
__global__ void __launch_bounds__(DS_WARPS * 32) ds_pv_kernel(float *po, const float *pml, const float *psc,
                                                               const KVT *v_cache, const int32_t *slot,
                                                               const int32_t *len, KvMap map, int n0, int NH,
                                                               int KVH, int HD, int Z, float *lse_out, int T) {
    extern __shared__ __align__(16) float sm[];
    int G = NH / KVH, KD = KVH * HD;
    float *os = sm, *mrow = os + DS_WARPS * G * HD, *irow = mrow + DS_GMAX;
    int r = blockIdx.x, n = n0 + r, kh = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5, L = len[n];
    if ((int)blockIdx.z * DS_KEYS >= L) return;
    const KVT *vc = v_cache + (PAGED ? 0 : (size_t)slot[n] * map.stride) + (size_t)kh * HD;
    const bool pairs = ds_pairs<NR, KVT>(HD);
    if (threadIdx.x < G) { /* the row's max and 1/sum from its splits, in split order */
        int g = threadIdx.x, nz = (L + DS_KEYS - 1) / DS_KEYS;
        const float *p = pml + (((size_t)r * KVH + kh) * Z * G + g) * 2;
        float M = -INFINITY, S = 0.0f;
        for (int z = 0; z < nz; z++) M = fmaxf(M, p[(size_t)z * G * 2]);
        for (int z = 0; z < nz; z++) {
            float mz = p[(size_t)z * G * 2];
            if (mz != -INFINITY) S += p[(size_t)z * G * 2 + 1] * expf(mz - M);
        }
        mrow[g] = M;
        irow[g] = S > 0.0f ? 1.0f / S : 0.0f;
        /* training rows: the log-sum-exp the backward reads, (B, NH, T) */
        if (lse_out && blockIdx.z == 0)
            lse_out[((size_t)(n / T) * NH + kh * G + g) * T + n % T] = S > 0.0f ? M + logf(S) : -INFINITY;
    }
    __syncthreads(); /* publishes mrow, irow */
    for (int z = blockIdx.z; z * DS_KEYS < L; z += gridDim.z) {
        int j0 = z * DS_KEYS + w * 32, key = j0 + lane;
        const float *scz = psc + (((size_t)r * KVH + kh) * Z + z) * G * DS_KEYS + w * 32 + lane;
        float o[DS_GMAX][NR], p[DS_GMAX];
#pragma unroll
        for (int g = 0; g < DS_GMAX; g++) {
#pragma unroll
            for (int c = 0; c < NR; c++) o[g][c] = 0.0f;
            p[g] = g < G && key < L ? ds_bf16r(expf(scz[g * DS_KEYS] - mrow[g]) * irow[g]) : 0.0f;
        }
        int lim = min(32, L - j0); /* warp-uniform; <= 0: the warp has no keys */
        for (int jb = 0; jb < lim; jb += DS_BATCH) {
            float vd[DS_BATCH][NR];
#pragma unroll
            for (int u = 0; u < DS_BATCH; u++) {
                if (jb + u < lim) {
                    int key = j0 + jb + u;
                    ds_ldv<NR>(vd[u], vc + (PAGED ? kv_paged_row(map, slot[n], key, KD) : (size_t)key * KD), lane,
                               HD, pairs);
                }
                else
#pragma unroll
                    for (int c = 0; c < NR; c++) vd[u][c] = 0.0f;
            }
#pragma unroll
            for (int u = 0; u < DS_BATCH; u++) {
                if (jb + u >= lim) continue;
#pragma unroll
                for (int g = 0; g < DS_GMAX; g++) {
                    if (g >= G) continue;
                    float pj = __shfl_sync(0xffffffffu, p[g], jb + u);
#pragma unroll
                    for (int c = 0; c < NR; c++) o[g][c] += pj * ds_bf16r(vd[u][c]);
                }
            }
        }
#pragma unroll
        for (int g = 0; g < DS_GMAX; g++) {
            if (g >= G) continue;
#pragma unroll
            for (int c = 0; c < NR; c++) {
                int d = ds_ch(lane, c, pairs);
                if (d < HD) os[(w * G + g) * HD + d] = o[g][c];
            }
        }
        __syncthreads();
        float *dst = po + (((size_t)r * KVH + kh) * Z + z) * G * HD;
        for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
            float acc = 0.0f;
            for (int ww = 0; ww < DS_WARPS; ww++) acc += os[ww * G * HD + i];
            dst[i] = acc;
        }
        __syncthreads();
    }
}

/* out(row, NH, HD) = sum over the row's splits, in order; grid (rows) */
__global__ void ds_combine_kernel(float *out, __nv_bfloat16 *o16, const float *po, const int32_t *len, int n0, int NH,
                                  int KVH, int HD, int Z) {
    int r = blockIdx.x, n = n0 + r, G = NH / KVH, nz = (len[n] + DS_KEYS - 1) / DS_KEYS;
    for (int i = threadIdx.x; i < NH * HD; i += blockDim.x) {
        int kh = i / (G * HD), gi = i % (G * HD);
        const float *p = po + ((size_t)r * KVH + kh) * Z * G * HD + gi;
        float acc = 0.0f;
        for (int z = 0; z < nz; z++) acc += p[(size_t)z * G * HD];
        size_t oi = (size_t)n * NH * HD + i;
        out[oi] = acc; /* an empty cache gives zeros */
        if (o16) o16[oi] = __float2bfloat16_rn(acc);
    }
}

static CudaBuf g_ds;

void cuda_decode_split_trim(void) { cuda_buf_free(&g_ds); }

template <typename KVT, bool PAGED>
static void ds_launch(float *out, __nv_bfloat16 *o16, float *pml, float *po, float *psc, const float *q,
                      const KVT *k_cache, const KVT *v_cache, const int32_t *slot, const int32_t *len, KvMap map,
                      int n0, int nr_rows, int nr, int NH, int KVH, int HD, int Z, int zg, float scale,
                      float *lse_out, int T, const char *op) {
    int G = NH / KVH;
    size_t sm_stats = (size_t)(G * HD + 2 * DS_WARPS * G) * sizeof(float);
    size_t sm_pv = (size_t)(G * HD * DS_WARPS + 2 * DS_GMAX) * sizeof(float);
    dim3 grid(nr_rows, KVH, zg);
    if (sm_stats > 48 * 1024)
        cudaFuncSetAttribute(ds_stats_kernel<KVT, PAGED>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm_stats);
    ds_stats_kernel<KVT, PAGED><<<grid, DS_WARPS * 32, sm_stats, cuda_stream()>>>(pml, psc, q, k_cache, slot, len,
                                                                                  map, n0, NH, KVH, HD, Z, scale);
    cuda_after_launch(op);
    switch (nr) {
#define DSPV(NRV)                                                                                                  \
    case NRV:                                                                                                      \
        if (sm_pv > 48 * 1024)                                                                                     \
            cudaFuncSetAttribute(ds_pv_kernel<NRV, KVT, PAGED>, cudaFuncAttributeMaxDynamicSharedMemorySize,       \
                                 (int)sm_pv);                                                                      \
        ds_pv_kernel<NRV, KVT, PAGED><<<grid, DS_WARPS * 32, sm_pv, cuda_stream()>>>(                              \
            po, pml, psc, v_cache, slot, len, map, n0, NH, KVH, HD, Z, lse_out, T);                                \
        break;
        DSPV(1) DSPV(2) DSPV(4) DSPV(8)
#undef DSPV
    }
    cuda_after_launch(op);
    ds_combine_kernel<<<nr_rows, 256, 0, cuda_stream()>>>(out, o16, po, len, n0, NH, KVH, HD, Z);
    cuda_after_launch(op);
}

/* the cache element type and layout as template arguments */
template <typename KVT>
static void ds_launch_any(float *out, __nv_bfloat16 *o16, float *pml, float *po, float *psc, const float *q,
                          const void *k_cache, const void *v_cache, const int32_t *slot, const int32_t *len,
                          KvMap map, int n0, int nr_rows, int nr, int NH, int KVH, int HD, int Z, int zg, float scale,
                          float *lse_out, int T, const char *op) {
    const KVT *k = (const KVT *)k_cache, *v = (const KVT *)v_cache;
    if (map.table)
        ds_launch<KVT, true>(out, o16, pml, po, psc, q, k, v, slot, len, map, n0, nr_rows, nr, NH, KVH, HD, Z, zg,
                             scale, lse_out, T, op);
    else
        ds_launch<KVT, false>(out, o16, pml, po, psc, q, k, v, slot, len, map, n0, nr_rows, nr, NH, KVH, HD, Z, zg,
                              scale, lse_out, T, op);
}

int cuda_decode_split(float *out, const float *q, const void *k_cache, const void *v_cache, int kv_bf16,
                      const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, int HD,
                      float *lse_out, int T, const char *op) {
    int G = NH / KVH, nr = cuda_att_nr(HD), KD = KVH * HD;
    if (G > DS_GMAX || nr == 0 || N <= 0) return -1;
    int max_len = kv_map_len(map, KD); /* a slot's positions */
    int Z = (max_len + DS_KEYS - 1) / DS_KEYS;
    if (Z < 1) Z = 1;
    size_t per_row = (size_t)KVH * Z * G * (HD + 2 + DS_KEYS) * sizeof(float);
    int rows = (int)(DS_SCRATCH / per_row);
    if (rows < 1) rows = 1;
    if (rows > N) rows = N;
    float *pml = (float *)cuda_buf_grow(&g_ds, per_row * rows, op);
    if (!pml) return -2; /* noted (or a graph recording voided): nothing runs */
    float *po = pml + (size_t)rows * KVH * Z * G * 2, *psc = po + (size_t)rows * KVH * Z * G * HD;
    float scale = 1.0f / sqrtf((float)HD);
    __nv_bfloat16 *o16 = cuda_act16_target((size_t)N * NH * HD); /* for the output projection */
    int zg = Z < DS_ZGRID ? Z : DS_ZGRID;
    for (int n0 = 0; n0 < N; n0 += rows) {
        int nr_rows = N - n0 < rows ? N - n0 : rows;
        if (kv_bf16)
            ds_launch_any<__nv_bfloat16>(out, o16, pml, po, psc, q, k_cache, v_cache, slot, len, map, n0, nr_rows, nr,
                                         NH, KVH, HD, Z, zg, scale, lse_out, T, op);
        else
            ds_launch_any<float>(out, o16, pml, po, psc, q, k_cache, v_cache, slot, len, map, n0, nr_rows, nr, NH,
                                 KVH, HD, Z, zg, scale, lse_out, T, op);
    }
    if (o16) cuda_act16_produced(out, (size_t)N * NH * HD);
    return 0;
}
