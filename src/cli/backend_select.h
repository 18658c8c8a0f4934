/* `--backend cpu|cuda` for the commands: picks the op table and reports
 * the CUDA backend's deferred errors. */
#ifndef R1C_CLI_BACKEND_SELECT_H
#define R1C_CLI_BACKEND_SELECT_H

#include "backend/backend.h"
#include "base/err.h"

/* "cpu" (or NULL), "cuda" (bf16 tensor-core GEMMs, or what
 * R1C_CUDA_PRECISION says), "cuda-bf16" or "cuda-fp32" (the exact
 * reference arithmetic; see backend_cuda.h); NULL with a one-line error when the name is
 * unknown, the binary was built without CUDA, or no GPU can be used. */
const Backend *backend_select(const char *name, Err *err);
/* Waits for the backend and returns -1 with the first op failure (CUDA
 * ops return void and keep their error); 0 for the CPU. */
int backend_select_check(const Backend *be, Err *err);

#endif
