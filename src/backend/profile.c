/* Op timing wrapper (see profile.h); the wrappers are mechanical. */
#include "base/clock.h"
#include "backend/profile.h"

#include <string.h>
#include <time.h>

static const Backend *g_inner;
static Backend g_prof;
enum { N_OPS = 32 };
static const char *OP_NAMES[N_OPS] = {"alloc", "free", "zero", "copy", "matmul_forward", "matmul_backward", "rmsnorm_forward", "rmsnorm_backward", "rope_apply", "attention_forward", "attention_backward", "attention_decode", "kv_cache_write", "qkv_split", "qkv_merge", "swiglu_forward", "swiglu_backward", "embedding_forward", "embedding_backward", "add_inplace", "lm_head_logprob_forward", "lm_head_logprob_backward", "sumsq", "scale", "adamw_update", "upload", "download", "add_rmsnorm_forward", "qkv_rope_cache", "attention_decode_paged", "swiglu_forward_gemm", "swiglu_backward_gemm"};
static double g_sec[N_OPS];
static long g_calls[N_OPS];

static double now_s(void) { return clock_seconds(); }

static void * p_alloc(size_t bytes) {
    double t0 = now_s();
    void * r = g_inner->alloc(bytes);
    g_sec[0] += now_s() - t0, g_calls[0]++;
    return r;
}
static void p_free(void *p) {
    double t0 = now_s();
    g_inner->free(p);
    g_sec[1] += now_s() - t0, g_calls[1]++;
}
static void p_zero(void *p, size_t bytes) {
    double t0 = now_s();
    g_inner->zero(p, bytes);
    g_sec[2] += now_s() - t0, g_calls[2]++;
}
static void p_copy(void *dst, const void *src, size_t bytes) {
    double t0 = now_s();
    g_inner->copy(dst, src, bytes);
    g_sec[3] += now_s() - t0, g_calls[3]++;
}
static void p_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int K, int O) {
    double t0 = now_s();
    g_inner->matmul_forward(out, inp, w, bias, N, K, O);
    g_sec[4] += now_s() - t0, g_calls[4]++;
}
static void p_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int N, int K, int O, int accumulate_dinp) {
    double t0 = now_s();
    g_inner->matmul_backward(dinp, dw, dbias, dout, inp, w, N, K, O, accumulate_dinp);
    g_sec[5] += now_s() - t0, g_calls[5]++;
}
static void p_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps) {
    double t0 = now_s();
    g_inner->rmsnorm_forward(out, rstd, x, w, N, C, eps);
    g_sec[6] += now_s() - t0, g_calls[6]++;
}
static void p_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd, int N, int C) {
    double t0 = now_s();
    g_inner->rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
    g_sec[7] += now_s() - t0, g_calls[7]++;
}
static void p_rope_apply(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H, int HD, int inverse) {
    double t0 = now_s();
    g_inner->rope_apply(x, pos, cos_t, sin_t, N, H, HD, inverse);
    g_sec[8] += now_s() - t0, g_calls[8]++;
}
static void p_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int B, int T, int NH, int KVH, int HD) {
    double t0 = now_s();
    g_inner->attention_forward(out, lse, q, k, v, B, T, NH, KVH, HD);
    g_sec[9] += now_s() - t0, g_calls[9]++;
}
static void p_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse, const float *q, const float *k, const float *v, int B, int T, int NH, int KVH, int HD) {
    double t0 = now_s();
    g_inner->attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, KVH, HD);
    g_sec[10] += now_s() - t0, g_calls[10]++;
}
static void p_attention_decode(float *out, const float *q, const float *k_cache, const float *v_cache, const int32_t *slot, const int32_t *len, size_t cache_stride, int N, int NH, int KVH, int HD) {
    double t0 = now_s();
    g_inner->attention_decode(out, q, k_cache, v_cache, slot, len, cache_stride, N, NH, KVH, HD);
    g_sec[11] += now_s() - t0, g_calls[11]++;
}
static void p_kv_cache_write(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slot, const int32_t *pos, size_t cache_stride, int N, int KD) {
    double t0 = now_s();
    g_inner->kv_cache_write(k_cache, v_cache, k, v, slot, pos, cache_stride, N, KD);
    g_sec[12] += now_s() - t0, g_calls[12]++;
}
static void p_qkv_split(float *q, float *k, float *v, const float *qkv, int N, int QD, int KD) {
    double t0 = now_s();
    g_inner->qkv_split(q, k, v, qkv, N, QD, KD);
    g_sec[13] += now_s() - t0, g_calls[13]++;
}
static void p_qkv_merge(float *qkv, const float *q, const float *k, const float *v, int N, int QD, int KD) {
    double t0 = now_s();
    g_inner->qkv_merge(qkv, q, k, v, N, QD, KD);
    g_sec[14] += now_s() - t0, g_calls[14]++;
}
static void p_swiglu_forward(float *h, const float *gu, int N, int K) {
    double t0 = now_s();
    g_inner->swiglu_forward(h, gu, N, K);
    g_sec[15] += now_s() - t0, g_calls[15]++;
}
static void p_swiglu_backward(float *dgu, const float *dh, const float *gu, int N, int K) {
    double t0 = now_s();
    g_inner->swiglu_backward(dgu, dh, gu, N, K);
    g_sec[16] += now_s() - t0, g_calls[16]++;
}
static void p_swiglu_forward_gemm(float *h, const float *gu, int N, int K) {
    double t0 = now_s();
    g_inner->swiglu_forward_gemm(h, gu, N, K);
    g_sec[30] += now_s() - t0, g_calls[30]++;
}
static void p_swiglu_backward_gemm(float *dgu, float *h, const float *dh, const float *gu, int N, int K) {
    double t0 = now_s();
    g_inner->swiglu_backward_gemm(dgu, h, dh, gu, N, K);
    g_sec[31] += now_s() - t0, g_calls[31]++;
}
static void p_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C) {
    double t0 = now_s();
    g_inner->embedding_forward(out, ids, table, N, C);
    g_sec[17] += now_s() - t0, g_calls[17]++;
}
static void p_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C) {
    double t0 = now_s();
    g_inner->embedding_backward(dtable, dout, ids, N, C);
    g_sec[18] += now_s() - t0, g_calls[18]++;
}
static void p_add_inplace(float *y, const float *x, size_t n) {
    double t0 = now_s();
    g_inner->add_inplace(y, x, n);
    g_sec[19] += now_s() - t0, g_calls[19]++;
}
static void p_lm_head_logprob_forward(float *logp, float *ent, float *logits_out, const float *x, const float *w, const int32_t *target, int N, int C, int V, float temp) {
    double t0 = now_s();
    g_inner->lm_head_logprob_forward(logp, ent, logits_out, x, w, target, N, C, V, temp);
    g_sec[20] += now_s() - t0, g_calls[20]++;
}
static void p_lm_head_logprob_backward(float *dx, float *dw, const float *dlogp, const float *x, const float *w, const float *logits, const int32_t *target, int N, int C, int V, float temp) {
    double t0 = now_s();
    g_inner->lm_head_logprob_backward(dx, dw, dlogp, x, w, logits, target, N, C, V, temp);
    g_sec[21] += now_s() - t0, g_calls[21]++;
}
static double p_sumsq(const float *x, size_t n) {
    double t0 = now_s();
    double r = g_inner->sumsq(x, n);
    g_sec[22] += now_s() - t0, g_calls[22]++;
    return r;
}
static void p_scale(float *x, float s, size_t n) {
    double t0 = now_s();
    g_inner->scale(x, s, n);
    g_sec[23] += now_s() - t0, g_calls[23]++;
}
static void p_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps, float wd, int t, float gscale) {
    double t0 = now_s();
    g_inner->adamw_update(p, g, m, v, n, lr, beta1, beta2, eps, wd, t, gscale);
    g_sec[24] += now_s() - t0, g_calls[24]++;
}
static void p_upload(void *dst_backend, const void *src_host, size_t bytes) {
    double t0 = now_s();
    g_inner->upload(dst_backend, src_host, bytes);
    g_sec[25] += now_s() - t0, g_calls[25]++;
}
static void p_download(void *dst_host, const void *src_backend, size_t bytes) {
    double t0 = now_s();
    g_inner->download(dst_host, src_backend, bytes);
    g_sec[26] += now_s() - t0, g_calls[26]++;
}

