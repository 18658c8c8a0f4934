/* bf16 attention on the tensor cores, one arithmetic for training and
 * decoding (FlashAttention 2's numerics): the causal training forward and
 * the decode attention (contiguous or paged cache) run the same per-row
 * code on the same bf16 inputs, so a sampled token's attention output is
 * bit for bit what the trainer's forward computes for it, whatever the
 * batch on either side.
 *
 * Per query row (mma.sync m16n8k16: bf16 operands, fp32 accumulation):
 *   keys go in blocks of FA_BK from key 0; for each block
 *     s   = q . k over the head's channels, 16 at a time in order (mma)
 *     x   = s * scale * log2(e), -inf for keys after the row's last;
 *     m'  = max(m, max x);  a = 2^(m - m');  p = 2^(x - m')
 *     l   = l a + sum p     (the lane's 16 values in order, then its quad)
 *     acc = acc a + bf16(p) V, 16 keys at a time in order (mma)
 *   out = acc / l, lse = (m + log2 l) ln 2.
 * Each output element of an mma depends only on its own row of A, its
 * column of B and its accumulator, so where a row sits in a tile (which
 * other rows share its warp) cannot change its bits. Keys past the row's
 * end carry p = 0 (and zeros where no cache row exists), adding exact
 * zeros. Training and decode process the same blocks: a row at position t
 * meets blocks 0 .. t / FA_BK in both.
 *
 * Layouts: training rows are (b, t) of one head h, a block of 4 warps x
 * 16 rows per CTA sharing K/V tiles in shared memory (K and V rounded to
 * bf16 once per call); a decode row is one query head of a token, the
 * G = NH / KVH heads of a kv head forming one warp's 16-row tile (G <= 16),
 * one warp per (token, kv head). Tiles are double-buffered: the next
 * block's K and V load (cp.async for bf16) while the current one is used.
 * Head sizes 32, 64 and 128; the callers fall back to the other kernels
 * for the rest. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

#define FA_BK 64  /* keys per block */
#define FA_PAD 8  /* bf16 elements of padding per shared row: ldmatrix rows hit distinct banks */
#define FA_WARPS 4 /* warps per training CTA (64 query rows) */

template <int HD>
struct FaDims {
    static const int LDS = HD + FA_PAD;            /* shared row stride, elements */
    static const int TILE = FA_BK * LDS;           /* one K or V tile, elements */
    static const int STAGE = 2 * TILE;             /* K and V */
    static const size_t SMEM = 2 * STAGE * 2;      /* two stages, bytes */
    static const int CH = HD / 8;                  /* 16-byte chunks per row */
};

/* ---- PTX wrappers ---- */

__device__ __forceinline__ void fa_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void fa_ldsm4(uint32_t r[4], const void *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void fa_ldsm4_t(uint32_t r[4], const void *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void fa_cp16(void *smem, const void *g) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(g));
}
__device__ __forceinline__ void fa_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void fa_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
/* two floats as a bf16 pair, the lower index in the low half */
__device__ __forceinline__ uint32_t fa_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* ---- tiles ---- */

/* 16 bytes of a K or V row into shared memory: cp.async from a bf16
 * cache, load-and-round from an fp32 one */
__device__ __forceinline__ void fa_chunk(__nv_bfloat16 *dst, const __nv_bfloat16 *src) { fa_cp16(dst, src); }
__device__ __forceinline__ void fa_chunk(__nv_bfloat16 *dst, const float *src) {
    float4 a = *(const float4 *)src, b = *(const float4 *)(src + 4);
    *(uint4 *)dst = make_uint4(fa_pack(a.x, a.y), fa_pack(a.z, a.w), fa_pack(b.x, b.y), fa_pack(b.z, b.w));
}

/* Keys key0 .. key0 + FA_BK - 1 of kv head kh of `slot` into a stage (K
 * tile, then V tile); keys at or past L are zeros. Threads t of nt. */
template <int HD, typename KVT, bool PAGED>
__device__ __forceinline__ void fa_load(__nv_bfloat16 *st, const KVT *kc, const KVT *vc, const KvMap &map, int slot,
                                        int kh, int KD, int key0, int L, int t, int nt) {
    typedef FaDims<HD> D;
    for (int i = t; i < FA_BK * D::CH; i += nt) {
        int r = i / D::CH, c = i % D::CH, key = key0 + r;
        __nv_bfloat16 *dk = st + r * D::LDS + c * 8, *dv = dk + D::TILE;
        if (key < L) {
            size_t off = (PAGED ? kv_paged_row(map, slot, key, KD) : (size_t)slot * map.stride + (size_t)key * KD) +
                         (size_t)kh * HD + c * 8;
            fa_chunk(dk, kc + off);
            fa_chunk(dv, vc + off);
        } else {
            *(uint4 *)dk = make_uint4(0, 0, 0, 0);
            *(uint4 *)dv = make_uint4(0, 0, 0, 0);
        }
    }
}

