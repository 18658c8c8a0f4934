/* Every cuBLASLt algorithm the heuristic offers for a model's forward
 * GEMMs (x W^T, bf16 in, fp32 out), timed at a decode-sized and a
 * training-sized row count, with the two questions batch invariance asks
 * of each (docs/cuda.md, "Batch invariance"):
 *   self: are the first rows' bits the same at M_small and at M_big?
 *   pick: are they the same as the algorithm the big-M heuristic prefers
 *         (split-K 1, no reduction) computes for those rows?
 * An algorithm with "self" can serve both decoding and training alone; an
 * algorithm that agrees with the big-M pick can serve decoding while the
 * pick serves training, with the same bits.
 *
 * usage: bench_gemm_algos [--shape NAME] [-m 256] [-M 16384] [--reps N]
 *   NAME: qwen2.5-0.5b (default) or r1-distill-qwen-1.5b (the GEMM shapes
 *   only: hidden size, fused QKV width, intermediate size, vocabulary).
 *
 * Standalone on purpose: it talks to cuBLASLt directly, so what it reports
 * is cuBLASLt's behaviour, not r1c's selection logic. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ALGOS 96
#define WS_BYTES ((size_t)512 << 20) /* room for split-K partials at M_big */

static int die(const char *what, int code) {
    fprintf(stderr, "bench_gemm_algos: %s failed (%d)\n", what, code);
    exit(1);
}
#define CK(x)                                                                                                          \
    do {                                                                                                               \
        cudaError_t e_ = (x);                                                                                          \
        if (e_ != cudaSuccess) die(#x, (int)e_);                                                                       \
    } while (0)
#define LT(x)                                                                                                          \
    do {                                                                                                               \
        cublasStatus_t s_ = (x);                                                                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS) die(#x, (int)s_);                                                             \
    } while (0)

static uint16_t bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* n bf16 values, uniform in [-scale/2, scale/2), fixed seed */
static void *dev_bf16(size_t n, float scale, uint32_t seed) {
    uint16_t *h = malloc(n * 2);
    if (!h) die("malloc", 0);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = bf16_of(scale * ((float)(seed >> 8) / 16777216.0f - 0.5f));
    }
    void *d;
    CK(cudaMalloc(&d, n * 2));
    CK(cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

typedef struct {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t lw;
    int N, K;
    void *W, *X, *ws;
    float *C;
} Gemm;

static void layouts(const Gemm *g, int M, cublasLtMatrixLayout_t *lx, cublasLtMatrixLayout_t *lc) {
    LT(cublasLtMatrixLayoutCreate(lx, CUDA_R_16BF, (uint64_t)g->K, (uint64_t)M, g->K));
    LT(cublasLtMatrixLayoutCreate(lc, CUDA_R_32F, (uint64_t)g->N, (uint64_t)M, g->N));
}

/* 0 and the workspace it needs when the algorithm runs M rows */
static int check(const Gemm *g, int M, const cublasLtMatmulAlgo_t *a, size_t *ws) {
    cublasLtMatrixLayout_t lx, lc;
    layouts(g, M, &lx, &lc);
    cublasLtMatmulHeuristicResult_t r;
    memset(&r, 0, sizeof r);
    cublasStatus_t s = cublasLtMatmulAlgoCheck(g->lt, g->desc, g->lw, lx, lc, lc, a, &r);
    cublasLtMatrixLayoutDestroy(lx);
    cublasLtMatrixLayoutDestroy(lc);
    if (s != CUBLAS_STATUS_SUCCESS || r.state != CUBLAS_STATUS_SUCCESS || r.workspaceSize > WS_BYTES) return -1;
    *ws = r.workspaceSize;
    return 0;
}

static int run(const Gemm *g, int M, const cublasLtMatmulAlgo_t *a) {
    cublasLtMatrixLayout_t lx, lc;
    layouts(g, M, &lx, &lc);
    float one = 1.0f, zero = 0.0f;
    cublasStatus_t s =
        cublasLtMatmul(g->lt, g->desc, &one, g->W, g->lw, g->X, lx, &zero, g->C, lc, g->C, lc, a, g->ws, WS_BYTES, 0);
    cublasLtMatrixLayoutDestroy(lx);
    cublasLtMatrixLayoutDestroy(lc);
    return s == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

/* median microseconds of `reps` runs timed with events, after 3 warm-ups */
static double time_us(const Gemm *g, int M, const cublasLtMatmulAlgo_t *a, int reps) {
    float t[64];
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    if (reps > 64) reps = 64;
    for (int i = 0; i < 3; i++)
        if (run(g, M, a) != 0) return -1;
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(e0, 0));
        run(g, M, a);
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[r], e0, e1));
    }
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            float x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return 1e3 * t[reps / 2];
}

