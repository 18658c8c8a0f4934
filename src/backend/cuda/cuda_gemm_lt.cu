/* Batch-invariant bf16 GEMMs through cuBLASLt.
 *
 * cublasGemmEx with CUBLAS_GEMM_DEFAULT asks cuBLAS's heuristic for a
 * kernel on every call, and the heuristic looks at the whole problem
 * shape: a 256-row decode step and a 16k-row training batch get different
 * tile shapes and, for few rows, split-K. Each of those sums a row's dot
 * products in another order, so the same input row times the same weight
 * comes out different in the last fp32 bits depending on how many rows
 * were in the batch; the next GEMM's bf16 rounding then turns those bits
 * into visible differences between the sampler's and the trainer's
 * log-probs.
 *
 * Here the algorithm is chosen once per shape (N, K, layout of the
 * weight, leading dimensions, beta == 0, pointer alignment classes) and
 * never from M: cuBLASLt's heuristic is asked at a fixed reference row
 * count (LT_REF_M) with split-K and reduction schemes excluded, the answer
 * is pinned to split-K 1 / no reduction, cached, and every later call with
 * that shape runs exactly that algorithm, whatever M is. With the kernel,
 * tile, stage count and split fixed, one output element is computed by
 * one thread block walking the same K tiles in the same order with the
 * same MMA instructions; M only changes how many tiles there are along the
 * rows. So row r of C depends on row r of A and on B alone: bitwise the
 * same for M = 1 and M = 16384, and whichever other rows share the batch.
 *
 * The algorithm is checked (cublasLtMatmulAlgoCheck, host only) for every
 * new M; where it is not valid, or the shape has no usable algorithm at
 * all, the call returns -1 and cuda_sgemm runs cublasGemmEx instead: the
 * result is still correct, only not invariant, and the shape says so once
 * on stderr (cuda_batch_invariant_fallbacks counts such calls).
 *
 * Pointer alignment is part of the key, in classes capped at 16 bytes
 * (2, 4, 8, 16): the heuristic is told the class, so the algorithm it
 * returns never needs more than the pointers have, and 16-byte aligned
 * pointers (the normal case: the conversion buffer, cudaMalloc'd buffers,
 * rows of 8-element multiples) all share one algorithm however much more
 * they happen to be aligned. A weight that sits at an odd offset inside
 * the parameter buffer gets its own (also M-independent) algorithm.
 *
 * Large calls (more than LT_SMALL_MAX rows: training, prefill, LM-head
 * chunks) may run another algorithm than the shape's reference, chosen by
 * timing, but only one that computes the same bits: cuBLASLt's split-K-1
 * kernels differ in tile, stages and cluster shape, and on sm_90 they all
 * walk K in the same order per output element, so a tile made for 16k rows
 * gives a row the same bits as the 256-row tile (bench_gemm_algos prints
 * this for every candidate). That is checked, not assumed: each candidate
 * is run on a probe of LT_PROBE_ROWS rows against the reference algorithm
 * and compared bit for bit before it may run a call (lt_verify); one that
 * differs is never used. Then the first calls of each row-count bucket
 * time the candidates on the real work, and the fastest runs the bucket
 * from then on. R1C_CUDA_BI_TUNE=0 runs the reference at every M.
 *
 * Not thread-safe (the shape cache is a plain array), like the rest of the
 * backend: ops are issued from one host thread onto the backend's stream. */
#include <cublasLt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/backend_cuda.h"
}

/* The row count the heuristic is asked about. A decode step's size: the
 * algorithm cuBLASLt prefers for 256 rows without split-K has tiles small
 * enough to fill the GPU at decode sizes and still runs training-sized
 * calls within a few percent (docs/cuda.md: 16384 cost a third of
 * generation's speed). R1C_CUDA_BI_REF_M=N asks about N rows instead. */
#define LT_REF_M_DEFAULT 256
static int lt_ref_m(void) {
    static int m = 0;
    if (!m) {
        const char *s = getenv("R1C_CUDA_BI_REF_M");
        m = s && atoi(s) > 0 ? atoi(s) : LT_REF_M_DEFAULT;
    }
    return m;
}
#define LT_REF_M lt_ref_m()
/* One fixed workspace size for the heuristic, the checks and the runs, so
 * that an algorithm chosen under one size is never run under another. */
