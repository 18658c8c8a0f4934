/* Rollouts: G sampled completions for each of a set of prompts, decoded
 * to text and scored by a RewardSet. GRPO, rejection sampling and
 * evaluation all start here. */
#ifndef R1C_EVAL_ROLLOUT_H
#define R1C_EVAL_ROLLOUT_H

#include <jansson.h>

#include "gen/generate.h"
#include "io/tokenizer.h"
#include "reward/reward.h"

typedef struct Rollout {
    int n_prompts, G, n;    /* n = n_prompts * G, prompt-major */
    int n_rewards;
    GenOutput *out;         /* (n) tokens and sampler log-probs */
    char **text;            /* (n) decoded completions (special tokens skipped) */
    double *reward;         /* (n) weighted total */
    RewardScore *each;      /* (n, n_rewards) */
    double seconds_gen, seconds_reward;
    int64_t gen_tokens;
    int64_t preemptions;    /* paged KV cache: sequences that made room (GenStats) */
    int64_t kv_peak_tokens; /* paged KV cache: most pool positions in use */
} Rollout;

typedef struct RolloutConfig {
    GenConfig gen;            /* sampling, max_new_tokens, batch, seed, stop ids */
    char *const *stop_strings; /* completion ends when its text ends with one (kept) */
    int n_stop_strings;
} RolloutConfig;

/* prompts[i] (ids), records[i] (reward fields). Sample j of prompt i uses
 * random stream stream_base + i*G + j. */
int rollout_run(Model *m, Tokenizer *tok, const TokIds *prompts, json_t *const *records, int n_prompts, int G,
                const RolloutConfig *rc, uint64_t stream_base, RewardSet *rs, Rollout *ro, Err *err);
void rollout_free(Rollout *ro);
/* Index of the reward in rs used as "accuracy" (math, countdown, code, or
 * the first), and of "format" (-1 if absent). */
int rollout_accuracy_index(const RewardSet *rs);
int rollout_format_index(const RewardSet *rs);

#endif