/* ---- the per-row arithmetic ---- */

/* Query fragments of a warp's 16 rows (r0: row gid, r1: row gid + 8;
 * NULL: a padding row of zeros), rounded to bf16 */
template <int HD>
__device__ __forceinline__ void fa_load_q(uint32_t qf[HD / 16][4], const float *r0, const float *r1) {
    int lane = threadIdx.x & 31, tid = lane & 3;
#pragma unroll
    for (int c = 0; c < HD / 16; c++) {
        int d = 16 * c + 2 * tid;
        float2 a = r0 ? *(const float2 *)(r0 + d) : make_float2(0.f, 0.f);
        float2 b = r1 ? *(const float2 *)(r1 + d) : make_float2(0.f, 0.f);
        float2 e = r0 ? *(const float2 *)(r0 + d + 8) : make_float2(0.f, 0.f);
        float2 f = r1 ? *(const float2 *)(r1 + d + 8) : make_float2(0.f, 0.f);
        qf[c][0] = fa_pack(a.x, a.y);
        qf[c][1] = fa_pack(b.x, b.y);
        qf[c][2] = fa_pack(e.x, e.y);
        qf[c][3] = fa_pack(f.x, f.y);
    }
}

/* One block of keys for a warp's 16 rows: st holds the K tile then the V
 * tile of keys key0 ..; lim0 / lim1 are the last keys rows gid / gid + 8
 * may see. m, l, acc: the rows' running state (this lane's part). */
template <int HD>
__device__ __forceinline__ void fa_block(float acc[HD / 8][4], float m[2], float l[2], const uint32_t qf[HD / 16][4],
                                         const __nv_bfloat16 *st, int key0, int lim0, int lim1, float sl2) {
    typedef FaDims<HD> D;
    int lane = threadIdx.x & 31, tid = lane & 3, mi = lane >> 3, r8 = lane & 7;
    const __nv_bfloat16 *sK = st, *sV = st + D::TILE;
    float s[FA_BK / 8][4];
#pragma unroll
    for (int j = 0; j < FA_BK / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
    /* S = Q K^T: n-tiles j, j + 1 (keys 8j ..) per ldmatrix, channels in order */
#pragma unroll
    for (int j = 0; j < FA_BK / 8; j += 2)
#pragma unroll
        for (int c = 0; c < HD / 16; c++) {
            uint32_t b[4];
            fa_ldsm4(b, sK + (8 * (j + (mi >> 1)) + r8) * D::LDS + 16 * c + 8 * (mi & 1));
            fa_mma(s[j], qf[c], b[0], b[1]);
            fa_mma(s[j + 1], qf[c], b[2], b[3]);
        }
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < FA_BK / 8; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int key = key0 + 8 * j + 2 * tid + e;
            float x0 = key > lim0 ? -INFINITY : s[j][e] * sl2, x1 = key > lim1 ? -INFINITY : s[j][2 + e] * sl2;
            s[j][e] = x0, s[j][2 + e] = x1;
            mx0 = fmaxf(mx0, x0), mx1 = fmaxf(mx1, x1);
        }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    float mn0 = fmaxf(m[0], mx0), mn1 = fmaxf(m[1], mx1);
    /* a row that has seen no key yet (cannot happen: every block a row
     * meets holds a key it may see) must not form -inf - -inf */
    float b0 = mn0 == -INFINITY ? 0.0f : mn0, b1 = mn1 == -INFINITY ? 0.0f : mn1;
    float a0 = exp2f(m[0] - b0), a1 = exp2f(m[1] - b1);
    float rs0 = 0.0f, rs1 = 0.0f;
    uint32_t pf[FA_BK / 16][4];
#pragma unroll
    for (int j = 0; j < FA_BK / 8; j++) {
        float p0 = exp2f(s[j][0] - b0), p1 = exp2f(s[j][1] - b0);
        float p2 = exp2f(s[j][2] - b1), p3 = exp2f(s[j][3] - b1);
        rs0 += p0, rs0 += p1, rs1 += p2, rs1 += p3;
        pf[j >> 1][(j & 1) * 2] = fa_pack(p0, p1);
        pf[j >> 1][(j & 1) * 2 + 1] = fa_pack(p2, p3);
    }
    rs0 += __shfl_xor_sync(0xffffffffu, rs0, 1);
    rs0 += __shfl_xor_sync(0xffffffffu, rs0, 2);
    rs1 += __shfl_xor_sync(0xffffffffu, rs1, 1);
    rs1 += __shfl_xor_sync(0xffffffffu, rs1, 2);
    l[0] = l[0] * a0 + rs0, l[1] = l[1] * a1 + rs1;
    m[0] = mn0, m[1] = mn1;
#pragma unroll
    for (int d = 0; d < HD / 8; d++) acc[d][0] *= a0, acc[d][1] *= a0, acc[d][2] *= a1, acc[d][3] *= a1;
    /* acc += P V: keys 16 at a time, channel tiles d, d + 1 per ldmatrix */
#pragma unroll
    for (int c = 0; c < FA_BK / 16; c++)
#pragma unroll
        for (int d = 0; d < HD / 8; d += 2) {
            uint32_t b[4];
            fa_ldsm4_t(b, sV + (16 * c + 8 * (mi & 1) + r8) * D::LDS + 8 * (d + (mi >> 1)));
            fa_mma(acc[d], pf[c], b[0], b[1]);
            fa_mma(acc[d + 1], pf[c], b[2], b[3]);
        }
}

