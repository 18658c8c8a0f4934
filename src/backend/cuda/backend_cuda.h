/* The CUDA backend: the Backend op table over device memory (fp32 storage
 * in this first step), plus the host <-> device helpers the model layer
 * needs. Plain C11: no CUDA headers here, so C files can include it. */
#ifndef R1C_BACKEND_CUDA_BACKEND_CUDA_H
#define R1C_BACKEND_CUDA_BACKEND_CUDA_H

#include <stddef.h>

#include "backend/backend.h"
#include "base/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when a CUDA device can be used (driver present, at least one device). */
int cuda_available(void);

/* The op table, or NULL when no device can be used. All buffers, including
 * the int arrays (ids, pos, target, slot, len) and the RoPE cos/sin tables,
 * are device pointers. Ops run in order on one stream and return before
 * the device is done; cuda_check waits and reports the first failure. */
const Backend *backend_cuda(void);

/* Synchronous copies between host memory and memory from backend->alloc. */
int cuda_upload(void *dst_dev, const void *src_host, size_t bytes, Err *err);
int cuda_download(void *dst_host, const void *src_dev, size_t bytes, Err *err);

/* Waits for the device; returns -1 with the first error any op met since
 * the last check (CUDA or cuBLAS, naming the op), else 0. */
int cuda_check(Err *err);

/* Device name and compute capability, e.g. "NVIDIA H200 (sm_90)". */
const char *cuda_device_name(void);

/* Frees the scratch the ops keep between calls (LM-head logits chunks,
 * attention row dots, sumsq partials); it grows again on demand. For the
 * end of a phase or of the process: the cuBLAS handle stays. */
void cuda_trim(void);

/* Rows of logits the LM head computes at once (default: as many as fit in
 * 256 MB). Tests lower it to exercise the chunk loop; 0 restores it. */
void cuda_set_lm_head_chunk(int rows);

#ifdef __cplusplus
}
#endif

#endif
