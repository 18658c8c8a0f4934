/* bf16 attention on the tensor cores: the causal training forward and
 * backward, and the decode attention (contiguous or paged cache). One
 * arithmetic for training and decoding (FlashAttention 2's numerics): the
 * forward and the decode attention run the same per-row code on the same
 * bf16 inputs, so a sampled token's attention output is bit for bit what
 * the trainer's forward computes for it, whatever the batch on either
 * side. The backward (at the end of the file) is deterministic.
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
 * G = NH / KVH heads of a kv head forming a 16-row tile (G <= 16), one CTA
 * per (token, kv head) of 4 warps (2 for head size 32) that load its K/V
 * tiles together. Each of them computes the tile's scores, maxima, sums
 * and bf16 P for all 16 rows exactly as a training warp does, then
 * multiplies P into its own quarter (half) of V's channels: every output
 * element is still summed by the same mma instructions over the same
 * operands in the same order, so splitting the channels over warps keeps
 * its bits. Tiles are double-buffered: the next block's K and V load
 * (cp.async for bf16) while the current one is used.
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

/* ROWS positions from key0 of kv head kh of `slot` into a shared tile
 * (row stride HD + FA_PAD); positions at or past L are zeros. Threads t
 * of nt. */
template <int HD, int ROWS, typename KVT, bool PAGED>
__device__ __forceinline__ void fa_load_tile(__nv_bfloat16 *dst, const KVT *src, const KvMap &map, int slot, int kh,
                                             int KD, int key0, int L, int t, int nt) {
    const int CH = HD / 8, LDS = HD + FA_PAD;
    for (int i = t; i < ROWS * CH; i += nt) {
        int r = i / CH, c = i % CH, key = key0 + r;
        __nv_bfloat16 *d = dst + r * LDS + c * 8;
        if (key < L)
            fa_chunk(d, src + (PAGED ? kv_paged_row(map, slot, key, KD) : (size_t)slot * map.stride + (size_t)key * KD) +
                            (size_t)kh * HD + c * 8);
        else *(uint4 *)d = make_uint4(0, 0, 0, 0);
    }
}

/* Keys key0 .. key0 + FA_BK - 1 into a stage: the K tile, then the V tile */
template <int HD, typename KVT, bool PAGED>
__device__ __forceinline__ void fa_load(__nv_bfloat16 *st, const KVT *kc, const KVT *vc, const KvMap &map, int slot,
                                        int kh, int KD, int key0, int L, int t, int nt) {
    fa_load_tile<HD, FA_BK, KVT, PAGED>(st, kc, map, slot, kh, KD, key0, L, t, nt);
    fa_load_tile<HD, FA_BK, KVT, PAGED>(st + FaDims<HD>::TILE, vc, map, slot, kh, KD, key0, L, t, nt);
}

/* ---- warp-level products (16 rows) ---- */

/* A fragment (16 x 16, row-major, stride ld elements) from shared memory */
__device__ __forceinline__ void fa_ldA(uint32_t a[4], const __nv_bfloat16 *base, int ld) {
    int lane = threadIdx.x & 31, mi = lane >> 3;
    fa_ldsm4(a, base + ((mi & 1) * 8 + (lane & 7)) * ld + (mi >> 1) * 8);
}

/* acc[n] (16 x 8 n-tiles, NT of them) += A B^T over HD channels: A's 16
 * rows at sA, B's NT x 8 rows at sB, both row-major over channels */
template <int HD, int NT>
__device__ __forceinline__ void fa_abt_smem(float acc[NT][4], const __nv_bfloat16 *sA, const __nv_bfloat16 *sB) {
    const int LDS = HD + FA_PAD;
    int lane = threadIdx.x & 31, mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int c = 0; c < HD / 16; c++) {
        uint32_t a[4];
        fa_ldA(a, sA + 16 * c, LDS);
#pragma unroll
        for (int n = 0; n < NT; n += 2) {
            uint32_t bb[4];
            fa_ldsm4(bb, sB + (8 * (n + (mi >> 1)) + r8) * LDS + 16 * c + 8 * (mi & 1));
            fa_mma(acc[n], a, bb[0], bb[1]);
            fa_mma(acc[n + 1], a, bb[2], bb[3]);
        }
    }
}
/* the same with A's fragments in registers */
template <int HD, int NT>
__device__ __forceinline__ void fa_abt_reg(float acc[NT][4], const uint32_t af[HD / 16][4], const __nv_bfloat16 *sB) {
    const int LDS = HD + FA_PAD;
    int lane = threadIdx.x & 31, mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int c = 0; c < HD / 16; c++)
