/* Batched generation with a KV cache and continuous batching: up to
 * max_batch sequences run at once; a finished sequence frees its slot and
 * the next request's prompt is prefilled into it in the same step as the
 * others decode. Requests with the same prompt (the G samples of a group)
 * share its prefill: the first computes it, the others copy its KV rows. Each request has its own random stream (seed, stream), so
 * its output does not depend on what else is in the batch. */
#ifndef R1C_GEN_GENERATE_H
#define R1C_GEN_GENERATE_H

#include <stdint.h>

#include "base/err.h"
#include "gen/sampler.h"
#include "model/model.h"

typedef enum GenFinish { GEN_FINISH_LENGTH, GEN_FINISH_EOS, GEN_FINISH_STOP } GenFinish;

typedef struct GenRequest {
    const int32_t *prompt;
    int prompt_len;
    uint64_t stream; /* random stream id; same (seed, stream) -> same output */
} GenRequest;

typedef struct GenOutput {
    int32_t *tokens; /* generated tokens (the EOS/stop token included) */
    float *logp;     /* log-prob of each, as the sampler defines it */
    int n;
    GenFinish finish;
} GenOutput;

typedef struct GenConfig {
    SamplerParams sampling;
    int max_new_tokens;
    int max_batch;     /* sequences decoded together */
    int prefill_chunk; /* prompt tokens per step (0 = 512) */
    uint64_t seed;
    const int32_t *stop_ids; /* besides the model's EOS ids */
    int n_stop_ids;
    int ignore_eos;
    int no_prefix_sharing; /* 1: every request prefills its own prompt */
    /* Optional: return 1 to stop request `req` after its newest token
     * (stop strings are checked here on decoded text). */
    int (*stop_fn)(void *user, int req, const int32_t *toks, int n);
    /* Optional: called for every generated token, in order per request. */
    void (*on_token)(void *user, int req, int32_t tok, float logp);
    void *user;
} GenConfig;

typedef struct GenStats {
    int64_t prefill_tokens, decode_tokens;
    int64_t shared_prefix_tokens; /* prompt tokens copied from another sequence's cache */
    double seconds;
} GenStats;

/* out[n_req] is filled (free with gen_outputs_free). */
int gen_run(Model *m, const GenRequest *req, int n_req, const GenConfig *cfg, GenOutput *out, GenStats *stats,
            Err *err);
void gen_outputs_free(GenOutput *out, int n);

#endif
