/* The GRPO family of policy losses on per-token log-probs, with the
 * gradient d loss / d logp that model_backward takes. Pure arithmetic:
 * the trainer supplies log-probs from the policy (logp), from the policy
 * that sampled (old_logp; equal to logp when mu = 1) and from the frozen
 * reference (ref_logp, only when beta != 0).
 *
 * Per token: r = exp(logp - old), l = -min(r A, clip(r, 1-eps_low,
 * 1+eps_high) A) + beta * KL(logp, ref). Aggregation ("loss type"):
 *   grpo     mean over sequences of the per-sequence token mean (the paper)
 *   dapo     token sum over the whole batch / tokens in the batch
 *   dr_grpo  token sum / (sequences x max completion length)
 * Normalisers are passed in for the GLOBAL batch, so micro-batches add up
 * to exactly the full-batch loss and gradient. */
#ifndef R1C_TRAIN_GRPO_LOSS_H
#define R1C_TRAIN_GRPO_LOSS_H

typedef enum GrpoLossType { GRPO_LOSS_GRPO, GRPO_LOSS_DAPO, GRPO_LOSS_DR_GRPO } GrpoLossType;
typedef enum KlEstimator { KL_ESTIMATOR_K1, KL_ESTIMATOR_K2, KL_ESTIMATOR_K3 } KlEstimator;
typedef enum AdvScale { ADV_SCALE_GROUP, ADV_SCALE_BATCH, ADV_SCALE_NONE } AdvScale;

typedef struct GrpoLossConfig {
    GrpoLossType type;
    float eps_low, eps_high; /* clip range [1 - eps_low, 1 + eps_high] */
    float beta;              /* KL coefficient; 0 = no reference model */
    KlEstimator kl;
    int max_completion_len; /* dr_grpo's constant normaliser */
} GrpoLossConfig;

typedef struct GrpoLossStats {
    double loss;
    double kl_sum;          /* sum over masked tokens of the KL estimate */
    double clip_low, clip_high; /* masked tokens whose ratio was clipped (counts) */
    double tokens;          /* masked tokens seen */
} GrpoLossStats;

/* Group-normalised advantages: A_i = (r_i - mean_group) / (std + 1e-4) with
 * the unbiased std of the group (ADV_SCALE_GROUP) or of the whole batch
 * (ADV_SCALE_BATCH), or no division (ADV_SCALE_NONE, Dr. GRPO).
 * rewards and adv: (n_groups * G), group-major. */
void grpo_advantages(const float *rewards, int n_groups, int G, AdvScale scale, float *adv);

/* S sequences x T completion positions (padded): logp, old_logp, ref_logp
 * (NULL when beta == 0) and mask (1 = token counts) are (S, T); adv (S).
 * norm_seqs / norm_tokens: sequences / masked tokens in the global batch.
 * Writes dlogp (S, T) (zero where mask is 0), accumulates stats, returns
 * this micro-batch's share of the loss. */
double grpo_loss(const GrpoLossConfig *c, int S, int T, const float *logp, const float *old_logp,
                 const float *ref_logp, const float *mask, const float *adv, double norm_seqs, double norm_tokens,
                 float *dlogp, GrpoLossStats *stats);

#endif
