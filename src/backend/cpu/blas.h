/* SGEMM through OpenBLAS, loaded at first use. Loading it ourselves lets us
 * (1) take Debian's OpenMP build of OpenBLAS, so BLAS and our OpenMP loops
 * share one thread pool instead of two pools fighting over the cores, and
 * (2) set OPENBLAS_CORETYPE before OpenBLAS probes the CPU: its CPU table
 * predates recent Xeons and falls back to a 2004-era SSE3 kernel on them
 * (about 5x slower). A user's own OPENBLAS_CORETYPE is left alone. */
#ifndef R1C_BACKEND_CPU_BLAS_H
#define R1C_BACKEND_CPU_BLAS_H

/* C(M,N) = alpha * op(A) op(B) + beta * C, row-major; ta/tb: 0 or 1. */
void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc);
/* Name of the kernel OpenBLAS chose (e.g. "SkylakeX"), for benchmarks. */
const char *blas_core_name(void);

#endif
