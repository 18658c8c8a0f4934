/* Training forward and backward over a (B, T) batch, with activations
 * saved (or, with recompute, only each layer's input kept and the layer
 * re-run during backward). */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define ACTS_LOGITS_CACHE_MAX ((size_t)128 << 20)

/* Sizes (in floats) of one layer's activations. */
static size_t layer_floats(const Model *m, int B, int T) {
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)B * T, C = c->hidden, I = c->intermediate;
    size_t f = N * C /*ln1*/ + N /*rstd1*/ + N * m->QKVD + 2 * N * m->QD /*q, att*/ + 2 * N * m->KD /*k v*/ +
               (size_t)B * c->n_heads * T /*lse*/ + N * C /*x_mid*/ + N * C + N /*ln2 rstd2*/ + N * 2 * I + N * I;
    if (c->qk_norm) f += N * m->QD + N * m->KD + N * c->n_heads + N * c->n_kv_heads;
    return f;
}

static size_t scratch_floats(const Model *m, int B, int T) {
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)B * T, C = c->hidden, I = c->intermediate;
    size_t f = 2 * N * C /*dres dln*/ + N * m->QKVD + 2 * N * m->QD /*dq datt*/ + 2 * N * m->KD + N * 2 * I + N * I +
               N * C /*tmp*/;
    if (c->qk_norm) f += N * m->QD + N * m->KD;
    return f;
}

size_t acts_bytes(const Model *m, int B, int T, int recompute) {
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)B * T, C = c->hidden;
    size_t f = (size_t)(recompute ? 1 : c->n_layers) * layer_floats(m, B, T) + (size_t)(c->n_layers + 1) * N * C +
               N * C + N /*lnf rstdf*/ + 3 * N /*logp ent dlogp*/ + scratch_floats(m, B, T);
    return f * sizeof(float) + 4 * N * sizeof(int32_t) /*ids target pos seg*/;
}

/* Carves float arrays out of one allocation. */
typedef struct Carver {
    float *p;
} Carver;
static float *take(Carver *cv, size_t n) {
    float *r = cv->p;
    cv->p += (n + 15) & ~(size_t)15; /* keep 64-byte alignment */
    return r;
}

int acts_create(Acts *a, const Model *m, int B, int T, int recompute, Err *err) {
    memset(a, 0, sizeof *a);
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)B * T, C = c->hidden, I = c->intermediate;
    a->B = B, a->T = T, a->N = (int)N, a->cap_N = (int)N, a->recompute = recompute;
    int nl = recompute ? 1 : c->n_layers;
    size_t total = acts_bytes(m, B, T, recompute) + 64 * (size_t)(40 * nl + 64 + c->n_layers);
    float *mem = m->be->alloc(total);
    a->layers = calloc(nl, sizeof *a->layers);
    a->layer_x = calloc(c->n_layers + 1, sizeof *a->layer_x);
    a->ids = malloc(4 * N * sizeof(int32_t));
    a->logp = malloc(2 * N * sizeof(float));
    if (!mem || !a->layers || !a->layer_x || !a->ids || !a->logp) {
        m->be->free(mem);
        free(a->layers);
        free(a->layer_x);
        free(a->ids);
        free(a->logp);
        memset(a, 0, sizeof *a);
        return err_set(err, "out of memory: activations for batch %d x %d need %.1f MB", B, T, total / 1e6);
    }
    a->bytes = total;
    a->target = a->ids + N;
    a->seg = a->ids + 3 * N;
    a->pos = a->ids + 2 * N;
    a->ent = a->logp + N;
    Carver cv = {mem};
    for (int l = 0; l <= c->n_layers; l++) a->layer_x[l] = take(&cv, N * C);
    for (int l = 0; l < nl; l++) {
        LayerActs *la = &a->layers[l];
        la->ln1 = take(&cv, N * C);
        la->rstd1 = take(&cv, N);
        la->qkv = take(&cv, N * m->QKVD);
        la->q = take(&cv, N * m->QD);
        la->k = take(&cv, N * m->KD);
        la->v = take(&cv, N * m->KD);
        if (c->qk_norm) {
            la->q_pre = take(&cv, N * m->QD);
            la->k_pre = take(&cv, N * m->KD);
            la->rstd_q = take(&cv, N * c->n_heads);
            la->rstd_k = take(&cv, N * c->n_kv_heads);
        }
        la->att = take(&cv, N * m->QD);
        la->lse = take(&cv, (size_t)B * c->n_heads * T);
        la->x_mid = take(&cv, N * C);
        la->ln2 = take(&cv, N * C);
        la->rstd2 = take(&cv, N);
        la->gu = take(&cv, N * 2 * I);
        la->h = take(&cv, N * I);
    }
    a->lnf = take(&cv, N * C);
    a->rstdf = take(&cv, N);
    a->logits_cache = NULL;
    a->logp_be = take(&cv, N);
    a->ent_be = take(&cv, N);
    a->dlogp_be = take(&cv, N);
    /* int32 and float are both 4 bytes: the carver's float counts fit */
    a->ids_be = (int32_t *)take(&cv, N);
    a->target_be = (int32_t *)take(&cv, N);
    a->pos_be = (int32_t *)take(&cv, N);
    a->seg_be = (int32_t *)take(&cv, N);
    a->dres = take(&cv, N * C);
    a->dln = take(&cv, N * C);
    a->dqkv = take(&cv, N * m->QKVD);
    a->dq = take(&cv, N * m->QD);
    a->dk = take(&cv, N * m->KD);
    a->dv = take(&cv, N * m->KD);
    if (c->qk_norm) {
        a->dq_pre = take(&cv, N * m->QD);
        a->dk_pre = take(&cv, N * m->KD);
    }
    a->datt = take(&cv, N * m->QD);
    a->dgu = take(&cv, N * 2 * I);
    a->dh = take(&cv, N * I);
    a->tmp = take(&cv, N * C);
    /* Keep the forward's logits for backward when they are small next to
     * everything else (a 150k vocabulary at 1k tokens is 600 MB: recompute). */
    size_t lbytes = N * (size_t)c->vocab_size * sizeof(float);
    if (lbytes <= ACTS_LOGITS_CACHE_MAX && !recompute) a->logits_cache = m->be->alloc(lbytes);
    return 0;
}

