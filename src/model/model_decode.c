/* Incremental forward over a KV cache: prefill and decode in one call,
 * any mix of sequences. Uses the same ops as training, so sampler and
 * trainer log-probs agree to rounding. */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* k[l], v[l] of `bytes` each for every layer; -1 when any is missing
 * (kv_cache_free releases what there is) */
static int kv_alloc_layers(KVCache *kv, const Model *m, size_t bytes) {
    int L = m->cfg.n_layers;
    kv->k = calloc(L, sizeof(float *));
    kv->v = calloc(L, sizeof(float *));
    if (!kv->k || !kv->v) return -1;
    for (int l = 0; l < L; l++) {
        kv->k[l] = m->be->alloc(bytes);
        kv->v[l] = m->be->alloc(bytes);
        if (!kv->k[l] || !kv->v[l]) return -1;
    }
    return 0;
}

int kv_cache_create(KVCache *kv, const Model *m, int n_slots, int max_len, Err *err) {
    memset(kv, 0, sizeof *kv);
    int L = m->cfg.n_layers;
    kv->n_slots = n_slots;
    kv->max_len = max_len;
    kv->stride = (size_t)max_len * m->KD;
    kv->elem = m->be->kv_elem_bytes ? m->be->kv_elem_bytes() : sizeof(float);
    size_t bytes = (size_t)n_slots * kv->stride * kv->elem;
    if (kv_alloc_layers(kv, m, bytes) == 0) return 0;
    kv_cache_free(kv, m);
    return err_set(err, "out of memory: KV cache for %d sequences x %d tokens needs %.1f MB", n_slots, max_len,
                   2.0 * L * bytes / 1e6);
}

int kv_cache_create_paged(KVCache *kv, const Model *m, int n_slots, int max_len, int block, int n_blocks, Err *err) {
    memset(kv, 0, sizeof *kv);
    const Backend *be = m->be;
    if (!be->attention_decode_paged)
        return err_set(err, "paged KV cache: the %s backend has no paged decode attention", be->name);
    if (block < 1 || n_slots < 1 || max_len < 1)
        return err_set(err, "paged KV cache: block %d, %d sequences of %d positions", block, n_slots, max_len);
    int L = m->cfg.n_layers, max_blocks = (max_len + block - 1) / block;
    if (n_blocks < max_blocks)
        return err_set(err, "paged KV cache: %d blocks of %d positions cannot hold one sequence of %d", n_blocks,
                       block, max_len);
    kv->n_slots = n_slots;
    kv->max_len = max_len;
    kv->block = block;
    kv->n_blocks = n_blocks;
    kv->max_blocks = max_blocks;
    kv->stride = (size_t)block * m->KD; /* elements per block */
    kv->elem = be->kv_elem_bytes ? be->kv_elem_bytes() : sizeof(float);
    size_t nt = (size_t)n_slots * max_blocks;
    kv->table = malloc(nt * sizeof(int32_t));
    kv->nblk = calloc(n_slots, sizeof(int));
    kv->free_blk = malloc((size_t)n_blocks * sizeof(int));
    kv->ref = calloc(n_blocks, sizeof(int));
    kv->table_be = be->alloc(nt * sizeof(int32_t));
    if (kv->table && kv->nblk && kv->free_blk && kv->ref && kv->table_be) {
        for (size_t i = 0; i < nt; i++) kv->table[i] = -1;
        for (int b = 0; b < n_blocks; b++) kv->free_blk[b] = n_blocks - 1 - b; /* block 0 comes off first */
        kv->n_free = n_blocks;
        kv->table_dirty = 1;
        if (kv_alloc_layers(kv, m, (size_t)n_blocks * kv->stride * kv->elem) == 0) return 0;
    }
    double mb = 2.0 * L * (double)n_blocks * kv->stride * kv->elem / 1e6;
    kv_cache_free(kv, m);
    return err_set(err, "out of memory: paged KV cache of %d blocks x %d positions needs %.1f MB", n_blocks, block, mb);
}

int kv_slot_reserve(KVCache *kv, int slot, int n_pos) {
    int want = (n_pos + kv->block - 1) / kv->block;
    if (want > kv->max_blocks) return -1;
    int more = want - kv->nblk[slot];
    if (more <= 0) return 0;
    if (more > kv->n_free) return -1;
    int32_t *t = kv->table + (size_t)slot * kv->max_blocks;
    while (kv->nblk[slot] < want) {
        int b = kv->free_blk[--kv->n_free];
        kv->ref[b] = 1;
        t[kv->nblk[slot]++] = b;
    }
    kv->table_dirty = 1;
    return 0;
}

