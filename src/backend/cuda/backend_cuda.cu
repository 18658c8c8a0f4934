/* The CUDA backend's table and everything that is not an op: device
 * selection, the cuBLAS handle, the sticky error record, memory, host <->
 * device copies and scratch. Ops live in cuda_*.cu by family. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_profiler_api.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/backend_cuda.h"
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ok;                 /* device usable and handle created */
static cublasHandle_t g_blas;
static cudaStream_t g_stream;    /* every op's stream (see cuda_stream) */
static void *g_blas_ws;          /* cuBLAS workspace, fixed (graph capture) */
static int g_sync;               /* R1C_CUDA_SYNC=1: wait after every launch */
static char g_name[320] = "none";
static char g_err[768];          /* first error since the last cuda_check */
static CudaBuf g_scr;

void cuda_note(const char *op, cudaError_t e) {
    if (e == cudaSuccess || g_err[0]) return;
    snprintf(g_err, sizeof g_err, "cuda: %s: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
}

void cuda_note_msg(const char *op, const char *msg) {
    if (g_err[0]) return;
    snprintf(g_err, sizeof g_err, "cuda: %s: %s", op, msg);
}

void cuda_note_blas(const char *op, cublasStatus_t s) {
    if (s == CUBLAS_STATUS_SUCCESS || g_err[0]) return;
    snprintf(g_err, sizeof g_err, "cuda: %s: cuBLAS status %d", op, (int)s);
}

unsigned long long g_cuda_seq;

void cuda_after_launch(const char *op) {
    g_cuda_seq++;
    cuda_note(op, cudaGetLastError());
    /* nothing runs while a graph is being recorded (and waiting is not
     * allowed then): the graph's launch is waited for instead */
    if (g_sync && !cuda_graph_recording()) cuda_note(op, cudaDeviceSynchronize());
}

int cuda_error_pending(void) { return g_err[0] != 0; }
void cuda_error_clear(void) { g_err[0] = 0; }

cublasHandle_t cuda_blas(void) { return g_blas; }
cudaStream_t cuda_stream(void) { return g_stream; }
int cuda_sync_mode(void) { return g_sync; }

/* Device memory in use (everything on the device, as the driver counts
 * it: our buffers, cuBLAS workspaces, the context), sampled after every
 * allocation so the peak is exact up to transient library use. */
static size_t g_mem_peak;

void cuda_mem_sample(void) {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    if (tot - fr > g_mem_peak) g_mem_peak = tot - fr;
}

extern "C" void cuda_mem_info(size_t *used, size_t *peak, size_t *total) {
    size_t fr = 0, tot = 0;
    if (cuda_available() && cudaMemGetInfo(&fr, &tot) != cudaSuccess) cudaGetLastError();
    cuda_mem_sample();
    if (used) *used = tot - fr;
    if (peak) *peak = g_mem_peak;
    if (total) *total = tot;
}

static void cu_mem_info(size_t *free_bytes, size_t *total_bytes) {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) cudaGetLastError(), fr = tot = 0;
    if (free_bytes) *free_bytes = fr;
    if (total_bytes) *total_bytes = tot;
}

extern "C" void cuda_mem_reset_peak(void) {
    g_mem_peak = 0;
    cuda_mem_sample();
}

void *cuda_buf_grow(CudaBuf *b, size_t bytes, const char *what) {
    if (b->p && bytes <= b->bytes) return b->p;
    cuda_graph_invalidate();
    /* No allocation while a graph is being recorded (it would be refused
     * and void the recording): the op skips, the recording is dropped as
     * `moved`, and the step runs again directly, growing the buffer. */
    if (cuda_graph_recording()) return NULL;
    if (b->p) cudaFree(b->p); /* synchronises: earlier users are done */
    size_t want = bytes + (bytes >> 3);
    b->p = NULL;
    b->bytes = 0;
    cudaError_t e = cudaMalloc(&b->p, want ? want : 256);
    if (e != cudaSuccess) {
        cuda_note(what, e);
        b->p = NULL;
        return NULL;
    }
    b->bytes = want;
    cuda_mem_sample();
    return b->p;
}

