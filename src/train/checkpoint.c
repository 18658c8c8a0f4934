/* Checkpoint save/load (see checkpoint.h). */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"

static int rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (!d) return unlink(path);
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    return rmdir(path);
}

static int64_t step_of(const char *name) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    char *end;
    long long v = strtoll(name + 5, &end, 10);
    return (*end || end == name + 5 || v < 0) ? -1 : v;
}

/* Complete checkpoints, sorted by step (ascending). */
static int list_steps(const char *ck_dir, int64_t **steps, int *n) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(ck_dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = step_of(e->d_name);
        if (s < 0) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s/trainer_state.json", ck_dir, e->d_name);
        if (access(p, F_OK) != 0) continue;
        *steps = realloc(*steps, (*n + 1) * sizeof **steps);
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    for (int i = 1; i < *n; i++)
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return 0;
}

int checkpoint_save(const char *run_dir, const Model *m, const AdamW *opt, const TrainState *st,
                    const char *const *carry, int n_carry, int keep, Err *err) {
    if (!opt || !opt->m) return checkpoint_save_host(run_dir, m, NULL, NULL, opt ? opt->t : 0, st, carry, n_carry, keep, err);
    if (adamw_sharded(opt, m)) /* this rank has a slice only */
        return err_set(err, "%s: a sharded optimizer is saved with zero_checkpoint_save", run_dir);
    /* moments live in backend memory: bring them to the host once */
    float *hm = malloc(m->n_floats * sizeof(float)), *hv = malloc(m->n_floats * sizeof(float));
    if (!hm || !hv) {
        free(hm), free(hv);
        return err_set(err, "%s: out of memory for the optimizer state", run_dir);
    }
    m->be->download(hm, opt->m, m->n_floats * sizeof(float));
    m->be->download(hv, opt->v, m->n_floats * sizeof(float));
    int rc = checkpoint_save_host(run_dir, m, hm, hv, opt->t, st, carry, n_carry, keep, err);
    free(hm), free(hv);
    return rc;
}