void kv_slot_release(KVCache *kv, int slot) {
    int32_t *t = kv->table + (size_t)slot * kv->max_blocks;
    while (kv->nblk[slot] > 0) {
        int i = --kv->nblk[slot];
        if (--kv->ref[t[i]] == 0) kv->free_blk[kv->n_free++] = t[i];
        t[i] = -1;
    }
    kv->table_dirty = 1;
}

int kv_slot_share(KVCache *kv, int from, int to, int n_pos) {
    int full = n_pos / kv->block, part = n_pos % kv->block != 0;
    if (kv->nblk[to] != 0 || kv->nblk[from] < full + part || (part && kv->n_free < 1)) return -1;
    const int32_t *f = kv->table + (size_t)from * kv->max_blocks;
    int32_t *t = kv->table + (size_t)to * kv->max_blocks;
    for (int i = 0; i < full; i++) t[i] = f[i], kv->ref[f[i]]++;
    kv->nblk[to] = full;
    kv->table_dirty = 1;
    return kv_slot_reserve(kv, to, n_pos); /* the part-full block, fresh */
}

void kv_cache_free(KVCache *kv, const Model *m) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
        if (kv->k) m->be->free(kv->k[l]);
        if (kv->v) m->be->free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->table);
    free(kv->nblk);
    free(kv->free_blk);
    free(kv->ref);
    if (kv->table_be) m->be->free(kv->table_be);
    memset(kv, 0, sizeof *kv);
}

int decode_scratch_create(DecodeScratch *s, const Model *m, int cap, Err *err) {
    memset(s, 0, sizeof *s);
    const ModelConfig *c = &m->cfg;
    size_t n = cap, C = c->hidden, I = c->intermediate;
    const Backend *be = m->be;
    s->cap = cap;
    s->x = be->alloc(n * C * 4);
    s->ln = be->alloc(n * C * 4);
    s->qkv = be->alloc(n * m->QKVD * 4);
    s->q = be->alloc(n * m->QD * 4);
    s->k = be->alloc(n * m->KD * 4);
    s->v = be->alloc(n * m->KD * 4);
    s->q_pre = be->alloc(n * m->QD * 4);
    s->k_pre = be->alloc(n * m->KD * 4);
    s->rstd = be->alloc(n * 4);
    s->rstd_h = be->alloc(n * c->n_heads * 4);
    s->att = be->alloc(n * m->QD * 4);
    s->tmp = be->alloc(n * C * 4);
    s->gu = be->alloc(n * 2 * I * 4);
    s->h = be->alloc(n * I * 4);
    s->xsel = be->alloc(n * C * 4);
    s->ints_h = calloc(6 * n, sizeof(int32_t)); /* zeroed: the unused tails are uploaded too */
    s->ints_be = be->alloc(6 * n * sizeof(int32_t));
    if (!s->ints_be || !s->x || !s->ln || !s->qkv || !s->q || !s->k || !s->v || !s->q_pre || !s->k_pre || !s->rstd || !s->rstd_h ||
        !s->att || !s->tmp || !s->gu || !s->h || !s->xsel || !s->ints_h) {
        decode_scratch_free(s, m);
        return err_set(err, "out of memory for decode scratch (%d tokens)", cap);
    }
    return 0;
}

void decode_scratch_free(DecodeScratch *s, const Model *m) {
    const Backend *be = m->be;
    if (!be) return;
    float *bufs[] = {s->x, s->ln, s->qkv, s->q, s->k, s->v, s->q_pre, s->k_pre, s->rstd, s->rstd_h,
                     s->att, s->tmp, s->gu, s->h, s->xsel};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(bufs[i]);
    be->free(s->ints_be);
    be->free(s->logits_be);
    free(s->ints_h);
    memset(s, 0, sizeof *s);
}

/* The step's ops on backend memory, from the uploaded ids to the logits
 * of the output rows (issued once, or recorded and replayed as a graph). */