#define LT_WS_BYTES ((size_t)32 << 20)
#define LT_MAX_SHAPES 128
#define LT_SEEN 32       /* row counts remembered as checked, per shape */
#define LT_CANDIDATES 32 /* heuristic answers considered */
/* Calls with more rows than this may run a tuned algorithm (same bits). */
#define LT_SMALL_MAX 1024
#define LT_TUNE_CANDS 8  /* the reference and up to 7 alternatives */
#define LT_TUNE_SAMPLES 1 /* timed calls per candidate and bucket (after its probe: kernel loaded) */
#define LT_BUCKETS 22     /* row counts 2^10+1 .. 2^31, one bucket per power of two */
#define LT_PROBE_ROWS 16

/* ---- the switch ---- */

static int g_bi = -1; /* -1: not decided yet (environment, default 1) */
static long g_fallbacks;

extern "C" void cuda_set_batch_invariant(int level) {
    level = level < 0 ? 0 : level > 2 ? 2 : level;
    if (level != g_bi) cuda_graph_invalidate(); /* recorded graphs hold the GEMM path */
    g_bi = level;
}

extern "C" int cuda_batch_invariant(void) {
    if (g_bi < 0) {
        const char *s = getenv("R1C_CUDA_BATCH_INVARIANT");
        g_bi = s && (!strcmp(s, "0") || !strcmp(s, "2")) ? s[0] - '0' : 1;
    }
    return g_bi;
}

extern "C" long cuda_batch_invariant_fallbacks(void) { return g_fallbacks; }

static int tune_enabled(void) {
    static int t = -1;
    if (t < 0) {
        const char *s = getenv("R1C_CUDA_BI_TUNE");
        t = !(s && s[0] == '0');
    }
    return t;
}

static int verbose(void) {
    static int v = -1;
    if (v < 0) {
        const char *s = getenv("R1C_CUDA_BI_VERBOSE");
        v = s && s[0] == '1';
    }
    return v;
}

/* ---- handle and workspace ---- */

static cublasLtHandle_t g_lt;
static int g_lt_state; /* 0: not tried, 1: ready, -1: cublasLtCreate failed */
static CudaBuf g_ws;

static cublasLtHandle_t lt_handle(void) {
    if (g_lt_state == 0) {
        cublasStatus_t s = cublasLtCreate(&g_lt);
        g_lt_state = s == CUBLAS_STATUS_SUCCESS ? 1 : -1;
        if (g_lt_state < 0)
            fprintf(stderr, "cuda: batch-invariant GEMMs: cublasLtCreate failed (cuBLAS status %d); every GEMM "
                            "runs cublasGemmEx and is not batch-invariant\n", (int)s);
    }
    return g_lt_state > 0 ? g_lt : NULL;
}

void cuda_gemm_lt_trim(void) { cuda_buf_free(&g_ws); }

/* ---- the shape cache ---- */

typedef struct LtKey {
    int tb, N, K, lda, ldb, ldc, beta0;
    unsigned al_a, al_b, al_c; /* alignment classes of A, B, C in bytes */
} LtKey;

/* The large calls' algorithm, per shape: candidates (0 is the shape's
 * reference algorithm) and, per bucket of row counts, their timings. */
typedef struct LtBucket {
    int M;                              /* the row count timed (the bucket's first call), 0: none yet */
    int pick;                           /* the candidate run, -1 while timing */
    int samples[LT_TUNE_CANDS];
    float best_ms[LT_TUNE_CANDS];
    int checked_M;                      /* the last M the pick was checked valid for */
} LtBucket;

typedef struct LtTune {
    int n;                              /* candidates, the reference included */
    cublasLtMatmulAlgo_t algo[LT_TUNE_CANDS];
    signed char state[LT_TUNE_CANDS];   /* 1: same bits as the reference, -1: not, or cannot run; 0: unchecked */
    int pending, pending_bucket;        /* candidate timed by the events in flight, -1: none */
    cudaEvent_t ev[2];
    LtBucket bucket[LT_BUCKETS];
} LtTune;

/* cuBLAS is column-major: row-major C(M,N) = A op(B) is computed as
 * C^T(N,M) = op(B)^T A^T. So cuBLASLt's "A" is our B (the weight, shape
 * fixed per key), its "B" is our A (M columns) and its C/D is our C (N
 * rows, M columns). Only the last two depend on M. */
typedef struct LtShape {
    LtKey key;
    const char *op; /* the op that first used the shape, for messages */
    int ok;         /* 1: algo chosen; 0: none, calls fall back */
    int warned;     /* the fallback message was printed */
    cublasLtMatmulDescOpaque_t desc;
    cublasLtMatrixLayoutOpaque_t lw; /* our B as cuBLASLt's A */
    cublasLtMatmulAlgo_t algo;
    int seen[LT_SEEN]; /* row counts the algo was checked valid for */
    int nseen, next;
    LtTune *tune;      /* large calls' candidates; NULL until the first one */
} LtShape;

