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
    int prefill_chunk; /* prompt tokens per step (0: gen_prefill_chunk_default) */
    uint64_t seed;
    const int32_t *stop_ids; /* besides the model's EOS ids */
    int n_stop_ids;
    int ignore_eos;
    int no_prefix_sharing; /* 1: every request prefills its own prompt */
    /* Paged KV cache (kv_block > 0; needs the backend's
     * attention_decode_paged): positions per block, and kv_tokens, the
     * pool's size in positions (0: max_batch x the longest sequence, so no
     * sequence ever waits for room). A smaller pool holds what is running:
     * when it is full, the sequence started last gives its blocks back and
     * later starts again from its prompt plus the tokens it has generated
     * (recomputed, not lost; its random stream continues where it was). */
    int kv_block;
    int64_t kv_tokens;
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
    /* Where a step's time goes: steps run; host seconds spent issuing
     * them (model_decode and the sampler return before the device is done
     * on an asynchronous backend); seconds then spent waiting for the
     * sampled tokens. wait ~ 0 means the host is the bottleneck. */
    int64_t steps, prefill_steps; /* the latter: steps with prompt tokens */
    int64_t preemptions;          /* paged KV: sequences that gave their blocks back to make room */
    int64_t kv_peak_tokens;       /* paged KV: most pool positions in use at once (whole blocks) */
    double issue_seconds, wait_seconds, prefill_step_seconds;
} GenStats;

/* Prompt tokens per step when GenConfig.prefill_chunk is 0. A GPU step
 * costs a fixed ~3 ms (weights read once, ~300 kernels) whatever its row
 * count, so large steps amortise it: at the Qwen2.5-0.5B shape on an
 * H200, 256 x (128 + 256) tokens run at 44.9k tokens/s with 512-token
 * chunks, 52.3k with 2048, 58.2k with 8192 (the sequences also start
 * together instead of staggered). A CPU step's cost grows with its rows,
 * so there the chunk only sets the scratch size. accelerator: the
 * backend samples on the device (Backend.sample). */
#define GEN_PREFILL_CHUNK_CPU 512
#define GEN_PREFILL_CHUNK_GPU 8192
static inline int gen_prefill_chunk_default(int accelerator) {
    return accelerator ? GEN_PREFILL_CHUNK_GPU : GEN_PREFILL_CHUNK_CPU;
}

/* out[n_req] is filled (free with gen_outputs_free). */
int gen_run(Model *m, const GenRequest *req, int n_req, const GenConfig *cfg, GenOutput *out, GenStats *stats,
            Err *err);
void gen_outputs_free(GenOutput *out, int n);

#endif
