/* OpenBLAS loader (see blas.h). */
#include "backend/cpu/blas.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef R1C_OPENBLAS_OPENMP
#define R1C_OPENBLAS_OPENMP "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0"
#endif

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 }; /* CBLAS constants */
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                         int);
typedef char *(*corename_fn)(void);

static sgemm_fn g_sgemm;
static corename_fn g_corename;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* A core type OpenBLAS knows that runs well on this CPU, or NULL. */
static const char *pick_coretype(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return NULL;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1;
    if (avx512f && avx512dq && avx512bw && avx512vl) return "SkylakeX";
    if (avx2) return "Haswell";
#endif
    return NULL;
}

static void blas_load(void) {
    if (!getenv("OPENBLAS_CORETYPE")) {
        const char *ct = pick_coretype();
        if (ct) setenv("OPENBLAS_CORETYPE", ct, 0);
    }
    const char *paths[] = {R1C_OPENBLAS_OPENMP, "libopenblas.so.0", "libopenblas.so"};
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof paths / sizeof paths[0]; i++) h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    if (h) {
        g_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
        g_corename = (corename_fn)dlsym(h, "openblas_get_corename");
    }
    if (!g_sgemm) {
        /* The build installs OpenBLAS, so this means a broken install. */
        fprintf(stderr, "r1c: cannot load OpenBLAS (%s): install libopenblas0-openmp\n", dlerror());
        abort();
    }
}

void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc) {
    pthread_once(&g_once, blas_load);
    if (M == 0 || N == 0) return;
    g_sgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *blas_core_name(void) {
    pthread_once(&g_once, blas_load);
    return g_corename ? g_corename() : "unknown";
}