static uint32_t cfg(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoConfigAttributes_t at) {
    uint32_t v = 0;
    size_t w = 0;
    cublasLtMatmulAlgoConfigGetAttribute(a, at, &v, sizeof v, &w);
    return w == 2 ? (v & 0xffffu) : v;
}

static int same_config(const cublasLtMatmulAlgo_t *a, const cublasLtMatmulAlgo_t *b) {
    cublasLtMatmulAlgoConfigAttributes_t at[] = {
        CUBLASLT_ALGO_CONFIG_ID,          CUBLASLT_ALGO_CONFIG_TILE_ID,       CUBLASLT_ALGO_CONFIG_STAGES_ID,
        CUBLASLT_ALGO_CONFIG_SPLITK_NUM,  CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING,
        CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        if (cfg(a, at[i]) != cfg(b, at[i])) return 0;
    return 1;
}

/* the heuristic's answers at M rows (no reduction mask: split-K included) */
static int ask(const Gemm *g, int M, cublasLtMatmulAlgo_t *out, int cap) {
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = WS_BYTES;
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatrixLayout_t lx, lc;
    layouts(g, M, &lx, &lc);
    cublasLtMatmulHeuristicResult_t res[MAX_ALGOS];
    int n = 0;
    if (cublasLtMatmulAlgoGetHeuristic(g->lt, g->desc, g->lw, lx, lc, lc, pref, cap < MAX_ALGOS ? cap : MAX_ALGOS, res,
                                       &n) != CUBLAS_STATUS_SUCCESS)
        n = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (res[i].state == CUBLAS_STATUS_SUCCESS) out[k++] = res[i].algo;
    cublasLtMatrixLayoutDestroy(lx);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulPreferenceDestroy(pref);
    return k;
}

static size_t differing(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], 4) != 0;
    return d;
}

