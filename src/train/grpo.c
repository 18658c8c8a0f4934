/* The GRPO trainer loop (see grpo.h). One step: take the next prompts,
 * sample G completions each, score them, turn rewards into group-relative
 * advantages, then mu optimizer steps over those rollouts in micro-batches
 * (old-policy log-probs come from the first pass, so no extra forward),
 * and log everything. All randomness derives from (seed, step), so a run
 * resumed from a checkpoint repeats the uninterrupted one bit for bit.
 *
 * Data parallel (c->comm): every rank walks the same data order and takes
 * a contiguous slice of each step's prompts (whole groups), with the random
 * streams one process would use for them; per-completion rewards and
 * lengths are all-gathered so every rank computes the same advantages,
 * group keep/drop decisions, normalisers and metrics; gradients are summed
 * across ranks before clipping. Only rank 0 writes files. */
#include "base/clock.h"
#include "train/grpo.h"
#include "train/memplan.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "dist/dist.h"
#include "eval/rollout.h"
#include "gen/prompt.h"
#include "io/dataset.h"
#include "io/metrics.h"
#include "io/progress.h"
#include "io/runplot.h"
#include "io/samples.h"
#include "io/tfevents.h"
#include "train/checkpoint.h"
#include "train/grpo_loss.h"
#include "train/optim.h"
#include "train/schedule.h"
#include "train/zero.h"

volatile int grpo_stop_requested = 0;

static double now_s(void) { return clock_seconds(); }

typedef struct Trainer {
    GrpoConfig *c;
    Model policy, ref;
    int has_ref;
    Tokenizer *tok;
    char tok_path[4096];
    ChatTemplate tmpl;
    RewardSet rs;
    int acc_idx, fmt_idx;
    Dataset train, eval;
    TokIds *train_ids, *eval_ids;
    AdamW opt;
    Acts acts;
    TrainState st;
    int64_t *order; /* data order of the current epoch */
    RolloutConfig rc;
    int32_t *stop_ids;
    MetricsWriter mw;
    SamplesWriter sw;
    TfEvents tf;
    int tf_open;
    Progress pg;
    LrConfig lrc;
    Comm *cm;  /* NULL: one process */
    int rank0; /* this rank writes the run directory */
} Trainer;

/* ---- setup ---- */

static void make_order(Trainer *t) {
    int n = t->train.n;
    for (int i = 0; i < n; i++) t->order[i] = i;
    Rng r;
    rng_split(&r, (uint64_t)t->c->seed, 0x0DA7A000u + (uint64_t)t->st.epoch);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_u64(&r) % (uint64_t)(i + 1));
        int64_t x = t->order[i];
        t->order[i] = t->order[j];
        t->order[j] = x;
    }
}

static int next_prompt(Trainer *t) {
    if (t->st.data_pos >= t->train.n) {
        t->st.epoch++;
        t->st.data_pos = 0;
        make_order(t);
    }
    return (int)t->order[t->st.data_pos++];
}

static int encode_all(Trainer *t, Dataset *d, TokIds **out, const char *what, Err *err) {
    *out = calloc(d->n ? d->n : 1, sizeof **out);
    for (int i = 0; i < d->n; i++) {
        if (prompt_encode(t->tok, &t->tmpl, t->c->system_prompt, d->ex[i].prompt, &(*out)[i], NULL, err) != 0)
            return err_prefix(err, "%s example %d", what, i + 1);
        if ((int64_t)(*out)[i].n > t->c->max_prompt_len)
            return err_set(err, "%s example %d: prompt is %zu tokens, more than max_prompt_len = %" PRId64, what, i + 1,
                           (*out)[i].n, t->c->max_prompt_len);
    }
    return 0;
}

static int load_data(Trainer *t, Dataset *d, const char *path, int64_t limit, Err *err) {
    DatasetOptions o = {0};
    if (dataset_format_parse(t->c->data_format, &o.format) != 0)
        return err_set(err, "data.format '%s': expected auto, jsonl, gsm8k, math or countdown", t->c->data_format);
    o.prompt_field = t->c->prompt_field[0] ? t->c->prompt_field : NULL;
    o.answer_field = t->c->answer_field[0] ? t->c->answer_field : NULL;
    o.prompt_suffix = t->c->prompt_suffix;
    o.limit = (int)limit;
    return dataset_load(d, path, &o, err);
}

static int setup_stops(Trainer *t, Err *err) {
    t->stop_ids = calloc(t->c->stop.n + 1, sizeof(int32_t));
    int n_ids = 0, n_str = 0;
    char **strs = calloc(t->c->stop.n + 1, sizeof(char *));
    for (size_t i = 0; i < t->c->stop.n; i++) {
        const char *s = t->c->stop.items[i];
        int32_t id = tokenizer_token_id(t->tok, s);
        if (id >= 0) t->stop_ids[n_ids++] = id; /* a whole token: cheapest check */
        else strs[n_str++] = (char *)s;
    }
    t->rc.gen.stop_ids = t->stop_ids;
    t->rc.gen.n_stop_ids = n_ids;
    t->rc.stop_strings = strs;
    t->rc.n_stop_strings = n_str;
    (void)err;
    return 0;
}

