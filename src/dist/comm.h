/* Communication between the processes of a data-parallel job: one op
 * table, two implementations. `tcp` (comm_tcp.c) runs the collectives over
 * sockets between CPU processes, on one machine or several; `nccl`
 * (dist/nccl/, built only where nccl.h exists) runs them on GPU memory and
 * keeps a tcp communicator for its bootstrap and for small host-side
 * exchanges (metrics, rewards, flags).
 *
 * Every collective is called by every rank in the same order with the
 * same sizes; a rank that differs, dies or stops answering makes the
 * others fail with an Err naming it within the timeout, never hang. */
#ifndef R1C_DIST_COMM_H
#define R1C_DIST_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct Comm Comm;

typedef struct CommOps {
    const char *name;   /* "tcp" | "nccl" */
    int device_memory;  /* 1: buffers are GPU memory (nccl); 0: host memory */
    /* buf(n) = sum over ranks, in place. The result is bit-identical on
     * every rank (each element is summed once, in a fixed order, then
     * copied), so replicated weights stay replicated. */
    int (*allreduce_sum_f32)(Comm *c, float *buf, size_t n, Err *err);
    /* buf(bytes) on every rank = root's */
    int (*broadcast)(Comm *c, void *buf, size_t bytes, int root, Err *err);
    /* recv(world * bytes): rank r's send lands at recv + r * bytes */
    int (*allgather)(Comm *c, const void *send, size_t bytes, void *recv, Err *err);
    /* buf(world * n) summed over ranks; rank r's sum of slice r lands in
     * out(n) (ZeRO-style sharding; the rest of buf is scratch) */
    int (*reduce_scatter_sum_f32)(Comm *c, float *buf, size_t n, float *out, Err *err);
    int (*barrier)(Comm *c, Err *err);
    /* Tears the connections down without a goodbye, so peers blocked in a
     * collective fail at once instead of waiting for the timeout. */
    void (*abort)(Comm *c);
    void (*free)(Comm *c);
} CommOps;

struct Comm {
    int rank, world, local_rank, local_world;
    int timeout_ms; /* longest wait for a peer before failing */
    const CommOps *ops;
    void *impl;
    Comm *host; /* host-memory communicator: this one for tcp, the bootstrap for nccl */
};

/* Where this process sits in the job, as torchrun / mpirun describe it:
 * RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
 * (or OMPI_COMM_WORLD_* / PMI_* for the ranks under mpirun), and
 * R1C_DIST_TIMEOUT (seconds, default 300). */
typedef struct DistEnv {
    int rank, world, local_rank, local_world;
    char master_addr[256];
    int master_port;
    int timeout_ms;
} DistEnv;

/* 0 with *env filled (world = 1 when nothing is set), -1 on a malformed or
 * inconsistent value. */
int dist_env_read(DistEnv *env, Err *err);

/* The tcp communicator: rank 0 listens on MASTER_ADDR:MASTER_PORT, the
 * others connect (retrying until the timeout) and learn each other's
 * addresses from it; then each rank keeps a connection to the next and the
 * previous rank of a ring. NULL on failure. */
Comm *comm_tcp_create(const DistEnv *env, Err *err);

/* Convenience wrappers; c may be NULL (a job of one process). */
static inline int comm_rank(const Comm *c) { return c ? c->rank : 0; }
static inline int comm_world(const Comm *c) { return c ? c->world : 1; }
void comm_free(Comm *c);

#endif
