/* Benchmark evaluation (see evaluate.h). Sampling goes through rollouts;
 * scoring through a per-problem function shared with re-scoring, so both
 * paths compute identical statistics from identical texts. */
#include "eval/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "eval/passk.h"
#include "eval/rollout.h"
#include "eval/prompt_set.h"
#include "reward/code.h"
#include "reward/math.h"

typedef struct Scorer {
    RewardSet rs;
    MathOptions mo;
} Scorer;

static int scorer_init(Scorer *s, const EvalConfig *c, Err *err) {
    memset(s, 0, sizeof *s);
    math_options_default(&s->mo);
    const char *name = c->reward && c->reward[0] ? c->reward : "math";
    if (strchr(name, ',') || strchr(name, ':'))
        return err_set(err, "eval: --reward takes one accuracy reward (math, countdown or code), got '%s'", name);
    if (rewardset_parse(&s->rs, name, err) != 0) return -1;
    if (!strcmp(name, "code")) fprintf(stderr, "eval: code sandbox: %s\n", code_reward_protections(s->rs.state[0]));
    if (c->reward_options && c->reward_options[0]) {
        char *opts = strdup(c->reward_options), *save = NULL;
        for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
            if (rewardset_option(&s->rs, o, err) != 0) {
                free(opts);
                return -1;
            }
        free(opts);
    }
    return 0;
}

static int equiv_cb(void *ctx, const char *a, size_t al, const char *b, size_t bl) {
    char why[64];
    return math_equiv(a, al, b, bl, (const MathOptions *)ctx, why, sizeof why);
}

/* Accumulates one problem's k samples into the running sums. */
typedef struct Acc {
    double pass1, cons, len, trunc, answered;
    double passk[EVAL_MAX_PASSK];
    int n;
} Acc;

/* pre: the k samples' scores when the caller scored them already (NULL: score here). */
static int score_problem(Scorer *s, const json_t *record, char *const *texts, const int *ntok, const int *trunc, int k,
                         const RewardScore *pre, const EvalResult *shape, Acc *acc, json_t *per_sample, Err *err) {
    int correct = 0;
    const char **ans = calloc(k, sizeof *ans);
    size_t *alen = calloc(k, sizeof *alen);
    int *ok = calloc(k, sizeof *ok);
    int rc = 0;
    /* all k samples at once: the code reward runs them in parallel */
    RewardInput *in = calloc(k, sizeof *in);
    RewardScore *scs = calloc(k, sizeof *scs);
    double *totals = calloc(k, sizeof *totals);
    if (!in || !scs || !totals) rc = err_set(err, "out of memory");
    for (int j = 0; j < k && !rc; j++) in[j] = (RewardInput){record, texts[j], strlen(texts[j])};
    if (!rc && pre) memcpy(scs, pre, (size_t)k * sizeof *scs);
    else if (!rc) rc = rewardset_score_batch(&s->rs, in, k, totals, scs, err);
    for (int j = 0; j < k && !rc; j++) {
        size_t len = in[j].completion_len;
        RewardScore sc = scs[j];
        ok[j] = sc.score >= 1.0;
        correct += ok[j];
        const char *how;
        /* a vote needs an explicit answer: neither a last number nor a
         * short whole text counts (they would out-vote real answers) */
        if (math_extract(texts[j], len, MATH_EXTRACT_BOXED | MATH_EXTRACT_TAG | MATH_EXTRACT_ANSWER_IS | MATH_EXTRACT_GSM8K, 0, &ans[j],
                         &alen[j], &how) != 1)
            ans[j] = NULL;
        acc->answered += ans[j] != NULL;
        acc->len += ntok[j];
        acc->trunc += trunc[j];
        if (per_sample) {
            json_t *o = json_array_get(per_sample, j);
            json_object_set_new(o, "correct", json_boolean(ok[j]));
            json_object_set_new(o, "reason", json_string(sc.reason));
            json_object_set_new(o, "answer", ans[j] ? json_stringn(ans[j], alen[j]) : json_null());
        }
    }
    if (!rc) {
        int votes;
        int m = majority_vote(k, ans, alen, equiv_cb, &s->mo, &votes);
        acc->cons += m >= 0 && ok[m];
        acc->pass1 += (double)correct / k;
        for (int i = 0; i < shape->n_passk; i++) acc->passk[i] += passk_unbiased(k, correct, shape->passk_k[i]);
        acc->n++;
    }
    free(ans), free(alen), free(ok);
    free(in), free(scs), free(totals);
    return rc;
}

static void result_shape(EvalResult *r, int k) {
    memset(r, 0, sizeof *r);
    r->k = k;
    for (int p = 1; p <= k && r->n_passk < EVAL_MAX_PASSK - 1; p *= 2) r->passk_k[r->n_passk++] = p;
    if (r->passk_k[r->n_passk - 1] != k) r->passk_k[r->n_passk++] = k;
}

