/* Supervised fine-tuning loop (see sft.h). */
#include "train/sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "io/progress.h"
#include "train/optim.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int sft_train(Model *m, const SftExample *ex, int n, const SftConfig *c, SftResult *res, Err *err) {
    memset(res, 0, sizeof *res);
    if (n <= 0) return err_set(err, "sft: no examples");
    int maxlen = 0;
    for (int i = 0; i < n; i++) {
        if (ex[i].n < 2 || ex[i].prompt_len < 1 || ex[i].prompt_len >= ex[i].n)
            return err_set(err, "sft: example %d has %d tokens with a %d-token prompt (need a non-empty completion)", i,
                           ex[i].n, ex[i].prompt_len);
        maxlen = ex[i].n > maxlen ? ex[i].n : maxlen;
    }
    int B = c->batch < n ? c->batch : n;
    int steps_per_epoch = (n + B - 1) / B, total = steps_per_epoch * c->epochs;
    LrConfig lr = c->lr;
    if (lr.total_steps <= 0) lr.total_steps = total;
    Acts a;
    AdamW opt;
    if (model_alloc_grads(m, err) != 0 || acts_create(&a, m, B, maxlen, 0, err) != 0) return -1;
    if (adamw_create(&opt, m, 0.9f, 0.999f, 1e-8f, c->weight_decay, err) != 0) {
        acts_free(&a, m);
        return -1;
    }
    int *order = malloc(n * sizeof(int));
    int32_t *ids = malloc((size_t)B * maxlen * sizeof(int32_t));
    float *dl = malloc((size_t)B * maxlen * sizeof(float));
    double *hist = calloc(total, sizeof(double));
    Progress pg;
    progress_init(&pg, stderr, total);
    double t0 = now_s(), ntok = 0;
    int rc = 0, step = 0;
    for (int e = 0; e < c->epochs && !rc; e++) {
        Rng r;
        rng_split(&r, c->seed, (uint64_t)e);
        for (int i = 0; i < n; i++) order[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(rng_u64(&r) % (uint64_t)(i + 1)), x = order[i];
            order[i] = order[j], order[j] = x;
        }
        for (int s0 = 0; s0 < n && !rc; s0 += B) {
            int Bm = n - s0 < B ? n - s0 : B, Tm = 0;
            double ctok = 0;
            for (int b = 0; b < Bm; b++) {
                const SftExample *x = &ex[order[s0 + b]];
                Tm = x->n > Tm ? x->n : Tm;
                ctok += x->n - x->prompt_len;
            }
            for (int b = 0; b < Bm; b++) {
                const SftExample *x = &ex[order[s0 + b]];
                int32_t *row = ids + (size_t)b * Tm;
                memcpy(row, x->ids, x->n * sizeof(int32_t));
                for (int t = x->n; t < Tm; t++) row[t] = x->ids[x->n - 1];
                for (int t = 0; t < Tm; t++) /* row t predicts token t+1 */
                    dl[(size_t)b * Tm + t] = (t + 1 >= x->prompt_len && t + 1 < x->n) ? (float)(-1.0 / ctok) : 0.0f;
            }
            model_zero_grads(m);
            if ((rc = model_forward(m, &a, ids, Bm, Tm, 1.0f, NULL, err))) break;
            double loss = 0;
            for (int i = 0; i < Bm * Tm; i++) loss += dl[i] * a.logp[i];
            model_backward(m, &a, dl);
            double gn = optim_clip_grad_norm(m, c->grad_clip);
            float lrv = lr_at(&lr, step);
            adamw_step(&opt, m, lrv);
            hist[step] = loss;
            ntok += (double)Bm * Tm;
            step++;
            if (c->metrics) {
                metrics_begin(c->metrics, step);
                metrics_f64(c->metrics, "loss", loss);
                metrics_f64(c->metrics, "grad_norm", gn);
                metrics_f64(c->metrics, "lr", lrv);
                metrics_i64(c->metrics, "epoch", e);
                if ((rc = metrics_end(c->metrics, err))) break;
            }
            if (!c->quiet) {
                ProgressItem it[] = {{"loss", loss}, {"lr", lrv}, {"tok/s", ntok / (now_s() - t0)}};
                progress_update(&pg, step, it, 3);
            }
        }
    }
    if (!c->quiet) progress_finish(&pg);
    if (!rc) {
        int k = step < 10 ? step : 10;
        for (int i = 0; i < k; i++) res->first_loss += hist[i] / k, res->last_loss += hist[step - 1 - i] / k;
        res->steps = step;
        res->tokens_per_s = ntok / (now_s() - t0);
    }
    free(order), free(ids), free(dl), free(hist);
    acts_free(&a, m);
    adamw_free(&opt, m);
    return rc;
}