/* out row = acc / l (and its bf16 copy); lse = (m + log2 l) ln 2 */
template <int HD>
__device__ __forceinline__ void fa_store(const float acc[HD / 8][4], const float m[2], const float l[2], float *o0,
                                         float *o1, __nv_bfloat16 *h0, __nv_bfloat16 *h1, float *lse0,
                                         float *lse1) {
    int lane = threadIdx.x & 31, tid = lane & 3;
#pragma unroll
    for (int d = 0; d < HD / 8; d++) {
        int ch = 8 * d + 2 * tid;
        float2 u = make_float2(acc[d][0] / l[0], acc[d][1] / l[0]), w = make_float2(acc[d][2] / l[1], acc[d][3] / l[1]);
        if (o0) *(float2 *)(o0 + ch) = u;
        if (o1) *(float2 *)(o1 + ch) = w;
        if (h0) *(__nv_bfloat162 *)(h0 + ch) = __floats2bfloat162_rn(u.x, u.y);
        if (h1) *(__nv_bfloat162 *)(h1 + ch) = __floats2bfloat162_rn(w.x, w.y);
    }
    if (tid == 0) {
        if (lse0) *lse0 = (m[0] + log2f(l[0])) * 0.69314718055994531f;
        if (lse1) *lse1 = (m[1] + log2f(l[1])) * 0.69314718055994531f;
    }
}

/* ---- decode: one warp per (token, kv head), its G heads the rows ---- */

template <int HD, typename KVT, bool PAGED>
__global__ void __launch_bounds__(32) fa_decode_kernel(float *out, __nv_bfloat16 *o16, const float *q, const KVT *kc,
                                                       const KVT *vc, const int32_t *slot, const int32_t *len,
                                                       KvMap map, int NH, int KVH, float sl2) {
    typedef FaDims<HD> D;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)fa_smem;
    int n = blockIdx.x, kh = blockIdx.y, G = NH / KVH, lane = threadIdx.x, gid = lane >> 2;
    int L = len[n], sl = slot[n], KD = KVH * HD;
    size_t row0 = (size_t)n * NH + (size_t)kh * G;
    const float *q0 = gid < G ? q + (row0 + gid) * HD : NULL, *q1 = gid + 8 < G ? q + (row0 + gid + 8) * HD : NULL;
    uint32_t qf[HD / 16][4];
    fa_load_q<HD>(qf, q0, q1);
    float acc[HD / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int d = 0; d < HD / 8; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;
    int nb = (L + FA_BK - 1) / FA_BK;
    if (nb > 0) fa_load<HD, KVT, PAGED>(sm, kc, vc, map, sl, kh, KD, 0, L, lane, 32);
    fa_commit();
    for (int i = 0; i < nb; i++) {
        if (i + 1 < nb)
            fa_load<HD, KVT, PAGED>(sm + ((i + 1) & 1) * D::STAGE, kc, vc, map, sl, kh, KD, (i + 1) * FA_BK, L, lane,
                                    32);
        fa_commit();
        fa_wait<1>();
        __syncwarp();
        fa_block<HD>(acc, m, l, qf, sm + (i & 1) * D::STAGE, i * FA_BK, L - 1, L - 1, sl2);
        __syncwarp(); /* the stage is refilled next iteration */
    }
    if (nb == 0) l[0] = l[1] = 1.0f; /* an empty cache gives zeros */
    float *o0 = q0 ? out + (row0 + gid) * HD : NULL, *o1 = q1 ? out + (row0 + gid + 8) * HD : NULL;
    __nv_bfloat16 *h0 = o16 && q0 ? o16 + (row0 + gid) * HD : NULL, *h1 = o16 && q1 ? o16 + (row0 + gid + 8) * HD : NULL;
    fa_store<HD>(acc, m, l, o0, o1, h0, h1, NULL, NULL);
}

