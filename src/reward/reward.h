/* Rule-based rewards and their registry. A reward scores one completion
 * against its prompt record (a JSON object: answer, numbers, target, ...)
 * and explains the score in a short reason string, because reading reasons
 * is how users debug rewards. A RewardSet combines rewards with weights,
 * parsed from "name[:weight][,name[:weight]...]". */
#ifndef R1C_REWARD_REWARD_H
#define R1C_REWARD_REWARD_H

#include <jansson.h>
#include <stddef.h>

#include "base/err.h"

#define REWARD_REASON_MAX 160
#define REWARDSET_MAX 16
/* Completions longer than this are scored on their first bytes only
 * (reason says so); keeps every reward's time bounded. */
#define REWARD_MAX_COMPLETION (1 << 20)

typedef struct RewardScore {
    double score;
    char reason[REWARD_REASON_MAX];
} RewardScore;

typedef struct RewardInput {
    const json_t *record;   /* prompt record; may be NULL */
    const char *completion; /* completion text (need not be NUL-terminated) */
    size_t completion_len;
} RewardInput;

/* One kind of reward. set_option returns 0 when applied, 1 when the key is
 * not one of this reward's, -1 on a bad value (err says why). score
 * returns 0, or -1 only for errors the caller must see (an external
 * program failing under the "fail" policy); a bad completion is a low
 * score with a reason, never an error. */
typedef struct RewardKind {
    const char *name;
    const char *summary;
    void *(*create)(Err *err);
    int (*set_option)(void *self, const char *key, const char *value, Err *err);
    int (*score)(void *self, const RewardInput *in, RewardScore *out, Err *err);
    void (*destroy)(void *self);
    /* Optional: scores n inputs at once (out[i] for in[i]), for rewards
     * that run programs and gain from running them in parallel. */
    int (*score_batch)(void *self, const RewardInput *in, int n, RewardScore *out, Err *err);
} RewardKind;

/* The registry: every reward r1c ships. */
const RewardKind *reward_find(const char *name);
size_t reward_kind_count(void);
const RewardKind *reward_kind_at(size_t i);

typedef struct RewardSet {
    int n;
    const RewardKind *kind[REWARDSET_MAX];
    void *state[REWARDSET_MAX];
    double weight[REWARDSET_MAX];
} RewardSet;

/* "math:1,format:0.2" (weight defaults to 1). On error rs is left empty. */
int rewardset_parse(RewardSet *rs, const char *spec, Err *err);
/* "name.key=value" sets one reward's option; "key=value" sets it on every
 * reward in the set that has it (an error if none has). */
int rewardset_option(RewardSet *rs, const char *opt, Err *err);
/* Scores with every reward; each[i] gets reward i's score and reason,
 * *total the weighted sum. */
int rewardset_score(RewardSet *rs, const RewardInput *in, double *total, RewardScore *each, Err *err);
/* The same for n inputs: totals[i], each[i * rs->n + k]. Rewards with a
 * batch hook (code) run the whole batch in parallel. */
int rewardset_score_batch(RewardSet *rs, const RewardInput *in, int n, double *totals, RewardScore *each, Err *err);
void rewardset_free(RewardSet *rs);

/* Helpers shared by the rewards (reward/util.c). */
void reward_reason(RewardScore *out, double score, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int reward_parse_double(const char *key, const char *value, double *out, Err *err);
int reward_parse_bool(const char *key, const char *value, int *out, Err *err);
/* Record string field (NULL when absent or not a string / number: numbers
 * are formatted into buf). */
const char *reward_record_str(const json_t *record, const char *field, char *buf, size_t size);
/* memmem bounded to [s, s+len). */
const char *reward_find_str(const char *s, size_t len, const char *pat);
/* The chain of thought: text between <open> and <close> (or from the start
 * when the open tag is in the prompt). Returns 0 when there is no close. */
int reward_think_span(const char *s, size_t len, const char *open_tag, const char *close_tag, int open_in_prompt,
                      const char **think, size_t *think_len, size_t *after);

#endif
