/* Rollouts (see rollout.h). */
#include "base/clock.h"
#include "eval/rollout.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) { return clock_seconds(); }

typedef struct StopCtx {
    Tokenizer *tok;
    const RolloutConfig *rc;
} StopCtx;

/* Decodes the tail of the completion and checks the stop strings. Only
 * the last 16 tokens are decoded: stop strings are short. */
static int stop_on_string(void *user, int req, const int32_t *toks, int n) {
    StopCtx *c = user;
    (void)req;
    int from = n > 16 ? n - 16 : 0;
    char *text = NULL;
    size_t len = 0;
    Err err;
    if (tokenizer_decode(c->tok, toks + from, (size_t)(n - from), 0, &text, &len, &err) != 0) return 0;
    int hit = 0;
    for (int i = 0; i < c->rc->n_stop_strings && !hit; i++) {
        size_t l = strlen(c->rc->stop_strings[i]);
        if (l && len >= l && !memcmp(text + len - l, c->rc->stop_strings[i], l)) hit = 1;
    }
    free(text);
    return hit;
}

int rollout_run(Model *m, Tokenizer *tok, const TokIds *prompts, json_t *const *records, int n_prompts, int G,
                const RolloutConfig *rc, uint64_t stream_base, RewardSet *rs, Rollout *ro, Err *err) {
    memset(ro, 0, sizeof *ro);
    int n = n_prompts * G;
    ro->n_prompts = n_prompts, ro->G = G, ro->n = n, ro->n_rewards = rs ? rs->n : 0;
    ro->out = calloc(n, sizeof *ro->out);
    ro->text = calloc(n, sizeof *ro->text);
    ro->reward = calloc(n, sizeof *ro->reward);
    ro->each = calloc((size_t)n * (ro->n_rewards ? ro->n_rewards : 1), sizeof *ro->each);
    GenRequest *req = calloc(n, sizeof *req);
    if (!ro->out || !ro->text || !ro->reward || !ro->each || !req) {
        free(req);
        rollout_free(ro);
        return err_set(err, "out of memory for %d rollouts", n);
    }
    for (int i = 0; i < n_prompts; i++)
        for (int j = 0; j < G; j++)
            req[i * G + j] = (GenRequest){prompts[i].ids, (int)prompts[i].n, stream_base + (uint64_t)(i * G + j)};
    GenConfig gc = rc->gen;
    StopCtx sc = {tok, rc};
    if (rc->n_stop_strings > 0) {
        gc.stop_fn = stop_on_string;
        gc.user = &sc;
    }
    GenStats st;
    double t0 = now_s();
    int r = gen_run(m, req, n, &gc, ro->out, &st, err);
    free(req);
    if (r != 0) {
        rollout_free(ro);
        return -1;
    }
    ro->gen_tokens = st.decode_tokens;
    ro->preemptions = st.preemptions;
    ro->kv_peak_tokens = st.kv_peak_tokens;
    double t1 = now_s();
    ro->seconds_gen = t1 - t0;
    RewardInput *in = rs && rs->n ? calloc((size_t)n, sizeof *in) : NULL;
    if (rs && rs->n && !in) {
        rollout_free(ro);
        return err_set(err, "out of memory for %d reward inputs", n);
    }
    for (int i = 0; i < n; i++) {
        size_t len;
        if (tokenizer_decode(tok, ro->out[i].tokens, (size_t)ro->out[i].n, 1, &ro->text[i], &len, err) != 0) {
            free(in);
            rollout_free(ro);
            return -1;
        }
        if (in) in[i] = (RewardInput){records ? records[i / G] : NULL, ro->text[i], len};
    }
    /* one batch: rewards that run programs (code) run them in parallel */
    if (in && rewardset_score_batch(rs, in, n, ro->reward, ro->each, err) != 0) {
        free(in);
        rollout_free(ro);
        return -1;
    }
    free(in);
    ro->seconds_reward = now_s() - t1;
    return 0;
}

void rollout_free(Rollout *ro) {
    if (ro->out) gen_outputs_free(ro->out, ro->n);
    for (int i = 0; ro->text && i < ro->n; i++) free(ro->text[i]);
    free(ro->out);
    free(ro->text);
    free(ro->reward);
    free(ro->each);
    memset(ro, 0, sizeof *ro);
}

int rollout_accuracy_index(const RewardSet *rs) {
    static const char *acc[] = {"math", "countdown", "code"};
    for (int i = 0; i < rs->n; i++)
        for (int k = 0; k < 3; k++)
            if (!strcmp(rs->kind[i]->name, acc[k])) return i;
    return rs->n ? 0 : -1;
}

int rollout_format_index(const RewardSet *rs) {
    for (int i = 0; i < rs->n; i++)
        if (!strcmp(rs->kind[i]->name, "format")) return i;
    return -1;
}
