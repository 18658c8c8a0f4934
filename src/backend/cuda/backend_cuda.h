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

/* GEMM arithmetic (cuda_bf16.cu). BF16, the default: operands rounded to
 * bf16, tensor cores, fp32 accumulation and results, weights read from a
 * bf16 copy of the registered parameter buffer; everything else stays fp32.
 * FP32: cublasSgemm without TF32, the reference that matches the CPU
 * backend to ~1e-6. Set before running ops; affects every later GEMM. */
typedef enum CudaPrecision { CUDA_PREC_BF16 = 0, CUDA_PREC_FP32 = 1 } CudaPrecision;
void cuda_set_precision(CudaPrecision p);
CudaPrecision cuda_precision(void);
const char *cuda_precision_name(CudaPrecision p);
/* "bf16" or "fp32" -> 0, else -1. */
int cuda_precision_parse(const char *s, CudaPrecision *out);

/* Batch invariance (cuda_gemm_lt.cu, cuda_attention.cu), off (level 0)
 * by default. In bf16 precision, level 1 runs the forward GEMMs (the
 * projections and the LM-head logits: weights transposed) through one
 * cuBLASLt algorithm per shape, chosen once without regard to the row
 * count M and without split-K, so each output row is bitwise the same
 * whatever M is and whichever other rows share the batch; and the
 * training attention's forward (unpacked rows) runs the decode attention's
 * arithmetic (the flash kernels, or for the shapes they do not take the
 * split decode kernel, row by row). A sampled token's logits are then
 * computed by the same arithmetic in decoding and in training. Level 1 is
 * the default. Level 2 makes the input gradients' GEMMs invariant too
 * (for tests; they cost training speed). Level 0: cuBLAS picks a kernel
 * per call (cublasGemmEx), which can differ between M = 256 and M = 16k.
 * R1C_CUDA_BATCH_INVARIANT=0|1|2 sets it (read at the first GEMM, and
 * checked by the CLI's backend selection); the call overrides the
 * environment. fp32 precision is unaffected. */
void cuda_set_batch_invariant(int level);
/* CUDA graphs for the decode step (cuda_graph.cu), on by default;
 * R1C_CUDA_GRAPHS=0 or cuda_set_graphs(0) turns them off. Stats: graphs
 * recorded and replays since the start. */
void cuda_set_graphs(int on);
int cuda_graphs(void);
void cuda_graph_stats(long *recorded, long *replayed);
int cuda_batch_invariant(void);
/* GEMM calls that wanted the invariant path but ran cublasGemmEx (no
 * usable cuBLASLt algorithm for the shape, or not at that M); each shape
 * says so once on stderr. For tests and diagnostics. */
long cuda_batch_invariant_fallbacks(void);
/* Candidate algorithms for large batch-invariant calls checked against
 * their shape's reference algorithm: how many gave the same bits, how many
 * did not (and are never used). */
void cuda_batch_invariant_tune_counts(long *same, long *differ);
/* Row-count buckets of large batch-invariant GEMMs whose candidates are
 * still being verified or timed (each such call waits on the previous
 * one's timing and may run a slower candidate): a benchmark's warm-up runs
 * until this is 0, so that it times the steady state. */
int cuda_batch_invariant_tuning(void);

/* KV caches in bf16 (the table's kv_elem_bytes answers 2) in bf16
 * precision, where the decode attention rounds K and V to bf16 on load
 * anyway: same results, half the bytes (and slightly faster decoding).
 * On by default; R1C_CUDA_KV_BF16=0 or cuda_set_kv_bf16(0) keeps fp32
 * caches. Not to be changed (nor the precision) while a cache lives: the
 * ops read it at every call. */
void cuda_set_kv_bf16(int on);

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

/* Device memory in bytes: in use now, the peak since start (or the last
 * reset) as sampled after every allocation, and the device's total. */
void cuda_mem_info(size_t *used, size_t *peak, size_t *total);
void cuda_mem_reset_peak(void);

/* Device name and compute capability, e.g. "NVIDIA H200 (sm_90)". */
const char *cuda_device_name(void);

/* Frees the scratch the ops keep between calls (LM-head logits chunks,
 * attention row dots, sumsq partials); it grows again on demand. For the
 * end of a phase or of the process: the cuBLAS handle stays. */
void cuda_trim(void);

/* Query rows per block of the bf16 training attention (default: as many
 * as fit its 512 MB score budget). Tests lower it to exercise several
 * blocks per head; benchmarks to weigh causal block skipping against
 * launch count; 0 restores it. */
void cuda_set_attention_block_rows(int rows);

/* Rows of logits the LM head computes at once (default: as many as fit in
 * 256 MB). Tests lower it to exercise the chunk loop; 0 restores it. */
void cuda_set_lm_head_chunk(int rows);

/* Starts (on = 1) or stops the profiler's collection window
 * (cudaProfilerStart/Stop), so that `ncu --profile-from-start off` times
 * only the kernels of the steps a benchmark chooses. */
void cuda_profiler_window(int on);

#ifdef __cplusplus
}
#endif

#endif
