/* The generation loop (see generate.h). Each step gathers one token per
 * decoding sequence plus prompt chunks of newly started ones, runs them
 * through model_decode in one batch, and samples for the rows that end a
 * prompt or continue a sequence. */
#include "base/clock.h"
#include "gen/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Slot {
    int req;       /* -1 when free */
    long started;  /* admission order: a full paged pool preempts the latest */
    int ready;     /* cache rows computed by earlier steps (len counts queued ones too) */
    int prefilled; /* prompt tokens already in the cache */
    int len;       /* tokens in the cache */
    int32_t last;  /* token to feed next (decoding) */
    Rng rng;
} Slot;

static double now_s(void) { return clock_seconds(); }

void gen_outputs_free(GenOutput *out, int n) {
    for (int i = 0; i < n; i++) {
        free(out[i].tokens);
        free(out[i].logp);
    }
}

/* A live slot (other than s) whose request has the same prompt as q and
 * that is at least as far in its prefill as any other such slot. */
static int find_donor(const Slot *slots, int S, int s, const GenRequest *req, const GenRequest *q) {
    int best = -1;
    for (int i = 0; i < S; i++) {
        if (i == s || slots[i].req < 0) continue;
        const GenRequest *o = &req[slots[i].req];
        if (o->prompt_len != q->prompt_len) continue;
        if (o->prompt != q->prompt && memcmp(o->prompt, q->prompt, (size_t)q->prompt_len * sizeof(int32_t)) != 0)
            continue;
        if (best < 0 || slots[i].ready > slots[best].ready ||
            (slots[i].ready == slots[best].ready && slots[i].prefilled > slots[best].prefilled))
            best = i;
    }
    return best;
}

/* Copies cache rows [p0, n) of slot `from` to slot `to` in every layer
 * (elements of kv->elem bytes); a paged cache block by block (`to` holds
 * blocks for them). */
static void kv_cache_copy_prefix(Model *m, KVCache *kv, int from, int to, int p0, int n) {
    size_t row = (size_t)m->KD * kv->elem, unit = kv->stride * kv->elem; /* a slot's or a block's bytes */
    for (int l = 0; l < m->cfg.n_layers; l++) {
        char *k = (char *)kv->k[l], *v = (char *)kv->v[l];
        if (kv->block == 0) {
            size_t off = (size_t)p0 * row;
            m->be->copy(k + (size_t)to * unit + off, k + (size_t)from * unit + off, (size_t)(n - p0) * row);
            m->be->copy(v + (size_t)to * unit + off, v + (size_t)from * unit + off, (size_t)(n - p0) * row);
            continue;
        }
        for (int p = p0; p < n;) { /* the piece of [p, n) in p's block */
            int b = p / kv->block, q = p % kv->block, cnt = kv->block - q < n - p ? kv->block - q : n - p;
            size_t src = (size_t)kv->table[(size_t)from * kv->max_blocks + b] * unit + (size_t)q * row;
            size_t dst = (size_t)kv->table[(size_t)to * kv->max_blocks + b] * unit + (size_t)q * row;
            m->be->copy(k + dst, k + src, (size_t)cnt * row);
            m->be->copy(v + dst, v + src, (size_t)cnt * row);
            p += cnt;
        }
    }
}

/* What a request prefills: its prompt, or after a preemption its prompt
 * and the tokens it had generated (the last one not yet fed) */
typedef struct Resume {
    const int32_t **tok;
    int *len;
    int32_t **own; /* the buffers built for preempted requests (NULL: never preempted) */
    Rng *rng;      /* a preempted request's random stream, to go on with */
    int *queue, n, head, tail; /* preempted requests, first out first back: a ring of n (each at most once) */
} Resume;

