/* Rejection sampling (R1 stage 3): sample N completions per prompt, keep
 * those every reward accepts and that pass the paper's readability filters
 * (no language mixing in the reasoning, no overlong paragraphs, no code
 * blocks in the reasoning), drop duplicates, keep at most k per prompt, and
 * write SFT-ready JSON lines with provenance plus a summary of acceptance
 * by prompt difficulty. */
#ifndef R1C_EVAL_REJECT_H
#define R1C_EVAL_REJECT_H

#include <stdint.h>

#include "backend/backend.h"
#include "base/err.h"

typedef struct RejectConfig {
    const char *model, *data, *format, *template_name, *system, *prompt_suffix;
    const char *out;           /* SFT-ready JSONL */
    const char *rewards;       /* reward set; a sample must score >= min_score on each */
    const char *reward_options;
    double min_score;
    int n, keep, batch, max_new_tokens, top_k, limit;
    int kv_block;      /* paged KV cache (GenConfig.kv_block; 0: a cache row per sequence) */
    int64_t kv_tokens; /* its pool's positions (0: batch full-length sequences) */
    float temperature, top_p;
    uint64_t seed;
    int max_paragraph;     /* longest paragraph of the reasoning in bytes (0 = off) */
    int no_code_in_think;  /* reject ``` inside <think> */
    const char *language;  /* "en" / "zh": reject reasoning below min_language share (NULL = off) */
    double min_language;
    const Backend *be; /* NULL: the CPU */
} RejectConfig;

typedef struct RejectSummary {
    int prompts, samples, accepted, kept, duplicates, filtered_readability;
    int bucket_prompts[5], bucket_kept[5]; /* by pass rate: 0, (0,.25], (.25,.5], (.5,.75], (.75,1] */
} RejectSummary;

int reject_run(const RejectConfig *c, RejectSummary *s, Err *err);
/* Writes the summary as JSON (atomically) and prints a table. */
int reject_report(const RejectSummary *s, const char *json_path, Err *err);

#endif
