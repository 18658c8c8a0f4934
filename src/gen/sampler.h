/* Picks the next token from a row of logits: greedy, or temperature with
 * top-k, top-p (nucleus) and min-p filtering, applied in that order as HF
 * transformers does. The reported log-prob is that of the chosen token
 * under softmax(logits / temperature) before filtering (temperature 1
 * when greedy): the distribution the trainer scores, so the two agree. */
#ifndef R1C_GEN_SAMPLER_H
#define R1C_GEN_SAMPLER_H

#include <stdint.h>

#include "base/rng.h"

typedef struct SamplerParams {
    float temperature; /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 = off */
    float min_p;       /* 0 = off */
} SamplerParams;

typedef struct SamplerWork {
    float *prob;  /* (V) */
    int32_t *idx; /* (V) */
    int V;
} SamplerWork;

int sampler_work_init(SamplerWork *w, int V);
void sampler_work_free(SamplerWork *w);
/* Returns the token; *logp its log-prob as described above. */
int32_t sampler_sample(const SamplerParams *p, const float *logits, SamplerWork *w, Rng *rng, float *logp);

#endif