int acts_keep_logits(Acts *a, const Model *m, Err *err) {
    if (a->recompute || a->logits_cache) return 0;
    size_t lbytes = (size_t)a->cap_N * m->cfg.vocab_size * sizeof(float);
    a->logits_cache = m->be->alloc(lbytes);
    if (!a->logits_cache)
        return err_set(err, "out of memory: keeping %d x %d LM-head logits (%.1f GB)", a->cap_N, m->cfg.vocab_size,
                       lbytes / 1e9);
    return 0;
}

void acts_free(Acts *a, const Model *m) {
    if (a->layer_x) m->be->free(a->layer_x[0]);
    if (a->logits_cache) m->be->free(a->logits_cache);
    if (a->logits_out_be) m->be->free(a->logits_out_be);
    free(a->layers);
    free(a->layer_x);
    free(a->ids);
    free(a->logp);
    memset(a, 0, sizeof *a);
}

/* One transformer block: x -> x_out, saving what backward needs in la. */
static void layer_forward(Model *m, const Acts *a, LayerActs *la, int l, const float *x, float *x_out) {
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerParams *w = &m->w.layers[l];
    int N = a->N, C = c->hidden, I = c->intermediate, HD = c->head_dim, NH = c->n_heads, KVH = c->n_kv_heads;
    float eps = (float)c->rms_eps;
    be->rmsnorm_forward(la->ln1, la->rstd1, x, w->attn_norm, N, C, eps);
    be->matmul_forward(la->qkv, la->ln1, w->wqkv, w->bqkv, N, C, m->QKVD);
    if (c->qk_norm) {
        be->qkv_split(la->q_pre, la->k_pre, la->v, la->qkv, N, m->QD, m->KD);
        be->rmsnorm_forward(la->q, la->rstd_q, la->q_pre, w->q_norm, N * NH, HD, eps);
        be->rmsnorm_forward(la->k, la->rstd_k, la->k_pre, w->k_norm, N * KVH, HD, eps);
    } else be->qkv_split(la->q, la->k, la->v, la->qkv, N, m->QD, m->KD);
    be->rope_apply(la->q, a->pos_be, m->rope_cos, m->rope_sin, N, NH, HD, 0);
    be->rope_apply(la->k, a->pos_be, m->rope_cos, m->rope_sin, N, KVH, HD, 0);
    if (a->packed)
        be->attention_forward_seg(la->att, la->lse, la->q, la->k, la->v, a->seg_be, a->B, a->T, NH, KVH, HD);
    else be->attention_forward(la->att, la->lse, la->q, la->k, la->v, a->B, a->T, NH, KVH, HD);
    be->matmul_forward(la->x_mid, la->att, w->wo, NULL, N, m->QD, C);
    if (be->add_rmsnorm_forward) /* the same two ops in one pass */
        be->add_rmsnorm_forward(la->x_mid, x, la->ln2, la->rstd2, w->mlp_norm, N, C, eps);
    else {
        be->add_inplace(la->x_mid, x, (size_t)N * C);
        be->rmsnorm_forward(la->ln2, la->rstd2, la->x_mid, w->mlp_norm, N, C, eps);
    }
    be->matmul_forward(la->gu, la->ln2, w->w_gu, NULL, N, C, 2 * I);
    /* h feeds only GEMMs: this one, and the weight gradient's, which takes
     * it from swiglu_backward_gemm (backend.h) */
    if (be->swiglu_forward_gemm && be->swiglu_backward_gemm) be->swiglu_forward_gemm(la->h, la->gu, N, I);
    else be->swiglu_forward(la->h, la->gu, N, I);
    be->matmul_forward(x_out, la->h, w->w_down, NULL, N, I, C);
    be->add_inplace(x_out, la->x_mid, (size_t)N * C);
}