/* Slot v's request gives its blocks back and waits to start again. */
static int gen_preempt(KVCache *kv, Slot *slots, int v, const GenRequest *req, const GenOutput *out, Resume *rs,
                       GenStats *stats) {
    int r = slots[v].req, P = req[r].prompt_len, n = out[r].n;
    int32_t *buf = malloc((size_t)(P + n) * sizeof(int32_t));
    if (!buf) return -1;
    memcpy(buf, req[r].prompt, (size_t)P * sizeof(int32_t));
    memcpy(buf + P, out[r].tokens, (size_t)n * sizeof(int32_t));
    free(rs->own[r]);
    rs->own[r] = buf;
    rs->tok[r] = buf, rs->len[r] = P + n;
    rs->rng[r] = slots[v].rng;
    rs->queue[rs->tail++ % rs->n] = r;
    kv_slot_release(kv, v);
    slots[v].req = -1;
    if (stats) stats->preemptions++;
    return 0;
}

/* Paged: until the pool has `need` free blocks, the latest started of
 * slot s and the slots after it (they have queued nothing this step)
 * gives its blocks back. 1: room; 0: s itself was preempted; -1: out of
 * host memory. */
static int gen_make_room(KVCache *kv, Slot *slots, int S, int s, int need, const GenRequest *req,
                         const GenOutput *out, Resume *rs, GenStats *stats) {
    while (kv->n_free < need) {
        int v = s;
        for (int i = s + 1; i < S; i++)
            if (slots[i].req >= 0 && slots[i].started > slots[v].started) v = i;
        if (gen_preempt(kv, slots, v, req, out, rs, stats) != 0) return -1;
        if (v == s) return 0;
    }
    return 1;
}

static void gen_note_peak(const KVCache *kv, GenStats *stats) {
    int64_t used = (int64_t)(kv->n_blocks - kv->n_free) * kv->block;
    if (stats && used > stats->kv_peak_tokens) stats->kv_peak_tokens = used;
}

/* Paged: blocks for slot s's positions [0, n_pos), making room first
 * (gen_make_room's returns). */
static int gen_reserve(KVCache *kv, Slot *slots, int S, int s, int n_pos, const GenRequest *req,
                       const GenOutput *out, Resume *rs, GenStats *stats) {
    if (kv->block == 0) return 1;
    int need = (n_pos + kv->block - 1) / kv->block - kv->nblk[s];
    int g = gen_make_room(kv, slots, S, s, need, req, out, rs, stats);
    if (g != 1) return g;
    kv_slot_reserve(kv, s, n_pos); /* cannot fail: the room is there and n_pos <= max_len */
    gen_note_peak(kv, stats);
    return 1;
}

static int is_stop(const Model *m, const GenConfig *cfg, int32_t tok, GenFinish *why) {
    if (!cfg->ignore_eos)
        for (int i = 0; i < m->cfg.n_eos; i++)
            if (tok == m->cfg.eos_ids[i]) return *why = GEN_FINISH_EOS, 1;
    for (int i = 0; i < cfg->n_stop_ids; i++)
        if (tok == cfg->stop_ids[i]) return *why = GEN_FINISH_STOP, 1;
    return 0;
}

