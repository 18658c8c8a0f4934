/* Supervised fine-tuning loop (see sft.h). */
#include "base/clock.h"
#include "train/sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "dist/dist.h"
#include "io/progress.h"
#include "train/optim.h"
#include "train/zero.h"

static double now_s(void) { return clock_seconds(); }

static int sft_eval_sums(Model *m, const SftExample *ex, int n, int batch, double *sc, Err *err);

/* Is token t of x trained (predicted from t - 1)? */
static int sft_is_target(const SftExample *x, int t) { return x->mask ? x->mask[t] != 0 : t >= x->prompt_len; }

int sft_train(Model *m, const SftExample *ex, int n, const SftConfig *c, SftResult *res, Err *err) {
    memset(res, 0, sizeof *res);
    if (n <= 0) return err_set(err, "sft: no examples");
    int maxlen = 0;
    for (int i = 0; i < n; i++) {
        if (ex[i].mask) {
            int any = 0;
            for (int t = 1; t < ex[i].n; t++) any |= ex[i].mask[t];
            if (!any) return err_set(err, "sft: example %d has no target tokens", i);
        } else if (ex[i].n < 2 || ex[i].prompt_len < 1 || ex[i].prompt_len >= ex[i].n)
            return err_set(err, "sft: example %d has %d tokens with a %d-token prompt (need a non-empty completion)", i,
                           ex[i].n, ex[i].prompt_len);
        maxlen = ex[i].n > maxlen ? ex[i].n : maxlen;
    }
    int B = c->batch < n ? c->batch : n;
    int steps_per_epoch = (n + B - 1) / B, total = steps_per_epoch * c->epochs;
    LrConfig lr = c->lr;
    if (lr.total_steps <= 0) lr.total_steps = total;
    int pack_len = c->pack_len > maxlen ? c->pack_len : maxlen;
    int rowlen = c->pack ? pack_len : maxlen;
    Acts a;
    AdamW own, *opt = c->opt ? c->opt : &own;
    if (model_alloc_grads(m, err) != 0 || acts_create(&a, m, B, rowlen, 0, err) != 0) return -1;
    if (c->keep_logits && acts_keep_logits(&a, m, err) != 0) {
        acts_free(&a, m);
        return -1;
    }
    if (!c->opt && adamw_create(&own, m, 0.9f, 0.999f, 1e-8f, c->weight_decay, err) != 0) {
        acts_free(&a, m);
        return -1;
    }
    int *order = malloc(n * sizeof(int));
    int32_t *ids = malloc((size_t)B * rowlen * sizeof(int32_t)), *seg = malloc((size_t)B * rowlen * sizeof(int32_t));
    float *dl = malloc((size_t)B * rowlen * sizeof(float));
    double *hist = calloc(total > 0 ? total : 1, sizeof(double));
    Progress pg;
    progress_init(&pg, stderr, total);
    double t0 = now_s(), ntok = 0;
    int rc = 0, step = 0;
    int stopped = 0;
    for (int e = 0; e < c->epochs && !rc && !stopped; e++) {
        Rng r;
        rng_split(&r, c->seed, (uint64_t)e);
        for (int i = 0; i < n; i++) order[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(rng_u64(&r) % (uint64_t)(i + 1)), x = order[i];
            order[i] = order[j], order[j] = x;
        }
        for (int s0 = 0; s0 < n && !rc; s0 += B) {
            if (step < c->start_step) { /* resumed: this batch was trained before */
                step++;
                continue;
            }
            double ts = now_s();
            int Bm = n - s0 < B ? n - s0 : B, Tm = 0;
            double ctok = 0; /* the whole batch's: every rank has the data, so no communication */
            for (int b = 0; b < Bm; b++) {
                const SftExample *x = &ex[order[s0 + b]];
                for (int t = 1; t < x->n; t++) ctok += sft_is_target(x, t);
            }
            /* this rank's slice of the batch (all of it for one process) */
            int lo, hi;
            dist_slice(c->comm, Bm, &lo, &hi);
            const int *bo = order + s0 + lo;
            int Bl = hi - lo;
            for (int b = 0; b < Bl; b++) Tm = ex[bo[b]].n > Tm ? ex[bo[b]].n : Tm;
            int rows = Bl;
            if (c->pack) { /* first fit, in order, into rows of pack_len */
                int *fill = calloc((size_t)(Bl > 0 ? Bl : 1), sizeof(int));
                rows = 0;
                Tm = pack_len;
                for (int b = 0; b < Bl; b++) {
                    const SftExample *x = &ex[bo[b]];
                    int ri = 0;
                    while (ri < rows && fill[ri] + x->n > Tm) ri++;
                    if (ri == rows) rows++;
                    int at = fill[ri];
                    int32_t *row = ids + (size_t)ri * Tm;
                    memcpy(row + at, x->ids, x->n * sizeof(int32_t));
                    for (int t = 0; t < x->n; t++) {
                        seg[(size_t)ri * Tm + at + t] = at;
                        dl[(size_t)ri * Tm + at + t] =
                            (t + 1 < x->n && sft_is_target(x, t + 1)) ? (float)(-1.0 / ctok) : 0.0f;
                    }
                    fill[ri] += x->n;
                }
                for (int ri = 0; ri < rows; ri++) /* the rest of a row: one padding segment */
                    for (int t = fill[ri]; t < Tm; t++) {
                        ids[(size_t)ri * Tm + t] = ids[(size_t)ri * Tm + (fill[ri] ? fill[ri] - 1 : 0)];
                        seg[(size_t)ri * Tm + t] = fill[ri];
                        dl[(size_t)ri * Tm + t] = 0.0f;
                    }
                free(fill);
            } else
                for (int b = 0; b < Bl; b++) {
                    const SftExample *x = &ex[bo[b]];
                    int32_t *row = ids + (size_t)b * Tm;
                    memcpy(row, x->ids, x->n * sizeof(int32_t));
                    for (int t = x->n; t < Tm; t++) row[t] = x->ids[x->n - 1];
                    for (int t = 0; t < Tm; t++) /* row t predicts token t+1 */
                        dl[(size_t)b * Tm + t] = (t + 1 < x->n && sft_is_target(x, t + 1)) ? (float)(-1.0 / ctok) : 0.0f;
                }
            model_zero_grads(m);
            double loss = 0;
            if (rows > 0) { /* a rank can get no example of a short last batch */
                if (c->pack) rc = model_forward_packed(m, &a, ids, seg, rows, Tm, 1.0f, err);
                else rc = model_forward(m, &a, ids, Bl, Tm, 1.0f, NULL, err);
                if (rc) break;
                for (int i = 0; i < rows * Tm; i++) loss += dl[i] * a.logp[i];
                model_backward(m, &a, dl);
            }
            /* the loss and the tokens processed (rows x length, padding
             * included: what the GEMMs ran over) summed over the ranks */
            double sums[2] = {loss, (double)rows * Tm};
            if ((rc = dist_grads_allreduce(c->comm, m, err)) || (rc = dist_sum_f64(c->comm, sums, 2, err))) break;
            loss = sums[0];
            double gn = adamw_clip_grad_norm(opt, m, c->grad_clip); /* applied in the step */
            float lrv = lr_at(&lr, step);
            if ((rc = zero_step(c->comm, opt, m, lrv, err))) break;
            if (dist_check_enabled() && (rc = dist_weights_check(c->comm, m, step + 1, err))) break;
            hist[step] = loss;
            ntok += (double)rows * Tm; /* this rank's */
            step++;
            if (c->metrics) {
                metrics_begin(c->metrics, step);
                metrics_f64(c->metrics, "loss", loss);
                metrics_f64(c->metrics, "grad_norm", gn);
                metrics_f64(c->metrics, "lr", lrv);
                metrics_i64(c->metrics, "epoch", e);
                double dt = now_s() - ts;
                metrics_f64(c->metrics, "tokens", sums[1]);
                metrics_f64(c->metrics, "time/step", dt);
                metrics_f64(c->metrics, "tokens_per_s", dt > 0 ? sums[1] / dt : 0);
                if ((rc = metrics_end(c->metrics, err))) break;
            }
            if (!c->quiet) {
                ProgressItem it[] = {{"loss", loss}, {"lr", lrv}, {"tok/s", ntok / (now_s() - t0)}};
                progress_update(&pg, step, it, 3);
            }
            if (c->on_step) {
                int stop = c->on_step(c->user, step, e, loss, err);
                if (stop < 0) rc = -1;
                if (stop) {
                    stopped = 1;
                    break;
                }
            }
        }
    }
    if (!c->quiet) progress_finish(&pg);
    if (!rc) {
        int k = step - c->start_step < 10 ? step - c->start_step : 10;
        for (int i = 0; i < k; i++)
            res->first_loss += hist[c->start_step + i] / k, res->last_loss += hist[step - 1 - i] / k;
        res->steps = step;
        res->tokens_per_s = ntok / (now_s() - t0);
    }
    free(order), free(ids), free(seg), free(dl), free(hist);
    acts_free(&a, m);
    if (!c->opt) adamw_free(&own, m);
    return rc;
}