void grpo_plan_input(const GrpoConfig *c, int world, MemPlanInput *mi) {
    int T = (int)(c->max_prompt_len + c->max_completion_len);
    *mi = (MemPlanInput){.train_batch = (int)c->micro_batch, .train_len = T, .recompute = c->recompute,
                         .has_ref = c->beta > 0, .gen_batch = (int)c->gen_batch, .gen_len = T, .world = world,
                         .zero = c->zero, .kv_block = (int)c->kv_block, .kv_tokens = c->kv_tokens,
                         .keep_logits = -1};
}

static int trainer_setup(Trainer *t, GrpoConfig *c, Err *err) {
    memset(t, 0, sizeof *t);
    t->c = c;
    t->cm = c->comm;
    t->rank0 = comm_rank(t->cm) == 0;
    if (!c->model[0]) return err_set(err, "recipe: key 'model' is required (a checkpoint directory)");
    if (!c->data[0]) return err_set(err, "recipe: key 'data.path' is required (training prompts, JSON lines)");
    if (c->micro_batch > c->group_size * c->prompts_per_step) c->micro_batch = c->group_size * c->prompts_per_step;
    if (rewardset_parse(&t->rs, c->rewards, err) != 0) return err_prefix(err, "recipe: key 'rewards'");
    for (size_t i = 0; i < c->reward_options.n; i++)
        if (rewardset_option(&t->rs, c->reward_options.items[i], err) != 0) return err_prefix(err, "recipe: key 'reward_options'");
    t->acc_idx = rollout_accuracy_index(&t->rs);
    t->fmt_idx = rollout_format_index(&t->rs);
    if (c->tokenizer[0]) snprintf(t->tok_path, sizeof t->tok_path, "%s", c->tokenizer);
    else snprintf(t->tok_path, sizeof t->tok_path, "%s/tokenizer.json", c->model);
    if (tokenizer_load(&t->tok, t->tok_path, err) != 0) return -1;
    if (prompt_template_load(&t->tmpl, c->template_name, c->model, err) != 0) return -1;
    if (load_data(t, &t->train, c->data, c->data_limit, err) != 0) return -1;
    if (encode_all(t, &t->train, &t->train_ids, c->data, err) != 0) return -1;
    if (c->eval_data[0]) {
        if (load_data(t, &t->eval, c->eval_data, c->eval_limit, err) != 0) return -1;
        if (encode_all(t, &t->eval, &t->eval_ids, c->eval_data, err) != 0) return -1;
    }
    const Backend *be = c->be ? c->be : backend_cpu();
    int Tmax = (int)(c->max_prompt_len + c->max_completion_len);
    MemPlanInput mi;
    grpo_plan_input(c, comm_world(t->cm), &mi);
    int print = t->rank0 && (be->mem_info || !c->quiet || comm_world(t->cm) > 1);
    if (memplan_run(c->model, be, &mi, print,
                    "lower micro_batch, gen_batch or max_prompt_len + max_completion_len, set recompute: true, "
                    "or shard AdamW over more ranks (optim.zero)",
                    stderr, err) != 0)
        return -1;
    if (model_load(&t->policy, c->model, be, err) != 0) return -1;
    if (tokenizer_vocab_size(t->tok) > t->policy.cfg.vocab_size)
        return err_set(err, "%s has %d tokens but the model's vocabulary is %d", t->tok_path,
                       tokenizer_vocab_size(t->tok), t->policy.cfg.vocab_size);
    if (c->beta > 0) {
        const char *rp = c->ref_model[0] ? c->ref_model : c->model;
        if (model_load(&t->ref, rp, be, err) != 0) return -1;
        t->has_ref = 1;
        if (model_freeze(&t->ref, err) != 0) return -1;
    }
    if (model_alloc_grads(&t->policy, err) != 0) return -1;
    if (zero_adamw_create(&t->opt, &t->policy, t->cm, c->zero, (float)c->beta1, (float)c->beta2, (float)c->adam_eps,
                          (float)c->weight_decay, err) != 0)
        return -1;
    if (acts_create(&t->acts, &t->policy, (int)c->micro_batch, Tmax, c->recompute, err) != 0) return -1;
    if (mi.keep_logits == 1 && acts_keep_logits(&t->acts, &t->policy, err) != 0) return -1;
    t->order = malloc(t->train.n * sizeof(int64_t));
    t->lrc = (LrConfig){(float)c->lr, (LrSchedule)c->lr_schedule, (int)c->warmup_steps, (int)(c->steps * c->mu),
                        (float)c->min_lr_ratio};
    t->rc.gen = (GenConfig){
        .sampling = {.temperature = (float)c->temperature, .top_k = (int)c->top_k, .top_p = (float)c->top_p,
                     .min_p = (float)c->min_p},
        .max_new_tokens = (int)c->max_completion_len,
        .max_batch = (int)c->gen_batch,
        .seed = (uint64_t)c->seed,
        .kv_block = (int)c->kv_block,
        .kv_tokens = c->kv_tokens,
    };
    return setup_stops(t, err);
}

