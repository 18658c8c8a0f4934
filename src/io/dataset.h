/* Prompt datasets for RL, rejection sampling and evaluation: JSON lines,
 * each turned into an Example = the user prompt text plus a record (a JSON
 * object) that rewards read (answer, numbers, target, and every original
 * field). Built-in shapes: GSM8K (question / answer "... #### 42"),
 * MATH-style (problem / answer or a \boxed{} in solution), countdown
 * ({"input": "3,7,25", "output": "11"} or {nums, target}), code problems
 * (HumanEval: prompt / test / entry_point; MBPP: text / test_list), whose
 * record keeps the tests for the code reward, and plain JSONL with chosen
 * field names. Errors name the file and line. */
#ifndef R1C_IO_DATASET_H
#define R1C_IO_DATASET_H

#include <jansson.h>

#include "base/err.h"

typedef enum DatasetFormat {
    DATASET_FORMAT_AUTO,
    DATASET_FORMAT_JSONL,
    DATASET_FORMAT_GSM8K,
    DATASET_FORMAT_MATH,
    DATASET_FORMAT_COUNTDOWN,
    DATASET_FORMAT_HUMANEVAL,
    DATASET_FORMAT_MBPP,
} DatasetFormat;

/* The format names dataset_format_parse accepts, for messages. */
#define DATASET_FORMAT_NAMES "auto, jsonl, gsm8k, math, countdown, humaneval, mbpp"

typedef struct Example {
    char *prompt;   /* user message */
    json_t *record; /* owned: fields for rewards ("answer", "numbers", "target", ...) */
} Example;

typedef struct Dataset {
    Example *ex;
    int n;
} Dataset;

typedef struct DatasetOptions {
    DatasetFormat format;
    const char *prompt_field; /* JSONL: default "prompt", else "question"/"problem" when present */
    const char *answer_field; /* JSONL: default "answer" */
    const char *prompt_suffix; /* appended to every prompt after a newline (NULL = none) */
    int limit;                 /* keep the first `limit` examples (0 = all) */
} DatasetOptions;

int dataset_format_parse(const char *s, DatasetFormat *out);
int dataset_load(Dataset *d, const char *path, const DatasetOptions *o, Err *err);
void dataset_free(Dataset *d);
/* The countdown prompt TinyZero uses (numbers, target) -> text (malloc'd). */
char *dataset_countdown_prompt(const json_t *numbers, long long target);

#endif