static void sweep(cublasLtHandle_t lt, const char *name, int N, int K, int m, int Mb, int reps) {
    Gemm g = {.lt = lt, .N = N, .K = K};
    LT(cublasLtMatmulDescCreate(&g.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT(cublasLtMatrixLayoutCreate(&g.lw, CUDA_R_16BF, (uint64_t)K, (uint64_t)N, K)); /* W(N,K) row-major */
    g.W = dev_bf16((size_t)N * K, 0.08f, 7u + (uint32_t)N);
    g.X = dev_bf16((size_t)Mb * K, 2.0f, 11u + (uint32_t)K);
    CK(cudaMalloc((void **)&g.C, (size_t)Mb * N * 4));
    CK(cudaMalloc(&g.ws, WS_BYTES));
    size_t rows = (size_t)m * N;
    float *pick = malloc(rows * 4), *small = malloc(rows * 4), *big = malloc(rows * 4);

    cublasLtMatmulAlgo_t algos[2 * MAX_ALGOS];
    int na = ask(&g, m, algos, MAX_ALGOS);
    int nb_first = na;
    cublasLtMatmulAlgo_t more[MAX_ALGOS];
    int nb = ask(&g, Mb, more, MAX_ALGOS);
    /* the big-M pick: its first split-K-1 answer without reduction */
    int have_pick = 0;
    for (int i = 0; i < nb && !have_pick; i++) {
        if (cfg(&more[i], CUBLASLT_ALGO_CONFIG_SPLITK_NUM) > 1) continue;
        size_t w;
        if (check(&g, Mb, &more[i], &w) != 0 || run(&g, Mb, &more[i]) != 0) continue;
        CK(cudaMemcpy(pick, g.C, rows * 4, cudaMemcpyDeviceToHost));
        have_pick = 1;
        printf("%s N=%d K=%d: big-M pick algo %u tile %u stages %u, %.1f us at M=%d\n", name, N, K,
               cfg(&more[i], CUBLASLT_ALGO_CONFIG_ID), cfg(&more[i], CUBLASLT_ALGO_CONFIG_TILE_ID),
               cfg(&more[i], CUBLASLT_ALGO_CONFIG_STAGES_ID), time_us(&g, Mb, &more[i], reps / 4 + 3), Mb);
    }
    for (int i = 0; i < nb; i++) {
        int dup = 0;
        for (int j = 0; j < na && !dup; j++) dup = same_config(&more[i], &algos[j]);
        if (!dup) algos[na++] = more[i];
    }
    printf("  %3s %5s %5s %6s %5s %3s %4s %5s %10s %10s %10s %5s %6s\n", "#", "algo", "tile", "stages", "split",
           "red", "swz", "clus", "ws@m", "us@m", "us@M", "self", "=pick");
    for (int i = 0; i < na; i++) {
        cublasLtMatmulAlgo_t *a = &algos[i];
        size_t w_m = 0, w_b = 0;
        if (check(&g, m, a, &w_m) != 0) continue;
        double t_m = time_us(&g, m, a, reps);
        if (t_m < 0) continue;
        run(&g, m, a);
        CK(cudaMemcpy(small, g.C, rows * 4, cudaMemcpyDeviceToHost));
        double t_b = -1;
        const char *self = "-";
        char eq[16] = "-";
        if (check(&g, Mb, a, &w_b) == 0 && run(&g, Mb, a) == 0) {
            CK(cudaMemcpy(big, g.C, rows * 4, cudaMemcpyDeviceToHost));
            self = differing(small, big, rows) ? "no" : "yes";
            t_b = time_us(&g, Mb, a, reps / 4 + 3);
        }
        if (have_pick) snprintf(eq, sizeof eq, "%zu", differing(small, pick, rows));
        printf("  %3d %5u %5u %6u %5u %3u %4u %5u %10zu %10.1f %10.1f %5s %6s%s\n", i + 1,
               cfg(a, CUBLASLT_ALGO_CONFIG_ID), cfg(a, CUBLASLT_ALGO_CONFIG_TILE_ID),
               cfg(a, CUBLASLT_ALGO_CONFIG_STAGES_ID), cfg(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
               cfg(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME), cfg(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
               cfg(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID), w_m, t_m, t_b, self, eq,
               i >= nb_first ? " (big-M answer)" : "");
    }
    fflush(stdout);
    free(pick), free(small), free(big);
    cudaFree(g.W), cudaFree(g.X), cudaFree(g.C), cudaFree(g.ws);
    cublasLtMatrixLayoutDestroy(g.lw);
    cublasLtMatmulDescDestroy(g.desc);
}

int main(int argc, char **argv) {
    const char *shape = "qwen2.5-0.5b";
    int m = 256, Mb = 16384, reps = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--shape") && v) shape = v, i++;
        else if (!strcmp(a, "-m") && v) m = atoi(v), i++;
        else if (!strcmp(a, "-M") && v) Mb = atoi(v), i++;
        else if (!strcmp(a, "--reps") && v) reps = atoi(v), i++;
        else {
            fprintf(stderr, "usage: bench_gemm_algos [--shape qwen2.5-0.5b|r1-distill-qwen-1.5b] [-m 256] [-M 16384] "
                            "[--reps 20]\n");
            return 2;
        }
    }
    int C, QKV, I, V = 151936;
    if (!strcmp(shape, "qwen2.5-0.5b")) C = 896, QKV = 896 + 2 * 128, I = 4864;
    else if (!strcmp(shape, "r1-distill-qwen-1.5b") || !strcmp(shape, "qwen2.5-1.5b")) C = 1536, QKV = 1536 + 2 * 256, I = 8960;
    else {
        fprintf(stderr, "bench_gemm_algos: unknown shape '%s'\n", shape);
        return 2;
    }
    if (m < 1 || Mb < m || reps < 1) {
        fprintf(stderr, "bench_gemm_algos: need 1 <= m <= M and reps >= 1\n");
        return 2;
    }
    cublasLtHandle_t lt;
    LT(cublasLtCreate(&lt));
    printf("cuBLASLt %zu, shape %s, m=%d M=%d\n", cublasLtGetVersion(), shape, m, Mb);
    sweep(lt, "qkv", QKV, C, m, Mb, reps);
    sweep(lt, "o_proj", C, C, m, Mb, reps);
    sweep(lt, "gate+up", 2 * I, C, m, Mb, reps);
    sweep(lt, "down", C, I, m, Mb, reps);
    sweep(lt, "lm_head", V, C, m, Mb < 4096 ? Mb : 4096, reps);
    cublasLtDestroy(lt);
    return 0;
}
