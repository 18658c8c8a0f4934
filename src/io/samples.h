/* samples.jsonl: a few prompts and completions with their rewards, written
 * every N steps so a human can read what the policy is doing. One JSON
 * object per line: {"step":N,"prompt":"...","completion":"...",
 * "rewards":{...}, then any extra keys}. */
#ifndef R1C_IO_SAMPLES_H
#define R1C_IO_SAMPLES_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

typedef struct SamplesWriter {
    FILE *fp;
    char path[4096];
} SamplesWriter;

/* resume_step as in metrics_open: < 0 starts fresh, else cut back and append. */
int samples_open(SamplesWriter *w, const char *path, int64_t resume_step, Err *err);
/* Writes one line and flushes. Model output may end mid-character, so
 * invalid UTF-8 in prompt/completion is replaced by U+FFFD rather than
 * refused. rewards (an object, may be NULL) and the members of extra (an
 * object, may be NULL) are copied in; the caller keeps its references. */
int samples_write(SamplesWriter *w, int64_t step, const char *prompt, const char *completion, const json_t *rewards,
                  const json_t *extra, Err *err);
void samples_close(SamplesWriter *w);

#endif