static int forward_impl(Model *m, Acts *a, const int32_t *ids, const int32_t *seg, int B, int T, float temp,
                        float *logits_out, Err *err) {
    const ModelConfig *c = &m->cfg;
    if (B < 1 || T < 1 || (int64_t)B * T > a->cap_N)
        return err_set(err, "model_forward: batch %dx%d does not fit activations for %d tokens", B, T, a->cap_N);
    if (seg && (!m->be->attention_forward_seg || !m->be->attention_backward_seg))
        return err_set(err, "sequence packing is not supported on the %s backend yet", m->be->name);
    if (model_rope_reserve(m, T, err) != 0) return -1;
    int N = B * T;
    a->B = B, a->T = T, a->N = N;
    a->packed = seg != NULL;
    for (int i = 0; i < N; i++) {
        int t = i % T;
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return err_set(err, "token id %d at row %d position %d is outside the vocabulary (%d)", ids[i], i / T, t,
                           c->vocab_size);
        a->ids[i] = ids[i];
        if (seg) {
            /* a segment starts here (seg == t) or continues the previous one */
            if (seg[i] != t && (t == 0 || seg[i] != seg[i - 1]))
                return err_set(err, "packed row %d position %d: segment start %d is neither the position nor the "
                               "previous token's", i / T, t, seg[i]);
            a->seg[i] = seg[i];
            a->pos[i] = t - seg[i];
            a->target[i] = (t == T - 1 || seg[i + 1] == t + 1) ? -1 : ids[i + 1];
        } else {
            a->pos[i] = t;
            a->target[i] = (t == T - 1) ? -1 : ids[i + 1];
        }
    }
    if (seg) m->be->upload(a->seg_be, a->seg, (size_t)N * sizeof(int32_t));
    a->temp = temp;
    const Backend *be = m->be;
    float *lg = a->logits_cache;
    if (logits_out && !lg) {
        size_t need = (size_t)N * c->vocab_size;
        if (need > a->logits_out_cap) {
            be->free(a->logits_out_be);
            a->logits_out_be = be->alloc(need * sizeof(float));
            a->logits_out_cap = a->logits_out_be ? need : 0;
            if (!a->logits_out_be)
                return err_set(err, "out of memory: %d x %d logits (%.1f MB)", N, c->vocab_size, need * 4.0 / 1e6);
        }
        lg = a->logits_out_be;
    }
    be->upload(a->ids_be, a->ids, (size_t)N * sizeof(int32_t));
    be->upload(a->target_be, a->target, (size_t)N * sizeof(int32_t));
    be->upload(a->pos_be, a->pos, (size_t)N * sizeof(int32_t));
    be->embedding_forward(a->layer_x[0], a->ids_be, m->w.embed, N, c->hidden);
    for (int l = 0; l < c->n_layers; l++)
        layer_forward(m, a, &a->layers[a->recompute ? 0 : l], l, a->layer_x[l], a->layer_x[l + 1]);
    be->rmsnorm_forward(a->lnf, a->rstdf, a->layer_x[c->n_layers], m->w.final_norm, N, c->hidden, (float)c->rms_eps);
    be->lm_head_logprob_forward(a->logp_be, a->ent_be, lg, a->lnf, m->w.lm_head, a->target_be, N, c->hidden,
                                c->vocab_size, temp);
    a->logits_kept = lg;
    be->download(a->logp, a->logp_be, (size_t)N * sizeof(float));
    be->download(a->ent, a->ent_be, (size_t)N * sizeof(float));
    if (logits_out) be->download(logits_out, lg, (size_t)N * c->vocab_size * sizeof(float));
    return 0;
}

int model_forward(Model *m, Acts *a, const int32_t *ids, int B, int T, float temp, float *logits_out, Err *err) {
    return forward_impl(m, a, ids, NULL, B, T, temp, logits_out, err);
}

int model_forward_packed(Model *m, Acts *a, const int32_t *ids, const int32_t *seg_start, int B, int T, float temp,
                         Err *err) {
    return forward_impl(m, a, ids, seg_start, B, T, temp, NULL, err);
}

