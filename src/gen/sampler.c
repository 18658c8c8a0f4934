/* Token sampling (see sampler.h). Sorting 150k entries per token would
 * dominate small-model decoding, so candidates are pre-filtered with exact
 * bounds before any sort: top-k by selection, top-p by dropping tokens whose
 * probability is below (1 - top_p) / V (together they weigh less than
 * 1 - top_p, so they are all outside the nucleus). */
#include "gen/sampler.h"

#include <math.h>
#include <stdlib.h>

int sampler_work_init(SamplerWork *w, int V) {
    w->V = V;
    w->prob = malloc((size_t)V * sizeof(float));
    w->idx = malloc((size_t)V * sizeof(int32_t));
    return (w->prob && w->idx) ? 0 : -1;
}

void sampler_work_free(SamplerWork *w) {
    free(w->prob);
    free(w->idx);
    w->prob = NULL;
    w->idx = NULL;
}

static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *prob = ctx;
    float x = prob[*(const int32_t *)a], y = prob[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b; /* stable across libcs */
}

/* Partitions idx[0..n) so the k largest come first (unordered). */
static void select_top_k(int32_t *idx, int n, int k, const float *prob) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = prob[idx[(lo + hi) / 2]];
        int i = lo, j = hi;
        while (i <= j) {
            while (prob[idx[i]] > pivot) i++;
            while (prob[idx[j]] < pivot) j--;
            if (i <= j) {
                int32_t t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
                i++, j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

int32_t sampler_sample(const SamplerParams *p, const float *logits, SamplerWork *w, Rng *rng, float *logp) {
    int V = w->V;
    float T = p->temperature > 0 ? p->temperature : 1.0f, inv_t = 1.0f / T;
    float mx = -INFINITY;
    int32_t arg = 0;
    for (int j = 0; j < V; j++)
        if (logits[j] > mx) mx = logits[j], arg = j;
    double sum = 0;
    float zmax = mx * inv_t;
    for (int j = 0; j < V; j++) {
        float e = expf(logits[j] * inv_t - zmax);
        w->prob[j] = e;
        sum += e;
    }
    float lse = zmax + (float)log(sum);
    if (p->temperature <= 0) {
        *logp = logits[arg] - lse;
        return arg;
    }
    /* Every filter keeps the tokens whose (unnormalised) probability e is
     * at or above a threshold; the kept set is {e >= tau} over the
     * candidates, and the draw walks it in token-id order. The GPU sampler
     * (backend op `sample`) computes the same thresholds, so both pick the
     * same token from the same logits and uniform. The max token has
     * e = 1 exactly, so it always survives. */
    float inv_sum = (float)(1.0 / sum);
    float floor_p = 0, pmax = 1.0f * inv_sum;
    if (p->top_p > 0 && p->top_p < 1) floor_p = (1.0f - p->top_p) / (float)V;
    if (p->min_p > 0 && p->min_p * pmax > floor_p) floor_p = p->min_p * pmax;
    int n = 0;
    for (int j = 0; j < V; j++)
        if (w->prob[j] * inv_sum >= floor_p) w->idx[n++] = j;
    float tau = 0;
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(w->idx, n, p->top_k, w->prob);
        float kth = INFINITY;
        for (int i = 0; i < p->top_k; i++)
            if (w->prob[w->idx[i]] < kth) kth = w->prob[w->idx[i]];
        tau = kth;
        int k = 0; /* ties with the k-th value stay: the set is {e >= kth} */
        for (int i = 0; i < n; i++)
            if (w->prob[w->idx[i]] >= tau) w->idx[k++] = w->idx[i];
        n = k;
    }
    if (p->top_p > 0 && p->top_p < 1) {
        qsort_r(w->idx, n, sizeof *w->idx, cmp_desc, w->prob);
        double tot = 0;
        for (int i = 0; i < n; i++) tot += w->prob[w->idx[i]];
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += w->prob[w->idx[i]];
            if (cum >= p->top_p * tot) {
                if (w->prob[w->idx[i]] > tau) tau = w->prob[w->idx[i]];
                break;
            }
        }
    }
    if (p->min_p > 0 && p->min_p > tau) tau = p->min_p; /* relative to the best token, e = 1 */
    double tot = 0;
    for (int j = 0; j < V; j++)
        if (w->prob[j] >= tau && w->prob[j] * inv_sum >= floor_p) tot += w->prob[j];
    double u = rng_f64(rng) * tot, c = 0;
    int32_t tok = arg;
    for (int j = 0; j < V; j++) {
        if (!(w->prob[j] >= tau && w->prob[j] * inv_sum >= floor_p)) continue;
        c += w->prob[j];
        tok = j;
        if (u < c) break;
    }
    *logp = logits[tok] * inv_t - lse;
    return tok;
}
