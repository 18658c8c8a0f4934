/* Shared by the CUDA backend's .cu files (never by C files): the sticky
 * error record, the cuBLAS handle, the scratch buffer, launch helpers and
 * the op entry points that backend_cuda.cu puts into the table. */
#ifndef R1C_BACKEND_CUDA_COMMON_CUH
#define R1C_BACKEND_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
#include "backend/handoff.h"
}

/* Ops return void (the table's contract), so the first failure is kept
 * here with the op's name and handed out by cuda_check(). */
void cuda_note(const char *op, cudaError_t e);
void cuda_note_blas(const char *op, cublasStatus_t s);
void cuda_note_msg(const char *op, const char *msg);
/* After a kernel launch: records a launch error; with R1C_CUDA_SYNC=1 also
 * waits, so an execution error names the op that caused it. */
void cuda_after_launch(const char *op);

/* KV-cache element access: fp32, or bf16 (cuda_kv_bf16) */
__device__ __forceinline__ float kv_load(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float kv_load(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void kv_store(float *p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void kv_store(__nv_bfloat16 *p, size_t i, float v) { p[i] = __float2bfloat16_rn(v); }
/* Do the KV caches hold bf16 now (bf16 precision, not switched off)? */
int cuda_kv_bf16(void);

/* Where a KV cache's rows live. Contiguous (table NULL): key j of slot s
 * at element s stride + j KD. Paged: slot s owns blocks
 * table[s max_blocks + i] of `block` positions, key j at position j % block
 * of block table[s max_blocks + j / block]. */
struct KvMap {
    const int32_t *table;
    int max_blocks, block;
    size_t stride;
};
/* paged: the row's first element */
__device__ __forceinline__ size_t kv_paged_row(const KvMap &m, int slot, int key, int KD) {
    return ((size_t)m.table[(size_t)slot * m.max_blocks + key / m.block] * m.block + key % m.block) * KD;
}
__device__ __forceinline__ size_t kv_row(const KvMap &m, int slot, int key, int KD) {
    return m.table ? kv_paged_row(m, slot, key, KD) : (size_t)slot * m.stride + (size_t)key * KD;
}
/* the positions a slot can hold */
static inline int kv_map_len(const KvMap &m, int KD) {
    return m.table ? m.max_blocks * m.block : (int)(m.stride / (size_t)KD);
}
size_t cu_kv_elem_bytes(void);

/* Counts kernel launches and writes through the table's memory ops (see
 * cuda_act16_produced). */
extern unsigned long long g_cuda_seq;

/* bf16 hand-off of a GEMM input (cuda_bf16.cu). An op whose fp32 output
 * usually feeds the next GEMM (RMSNorm, SwiGLU, attention) also writes it
 * rounded to bf16 into cuda_act16_target(n) (NULL: don't; fp32 precision,
 * or no memory), then calls cuda_act16_produced(out, n) after its launch.
 * When the very next op is a GEMM reading exactly those n floats, it takes
 * the bf16 copy instead of rounding them itself: the same values, one
 * kernel fewer. Any launch or write in between voids the hand-off. */
__nv_bfloat16 *cuda_act16_target(size_t n);
void cuda_act16_produced(const float *out, size_t n);
/* The same in a given slot: slot 0 is the one above; an op with two
 * outputs for GEMMs (swiglu_backward_gemm) puts the second in slot 1.
 * A slot also stays valid across GEMMs that do not write over its range. */
#define ACT16_SLOTS HANDOFF_SLOTS
__nv_bfloat16 *cuda_act16_target_in(int slot, size_t n);
void cuda_act16_produced_in(int slot, const float *out, size_t n);
/* An op that wrote an output's bf16 copy only (swiglu_*_gemm) marks its
 * fp32 range unwritten; a GEMM that finds no bf16 copy of an unwritten
 * operand reports an error rather than read it. Writes through the
 * table (memory ops, GEMM outputs, full-precision producers) mark ranges
 * written again; a free forgets every mark. */
void cuda_fp32_unwritten(const float *p, size_t n);
void cuda_fp32_written(const void *p, size_t bytes);
void cuda_fp32_unwritten_forget_all(void);
int cuda_fp32_is_unwritten(const float *p, size_t n);
/* Does the next GEMM reading A (n floats from A) as its first operand get
 * the bf16 copy the last GEMM used for it (no launch or write since)? */
int cuda_bf16_kept(const float *A, size_t n);

cublasHandle_t cuda_blas(void);
/* The stream every op runs on (blocking, created at init). */
cudaStream_t cuda_stream(void);
/* R1C_CUDA_SYNC=1: every launch is waited for. */
int cuda_sync_mode(void);
/* CUDA graphs of fixed op sequences (cuda_graph.cu): the table's
 * graph_begin / graph_end, and invalidation, called wherever device
 * memory a recorded graph could use is freed or reallocated. */
int cu_graph_begin(const uint64_t *key, int n_words, int rows);
int cu_graph_end(void);
void cuda_graph_invalidate(void);
int cuda_graph_recording(void);
/* The sticky error record: set since the last cuda_check?; forget it. */
int cuda_error_pending(void);
void cuda_error_clear(void);
/* Refreshes every stale bf16 weight copy now (before a graph replays
 * GEMMs that read them without the host-side check). */
void cuda_shadow_refresh_all(void);
/* After a cudaMalloc: updates the peak that cuda_mem_info reports. */
void cuda_mem_sample(void);
/* A grow-only device buffer: cuda_buf_grow returns at least `bytes` (1/8
 * slack on growth; growing frees the old one, which waits for the ops
 * using it), NULL on failure (noted as `what`); cuda_buf_free releases it. */
typedef struct CudaBuf {
    void *p;
    size_t bytes;
} CudaBuf;
void *cuda_buf_grow(CudaBuf *b, size_t bytes, const char *what);
void cuda_buf_free(CudaBuf *b);
/* Grow-only device scratch shared by the ops (they run in stream order, so
 * one op's use ends before the next begins). NULL on failure (noted). */
void *cuda_scratch(size_t bytes);
/* Frees cu_sumsq's partials buffer (cuda_trim calls it). */
void cuda_sumsq_trim(void);

/* Row-major C(M,N) = alpha op(A) op(B) + beta C through column-major
 * cuBLAS: computes C^T = op(B)^T op(A)^T. ta/tb: 0 or 1. fp32 operands and
 * result; in bf16 precision the operands are rounded to bf16 (weights from
 * their shadow copy) and multiplied on the tensor cores (cuda_bf16.cu). */
void cuda_sgemm(const char *op, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* Batch-invariant bf16 GEMM (cuda_gemm_lt.cu): row-major C(M,N) = alpha
 * A op(B) + beta C, A (M x K, lda) and B (tb ? N x K : K x N, ldb) bf16
 * device pointers, C fp32, fp32 accumulation, through one cuBLASLt
 * algorithm per shape that does not depend on M. 0: done (a failure is
 * noted for cuda_check); -1: no invariant algorithm for this call, nothing
 * was launched: run the ordinary GEMM. cuda_gemm_lt_trim frees its
 * workspace (allocated again on demand). */
int cuda_gemm_bf16_invariant(const char *op, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                             const void *B, int ldb, float beta, float *C, int ldc);
void cuda_gemm_lt_trim(void);

/* The same over operands already in bf16, strided-batched. */
void cuda_gemm_bf16_batched(const char *op, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                            long long sa, const void *B, int ldb, long long sb, float beta, float *C, int ldc,
                            long long sc, int batch);
/* dst(n) = bf16(src(n)), round to nearest even; dst is a __nv_bfloat16 *. */
void cuda_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n);
/* Weight shadows (cuda_bf16.cu): an op that writes [dst, dst+bytes) marks
 * any bf16 copy overlapping it stale; a freed buffer loses its copy. */
void cuda_shadow_touch(const void *dst, size_t bytes);
void cuda_shadow_forget(const void *p);
void cu_weights_hint(const float *p, size_t n);
const float *cu_weights_freeze(const float *p, size_t n);
/* Training attention in bf16 (cuda_attention_gemm.cu): tensor-core GEMMs
 * over query blocks; the op entry points dispatch to them in bf16. */
void cuda_attention_forward_gemm(float *out, float *lse, const float *q, const float *k, const float *v,
                                 const int32_t *seg, int B, int T, int NH, int KVH, int HD);
void cuda_attention_backward_gemm(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                  const float *lse, const float *q, const float *k, const float *v, const int32_t *seg,
                                  int B, int T, int NH, int KVH, int HD);
/* bf16 attention of N query rows q(N,NH,HD) against a cache laid out as
 * attention_decode's (cuda_decode_split.cu), split over the keys; lse_out
 * (B, NH, T with row n = b T + t) or NULL; kv_bf16: the caches hold bf16
 * (else fp32). 0: issued; -1: a shape it does
 * not take (more than 8 query heads per kv head, HD over 256): nothing
 * ran; -2: no scratch (noted, or a graph recording voided): nothing ran.
 * Decode and the batch-invariant training forward both run it. */
int cuda_decode_split(float *out, const float *q, const void *k_cache, const void *v_cache, int kv_bf16,
                      const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, int HD,
                      float *lse_out, int T, const char *op);
void cuda_decode_split_trim(void);
/* Tensor-core attention with one per-row arithmetic for training and
 * decoding (cuda_flash.cu): bf16 precision, head sizes 32 / 64 / 128, up
 * to 16 query heads per kv head. cuda_flash_takes says whether a shape
 * runs there (on both sides, or on neither); the others return -1 for a
 * shape they do not take (nothing launched), 0 when launched. */
int cuda_flash_takes(int NH, int KVH, int HD);
int cuda_flash_decode(float *out, const float *q, const void *k_cache, const void *v_cache, int kv_bf16,
                      const int32_t *slot, const int32_t *len, KvMap map, int N, int NH, int KVH, int HD,
                      const char *op);
int cuda_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T, int NH,
                       int KVH, int HD);
int cuda_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                        const float *q, const float *k, const float *v, int B, int T, int NH, int KVH, int HD);
/* D(B,NH,T) = rowsum(dout * out) over rows = B*T*NH rows of HD. */
void cuda_attention_rowdot(float *D, const float *dout, const float *out, size_t rows, int B, int T, int NH, int HD);
/* Frees the conversion buffer and the shadow copies (rebuilt on demand). */
extern "C" void cuda_bf16_trim(void);

/* Channels per lane of the attention kernels (HD / 32 rounded up to a
 * template size: 1, 2, 4 or 8); 0 if HD is too big. */
static inline int cuda_att_nr(int HD) {
    int nr = (HD + 31) / 32;
    return nr <= 1 ? 1 : nr <= 2 ? 2 : nr <= 4 ? 4 : nr <= 8 ? 8 : 0;
}

/* Row-wise launches: rows on grid.y (kernels loop past 65535 rows), `cols`
 * threads' worth of columns on grid.x in blocks of 256, so that no thread
 * divides an index by a row length. */
static inline dim3 cuda_rows_grid(int rows, int cols) {
    return dim3((unsigned)((cols + 255) / 256), (unsigned)(rows < 65535 ? rows : 65535));
}

/* Every pointer 16-byte aligned (NULL counts as aligned): float4 access. */
static inline int cuda_aligned16(const void *a, const void *b, const void *c, const void *d) {
    return ((((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) & 15) == 0);
}

static inline unsigned cuda_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535u * 16u ? 65535u * 16u : (b ? b : 1)); /* grid-stride loops cover the rest */
}

