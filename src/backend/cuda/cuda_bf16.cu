/* bf16 tensor-core GEMMs (the default precision) and the bf16 weight
 * shadows they read.
 *
 * Storage stays fp32 everywhere the op table can see it: master weights,
 * gradients, AdamW moments and the activations between ops. In bf16 mode a
 * GEMM rounds its two inputs to bf16 (round to nearest even) and multiplies
 * them on the tensor cores with fp32 accumulation and fp32 output, the
 * arithmetic of PyTorch autocast. Weights are not re-rounded per GEMM: the
 * model registers its parameter buffer (weights_hint), the backend keeps a
 * bf16 copy of it, marks the copy stale whenever an op writes into the
 * buffer (upload, copy, zero, AdamW, scale, add) and refreshes it before the
 * next GEMM that reads a weight. Decoding, which streams every weight once
 * per step, reads half the bytes of fp32. Activations are rounded into a
 * grow-only conversion buffer per GEMM (N x K x 6 bytes of traffic, small
 * next to the GEMM itself).
 *
 * fp32 mode runs plain cublasSgemm (no TF32): the reference that the tests
 * compare against the CPU backend to ~1e-6. */
#include <cuda_bf16.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/backend_cuda.h"
#include "backend/handoff.h"
}

static CudaPrecision g_prec = CUDA_PREC_BF16;

/* A recorded decode graph holds the GEMM path of its precision. */
extern "C" void cuda_set_precision(CudaPrecision p) {
    if (p != g_prec) cuda_graph_invalidate();
    g_prec = p;
}
extern "C" CudaPrecision cuda_precision(void) { return g_prec; }

/* bf16 KV caches in bf16 precision: the default; R1C_CUDA_KV_BF16=0 or
 * cuda_set_kv_bf16(0) keeps them fp32. Read when a cache is created and
 * by every op that touches one, so it must not change while a cache
 * lives. */
static int g_kv16 = -1;
extern "C" void cuda_set_kv_bf16(int on) { g_kv16 = on ? 1 : 0; }
int cuda_kv_bf16(void) {
    if (g_kv16 < 0) {
        const char *e = getenv("R1C_CUDA_KV_BF16");
        g_kv16 = !(e && !strcmp(e, "0"));
    }
    return g_kv16 && g_prec == CUDA_PREC_BF16;
}
size_t cu_kv_elem_bytes(void) { return cuda_kv_bf16() ? 2 : 4; }
extern "C" const char *cuda_precision_name(CudaPrecision p) { return p == CUDA_PREC_FP32 ? "fp32" : "bf16"; }

extern "C" int cuda_precision_parse(const char *s, CudaPrecision *out) {
    if (!s) return -1;
    if (!strcmp(s, "bf16")) return *out = CUDA_PREC_BF16, 0;
    if (!strcmp(s, "fp32")) return *out = CUDA_PREC_FP32, 0;
    return -1;
}

/* ---- weight shadows ---- */

#define MAX_SHADOWS 8 /* policy, reference, teacher ... */

typedef struct Shadow {
    const float *p; /* registered fp32 range, or a frozen copy's handle */
    size_t n;
    __nv_bfloat16 *bf; /* its bf16 copy (NULL until first needed) */
    int stale;
    int frozen; /* p is a handle (weights_freeze): bf is the only copy */
} Shadow;

static Shadow g_sh[MAX_SHADOWS];

__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * 4, stride = (size_t)gridDim.x * blockDim.x * 4;
    for (; i < n; i += stride) {
        if (i + 4 <= n && ((uintptr_t)(src + i) & 15) == 0 && ((uintptr_t)(dst + i) & 7) == 0) {
            float4 v = *(const float4 *)(src + i);
            __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
            *(__nv_bfloat162 *)(dst + i) = a;
            *(__nv_bfloat162 *)(dst + i + 2) = b;
        } else {
            for (size_t j = i; j < i + 4 && j < n; j++) dst[j] = __float2bfloat16_rn(src[j]);
        }
    }
}

void cuda_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    if (!n) return;
    f32_to_bf16_kernel<<<cuda_blocks((n + 3) / 4, 256), 256, 0, cuda_stream()>>>(dst, src, n);
    cuda_after_launch("to bf16");
}