/* ---- training forward: CTA = (64-row query tile, head, sequence) ---- */

template <int HD>
__global__ void __launch_bounds__(FA_WARPS * 32) fa_forward_kernel(float *out, float *lse, __nv_bfloat16 *o16,
                                                                   const float *q, const __nv_bfloat16 *kb,
                                                                   const __nv_bfloat16 *vb, int T, int NH, int KVH,
                                                                   float sl2) {
    typedef FaDims<HD> D;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)fa_smem;
    int qt = gridDim.x - 1 - blockIdx.x; /* the longest tiles first */
    int h = blockIdx.y, b = blockIdx.z, kh = h / (NH / KVH), KD = KVH * HD;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2;
    int t0 = qt * (FA_WARPS * 16) + w * 16 + gid, t1 = t0 + 8;
    const float *q0 = t0 < T ? q + (((size_t)b * T + t0) * NH + h) * HD : NULL;
    const float *q1 = t1 < T ? q + (((size_t)b * T + t1) * NH + h) * HD : NULL;
    uint32_t qf[HD / 16][4];
    fa_load_q<HD>(qf, q0, q1);
    float acc[HD / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int d = 0; d < HD / 8; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;
    /* the batch's K and V as a cache of B slots of T positions */
    KvMap map = {NULL, 0, 0, (size_t)T * KD};
    int last = min(qt * FA_WARPS * 16 + FA_WARPS * 16, T) - 1, nb = last / FA_BK + 1;
    int lim0 = min(t0, T - 1), lim1 = min(t1, T - 1);
    fa_load<HD, __nv_bfloat16, false>(sm, kb, vb, map, b, kh, KD, 0, T, threadIdx.x, FA_WARPS * 32);
    fa_commit();
    for (int i = 0; i < nb; i++) {
        if (i + 1 < nb)
            fa_load<HD, __nv_bfloat16, false>(sm + ((i + 1) & 1) * D::STAGE, kb, vb, map, b, kh, KD, (i + 1) * FA_BK,
                                              T, threadIdx.x, FA_WARPS * 32);
        fa_commit();
        fa_wait<1>();
        __syncthreads();
        /* every warp meets every block: a 64-row tile starting at a
         * multiple of FA_BK sees blocks 0 .. its first row / FA_BK, as
         * each of its rows does when decoded */
        fa_block<HD>(acc, m, l, qf, sm + (i & 1) * D::STAGE, i * FA_BK, lim0, lim1, sl2);
        __syncthreads();
    }
    size_t r0 = ((size_t)b * T + t0) * NH + h, r1 = ((size_t)b * T + t1) * NH + h;
    fa_store<HD>(acc, m, l, q0 ? out + r0 * HD : NULL, q1 ? out + r1 * HD : NULL,
                 o16 && q0 ? o16 + r0 * HD : NULL, o16 && q1 ? o16 + r1 * HD : NULL,
                 q0 ? lse + ((size_t)b * NH + h) * T + t0 : NULL, q1 ? lse + ((size_t)b * NH + h) * T + t1 : NULL);
}

/* ---- entry points ---- */

static int fa_hd_ok(int HD) { return HD == 32 || HD == 64 || HD == 128; }

/* R1C_CUDA_FLASH=0 turns these kernels off (the split decode kernels and
 * the GEMM training attention run instead) */
static int fa_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("R1C_CUDA_FLASH");
        on = !(e && !strcmp(e, "0"));
    }
    return on;
}

/* One predicate for both sides, so that a shape either runs here in
 * training and in decoding or in neither. */
int cuda_flash_takes(int NH, int KVH, int HD) {
    return fa_enabled() && fa_hd_ok(HD) && KVH > 0 && NH % KVH == 0 && NH / KVH <= 16;
}

