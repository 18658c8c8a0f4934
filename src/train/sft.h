/* Supervised fine-tuning on tokenized (prompt, completion) examples: the
 * loss is the mean negative log-likelihood of completion tokens only,
 * batches of examples padded to their longest, shuffled every epoch, AdamW
 * with warmup and a decay schedule. The engine under the demo's
 * pre-training and under `r1c sft`. */
#ifndef R1C_TRAIN_SFT_H
#define R1C_TRAIN_SFT_H

#include <stdint.h>

#include "io/metrics.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "train/optim.h"
#include "train/schedule.h"

typedef struct SftExample {
    int32_t *ids; /* prompt then completion */
    int n;
    int prompt_len; /* loss on positions [prompt_len, n) ... */
    uint8_t *mask;  /* ... or, when set, on positions t with mask[t] = 1 (n entries;
                     * multi-turn chats train every assistant turn) */
} SftExample;

typedef struct SftConfig {
    int epochs;
    int batch; /* examples per optimizer step */
    LrConfig lr; /* total_steps filled in by sft_train when 0 */
    float weight_decay, grad_clip;
    uint64_t seed;
    MetricsWriter *metrics; /* optional: one line per step */
    int quiet;
    AdamW *opt;     /* optional: the optimizer to use (e.g. restored on resume) */
    int pack;       /* pack each batch's examples into rows of pack_len tokens (first fit);
                     * attention stays within an example, so loss and gradients equal the
                     * unpacked batch's while padding shrinks */
    int pack_len;   /* row length when packing (at least the longest example) */
    int start_step; /* resume: batches before it are skipped (the order is seeded) */
    /* optional, after every optimizer step (checkpoints, evaluation); a
     * non-zero return stops training (-1: error in err, 1: stop cleanly) */
    int (*on_step)(void *user, int step, int epoch, double loss, Err *err);
    void *user;
    /* data parallel (docs/distributed.md), NULL = one process: each rank
     * trains its slice of every batch with the batch's token count as the
     * normaliser, gradients are summed, the loss is the batch's */
    struct Comm *comm;
    int keep_logits; /* keep the LM head's logits for the backward (acts_keep_logits) */
} SftConfig;

typedef struct SftResult {
    int steps;
    double first_loss, last_loss; /* mean over the first / last 10 steps */
    double tokens_per_s;
} SftResult;

int sft_train(Model *m, const SftExample *ex, int n, const SftConfig *c, SftResult *res, Err *err);
/* Mean NLL over the target tokens of ex (no update); batch examples at a time. */
int sft_eval_loss(Model *m, const SftExample *ex, int n, int batch, double *loss, Err *err);
/* The same with the examples split across the ranks of comm (may be NULL). */
int sft_eval_loss_dist(Model *m, const SftExample *ex, int n, int batch, struct Comm *comm, double *loss, Err *err);
/* Optimizer steps sft_train takes for n examples. */
int sft_total_steps(int n, int batch, int epochs);

#endif
