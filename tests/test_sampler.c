/* The token sampler against hand-computed distributions: greedy, the
 * support of top-k / top-p / min-p, empirical frequencies against the
 * renormalised probabilities, the reported log-prob, and seeding. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gen/sampler.h"

#define V 6

/* logits of probabilities (0.4, 0.25, 0.15, 0.1, 0.06, 0.04) */
static const double P[V] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};

static void logits_of(float *l) {
    for (int i = 0; i < V; i++) l[i] = (float)log(P[i]) + 3.0f; /* shift: softmax-invariant */
}

/* Samples n tokens and checks frequencies against q (renormalised over the
 * kept set) within 5 standard errors; tokens outside must never appear. */
static void check_freq(const char *what, const SamplerParams *sp, const double *q, int n) {
    float l[V];
    logits_of(l);
    SamplerWork w;
    CHECK(sampler_work_init(&w, V) == 0);
    Rng r;
    rng_seed(&r, 99);
    int cnt[V] = {0};
    for (int i = 0; i < n; i++) {
        float lp;
        int32_t t = sampler_sample(sp, l, &w, &r, &lp);
        CHECK(t >= 0 && t < V);
        cnt[t]++;
        /* the reported log-prob is of softmax(l / T) before filtering */
        double T = sp->temperature, z = 0;
        for (int k = 0; k < V; k++) z += exp(l[k] / T);
        CHECK_NEAR(lp, l[t] / T - log(z), 2e-5);
    }
    for (int k = 0; k < V; k++) {
        double f = (double)cnt[k] / n, se = sqrt(q[k] * (1 - q[k]) / n) + 1e-12;
        CHECKF(q[k] == 0 ? cnt[k] == 0 : fabs(f - q[k]) <= 5 * se, "%s: token %d freq %.4f vs %.4f", what, k, f, q[k]);
    }
    sampler_work_free(&w);
}

static void renorm(const double *p, const int *keep, double *q) {
    double s = 0;
    for (int k = 0; k < V; k++) s += keep[k] ? p[k] : 0;
    for (int k = 0; k < V; k++) q[k] = keep[k] ? p[k] / s : 0;
}

int main(void) {
    double q[V];
    const int all[V] = {1, 1, 1, 1, 1, 1};
    /* plain sampling at T = 1 */
    renorm(P, all, q);
    check_freq("T=1", &(SamplerParams){.temperature = 1, .top_p = 1}, q, 40000);
    /* temperature 2: p^(1/2) renormalised */
    double p2[V];
    for (int k = 0; k < V; k++) p2[k] = sqrt(P[k]);
    renorm(p2, all, q);
    check_freq("T=2", &(SamplerParams){.temperature = 2, .top_p = 1}, q, 40000);
    /* top-k 3 */
    const int k3[V] = {1, 1, 1, 0, 0, 0};
    renorm(P, k3, q);
    check_freq("top_k=3", &(SamplerParams){.temperature = 1, .top_k = 3, .top_p = 1}, q, 40000);
    /* top-p 0.7: smallest prefix with mass >= 0.7 is {0.4, 0.25, 0.15} (0.8) */
    renorm(P, k3, q);
    check_freq("top_p=0.7", &(SamplerParams){.temperature = 1, .top_p = 0.7f}, q, 40000);
    /* top-p 0.65: {0.4, 0.25} reaches 0.65 exactly */
    const int k2[V] = {1, 1, 0, 0, 0, 0};
    renorm(P, k2, q);
    check_freq("top_p=0.65", &(SamplerParams){.temperature = 1, .top_p = 0.65f}, q, 40000);
    /* min-p 0.3: keep p >= 0.3 * 0.4 = 0.12 */
    renorm(P, k3, q);
    check_freq("min_p=0.3", &(SamplerParams){.temperature = 1, .top_p = 1, .min_p = 0.3f}, q, 40000);
    /* top-k 4 then top-p 0.8 over the kept four (renormalised mass 0.9):
     * 0.4/0.9 + 0.25/0.9 = 0.72 < 0.8, + 0.15/0.9 = 0.89 -> three tokens */
    renorm(P, k3, q);
    check_freq("top_k=4 top_p=0.8", &(SamplerParams){.temperature = 1, .top_k = 4, .top_p = 0.8f}, q, 40000);
    /* greedy: argmax, log-prob at T = 1 */
    float l[V];
    logits_of(l);
    SamplerWork w;
    sampler_work_init(&w, V);
    Rng r;
    rng_seed(&r, 1);
    float lp;
    CHECK(sampler_sample(&(SamplerParams){.temperature = 0}, l, &w, &r, &lp) == 0);
    CHECK_NEAR(lp, log(0.4), 1e-5);
    /* same seed, same sequence */
    Rng a, b;
    rng_split(&a, 5, 3);
    rng_split(&b, 5, 3);
    SamplerParams sp = {.temperature = 1, .top_p = 1};
    for (int i = 0; i < 100; i++) {
        float x, y;
        CHECK(sampler_sample(&sp, l, &w, &a, &x) == sampler_sample(&sp, l, &w, &b, &y));
    }
    /* a huge vocabulary with one dominant token: top-p keeps only it */
    int BV = 150000;
    float *bl = malloc(BV * sizeof(float));
    for (int i = 0; i < BV; i++) bl[i] = 0;
    bl[777] = 30;
    SamplerWork bw;
    sampler_work_init(&bw, BV);
    for (int i = 0; i < 50; i++)
        CHECK(sampler_sample(&(SamplerParams){.temperature = 1, .top_p = 0.95f}, bl, &bw, &r, &lp) == 777);
    sampler_work_free(&bw);
    sampler_work_free(&w);
    free(bl);
    return check_summary("test_sampler");
}
