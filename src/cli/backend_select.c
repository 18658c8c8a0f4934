/* Backend choice for the CLI (see backend_select.h). The CUDA library is
 * linked into the r1c binary only when the build has CUDA (R1C_CUDA). */
#include "cli/backend_select.h"

#include <stdlib.h>
#include <string.h>

#ifdef R1C_CUDA
#include "backend/cuda/backend_cuda.h"
#endif

#ifdef R1C_CUDA
/* 0 when the environment variable is unset or one of the `n` values in
 * `ok`; else the one-line error naming it and what it takes */
static int env_one_of(const char *var, const char *const *ok, int n, const char *expect, Err *err) {
    const char *v = getenv(var);
    if (!v) return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(v, ok[i])) return 0;
    err_set(err, "%s='%s': expected %s", var, v, expect);
    return -1;
}

/* 0 when unset or a decimal row count of 1 to `max_digits` digits, at
 * least `min` */
static int env_rows(const char *var, int max_digits, int min, const char *expect, Err *err) {
    const char *v = getenv(var);
    if (!v) return 0;
    size_t n = strlen(v);
    if (n && strspn(v, "0123456789") == n && (int)n <= max_digits && atoi(v) >= min) return 0;
    err_set(err, "%s='%s': expected %s", var, v, expect);
    return -1;
}
#endif

const Backend *backend_select(const char *name, Err *err) {
    if (!name || !strcmp(name, "cpu")) return backend_cpu();
    const char *prec = NULL;
    if (!strcmp(name, "cuda-bf16")) prec = "bf16";
    else if (!strcmp(name, "cuda-fp32")) prec = "fp32";
    else if (strcmp(name, "cuda") != 0) {
        err_set(err, "unknown backend '%s' (cpu, cuda, cuda-bf16 or cuda-fp32)", name);
        return NULL;
    }
#ifdef R1C_CUDA
    /* the environment first: a bad value is named whether or not a GPU is there */
    /* "cuda" means bf16 GEMMs unless R1C_CUDA_PRECISION says otherwise */
    if (!prec) prec = getenv("R1C_CUDA_PRECISION") ? getenv("R1C_CUDA_PRECISION") : "bf16";
    CudaPrecision p;
    if (cuda_precision_parse(prec, &p) != 0) {
        err_set(err, "R1C_CUDA_PRECISION='%s': expected bf16 or fp32", prec);
        return NULL;
    }
    /* batch-invariant bf16 GEMMs: level 1 unless R1C_CUDA_BATCH_INVARIANT says
     * 0 or 2; read by the backend: the flash attention switch, the row count
     * the batch-invariant GEMM algorithms are chosen for, their tuning for
     * large calls (timed algorithms, same bits), and the decode graphs'
     * switches (docs/cuda.md) */
    static const char *const levels[] = {"0", "1", "2"};
    if (env_one_of("R1C_CUDA_BATCH_INVARIANT", levels, 3, "0, 1 or 2", err) ||
        env_one_of("R1C_CUDA_FLASH", levels, 2, "0 or 1", err) ||
        env_one_of("R1C_CUDA_BI_TUNE", levels, 2, "0 or 1", err) ||
        env_rows("R1C_CUDA_BI_REF_M", 7, 1, "a number of rows (1 to 9999999)", err) ||
        env_one_of("R1C_CUDA_GRAPHS", levels, 2, "0 or 1", err) ||
        env_rows("R1C_CUDA_GRAPH_ROWS", 9, 0, "a number of rows (0 or more)", err))
        return NULL;
    const char *bi = getenv("R1C_CUDA_BATCH_INVARIANT");
    const Backend *be = backend_cuda();
    if (!be) {
        err_set(err, "--backend %s: no usable CUDA device (no driver or no GPU)", name);
        return NULL;
    }
    cuda_set_precision(p);
    cuda_set_batch_invariant(bi ? bi[0] - '0' : 1);
    return be;
#else
    err_set(err, "--backend cuda: this r1c was built without CUDA (build with nvcc on the PATH, CUDA=1)");
    return NULL;
#endif
}

int backend_select_check(const Backend *be, Err *err) {
#ifdef R1C_CUDA
    if (be && be == backend_cuda()) return cuda_check(err);
#endif
    (void)be, (void)err;
    return 0;
}