static void p_add_rmsnorm_forward(float *x, const float *dx, float *out, float *rstd, const float *w, int N, int C,
                                  float eps) {
    double t0 = now_s();
    g_inner->add_rmsnorm_forward(x, dx, out, rstd, w, N, C, eps);
    g_sec[27] += now_s() - t0, g_calls[27]++;
}
static void p_qkv_rope_cache(float *q, const float *qkv, const float *bias, const int32_t *pos, const float *cos_t,
                             const float *sin_t, float *k_cache, float *v_cache, const int32_t *slot,
                             size_t cache_stride, int N, int NH, int KVH, int HD) {
    double t0 = now_s();
    g_inner->qkv_rope_cache(q, qkv, bias, pos, cos_t, sin_t, k_cache, v_cache, slot, cache_stride, N, NH, KVH, HD);
    g_sec[28] += now_s() - t0, g_calls[28]++;
}

static void p_attention_decode_paged(float *out, const float *q, const float *k_pool, const float *v_pool, const int32_t *table, int max_blocks, int block, const int32_t *slot, const int32_t *len, int N, int NH, int KVH, int HD) {
    double t0 = now_s();
    g_inner->attention_decode_paged(out, q, k_pool, v_pool, table, max_blocks, block, slot, len, N, NH, KVH, HD);
    g_sec[29] += now_s() - t0, g_calls[29]++;
}