int sft_total_steps(int n, int batch, int epochs) {
    int B = batch < n ? batch : n;
    return B > 0 ? (n + B - 1) / B * epochs : 0;
}

int sft_eval_loss(Model *m, const SftExample *ex, int n, int batch, double *loss, Err *err) {
    return sft_eval_loss_dist(m, ex, n, batch, NULL, loss, err);
}

int sft_eval_loss_dist(Model *m, const SftExample *ex_all, int n_all, int batch, Comm *comm, double *loss, Err *err) {
    if (n_all <= 0) return err_set(err, "sft: no eval examples");
    int lo, hi;
    dist_slice(comm, n_all, &lo, &hi);
    const SftExample *ex = ex_all + lo;
    int n = hi - lo;
    double sc[2] = {0, 0}; /* NLL sum, target tokens */
    if (n > 0 && sft_eval_sums(m, ex, n, batch, sc, err) != 0) return -1;
    if (dist_sum_f64(comm, sc, 2, err) != 0) return -1;
    *loss = sc[1] > 0 ? sc[0] / sc[1] : 0;
    return 0;
}

static int sft_eval_sums(Model *m, const SftExample *ex, int n, int batch, double *sc, Err *err) {
    int maxlen = 0;
    for (int i = 0; i < n; i++) maxlen = ex[i].n > maxlen ? ex[i].n : maxlen;
    int B = batch < n ? batch : n;
    Acts a;
    if (acts_create(&a, m, B, maxlen, 0, err) != 0) return -1;
    int32_t *ids = malloc((size_t)B * maxlen * sizeof(int32_t));
    double sum = 0, cnt = 0;
    int rc = 0;
    for (int s0 = 0; s0 < n && !rc; s0 += B) {
        int Bm = n - s0 < B ? n - s0 : B, Tm = 0;
        for (int b = 0; b < Bm; b++) Tm = ex[s0 + b].n > Tm ? ex[s0 + b].n : Tm;
        for (int b = 0; b < Bm; b++) {
            const SftExample *x = &ex[s0 + b];
            memcpy(ids + (size_t)b * Tm, x->ids, x->n * sizeof(int32_t));
            for (int t = x->n; t < Tm; t++) ids[(size_t)b * Tm + t] = x->ids[x->n - 1];
        }
        if ((rc = model_forward(m, &a, ids, Bm, Tm, 1.0f, NULL, err))) break;
        for (int b = 0; b < Bm; b++)
            for (int t = 1; t < ex[s0 + b].n; t++)
                if (sft_is_target(&ex[s0 + b], t)) sum -= a.logp[(size_t)b * Tm + t - 1], cnt += 1;
    }
    free(ids);
    acts_free(&a, m);
    sc[0] = sum, sc[1] = cnt;
    return rc;
}
