/* `r1c grpo`: Group Relative Policy Optimization with rule-based rewards
 * (DeepSeek-R1-Zero), with the DAPO / Dr. GRPO variants, mu inner
 * iterations, clip-higher, a KL penalty to a frozen reference, dynamic
 * sampling and masking of truncated completions; a run directory with
 * recipe.yaml, metrics.jsonl, samples.jsonl, TensorBoard events, plots and
 * checkpoints; exact resume. */
#ifndef R1C_TRAIN_GRPO_H
#define R1C_TRAIN_GRPO_H

#include <stdint.h>

#include "base/err.h"
#include "io/recipe.h"

typedef struct GrpoConfig {
    char *model, *ref_model, *tokenizer, *run_dir;
    char *data, *data_format, *prompt_field, *answer_field, *prompt_suffix;
    int64_t data_limit;
    char *eval_data;
    int64_t eval_limit, eval_every, eval_samples;
    char *template_name, *system_prompt;
    RecipeList stop;
    char *rewards;
    RecipeList reward_options;
    int64_t group_size, prompts_per_step, max_prompt_len, max_completion_len;
    double temperature, top_p, min_p;
    int64_t top_k;
    double lr;
    int lr_schedule;
    int64_t warmup_steps;
    double min_lr_ratio, beta1, beta2, adam_eps, weight_decay, grad_clip;
    int64_t steps, mu, micro_batch, gen_batch;
    int64_t kv_block, kv_tokens; /* paged KV cache for generation (GenConfig); 0: one row per sequence */
    double epsilon, epsilon_high, beta;
    int kl_estimator, loss_type, scale_rewards;
    int dynamic_sampling, mask_truncated, recompute, save_at_end;
    int micro_batch_sort; /* micro-batches of sequences of similar length (less padding) */
    int zero; /* shard AdamW moments over the data-parallel ranks (ZeRO-1) */
    int64_t max_resample;
    int64_t seed, save_every, keep_checkpoints, samples_every, plot_every;
    int quiet;
    char *backend;       /* "cpu" | "cuda" (resolved by the command into be) */
    const struct Backend *be; /* op table to run on; NULL = CPU */
    struct Comm *comm;        /* data-parallel job (docs/distributed.md); NULL = one process */
} GrpoConfig;

extern const RecipeField GRPO_FIELDS[];

/* Runs (or with resume, continues from RUN's newest checkpoint) until
 * cfg->steps. Returns 0 when done, 1 when interrupted (SIGINT; a
 * checkpoint was saved), -1 on error. */
int grpo_run(GrpoConfig *cfg, int resume, Err *err);
/* What the memory plan (train/memplan.h) needs of a recipe, per rank of
 * `world`. */
struct MemPlanInput;
void grpo_plan_input(const GrpoConfig *c, int world, struct MemPlanInput *mi);

/* Set from a signal handler: finish the current step, save, stop. */
extern volatile int grpo_stop_requested;

#endif