static void decode_ops(Model *m, KVCache *kv, DecodeScratch *s, int n, const int *out_rows, int n_out, int ident) {
    const ModelConfig *c = &m->cfg;
    const Backend *be = m->be;
    int32_t *d_tok = s->ints_be, *d_slot = d_tok + s->cap, *d_pos = d_slot + s->cap, *d_len = d_pos + s->cap;
    int32_t *d_wblk = d_len + s->cap, *d_wpos = d_wblk + s->cap; /* paged: where each token's K and V go */
    int paged = kv->block > 0;
    int C = c->hidden, I = c->intermediate, HD = c->head_dim, NH = c->n_heads, KVH = c->n_kv_heads;
    float eps = (float)c->rms_eps;
    be->embedding_forward(s->x, d_tok, m->w.embed, n, C);
    /* residual adds ride on the next norm where the backend fuses them;
     * the last layer's MLP residual is added after the loop */
    int fuse_qkv = be->qkv_rope_cache && !c->qk_norm && !paged; /* the fused op writes contiguous caches */
    for (int l = 0; l < c->n_layers; l++) {
        const LayerParams *w = &m->w.layers[l];
        if (l > 0 && be->add_rmsnorm_forward)
            be->add_rmsnorm_forward(s->x, s->tmp, s->ln, s->rstd, w->attn_norm, n, C, eps);
        else {
            if (l > 0) be->add_inplace(s->x, s->tmp, (size_t)n * C);
            be->rmsnorm_forward(s->ln, s->rstd, s->x, w->attn_norm, n, C, eps);
        }
        be->matmul_forward(s->qkv, s->ln, w->wqkv, fuse_qkv ? NULL : w->bqkv, n, C, m->QKVD);
        if (fuse_qkv) {
            be->qkv_rope_cache(s->q, s->qkv, w->bqkv, d_pos, m->rope_cos, m->rope_sin, kv->k[l], kv->v[l], d_slot,
                               kv->stride, n, NH, KVH, HD);
        } else {
            if (c->qk_norm) {
                be->qkv_split(s->q_pre, s->k_pre, s->v, s->qkv, n, m->QD, m->KD);
                be->rmsnorm_forward(s->q, s->rstd_h, s->q_pre, w->q_norm, n * NH, HD, eps);
                be->rmsnorm_forward(s->k, s->rstd_h, s->k_pre, w->k_norm, n * KVH, HD, eps);
            } else be->qkv_split(s->q, s->k, s->v, s->qkv, n, m->QD, m->KD);
            be->rope_apply(s->q, d_pos, m->rope_cos, m->rope_sin, n, NH, HD, 0);
            be->rope_apply(s->k, d_pos, m->rope_cos, m->rope_sin, n, KVH, HD, 0);
            /* a paged pool is a cache of n_blocks "slots" of `block` positions */
            if (paged) be->kv_cache_write(kv->k[l], kv->v[l], s->k, s->v, d_wblk, d_wpos, kv->stride, n, m->KD);
            else be->kv_cache_write(kv->k[l], kv->v[l], s->k, s->v, d_slot, d_pos, kv->stride, n, m->KD);
        }
        if (paged)
            be->attention_decode_paged(s->att, s->q, kv->k[l], kv->v[l], kv->table_be, kv->max_blocks, kv->block,
                                       d_slot, d_len, n, NH, KVH, HD);
        else be->attention_decode(s->att, s->q, kv->k[l], kv->v[l], d_slot, d_len, kv->stride, n, NH, KVH, HD);
        be->matmul_forward(s->tmp, s->att, w->wo, NULL, n, m->QD, C);
        if (be->add_rmsnorm_forward) be->add_rmsnorm_forward(s->x, s->tmp, s->ln, s->rstd, w->mlp_norm, n, C, eps);
        else {
            be->add_inplace(s->x, s->tmp, (size_t)n * C);
            be->rmsnorm_forward(s->ln, s->rstd, s->x, w->mlp_norm, n, C, eps);
        }
        be->matmul_forward(s->gu, s->ln, w->w_gu, NULL, n, C, 2 * I);
        if (be->swiglu_forward_gemm) be->swiglu_forward_gemm(s->h, s->gu, n, I); /* h only feeds the GEMM */
        else be->swiglu_forward(s->h, s->gu, n, I);
        be->matmul_forward(s->tmp, s->h, w->w_down, NULL, n, I, C);
    }
    be->add_inplace(s->x, s->tmp, (size_t)n * C);
    if (n_out <= 0) return;
    /* the rows that get logits, gathered: runs of consecutive rows move in
     * one copy (ident: the output rows are rows 0.., no copy) */
    const float *xs = s->x;
    if (!ident) {
        for (int i = 0; i < n_out;) {
            int j = i + 1;
            while (j < n_out && out_rows[j] == out_rows[j - 1] + 1) j++;
            be->copy(s->xsel + (size_t)i * C, s->x + (size_t)out_rows[i] * C, (size_t)(j - i) * C * sizeof(float));
            i = j;
        }
        xs = s->xsel;
    }
    be->rmsnorm_forward(s->ln, s->rstd, xs, m->w.final_norm, n_out, C, eps);
    be->matmul_forward(s->logits_be, s->ln, m->w.lm_head, NULL, n_out, C, c->vocab_size);
}

