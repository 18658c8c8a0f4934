/* Backend choice for the CLI (see backend_select.h). The CUDA library is
 * linked into the r1c binary only when the build has CUDA (R1C_CUDA). */
#include "cli/backend_select.h"

#include <stdlib.h>
#include <string.h>

#ifdef R1C_CUDA
#include "backend/cuda/backend_cuda.h"
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
     * 0 or 2 (docs/cuda.md) */
    const char *bi = getenv("R1C_CUDA_BATCH_INVARIANT");
    if (bi && strcmp(bi, "0") != 0 && strcmp(bi, "1") != 0 && strcmp(bi, "2") != 0) {
        err_set(err, "R1C_CUDA_BATCH_INVARIANT='%s': expected 0, 1 or 2", bi);
        return NULL;
    }
    /* read by the backend: the flash attention switch, the row count the
     * batch-invariant GEMM algorithms are chosen for, their tuning for
     * large calls, and the decode graphs' switches (docs/cuda.md) */
    const char *fl = getenv("R1C_CUDA_FLASH"), *ref = getenv("R1C_CUDA_BI_REF_M");
    if (fl && strcmp(fl, "0") != 0 && strcmp(fl, "1") != 0) {
        err_set(err, "R1C_CUDA_FLASH='%s': expected 0 or 1", fl);
        return NULL;
    }
    const char *tune = getenv("R1C_CUDA_BI_TUNE"); /* timed algorithms for large GEMMs, same bits */
    if (tune && strcmp(tune, "0") != 0 && strcmp(tune, "1") != 0) {
        err_set(err, "R1C_CUDA_BI_TUNE='%s': expected 0 or 1", tune);
        return NULL;
    }
    if (ref && (!ref[0] || strspn(ref, "0123456789") != strlen(ref) || strlen(ref) > 7 || atoi(ref) < 1)) {
        err_set(err, "R1C_CUDA_BI_REF_M='%s': expected a number of rows (1 to 9999999)", ref);
        return NULL;
    }
    const char *gr = getenv("R1C_CUDA_GRAPHS"), *rows = getenv("R1C_CUDA_GRAPH_ROWS");
    if (gr && strcmp(gr, "0") != 0 && strcmp(gr, "1") != 0) {
        err_set(err, "R1C_CUDA_GRAPHS='%s': expected 0 or 1", gr);
        return NULL;
    }
    if (rows && (!rows[0] || strspn(rows, "0123456789") != strlen(rows) || strlen(rows) > 9)) {
        err_set(err, "R1C_CUDA_GRAPH_ROWS='%s': expected a number of rows (0 or more)", rows);
        return NULL;
    }
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