static LtShape g_shapes[LT_MAX_SHAPES];
static int g_nshapes;
static int g_full_warned;

static unsigned align_class(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned c = 16;
    while (c > 1 && (a & (c - 1))) c >>= 1;
    return c;
}

static void describe(const LtShape *e, char *buf, size_t n) {
    const LtKey *k = &e->key;
    snprintf(buf, n, "%s: N=%d K=%d %s lda=%d ldb=%d ldc=%d beta%s0 alignment A/B/C %u/%u/%u bytes", e->op, k->N,
             k->K, k->tb ? "A B^T" : "A B", k->lda, k->ldb, k->ldc, k->beta0 ? "=" : "!=", k->al_a, k->al_b, k->al_c);
}

/* cuBLASLt's B (our A) and C/D layouts for M rows. */
static int lt_layouts(const LtShape *e, int M, cublasLtMatrixLayoutOpaque_t *lx, cublasLtMatrixLayoutOpaque_t *lc) {
    const LtKey *k = &e->key;
    if (cublasLtMatrixLayoutInit(lx, CUDA_R_16BF, (uint64_t)k->K, (uint64_t)M, k->lda) != CUBLAS_STATUS_SUCCESS)
        return -1;
    if (cublasLtMatrixLayoutInit(lc, CUDA_R_32F, (uint64_t)k->N, (uint64_t)M, k->ldc) != CUBLAS_STATUS_SUCCESS)
        return -1;
    return 0;
}

/* 0 when `algo` can run the shape at M rows within the fixed workspace;
 * *ws gets the workspace it needs. Host-only. */
static int lt_check(LtShape *e, int M, const cublasLtMatmulAlgo_t *algo, size_t *ws) {
    cublasLtMatrixLayoutOpaque_t lx, lc;
    if (lt_layouts(e, M, &lx, &lc) != 0) return -1;
    cublasLtMatmulHeuristicResult_t r;
    memset(&r, 0, sizeof r);
    cublasStatus_t s = cublasLtMatmulAlgoCheck(g_lt, &e->desc, &e->lw, &lx, &lc, &lc, algo, &r);
    if (s != CUBLAS_STATUS_SUCCESS || r.state != CUBLAS_STATUS_SUCCESS) return -1;
    if (ws) *ws = r.workspaceSize;
    return r.workspaceSize <= LT_WS_BYTES ? 0 : -1;
}

static uint32_t cfg_u32(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoConfigAttributes_t at, uint32_t dflt) {
    uint32_t v = dflt;
    size_t w = 0;
    return cublasLtMatmulAlgoConfigGetAttribute(a, at, &v, sizeof v, &w) == CUBLAS_STATUS_SUCCESS ? v : dflt;
}

static uint16_t cfg_u16(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoConfigAttributes_t at) {
    uint16_t v = 0;
    size_t w = 0;
    return cublasLtMatmulAlgoConfigGetAttribute(a, at, &v, sizeof v, &w) == CUBLAS_STATUS_SUCCESS ? v : 0;
}

static void remember(LtShape *e, int M) {
    e->seen[e->next] = M;
    e->next = (e->next + 1) % LT_SEEN;
    if (e->nseen < LT_SEEN) e->nseen++;
}

static int was_seen(const LtShape *e, int M) {
    for (int i = 0; i < e->nseen; i++)
        if (e->seen[i] == M) return 1;
    return 0;
}

/* The heuristic's answers for the shape at M rows (up to LT_CANDIDATES),
 * with split-K reductions masked out when `masked`; 0 on any failure. */
static int lt_ask(LtShape *e, int M, int masked, cublasLtMatmulHeuristicResult_t res[LT_CANDIDATES]) {
    const LtKey *k = &e->key;
    cublasLtMatrixLayoutOpaque_t lx, lc;
    if (lt_layouts(e, M, &lx, &lc) != 0) return 0;
    cublasLtMatmulPreferenceOpaque_t pref;
    uint64_t ws = LT_WS_BYTES;
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE;
    /* cuBLASLt's A is our B, its B our A */
    uint32_t al_a = k->al_b, al_b = k->al_a, al_c = k->al_c;
    if (cublasLtMatmulPreferenceInit(&pref) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) ||
        (masked && cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red,
                                                        sizeof red)) ||
        cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a) ||
        cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b) ||
        cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c) ||
        cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c))
        return 0;
    int n = 0;
    memset(res, 0, LT_CANDIDATES * sizeof res[0]);
    if (cublasLtMatmulAlgoGetHeuristic(g_lt, &e->desc, &e->lw, &lx, &lc, &lc, &pref, LT_CANDIDATES, res, &n) !=
        CUBLAS_STATUS_SUCCESS)
        return 0;
    return n;
}

