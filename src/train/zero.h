/* ZeRO-1 for the data-parallel trainers (docs/distributed.md): the AdamW
 * moments are split over the ranks, so each holds 1/N of them. Gradients
 * are still summed in full on every rank (so clipping is unchanged); each
 * rank then steps its own slice of the parameters and broadcasts it to
 * the others. Checkpoints hold the full moments (gathered on rank 0), so
 * a run resumes sharded or not, on any number of ranks. */
#ifndef R1C_TRAIN_ZERO_H
#define R1C_TRAIN_ZERO_H

#include <stdio.h>

#include "dist/comm.h"
#include "train/checkpoint.h"
#include "train/optim.h"

/* Rank r's slice [lo, hi) of n parameters (contiguous, sizes within 1). */
void zero_shard(int world, int rank, size_t n, size_t *lo, size_t *hi);
/* AdamW over this rank's slice when shard is set and there are several
 * ranks, else over all parameters. */
int zero_adamw_create(AdamW *o, const Model *m, Comm *comm, int shard, float beta1, float beta2, float eps,
                      float weight_decay, Err *err);
/* adamw_step, then (sharded) every rank's updated slice broadcast from
 * its owner, so all ranks hold the same weights again. */
int zero_step(Comm *comm, AdamW *o, Model *m, float lr, Err *err);
/* Saves a checkpoint of replicated weights and state: rank 0 writes it
 * (gathering sharded moments first), the others wait for it. */
int zero_checkpoint_save(Comm *comm, const char *run_dir, const Model *m, const AdamW *o, const TrainState *st,
                         const char *const *carry, int n_carry, int keep, Err *err);

#endif