const Backend *backend_profiled(const Backend *inner) {
    g_inner = inner;
    g_prof = *inner;
    g_prof.name = "profiled";
    g_prof.alloc = p_alloc;
    g_prof.free = p_free;
    g_prof.zero = p_zero;
    g_prof.copy = p_copy;
    g_prof.matmul_forward = p_matmul_forward;
    g_prof.matmul_backward = p_matmul_backward;
    g_prof.rmsnorm_forward = p_rmsnorm_forward;
    g_prof.rmsnorm_backward = p_rmsnorm_backward;
    g_prof.rope_apply = p_rope_apply;
    g_prof.attention_forward = p_attention_forward;
    g_prof.attention_backward = p_attention_backward;
    g_prof.attention_decode = p_attention_decode;
    g_prof.kv_cache_write = p_kv_cache_write;
    g_prof.qkv_split = p_qkv_split;
    g_prof.qkv_merge = p_qkv_merge;
    g_prof.swiglu_forward = p_swiglu_forward;
    g_prof.swiglu_backward = p_swiglu_backward;
    g_prof.embedding_forward = p_embedding_forward;
    g_prof.embedding_backward = p_embedding_backward;
    g_prof.add_inplace = p_add_inplace;
    g_prof.lm_head_logprob_forward = p_lm_head_logprob_forward;
    g_prof.lm_head_logprob_backward = p_lm_head_logprob_backward;
    g_prof.sumsq = p_sumsq;
    g_prof.scale = p_scale;
    g_prof.adamw_update = p_adamw_update;
    g_prof.upload = p_upload;
    g_prof.download = p_download;
    g_prof.add_rmsnorm_forward = inner->add_rmsnorm_forward ? p_add_rmsnorm_forward : NULL;
    g_prof.qkv_rope_cache = inner->qkv_rope_cache ? p_qkv_rope_cache : NULL;
    g_prof.attention_decode_paged = inner->attention_decode_paged ? p_attention_decode_paged : NULL;
    g_prof.swiglu_forward_gemm = inner->swiglu_forward_gemm ? p_swiglu_forward_gemm : NULL;
    g_prof.swiglu_backward_gemm = inner->swiglu_backward_gemm ? p_swiglu_backward_gemm : NULL;
    return &g_prof;
}

void backend_profile_reset(void) {
    memset(g_sec, 0, sizeof g_sec);
    memset(g_calls, 0, sizeof g_calls);
}

void backend_profile_report(FILE *fp) {
    int idx[N_OPS];
    double total = 0;
    for (int i = 0; i < N_OPS; i++) idx[i] = i, total += g_sec[i];
    for (int i = 1; i < N_OPS; i++)
        for (int j = i; j > 0 && g_sec[idx[j]] > g_sec[idx[j - 1]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    fprintf(fp, "%-26s %10s %8s %6s\n", "op", "seconds", "calls", "share");
    for (int i = 0; i < N_OPS; i++) {
        int k = idx[i];
        if (!g_calls[k]) continue;
        fprintf(fp, "%-26s %10.4f %8ld %5.1f%%\n", OP_NAMES[k], g_sec[k], g_calls[k], 100 * g_sec[k] / (total > 0 ? total : 1));
    }
}
