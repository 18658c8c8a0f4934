/* GRPO loss variants and advantages (see grpo_loss.h). Accumulates in
 * double: losses are sums of many small terms. */
#include "train/grpo_loss.h"

#include <math.h>
#include <stddef.h>

void grpo_advantages(const float *rewards, int n_groups, int G, AdvScale scale, float *adv) {
    int n = n_groups * G;
    double bmean = 0, bvar = 0;
    for (int i = 0; i < n; i++) bmean += rewards[i];
    bmean /= n;
    for (int i = 0; i < n; i++) bvar += (rewards[i] - bmean) * (rewards[i] - bmean);
    double bstd = n > 1 ? sqrt(bvar / (n - 1)) : 0;
    for (int g = 0; g < n_groups; g++) {
        const float *r = rewards + (size_t)g * G;
        double mean = 0, var = 0;
        for (int i = 0; i < G; i++) mean += r[i];
        mean /= G;
        for (int i = 0; i < G; i++) var += (r[i] - mean) * (r[i] - mean);
        double std = G > 1 ? sqrt(var / (G - 1)) : 0;
        double div = scale == ADV_SCALE_GROUP ? std + 1e-4 : scale == ADV_SCALE_BATCH ? bstd + 1e-4 : 1.0;
        for (int i = 0; i < G; i++) adv[(size_t)g * G + i] = (float)((r[i] - mean) / div);
    }
}

double grpo_loss(const GrpoLossConfig *c, int S, int T, const float *logp, const float *old_logp,
                 const float *ref_logp, const float *mask, const float *adv, double norm_seqs, double norm_tokens,
                 float *dlogp, GrpoLossStats *st) {
    double total = 0;
    double lo = 1.0 - c->eps_low, hi = 1.0 + c->eps_high;
    for (int s = 0; s < S; s++) {
        double n_tok = 0;
        for (int t = 0; t < T; t++) n_tok += mask[(size_t)s * T + t];
        /* weight of one token's loss in the final scalar */
        double w;
        switch (c->type) {
        case GRPO_LOSS_GRPO: w = 1.0 / ((n_tok > 1 ? n_tok : 1) * norm_seqs); break;
        case GRPO_LOSS_DAPO: w = 1.0 / (norm_tokens > 1 ? norm_tokens : 1); break;
        default: w = 1.0 / (norm_seqs * c->max_completion_len); break;
        }
        double A = adv[s];
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)s * T + t;
            if (mask[i] == 0.0f) {
                dlogp[i] = 0;
                continue;
            }
            double lr = (double)logp[i] - old_logp[i];
            double r = exp(lr);
            double rc = r < lo ? lo : r > hi ? hi : r;
            double l1 = r * A, l2 = rc * A;
            double tok_loss, g;
            if (l1 <= l2) tok_loss = -l1, g = -A * r; /* unclipped branch is the min */
            else tok_loss = -l2, g = 0;               /* clipped: constant in logp */
            if (st) {
                if (r < lo && A < 0) st->clip_low += 1;
                if (r > hi && A > 0) st->clip_high += 1;
                st->tokens += 1;
            }
            if (c->beta != 0.0f && ref_logp) {
                double d = (double)ref_logp[i] - logp[i], kl, dkl;
                switch (c->kl) {
                case KL_ESTIMATOR_K1: kl = -d, dkl = 1; break;
                case KL_ESTIMATOR_K2: kl = 0.5 * d * d, dkl = -d; break;
                default: kl = exp(d) - d - 1, dkl = -exp(d) + 1; break;
                }
                tok_loss += c->beta * kl;
                g += c->beta * dkl;
                if (st) st->kl_sum += kl;
            }
            total += w * tok_loss;
            dlogp[i] = (float)(w * g);
        }
    }
    if (st) st->loss += total;
    return total;
}
