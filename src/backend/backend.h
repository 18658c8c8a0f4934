/* The op table every backend implements. Model code (src/model) is written
 * once against it; the CPU backend (backend/cpu) is the fp32 reference that
 * faster backends are checked against, op by op.
 *
 * Conventions: row-major; N = rows (tokens), shapes in comments. Buffers are
 * backend memory obtained from `alloc`. Backward ops ACCUMULATE into
 * parameter gradients (so micro-batches add up) and into input gradients
 * only where the comment says so.
 *
 * Memory: every pointer an op takes lives where that backend's `alloc`
 * puts it. For the CPU that is host memory. For the CUDA backend
 * (backend/cuda/backend_cuda.h) it is device memory for ALL of them: the
 * float buffers, the RoPE cos/sin tables and the int arrays (ids, pos,
 * target, slot, len) too; the caller uploads ints with cuda_upload. CUDA
 * ops run asynchronously in one stream; only sumsq returns a value (it
 * waits), and cuda_check waits and reports the first failure. */
#ifndef R1C_BACKEND_BACKEND_H
#define R1C_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct Backend {
    const char *name;

    void *(*alloc)(size_t bytes); /* zeroed */
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);

    /* out(N,O) = inp(N,K) @ w(O,K)^T (+ bias(O)) */
    void (*matmul_forward)(float *out, const float *inp, const float *w, const float *bias, int N, int K, int O);
    /* dinp(N,K) (+)= dout @ w  (accumulate_dinp selects += over =);
     * dw(O,K) += dout^T @ inp; dbias(O) += colsum(dout). dinp/dw/dbias may be NULL. */
    void (*matmul_backward)(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                            const float *w, int N, int K, int O, int accumulate_dinp);

    /* out(N,C) = x * rsqrt(mean(x^2) + eps) * w; rstd(N) saved for backward */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
    /* dx(N,C) += ...; dw(C) += ... */
    void (*rmsnorm_backward)(float *dx, float *dw, const float *dout, const float *x, const float *w,
                             const float *rstd, int N, int C);

    /* x(N, H, HD) rotated in place, rotate-half layout; pos(N) per row;
     * cos/sin tables (max_pos, HD/2). inverse=1 applies the transpose
     * (used by backward). */
    void (*rope_apply)(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H, int HD,
                       int inverse);

    /* Causal self-attention over B sequences of length T, GQA.
     * q(B,T,NH,HD) k,v(B,T,KVH,HD) -> out(B,T,NH,HD), lse(B,NH,T) saved. */
    void (*attention_forward)(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T,
                              int NH, int KVH, int HD);
    /* dq, dk, dv overwritten (same shapes as q, k, v); recomputes scores
     * from lse, never storing T x T. */
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, const float *out,
                               const float *lse, const float *q, const float *k, const float *v, int B, int T,
                               int NH, int KVH, int HD);
    /* Packed rows (several sequences in one row): as attention_forward /
     * attention_backward, but token n = (b, t) only sees keys j in
     * [seg_start[n], t] of its row, so packed sequences never see each
     * other. seg_start (B*T) holds row positions. NULL in a backend that
     * does not support packing (callers must check). */
    void (*attention_forward_seg)(float *out, float *lse, const float *q, const float *k, const float *v,
                                  const int32_t *seg_start, int B, int T, int NH, int KVH, int HD);
    void (*attention_backward_seg)(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                   const float *lse, const float *q, const float *k, const float *v,
                                   const int32_t *seg_start, int B, int T, int NH, int KVH, int HD);
    /* One query row per token against its sequence's KV cache: q(N,NH,HD);
     * token n reads cache slot slot[n], rows [0, len[n]) of (KVH, HD), each
     * slot cache_stride floats apart; out(N,NH,HD). Prefill and decode both
     * use it (prefill: len = position + 1 after the row was written). */
    void (*attention_decode)(float *out, const float *q, const float *k_cache, const float *v_cache,
                             const int32_t *slot, const int32_t *len, size_t cache_stride, int N, int NH, int KVH,
                             int HD);
    /* Optional (NULL: the backend has no paged caches): attention_decode
     * over paged caches. A cache is a pool of blocks of `block` positions
     * ((KVH, HD) each, position p of block b at element (b block + p) KD);
     * the sequence token n belongs to owns the blocks
     * table[slot[n] max_blocks + i], i = 0, 1, ..., for its positions
     * [i block, (i + 1) block). Same arithmetic, in the same order, as
     * attention_decode: a paged cache gives the contiguous cache's bits. */
    void (*attention_decode_paged)(float *out, const float *q, const float *k_pool, const float *v_pool,
                                   const int32_t *table, int max_blocks, int block, const int32_t *slot,
                                   const int32_t *len, int N, int NH, int KVH, int HD);
    /* Writes k(N,KVH*HD), v(N,KVH*HD) rows into the caches at (slot[n], pos[n]). */
    void (*kv_cache_write)(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slot,
                           const int32_t *pos, size_t cache_stride, int N, int KD);

    /* qkv(N, QD+2KD) -> q(N,QD), k(N,KD), v(N,KD) and back (for gradients). */
    void (*qkv_split)(float *q, float *k, float *v, const float *qkv, int N, int QD, int KD);
    void (*qkv_merge)(float *qkv, const float *q, const float *k, const float *v, int N, int QD, int KD);

    /* gu(N, 2K) = [gate | up] per row -> h(N,K) = silu(gate) * up */
    void (*swiglu_forward)(float *h, const float *gu, int N, int K);
    /* dgu(N,2K) = ... (overwritten) */
    void (*swiglu_backward)(float *dgu, const float *dh, const float *gu, int N, int K);

    /* out(N,C) = table[ids[n]] */
    void (*embedding_forward)(float *out, const int32_t *ids, const float *table, int N, int C);
    /* dtable(V,C) += scatter of dout(N,C) */
    void (*embedding_backward)(float *dtable, const float *dout, const int32_t *ids, int N, int C);

    /* y(n) += x(n) */
    void (*add_inplace)(float *y, const float *x, size_t n);

    /* Fused LM head + log-softmax + gather + entropy, chunked over rows so
     * the (N, V) logits never exist at once unless logits_out is given.
     * x(N,C) final hidden, w(V,C). For each row n with target[n] >= 0:
     * logp[n] = log_softmax(x_n w^T / temp)[target[n]], ent[n] = entropy of
     * that distribution. Rows with target < 0 get logp = ent = 0.
     * logits_out (N,V) optional: raw logits (before temperature). */
    void (*lm_head_logprob_forward)(float *logp, float *ent, float *logits_out, const float *x, const float *w,
                                    const int32_t *target, int N, int C, int V, float temp);
    /* Given dlogp(N) (gradient of the loss w.r.t. each logp), dx(N,C) =
     * (overwritten) and dw(V,C) +=. logits (N,V): the forward's logits_out
     * when it was kept, else NULL and they are recomputed chunk by chunk. */
    void (*lm_head_logprob_backward)(float *dx, float *dw, const float *dlogp, const float *x, const float *w,
                                     const float *logits, const int32_t *target, int N, int C, int V, float temp);

    /* sum of squares in double (for the global gradient norm) */
    double (*sumsq)(const float *x, size_t n);
    void (*scale)(float *x, float s, size_t n);
    /* AdamW (torch semantics): p *= 1 - lr*wd; m,v moments; p -= lr * mhat /
     * (sqrt(vhat) + eps); step t starts at 1. The gradient is g * gscale
     * (gscale 1: g as is), exactly what scale(g, gscale) before the update
     * would give, without the pass over g (gradient clipping). */
    void (*adamw_update)(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                         float beta2, float eps, float wd, int t, float gscale);

    /* Host <-> backend memory, synchronous: when they return the host
     * buffer may be reused (upload) or read (download). The model layer
     * moves weights, token ids and results through these and nothing else
     * touches backend memory from the host. CPU: memcpy. */
    /* Optional (NULL on the CPU, whose callers sample on the host with
     * gen/sampler.c): one token per row of logits(N,V), with the CPU
     * sampler's semantics given the same uniform u(N) in [0,1) per row:
     * temperature <= 0 greedy; top_k 0 / top_p 1 / min_p 0 are off.
     * tok(N), logp(N) (log-prob under softmax(logits/T) before filtering);
     * all five arrays in backend memory. */
    void (*sample)(int32_t *tok, float *logp, const float *logits, const double *u, int N, int V,
                   float temperature, int top_k, float top_p, float min_p);
    /* Optional (NULL on the CPU): free and total bytes of the backend's
     * memory, for memory planning (train/memplan.h). */
    void (*mem_info)(size_t *free_bytes, size_t *total_bytes);
    /* Optional (NULL on the CPU): [p, p+n) holds weights that GEMMs will
     * read many times (the model's parameter buffer), so the backend may
     * keep a lower-precision copy of it, refreshed after writes. n = 0
     * forgets p. */
    void (*weights_hint)(const float *p, size_t n);
    /* Optional (NULL on the CPU): weights that will only be read by GEMMs
     * from now on (a frozen reference model). Makes a read-only
     * lower-precision copy of the n floats at p and returns a handle K
     * standing for it: K + i may be passed as the weight operand of
     * matmul_forward and the lm_head ops wherever p + i was, for the same
     * result as p + i gives under weights_hint; no other op may read
     * through K. The caller may then free p. NULL: not supported in this
     * mode (keep p). weights_hint(K, 0) releases the copy. */
    const float *(*weights_freeze)(const float *p, size_t n);
    /* Optional (NULL on the CPU): replaying a fixed sequence of ops (CUDA
     * graphs: one launch instead of hundreds). key (n_words <= 8 words)
     * names the sequence the caller is about to issue (rows: the batch it
     * works on; a backend may decline large ones): the same key must
     * mean the same ops on the same buffers with the same sizes (the
     * buffers' contents may differ). graph_begin returns 1 when it has
     * just replayed that sequence (issue nothing), 0 when it started
     * recording it (issue the ops, which do not run yet, then call
     * graph_end), -1 otherwise (issue the ops as usual). graph_end: 0 when
     * the recorded ops have been run; -1 when the recording failed and
     * nothing ran: issue the ops again. */
    int (*graph_begin)(const uint64_t *key, int n_words, int rows);
    int (*graph_end)(void);

    void (*upload)(void *dst_backend, const void *src_host, size_t bytes);
    void (*download)(void *dst_host, const void *src_backend, size_t bytes);

    /* Fused forms of op sequences the decode step runs, fewer kernels for
     * the same bits. Optional (NULL on the CPU: the caller runs the
     * sequence op by op).
     * add_rmsnorm_forward: add_inplace(x, dx, N*C) then
     * rmsnorm_forward(out, rstd, x, w, N, C, eps). */
    void (*add_rmsnorm_forward)(float *x, const float *dx, float *out, float *rstd, const float *w, int N, int C,
                                float eps);
    /* qkv_rope_cache: qkv(N, QD+2KD) plus bias(QD+2KD) (NULL: none), as
     * matmul_forward's bias adds it, then qkv_split, rope_apply on q and
     * on k at pos[n], and kv_cache_write of k and v at (slot[n], pos[n]);
     * q(N, NH*HD) is written, k and v only into the caches. */
    void (*qkv_rope_cache)(float *q, const float *qkv, const float *bias, const int32_t *pos, const float *cos_t,
                           const float *sin_t, float *k_cache, float *v_cache, const int32_t *slot,
                           size_t cache_stride, int N, int NH, int KVH, int HD);
    /* Optional (NULL: 4, fp32): bytes per element of the KV caches that
     * kv_cache_write, qkv_rope_cache and attention_decode read and write,
     * asked when a cache is created and fixed for its life. The CUDA
     * backend can keep them in bf16 (2) in bf16 precision, where its
     * decode attention rounds K and V to bf16 anyway: the same results
     * from half the bytes (the default; R1C_CUDA_KV_BF16=0 keeps fp32, backend_cuda.h). The caches stay `float *` in this table (their memory is
     * opaque to the caller); cache_stride and the (slot, position)
     * offsets count elements whatever their size. */
    size_t (*kv_elem_bytes)(void);

    /* Optional (NULL: the caller runs swiglu_forward / swiglu_backward):
     * SwiGLU for a caller that reads its outputs only as GEMM operands, so
     * that a backend whose GEMMs round their operands to bf16 may keep
     * them in bf16 only and never write their fp32 values (a GEMM reading
     * one finds the copy; a GEMM that would have to read the fp32 values
     * instead reports an error).
     * swiglu_forward_gemm: as swiglu_forward; h is then read only as the
     * input of the matmul_forward that comes next.
     * swiglu_backward_gemm: as swiglu_backward, and h(N,K) recomputed from
     * gu with swiglu_forward's arithmetic (the same bits). Afterwards only
     * GEMMs may run until dgu has been read as the dout of a
     * matmul_backward (dbias NULL) and h as the inp of one (for dw). */
    void (*swiglu_forward_gemm)(float *h, const float *gu, int N, int K);
    void (*swiglu_backward_gemm)(float *dgu, float *h, const float *dh, const float *gu, int N, int K);
} Backend;

const Backend *backend_cpu(void);

#endif