static void trainer_free(Trainer *t) {
    free((void *)t->rc.stop_strings);
    free(t->stop_ids);
    free(t->order);
    acts_free(&t->acts, &t->policy);
    adamw_free(&t->opt, &t->policy);
    if (t->has_ref) model_free(&t->ref);
    model_free(&t->policy);
    for (int i = 0; t->train_ids && i < t->train.n; i++) free(t->train_ids[i].ids);
    for (int i = 0; t->eval_ids && i < t->eval.n; i++) free(t->eval_ids[i].ids);
    free(t->train_ids);
    free(t->eval_ids);
    dataset_free(&t->train);
    dataset_free(&t->eval);
    rewardset_free(&t->rs);
    chat_template_free(&t->tmpl);
    if (t->tok) tokenizer_free(t->tok);
    if (t->tf_open) tfevents_close(&t->tf);
    json_decref(t->st.extra);
}

/* ---- evaluation on the held-out prompts ---- */

/* Each rank evaluates its slice of the prompts; the sums are counts and
 * integers, so adding the ranks' partial sums is exact. */
static int run_eval(Trainer *t, double *pass1, double *fmt, double *len, Err *err) {
    int n = t->eval.n, k = (int)t->c->eval_samples, lo, hi;
    dist_slice(t->cm, n, &lo, &hi);
    json_t **recs = malloc((n ? n : 1) * sizeof *recs);
    for (int i = 0; i < n; i++) recs[i] = t->eval.ex[i].record;
    Rollout ro = {0};
    /* fixed streams: every evaluation sees the same sampling noise */
    int rc = hi > lo ? rollout_run(&t->policy, t->tok, t->eval_ids + lo, recs + lo, hi - lo, k, &t->rc,
                                   ((uint64_t)1 << 62) + (uint64_t)lo * k, &t->rs, &ro, err)
                     : 0;
    free(recs);
    if (rc) return -1;
    double s[3] = {0, 0, 0}; /* accurate, formatted, tokens */
    for (int i = 0; i < ro.n; i++) {
        s[0] += t->acc_idx >= 0 && ro.each[(size_t)i * ro.n_rewards + t->acc_idx].score >= 1.0;
        s[1] += t->fmt_idx >= 0 && ro.each[(size_t)i * ro.n_rewards + t->fmt_idx].score >= 1.0;
        s[2] += ro.out[i].n;
    }
    if (hi > lo) rollout_free(&ro);
    if (dist_sum_f64(t->cm, s, 3, err) != 0) return -1;
    double total = (double)n * k;
    *pass1 = s[0] / total;
    *fmt = t->fmt_idx >= 0 ? s[1] / total : NAN;
    *len = s[2] / total;
    return 0;
}

/* ---- one step ---- */

typedef struct Seq {
    const TokIds *prompt;
    const GenOutput *out;
    float adv;
    float mask; /* 0 for masked-out (truncated) completions */
    int off;    /* into per-token arrays (old, ref) */
    int idx;    /* place in generation order (micro_batch_sort's tie-break) */
} Seq;

/* Summed over ranks: loss .. mb_positions (keep them first and in this order);
 * logp_diff is a max. kl_sum / kl_tokens are the first pass's; lpd_sum /
 * lpd_n give the mean sampler-vs-trainer log-prob gap. */
typedef struct StepStats {
    double loss, kl_sum, kl_tokens, clip_low, clip_high, tokens, entropy, ent_tokens, lpd_sum, lpd_n;
    double mb_tokens, mb_positions; /* the first pass's micro-batches: real tokens, positions with padding */
    double logp_diff, grad_norm, lr;
} StepStats;
#define STEP_STATS_SUMMED 12

/* Forward (and with dl, backward) over sequences seq[0..M); gathers the
 * completion log-probs into lp[off..]. */
static int micro_forward(Trainer *t, Model *m, Seq *seq, int M, float *lp, float *ent, Err *err) {
    int Tm = 0;
    for (int i = 0; i < M; i++) {
        int T = (int)seq[i].prompt->n + seq[i].out->n;
        if (T > Tm) Tm = T;
    }
    int32_t *ids = malloc((size_t)M * Tm * sizeof(int32_t));
    for (int i = 0; i < M; i++) {
        int P = (int)seq[i].prompt->n, C = seq[i].out->n;
        int32_t *row = ids + (size_t)i * Tm;
        memcpy(row, seq[i].prompt->ids, P * sizeof(int32_t));
        memcpy(row + P, seq[i].out->tokens, C * sizeof(int32_t));
        for (int j = P + C; j < Tm; j++) row[j] = row[P + C - 1]; /* padding: never attended from real rows */
    }
    int rc = model_forward(m, &t->acts, ids, M, Tm, (float)t->c->temperature, NULL, err);
    free(ids);
    if (rc) return -1;
    for (int i = 0; i < M; i++) {
        int P = (int)seq[i].prompt->n;
        for (int j = 0; j < seq[i].out->n; j++) {
            lp[seq[i].off + j] = t->acts.logp[(size_t)i * Tm + P - 1 + j];
            if (ent) ent[seq[i].off + j] = t->acts.ent[(size_t)i * Tm + P - 1 + j];
        }
    }
    return 0;
}

