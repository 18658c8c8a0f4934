/* NCCL implementation of the comm.h ops (see comm_nccl.h). Collectives run
 * on this communicator's own stream after the device has finished the
 * backend's work (cudaDeviceSynchronize), and are waited for by polling
 * the stream: a peer that died or hung makes the wait fail after the
 * timeout, the NCCL communicator is aborted and the rank reports an error
 * instead of hanging in a kernel forever. */
#include "dist/nccl/comm_nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"

typedef struct Nccl {
    ncclComm_t comm;
    cudaStream_t stream;
    int aborted;
} Nccl;

static int nccl_fail(Comm *c, ncclResult_t r, const char *what, Err *err) {
    return err_set(err, "rank %d: NCCL %s: %s", c->rank, what, ncclGetErrorString(r));
}

/* Waits for the stream; fails on a NCCL async error or after the timeout. */
static int nccl_wait(Comm *c, const char *what, Err *err) {
    Nccl *n = c->impl;
    double t0 = clock_seconds();
    for (;;) {
        cudaError_t e = cudaStreamQuery(n->stream);
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady) return err_set(err, "rank %d: %s: %s", c->rank, what, cudaGetErrorString(e));
        ncclResult_t ar;
        if (ncclCommGetAsyncError(n->comm, &ar) == ncclSuccess && ar != ncclSuccess && ar != ncclInProgress) {
            ncclCommAbort(n->comm), n->aborted = 1;
            return nccl_fail(c, ar, what, err);
        }
        if ((clock_seconds() - t0) * 1e3 > c->timeout_ms) {
            ncclCommAbort(n->comm), n->aborted = 1;
            return err_set(err, "rank %d: NCCL %s did not finish in %d s (R1C_DIST_TIMEOUT): a peer died or hung",
                           c->rank, what, c->timeout_ms / 1000);
        }
        usleep(50);
    }
}

static int before(Comm *c, Err *err) {
    Nccl *n = c->impl;
    if (n->aborted) return err_set(err, "rank %d: NCCL communicator was aborted", c->rank);
    cudaError_t e = cudaDeviceSynchronize(); /* the backend's ops wrote the buffer */
    return e == cudaSuccess ? 0 : err_set(err, "rank %d: CUDA before a collective: %s", c->rank, cudaGetErrorString(e));
}

static int nccl_allreduce(Comm *c, float *buf, size_t n, Err *err) {
    Nccl *x = c->impl;
    if (before(c, err)) return -1;
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, x->comm, x->stream);
    return r != ncclSuccess ? nccl_fail(c, r, "allreduce", err) : nccl_wait(c, "allreduce", err);
}

static int nccl_broadcast(Comm *c, void *buf, size_t bytes, int root, Err *err) {
    Nccl *x = c->impl;
    if (before(c, err)) return -1;
    ncclResult_t r = ncclBroadcast(buf, buf, bytes, ncclUint8, root, x->comm, x->stream);
    return r != ncclSuccess ? nccl_fail(c, r, "broadcast", err) : nccl_wait(c, "broadcast", err);
}

static int nccl_allgather(Comm *c, const void *send, size_t bytes, void *recv, Err *err) {
    Nccl *x = c->impl;
    if (before(c, err)) return -1;
    ncclResult_t r = ncclAllGather(send, recv, bytes, ncclUint8, x->comm, x->stream);
    return r != ncclSuccess ? nccl_fail(c, r, "allgather", err) : nccl_wait(c, "allgather", err);
}

static int nccl_reduce_scatter(Comm *c, float *buf, size_t n, float *out, Err *err) {
    Nccl *x = c->impl;
    if (before(c, err)) return -1;
    ncclResult_t r = ncclReduceScatter(buf, out, n, ncclFloat32, ncclSum, x->comm, x->stream);
    return r != ncclSuccess ? nccl_fail(c, r, "reduce_scatter", err) : nccl_wait(c, "reduce_scatter", err);
}

static int nccl_barrier(Comm *c, Err *err) { return c->host->ops->barrier(c->host, err); }

static void nccl_abort(Comm *c) {
    Nccl *n = c->impl;
    if (!n->aborted) ncclCommAbort(n->comm), n->aborted = 1;
    c->host->ops->abort(c->host);
}

static void nccl_free(Comm *c) {
    Nccl *n = c->impl;
    if (!n->aborted) ncclCommDestroy(n->comm);
    cudaStreamDestroy(n->stream);
    comm_free(c->host);
    free(n);
    free(c);
}

static const CommOps NCCL_OPS = {
    .name = "nccl",
    .device_memory = 1,
    .allreduce_sum_f32 = nccl_allreduce,
    .broadcast = nccl_broadcast,
    .allgather = nccl_allgather,
    .reduce_scatter_sum_f32 = nccl_reduce_scatter,
    .barrier = nccl_barrier,
    .abort = nccl_abort,
    .free = nccl_free,
};

Comm *comm_nccl_create(Comm *boot, Err *err) {
    setenv("NCCL_NVLS_ENABLE", "0", 1); /* NVLink multicast stays off in everything r1c starts */
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r = ncclSuccess;
    if (boot->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) {
        nccl_fail(boot, r, "ncclGetUniqueId", err);
        comm_free(boot);
        return NULL;
    }
    /* rank 0's failure above would leave the others waiting here until the timeout */
    if (boot->ops->broadcast(boot, &id, sizeof id, 0, err) != 0) {
        comm_free(boot);
        return NULL;
    }
    Comm *c = calloc(1, sizeof *c);
    Nccl *n = calloc(1, sizeof *n);
    *c = *boot;
    c->ops = &NCCL_OPS, c->impl = n, c->host = boot;
    cudaError_t ce = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
    if (ce != cudaSuccess) {
        err_set(err, "rank %d: cudaStreamCreate: %s", boot->rank, cudaGetErrorString(ce));
        free(n), free(c), comm_free(boot);
        return NULL;
    }
    if ((r = ncclCommInitRank(&n->comm, boot->world, id, boot->rank)) != ncclSuccess) {
        nccl_fail(boot, r, "ncclCommInitRank", err);
        cudaStreamDestroy(n->stream);
        free(n), free(c), comm_free(boot);
        return NULL;
    }
    return c;
}