static void result_finish(EvalResult *r, const Acc *a) {
    r->n_problems = a->n;
    double n = a->n > 0 ? a->n : 1, ns = n * r->k;
    r->pass1 = a->pass1 / n, r->cons = a->cons / n;
    for (int i = 0; i < r->n_passk; i++) r->passk[i] = a->passk[i] / n;
    r->mean_len = a->len / ns, r->trunc_rate = a->trunc / ns, r->answered = a->answered / ns;
}

int eval_run(const EvalConfig *c, EvalResult *r, Err *err) {
    if (c->k < 1) return err_set(err, "eval: k must be at least 1");
    Scorer s;
    if (scorer_init(&s, c, err) != 0) return -1;
    PromptSet ps;
    PromptSetOptions po = {c->model, c->data, c->format, c->template_name, c->system, c->prompt_suffix, c->limit, c->be};
    char path[4096];
    int rc = prompt_set_load(&ps, &po, err);
    Dataset d = ps.data;
    TokIds *ids = ps.ids;
    json_t **recs = ps.recs;
    if (!rc) rc = dir_make(c->out_dir, err);
    AtomicFile af;
    int af_open = 0;
    if (!rc) {
        snprintf(path, sizeof path, "%s/samples.jsonl", c->out_dir);
        rc = atomic_open(&af, path, err);
        af_open = !rc;
    }
    result_shape(r, c->k);
    Acc acc = {0};
    RolloutConfig rcfg = {.gen = {.sampling = {.temperature = c->temperature, .top_k = c->top_k, .top_p = c->top_p},
                                  .max_new_tokens = c->max_new_tokens, .max_batch = c->batch, .seed = c->seed,
                                  .kv_block = c->kv_block, .kv_tokens = c->kv_tokens}};
    /* problems in chunks, so memory stays bounded on long benchmarks */
    int chunk = c->batch / c->k > 0 ? c->batch / c->k : 1;
    int64_t kv_peak = 0, preempt = 0; /* paged KV cache: the most positions in use, pool-full events */
    for (int p0 = 0; p0 < d.n && !rc; p0 += chunk) {
        int np = d.n - p0 < chunk ? d.n - p0 : chunk;
        Rollout ro;
        if ((rc = rollout_run(&ps.model, ps.tok, ids + p0, recs + p0, np, c->k, &rcfg, (uint64_t)p0 * c->k, NULL, &ro,
                              err)))
            break;
        kv_peak = ro.kv_peak_tokens > kv_peak ? ro.kv_peak_tokens : kv_peak, preempt += ro.preemptions;
        /* the whole chunk in one batch: the code reward runs it in parallel */
        int nk = np * c->k;
        RewardInput *in = calloc((size_t)nk, sizeof *in);
        RewardScore *pre = calloc((size_t)nk, sizeof *pre);
        double *tot = calloc((size_t)nk, sizeof *tot);
        if (!in || !pre || !tot) rc = err_set(err, "out of memory");
        for (int q = 0; q < nk && !rc; q++) in[q] = (RewardInput){recs[p0 + q / c->k], ro.text[q], strlen(ro.text[q])};
        if (!rc) rc = rewardset_score_batch(&s.rs, in, nk, tot, pre, err);
        free(in), free(tot);
        for (int i = 0; i < np && !rc; i++) {
            int *ntok = malloc(c->k * sizeof(int)), *tr = malloc(c->k * sizeof(int));
            json_t *samples = json_array();
            for (int j = 0; j < c->k; j++) {
                const GenOutput *go = &ro.out[i * c->k + j];
                ntok[j] = go->n;
                tr[j] = go->finish == GEN_FINISH_LENGTH;
                json_t *so = json_object();
                json_object_set_new(so, "text", json_string(ro.text[i * c->k + j]));
                json_object_set_new(so, "tokens", json_integer(go->n));
                json_object_set_new(so, "truncated", json_boolean(tr[j]));
                json_array_append_new(samples, so);
            }
            rc = score_problem(&s, recs[p0 + i], ro.text + (size_t)i * c->k, ntok, tr, c->k, pre + (size_t)i * c->k, r, &acc,
                               samples, err);
            json_t *line = json_object();
            json_object_set_new(line, "index", json_integer(p0 + i));
            json_object_set_new(line, "prompt", json_string(d.ex[p0 + i].prompt));
            json_object_set(line, "record", recs[p0 + i]);
            json_object_set_new(line, "samples", samples);
            char *txt = json_dumps(line, JSON_COMPACT);
            if (!rc && txt) rc = atomic_write(&af, txt, strlen(txt), err) || atomic_write(&af, "\n", 1, err);
            free(txt);
            json_decref(line);
            free(ntok), free(tr);
        }
        free(pre);
        rollout_free(&ro);
        fprintf(stderr, "\reval: %d/%d problems", p0 + np, d.n);
    }
    fprintf(stderr, "\n");
    if (c->kv_block > 0)
        fprintf(stderr, "eval: paged KV cache: at most %lld positions in use, full %lld times (sequences preempted and resumed)\n",
                (long long)kv_peak, (long long)preempt);
    if (af_open) {
        if (rc) atomic_abort(&af);
        else rc = atomic_commit(&af, err);
    }
    if (!rc) result_finish(r, &acc);
    prompt_set_free(&ps);
    rewardset_free(&s.rs);
    return rc;
}

