/* ZeRO-1 (see zero.h). */
#include "train/zero.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

void zero_shard(int world, int rank, size_t n, size_t *lo, size_t *hi) {
    /* n may exceed 2^31 (a 7B model), so not dist_slice */
    *lo = n / (size_t)world * (size_t)rank + (rank < (int)(n % (size_t)world) ? (size_t)rank : n % (size_t)world);
    *hi = *lo + n / (size_t)world + (rank < (int)(n % (size_t)world) ? 1 : 0);
}

int zero_adamw_create(AdamW *o, const Model *m, Comm *comm, int shard, float beta1, float beta2, float eps,
                      float weight_decay, Err *err) {
    size_t lo = 0, hi = m->n_floats;
    if (shard && comm_world(comm) > 1) zero_shard(comm->world, comm->rank, m->n_floats, &lo, &hi);
    return adamw_create_shard(o, m, lo, hi, beta1, beta2, eps, weight_decay, err);
}

/* Broadcast of n floats of backend memory p from root, staged through the
 * host when the communicator does not work on the backend's memory. */
static int bcast_params(Comm *c, const Model *m, float *p, size_t n, int root, Err *err) {
    int direct = c->ops->device_memory ? m->be != backend_cpu() : m->be == backend_cpu();
    if (direct) return c->ops->broadcast(c, p, n * sizeof(float), root, err);
    const size_t CH = (size_t)1 << 24;
    float *buf = malloc((n < CH ? n : CH) * sizeof(float) + 1);
    if (!buf) return err_set(err, "out of memory");
    int rc = 0;
    for (size_t o = 0; o < n && !rc; o += CH) {
        size_t k = n - o < CH ? n - o : CH;
        if (c->rank == root) m->be->download(buf, p + o, k * sizeof(float));
        rc = c->host->ops->broadcast(c->host, buf, k * sizeof(float), root, err);
        if (!rc && c->rank != root) m->be->upload(p + o, buf, k * sizeof(float));
    }
    free(buf);
    return rc;
}

int zero_step(Comm *c, AdamW *o, Model *m, float lr, Err *err) {
    adamw_step(o, m, lr);
    if (!adamw_sharded(o, m) || comm_world(c) == 1) return 0;
    for (int q = 0; q < c->world; q++) {
        size_t lo, hi;
        zero_shard(c->world, q, m->n_floats, &lo, &hi);
        if (bcast_params(c, m, m->param_mem + lo, hi - lo, q, err) != 0) return -1;
    }
    return 0;
}

/* Rank 0 receives every rank's slice of the moments, in host pieces. */
static int gather_moments(Comm *c, const Model *m, const AdamW *o, float *hm, float *hv, Err *err) {
    const size_t CH = (size_t)1 << 22;
    float *buf = malloc(CH * sizeof(float));
    if (!buf) return err_set(err, "out of memory");
    int rc = 0;
    for (int q = 0; q < c->world && !rc; q++) {
        size_t lo, hi;
        zero_shard(c->world, q, m->n_floats, &lo, &hi);
        for (int k = 0; k < 2 && !rc; k++)
            for (size_t at = lo; at < hi && !rc; at += CH) {
                size_t n = hi - at < CH ? hi - at : CH;
                if (c->rank == q) m->be->download(buf, (k ? o->v : o->m) + (at - lo), n * sizeof(float));
                rc = c->host->ops->broadcast(c->host, buf, n * sizeof(float), q, err);
                if (!rc && c->rank == 0) memcpy((k ? hv : hm) + at, buf, n * sizeof(float));
            }
    }
    free(buf);
    return rc;
}

int zero_checkpoint_save(Comm *c, const char *run_dir, const Model *m, const AdamW *o, const TrainState *st,
                         const char *const *carry, int n_carry, int keep, Err *err) {
    int rank0 = comm_rank(c) == 0, rc = 0;
    if (!o || !adamw_sharded(o, m)) {
        if (rank0) rc = checkpoint_save(run_dir, m, o, st, carry, n_carry, keep, err);
    } else {
        float *hm = NULL, *hv = NULL;
        if (rank0 && (!(hm = malloc(m->n_floats * sizeof(float))) || !(hv = malloc(m->n_floats * sizeof(float)))))
            rc = err_set(err, "%s: out of memory gathering the optimizer state", run_dir);
        /* if rank 0 could not allocate, it stops here and the others fail
         * in the gather when its connections close */
        if (!rc) rc = gather_moments(c, m, o, hm, hv, err);
        if (!rc && rank0) rc = checkpoint_save_host(run_dir, m, hm, hv, o->t, st, carry, n_carry, keep, err);
        free(hm), free(hv);
    }
    if (rc) return -1;
    /* the others wait for rank 0's write longer than for a collective */
    return dist_barrier_long(c, 20, err);
}