void cu_weights_hint(const float *p, size_t n) {
    for (int i = 0; i < MAX_SHADOWS; i++)
        if (g_sh[i].p == p) { /* re-registration (or n = 0: forget it) */
            cuda_graph_invalidate();
            if (g_sh[i].bf) cuda_note("weights_hint free", cudaFree(g_sh[i].bf));
            if (g_sh[i].frozen) munmap((void *)g_sh[i].p, g_sh[i].n * sizeof(float));
            int frozen = g_sh[i].frozen;
            memset(&g_sh[i], 0, sizeof g_sh[i]);
            if (frozen) return; /* a handle is never re-registered */
        }
    if (!p || !n) return;
    for (int i = 0; i < MAX_SHADOWS; i++)
        if (!g_sh[i].p) {
            g_sh[i].p = p;
            g_sh[i].n = n;
            g_sh[i].stale = 1;
            return;
        }
    /* more than MAX_SHADOWS models: the extra ones round per GEMM, correct but slower */
}

/* A frozen model (the GRPO reference) keeps its GEMM weights in bf16 only:
 * half the bytes, and the same bf16 values its GEMMs would read from a
 * shadow, so its results are bit for bit those of the fp32 model. The
 * handle standing for the copy is a range of reserved, inaccessible host
 * address space (PROT_NONE, nothing committed) of the fp32 size: under
 * unified addressing no device allocation can overlap it, so handle + i
 * finds its bf16 element exactly like a registered fp32 pointer does,
 * and a kernel that dereferenced it by mistake would fault instead of
 * reading another buffer. */
