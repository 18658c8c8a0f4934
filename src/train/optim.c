/* AdamW, clipping and gradient scaling (see optim.h). */
#include "train/optim.h"

#include <math.h>
#include <string.h>

int adamw_create(AdamW *o, const Model *m, float beta1, float beta2, float eps, float weight_decay, Err *err) {
    return adamw_create_shard(o, m, 0, m->n_floats, beta1, beta2, eps, weight_decay, err);
}

int adamw_create_shard(AdamW *o, const Model *m, size_t lo, size_t hi, float beta1, float beta2, float eps,
                       float weight_decay, Err *err) {
    memset(o, 0, sizeof *o);
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps, o->weight_decay = weight_decay;
    o->lo = lo;
    o->n = hi - lo;
    o->gscale = 1.0f;
    o->m = m->be->alloc((o->n ? o->n : 1) * sizeof(float));
    o->v = m->be->alloc((o->n ? o->n : 1) * sizeof(float));
    if (!o->m || !o->v) {
        adamw_free(o, m);
        return err_set(err, "out of memory for AdamW state (%.1f MB)", 2.0 * o->n * 4 / 1e6);
    }
    return 0;
}

void adamw_free(AdamW *o, const Model *m) {
    if (m->be) {
        m->be->free(o->m);
        m->be->free(o->v);
    }
    memset(o, 0, sizeof *o);
}

void adamw_step(AdamW *o, Model *m, float lr) {
    o->t++;
    size_t lo = o->lo, hi = o->lo + o->n;
    for (int i = 0; i < m->n_params; i++) { /* each parameter's part inside [lo, hi) */
        const ParamInfo *p = &m->params[i];
        size_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a >= b) continue;
        m->be->adamw_update(m->param_mem + a, m->grad_mem + a, o->m + (a - lo), o->v + (a - lo), b - a, lr, o->beta1,
                            o->beta2, o->eps, p->decay ? o->weight_decay : 0.0f, o->t, o->gscale);
    }
    o->gscale = 1.0f;
}

double optim_grad_norm(const Model *m) { return sqrt(m->be->sumsq(m->grad_mem, m->n_floats)); }

/* torch's clip_grad_norm_ factor, or 1 */
static float clip_factor(double norm, double max_norm) {
    return max_norm > 0 && norm > max_norm ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
}

double optim_clip_grad_norm(Model *m, double max_norm) {
    double norm = optim_grad_norm(m);
    float s = clip_factor(norm, max_norm);
    if (s != 1.0f) m->be->scale(m->grad_mem, s, m->n_floats);
    return norm;
}

double adamw_clip_grad_norm(AdamW *o, Model *m, double max_norm) {
    double norm = optim_grad_norm(m);
    o->gscale = clip_factor(norm, max_norm);
    return norm;
}

void optim_scale_grads(Model *m, float s) { m->be->scale(m->grad_mem, s, m->n_floats); }