#pragma unroll
        for (int n = 0; n < NT; n += 2) {
            uint32_t bb[4];
            fa_ldsm4(bb, sB + (8 * (n + (mi >> 1)) + r8) * LDS + 16 * c + 8 * (mi & 1));
            fa_mma(acc[n], af[c], bb[0], bb[1]);
            fa_mma(acc[n + 1], af[c], bb[2], bb[3]);
        }
}
/* acc[d] (16 x DC) += A B: A's KC 16-wide chunks in registers, B's KC x 16
 * rows at sB (row-major over channels, row stride HD + FA_PAD), DC of its
 * channels from sB on: all HD of them, or a warp's slice of them with sB
 * at the slice's first channel (DC a multiple of 16) */
template <int HD, int KC, int DC = HD>
__device__ __forceinline__ void fa_ab(float acc[DC / 8][4], const uint32_t af[KC][4], const __nv_bfloat16 *sB) {
    const int LDS = HD + FA_PAD;
    int lane = threadIdx.x & 31, mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int c = 0; c < KC; c++)
#pragma unroll
        for (int d = 0; d < DC / 8; d += 2) {
            uint32_t bb[4];
            fa_ldsm4_t(bb, sB + (16 * c + 8 * (mi & 1) + r8) * LDS + 8 * (d + (mi >> 1)));
            fa_mma(acc[d], af[c], bb[0], bb[1]);
            fa_mma(acc[d + 1], af[c], bb[2], bb[3]);
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
 * may see. m, l, acc: the rows' running state (this lane's part), acc
 * over the DC output channels from c0 on (all HD, or a warp's slice: S,
 * m, l and P are over all the head's channels and keys either way). */
template <int HD, int DC = HD>
__device__ __forceinline__ void fa_block(float acc[DC / 8][4], float m[2], float l[2], const uint32_t qf[HD / 16][4],
                                         const __nv_bfloat16 *st, int key0, int lim0, int lim1, float sl2,
                                         int c0 = 0) {
    typedef FaDims<HD> D;
    int lane = threadIdx.x & 31, tid = lane & 3;
    const __nv_bfloat16 *sK = st, *sV = st + D::TILE + c0;
    float s[FA_BK / 8][4];
#pragma unroll
    for (int j = 0; j < FA_BK / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
    fa_abt_reg<HD, FA_BK / 8>(s, qf, sK); /* S = Q K^T, channels 16 at a time in order */
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
    for (int d = 0; d < DC / 8; d++) acc[d][0] *= a0, acc[d][1] *= a0, acc[d][2] *= a1, acc[d][3] *= a1;
    fa_ab<HD, FA_BK / 16, DC>(acc, pf, sV); /* acc += P V, keys 16 at a time in order */
}

/* out row = acc / l (and its bf16 copy) over channels c0 .. c0 + DC - 1;
 * lse = (m + log2 l) ln 2 */
template <int HD, int DC = HD>
__device__ __forceinline__ void fa_store(const float acc[DC / 8][4], const float m[2], const float l[2], float *o0,
                                         float *o1, __nv_bfloat16 *h0, __nv_bfloat16 *h1, float *lse0, float *lse1,
                                         int c0 = 0) {
    int lane = threadIdx.x & 31, tid = lane & 3;
#pragma unroll
    for (int d = 0; d < DC / 8; d++) {
        int ch = c0 + 8 * d + 2 * tid;
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

/* ---- decode: one CTA per (token, kv head), its G heads the rows ----
 *
 * FaDec<HD>::W warps share the CTA's two stages: all of its threads load
 * the tiles, every warp computes the whole block's S, m, l and P for the
 * 16 rows (the same instructions on the same operands as the one warp of
 * a training tile, so the same bits in each warp), and warp w multiplies
 * P into V's channels w DC .. w DC + DC - 1 only and stores those. An
 * output element is accumulated by the same mma over the same fragments
 * in the same key order as with the whole head in one warp, so the split
 * leaves its bits as they were. */

template <int HD>
struct FaDec {
    static const int W = HD >= 64 ? 4 : 2; /* warps per CTA */
    static const int DC = HD / W;          /* output channels per warp: 16 or 32 */
};

template <int HD, typename KVT, bool PAGED>
__global__ void __launch_bounds__(FaDec<HD>::W * 32)
    fa_decode_kernel(float *out, __nv_bfloat16 *o16, const float *q, const KVT *kc, const KVT *vc,
                     const int32_t *slot, const int32_t *len, KvMap map, int NH, int KVH, float sl2) {
    typedef FaDims<HD> D;
    const int W = FaDec<HD>::W, DC = FaDec<HD>::DC;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)fa_smem;
    int n = blockIdx.x, kh = blockIdx.y, G = NH / KVH, lane = threadIdx.x & 31, gid = lane >> 2;
    int c0 = (threadIdx.x >> 5) * DC; /* the warp's first output channel */
    int L = len[n], sl = slot[n], KD = KVH * HD;
    size_t row0 = (size_t)n * NH + (size_t)kh * G;
    const float *q0 = gid < G ? q + (row0 + gid) * HD : NULL, *q1 = gid + 8 < G ? q + (row0 + gid + 8) * HD : NULL;
    uint32_t qf[HD / 16][4];
    fa_load_q<HD>(qf, q0, q1);
    float acc[DC / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int d = 0; d < DC / 8; d++) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;
    int nb = (L + FA_BK - 1) / FA_BK;
    if (nb > 0) fa_load<HD, KVT, PAGED>(sm, kc, vc, map, sl, kh, KD, 0, L, threadIdx.x, W * 32);
    fa_commit();
    for (int i = 0; i < nb; i++) {
        if (i + 1 < nb)
            fa_load<HD, KVT, PAGED>(sm + ((i + 1) & 1) * D::STAGE, kc, vc, map, sl, kh, KD, (i + 1) * FA_BK, L,
                                    threadIdx.x, W * 32);
        fa_commit();
        fa_wait<1>();
        __syncthreads(); /* every thread's part of stage i & 1 is in */
        fa_block<HD, DC>(acc, m, l, qf, sm + (i & 1) * D::STAGE, i * FA_BK, L - 1, L - 1, sl2, c0);
        __syncthreads(); /* the stage is refilled next iteration */
    }
    if (nb == 0) l[0] = l[1] = 1.0f; /* an empty cache gives zeros */
    float *o0 = q0 ? out + (row0 + gid) * HD : NULL, *o1 = q1 ? out + (row0 + gid + 8) * HD : NULL;
    __nv_bfloat16 *h0 = o16 && q0 ? o16 + (row0 + gid) * HD : NULL, *h1 = o16 && q1 ? o16 + (row0 + gid + 8) * HD : NULL;
    fa_store<HD, DC>(acc, m, l, o0, o1, h0, h1, NULL, NULL, c0);
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
    fa_decode_kernel<HD, KVT, PAGED><<<dim3(N, KVH), FaDec<HD>::W * 32, smem, cuda_stream()>>>(
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

/* ---- training backward (FlashAttention 2's, without atomics) ----
 *
 * From the forward's lse (natural log) and D = rowsum(dO * O):
 *   P = exp(s scale - lse), dP = dO V^T, dS = P (dP - D),
 *   dV = P^T dO, dK = scale dS^T Q, dQ = scale dS K,
 * P and dS rounded to bf16 before their products (as in the forward).
 * Two kernels, so that every gradient row is summed by one warp in a
 * fixed order (deterministic; no float atomics): dK/dV per 64-key block
 * of a kv head, walking the group's query heads in order and their
 * queries 64 at a time; dQ per 64-query tile of a head, walking the keys
 * 32 at a time. Both recompute S and dP. */

#define FB_BQ 64 /* queries per step of the dK / dV kernel (32: 11% slower) */
#define FB_BK 32 /* keys per step of the dQ kernel */
#define FA_LOG2E 1.4426950408889634f

/* rows t0 .. t0 + ROWS - 1 of head h in sequence b of a (B, T, H, HD) bf16
 * array (a cache of B slots of T positions) into a shared tile */
template <int HD, int ROWS>
__device__ __forceinline__ void fa_load_rows(__nv_bfloat16 *dst, const __nv_bfloat16 *src, int b, int h, int H,
                                             int T, int t0, int t, int nt) {
    KvMap map = {NULL, 0, 0, (size_t)T * H * HD};
    fa_load_tile<HD, ROWS, __nv_bfloat16, false>(dst, src, map, b, h, H * HD, t0, T, t, nt);
}

template <int HD>
struct FbDims {
    static const int LDS = HD + FA_PAD;
    /* dK/dV kernel: K, V tiles of 64 keys; two stages of Q, dO (FB_BQ rows)
     * and their lse, D */
    static const int KV_TILE = FA_BK * LDS, Q_TILE = FB_BQ * LDS;
    static const int KV_STAGE = 2 * Q_TILE * 2 + 2 * FB_BQ * 4; /* bytes */
    static const size_t KV_SMEM = 2 * KV_TILE * 2 + 2 * KV_STAGE;
    /* dQ kernel: two stages of K, V (FB_BK rows) */
    static const int K_TILE = FB_BK * LDS;
    static const size_t Q_SMEM = 2 * 2 * K_TILE * 2;
};

/* grid (key blocks of 64, KVH, B); warp w owns keys 64 j + 16 w .. + 15 */
template <int HD>
__global__ void __launch_bounds__(FA_WARPS * 32)
    fa_bwd_kv_kernel(float *dk, float *dv, const __nv_bfloat16 *q16, const __nv_bfloat16 *k16,
                     const __nv_bfloat16 *v16, const __nv_bfloat16 *do16, const float *lse, const float *Dd, int T,
                     int NH, int KVH, float sl2, float scale) {
    typedef FbDims<HD> D;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __nv_bfloat16 *sK = (__nv_bfloat16 *)fa_smem, *sV = sK + D::KV_TILE;
    unsigned char *stages = fa_smem + 2 * D::KV_TILE * 2;
    int j = blockIdx.x, kh = blockIdx.y, b = blockIdx.z, G = NH / KVH, k0 = j * FA_BK;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
    int kw = k0 + 16 * w, nqb = (T - k0 + FB_BQ - 1) / FB_BQ, nit = G * nqb;
    fa_load_rows<HD, FA_BK>(sK, k16, b, kh, KVH, T, k0, threadIdx.x, FA_WARPS * 32);
    fa_load_rows<HD, FA_BK>(sV, v16, b, kh, KVH, T, k0, threadIdx.x, FA_WARPS * 32);
    float dK[HD / 8][4], dV[HD / 8][4];
#pragma unroll
    for (int d = 0; d < HD / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) dK[d][e] = dV[d][e] = 0.0f;
    /* stage it: Q and dO rows t0 .. t0 + FB_BQ - 1 of head kh G + g, then lse, D */
#define FB_ISSUE(it)                                                                                                \
    do {                                                                                                             \
        unsigned char *sg = stages + ((it) & 1) * D::KV_STAGE;                                                       \
        int g_ = (it) / nqb, t0_ = k0 + ((it) % nqb) * FB_BQ, h_ = kh * G + g_;                                      \
        __nv_bfloat16 *sq_ = (__nv_bfloat16 *)sg, *so_ = sq_ + D::Q_TILE;                                            \
        float *sl_ = (float *)(so_ + D::Q_TILE), *sd_ = sl_ + FB_BQ;                                                 \
        fa_load_rows<HD, FB_BQ>(sq_, q16, b, h_, NH, T, t0_, threadIdx.x, FA_WARPS * 32);                            \
        fa_load_rows<HD, FB_BQ>(so_, do16, b, h_, NH, T, t0_, threadIdx.x, FA_WARPS * 32);                           \
        if (threadIdx.x < 2 * FB_BQ) {                                                                               \
            int i_ = threadIdx.x % FB_BQ, t_ = t0_ + i_;                                                             \
            const float *src_ = threadIdx.x < FB_BQ ? lse : Dd;                                                      \
            float val_ = t_ < T ? src_[((size_t)b * NH + h_) * T + t_] : 0.0f;                                       \
            (threadIdx.x < FB_BQ ? sl_ : sd_)[i_] = threadIdx.x < FB_BQ ? val_ * FA_LOG2E : val_;                    \
        }                                                                                                            \
    } while (0)
    FB_ISSUE(0);
    fa_commit();
    for (int it = 0; it < nit; it++) {
        if (it + 1 < nit) FB_ISSUE(it + 1);
        fa_commit();
        fa_wait<1>();
        __syncthreads();
        int t0 = k0 + (it % nqb) * FB_BQ;
        if (t0 + FB_BQ - 1 >= kw && kw < T) { /* some query here sees one of the warp's keys */
            unsigned char *sg = stages + (it & 1) * D::KV_STAGE;
            const __nv_bfloat16 *sq = (const __nv_bfloat16 *)sg, *so = sq + D::Q_TILE;
            const float *sl = (const float *)(so + D::Q_TILE), *sd = sl + FB_BQ;
            float s[FB_BQ / 8][4], dp[FB_BQ / 8][4];
#pragma unroll
            for (int n = 0; n < FB_BQ / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
            fa_abt_smem<HD, FB_BQ / 8>(s, sK + 16 * w * D::LDS, sq);  /* S^T = K Q^T */
            fa_abt_smem<HD, FB_BQ / 8>(dp, sV + 16 * w * D::LDS, so); /* dP^T = V dO^T */
            uint32_t pf[FB_BQ / 16][4], sf[FB_BQ / 16][4];
#pragma unroll
            for (int n = 0; n < FB_BQ / 8; n++) {
                float p[4], ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int qi = 8 * n + 2 * tid + (e & 1), t = t0 + qi, key = kw + gid + (e >> 1) * 8;
                    p[e] = key <= t && t < T ? exp2f(s[n][e] * sl2 - sl[qi]) : 0.0f;
                    ds[e] = p[e] * (dp[n][e] - sd[qi]);
                }
                pf[n >> 1][(n & 1) * 2] = fa_pack(p[0], p[1]);
                pf[n >> 1][(n & 1) * 2 + 1] = fa_pack(p[2], p[3]);
                sf[n >> 1][(n & 1) * 2] = fa_pack(ds[0], ds[1]);
                sf[n >> 1][(n & 1) * 2 + 1] = fa_pack(ds[2], ds[3]);
            }
            fa_ab<HD, FB_BQ / 16>(dV, pf, so); /* dV += P^T dO */
            fa_ab<HD, FB_BQ / 16>(dK, sf, sq); /* dK += dS^T Q */
        }
        __syncthreads();
    }
#undef FB_ISSUE
#pragma unroll
    for (int d = 0; d < HD / 8; d++) {
        int ch = 8 * d + 2 * tid;
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            int key = kw + gid + 8 * hf;
            if (key >= T) continue;
            size_t o = (((size_t)b * T + key) * KVH + kh) * HD + ch;
            *(float2 *)(dk + o) = make_float2(dK[d][2 * hf] * scale, dK[d][2 * hf + 1] * scale);
            *(float2 *)(dv + o) = make_float2(dV[d][2 * hf], dV[d][2 * hf + 1]);
        }
    }
}

/* grid (query tiles of 64, NH, B), the longest first; warp w owns queries
 * 64 qt + 16 w .. + 15 */
template <int HD>
__global__ void __launch_bounds__(FA_WARPS * 32)
    fa_bwd_q_kernel(float *dq, const __nv_bfloat16 *q16, const __nv_bfloat16 *k16, const __nv_bfloat16 *v16,
                    const __nv_bfloat16 *do16, const float *lse, const float *Dd, int T, int NH, int KVH, float sl2,
                    float scale) {
    typedef FbDims<HD> D;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)fa_smem;
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kh = h / (NH / KVH);
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tid = lane & 3;
    int tw = qt * FA_WARPS * 16 + 16 * w, t0 = tw + gid, t1 = t0 + 8;
    uint32_t qf[HD / 16][4], of[HD / 16][4];
    const __nv_bfloat16 *qr0 = q16 + (((size_t)b * T + t0) * NH + h) * HD, *qr1 = qr0 + (size_t)8 * NH * HD;
    const __nv_bfloat16 *or0 = do16 + (((size_t)b * T + t0) * NH + h) * HD, *or1 = or0 + (size_t)8 * NH * HD;
#pragma unroll
    for (int c = 0; c < HD / 16; c++) {
        int d = 16 * c + 2 * tid;
        qf[c][0] = t0 < T ? *(const uint32_t *)(qr0 + d) : 0u;
        qf[c][1] = t1 < T ? *(const uint32_t *)(qr1 + d) : 0u;
        qf[c][2] = t0 < T ? *(const uint32_t *)(qr0 + d + 8) : 0u;
        qf[c][3] = t1 < T ? *(const uint32_t *)(qr1 + d + 8) : 0u;
        of[c][0] = t0 < T ? *(const uint32_t *)(or0 + d) : 0u;
        of[c][1] = t1 < T ? *(const uint32_t *)(or1 + d) : 0u;
        of[c][2] = t0 < T ? *(const uint32_t *)(or0 + d + 8) : 0u;
        of[c][3] = t1 < T ? *(const uint32_t *)(or1 + d + 8) : 0u;
    }
    size_t li = ((size_t)b * NH + h) * T;
    float L0 = t0 < T ? lse[li + t0] * FA_LOG2E : 0.0f, L1 = t1 < T ? lse[li + t1] * FA_LOG2E : 0.0f;
    float D0 = t0 < T ? Dd[li + t0] : 0.0f, D1 = t1 < T ? Dd[li + t1] : 0.0f;
    float dQ[HD / 8][4];
#pragma unroll
    for (int d = 0; d < HD / 8; d++) dQ[d][0] = dQ[d][1] = dQ[d][2] = dQ[d][3] = 0.0f;
    int last = min(qt * FA_WARPS * 16 + FA_WARPS * 16, T) - 1, nb = last / FB_BK + 1;
    fa_load_rows<HD, FB_BK>(sm, k16, b, kh, KVH, T, 0, threadIdx.x, FA_WARPS * 32);
    fa_load_rows<HD, FB_BK>(sm + D::K_TILE, v16, b, kh, KVH, T, 0, threadIdx.x, FA_WARPS * 32);
    fa_commit();
    for (int i = 0; i < nb; i++) {
        if (i + 1 < nb) {
            __nv_bfloat16 *st = sm + ((i + 1) & 1) * 2 * D::K_TILE;
            fa_load_rows<HD, FB_BK>(st, k16, b, kh, KVH, T, (i + 1) * FB_BK, threadIdx.x, FA_WARPS * 32);
            fa_load_rows<HD, FB_BK>(st + D::K_TILE, v16, b, kh, KVH, T, (i + 1) * FB_BK, threadIdx.x, FA_WARPS * 32);
        }
        fa_commit();
        fa_wait<1>();
        __syncthreads();
        int key0 = i * FB_BK;
        if (key0 <= tw + 15 && tw < T) { /* some key here is seen by one of the warp's queries */
            const __nv_bfloat16 *sK = sm + (i & 1) * 2 * D::K_TILE, *sV = sK + D::K_TILE;
            float s[FB_BK / 8][4], dp[FB_BK / 8][4];
#pragma unroll
            for (int n = 0; n < FB_BK / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
            fa_abt_reg<HD, FB_BK / 8>(s, qf, sK);  /* S = Q K^T */
            fa_abt_reg<HD, FB_BK / 8>(dp, of, sV); /* dP = dO V^T */
            uint32_t sf[FB_BK / 16][4];
#pragma unroll
            for (int n = 0; n < FB_BK / 8; n++) {
                float ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int key = key0 + 8 * n + 2 * tid + (e & 1), t = e < 2 ? t0 : t1;
                    float p = key <= t && t < T ? exp2f(s[n][e] * sl2 - (e < 2 ? L0 : L1)) : 0.0f;
                    ds[e] = p * (dp[n][e] - (e < 2 ? D0 : D1));
                }
                sf[n >> 1][(n & 1) * 2] = fa_pack(ds[0], ds[1]);
                sf[n >> 1][(n & 1) * 2 + 1] = fa_pack(ds[2], ds[3]);
            }
            fa_ab<HD, FB_BK / 16>(dQ, sf, sK); /* dQ += dS K */
        }
        __syncthreads();
    }
#pragma unroll
    for (int d = 0; d < HD / 8; d++) {
        int ch = 8 * d + 2 * tid;
        if (t0 < T)
            *(float2 *)(dq + (((size_t)b * T + t0) * NH + h) * HD + ch) = make_float2(dQ[d][0] * scale, dQ[d][1] * scale);
        if (t1 < T)
            *(float2 *)(dq + (((size_t)b * T + t1) * NH + h) * HD + ch) = make_float2(dQ[d][2] * scale, dQ[d][3] * scale);
    }
}

template <int HD>
static void fa_backward_launch(float *dq, float *dk, float *dv, const __nv_bfloat16 *q16, const __nv_bfloat16 *k16,
                               const __nv_bfloat16 *v16, const __nv_bfloat16 *do16, const float *lse, const float *Dd,
                               int B, int T, int NH, int KVH, float sl2, float scale) {
    typedef FbDims<HD> D;
    if (D::KV_SMEM > 48 * 1024)
        cudaFuncSetAttribute(fa_bwd_kv_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)D::KV_SMEM);
    if (D::Q_SMEM > 48 * 1024)
        cudaFuncSetAttribute(fa_bwd_q_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)D::Q_SMEM);
    int tiles = (T + FA_BK - 1) / FA_BK;
    fa_bwd_kv_kernel<HD><<<dim3(tiles, KVH, B), FA_WARPS * 32, D::KV_SMEM, cuda_stream()>>>(
        dk, dv, q16, k16, v16, do16, lse, Dd, T, NH, KVH, sl2, scale);
    cuda_after_launch("attention_backward dk dv");
    fa_bwd_q_kernel<HD><<<dim3(tiles, NH, B), FA_WARPS * 32, D::Q_SMEM, cuda_stream()>>>(
        dq, q16, k16, v16, do16, lse, Dd, T, NH, KVH, sl2, scale);
    cuda_after_launch("attention_backward dq");
}

int cuda_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                        const float *q, const float *k, const float *v, int B, int T, int NH, int KVH, int HD) {
    if (!cuda_flash_takes(NH, KVH, HD) || B > 65535 || NH > 65535 || T <= 0) return -1;
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * KVH * HD, nd = (size_t)B * NH * T;
    size_t al = 128; /* elements: keeps each array 256-byte aligned */
    size_t oq = 0, ok = oq + (nq + al - 1) / al * al, ov = ok + (nk + al - 1) / al * al,
           oo = ov + (nk + al - 1) / al * al, od = oo + (nq + al - 1) / al * al;
    char *base = (char *)cuda_scratch(od * sizeof(__nv_bfloat16) + nd * sizeof(float));
    if (!base) return -1; /* noted */
    __nv_bfloat16 *h = (__nv_bfloat16 *)base;
    float *Dd = (float *)(base + od * sizeof(__nv_bfloat16));
    cuda_attention_rowdot(Dd, dout, out, (size_t)B * T * NH, B, T, NH, HD);
    cuda_to_bf16(h + oq, q, nq);
    cuda_to_bf16(h + ok, k, nk);
    cuda_to_bf16(h + ov, v, nk);
    cuda_to_bf16(h + oo, dout, nq);
    float sl2 = FA_LOG2E / sqrtf((float)HD), scale = 1.0f / sqrtf((float)HD);
    switch (HD) {
    case 32: fa_backward_launch<32>(dq, dk, dv, h + oq, h + ok, h + ov, h + oo, lse, Dd, B, T, NH, KVH, sl2, scale); break;
    case 64: fa_backward_launch<64>(dq, dk, dv, h + oq, h + ok, h + ov, h + oo, lse, Dd, B, T, NH, KVH, sl2, scale); break;
    default: fa_backward_launch<128>(dq, dk, dv, h + oq, h + ok, h + ov, h + oo, lse, Dd, B, T, NH, KVH, sl2, scale); break;
    }
    return 0;
}