template <int HD, typename KVT, bool PAGED>
static void fa_decode_launch(float *out, __nv_bfloat16 *o16, const float *q, const void *kc, const void *vc,
                             const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, float sl2) {
    size_t smem = FaDims<HD>::SMEM;
    if (smem > 48 * 1024)
        cudaFuncSetAttribute(fa_decode_kernel<HD, KVT, PAGED>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    fa_decode_kernel<HD, KVT, PAGED><<<dim3(N, KVH), 32, smem, cuda_stream()>>>(
        out, o16, q, (const KVT *)kc, (const KVT *)vc, slot, len, map, NH, KVH, sl2);
}

template <int HD>
static void fa_decode_hd(float *out, __nv_bfloat16 *o16, const float *q, const void *kc, const void *vc, int kv_bf16,
                         const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, float sl2) {
    if (kv_bf16) {
        if (map.table) fa_decode_launch<HD, __nv_bfloat16, true>(out, o16, q, kc, vc, slot, len, map, N, NH, KVH, sl2);
        else fa_decode_launch<HD, __nv_bfloat16, false>(out, o16, q, kc, vc, slot, len, map, N, NH, KVH, sl2);
    } else {
        if (map.table) fa_decode_launch<HD, float, true>(out, o16, q, kc, vc, slot, len, map, N, NH, KVH, sl2);
        else fa_decode_launch<HD, float, false>(out, o16, q, kc, vc, slot, len, map, N, NH, KVH, sl2);
    }
}

int cuda_flash_decode(float *out, const float *q, const void *k_cache, const void *v_cache, int kv_bf16,
                      const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, int HD,
                      const char *op) {
    if (!cuda_flash_takes(NH, KVH, HD) || N <= 0 || N > 2147483647) return -1;
    float sl2 = 1.4426950408889634f / sqrtf((float)HD);
    __nv_bfloat16 *o16 = cuda_act16_target((size_t)N * NH * HD); /* for the output projection */
    switch (HD) {
    case 32: fa_decode_hd<32>(out, o16, q, k_cache, v_cache, kv_bf16, slot, len, map, N, NH, KVH, sl2); break;
    case 64: fa_decode_hd<64>(out, o16, q, k_cache, v_cache, kv_bf16, slot, len, map, N, NH, KVH, sl2); break;
    default: fa_decode_hd<128>(out, o16, q, k_cache, v_cache, kv_bf16, slot, len, map, N, NH, KVH, sl2); break;
    }
    cuda_after_launch(op);
    if (o16) cuda_act16_produced(out, (size_t)N * NH * HD);
    return 0;
}

template <int HD>
static void fa_forward_launch(float *out, float *lse, __nv_bfloat16 *o16, const float *q, const __nv_bfloat16 *kb,
                              const __nv_bfloat16 *vb, int B, int T, int NH, int KVH, float sl2) {
    size_t smem = FaDims<HD>::SMEM;
    if (smem > 48 * 1024)
        cudaFuncSetAttribute(fa_forward_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    dim3 grid((T + FA_WARPS * 16 - 1) / (FA_WARPS * 16), NH, B);
    fa_forward_kernel<HD><<<grid, FA_WARPS * 32, smem, cuda_stream()>>>(out, lse, o16, q, kb, vb, T, NH, KVH, sl2);
}

int cuda_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T, int NH,
                       int KVH, int HD) {
    if (!cuda_flash_takes(NH, KVH, HD) || B > 65535 || NH > 65535 || T <= 0) return -1;
    size_t nk = (size_t)B * T * KVH * HD;
    __nv_bfloat16 *kb = (__nv_bfloat16 *)cuda_scratch(2 * nk * sizeof(__nv_bfloat16));
    if (!kb) return -1; /* noted */
    __nv_bfloat16 *vb = kb + nk;
    cuda_to_bf16(kb, k, nk);
    cuda_to_bf16(vb, v, nk);
    float sl2 = 1.4426950408889634f / sqrtf((float)HD);
    __nv_bfloat16 *o16 = cuda_act16_target((size_t)B * T * NH * HD);
    switch (HD) {
    case 32: fa_forward_launch<32>(out, lse, o16, q, kb, vb, B, T, NH, KVH, sl2); break;
    case 64: fa_forward_launch<64>(out, lse, o16, q, kb, vb, B, T, NH, KVH, sl2); break;
    default: fa_forward_launch<128>(out, lse, o16, q, kb, vb, B, T, NH, KVH, sl2); break;
    }
    cuda_after_launch("attention_forward");
    if (o16) cuda_act16_produced(out, (size_t)B * T * NH * HD);
    return 0;
}
