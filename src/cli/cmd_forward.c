/* r1c forward: run a checkpoint over token ids and write logits, next-token
 * log-probs, the masked mean NLL and (with --grad) every parameter's
 * gradient to a safetensors file. Parity tests and users debugging a
 * checkpoint drive it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/args.h"
#include "cli/backend_select.h"
#include "cli/commands.h"
#include "model/model.h"

static const char *USAGE =
    "usage: r1c forward --model DIR --input IN.json --out OUT.safetensors [--grad] [--recompute]\n"
    "                   [--backend cpu|cuda]\n"
    "  IN.json: {\"input_ids\": [[int, ...], ...], \"loss_mask\": [[0|1, ...], ...]}\n"
    "           rows of equal length T; loss_mask optional, T-1 per row (1 = the\n"
    "           next-token prediction at that position counts in the loss)\n"
    "  OUT: logits (B,T,V) f32, token_logp (B,T-1), loss (1,) = -masked mean of\n"
    "       token_logp, and with --grad grad.<HF name> for every parameter\n";

typedef struct Input {
    int B, T;
    int32_t *ids;  /* (B,T) */
    float *mask;   /* (B,T-1) */
} Input;

static int read_int_rows(json_t *arr, const char *key, int want_T, int *B, int *T, int32_t **out, const char *path,
                         Err *err) {
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return err_set(err, "%s: '%s' must be a non-empty list of rows", path, key);
    *B = (int)json_array_size(arr);
    int t = -1;
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) {
        if (!json_is_array(row)) return err_set(err, "%s: %s[%zu] is not a list", path, key, i);
        int n = (int)json_array_size(row);
        if (t < 0) t = n;
        if (n != t) return err_set(err, "%s: %s[%zu] has %d entries, row 0 has %d (rows must have equal length)", path, key, i, n, t);
    }
    if (want_T >= 0 && t != want_T) return err_set(err, "%s: %s rows have %d entries, expected %d", path, key, t, want_T);
    if (t <= 0 && want_T < 0) return err_set(err, "%s: %s rows are empty", path, key);
    *T = t;
    *out = malloc((size_t)*B * (t > 0 ? t : 1) * sizeof(int32_t));
    json_array_foreach(arr, i, row) {
        for (int j = 0; j < t; j++) {
            json_t *v = json_array_get(row, j);
            if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
                return err_set(err, "%s: %s[%zu][%d] is not an integer", path, key, i, j);
            (*out)[i * t + j] = (int32_t)json_integer_value(v);
        }
    }
    return 0;
}

