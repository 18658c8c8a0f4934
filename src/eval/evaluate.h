/* `r1c eval`: k samples per problem of a benchmark, scored the way the
 * DeepSeek-R1 paper reports: pass@1 averaged over the k samples, cons@k
 * (majority vote over answers grouped by the math verifier's equivalence),
 * pass@k (unbiased estimator), mean response length and truncation rate.
 * Every problem's samples are saved, so `eval_rescore` recomputes the
 * statistics with another verifier setting without sampling again. */
#ifndef R1C_EVAL_EVALUATE_H
#define R1C_EVAL_EVALUATE_H

#include <stdint.h>

#include "backend/backend.h"
#include "base/err.h"

typedef struct EvalConfig {
    const char *model, *data, *format, *template_name, *system, *prompt_suffix;
    const char *out_dir;  /* results.json, samples.jsonl */
    const char *reward;   /* accuracy reward: math (default) or countdown */
    const char *reward_options; /* "key=value,..." for that reward, or NULL */
    int k, limit, batch, max_new_tokens, top_k;
    int kv_block;      /* paged KV cache (GenConfig.kv_block; 0: a cache row per sequence) */
    int64_t kv_tokens; /* its pool's positions (0: batch full-length sequences) */
    float temperature, top_p;
    uint64_t seed;
    const Backend *be; /* NULL: the CPU */
} EvalConfig;

#define EVAL_MAX_PASSK 12

typedef struct EvalResult {
    int n_problems, k;
    double pass1;   /* mean over problems of (correct samples / k) */
    double cons;    /* majority vote correct, over problems */
    int passk_k[EVAL_MAX_PASSK]; /* 1, 2, 4, ... <= k (and k) */
    double passk[EVAL_MAX_PASSK];
    int n_passk;
    double mean_len, trunc_rate; /* tokens; share cut at max_new_tokens */
    double answered;             /* share of samples with an extractable answer */
} EvalResult;

int eval_run(const EvalConfig *c, EvalResult *r, Err *err);
/* Re-scores OUT/samples.jsonl of an earlier run (reward and options as in c). */
int eval_rescore(const char *samples_path, const EvalConfig *c, EvalResult *r, Err *err);
/* Writes the statistics as JSON (atomically) and prints a table. */
int eval_report(const EvalResult *r, const EvalConfig *c, const char *json_path, Err *err);

#endif