/* split-K 1 and no reduction scheme: each output element one thread
 * block's sequential walk over K */
static int lt_plain(const cublasLtMatmulAlgo_t *a) {
    return (int32_t)cfg_u32(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, 1) <= 1 &&
           cfg_u32(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, CUBLASLT_REDUCTION_SCHEME_NONE) ==
               CUBLASLT_REDUCTION_SCHEME_NONE;
}

/* Builds the descriptors and picks the shape's algorithm (e->ok). */
static void lt_choose(LtShape *e) {
    const LtKey *k = &e->key;
    char what[256];
    describe(e, what, sizeof what);
    e->ok = 0;
    cublasOperation_t ta = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
    /* our B read column-major: N x K (ld ldb) when not transposed, K x N when it is */
    uint64_t wr = k->tb ? (uint64_t)k->K : (uint64_t)k->N, wc = k->tb ? (uint64_t)k->N : (uint64_t)k->K;
    if (cublasLtMatmulDescInit(&e->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(&e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(&e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutInit(&e->lw, CUDA_R_16BF, wr, wc, k->ldb) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cuda: batch-invariant GEMM %s: cuBLASLt descriptors failed; this shape runs cublasGemmEx and "
                        "is not batch-invariant\n", what);
        return;
    }
    /* Ask with split-K reductions masked out; if a cuBLASLt version
     * answers nothing under the mask, ask again without it and pin split-K
     * to 1 below (pass 2). */
    cublasLtMatmulHeuristicResult_t res[LT_CANDIDATES];
    int n = lt_ask(e, LT_REF_M, 1, res);
    if (n == 0) n = lt_ask(e, LT_REF_M, 0, res);

    /* In the heuristic's order of preference, the first algorithm that
     * runs the shape at the reference M and at M = 1:
     *   pass 0: as answered, no split-K, no reduction, no workspace;
     *   pass 1: the same, workspace allowed;
     *   pass 2: split-K answers pinned to split-K 1, no reduction.
     * Pass 0 comes first because an algorithm that asks for workspace at
     * split-K 1 may still combine partial sums across thread blocks there
     * (stream-K-style schedulers do), which would bring M back in. Only if
     * none of them runs at M = 1 is one valid at the reference M alone
     * taken (row counts it cannot run then fall back, and say so). */
    int pick = -1, pass = 0, need_one = 1;
    size_t pick_ws = 0;
    for (; need_one >= 0 && pick < 0; need_one--)
        for (pass = 0; pass < 3 && pick < 0; pass++)
            for (int i = 0; i < n && pick < 0; i++) {
                if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
                cublasLtMatmulAlgo_t a = res[i].algo;
                int plain = lt_plain(&a);
                if (pass < 2 && !plain) continue;
                if (pass == 2) {
                    if (plain) continue; /* tried in passes 0 and 1 */
                    int32_t one = 1;
                    uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
                    if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof one) ||
                        cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none,
                                                             sizeof none))
                        continue;
                }
                size_t w_ref = 0, w_one = 0;
                if (lt_check(e, LT_REF_M, &a, &w_ref) != 0 || (need_one && lt_check(e, 1, &a, &w_one) != 0)) continue;
                if (pass == 0 && (w_ref || w_one)) continue;
                e->algo = a;
                pick = i;
                pick_ws = w_ref > w_one ? w_ref : w_one;
                if (need_one) remember(e, 1);
            }
    if (pick < 0) {
        fprintf(stderr, "cuda: batch-invariant GEMM %s: cuBLASLt offers no split-K-free algorithm (%d answers); this "
                        "shape runs cublasGemmEx and is not batch-invariant\n", what, n);
        return;
    }
    e->ok = 1;
    remember(e, LT_REF_M);
    if (verbose()) {
        const cublasLtMatmulAlgo_t *a = &e->algo;
        fprintf(stderr, "cuda: batch-invariant GEMM %s: algo %u tile %u stages %u split-K %d reduction %u swizzle %u "
                        "custom %u inner shape %u cluster %u, workspace %zu bytes (answer %d of %d, pass %d%s)\n",
                what, cfg_u32(a, CUBLASLT_ALGO_CONFIG_ID, 0), cfg_u32(a, CUBLASLT_ALGO_CONFIG_TILE_ID, 0),
                cfg_u32(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, 0), (int)cfg_u32(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, 1),
                cfg_u32(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, 0), cfg_u32(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, 0),
                cfg_u32(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, 0),
                (unsigned)cfg_u16(a, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID),
                (unsigned)cfg_u16(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID), pick_ws, pick + 1, n, pass - 1,
                need_one < 0 ? ", not valid at M=1" : "");
    }
}