void cuda_buf_free(CudaBuf *b) {
    if (b->p) cuda_graph_invalidate();
    if (b->p) cuda_note("trim", cudaFree(b->p)); /* cudaFree waits for the ops using it */
    b->p = NULL;
    b->bytes = 0;
}

void *cuda_scratch(size_t bytes) { return cuda_buf_grow(&g_scr, bytes, "scratch alloc"); }

extern "C" void cuda_trim(void) {
    if (!g_ok) return;
    cuda_buf_free(&g_scr);
    cuda_sumsq_trim();
    cuda_bf16_trim();
    cuda_gemm_lt_trim();
    cuda_decode_split_trim();
    cuda_colsum_trim();
    cuda_embedding_trim();
}

extern "C" void cuda_profiler_window(int on) {
    if (!g_ok) return;
    cuda_note("profiler window", on ? cudaProfilerStart() : cudaProfilerStop());
}

static void cuda_init(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError(); /* clear: "no device" is an answer, not a failure */
        return;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        snprintf(g_name, sizeof g_name, "%s (sm_%d%d, %d SMs)", prop.name, prop.major, prop.minor,
                 prop.multiProcessorCount);
    if (cublasCreate(&g_blas) != CUBLAS_STATUS_SUCCESS) return;
    /* The reference-accuracy build: plain fp32 FMA GEMMs. CUBLAS_DEFAULT_MATH
     * never picks TF32 tensor cores for Sgemm (only CUBLAS_TF32_TENSOR_OP_MATH
     * or NVIDIA_TF32_OVERRIDE would), so results match the CPU to ~1e-6. */
    cublasSetMathMode(g_blas, CUBLAS_DEFAULT_MATH);
    /* One blocking stream for every op instead of the legacy default
     * stream, which cannot be captured into a CUDA graph (cuda_graph.cu).
     * Blocking: the synchronous cudaMemcpy of upload / download, on the
     * legacy stream, still waits for the ops before it and the ops after
     * it wait for the copy, so stream order is what it was. */
    if (cudaStreamCreate(&g_stream) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    cublasSetStream(g_blas, g_stream);
    /* A workspace of our own, so cuBLAS never allocates while a graph is
     * being captured (32 MB: what cuBLAS takes by default on Hopper). */
    if (cudaMalloc(&g_blas_ws, 32u << 20) == cudaSuccess) cublasSetWorkspace(g_blas, g_blas_ws, 32u << 20);
    else cudaGetLastError();
    const char *s = getenv("R1C_CUDA_SYNC");
    g_sync = s && s[0] == '1';
    g_ok = 1;
}

extern "C" int cuda_available(void) {
    pthread_once(&g_once, cuda_init);
    return g_ok;
}

extern "C" const char *cuda_device_name(void) {
    pthread_once(&g_once, cuda_init);
    return g_name;
}

extern "C" int cuda_check(Err *err) {
    if (!cuda_available()) return err_set(err, "cuda: no usable CUDA device");
    cuda_note("synchronize", cudaDeviceSynchronize());
    if (!g_err[0]) return 0;
    int r = err_set(err, "%s", g_err);
    g_err[0] = 0;
    return r;
}

extern "C" int cuda_upload(void *dst_dev, const void *src_host, size_t bytes, Err *err) {
    cuda_shadow_touch(dst_dev, bytes);
    cudaError_t e = cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) return err_set(err, "cuda: upload of %zu bytes: %s", bytes, cudaGetErrorString(e));
    return 0;
}

extern "C" int cuda_download(void *dst_host, const void *src_dev, size_t bytes, Err *err) {
    cudaError_t e = cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) return err_set(err, "cuda: download of %zu bytes: %s", bytes, cudaGetErrorString(e));
    return 0;
}

/* cudaMalloc hands out 256-byte aligned blocks; a zero-byte request still
 * gets a distinct non-NULL pointer, as the CPU backend's does. */
static void *cu_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        cuda_note("alloc", e);
        return NULL;
    }
    cuda_note("alloc (zero)", cudaMemset(p, 0, bytes ? bytes : 256));
    cuda_mem_sample();
    return p;
}

