/* `r1c demo` / `make demo`: R1-Zero in miniature, from nothing, on a CPU.
 * 1. generates an arithmetic task (train / held-out) and imperfect traces;
 * 2. trains a byte-level BPE tokenizer on it;
 * 3. pre-trains a tiny Qwen2-architecture base model on the traces (SFT);
 * 4. runs GRPO with the format + accuracy rewards on the R1-Zero template,
 *    evaluating on the held-out split before and after;
 * 5. writes RUN/summary.json, metrics, plots and checkpoints. */
#ifndef R1C_PIPELINE_DEMO_H
#define R1C_PIPELINE_DEMO_H

#include <stdint.h>

#include "base/err.h"

typedef struct DemoConfig {
    const char *run_dir;
    uint64_t seed;
    int sft_epochs;
    int grpo_steps;
    int quick; /* a much smaller run for tests */
    int base_only; /* stop after the task, tokenizer and base model */
} DemoConfig;

int demo_run(const DemoConfig *c, Err *err);

#endif
