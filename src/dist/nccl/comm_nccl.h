/* The nccl communicator: the ops of comm.h on GPU memory through NCCL,
 * bootstrapped over a tcp communicator (rank 0's ncclUniqueId is broadcast
 * through it) that stays on as the host communicator. Built only where
 * nccl.h exists (the Makefile defines R1C_NCCL and links libnccl into the
 * r1c binary); elsewhere comm_nccl_create is not linked at all. */
#ifndef R1C_DIST_NCCL_COMM_NCCL_H
#define R1C_DIST_NCCL_COMM_NCCL_H

#include "dist/comm.h"

/* Takes ownership of boot (freed on failure too). Uses the current CUDA
 * device, so set CUDA_VISIBLE_DEVICES (r1c launch --gpus does) first.
 * Forces NCCL_NVLS_ENABLE=0 (no NVLink multicast). */
Comm *comm_nccl_create(Comm *boot, Err *err);

#endif