static int seq_len(const Seq *s) { return (int)s->prompt->n + s->out->n; }

/* Longest first; equal lengths keep their order (the index breaks ties),
 * so the order is the same on every run and on resume. */
static int seq_cmp(const void *a, const void *b) {
    const Seq *x = a, *y = b;
    int lx = seq_len(x), ly = seq_len(y);
    if (lx != ly) return lx > ly ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Trains on this rank's S sequences; norm_seqs / norm_tokens are the
 * global batch's, so the ranks' gradients sum to the full-batch one. A
 * micro-batch is padded to its longest sequence, so with
 * micro_batch_sort the sequences go in by length: the normalisers are the
 * batch's, so the gradient is the same up to the order of the sums. */
static int train_on(Trainer *t, Seq *seq, int S, double norm_seqs, double norm_tokens, StepStats *ss, Err *err) {
    GrpoConfig *c = t->c;
    if (c->micro_batch_sort) {
        for (int i = 0; i < S; i++) seq[i].idx = i;
        qsort(seq, S, sizeof *seq, seq_cmp);
    }
    int total = 0;
    for (int i = 0; i < S; i++) {
        seq[i].off = total;
        total += seq[i].out->n;
    }
    float *old = malloc(total * sizeof(float)), *cur = malloc(total * sizeof(float));
    float *ref = t->has_ref ? malloc(total * sizeof(float)) : NULL, *ent = malloc(total * sizeof(float));
    int Mb = (int)c->micro_batch, Cmax = (int)c->max_completion_len;
    float *lp_b = malloc((size_t)Mb * Cmax * sizeof(float)), *old_b = malloc((size_t)Mb * Cmax * sizeof(float));
    float *ref_b = malloc((size_t)Mb * Cmax * sizeof(float)), *mask_b = malloc((size_t)Mb * Cmax * sizeof(float));
    float *adv_b = malloc(Mb * sizeof(float)), *dl_b = malloc((size_t)Mb * Cmax * sizeof(float));
    float *dl = malloc((size_t)t->acts.cap_N * sizeof(float));
    GrpoLossConfig lc = {(GrpoLossType)c->loss_type, (float)c->epsilon, (float)c->epsilon_high, (float)c->beta,
                         (KlEstimator)c->kl_estimator, (int)c->max_completion_len};
    int rc = 0;
    if (t->has_ref)
        for (int b0 = 0; b0 < S && !rc; b0 += Mb) {
            int M = S - b0 < Mb ? S - b0 : Mb;
            rc = micro_forward(t, &t->ref, seq + b0, M, ref, NULL, err);
        }
    for (int it = 0; it < c->mu && !rc; it++) {
        model_zero_grads(&t->policy);
        GrpoLossStats ls = {0};
        for (int b0 = 0; b0 < S && !rc; b0 += Mb) {
            int M = S - b0 < Mb ? S - b0 : Mb;
            Seq *sq = seq + b0;
            if ((rc = micro_forward(t, &t->policy, sq, M, cur, it == 0 ? ent : NULL, err))) break;
            if (it == 0) {
                ss->mb_positions += (double)M * t->acts.T;
                for (int i = 0; i < M; i++) ss->mb_tokens += seq_len(&sq[i]);
            }
            /* to the padded (M, Cm) layout of the loss */
            int Cm = 0;
            for (int i = 0; i < M; i++) Cm = sq[i].out->n > Cm ? sq[i].out->n : Cm;
            for (int i = 0; i < M; i++) {
                adv_b[i] = sq[i].adv;
                for (int j = 0; j < Cm; j++) {
                    int in = j < sq[i].out->n;
                    size_t k = (size_t)i * Cm + j, g = (size_t)sq[i].off + j;
                    if (in && it == 0) {
                        old[g] = cur[g];
                        double d = fabs((double)cur[g] - sq[i].out->logp[j]);
                        if (d > ss->logp_diff) ss->logp_diff = d;
                        ss->lpd_sum += d, ss->lpd_n += 1;
                        if (sq[i].mask > 0) ss->entropy += ent[g], ss->ent_tokens += 1;
                    }
                    lp_b[k] = in ? cur[g] : 0;
                    old_b[k] = in ? old[g] : 0;
                    ref_b[k] = in && ref ? ref[g] : 0;
                    mask_b[k] = in ? sq[i].mask : 0;
                }
            }
            grpo_loss(&lc, M, Cm, lp_b, old_b, t->has_ref ? ref_b : NULL, mask_b, adv_b, norm_seqs, norm_tokens, dl_b, &ls);
            int Tm = t->acts.T;
            memset(dl, 0, (size_t)M * Tm * sizeof(float));
            for (int i = 0; i < M; i++) {
                int P = (int)sq[i].prompt->n;
                for (int j = 0; j < sq[i].out->n; j++) dl[(size_t)i * Tm + P - 1 + j] = dl_b[(size_t)i * Cm + j];
            }
            model_backward(&t->policy, &t->acts, dl);
        }
        if (rc || (rc = dist_grads_allreduce(t->cm, &t->policy, err))) break;
        double gn = adamw_clip_grad_norm(&t->opt, &t->policy, c->grad_clip); /* applied in the step */
        float lr = lr_at(&t->lrc, t->opt.t);
        if ((rc = zero_step(t->cm, &t->opt, &t->policy, lr, err))) break;
        if (dist_check_enabled() && (rc = dist_weights_check(t->cm, &t->policy, t->st.step + 1, err))) break;
        if (it == 0) {
            ss->loss = ls.loss;
            ss->kl_sum = ls.kl_sum, ss->kl_tokens = ls.tokens;
        }
        ss->clip_low += ls.clip_low, ss->clip_high += ls.clip_high, ss->tokens += ls.tokens;
        ss->grad_norm = gn;
        ss->lr = lr;
    }
    free(old), free(cur), free(ref), free(ent), free(lp_b), free(old_b), free(ref_b), free(mask_b), free(adv_b);
    free(dl_b), free(dl);
    return rc;
}

static void log_sample_group(Trainer *t, const Rollout *ro, int g, int prompt_idx, Err *err) {
    char *ptext = NULL;
    TokIds tmp;
    prompt_encode(t->tok, &t->tmpl, t->c->system_prompt, t->train.ex[prompt_idx].prompt, &tmp, &ptext, err);
    free(tmp.ids);
    for (int j = 0; j < ro->G; j++) {
        int i = g * ro->G + j;
        json_t *rw = json_object();
        for (int r = 0; r < ro->n_rewards; r++) {
            json_t *o = json_object();
            json_object_set_new(o, "score", json_real(ro->each[(size_t)i * ro->n_rewards + r].score));
            json_object_set_new(o, "reason", json_string(ro->each[(size_t)i * ro->n_rewards + r].reason));
            json_object_set_new(rw, t->rs.kind[r]->name, o);
        }
        json_object_set_new(rw, "total", json_real(ro->reward[i]));
        json_t *ex = json_object();
        json_object_set_new(ex, "answer", json_incref(json_object_get(t->train.ex[prompt_idx].record, "answer")));
        json_object_set_new(ex, "tokens", json_integer(ro->out[i].n));
        samples_write(&t->sw, t->st.step + 1, ptext ? ptext : "", ro->text[i], rw, ex, err);
        json_decref(rw);
        json_decref(ex);
    }
    free(ptext);
}

/* Per completion, what every rank needs to know about every other rank's
 * rollouts: [reward, length, truncated, score of each reward function]. */
enum { REC_REWARD, REC_LEN, REC_TRUNC, REC_SCORES };

/* Generates this rank's slice [lo, hi) of the round's `need` prompts and
 * all-gathers the per-completion records of all of them into glob
 * (need * G * NF, prompt-major, as one process would have them). */
static int round_rollout(Trainer *t, const int *pidx, int need, int round, Rollout *ro, double *glob, Err *err) {
    int G = (int)t->c->group_size, NF = REC_SCORES + t->rs.n, W = comm_world(t->cm), lo, hi;
    dist_slice(t->cm, need, &lo, &hi);
    memset(ro, 0, sizeof *ro);
    if (hi > lo) {
        TokIds *pr = malloc((hi - lo) * sizeof(TokIds));
        json_t **recs = malloc((hi - lo) * sizeof(json_t *));
        for (int i = lo; i < hi; i++) pr[i - lo] = t->train_ids[pidx[i]], recs[i - lo] = t->train.ex[pidx[i]].record;
        /* the streams one process would use for these prompts */
        uint64_t base = ((uint64_t)t->st.step << 24) | ((uint64_t)round << 20);
        int rc = rollout_run(&t->policy, t->tok, pr, recs, hi - lo, G, &t->rc, base + (uint64_t)lo * G, &t->rs, ro, err);
        free(pr);
        free(recs);
        if (rc) return -1;
    }
    size_t per = (size_t)dist_slice_max(t->cm, need) * G * NF; /* doubles per rank, padded */
    double *mine = calloc(per ? per : 1, sizeof(double)), *all = malloc((size_t)W * (per ? per : 1) * sizeof(double));
    for (int i = 0; i < ro->n; i++) {
        double *r = mine + (size_t)i * NF;
        r[REC_REWARD] = ro->reward[i];
        r[REC_LEN] = ro->out[i].n;
        r[REC_TRUNC] = ro->out[i].finish == GEN_FINISH_LENGTH;
        for (int k = 0; k < t->rs.n; k++) r[REC_SCORES + k] = ro->each[(size_t)i * t->rs.n + k].score;
    }
    int rc = dist_allgather(t->cm, mine, per * sizeof(double), all, err);
    for (int q = 0; !rc && q < W; q++) {
        int qlo, qhi;
        dist_slice_of(W, q, need, &qlo, &qhi);
        memcpy(glob + (size_t)qlo * G * NF, all + (size_t)q * per, (size_t)(qhi - qlo) * G * NF * sizeof(double));
    }
    free(mine);
    free(all);
    if (rc && ro->n) rollout_free(ro);
    return rc;
}

static int grpo_step(Trainer *t, Err *err) {
    GrpoConfig *c = t->c;
    int G = (int)c->group_size, P = (int)c->prompts_per_step, NF = REC_SCORES + t->rs.n;
    double t0 = now_s();
    int rounds = c->dynamic_sampling ? (int)c->max_resample + 1 : 1;
    Rollout *ros = calloc(rounds, sizeof *ros);
    int **pidx = calloc(rounds, sizeof *pidx);
    Seq *seq = calloc((size_t)P * G, sizeof *seq); /* this rank's kept completions */
    int *seq_at = malloc((size_t)P * G * sizeof(int)); /* their place in the global kept batch */
    double *glob = malloc((size_t)P * G * NF * sizeof(double));
    float *rew = malloc((size_t)P * G * sizeof(float)), *adv = malloc((size_t)P * G * sizeof(float));
    int kept = 0, dropped = 0, n_ro = 0, n_seq = 0, rc = 0;
    double gen_s = 0, rew_s = 0, norm_tokens = 0, kept_tok = 0;
    double gen_tokens = 0, preempt = 0, kv_peak = 0;
    /* metrics over every generated completion of the step */
    double r_sum = 0, r_sq = 0, acc = 0, fmt = 0, len_sum = 0, trunc = 0;
    double *rf = calloc(t->rs.n ? t->rs.n : 1, sizeof(double));
    int len_min = 1 << 30, len_max = 0, n_gen = 0;
    for (int round = 0; round < rounds && kept < P && !rc; round++) {
        int need = P - kept, lo, hi;
        dist_slice(t->cm, need, &lo, &hi);
        pidx[round] = malloc(need * sizeof(int));
        for (int i = 0; i < need; i++) pidx[round][i] = next_prompt(t);
        if ((rc = round_rollout(t, pidx[round], need, round, &ros[round], glob, err))) break;
        n_ro++;
        Rollout *ro = &ros[round];
        gen_s += ro->seconds_gen, rew_s += ro->seconds_reward, gen_tokens += (double)ro->gen_tokens;
        preempt += (double)ro->preemptions;
        if ((double)ro->kv_peak_tokens > kv_peak) kv_peak = (double)ro->kv_peak_tokens;
        for (int i = 0; i < need * G; i++) {
            const double *g = glob + (size_t)i * NF;
            double r = g[REC_REWARD];
            r_sum += r, r_sq += r * r;
            for (int k = 0; k < t->rs.n; k++) rf[k] += g[REC_SCORES + k];
            if (t->acc_idx >= 0) acc += g[REC_SCORES + t->acc_idx] >= 1.0;
            if (t->fmt_idx >= 0) fmt += g[REC_SCORES + t->fmt_idx] >= 1.0;
            int L = (int)g[REC_LEN];
            len_sum += L, len_min = L < len_min ? L : len_min, len_max = L > len_max ? L : len_max;
            trunc += g[REC_TRUNC];
            n_gen++;
        }
        /* group 0 is always rank 0's (dist_slice) */
        if (round == 0 && t->rank0 && c->samples_every > 0 && (t->st.step + 1) % c->samples_every == 0)
            log_sample_group(t, ro, 0, pidx[0][0], err);
        for (int g = 0; g < need && kept < P; g++) {
            double mn = glob[(size_t)g * G * NF + REC_REWARD], mx = mn;
            for (int j = 1; j < G; j++) {
                double r = glob[((size_t)g * G + j) * NF + REC_REWARD];
                mn = r < mn ? r : mn, mx = r > mx ? r : mx;
            }
            if (c->dynamic_sampling && mx == mn) {
                dropped++;
                continue;
            }
            for (int j = 0; j < G; j++) {
                const double *rec = glob + ((size_t)g * G + j) * NF;
                int s = kept * G + j;
                float mask = (c->mask_truncated && rec[REC_TRUNC] != 0) ? 0.0f : 1.0f;
                rew[s] = (float)rec[REC_REWARD];
                norm_tokens += mask * (int)rec[REC_LEN];
                kept_tok += (double)t->train_ids[pidx[round][g]].n + rec[REC_LEN];
                if (g >= lo && g < hi) { /* generated here: trained here */
                    seq[n_seq].prompt = &t->train_ids[pidx[round][g]];
                    seq[n_seq].out = &ro->out[(g - lo) * G + j];
                    seq[n_seq].mask = mask;
                    seq_at[n_seq++] = s;
                }
            }
            kept++;
        }
    }
    StepStats ss = {0};
    double t_train0 = now_s();
    if (!rc && kept > 0) {
        grpo_advantages(rew, kept, G, (AdvScale)c->scale_rewards, adv);
        for (int i = 0; i < n_seq; i++) seq[i].adv = adv[seq_at[i]];
        rc = train_on(t, seq, n_seq, (double)kept * G, norm_tokens, &ss, err);
    }
    if (!rc) rc = dist_sum_f64(t->cm, &ss.loss, STEP_STATS_SUMMED, err);
    if (!rc) rc = dist_max_f64(t->cm, &ss.logp_diff, 1, err);
    if (!rc) rc = dist_sum_f64(t->cm, &gen_tokens, 1, err);
    if (!rc && c->kv_block > 0) rc = dist_sum_f64(t->cm, &preempt, 1, err);
    if (!rc && c->kv_block > 0) rc = dist_max_f64(t->cm, &kv_peak, 1, err);
    double train_s = now_s() - t_train0;
    if (!rc && t->rank0) {
        double kl = ss.kl_tokens > 0 ? ss.kl_sum / ss.kl_tokens : 0;
        double secs = now_s() - t0;
        MetricsWriter *w = &t->mw;
        metrics_begin(w, t->st.step + 1);
        double mean = r_sum / n_gen;
        metrics_f64(w, "reward/mean", mean);
        metrics_f64(w, "reward/std", sqrt(fmax(0, r_sq / n_gen - mean * mean)));
        for (int k = 0; k < t->rs.n; k++) {
            char key[96];
            snprintf(key, sizeof key, "reward/%s/mean", t->rs.kind[k]->name);
            metrics_f64(w, key, rf[k] / n_gen);
        }
        if (t->acc_idx >= 0) metrics_f64(w, "accuracy", acc / n_gen);
        if (t->fmt_idx >= 0) metrics_f64(w, "format_rate", fmt / n_gen);
        metrics_f64(w, "completion_len/mean", len_sum / n_gen);
        metrics_i64(w, "completion_len/min", len_min);
        metrics_i64(w, "completion_len/max", len_max);
        metrics_f64(w, "truncated_rate", trunc / n_gen);
        metrics_f64(w, "loss", ss.loss);
        metrics_f64(w, "kl", kl);
        metrics_f64(w, "clip_frac", ss.tokens > 0 ? (ss.clip_low + ss.clip_high) / ss.tokens : 0);
        metrics_f64(w, "clip_frac/low", ss.tokens > 0 ? ss.clip_low / ss.tokens : 0);
        metrics_f64(w, "clip_frac/high", ss.tokens > 0 ? ss.clip_high / ss.tokens : 0);
        metrics_f64(w, "entropy", ss.ent_tokens > 0 ? ss.entropy / ss.ent_tokens : 0);
        metrics_f64(w, "grad_norm", ss.grad_norm);
        metrics_f64(w, "lr", ss.lr);
        metrics_f64(w, "logp_diff/max", ss.logp_diff);
        metrics_f64(w, "logp_diff/mean", ss.lpd_n > 0 ? ss.lpd_sum / ss.lpd_n : 0.0);
        metrics_i64(w, "groups/kept", kept);
        metrics_i64(w, "groups/dropped", dropped);
        if (c->kv_block > 0) { /* the paged KV pool: how full it got, how often it was full */
            metrics_i64(w, "gen/preemptions", (int64_t)preempt);
            metrics_i64(w, "gen/kv_peak_tokens", (int64_t)kv_peak);
        }
        metrics_i64(w, "epoch", t->st.epoch);
        metrics_f64(w, "time/generate", gen_s); /* rank 0's phases */
        metrics_f64(w, "time/reward", rew_s);
        metrics_f64(w, "time/train", train_s);
        /* share of the trained positions that were padding */
        metrics_f64(w, "train/padding", ss.mb_positions > 0 ? 1.0 - ss.mb_tokens / ss.mb_positions : 0.0);
        metrics_f64(w, "time/step", secs);
        metrics_f64(w, "tokens_per_s", (kept_tok * c->mu + gen_tokens) / secs);
        rc = metrics_end(w, err);
        if (t->tf_open) {
            int64_t st = t->st.step + 1;
            tfevents_scalar(&t->tf, "reward/mean", st, mean, 0, NULL);
            if (t->acc_idx >= 0) tfevents_scalar(&t->tf, "accuracy", st, acc / n_gen, 0, NULL);
            if (t->fmt_idx >= 0) tfevents_scalar(&t->tf, "format_rate", st, fmt / n_gen, 0, NULL);
            tfevents_scalar(&t->tf, "completion_len/mean", st, len_sum / n_gen, 0, NULL);
            tfevents_scalar(&t->tf, "kl", st, kl, 0, NULL);
            tfevents_scalar(&t->tf, "loss", st, ss.loss, 0, NULL);
        }
        if (!c->quiet) {
            ProgressItem items[] = {{"reward", mean},
                                    {"acc", t->acc_idx >= 0 ? acc / n_gen : NAN},
                                    {"fmt", t->fmt_idx >= 0 ? fmt / n_gen : NAN},
                                    {"len", len_sum / n_gen},
                                    {"kl", kl},
                                    {"s/step", secs}};
            progress_update(&t->pg, t->st.step + 1, items, sizeof items / sizeof items[0]);
        }
    }
    if (!rc) t->st.step++;
    for (int r = 0; r < n_ro; r++)
        if (ros[r].n) rollout_free(&ros[r]);
    for (int r = 0; r < rounds; r++) free(pidx[r]);
    free(ros), free(pidx), free(seq), free(seq_at), free(glob), free(rew), free(adv), free(rf);
    return rc;
}

static int save(Trainer *t, Err *err) {
    char cfgp[4096];
    snprintf(cfgp, sizeof cfgp, "%s/tokenizer_config.json", t->c->model);
    char genp[4096];
    snprintf(genp, sizeof genp, "%s/generation_config.json", t->c->model);
    const char *carry[] = {t->tok_path, cfgp, genp};
    json_decref(t->st.extra);
    t->st.extra = json_object();
    /* rank 0 writes (moments gathered when sharded), the others wait */
    return zero_checkpoint_save(t->cm, t->c->run_dir, &t->policy, &t->opt, &t->st, carry, 3,
                                (int)t->c->keep_checkpoints, err);
}

static void eval_log(Trainer *t, Err *err) {
    double p1, f, l;
    if (run_eval(t, &p1, &f, &l, err) != 0) {
        fprintf(stderr, "r1c grpo: evaluation failed: %s\n", err->msg);
        return;
    }
    if (!t->rank0) return;
    metrics_begin(&t->mw, t->st.step);
    metrics_f64(&t->mw, "eval/pass1", p1);
    if (!isnan(f)) metrics_f64(&t->mw, "eval/format_rate", f);
    metrics_f64(&t->mw, "eval/completion_len", l);
    metrics_end(&t->mw, err);
    if (t->pg.dirty) progress_finish(&t->pg);
    fprintf(stderr, "eval at step %" PRId64 ": pass@1 %.3f (%d prompts x %" PRId64 " samples), format %.3f\n",
            t->st.step, p1, t->eval.n, t->c->eval_samples, f);
}

int grpo_run(GrpoConfig *c, int resume, Err *err) {
    Trainer t;
    int rc = trainer_setup(&t, c, err);
    char path[4096];
    if (!rc && t.rank0 && dir_make(c->run_dir, err) != 0) rc = -1;
    if (!rc && resume) { /* every rank loads the same checkpoint, whatever the world size that wrote it */
        char ck[4096];
        int r = checkpoint_latest(c->run_dir, ck, sizeof ck, err);
        if (r == 1) rc = err_set(err, "%s: no checkpoint to resume from", c->run_dir);
        else if (r < 0 || checkpoint_load(ck, &t.policy, &t.opt, &t.st, err) != 0) rc = -1;
        else if (t.rank0) fprintf(stderr, "r1c grpo: resuming from %s (step %" PRId64 ")\n", ck, t.st.step);
    }
    if (!rc) {
        if (!resume) rng_split(&t.st.rng, (uint64_t)c->seed, 0x7A1u);
        make_order(&t);
    }
    if (!rc && t.rank0) {
        snprintf(path, sizeof path, "%s/recipe.yaml", c->run_dir);
        if (recipe_save(GRPO_FIELDS, c, path, err) != 0) rc = -1;
    }
    if (!rc && t.rank0) {
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->run_dir);
        if (metrics_open(&t.mw, path, resume ? t.st.step : -1, err) != 0) rc = -1;
    }
    if (!rc && t.rank0) {
        snprintf(path, sizeof path, "%s/samples.jsonl", c->run_dir);
        if (samples_open(&t.sw, path, resume ? t.st.step : -1, err) != 0) rc = -1;
    }
    if (!rc && t.rank0 && !resume) t.tf_open = tfevents_open(&t.tf, c->run_dir, err) == 0;
    if (!rc) rc = dist_check_recipe(t.cm, GRPO_FIELDS, c, err); /* before any other collective */
    if (!rc && t.rank0 && comm_world(t.cm) > 1)
        fprintf(stderr, "r1c grpo: data parallel over %d ranks (%s): %" PRId64 " prompts x %" PRId64
                        " completions per step, about %d prompts per rank\n",
                comm_world(t.cm), t.cm->ops->name, c->prompts_per_step, c->group_size,
                dist_slice_max(t.cm, (int)c->prompts_per_step));
    if (rc) {
        trainer_free(&t);
        return -1;
    }
    progress_init(&t.pg, stderr, c->steps);
    int eval_on = c->eval_every > 0 && t.eval.n > 0;
    if (eval_on && t.st.step == 0) eval_log(&t, err);
    int interrupted = 0;
    while (t.st.step < c->steps) {
        if ((rc = grpo_step(&t, err))) break;
        int last = t.st.step == c->steps;
        if (eval_on && !last && t.st.step % c->eval_every == 0) eval_log(&t, err);
        if ((rc = dist_any(t.cm, grpo_stop_requested, &interrupted, err))) break; /* all ranks stop together */
        if ((last && c->save_at_end) || interrupted || (c->save_every > 0 && t.st.step % c->save_every == 0))
            if ((rc = save(&t, err))) break;
        if (t.rank0 && c->plot_every > 0 && (last || interrupted || t.st.step % c->plot_every == 0)) {
            RunPlotOptions po = {0};
            po.smooth = 0.6;
            int nw;
            Err perr;
            runplot_write(c->run_dir, &po, &nw, &perr);
        }
        if (interrupted) break;
    }
    if (!rc && eval_on && t.st.step == c->steps) eval_log(&t, err);
    progress_finish(&t.pg);
    metrics_close(&t.mw);
    samples_close(&t.sw);
    if (!rc && interrupted && t.rank0)
        fprintf(stderr, "r1c grpo: interrupted; saved checkpoint at step %" PRId64 " (resume with --resume %s)\n",
                t.st.step, c->run_dir);
    trainer_free(&t);
    return rc ? -1 : interrupted ? 1 : 0;
}