int gen_run(Model *m, const GenRequest *req, int n_req, const GenConfig *cfg, GenOutput *out, GenStats *stats,
            Err *err) {
    memset(out, 0, (size_t)n_req * sizeof *out);
    if (stats) memset(stats, 0, sizeof *stats);
    if (n_req == 0) return 0;
    int V = m->cfg.vocab_size;
    int S = cfg->max_batch > 0 ? cfg->max_batch : 16;
    if (S > n_req) S = n_req;
    int chunk = cfg->prefill_chunk > 0 ? cfg->prefill_chunk : gen_prefill_chunk_default(m->be->sample != NULL);
    int max_prompt = 0;
    int64_t all_prompts = 0; /* no step holds more prompt tokens: the scratch need not either */
    for (int r = 0; r < n_req; r++) {
        if (req[r].prompt_len <= 0) return err_set(err, "request %d: empty prompt", r);
        for (int i = 0; i < req[r].prompt_len; i++)
            if (req[r].prompt[i] < 0 || req[r].prompt[i] >= V)
                return err_set(err, "request %d: token id %d at position %d is outside the vocabulary (%d)", r,
                               req[r].prompt[i], i, V);
        if (req[r].prompt_len > max_prompt) max_prompt = req[r].prompt_len;
        all_prompts += req[r].prompt_len;
    }
    if (chunk > all_prompts) chunk = (int)all_prompts;
    int max_len = max_prompt + cfg->max_new_tokens;
    int cap = S + chunk;
    KVCache kv;
    DecodeScratch sc;
    SamplerWork sw;
    if (cfg->kv_block > 0) {
        int64_t per_seq = (max_len + cfg->kv_block - 1) / cfg->kv_block;
        int64_t nb = cfg->kv_tokens > 0 ? (cfg->kv_tokens + cfg->kv_block - 1) / cfg->kv_block : S * per_seq;
        if (nb > INT32_MAX) return err_set(err, "paged KV cache: %lld blocks are too many", (long long)nb);
        if (kv_cache_create_paged(&kv, m, S, max_len, cfg->kv_block, (int)nb, err) != 0) return -1;
    } else if (kv_cache_create(&kv, m, S, max_len, err) != 0) return -1;
    if (decode_scratch_create(&sc, m, cap, err) != 0) {
        kv_cache_free(&kv, m);
        return -1;
    }
    Slot *slots = calloc(S, sizeof *slots);
    int32_t *toks = malloc(cap * sizeof(int32_t)), *slot_of = malloc(cap * sizeof(int32_t)),
            *pos = malloc(cap * sizeof(int32_t));
    int *rows = malloc(cap * sizeof(int)), *row_slot = malloc(cap * sizeof(int));
    /* A backend that samples (the GPU) keeps the logits where they are and
     * returns only ids and log-probs; otherwise they come to the host. */
    const Backend *be = m->be;
    int dev_sample = be->sample != NULL;
    float *logits = dev_sample ? NULL : malloc((size_t)S * V * sizeof(float));
    double *u = malloc((size_t)S * sizeof(double));
    float *lps = malloc((size_t)S * sizeof(float));
    int32_t *stoks = malloc((size_t)S * sizeof(int32_t));
    void *d_smp = dev_sample ? be->alloc((size_t)S * (sizeof(double) + 2 * sizeof(int32_t))) : NULL;
    double *d_u = d_smp;
    int32_t *d_tok = d_smp ? (int32_t *)(d_u + S) : NULL; /* then the log-probs, (float *)(d_tok + rows) */
    void *smp_h = dev_sample ? malloc((size_t)S * (sizeof(int32_t) + sizeof(float))) : NULL;
    Resume rs = {.tok = malloc((size_t)n_req * sizeof(int32_t *)), .len = malloc((size_t)n_req * sizeof(int)),
                 .own = calloc(n_req, sizeof(int32_t *)), .rng = malloc((size_t)n_req * sizeof(Rng)),
                 .queue = malloc((size_t)n_req * sizeof(int)), .n = n_req};
    int rc = 0;
    memset(&sw, 0, sizeof sw);
    if ((!dev_sample && sampler_work_init(&sw, V) != 0) || !slots || !toks || !slot_of || !pos || !rows ||
        !row_slot || (!dev_sample && !logits) || (dev_sample && (!d_smp || !smp_h)) || !u || !lps || !stoks ||
        !rs.tok || !rs.len || !rs.own || !rs.rng || !rs.queue) {
        rc = err_set(err, "out of memory for generation buffers");
        goto done;
    }
    for (int r = 0; r < n_req; r++) {
        out[r].tokens = malloc((size_t)(cfg->max_new_tokens > 0 ? cfg->max_new_tokens : 1) * sizeof(int32_t));
        out[r].logp = malloc((size_t)(cfg->max_new_tokens > 0 ? cfg->max_new_tokens : 1) * sizeof(float));
        if (!out[r].tokens || !out[r].logp) {
            rc = err_set(err, "out of memory for outputs");
            goto done;
        }
    }
    for (int r = 0; r < n_req; r++) rs.tok[r] = req[r].prompt, rs.len[r] = req[r].prompt_len;
    for (int s = 0; s < S; s++) slots[s].req = -1;
    int next_req = 0, n_done = 0, idle = 0;
    long n_started = 0;
    double t0 = now_s();
    if (cfg->max_new_tokens <= 0) {
        for (int r = 0; r < n_req; r++) out[r].finish = GEN_FINISH_LENGTH;
        goto done;
    }
    while (n_done < n_req) {
        int n = 0, n_rows = 0, budget = chunk;
        for (int s = 0; s < S; s++) {
            Slot *sl = &slots[s];
            if (sl->req < 0 && (rs.head < rs.tail || next_req < n_req)) {
                /* preempted requests first; a paged pool must have room
                 * for the whole prompt and a first token */
                int r = rs.head < rs.tail ? rs.queue[rs.head % rs.n] : next_req;
                if (kv.block == 0 || (int64_t)kv.n_free * kv.block >= rs.len[r] + 1) {
                    if (rs.head < rs.tail) rs.head++;
                    else next_req++;
                    sl->req = r;
                    sl->started = n_started++;
                    sl->prefilled = sl->len = sl->ready = 0;
                    if (rs.own[r]) sl->rng = rs.rng[r];
                    else rng_split(&sl->rng, cfg->seed, req[r].stream);
                }
            }
            if (sl->req < 0) continue;
            const GenRequest *q = &req[sl->req];
            const int32_t *ptok = rs.tok[sl->req];
            int plen = rs.len[sl->req];
            if (sl->prefilled == 0 && q->prompt_len > 1 && !cfg->no_prefix_sharing) {
                /* Another slot holding the same prompt donates its cache rows:
                 * the G samples of a GRPO group prefill once, not G times. */
                int donor = find_donor(slots, S, s, req, q);
                if (donor >= 0 && slots[donor].ready >= q->prompt_len - 1) {
                    int donor_req = slots[donor].req, np = q->prompt_len - 1, p0 = 0;
                    /* paged: the donor's full blocks are shared, only a
                     * part-full last block is copied; else all is copied */
                    int g = kv.block > 0 ? gen_make_room(&kv, slots, S, s, np % kv.block != 0, req, out, &rs, stats)
                                         : 1;
                    if (g < 0) goto oom;
                    if (g == 0) continue; /* s itself made room */
                    if (slots[donor].req == donor_req) { /* else the donor made room: s prefills its prompt */
                        if (kv.block > 0) {
                            kv_slot_share(&kv, donor, s, np); /* cannot fail: s holds nothing, the room is there */
                            gen_note_peak(&kv, stats);
                            p0 = np / kv.block * kv.block;
                        }
                        kv_cache_copy_prefix(m, &kv, donor, s, p0, np);
                        sl->prefilled = sl->len = sl->ready = np;
                        if (stats) stats->shared_prefix_tokens += np;
                    }
                } else if (donor >= 0 && slots[donor].prefilled > 0) {
                    continue; /* the donor's prefill is under way: copy next step */
                }
            }
            if (sl->prefilled < plen) {
                int take = plen - sl->prefilled;
                if (take > budget) take = budget;
                if (take == 0) continue;
                int g = gen_reserve(&kv, slots, S, s, sl->len + take, req, out, &rs, stats);
                if (g < 0) goto oom;
                if (g == 0) continue;
                for (int i = 0; i < take; i++) {
                    toks[n] = ptok[sl->prefilled + i];
                    slot_of[n] = s;
                    pos[n] = sl->len + i;
                    n++;
                }
                sl->prefilled += take;
                sl->len += take;
                budget -= take;
                if (sl->prefilled == plen) rows[n_rows] = n - 1, row_slot[n_rows++] = s;
            } else {
                int g = gen_reserve(&kv, slots, S, s, sl->len + 1, req, out, &rs, stats);
                if (g < 0) goto oom;
                if (g == 0) continue;
                toks[n] = sl->last;
                slot_of[n] = s;
                pos[n] = sl->len++;
                rows[n_rows] = n++, row_slot[n_rows++] = s;
            }
        }
        if (n == 0) { /* every slot waited (for room or a donor): cannot happen twice */
            if (++idle > 1) {
                rc = err_set(err, "generation made no progress (%d of %d requests done)", n_done, n_req);
                goto done;
            }
            continue;
        }
        idle = 0;
        double t_issue = now_s();
        if (dev_sample) { /* the step's uniforms go up first: an upload waits for the stream */
            for (int i = 0; i < n_rows; i++) /* one draw per sampled token, as the host sampler */
                u[i] = cfg->sampling.temperature > 0 ? rng_f64(&slots[row_slot[i]].rng) : 0.0;
            be->upload(d_u, u, (size_t)n_rows * sizeof(double));
        }
        if (model_decode(m, &kv, &sc, toks, slot_of, pos, n, rows, n_rows, logits, err) != 0) {
            rc = -1;
            goto done;
        }
        for (int s = 0; s < S; s++) slots[s].ready = slots[s].len;
        if (stats) {
            stats->decode_tokens += n_rows; /* one new token per sampled row */
            stats->prefill_tokens += n - n_rows;
            stats->steps++;
            stats->prefill_steps += n > n_rows;
        }
        if (dev_sample) {
            const SamplerParams *sp = &cfg->sampling;
            /* ids then log-probs, adjacent: one download */
            float *d_lpn = (float *)(d_tok + n_rows);
            be->sample(d_tok, d_lpn, sc.logits_be, d_u, n_rows, V, sp->temperature, sp->top_k, sp->top_p, sp->min_p);
            double t_wait = now_s();
            be->download(smp_h, d_tok, (size_t)n_rows * (sizeof(int32_t) + sizeof(float)));
            memcpy(stoks, smp_h, (size_t)n_rows * sizeof(int32_t));
            memcpy(lps, (const char *)smp_h + (size_t)n_rows * sizeof(int32_t), (size_t)n_rows * sizeof(float));
            if (stats) stats->issue_seconds += t_wait - t_issue, stats->wait_seconds += now_s() - t_wait;
        } else {
            for (int i = 0; i < n_rows; i++)
                stoks[i] = sampler_sample(&cfg->sampling, logits + (size_t)i * V, &sw, &slots[row_slot[i]].rng,
                                          &lps[i]);
            if (stats) stats->issue_seconds += now_s() - t_issue; /* the host computes: nothing to wait for */
        }
        if (stats && n > n_rows) stats->prefill_step_seconds += now_s() - t_issue;
        for (int i = 0; i < n_rows; i++) {
            Slot *sl = &slots[row_slot[i]];
            int r = sl->req;
            float lp = lps[i];
            int32_t tok = stoks[i];
            if (tok < 0 || tok >= V) {
                rc = err_set(err, "sampler returned token %d outside the vocabulary (%d)", (int)tok, V);
                goto done;
            }
            GenOutput *o = &out[r];
            o->tokens[o->n] = tok;
            o->logp[o->n] = lp;
            o->n++;
            if (cfg->on_token) cfg->on_token(cfg->user, r, tok, lp);
            GenFinish why = GEN_FINISH_LENGTH;
            int stop = is_stop(m, cfg, tok, &why);
            if (!stop && cfg->stop_fn && cfg->stop_fn(cfg->user, r, o->tokens, o->n)) stop = 1, why = GEN_FINISH_STOP;
            if (!stop && o->n >= cfg->max_new_tokens) stop = 1, why = GEN_FINISH_LENGTH;
            if (stop) {
                o->finish = why;
                sl->req = -1;
                if (kv.block > 0) kv_slot_release(&kv, row_slot[i]);
                n_done++;
            } else sl->last = tok;
        }
    }
    if (stats) stats->seconds = now_s() - t0;
    goto done;
oom:
    rc = err_set(err, "out of memory for a preempted sequence's tokens");
done:
    if (rc) gen_outputs_free(out, n_req);
    sampler_work_free(&sw);
    kv_cache_free(&kv, m);
    decode_scratch_free(&sc, m);
    free(slots);
    free(toks);
    free(slot_of);
    free(pos);
    free(rows);
    free(row_slot);
    free(logits);
    free(u);
    free(lps);
    free(stoks);
    for (int r = 0; rs.own && r < n_req; r++) free(rs.own[r]);
    free(rs.tok), free(rs.len), free(rs.own), free(rs.rng), free(rs.queue);
    if (d_smp) be->free(d_smp);
    free(smp_h);
    return rc;
}