int model_decode(Model *m, KVCache *kv, DecodeScratch *s, const int32_t *tokens, const int32_t *slot,
                 const int32_t *pos, int n, const int *out_rows, int n_out, float *logits, Err *err) {
    const ModelConfig *c = &m->cfg;
    const Backend *be = m->be;
    if (n > s->cap) return err_set(err, "model_decode: %d tokens exceed the scratch capacity %d", n, s->cap);
    int maxpos = 0, paged = kv->block > 0;
    int32_t *h_tok = s->ints_h, *h_slot = h_tok + s->cap, *h_pos = h_slot + s->cap, *h_len = h_pos + s->cap;
    int32_t *h_wblk = h_len + s->cap, *h_wpos = h_wblk + s->cap;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return err_set(err, "token id %d is outside the vocabulary (%d)", tokens[i], c->vocab_size);
        if (slot[i] < 0 || slot[i] >= kv->n_slots || pos[i] < 0 || pos[i] >= kv->max_len)
            return err_set(err, "model_decode: slot %d position %d outside the KV cache (%d x %d)", slot[i], pos[i],
                           kv->n_slots, kv->max_len);
        if (pos[i] > maxpos) maxpos = pos[i];
        h_tok[i] = tokens[i], h_slot[i] = slot[i], h_pos[i] = pos[i], h_len[i] = pos[i] + 1;
        if (paged) {
            /* blocks are taken in position order, so the one holding pos
             * means every earlier position has one too */
            int b = pos[i] / kv->block;
            if (b >= kv->nblk[slot[i]])
                return err_set(err, "model_decode: slot %d position %d has no KV block (reserve it first)", slot[i],
                               pos[i]);
            h_wblk[i] = kv->table[(size_t)slot[i] * kv->max_blocks + b], h_wpos[i] = pos[i] % kv->block;
        }
    }
    for (int i = 0; i < n_out; i++)
        if (out_rows[i] < 0 || out_rows[i] >= n)
            return err_set(err, "model_decode: output row %d is outside the batch of %d tokens", out_rows[i], n);
    if (model_rope_reserve(m, maxpos + 1, err) != 0) return -1;
    size_t need = (size_t)(n_out > 0 ? n_out : 0) * c->vocab_size;
    if (need > s->logits_cap) {
        be->free(s->logits_be);
        s->logits_be = be->alloc(need * sizeof(float));
        s->logits_cap = s->logits_be ? need : 0;
        if (!s->logits_be) return err_set(err, "out of memory for %d rows of logits", n_out);
    }
    /* The ops read the int arrays from backend memory: one upload of the
     * staged block (the layout the ops expect; a GPU copy costs a round
     * trip, not bytes) */
    be->upload(s->ints_be, s->ints_h, (size_t)(paged ? 5 : 3) * s->cap * sizeof(int32_t) + (size_t)n * sizeof(int32_t));
    if (paged && kv->table_dirty) {
        be->upload(kv->table_be, kv->table, (size_t)kv->n_slots * kv->max_blocks * sizeof(int32_t));
        kv->table_dirty = 0;
    }
    /* A pure decode step (one sampled row per token, in order) is the same
     * sequence of ops every time for a given row count: replayed as a
     * graph where the backend offers it (CUDA, small batches: one launch
     * instead of ~450). Prefill steps vary and run op by op. */
    int ident = 1;
    for (int i = 0; i < n_out && ident; i++) ident = out_rows[i] == i;
    uint64_t key[4] = {(uint64_t)(uintptr_t)m, (uint64_t)(uintptr_t)kv, (uint64_t)(uintptr_t)s, (uint64_t)n};
    int g = ident && n_out == n && be->graph_begin ? be->graph_begin(key, 4, n) : -1;
    if (g != 1) decode_ops(m, kv, s, n, out_rows, n_out, ident);
    if (g == 0 && be->graph_end() != 0) decode_ops(m, kv, s, n, out_rows, n_out, ident);
    if (logits) be->download(logits, s->logits_be, need * sizeof(float));
    return 0;
}
