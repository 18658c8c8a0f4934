/* Rejection sampling (see reject.h). */
#include "eval/reject.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "eval/rollout.h"
#include "eval/prompt_set.h"

/* The reasoning: text between <think> and </think> (or up to </think>
 * when the template opened it), else the whole completion. */
static void think_span(const char *t, const char **s, size_t *n) {
    const char *a = strstr(t, "<think>"), *b = strstr(t, "</think>");
    const char *start = a ? a + 7 : t;
    const char *end = b && b >= start ? b : t + strlen(t);
    *s = start;
    *n = (size_t)(end - start);
}

/* 1 when the reasoning passes the readability filters; *why says which failed. */
static int readable(const RejectConfig *c, const char *text, RewardSet *lang, const json_t *rec, const char **why,
                    Err *err) {
    const char *s;
    size_t n;
    think_span(text, &s, &n);
    if (c->no_code_in_think) {
        for (size_t i = 0; i + 3 <= n; i++)
            if (!memcmp(s + i, "```", 3)) return *why = "code block in the reasoning", 0;
    }
    if (c->max_paragraph > 0) {
        size_t run = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\n' && i + 1 < n && s[i + 1] == '\n') run = 0;
            else if (++run > (size_t)c->max_paragraph) return *why = "overlong paragraph", 0;
        }
    }
    if (lang) {
        RewardInput in = {rec, text, strlen(text)};
        double total;
        RewardScore sc;
        if (rewardset_score(lang, &in, &total, &sc, err) != 0) return -1;
        if (sc.score < c->min_language) return *why = "language mixing", 0;
    }
    return 1;
}

static int bucket_of(double pass) {
    return pass <= 0 ? 0 : pass <= 0.25 ? 1 : pass <= 0.5 ? 2 : pass <= 0.75 ? 3 : 4;
}