/* Backward of one block. a->dres holds dL/dx_out on entry, dL/dx on exit. */
static void layer_backward(Model *m, Acts *a, LayerActs *la, int l, const float *x) {
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerParams *w = &m->w.layers[l];
    LayerParams *g = &m->g.layers[l];
    int N = a->N, C = c->hidden, I = c->intermediate, HD = c->head_dim, NH = c->n_heads, KVH = c->n_kv_heads;
    /* MLP: x_out = x_mid + down(swiglu(gu(ln2(x_mid)))) */
    if (be->swiglu_forward_gemm && be->swiglu_backward_gemm) {
        /* SwiGLU's outputs only as GEMM operands: the down projection's
         * input gradient, SwiGLU's backward (recomputing h), the gate/up
         * GEMMs, then the down projection's weight gradient from that h */
        be->matmul_backward(a->dh, NULL, NULL, a->dres, la->h, w->w_down, N, I, C, 0);
        be->swiglu_backward_gemm(a->dgu, la->h, a->dh, la->gu, N, I);
        be->matmul_backward(a->dln, g->w_gu, NULL, a->dgu, la->ln2, w->w_gu, N, C, 2 * I, 0);
        be->matmul_backward(NULL, g->w_down, NULL, a->dres, la->h, w->w_down, N, I, C, 0);
    } else {
        be->matmul_backward(a->dh, g->w_down, NULL, a->dres, la->h, w->w_down, N, I, C, 0);
        be->swiglu_backward(a->dgu, a->dh, la->gu, N, I);
        be->matmul_backward(a->dln, g->w_gu, NULL, a->dgu, la->ln2, w->w_gu, N, C, 2 * I, 0);
    }
    be->rmsnorm_backward(a->dres, g->mlp_norm, a->dln, la->x_mid, w->mlp_norm, la->rstd2, N, C);
    /* attention: x_mid = x + o(attn(rope(norm(qkv(ln1(x)))))) */
    be->matmul_backward(a->datt, g->wo, NULL, a->dres, la->att, w->wo, N, m->QD, C, 0);
    if (a->packed)
        be->attention_backward_seg(a->dq, a->dk, a->dv, a->datt, la->att, la->lse, la->q, la->k, la->v, a->seg_be, a->B,
                                   a->T, NH, KVH, HD);
    else
        be->attention_backward(a->dq, a->dk, a->dv, a->datt, la->att, la->lse, la->q, la->k, la->v, a->B, a->T, NH, KVH,
                               HD);
    be->rope_apply(a->dq, a->pos_be, m->rope_cos, m->rope_sin, N, NH, HD, 1);
    be->rope_apply(a->dk, a->pos_be, m->rope_cos, m->rope_sin, N, KVH, HD, 1);
    if (c->qk_norm) {
        be->zero(a->dq_pre, (size_t)N * m->QD * sizeof(float));
        be->zero(a->dk_pre, (size_t)N * m->KD * sizeof(float));
        be->rmsnorm_backward(a->dq_pre, g->q_norm, a->dq, la->q_pre, w->q_norm, la->rstd_q, N * NH, HD);
        be->rmsnorm_backward(a->dk_pre, g->k_norm, a->dk, la->k_pre, w->k_norm, la->rstd_k, N * KVH, HD);
        be->qkv_merge(a->dqkv, a->dq_pre, a->dk_pre, a->dv, N, m->QD, m->KD);
    } else be->qkv_merge(a->dqkv, a->dq, a->dk, a->dv, N, m->QD, m->KD);
    be->matmul_backward(a->dln, g->wqkv, g->bqkv, a->dqkv, la->ln1, w->wqkv, N, C, m->QKVD, 0);
    be->rmsnorm_backward(a->dres, g->attn_norm, a->dln, x, w->attn_norm, la->rstd1, N, C);
}

void model_backward(Model *m, Acts *a, const float *dlogp) {
    const Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int N = a->N, C = c->hidden, L = c->n_layers;
    be->upload(a->dlogp_be, dlogp, (size_t)N * sizeof(float));
    be->lm_head_logprob_backward(a->dln, m->g.lm_head, a->dlogp_be, a->lnf, m->w.lm_head, a->logits_kept,
                                 a->target_be, N, C, c->vocab_size, a->temp);
    be->zero(a->dres, (size_t)N * C * sizeof(float));
    be->rmsnorm_backward(a->dres, m->g.final_norm, a->dln, a->layer_x[L], m->w.final_norm, a->rstdf, N, C);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs *la = &a->layers[a->recompute ? 0 : l];
        if (a->recompute) layer_forward(m, a, la, l, a->layer_x[l], a->tmp);
        layer_backward(m, a, la, l, a->layer_x[l]);
    }
    be->embedding_backward(m->g.embed, a->dres, a->ids_be, N, C);
}
