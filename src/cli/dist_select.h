/* Joining the data-parallel job a process was started into (r1c launch,
 * torchrun-style variables, mpirun): the GPU this rank uses and the
 * communicator (docs/distributed.md). The only file that names the nccl
 * implementation, which is linked only when the build found nccl.h. */
#ifndef R1C_CLI_DIST_SELECT_H
#define R1C_CLI_DIST_SELECT_H

#include "backend/backend.h"
#include "base/err.h"
#include "dist/comm.h"

/* Call before any CUDA use. With backend "cuda", several ranks on this
 * node and more than one visible GPU, narrows CUDA_VISIBLE_DEVICES to the
 * LOCAL_RANK-th one (r1c launch --gpus already gives each rank one). */
int dist_select_device(const char *backend, Err *err);
/* *out = NULL for a job of one process; else the communicator chosen by
 * R1C_DIST_BACKEND: tcp, nccl, or auto (default: nccl when be is the CUDA
 * backend and this r1c has NCCL, else tcp). */
int dist_select_init(const Backend *be, Comm **out, Err *err);
/* Tears the job down after an error on this rank, so the others fail at
 * once instead of at their timeout; frees c. */
void dist_select_abort(Comm *c);

#endif