static LtShape *lt_shape(const char *op, const LtKey *k) {
    for (int i = 0; i < g_nshapes; i++)
        if (!memcmp(&g_shapes[i].key, k, sizeof *k)) return &g_shapes[i];
    if (g_nshapes == LT_MAX_SHAPES) {
        if (!g_full_warned)
            fprintf(stderr, "cuda: batch-invariant GEMMs: more than %d GEMM shapes; the extra ones run cublasGemmEx "
                            "and are not batch-invariant\n", LT_MAX_SHAPES);
        g_full_warned = 1;
        return NULL;
    }
    LtShape *e = &g_shapes[g_nshapes++];
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->op = op;
    lt_choose(e);
    return e;
}

static int fall_back(LtShape *e, int M, const char *why) {
    g_fallbacks++;
    if (e && !e->warned) {
        char what[256];
        describe(e, what, sizeof what);
        fprintf(stderr, "cuda: batch-invariant GEMM %s: %s at M=%d rows; such calls run cublasGemmEx and are not "
                        "batch-invariant\n", what, why, M);
        e->warned = 1;
    }
    return -1;
}

/* ---- large calls: algorithms with the reference's bits, timed ---- */

static long g_tune_same, g_tune_differ; /* candidates checked, for tests and messages */

extern "C" void cuda_batch_invariant_tune_counts(long *same, long *differ) {
    if (same) *same = g_tune_same;
    if (differ) *differ = g_tune_differ;
}

/* A bucket is being tuned from its first call (M set) until lt_decide
 * picks (the call after its last candidate's timing). */
extern "C" int cuda_batch_invariant_tuning(void) {
    int n = 0;
    for (int i = 0; i < g_nshapes; i++) {
        const LtTune *t = g_shapes[i].tune;
        for (int b = 0; t && b < LT_BUCKETS; b++) n += t->bucket[b].M && t->bucket[b].pick < 0;
    }
    return n;
}

static int config_equal(const cublasLtMatmulAlgo_t *a, const cublasLtMatmulAlgo_t *b) {
    static const cublasLtMatmulAlgoConfigAttributes_t at[] = {
        CUBLASLT_ALGO_CONFIG_ID,           CUBLASLT_ALGO_CONFIG_TILE_ID,          CUBLASLT_ALGO_CONFIG_STAGES_ID,
        CUBLASLT_ALGO_CONFIG_SPLITK_NUM,   CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING,
        CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        if (cfg_u32(a, at[i], 0) != cfg_u32(b, at[i], 0)) return 0;
    return cfg_u16(a, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID) == cfg_u16(b, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID) &&
           cfg_u16(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID) == cfg_u16(b, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID);
}

static void algo_text(const cublasLtMatmulAlgo_t *a, char *buf, size_t n) {
    snprintf(buf, n, "tile %u stages %u cluster %u", cfg_u32(a, CUBLASLT_ALGO_CONFIG_TILE_ID, 0),
             cfg_u32(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, 0), (unsigned)cfg_u16(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID));
}

/* 0 when candidate `a` can run M rows with at most LT_TUNE_WS bytes of
 * workspace: room for a persistent kernel's tile counter, not for partial
 * sums (a stream-K split would need whole fp32 tiles). Says why not under
 * R1C_CUDA_BI_VERBOSE=1. */
#define LT_TUNE_WS 1024
static int lt_tune_check(LtShape *e, int M, const cublasLtMatmulAlgo_t *a, const char *when) {
    size_t w = 0;
    int rc = lt_check(e, M, a, &w);
    if (rc == 0 && w <= LT_TUNE_WS) return 0;
    if (verbose()) {
        char what[256], how[64];
        describe(e, what, sizeof what);
        algo_text(a, how, sizeof how);
        if (rc) fprintf(stderr, "cuda: batch-invariant GEMM %s: candidate %s cannot run M=%d (%s)\n", what, how, M, when);
        else fprintf(stderr, "cuda: batch-invariant GEMM %s: candidate %s needs %zu bytes of workspace at M=%d (%s); "
                             "not used\n", what, how, w, M, when);
    }
    return -1;
}

/* bucket b holds row counts (2^(10+b), 2^(11+b)] */
static int bucket_of(int M) {
    int b = 0;
    while (b < LT_BUCKETS - 1 && ((long long)LT_SMALL_MAX << (b + 1)) < M) b++;
    return b;
}

/* The reference algorithm, then the heuristic's split-K-1 answers without
 * workspace (the pass-0 rule of lt_choose) for a training-sized and a
 * chunk-sized call. NULL when out of host memory. */
static LtTune *lt_tune_get(LtShape *e) {
    if (e->tune) return e->tune;
    LtTune *t = (LtTune *)calloc(1, sizeof *t);
    if (!t) return NULL;
    t->algo[0] = e->algo;
    t->n = 1; /* state[0] = 0: the reference runs the probe too, so that no
                 candidate's first timed call pays for loading its kernel */
    t->pending = -1;
    static const int ask_m[] = {16384, 2048};
    cublasLtMatmulHeuristicResult_t res[LT_CANDIDATES];
    for (int q = 0; q < 2; q++) {
        int n = lt_ask(e, ask_m[q], 1, res);
        for (int i = 0; i < n && t->n < LT_TUNE_CANDS; i++) {
            const cublasLtMatmulAlgo_t *a = &res[i].algo;
            if (res[i].state != CUBLAS_STATUS_SUCCESS || !lt_plain(a) || lt_tune_check(e, ask_m[q], a, "asked") != 0)
                continue;
            int dup = 0;
            for (int j = 0; j < t->n && !dup; j++) dup = config_equal(a, &t->algo[j]);
            if (!dup) t->algo[t->n++] = *a;
        }
    }
    if (cudaEventCreate(&t->ev[0]) != cudaSuccess || cudaEventCreate(&t->ev[1]) != cudaSuccess) {
        (void)cudaGetLastError();
        t->n = 1; /* no timing: the reference runs every call */
    }
    for (int b = 0; b < LT_BUCKETS; b++) t->bucket[b].pick = t->n == 1 ? 0 : -1;
    e->tune = t;
    return t;
}

__global__ void lt_probe_fill_kernel(__nv_bfloat16 *a, size_t n, uint32_t seed) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13, h *= 3266489917u, h ^= h >> 16;
    a[i] = __float2bfloat16_rn(4.0f * ((float)(h >> 8) / 16777216.0f - 0.5f)); /* [-2, 2) */
}

