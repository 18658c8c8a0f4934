/* The demo's task: three-term arithmetic ("Compute 5+8-6") with a
 * rule-checkable answer, and the imperfect reasoning traces the demo's
 * tiny base model is pre-trained on: some traces slip by one or two in one
 * step (and carry the slip to the answer), some break the answer format.
 * RL then has something to fix, as in R1-Zero. Deterministic in the seed. */
#ifndef R1C_PIPELINE_DEMO_TASK_H
#define R1C_PIPELINE_DEMO_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct DemoProblem {
    int a, b, c;
    char o1, o2; /* '+' or '-' */
    int answer;
} DemoProblem;

typedef struct DemoTaskOptions {
    uint64_t seed;
    int n_eval;         /* held-out problems (never seen in training) */
    int n_sft;          /* pre-training traces */
    double p_slip;      /* trace with an arithmetic slip */
    double p_bad_format;/* trace with a broken answer format */
} DemoTaskOptions;

/* Writes DIR/sft.jsonl {"prompt","completion","answer"}, DIR/train.jsonl
 * and DIR/eval.jsonl {"prompt","answer"}. */
int demo_task_write(const char *dir, const DemoTaskOptions *o, int *n_train, Err *err);
/* "Compute 5+8-6" */
void demo_problem_prompt(const DemoProblem *p, char *buf, size_t cap);

#endif
