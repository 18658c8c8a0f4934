/* Data-parallel helpers for the trainers, on top of comm.h. Every
 * function takes comm == NULL as a job of one process (copies, no
 * sockets), so the trainers run one code path whatever the world size.
 *
 * The split: a step's global batch is cut into contiguous slices, one per
 * rank (dist_slice); each rank works on its slice with the GLOBAL
 * normalisers, so the sum of the ranks' gradients is the 1-rank gradient
 * up to float rounding; small host-side results (rewards, lengths,
 * metrics) are all-gathered and reduced in rank order, so every rank
 * computes the same numbers and rank 0 logs exactly what one process
 * would have. */
#ifndef R1C_DIST_DIST_H
#define R1C_DIST_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "dist/comm.h"
#include "io/recipe.h"
#include "model/model.h"

/* Rank r's share [lo, hi) of n items: contiguous, sizes differ by at most 1. */
void dist_slice(const Comm *c, int n, int *lo, int *hi);
/* The slice sizes of any rank r (for unpacking all-gathered slices). */
void dist_slice_of(int world, int r, int n, int *lo, int *hi);
/* Most items any rank gets from n (padded all-gathers use it). */
int dist_slice_max(const Comm *c, int n);

/* recv(world * bytes) = every rank's send, in rank order (host memory). */
int dist_allgather(Comm *c, const void *send, size_t bytes, void *recv, Err *err);
/* v(n) = sum over ranks, added in rank order: identical on every rank,
 * and exactly v for one process. */
int dist_sum_f64(Comm *c, double *v, int n, Err *err);
int dist_max_f64(Comm *c, double *v, int n, Err *err);
/* 1 on every rank if flag is set on any (a stop request must be agreed). */
int dist_any(Comm *c, int flag, int *any, Err *err);
/* A barrier after rank 0 wrote something big: the other ranks wait
 * `factor` times the usual timeout for it, rank 0 the usual one (so a rank
 * that hung meanwhile is still found in time). */
int dist_barrier_long(Comm *c, int factor, Err *err);

/* Fails on every rank, naming one that differs, unless all ranks hold
 * the same bytes (e.g. the resolved recipe: ranks started with different
 * settings would train different things, or deadlock). */
int dist_check_same(Comm *c, const void *buf, size_t n, const char *what, Err *err);

/* dist_check_same over the resolved recipe (as recipe.yaml would hold it),
 * waiting 20 times the timeout: it is the first collective after the ranks
 * loaded their models and data, which takes longer on some ranks. */
int dist_check_recipe(Comm *c, const RecipeField *schema, const void *cfg, Err *err);

/* m->grad_mem = sum over ranks. Through the communicator directly when it
 * works on the backend's memory (nccl + cuda, tcp + cpu), else staged
 * through a host copy (tcp + cuda: works anywhere, slower). */
int dist_grads_allreduce(Comm *c, Model *m, Err *err);
/* 64-bit FNV-1a hash of the parameters (downloaded from the backend). */
uint64_t dist_weights_hash(const Model *m);
/* Fails, naming the ranks, when the parameters differ anywhere. What
 * R1C_DIST_CHECK=1 runs after every optimizer step. */
int dist_weights_check(Comm *c, const Model *m, int64_t step, Err *err);
/* R1C_DIST_CHECK is set to a non-zero value. */
int dist_check_enabled(void);

#endif