__global__ void lt_probe_cmp_kernel(const float *x, const float *y, int rows, int cols, int ld, unsigned *diff) {
    size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t at = i / cols * ld + i % cols;
        if (__float_as_uint(x[at]) != __float_as_uint(y[at])) atomicAdd(diff, 1u);
    }
}

/* Candidate c against the reference on LT_PROBE_ROWS rows of pseudo-random
 * bf16 times the call's own B: 1 when every output bit agrees, -1 when
 * not (or it cannot run them), 0 when the probe could not be made. */
static int lt_verify(LtShape *e, LtTune *t, int c, const void *B) {
    const LtKey *k = &e->key;
    const int P = LT_PROBE_ROWS;
    if (lt_tune_check(e, P, &t->algo[c], "probe") != 0 || lt_check(e, P, &e->algo, NULL) != 0) return c ? -1 : 1;
    size_t na = (size_t)(P - 1) * k->lda + k->K, nc = (size_t)(P - 1) * k->ldc + k->N;
    size_t bytes_a = (na * 2 + 255) & ~(size_t)255, bytes_c = (nc * 4 + 255) & ~(size_t)255;
    char *mem = NULL;
    if (cudaMalloc(&mem, bytes_a + 2 * bytes_c + 256) != cudaSuccess) {
        (void)cudaGetLastError(); /* not an error of the run: the reference keeps running */
        return 0;
    }
    void *ws = cuda_buf_grow(&g_ws, LT_WS_BYTES, "batch-invariant GEMM workspace");
    __nv_bfloat16 *pa = (__nv_bfloat16 *)mem;
    float *c0 = (float *)(mem + bytes_a), *c1 = (float *)(mem + bytes_a + bytes_c);
    unsigned *d_diff = (unsigned *)(mem + bytes_a + 2 * bytes_c), diff = 1;
    cudaStream_t st = cuda_stream();
    lt_probe_fill_kernel<<<(unsigned)((na + 255) / 256), 256, 0, st>>>(pa, na, 0x9e3779b9u ^ (uint32_t)k->N);
    cudaMemsetAsync(c0, 0, 2 * bytes_c + 256, st);
    cublasLtMatrixLayoutOpaque_t lx, lc;
    float one = 1.0f, beta = k->beta0 ? 0.0f : 1.0f;
    int ok = ws && lt_layouts(e, P, &lx, &lc) == 0 &&
             cublasLtMatmul(g_lt, &e->desc, &one, B, &e->lw, pa, &lx, &beta, c0, &lc, c0, &lc, &e->algo, ws,
                            LT_WS_BYTES, st) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatmul(g_lt, &e->desc, &one, B, &e->lw, pa, &lx, &beta, c1, &lc, c1, &lc, &t->algo[c], ws,
                            LT_WS_BYTES, st) == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        lt_probe_cmp_kernel<<<64, 256, 0, st>>>(c0, c1, P, k->N, k->ldc, d_diff);
        ok = cudaMemcpyAsync(&diff, d_diff, sizeof diff, cudaMemcpyDeviceToHost, st) == cudaSuccess &&
             cudaStreamSynchronize(st) == cudaSuccess;
    }
    cudaFree(mem);
    if (!ok) {
        cudaError_t ce = cudaGetLastError();
        if (verbose())
            fprintf(stderr, "cuda: batch-invariant GEMM %s: candidate %d's probe did not run (%s)\n", e->op, c,
                    cudaGetErrorString(ce));
        return ws ? -1 : 0;
    }
    if (!c) return 1; /* the reference against itself: its kernel is loaded now */
    if (diff) g_tune_differ++;
    else g_tune_same++;
    if (verbose() || diff) {
        char what[256], how[64];
        describe(e, what, sizeof what);
        algo_text(&t->algo[c], how, sizeof how);
        if (diff)
            fprintf(stderr, "cuda: batch-invariant GEMM %s: candidate %s differs from the reference in %u of %d "
                            "probe outputs; it is not used\n", what, how, diff, P * k->N);
        else fprintf(stderr, "cuda: batch-invariant GEMM %s: candidate %s gives the reference's bits\n", what, how);
    }
    return diff ? -1 : 1;
}

