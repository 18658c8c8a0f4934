/* `r1c sft`: supervised fine-tuning from JSONL conversations
 * ({"messages": [{"role", "content"}, ...]}) or prompt/completion pairs,
 * rendered with the model's chat template; loss on assistant tokens only;
 * held-out loss; a run directory and checkpoints as in GRPO; exact resume. */
#ifndef R1C_TRAIN_SFT_RUN_H
#define R1C_TRAIN_SFT_RUN_H

#include <stdint.h>

#include "base/err.h"
#include "io/recipe.h"

typedef struct SftRecipe {
    char *model, *tokenizer, *run_dir, *template_name, *system_prompt;
    char *data, *messages_field, *prompt_field, *completion_field;
    char *eval_data;
    double eval_split;
    int64_t max_len, epochs, batch, warmup_steps, seed, save_every, keep_checkpoints, eval_every;
    double lr, min_lr_ratio, weight_decay, grad_clip;
    int lr_schedule, quiet, pack;
    int zero; /* shard AdamW moments over the data-parallel ranks (ZeRO-1) */
    int64_t pack_len;
    char *backend;
    const struct Backend *be; /* NULL = CPU */
    struct Comm *comm;        /* data-parallel job (docs/distributed.md); NULL = one process */
} SftRecipe;

extern const RecipeField SFT_FIELDS[];

/* 0 done, 1 interrupted (checkpoint saved), -1 error. */
int sft_run(SftRecipe *r, int resume, Err *err);
/* What the memory plan (train/memplan.h) needs of a recipe, per rank of
 * `world`. */
struct MemPlanInput;
void sft_plan_input(const SftRecipe *r, int world, struct MemPlanInput *mi);
extern volatile int sft_stop_requested;

#endif