/* dst(C) += sum_n a(n,c) * (b ? b(n,c) : 1) * (rs ? rs(n) : 1), summed in
 * double over slices of rows, then the slices in order: deterministic.
 * cuda_colsum_trim frees its partial sums. */
void cuda_colsum(const char *op, float *dst, const float *a, const float *b, const float *rs, int N, int C);
void cuda_colsum_trim(void);
/* Frees embedding_backward's sort buffers. */
void cuda_embedding_trim(void);

/* Op entry points (signatures as in backend.h). */
void cu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K, int O);
void cu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                        int N, int K, int O, int accumulate_dinp);
void cu_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
void cu_add_rmsnorm_forward(float *x, const float *dx, float *out, float *rstd, const float *w, int N, int C,
                            float eps);
void cu_qkv_rope_cache(float *q, const float *qkv, const float *bias, const int32_t *pos, const float *cos_t,
                       const float *sin_t, float *k_cache, float *v_cache, const int32_t *slot, size_t cache_stride,
                       int N, int NH, int KVH, int HD);
void cu_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                         int N, int C);
void cu_rope_apply(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H, int HD,
                   int inverse);
void cu_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                          int NH, int KVH, int HD);
void cu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, int B, int T, int NH, int KVH, int HD);
void cu_attention_forward_seg(float *out, float *lse, const float *q, const float *k, const float *v,
                              const int32_t *seg_start, int B, int T, int NH, int KVH, int HD);