int checkpoint_save_host(const char *run_dir, const Model *m, const float *hm, const float *hv, int adam_t,
                         const TrainState *st, const char *const *carry, int n_carry, int keep, Err *err) {
    char ck[4096], tmp[4096], fin[4096], p[4096];
    snprintf(ck, sizeof ck, "%s/checkpoints", run_dir);
    snprintf(fin, sizeof fin, "%s/step-%" PRId64, ck, st->step);
    snprintf(tmp, sizeof tmp, "%s/.step-%" PRId64 ".tmp-%ld", ck, st->step, (long)getpid());
    if (dir_make(ck, err) != 0) return -1;
    rm_rf(tmp);
    if (dir_make(tmp, err) != 0) return -1;
    if (model_save(m, tmp, ST_DTYPE_F32, err) != 0) goto fail;
    for (int i = 0; i < n_carry; i++) {
        if (!carry[i] || access(carry[i], F_OK) != 0) continue;
        const char *base = strrchr(carry[i], '/');
        snprintf(p, sizeof p, "%s/%s", tmp, base ? base + 1 : carry[i]);
        if (file_copy_atomic(carry[i], p, err) != 0) goto fail;
    }
    if (hm && hv) {
        StWriteTensor *ts = calloc(2 * m->n_params, sizeof *ts);
        char(*names)[112] = calloc(2 * m->n_params, sizeof *names);
        for (int i = 0; i < m->n_params; i++) {
            const ParamInfo *pi = &m->params[i];
            for (int k = 0; k < 2; k++) {
                int j = 2 * i + k;
                snprintf(names[j], sizeof names[j], "%s.%s", k ? "exp_avg_sq" : "exp_avg", pi->name);
                ts[j] = (StWriteTensor){names[j], ST_DTYPE_F32, pi->ndim, {pi->shape[0], pi->shape[1]},
                                        (const float *)(k ? hv : hm) + pi->offset};
            }
        }
        snprintf(p, sizeof p, "%s/optimizer.safetensors", tmp);
        int rc = st_write(p, ts, 2 * m->n_params, NULL, NULL, 0, err);
        free(ts);
        free(names);
        if (rc) goto fail;
    }
    json_t *js = json_object();
    json_object_set_new(js, "step", json_integer(st->step));
    json_object_set_new(js, "data_pos", json_integer(st->data_pos));
    json_object_set_new(js, "epoch", json_integer(st->epoch));
    json_object_set_new(js, "adam_t", json_integer(adam_t));
    json_t *rng = json_array();
    for (int i = 0; i < 4; i++) {
        char hex[32];
        snprintf(hex, sizeof hex, "%016" PRIx64, st->rng.s[i]);
        json_array_append_new(rng, json_string(hex));
    }
    json_object_set_new(js, "rng", rng);
    if (st->extra) json_object_set(js, "extra", st->extra);
    char *txt = json_dumps(js, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(js);
    snprintf(p, sizeof p, "%s/trainer_state.json", tmp);
    int rc = file_write_atomic(p, txt, strlen(txt), err); /* written last: marks the directory complete */
    free(txt);
    if (rc) goto fail;
    if (dir_sync(tmp, err) != 0) goto fail;
    if (access(fin, F_OK) == 0) rm_rf(fin); /* re-saving the same step */
    if (rename(tmp, fin) != 0) {
        err_set(err, "%s: rename failed: %s", fin, strerror(errno));
        goto fail;
    }
    if (dir_sync(ck, err) != 0) return -1;
    if (keep > 0) {
        int64_t *steps;
        int n;
        list_steps(ck, &steps, &n);
        for (int i = 0; i + keep < n; i++) {
            snprintf(p, sizeof p, "%s/step-%" PRId64, ck, steps[i]);
            rm_rf(p);
        }
        free(steps);
    }
    return 0;
fail:
    rm_rf(tmp);
    return -1;
}

int checkpoint_latest(const char *run_dir, char *out, size_t cap, Err *err) {
    char ck[4096];
    snprintf(ck, sizeof ck, "%s/checkpoints", run_dir);
    int64_t *steps;
    int n;
    list_steps(ck, &steps, &n);
    if (n == 0) {
        free(steps);
        return 1;
    }
    snprintf(out, cap, "%s/step-%" PRId64, ck, steps[n - 1]);
    free(steps);
    (void)err;
    return 0;
}

int checkpoint_load(const char *dir, Model *m, AdamW *opt, TrainState *st, Err *err) {
    char p[4096];
    StCheckpoint ck;
    if (st_checkpoint_open(&ck, dir, err) != 0) return -1;
    int rc = model_load_weights(m, &ck, dir, err);
    st_checkpoint_close(&ck);
    if (rc) return -1;
    snprintf(p, sizeof p, "%s/trainer_state.json", dir);
    json_t *js = json_load_path(p, err);
    if (!js) return -1;
    int64_t v;
    memset(st, 0, sizeof *st);
    if (json_get_i64(js, "step", &st->step, p, err) || json_get_i64(js, "data_pos", &st->data_pos, p, err) ||
        json_get_i64(js, "epoch", &st->epoch, p, err) || json_get_i64(js, "adam_t", &v, p, err)) {
        json_decref(js);
        return err_set(err, "%s: missing or bad step/data_pos/epoch/adam_t", p);
    }
    json_t *rng = json_object_get(js, "rng");
    if (!json_is_array(rng) || json_array_size(rng) != 4) {
        json_decref(js);
        return err_set(err, "%s: 'rng' must be a list of 4 hex strings", p);
    }
    for (int i = 0; i < 4; i++) {
        const char *h = json_string_value(json_array_get(rng, i));
        char *end;
        if (!h || !*h || (st->rng.s[i] = strtoull(h, &end, 16), *end)) {
            json_decref(js);
            return err_set(err, "%s: rng[%d] is not a hex string", p, i);
        }
    }
    st->extra = json_incref(json_object_get(js, "extra"));
    json_decref(js);
    if (opt && opt->m) {
        snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
        StFile f;
        if (st_open(&f, p, err) != 0) return -1;
        for (int i = 0; i < m->n_params && !rc; i++) {
            const ParamInfo *pi = &m->params[i];
            for (int k = 0; k < 2 && !rc; k++) {
                char name[128];
                snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", pi->name);
                const StTensor *t = st_find(&f, name);
                /* a sharded optimizer holds [lo, hi) of the flat layout: this tensor's part of it */
                size_t lo = opt->lo, hi = opt->lo + opt->n;
                size_t a = pi->offset > lo ? pi->offset : lo, b = pi->offset + pi->numel < hi ? pi->offset + pi->numel : hi;
                if (!t || t->dtype != ST_DTYPE_F32 || (size_t)t->numel != pi->numel)
                    rc = err_set(err, "%s: missing or mis-shaped '%s'", p, name);
                else if (a < b)
                    m->be->upload((k ? opt->v : opt->m) + (a - lo), (const float *)t->data + (a - pi->offset),
                                  (b - a) * sizeof(float));
            }
        }
        st_close(&f);
        opt->t = (int)v;
    }
    return rc;
}