static void cu_free(void *p) {
    if (!p) return;
    cuda_graph_invalidate(); /* a recorded graph may use p */
    cuda_shadow_forget(p);
    cuda_fp32_unwritten_forget_all(); /* the memory may come back as another buffer */
    cuda_note("free", cudaFree(p));
}

static void cu_zero(void *p, size_t bytes) {
    cuda_shadow_touch(p, bytes);
    if (bytes) cuda_note("zero", cudaMemsetAsync(p, 0, bytes, cuda_stream()));
}

/* memmove semantics: cudaMemcpy leaves overlapping ranges undefined, so
 * those go through scratch. */
static void cu_copy(void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return;
    cuda_shadow_touch(dst, bytes);
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        void *tmp = cuda_scratch(bytes);
        if (!tmp) return;
        cuda_note("copy", cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
        cuda_note("copy", cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
        return;
    }
    cuda_note("copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
}

/* The table's transfer ops: synchronous cudaMemcpy; a failure is kept for
 * cuda_check like any op's. */
static void cu_upload(void *dst_dev, const void *src_host, size_t bytes) {
    cuda_shadow_touch(dst_dev, bytes);
    if (bytes) cuda_note("upload", cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice));
}

static void cu_download(void *dst_host, const void *src_dev, size_t bytes) {
    if (bytes) cuda_note("download", cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost));
}

static const Backend CUDA_BACKEND = {
    /* .name = */ "cuda",
    /* .alloc = */ cu_alloc,
    /* .free = */ cu_free,
    /* .zero = */ cu_zero,
    /* .copy = */ cu_copy,
    /* .matmul_forward = */ cu_matmul_forward,
    /* .matmul_backward = */ cu_matmul_backward,
    /* .rmsnorm_forward = */ cu_rmsnorm_forward,
    /* .rmsnorm_backward = */ cu_rmsnorm_backward,
    /* .rope_apply = */ cu_rope_apply,
    /* .attention_forward = */ cu_attention_forward,
    /* .attention_backward = */ cu_attention_backward,
    /* .attention_forward_seg = */ cu_attention_forward_seg,
    /* .attention_backward_seg = */ cu_attention_backward_seg,
    /* .attention_decode = */ cu_attention_decode,
    /* .attention_decode_paged = */ cu_attention_decode_paged,
    /* .kv_cache_write = */ cu_kv_cache_write,
    /* .qkv_split = */ cu_qkv_split,
    /* .qkv_merge = */ cu_qkv_merge,
    /* .swiglu_forward = */ cu_swiglu_forward,
    /* .swiglu_backward = */ cu_swiglu_backward,
    /* .embedding_forward = */ cu_embedding_forward,
    /* .embedding_backward = */ cu_embedding_backward,
    /* .add_inplace = */ cu_add_inplace,
    /* .lm_head_logprob_forward = */ cu_lm_head_logprob_forward,
    /* .lm_head_logprob_backward = */ cu_lm_head_logprob_backward,
    /* .sumsq = */ cu_sumsq,
    /* .scale = */ cu_scale,
    /* .adamw_update = */ cu_adamw_update,
    /* .sample = */ cu_sample,
    /* .mem_info = */ cu_mem_info,
    /* .weights_hint = */ cu_weights_hint,
    /* .weights_freeze = */ cu_weights_freeze,
    /* .graph_begin = */ cu_graph_begin,
    /* .graph_end = */ cu_graph_end,
    /* .upload = */ cu_upload,
    /* .download = */ cu_download,
    /* .add_rmsnorm_forward = */ cu_add_rmsnorm_forward,
    /* .qkv_rope_cache = */ cu_qkv_rope_cache,
    /* .kv_elem_bytes = */ cu_kv_elem_bytes,
    /* .swiglu_forward_gemm = */ cu_swiglu_forward_gemm,
    /* .swiglu_backward_gemm = */ cu_swiglu_backward_gemm,
};

extern "C" const Backend *backend_cuda(void) { return cuda_available() ? &CUDA_BACKEND : NULL; }