const float *cu_weights_freeze(const float *p, size_t n) {
    if (g_prec == CUDA_PREC_FP32 || !p || !n) return NULL;
    int slot = -1;
    for (int i = 0; i < MAX_SHADOWS && slot < 0; i++)
        if (!g_sh[i].p) slot = i;
    if (slot < 0) return NULL;
    void *key = mmap(NULL, n * sizeof(float), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (key == MAP_FAILED) return NULL;
    __nv_bfloat16 *bf = NULL;
    if (cudaMalloc(&bf, n * sizeof(__nv_bfloat16)) != cudaSuccess) {
        cudaGetLastError();
        munmap(key, n * sizeof(float));
        return NULL; /* no room: the caller keeps the fp32 weights */
    }
    cuda_mem_sample();
    cuda_to_bf16(bf, p, n);
    Shadow *sh = &g_sh[slot];
    sh->p = (const float *)key;
    sh->n = n;
    sh->bf = bf;
    sh->stale = 0;
    sh->frozen = 1;
    return (const float *)key;
}

/* Called by every op that writes backend memory the caller names. */
void cuda_shadow_touch(const void *dst, size_t bytes) {
    g_cuda_seq++; /* a write between a hand-off's producer and its GEMM voids it */
    cuda_fp32_written(dst, bytes);
    const char *d = (const char *)dst;
    for (int i = 0; i < MAX_SHADOWS; i++) {
        const char *b = (const char *)g_sh[i].p;
        if (b && d < b + g_sh[i].n * sizeof(float) && b < d + bytes) g_sh[i].stale = 1;
    }
}

/* A freed buffer loses its shadow. */
void cuda_shadow_forget(const void *p) {
    for (int i = 0; i < MAX_SHADOWS; i++)
        if (g_sh[i].p == p) cu_weights_hint((const float *)p, 0);
}

extern "C" void cuda_shadow_trim(void) {
    for (int i = 0; i < MAX_SHADOWS; i++)
        if (g_sh[i].bf && !g_sh[i].frozen) { /* a frozen copy is the only one */
            cuda_graph_invalidate();
            cuda_note("trim", cudaFree(g_sh[i].bf));
            g_sh[i].bf = NULL;
            g_sh[i].stale = 1;
        }
}

/* The bf16 copy of [a, a + n) when it lies in a registered range, fresh. */
static const __nv_bfloat16 *shadow_of(const float *a, size_t n) {
    for (int i = 0; i < MAX_SHADOWS; i++) {
        Shadow *s = &g_sh[i];
        if (!s->p || a < s->p || a + n > s->p + s->n) continue;
        if (!s->bf) {
            cuda_graph_invalidate();
            cudaError_t e = cudaMalloc(&s->bf, s->n * sizeof(__nv_bfloat16));
            if (e != cudaSuccess) {
                cudaGetLastError();
                s->bf = NULL;
                return NULL; /* no room for the copy: round per GEMM instead */
            }
            s->stale = 1;
            cuda_mem_sample();
        }
        if (s->stale) {
            cuda_to_bf16(s->bf, s->p, s->n);
            s->stale = 0;
        }
        return s->bf + (a - s->p);
    }
    return NULL;
}

void cuda_shadow_refresh_all(void) {
    for (int i = 0; i < MAX_SHADOWS; i++) {
        Shadow *s = &g_sh[i];
        if (s->p && s->bf && s->stale && !s->frozen) {
            cuda_to_bf16(s->bf, s->p, s->n);
            s->stale = 0;
        }
    }
}

/* Does [a, a + 1) lie in a frozen copy's handle range? (Such a weight has
 * no fp32 values: its GEMMs run in bf16 even in fp32 precision.) */
static int is_frozen(const float *a) {
    for (int i = 0; i < MAX_SHADOWS; i++)
        if (g_sh[i].frozen && a >= g_sh[i].p && a < g_sh[i].p + g_sh[i].n) return 1;
    return 0;
}

/* ---- GEMM ---- */

static CudaBuf g_cvt;

/* The bf16 hand-offs (cuda_common.cuh): a buffer per slot, and what each
 * holds and since when (backend/handoff.h: valid while nothing has
 * launched or been written since its producer, except GEMMs that did not
 * write over its range, which cuda_sgemm carries it past). */
static CudaBuf g_act[ACT16_SLOTS];
static HandOffs g_ho;

__nv_bfloat16 *cuda_act16_target_in(int slot, size_t n) {
    handoff_set(&g_ho, slot, NULL, 0, 0);
    if (g_prec != CUDA_PREC_BF16 || !n) return NULL;
    return (__nv_bfloat16 *)cuda_buf_grow(&g_act[slot], n * sizeof(__nv_bfloat16), "bf16 activation copy");
}

void cuda_act16_produced_in(int slot, const float *out, size_t n) { handoff_set(&g_ho, slot, out, n, g_cuda_seq); }

__nv_bfloat16 *cuda_act16_target(size_t n) { return cuda_act16_target_in(0, n); }
void cuda_act16_produced(const float *out, size_t n) { cuda_act16_produced_in(0, out, n); }

/* The hand-offs' bf16 copy of exactly [A, A + na), or NULL. */
static const __nv_bfloat16 *act16_take(const float *A, size_t na) {
    if (g_prec != CUDA_PREC_BF16) return NULL;
    int i = handoff_find(&g_ho, A, na, g_cuda_seq);
    return i < 0 ? NULL : (const __nv_bfloat16 *)g_act[i].p;
}

/* fp32 ranges left unwritten (swiglu_*_gemm): backend/handoff.h */
void cuda_fp32_written(const void *p, size_t bytes) { handoff_written(&g_ho, p, bytes); }
void cuda_fp32_unwritten(const float *p, size_t n) { handoff_unwritten(&g_ho, p, n); }
void cuda_fp32_unwritten_forget_all(void) { handoff_forget_unwritten(&g_ho); }
int cuda_fp32_is_unwritten(const float *p, size_t n) { return handoff_is_unwritten(&g_ho, p, n); }

/* The last GEMM's A operand in bf16, kept for a next GEMM that reads the
 * same fp32 range (matmul_backward's dinp then dw GEMMs both read dout;
 * the LM head's dx then dw GEMMs both read the logits' gradient): the
 * range, where its bf16 copy lives (the conversion buffer's start, or the
 * hand-off buffer) and the launch counter it is valid at. Any launch or
 * write in between voids it, except the GEMM that used it when that GEMM's
 * output does not overlap the range. */
static const float *g_a_src;
static size_t g_a_n;
static const __nv_bfloat16 *g_a16;
static unsigned long long g_a_seq;

extern "C" void cuda_bf16_trim(void) {
    g_a_src = NULL;
    cuda_buf_free(&g_cvt);
    for (int i = 0; i < ACT16_SLOTS; i++) {
        cuda_buf_free(&g_act[i]);
        handoff_set(&g_ho, i, NULL, 0, 0);
    }
    cuda_shadow_trim();
}

static const __nv_bfloat16 *a_kept(const float *A, size_t na) {
    return g_a_src && A == g_a_src && na == g_a_n && g_a_seq == g_cuda_seq ? g_a16 : NULL;
}

int cuda_bf16_kept(const float *A, size_t n) { return a_kept(A, n) != NULL; }

static __nv_bfloat16 *cvt_buf(size_t n) {
    return (__nv_bfloat16 *)cuda_buf_grow(&g_cvt, n * sizeof(__nv_bfloat16), "bf16 conversion buffer");
}

/* Elements a row-major (rows x cols, leading dimension ld) operand spans. */
static size_t span(int rows, int cols, int ld) { return (size_t)(rows - 1) * ld + cols; }

void cuda_sgemm(const char *op, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta C: let cuBLAS's fp32 path do it */
        cublasStatus_t s = cublasSgemm(cuda_blas(), CUBLAS_OP_N, CUBLAS_OP_N, N, M, 0, &alpha, B, ldb > 0 ? ldb : 1,
                                       A, lda > 0 ? lda : 1, &beta, C, ldc);
        cuda_note_blas(op, s);
        return;
    }
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (g_prec == CUDA_PREC_FP32 && !is_frozen(A) && !is_frozen(B)) {
        /* row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T,
         * and a row-major matrix read column-major is its transpose. */
        cublasStatus_t s = cublasSgemm(cuda_blas(), opb, opa, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
        cuda_note_blas(op, s);
        cuda_after_launch(op);
        return;
    }
    size_t na = ta ? span(K, M, lda) : span(M, K, lda), nb = tb ? span(N, K, ldb) : span(K, N, ldb);
    /* the hand-offs valid now stay valid past this GEMM unless it writes
     * over them (its own conversions launch kernels too) */
    unsigned carry = handoff_valid(&g_ho, g_cuda_seq);
    /* keep each operand 16-byte aligned inside the buffer */
    size_t off_a = (na + 7) & ~(size_t)7;
    /* A first: a weight refresh for B would void the hand-off and the kept
     * copy. A kept copy at the conversion buffer's start stays usable only
     * if B's conversion fits behind it without the buffer growing. */
    const __nv_bfloat16 *a16 = ta || lda != K ? NULL : act16_take(A, na);
    const __nv_bfloat16 *b16_handed = act16_take(B, nb); /* before a refresh launches */
    int keep = a16 != NULL; /* A's copy to remember after the GEMM */
    if (!a16) {
        a16 = a_kept(A, na);
        if (a16 == g_cvt.p && a16 && g_cvt.bytes < (off_a + nb) * sizeof(__nv_bfloat16)) a16 = NULL;
        keep = a16 != NULL;
    }
    if (!a16) a16 = shadow_of(A, na);
    const __nv_bfloat16 *b16 = b16_handed ? b16_handed : shadow_of(B, nb);
    if ((!a16 && cuda_fp32_is_unwritten(A, na)) || (!b16 && cuda_fp32_is_unwritten(B, nb))) {
        cuda_note_msg(op, "a GEMM operand was written in bf16 only (swiglu_*_gemm) and its bf16 copy is gone");
        g_a_src = NULL;
        return;
    }
    size_t need = (a16 ? 0 : na) + (b16 ? 0 : nb);
    size_t off_b = a16 && a16 != g_cvt.p ? 0 : off_a;
    __nv_bfloat16 *buf = need ? cvt_buf(off_b + nb) : NULL;
    if (need && !buf) return;
    if (!a16) {
        cuda_to_bf16(buf, A, na);
        a16 = buf;
        keep = 1;
    }
    if (!b16) {
        cuda_to_bf16(buf + off_b, B, nb);
        b16 = buf + off_b;
    }
    /* one algorithm per shape whatever M (cuda_gemm_lt.cu): level 1 the
     * forward GEMMs (weights transposed: projections, LM-head logits),
     * level 2 the input gradients too; -1: not for this call */
    int bi = ta ? 0 : cuda_batch_invariant();
    if (!((bi == 2 || (bi == 1 && tb)) &&
          cuda_gemm_bf16_invariant(op, tb, M, N, K, alpha, a16, lda, b16, ldb, beta, C, ldc) == 0)) {
        cublasStatus_t s = cublasGemmEx(cuda_blas(), opb, opa, N, M, K, &alpha, b16, CUDA_R_16BF, ldb, a16,
                                        CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT);
        cuda_note_blas(op, s);
        cuda_after_launch(op);
    }
    /* remember A's copy unless this GEMM wrote over A */
    const char *c0 = (const char *)C, *c1 = (const char *)(C + span(M, N, ldc)), *a0 = (const char *)A,
               *a1 = (const char *)(A + na);
    if (keep && !(c0 < a1 && a0 < c1)) g_a_src = A, g_a_n = na, g_a16 = a16, g_a_seq = g_cuda_seq;
    else g_a_src = NULL;
    handoff_carry(&g_ho, carry, C, (size_t)(c1 - c0), g_cuda_seq);
    handoff_written(&g_ho, C, (size_t)(c1 - c0));
}

/* Strided-batched bf16 GEMM over operands already in bf16 (attention):
 * row-major C_i(M,N) = alpha op(A_i) op(B_i) + beta C_i, fp32 C. */
void cuda_gemm_bf16_batched(const char *op, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                            long long sa, const void *B, int ldb, long long sb, float beta, float *C, int ldc,
                            long long sc, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t s = cublasGemmStridedBatchedEx(cuda_blas(), opb, opa, N, M, K, &alpha, B, CUDA_R_16BF, ldb, sb, A,
                                                  CUDA_R_16BF, lda, sa, &beta, C, CUDA_R_32F, ldc, sc, batch,
                                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cuda_note_blas(op, s);
    cuda_after_launch(op);
}