static int input_load(Input *in, const char *path, Err *err) {
    memset(in, 0, sizeof *in);
    json_t *root = json_load_path(path, err);
    if (!root) return -1;
    int rc = -1;
    if (!json_is_object(root)) {
        err_set(err, "%s: expected a JSON object", path);
        goto done;
    }
    if (read_int_rows(json_object_get(root, "input_ids"), "input_ids", -1, &in->B, &in->T, &in->ids, path, err))
        goto done;
    if (in->T < 2) {
        err_set(err, "%s: rows need at least 2 tokens to have a next-token log-prob", path);
        goto done;
    }
    in->mask = malloc((size_t)in->B * (in->T - 1) * sizeof(float));
    json_t *jm = json_object_get(root, "loss_mask");
    if (jm && !json_is_null(jm)) {
        int mb, mt;
        int32_t *mi = NULL;
        if (read_int_rows(jm, "loss_mask", in->T - 1, &mb, &mt, &mi, path, err)) {
            free(mi);
            goto done;
        }
        if (mb != in->B) {
            free(mi);
            err_set(err, "%s: loss_mask has %d rows, input_ids has %d", path, mb, in->B);
            goto done;
        }
        for (int i = 0; i < in->B * (in->T - 1); i++) {
            if (mi[i] != 0 && mi[i] != 1) {
                free(mi);
                err_set(err, "%s: loss_mask[%d][%d] must be 0 or 1", path, i / (in->T - 1), i % (in->T - 1));
                goto done;
            }
            in->mask[i] = (float)mi[i];
        }
        free(mi);
    } else
        for (int i = 0; i < in->B * (in->T - 1); i++) in->mask[i] = 1;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

int cmd_forward(int argc, char **argv) {
    const char *model_dir = NULL, *in_path = NULL, *out_path = NULL, *be_name = NULL;
    int want_grad = 0, recompute = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (arg_flag(argv, i, "--help") || arg_flag(argv, i, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if ((r = arg_str(argc, argv, &i, "--model", &model_dir)) || (r = arg_str(argc, argv, &i, "--input", &in_path)) ||
            (r = arg_str(argc, argv, &i, "--out", &out_path)) ||
            (r = arg_str(argc, argv, &i, "--backend", &be_name))) {
            if (r < 0) return 2;
            continue;
        }
        if (arg_flag(argv, i, "--grad")) want_grad = 1;
        else if (arg_flag(argv, i, "--recompute")) recompute = 1;
        else return arg_unknown("forward", argv[i]);
    }
    if (!model_dir || !in_path || !out_path) {
        fputs(USAGE, stderr);
        return 2;
    }
    Err err = {{0}};
    Input in;
    Model m;
    if (input_load(&in, in_path, &err) != 0) {
        fprintf(stderr, "r1c forward: %s\n", err.msg);
        free(in.ids);
        free(in.mask);
        return 1;
    }
    const Backend *be = backend_select(be_name, &err);
    if (!be || model_load(&m, model_dir, be, &err) != 0) {
        fprintf(stderr, "r1c forward: %s\n", err.msg);
        free(in.ids);
        free(in.mask);
        return 1;
    }
    int B = in.B, T = in.T, V = m.cfg.vocab_size, rc = 1;
    Acts a;
    float *logits = NULL, *tlp = NULL, *dlogp = NULL, *grads = NULL;
    StWriteTensor *ts = NULL;
    char(*names)[112] = NULL;
    if (acts_create(&a, &m, B, T, recompute, &err) != 0) goto fail;
    logits = malloc((size_t)B * T * V * sizeof(float));
    tlp = malloc((size_t)B * (T - 1) * sizeof(float));
    dlogp = calloc((size_t)B * T, sizeof(float));
    if (!logits || !tlp || !dlogp) {
        err_set(&err, "out of memory for %d x %d logits", B * T, V);
        goto fail;
    }
    if (model_forward(&m, &a, in.ids, B, T, 1.0f, logits, &err) != 0 || backend_select_check(be, &err) != 0)
        goto fail;
    double msum = 0, lsum = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T - 1; t++) {
            float lp = a.logp[b * T + t], mk = in.mask[b * (T - 1) + t];
            tlp[b * (T - 1) + t] = lp;
            msum += mk;
            lsum += mk * lp;
        }
    float loss = msum > 0 ? (float)(-lsum / msum) : 0.0f;
    int n_out = 3 + (want_grad ? m.n_params : 0);
    ts = calloc(n_out, sizeof *ts);
    names = calloc(m.n_params, sizeof *names);
    if (!ts || !names) {
        err_set(&err, "out of memory");
        goto fail;
    }
    ts[0] = (StWriteTensor){"logits", ST_DTYPE_F32, 3, {B, T, V}, logits};
    ts[1] = (StWriteTensor){"token_logp", ST_DTYPE_F32, 2, {B, T - 1}, tlp};
    ts[2] = (StWriteTensor){"loss", ST_DTYPE_F32, 1, {1}, &loss};
    if (want_grad) {
        if (model_alloc_grads(&m, &err) != 0) goto fail;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T - 1; t++)
                dlogp[b * T + t] = msum > 0 ? (float)(-in.mask[b * (T - 1) + t] / msum) : 0.0f;
        model_backward(&m, &a, dlogp);
        grads = malloc(m.n_floats * sizeof(float));
        if (!grads) {
            err_set(&err, "out of memory for %.1f MB of gradients", m.n_floats * 4.0 / 1e6);
            goto fail;
        }
        be->download(grads, m.grad_mem, m.n_floats * sizeof(float));
        if (backend_select_check(be, &err) != 0) goto fail;
        for (int i = 0; i < m.n_params; i++) {
            const ParamInfo *p = &m.params[i];
            snprintf(names[i], sizeof names[i], "grad.%s", p->name);
            ts[3 + i] = (StWriteTensor){names[i], ST_DTYPE_F32, p->ndim, {p->shape[0], p->shape[1]},
                                        grads + p->offset};
        }
    }
    rc = st_write(out_path, ts, n_out, NULL, NULL, 0, &err) != 0;
fail:
    free(ts);
    free(names);
    if (rc) fprintf(stderr, "r1c forward: %s\n", err.msg);
    acts_free(&a, &m);
    free(logits);
    free(tlp);
    free(dlogp);
    free(grads);
    free(in.ids);
    free(in.mask);
    model_free(&m);
    return rc;
}