int eval_rescore(const char *samples_path, const EvalConfig *c, EvalResult *r, Err *err) {
    Scorer s;
    if (scorer_init(&s, c, err) != 0) return -1;
    FILE *fp = fopen(samples_path, "r");
    if (!fp) {
        rewardset_free(&s.rs);
        return err_set(err, "%s: cannot open", samples_path);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0, k = -1;
    Acc acc = {0};
    while (!rc && (len = getline(&line, &cap, fp)) > 0) {
        lineno++;
        char where[600];
        snprintf(where, sizeof where, "%s:%d", samples_path, lineno);
        json_t *j = json_load_buf(line, (size_t)len, where, err);
        if (!j) { rc = -1; break; }
        json_t *smp = json_object_get(j, "samples"), *rec = json_object_get(j, "record");
        int n = json_is_array(smp) ? (int)json_array_size(smp) : 0;
        if (!n || !json_is_object(rec)) rc = err_set(err, "%s: expected {\"record\": {...}, \"samples\": [...]}", where);
        else if (k >= 0 && n != k) rc = err_set(err, "%s: %d samples, earlier lines have %d", where, n, k);
        if (!rc) {
            if (k < 0) result_shape(r, k = n);
            char **texts = calloc(n, sizeof *texts);
            int *ntok = calloc(n, sizeof(int)), *tr = calloc(n, sizeof(int));
            for (int i = 0; i < n && !rc; i++) {
                json_t *o = json_array_get(smp, i);
                const char *t = json_string_value(json_object_get(o, "text"));
                if (!t) rc = err_set(err, "%s: samples[%d] has no \"text\"", where, i);
                texts[i] = (char *)t;
                ntok[i] = (int)json_integer_value(json_object_get(o, "tokens"));
                tr[i] = json_is_true(json_object_get(o, "truncated"));
            }
            if (!rc) rc = score_problem(&s, rec, texts, ntok, tr, n, NULL, r, &acc, NULL, err);
            free(texts), free(ntok), free(tr);
        }
        json_decref(j);
    }
    free(line);
    fclose(fp);
    if (!rc && acc.n == 0) rc = err_set(err, "%s: no problems", samples_path);
    if (!rc) result_finish(r, &acc);
    rewardset_free(&s.rs);
    return rc;
}

int eval_report(const EvalResult *r, const EvalConfig *c, const char *json_path, Err *err) {
    printf("%-22s %d problems x %d samples\n", c->data ? c->data : "rescored", r->n_problems, r->k);
    printf("%-22s %.4f\n", "pass@1 (mean over k)", r->pass1);
    char lbl[32];
    snprintf(lbl, sizeof lbl, "cons@%d", r->k);
    printf("%-22s %.4f\n", lbl, r->cons);
    for (int i = 0; i < r->n_passk; i++) {
        snprintf(lbl, sizeof lbl, "pass@%d", r->passk_k[i]);
        printf("%-22s %.4f\n", lbl, r->passk[i]);
    }
    printf("%-22s %.1f tokens\n%-22s %.4f\n%-22s %.4f\n", "mean length", r->mean_len, "truncated", r->trunc_rate,
           "answered", r->answered);
    if (!json_path) return 0;
    json_t *o = json_object();
    json_object_set_new(o, "problems", json_integer(r->n_problems));
    json_object_set_new(o, "k", json_integer(r->k));
    json_object_set_new(o, "pass1", json_real(r->pass1));
    snprintf(lbl, sizeof lbl, "cons@%d", r->k);
    json_object_set_new(o, lbl, json_real(r->cons));
    for (int i = 0; i < r->n_passk; i++) {
        snprintf(lbl, sizeof lbl, "pass@%d", r->passk_k[i]);
        json_object_set_new(o, lbl, json_real(r->passk[i]));
    }
    json_object_set_new(o, "mean_length", json_real(r->mean_len));
    json_object_set_new(o, "truncated", json_real(r->trunc_rate));
    json_object_set_new(o, "answered", json_real(r->answered));
    json_t *st = json_object();
    if (c->model) json_object_set_new(st, "model", json_string(c->model));
    if (c->data) json_object_set_new(st, "data", json_string(c->data));
    json_object_set_new(st, "temperature", json_real(c->temperature));
    json_object_set_new(st, "top_p", json_real(c->top_p));
    json_object_set_new(st, "max_new_tokens", json_integer(c->max_new_tokens));
    json_object_set_new(st, "seed", json_integer((json_int_t)c->seed));
    json_object_set_new(st, "reward", json_string(c->reward && c->reward[0] ? c->reward : "math"));
    json_object_set_new(o, "settings", st);
    int rc = json_save_path(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6), json_path, err);
    json_decref(o);
    return rc;
}