/* Reads the timing in flight, if any (waits for it). */
static void lt_collect(LtTune *t) {
    if (t->pending < 0) return;
    float ms = INFINITY;
    cudaError_t ce = cudaEventSynchronize(t->ev[1]);
    if (ce == cudaSuccess) ce = cudaEventElapsedTime(&ms, t->ev[0], t->ev[1]);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        if (verbose()) fprintf(stderr, "cuda: batch-invariant GEMM timing failed (%s)\n", cudaGetErrorString(ce));
        ms = INFINITY;
    }
    LtBucket *bk = &t->bucket[t->pending_bucket];
    int c = t->pending;
    bk->best_ms[c] = bk->samples[c] && bk->best_ms[c] < ms ? bk->best_ms[c] : ms;
    bk->samples[c]++;
    t->pending = -1;
}

/* All candidates timed (or ruled out): the fastest runs the bucket. */
static void lt_decide(LtShape *e, LtTune *t, int b) {
    LtBucket *bk = &t->bucket[b];
    int best = 0;
    for (int c = 1; c < t->n; c++)
        if (t->state[c] > 0 && bk->samples[c] && bk->best_ms[c] < bk->best_ms[best]) best = c;
    bk->pick = best;
    if (verbose()) {
        char what[256], how[64];
        describe(e, what, sizeof what);
        algo_text(&t->algo[best], how, sizeof how);
        fprintf(stderr, "cuda: batch-invariant GEMM %s: %d..%lld rows run %s (%.1f us at M=%d; the reference %.1f "
                        "us; %d candidates)\n", what, (int)(((long long)LT_SMALL_MAX << b) + 1),
                (long long)LT_SMALL_MAX << (b + 1), how, 1e3 * bk->best_ms[best], bk->M, 1e3 * bk->best_ms[0], t->n);
    }
}

/* The algorithm for a call of M > LT_SMALL_MAX rows: the bucket's pick;
 * while the bucket is being timed, the next candidate to time (*timed,
 * *bucket), verified first. NULL: run the reference. */