void cu_attention_backward_seg(float *dq, float *dk, float *dv, const float *dout, const float *out,
                               const float *lse, const float *q, const float *k, const float *v,
                               const int32_t *seg_start, int B, int T, int NH, int KVH, int HD);
void cu_attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache,
                         const int32_t *slot, const int32_t *len, size_t cache_stride, int N, int NH, int KVH,
                         int HD);
void cu_attention_decode_paged(float *out, const float *q, const float *k_pool, const float *v_pool,
                               const int32_t *table, int max_blocks, int block, const int32_t *slot,
                               const int32_t *len, int N, int NH, int KVH, int HD);
void cu_kv_cache_write(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slot,
                       const int32_t *pos, size_t cache_stride, int N, int KD);
void cu_qkv_split(float *q, float *k, float *v, const float *qkv, int N, int QD, int KD);
void cu_qkv_merge(float *qkv, const float *q, const float *k, const float *v, int N, int QD, int KD);
void cu_swiglu_forward(float *h, const float *gu, int N, int K);
void cu_swiglu_backward(float *dgu, const float *dh, const float *gu, int N, int K);
void cu_swiglu_forward_gemm(float *h, const float *gu, int N, int K);
void cu_swiglu_backward_gemm(float *dgu, float *h, const float *dh, const float *gu, int N, int K);
void cu_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C);
void cu_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);
void cu_add_inplace(float *y, const float *x, size_t n);
void cu_lm_head_logprob_forward(float *logp, float *ent, float *logits_out, const float *x, const float *w,
                                const int32_t *target, int N, int C, int V, float temp);
void cu_lm_head_logprob_backward(float *dx, float *dw, const float *dlogp, const float *x, const float *w,
                                 const float *logits, const int32_t *target, int N, int C, int V, float temp);
double cu_sumsq(const float *x, size_t n);
void cu_scale(float *x, float s, size_t n);
void cu_sample(int32_t *tok, float *logp, const float *logits, const double *u, int N, int V, float temperature,
               int top_k, float top_p, float min_p);
void cu_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                     float eps, float wd, int t, float gscale);

#endif