int reject_run(const RejectConfig *c, RejectSummary *s, Err *err) {
    memset(s, 0, sizeof *s);
    if (c->n < 1 || c->keep < 1) return err_set(err, "sample: --n and --keep must be at least 1");
    RewardSet rs = {0}, lang = {0};
    int has_lang = 0;
    if (rewardset_parse(&rs, c->rewards, err) != 0) return -1;
    int rc = 0;
    if (c->reward_options && c->reward_options[0]) {
        char *opts = strdup(c->reward_options), *save = NULL;
        for (char *o = strtok_r(opts, ",", &save); o && !rc; o = strtok_r(NULL, ",", &save))
            rc = rewardset_option(&rs, o, err);
        free(opts);
    }
    if (!rc && c->language) {
        char opt[64];
        snprintf(opt, sizeof opt, "lang=%s", c->language);
        rc = rewardset_parse(&lang, "language", err) || rewardset_option(&lang, opt, err);
        has_lang = !rc;
    }
    PromptSet ps = {0};
    PromptSetOptions po = {c->model, c->data, c->format, c->template_name, c->system, c->prompt_suffix, c->limit, c->be};
    if (!rc) rc = prompt_set_load(&ps, &po, err);
    Dataset d = ps.data;
    TokIds *ids = ps.ids;
    json_t **recs = ps.recs;
    /* provenance: the checkpoint's step when it is one of ours */
    int64_t step = -1;
    if (!rc) {
        char sp[4096];
        snprintf(sp, sizeof sp, "%s/trainer_state.json", c->model);
        Err e2;
        json_t *st = json_load_path(sp, &e2);
        if (st) {
            json_get_i64(st, "step", &step, sp, &e2);
            json_decref(st);
        }
    }
    AtomicFile af;
    int af_open = 0;
    if (!rc) rc = atomic_open(&af, c->out, err), af_open = !rc;
    RolloutConfig rcfg = {.gen = {.sampling = {.temperature = c->temperature, .top_k = c->top_k, .top_p = c->top_p},
                                  .max_new_tokens = c->max_new_tokens, .max_batch = c->batch, .seed = c->seed,
                                  .kv_block = c->kv_block, .kv_tokens = c->kv_tokens}};
    int chunk = c->batch / c->n > 0 ? c->batch / c->n : 1;
    int acc_idx = rollout_accuracy_index(&rs);
    int64_t kv_peak = 0, preempt = 0; /* paged KV cache: the most positions in use, pool-full events */
    for (int p0 = 0; p0 < d.n && !rc; p0 += chunk) {
        int np = d.n - p0 < chunk ? d.n - p0 : chunk;
        Rollout ro;
        if ((rc = rollout_run(&ps.model, ps.tok, ids + p0, recs + p0, np, c->n, &rcfg, (uint64_t)p0 * c->n, &rs, &ro,
                              err)))
            break;
        kv_peak = ro.kv_peak_tokens > kv_peak ? ro.kv_peak_tokens : kv_peak, preempt += ro.preemptions;
        for (int i = 0; i < np && !rc; i++) {
            int kept = 0, correct = 0;
            s->prompts++;
            for (int j = 0; j < c->n; j++) {
                int si = i * c->n + j;
                if (acc_idx >= 0 && ro.each[(size_t)si * rs.n + acc_idx].score >= 1.0) correct++;
            }
            int b = bucket_of((double)correct / c->n);
            s->bucket_prompts[b]++;
            for (int j = 0; j < c->n && !rc; j++) {
                int si = i * c->n + j;
                s->samples++;
                int ok = 1;
                for (int r = 0; r < rs.n; r++) ok &= ro.each[(size_t)si * rs.n + r].score >= c->min_score;
                if (!ok) continue;
                s->accepted++;
                const char *why = NULL;
                int rd = readable(c, ro.text[si], has_lang ? &lang : NULL, recs[p0 + i], &why, err);
                if (rd < 0) { rc = -1; break; }
                if (!rd) {
                    s->filtered_readability++;
                    continue;
                }
                int dup = 0;
                for (int q = 0; q < j && !dup; q++) dup = !strcmp(ro.text[i * c->n + q], ro.text[si]);
                if (dup) {
                    s->duplicates++;
                    continue;
                }
                if (kept >= c->keep) continue;
                kept++;
                json_t *line = json_object(), *msgs = json_array(), *u = json_object(), *a = json_object();
                json_object_set_new(u, "role", json_string("user"));
                json_object_set_new(u, "content", json_string(d.ex[p0 + i].prompt));
                json_object_set_new(a, "role", json_string("assistant"));
                json_object_set_new(a, "content", json_string(ro.text[si]));
                json_array_append_new(msgs, u);
                json_array_append_new(msgs, a);
                json_object_set_new(line, "messages", msgs);
                json_object_set_new(line, "prompt", json_string(d.ex[p0 + i].prompt));
                json_object_set_new(line, "completion", json_string(ro.text[si]));
                json_t *ans = json_object_get(recs[p0 + i], "answer");
                if (ans) json_object_set(line, "answer", ans);
                json_t *pv = json_object(), *rw = json_object(), *sp = json_object();
                json_object_set_new(pv, "model", json_string(c->model));
                if (step >= 0) json_object_set_new(pv, "step", json_integer(step));
                json_object_set_new(sp, "temperature", json_real(c->temperature));
                json_object_set_new(sp, "top_p", json_real(c->top_p));
                json_object_set_new(sp, "max_new_tokens", json_integer(c->max_new_tokens));
                json_object_set_new(sp, "seed", json_integer((json_int_t)c->seed));
                json_object_set_new(sp, "stream", json_integer((json_int_t)((uint64_t)(p0 * c->n) + si)));
                json_object_set_new(pv, "sampling", sp);
                for (int r = 0; r < rs.n; r++) {
                    json_t *x = json_object();
                    json_object_set_new(x, "score", json_real(ro.each[(size_t)si * rs.n + r].score));
                    json_object_set_new(x, "reason", json_string(ro.each[(size_t)si * rs.n + r].reason));
                    json_object_set_new(rw, rs.kind[r]->name, x);
                }
                json_object_set_new(pv, "rewards", rw);
                json_object_set_new(pv, "pass_rate", json_real((double)correct / c->n));
                json_object_set_new(line, "provenance", pv);
                char *txt = json_dumps(line, JSON_COMPACT);
                rc = atomic_write(&af, txt, strlen(txt), err) || atomic_write(&af, "\n", 1, err);
                free(txt);
                json_decref(line);
                s->kept++;
            }
            s->bucket_kept[b] += kept;
        }
        rollout_free(&ro);
        fprintf(stderr, "\rsample: %d/%d prompts, %d kept", p0 + np, d.n, s->kept);
    }
    fprintf(stderr, "\n");
    if (c->kv_block > 0)
        fprintf(stderr, "sample: paged KV cache: at most %lld positions in use, full %lld times (sequences preempted and resumed)\n",
                (long long)kv_peak, (long long)preempt);
    if (af_open) {
        if (rc) atomic_abort(&af);
        else rc = atomic_commit(&af, err);
    }
    prompt_set_free(&ps);
    rewardset_free(&rs);
    if (has_lang) rewardset_free(&lang);
    return rc ? -1 : 0;
}

int reject_report(const RejectSummary *s, const char *json_path, Err *err) {
    static const char *B[5] = {"0 (none correct)", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1]"};
    printf("%d prompts, %d samples: %d accepted by the rewards, %d failed readability, %d duplicates, %d kept\n",
           s->prompts, s->samples, s->accepted, s->filtered_readability, s->duplicates, s->kept);
    printf("%-20s %8s %8s\n", "pass rate", "prompts", "kept");
    json_t *o = json_object(), *bk = json_array();
    for (int b = 0; b < 5; b++) {
        printf("%-20s %8d %8d\n", B[b], s->bucket_prompts[b], s->bucket_kept[b]);
        json_t *x = json_object();
        json_object_set_new(x, "pass_rate", json_string(B[b]));
        json_object_set_new(x, "prompts", json_integer(s->bucket_prompts[b]));
        json_object_set_new(x, "kept", json_integer(s->bucket_kept[b]));
        json_array_append_new(bk, x);
    }
    json_object_set_new(o, "prompts", json_integer(s->prompts));
    json_object_set_new(o, "samples", json_integer(s->samples));
    json_object_set_new(o, "accepted", json_integer(s->accepted));
    json_object_set_new(o, "filtered_readability", json_integer(s->filtered_readability));
    json_object_set_new(o, "duplicates", json_integer(s->duplicates));
    json_object_set_new(o, "kept", json_integer(s->kept));
    json_object_set_new(o, "by_pass_rate", bk);
    int rc = json_save_path(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER, json_path, err);
    json_decref(o);
    return rc;
}