static const cublasLtMatmulAlgo_t *lt_large(LtShape *e, int M, const void *B, int *timed, int *bucket) {
    *timed = -1;
    if (!tune_enabled()) return NULL;
    int b = bucket_of(M);
    if (cuda_graph_recording()) { /* no setting up, no synchronizing, no timing */
        const LtTune *t = e->tune;
        const LtBucket *bk = t ? &t->bucket[b] : NULL;
        return bk && bk->pick > 0 && bk->checked_M == M ? &t->algo[bk->pick] : NULL;
    }
    LtTune *t = lt_tune_get(e);
    if (!t) return NULL;
    LtBucket *bk = &t->bucket[b];
    lt_collect(t);
    if (bk->pick < 0) {
        if (!bk->M) bk->M = M;
        if (M != bk->M) return NULL; /* timings are compared at one row count */
        for (int c = 0; c < t->n; c++) {
            if (t->state[c] < 0 || bk->samples[c] >= LT_TUNE_SAMPLES) continue;
            if (lt_tune_check(e, M, &t->algo[c], "call") != 0) {
                bk->samples[c] = LT_TUNE_SAMPLES, bk->best_ms[c] = INFINITY;
                continue;
            }
            if (t->state[c] == 0) {
                int v = lt_verify(e, t, c, B);
                if (v == 0) return NULL; /* no memory for the probe now: try again on a later call */
                if (c == 0 && v < 0) v = 1;     /* the reference is never ruled out */
                t->state[c] = (signed char)v;
                if (v < 0) continue;
            }
            *timed = c, *bucket = b;
            return &t->algo[c];
        }
        lt_decide(e, t, b);
    }
    if (bk->pick == 0) return NULL;
    if (bk->checked_M != M) {
        if (lt_tune_check(e, M, &t->algo[bk->pick], "call") != 0) return NULL;
        bk->checked_M = M;
    }
    return &t->algo[bk->pick];
}

/* 0 when the reference algorithm runs M rows (checked once per M) */
static int ref_check(LtShape *e, int M) {
    if (was_seen(e, M)) return 0;
    if (lt_check(e, M, &e->algo, NULL) != 0) return -1;
    remember(e, M);
    return 0;
}

/* statuses with which cublasLtMatmul launched nothing */
static int not_launched(cublasStatus_t s) {
    return s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE || s == CUBLAS_STATUS_ARCH_MISMATCH;
}

int cuda_gemm_bf16_invariant(const char *op, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                             const void *B, int ldb, float beta, float *C, int ldc) {
    if (!lt_handle()) {
        g_fallbacks++; /* said once by lt_handle */
        return -1;
    }
    LtKey key;
    memset(&key, 0, sizeof key); /* memcmp'd: no stray padding bytes */
    key.tb = tb ? 1 : 0;
    key.N = N, key.K = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.beta0 = beta == 0.0f;
    key.al_a = align_class(A), key.al_b = align_class(B), key.al_c = align_class(C);
    LtShape *e = lt_shape(op, &key);
    if (!e || !e->ok) { /* said once when the shape was first seen (or the table filled up) */
        g_fallbacks++;
        return -1;
    }
    int timed = -1, bucket = 0;
    const cublasLtMatmulAlgo_t *algo = M > LT_SMALL_MAX ? lt_large(e, M, B, &timed, &bucket) : NULL;
    if (!algo) {
        algo = &e->algo;
        if (ref_check(e, M) != 0) return fall_back(e, M, "the shape's cuBLASLt algorithm is not valid");
    }
    void *ws = cuda_buf_grow(&g_ws, LT_WS_BYTES, "batch-invariant GEMM workspace");
    if (!ws) return 0; /* noted for cuda_check, like any failed allocation */
    cublasLtMatrixLayoutOpaque_t lx, lc;
    if (lt_layouts(e, M, &lx, &lc) != 0) return fall_back(e, M, "cuBLASLt layouts failed");
    cudaStream_t st = cuda_stream(); /* the backend's stream, as every op */
    if (timed >= 0) cudaEventRecord(e->tune->ev[0], st);
    cublasStatus_t s =
        cublasLtMatmul(g_lt, &e->desc, &alpha, B, &e->lw, A, &lx, &beta, C, &lc, C, &lc, algo, ws, LT_WS_BYTES, st);
    if (timed >= 0) {
        cudaEventRecord(e->tune->ev[1], st);
        e->tune->pending = timed, e->tune->pending_bucket = bucket;
    }
    if (not_launched(s) && algo != &e->algo) {
        /* a tuned algorithm refused: rule it out (buckets running it pick
         * again), run the reference */
        LtTune *t = e->tune;
        int c = (int)(algo - t->algo);
        t->state[c] = -1, t->pending = -1;
        for (int b = 0; b < LT_BUCKETS; b++)
            if (t->bucket[b].pick == c) t->bucket[b].pick = -1;
        if (ref_check(e, M) != 0) return fall_back(e, M, "the shape's cuBLASLt algorithm is not valid");
        s = cublasLtMatmul(g_lt, &e->desc, &alpha, B, &e->lw, A, &lx, &beta, C, &lc, C, &lc, &e->algo, ws,
                           LT_WS_BYTES, st);
    }
    /* nothing was launched: the ordinary GEMM can still do the work */
    if (not_launched(s)) return fall_back(e, M, "cublasLtMatmul refused the call");
    cuda_note_blas(op, s);
    cuda_after_launch(op);
    return 0;
}
