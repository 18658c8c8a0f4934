/* Data-parallel helpers (see dist.h). */
#include "dist/dist.h"

#include "base/hash.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ceil(n r / W): the first ranks take the extra items, so rank 0 always
 * has the first one (the sample rank 0 logs) when n >= 1 */
void dist_slice_of(int world, int r, int n, int *lo, int *hi) {
    *lo = (int)(((int64_t)n * r + world - 1) / world);
    *hi = (int)(((int64_t)n * (r + 1) + world - 1) / world);
}

void dist_slice(const Comm *c, int n, int *lo, int *hi) { dist_slice_of(comm_world(c), comm_rank(c), n, lo, hi); }

int dist_slice_max(const Comm *c, int n) {
    int W = comm_world(c);
    return (n + W - 1) / W;
}

int dist_allgather(Comm *c, const void *send, size_t bytes, void *recv, Err *err) {
    if (!c) {
        memmove(recv, send, bytes);
        return 0;
    }
    return c->host->ops->allgather(c->host, send, bytes, recv, err);
}

static int reduce_f64(Comm *c, double *v, int n, int is_max, Err *err) {
    if (!c || c->world == 1 || n <= 0) return 0;
    int W = c->world;
    double *all = malloc((size_t)W * n * sizeof(double));
    if (!all) return err_set(err, "out of memory");
    int rc = dist_allgather(c, v, (size_t)n * sizeof(double), all, err);
    if (!rc)
        for (int i = 0; i < n; i++) {
            double a = all[i];
            for (int r = 1; r < W; r++) {
                double b = all[(size_t)r * n + i];
                a = is_max ? (b > a ? b : a) : a + b;
            }
            v[i] = a;
        }
    free(all);
    return rc;
}

int dist_sum_f64(Comm *c, double *v, int n, Err *err) { return reduce_f64(c, v, n, 0, err); }
int dist_max_f64(Comm *c, double *v, int n, Err *err) { return reduce_f64(c, v, n, 1, err); }

int dist_any(Comm *c, int flag, int *any, Err *err) {
    double v = flag ? 1 : 0;
    if (dist_max_f64(c, &v, 1, err) != 0) return -1;
    *any = v != 0;
    return 0;
}

int dist_barrier_long(Comm *c, int factor, Err *err) {
    if (!c || c->world == 1) return 0;
    Comm *h = c->host;
    int saved = h->timeout_ms;
    /* only the ranks waiting for rank 0's write need the patience: rank 0
     * arrives last, so a rank that hangs meanwhile still fails it within
     * the usual timeout */
    long long t = (long long)saved * (c->rank == 0 ? 1 : factor);
    h->timeout_ms = t > 0x7fffffff ? 0x7fffffff : (int)t;
    int rc = h->ops->barrier(h, err);
    h->timeout_ms = saved;
    return rc;
}

int dist_grads_allreduce(Comm *c, Model *m, Err *err) {
    if (!c || c->world == 1) return 0;
    int direct = c->ops->device_memory ? m->be != backend_cpu() : m->be == backend_cpu();
    if (direct) return c->ops->allreduce_sum_f32(c, m->grad_mem, m->n_floats, err);
    /* the communicator and the gradients live in different memories */
    Comm *h = c->host;
    float *buf = malloc(m->n_floats * sizeof(float));
    if (!buf) return err_set(err, "out of memory staging %zu gradients for the all-reduce", m->n_floats);
    m->be->download(buf, m->grad_mem, m->n_floats * sizeof(float));
    int rc = h->ops->allreduce_sum_f32(h, buf, m->n_floats, err);
    if (!rc) m->be->upload(m->grad_mem, buf, m->n_floats * sizeof(float));
    free(buf);
    return rc;
}

int dist_check_same(Comm *c, const void *buf, size_t n, const char *what, Err *err) {
    if (!c || c->world == 1) return 0;
    uint64_t h = hash_fnv1a(HASH_FNV1A_INIT, buf, n), *all = malloc((size_t)c->world * sizeof *all);
    if (!all) return err_set(err, "out of memory");
    int rc = dist_allgather(c, &h, sizeof h, all, err);
    for (int r = 1; !rc && r < c->world; r++)
        if (all[r] != all[0]) rc = err_set(err, "rank %d's %s differs from rank 0's (every rank must run the same)", r, what);
    free(all);
    return rc;
}

int dist_check_recipe(Comm *c, const RecipeField *schema, const void *cfg, Err *err) {
    if (!c || c->world == 1) return 0;
    char *txt = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&txt, &len);
    if (!fp) return err_set(err, "out of memory");
    int rc = recipe_dump(schema, cfg, fp, err);
    fclose(fp);
    /* the ranks' first meeting after loading models and data, which can
     * take much longer on some ranks (a cold cache, a slow filesystem) */
    Comm *h = c->host;
    int saved = h->timeout_ms;
    h->timeout_ms = saved > 0x7fffffff / 20 ? 0x7fffffff : saved * 20;
    if (!rc) rc = dist_check_same(c, txt, len, "recipe", err);
    h->timeout_ms = saved;
    free(txt);
    return rc;
}

uint64_t dist_weights_hash(const Model *m) {
    const size_t CH = (size_t)1 << 20;
    float *buf = malloc(CH * sizeof(float));
    uint64_t h = HASH_FNV1A_INIT;
    for (size_t o = 0; buf && o < m->n_floats; o += CH) {
        size_t k = m->n_floats - o < CH ? m->n_floats - o : CH;
        m->be->download(buf, m->param_mem + o, k * sizeof(float));
        h = hash_fnv1a(h, buf, k * sizeof(float));
    }
    free(buf);
    return h;
}

int dist_weights_check(Comm *c, const Model *m, int64_t step, Err *err) {
    if (!c || c->world == 1) return 0;
    uint64_t h = dist_weights_hash(m), *all = malloc((size_t)c->world * sizeof *all);
    if (!all) return err_set(err, "out of memory");
    int rc = dist_allgather(c, &h, sizeof h, all, err);
    for (int r = 1; !rc && r < c->world; r++)
        if (all[r] != all[0])
            rc = err_set(err,
                         "weights differ across ranks after step %" PRId64 ": rank 0 hash %016" PRIx64
                         ", rank %d hash %016" PRIx64 " (R1C_DIST_CHECK)",
                         step, all[0], r, all[r]);
    free(all);
    return rc;
}

int dist_check_enabled(void) {
    const char *s = getenv("R1C_DIST_CHECK");
    return s && *s && strcmp(s, "0") != 0;
}
