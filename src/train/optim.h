/* AdamW with decoupled weight decay (torch.optim.AdamW semantics), global
 * gradient-norm clipping, and gradient accumulation (model_backward adds
 * into the gradient buffer; step, then zero). Weight decay applies to
 * matrices only, not to norms and biases, as the HF Trainer does. */
#ifndef R1C_TRAIN_OPTIM_H
#define R1C_TRAIN_OPTIM_H

#include "model/model.h"

typedef struct AdamW {
    float beta1, beta2, eps, weight_decay;
    int t;          /* steps taken */
    float *m, *v;   /* moments of parameters [lo, lo + n) of the flat layout */
    size_t n;
    size_t lo;      /* 0 and n = all parameters, unless sharded (ZeRO-1, train/zero.h) */
    float gscale;   /* factor on the gradients the next adamw_step applies (adamw_clip_grad_norm), else 1 */
} AdamW;

int adamw_create(AdamW *o, const Model *m, float beta1, float beta2, float eps, float weight_decay, Err *err);
/* Moments for parameters [lo, hi) only; adamw_step then updates just those
 * (the other ranks update the rest, train/zero.h). */
int adamw_create_shard(AdamW *o, const Model *m, size_t lo, size_t hi, float beta1, float beta2, float eps,
                       float weight_decay, Err *err);
/* Holds moments for only part of the parameters. */
static inline int adamw_sharded(const AdamW *o, const Model *m) { return o->lo != 0 || o->n != m->n_floats; }
void adamw_free(AdamW *o, const Model *m);
/* One update with learning rate lr from m->grad_mem (of the shard). */
void adamw_step(AdamW *o, Model *m, float lr);

/* L2 norm of all gradients (double accumulation). */
double optim_grad_norm(const Model *m);
/* Scales gradients so their norm is at most max_norm (torch's
 * clip_grad_norm_: factor max_norm / (norm + 1e-6) when norm exceeds it).
 * Returns the norm before clipping. max_norm <= 0 disables clipping. */
double optim_clip_grad_norm(Model *m, double max_norm);
/* As optim_clip_grad_norm, but the gradients are left as they are and the
 * next adamw_step applies the factor inside its update: the same
 * parameters bit for bit, one pass over the gradients fewer (4.4 ms a
 * step on a GPU at the 1.5B shape). Only adamw_step may read the
 * gradients in between. */
double adamw_clip_grad_norm(AdamW *o, Model *m, double max_norm);
/* Multiplies all gradients by s (e.g. 1/accumulation steps). */
void optim_scale_grads(Model *m, float s);

#endif
