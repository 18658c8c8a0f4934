/* Throughput of the CUDA backend's heavy ops on the GPU, against two
 * ceilings measured in the same run: cuBLAS SGEMM (fp32, no TF32) for
 * arithmetic, and a device-to-device copy for bandwidth. Prints a table;
 * each row's last column is the fraction of its ceiling. Ends with bf16
 * GEMMs at model shapes, batch-invariant path against cuBLAS's default. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/cuda/backend_cuda.h"

static const Backend *gpu;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void sync_or_die(void) {
    Err err;
    if (cuda_check(&err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
}

/* Fills a device buffer with small pseudo-random values (never zeros:
 * zeros can run faster than real data). */
static float *dev_rand(size_t n, float scale) {
    float *h = malloc(n * sizeof(float));
    uint32_t s = 12345u + (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        h[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
    float *d = gpu->alloc(n * sizeof(float));
    Err err;
    if (!d || cuda_upload(d, h, n * sizeof(float), &err) != 0) exit(1);
    free(h);
    return d;
}

typedef void (*RunFn)(void *ctx);

/* median of `reps` timed runs after 2 warm-ups, in seconds */
static double time_op(RunFn f, void *ctx, int reps) {
    double t[32];
    if (reps > 32) reps = 32;
    for (int i = 0; i < 2; i++) f(ctx);
    sync_or_die();
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        f(ctx);
        sync_or_die();
        t[r] = now() - t0;
    }
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    return t[reps / 2];
}

typedef struct {
    float *a, *b, *c, *d, *e, *f, *g, *h;
    int32_t *ids;
    int N, K, O, B, T, NH, KVH, HD;
    size_t n;
} Ctx;

static void run_gemm(void *p) {
    Ctx *c = p;
    gpu->matmul_forward(c->c, c->a, c->b, NULL, c->N, c->K, c->O);
}
/* the input gradient of the same layer: dinp(N,K) = dout(N,O) W */
static void run_gemm_dinp(void *p) {
    Ctx *c = p;
    gpu->matmul_backward(c->c, NULL, NULL, c->a, NULL, c->b, c->N, c->K, c->O, 0);
}
static void run_copy(void *p) {
    Ctx *c = p;
    gpu->copy(c->b, c->a, c->n * sizeof(float));
}
static void run_add(void *p) {
    Ctx *c = p;
    gpu->add_inplace(c->b, c->a, c->n);
}
static void run_sumsq(void *p) {
    Ctx *c = p;
    gpu->sumsq(c->a, c->n);
}
static void run_adamw(void *p) {
    Ctx *c = p;
    gpu->adamw_update(c->a, c->b, c->c, c->d, c->n, 1e-6f, 0.9f, 0.95f, 1e-8f, 0.0f, 3, 1.0f);
}
static void run_att_fwd(void *p) {
    Ctx *c = p;
    gpu->attention_forward(c->d, c->e, c->a, c->b, c->c, c->B, c->T, c->NH, c->KVH, c->HD);
}
static void run_att_bwd(void *p) {
    Ctx *c = p;
    gpu->attention_backward(c->f, c->g, c->h, c->a, c->d, c->e, c->a, c->b, c->c, c->B, c->T, c->NH, c->KVH, c->HD);
}
static void run_lm_fwd(void *p) {
    Ctx *c = p;
    gpu->lm_head_logprob_forward(c->c, c->d, NULL, c->a, c->b, c->ids, c->N, c->K, c->O, 1.0f);
}
static void run_lm_bwd(void *p) {
    Ctx *c = p;
    gpu->lm_head_logprob_backward(c->e, c->f, c->d, c->a, c->b, NULL, c->ids, c->N, c->K, c->O, 1.0f);
}

static void run_emb_bwd(void *p) {
    Ctx *c = p;
    gpu->embedding_backward(c->f, c->e, c->ids, c->N, c->K);
}

/* bf16 GEMMs at the Qwen2.5-0.5B shapes: the forward (x W^T) decode-sized
 * (256 rows) and training-sized (16k rows), and the input gradient
 * (dout W) at 16k rows (the LM head's at 441 rows, its logits chunk at
 * this vocabulary): the batch-invariant cuBLASLt path (one algorithm per
 * shape, no split-K) against cublasGemmEx's per-call choice. Weights come
 * from their bf16 shadow (registered), the other operand is rounded per
 * call, as in the model; the ratio is what invariance costs. */
static void bench_batch_invariant(void) {
    int shapes[][2] = {{896, 896}, {1152, 896}, {9728, 896}, {896, 4864}, {151936, 896}};
    const char *names[] = {"o_proj", "qkv", "gate+up", "down", "lm_head"};
    cuda_set_precision(CUDA_PREC_BF16);
    printf("\nbf16 GEMM                                  %9s %9s %9s %9s %7s\n", "default", "TF/s", "invariant",
           "TF/s", "ratio");
    for (int s = 0; s < 5; s++) {
        Ctx c = {0};
        c.O = shapes[s][0], c.K = shapes[s][1];
        int lm = c.O > 100000, rows = 16384;
        size_t in = c.O > c.K ? c.O : c.K; /* columns: room for either form's input and output */
        c.b = dev_rand((size_t)c.O * c.K, 0.05f);
        gpu->weights_hint(c.b, (size_t)c.O * c.K);
        /* LM head: 16k x 151936 floats of input gradient would be 10 GB
         * for a GEMM the model never runs; its chunk of 441 rows is */
        c.a = dev_rand((size_t)(lm ? 441 : rows) * in, 1.0f);
        c.c = gpu->alloc((size_t)rows * in * sizeof(float)); /* zeros, no host copy (10 GB for the LM head) */
        if (!c.a || !c.c) sync_or_die();
        for (int form = 0; form < 3; form++) {
            c.N = form == 0 ? 256 : form == 1 ? rows : lm ? 441 : rows;
            RunFn f = form < 2 ? run_gemm : run_gemm_dinp;
            double fl = 2.0 * c.N * c.K * c.O / 1e12, t[2];
            for (int inv = 0; inv <= 1; inv++) {
                cuda_set_batch_invariant(inv);
                t[inv] = time_op(f, &c, 7);
            }
            char shape[64];
            snprintf(shape, sizeof shape, "%s %s M=%d N=%d K=%d", names[s], form < 2 ? "fwd" : "dinp", c.N,
                     form < 2 ? c.O : c.K, form < 2 ? c.K : c.O);
            printf("%-42s %9.3f %9.1f %9.3f %9.1f %7.2f\n", shape, t[0] * 1e3, fl / t[0], t[1] * 1e3, fl / t[1],
                   t[1] / t[0]);
        }
        gpu->free(c.a), gpu->free(c.b), gpu->free(c.c);
    }
    printf("(ms per GEMM, median of 7; ratio = invariant / default; %ld calls fell back to cublasGemmEx)\n",
           cuda_batch_invariant_fallbacks());
    cuda_set_batch_invariant(1);
    cuda_set_precision(CUDA_PREC_FP32);
}

/* The fixed cost of a kernel: 2000 dependent launches of a 256-float
 * add, issued op by op and replayed as one CUDA graph. A decode step is
 * ~300 such launches, so this floor times 300 is what fusion can win. */
static void bench_launch_floor(void) {
    enum { OPS = 2000 };
    float *a = dev_rand(256, 1.0f), *b = dev_rand(256, 1.0f);
    uint64_t key = 0x6c61756e6368ull; /* any key no model step uses */
    double t_issue = 0, t_all = 0, t_graph = 0;
    for (int rep = 0; rep < 5; rep++) { /* the last rep's times count */
        sync_or_die();
        double t0 = now();
        for (int i = 0; i < OPS; i++) gpu->add_inplace(b, a, 256);
        t_issue = now() - t0;
        sync_or_die();
        t_all = now() - t0;
        t0 = now();
        int g = gpu->graph_begin(&key, 1, 1); /* 1: replayed; 0: recording; -1: no graph */
        if (g != 1)
            for (int i = 0; i < OPS; i++) gpu->add_inplace(b, a, 256);
        if (g == 0) gpu->graph_end();
        sync_or_die();
        t_graph = g == 1 ? now() - t0 : -1e-3 * OPS;
    }
    printf("launch floor: %d dependent 256-float adds: %.2f us each issued op by op (host %.2f us), "
           "%.2f us each in a CUDA graph\n",
           OPS, 1e6 * t_all / OPS, 1e6 * t_issue / OPS, 1e6 * t_graph / OPS);
    gpu->free(a), gpu->free(b);
}

/* The decode sampler over 256 rows of a Qwen vocabulary (temperature 1, no
 * filters: max, sum and draw passes), as bytes of logits read once. */
static void bench_sample(double bw) {
    int N = 256, V = 151936;
    float *l = dev_rand((size_t)N * V, 8.0f);
    double *hu = malloc(N * sizeof(double));
    for (int i = 0; i < N; i++) hu[i] = (i + 0.5) / N;
    double *u = gpu->alloc(N * sizeof(double));
    int32_t *tok = gpu->alloc(N * sizeof(int32_t));
    float *lp = gpu->alloc(N * sizeof(float));
    Err err;
    if (!u || !tok || !lp || cuda_upload(u, hu, N * sizeof(double), &err) != 0) sync_or_die();
    double best = 1e9;
    for (int rep = 0; rep < 7; rep++) {
        sync_or_die();
        double t0 = now();
        gpu->sample(tok, lp, l, u, N, V, 1.0f, 0, 1.0f, 0.0f);
        sync_or_die();
        if (now() - t0 < best) best = now() - t0;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "N=%d V=%d T=1", N, V);
    double gb = (double)N * V * 4 / 1e9;
    printf("%-22s %-30s %9.3f %9.1f %-6s %6.1f%%\n", "sample", shape, best * 1e3, gb / best, "GB/s",
           100.0 * gb / best / bw);
    free(hu);
    gpu->free(l), gpu->free(u), gpu->free(tok), gpu->free(lp);
}

static void row(const char *op, const char *shape, double sec, double amount, const char *unit, double ceil) {
    double rate = amount / sec;
    printf("%-22s %-30s %9.3f %9.1f %-6s %6.1f%%\n", op, shape, sec * 1e3, rate, unit, 100.0 * rate / ceil);
}

int main(void) {
    if (!cuda_available() || !(gpu = backend_cuda())) {
        printf("SKIP bench_cuda_ops: no usable CUDA device\n");
        return 0;
    }
    printf("device: %s; fp32 (cuBLAS without TF32) except the bf16 GEMM table at the end\n", cuda_device_name());
    cuda_set_precision(CUDA_PREC_FP32);
    bench_launch_floor();
    printf("%-22s %-30s %9s %9s %-6s %7s\n", "op", "shape", "ms", "rate", "unit", "of ceil");
    char shape[64];
    Ctx c = {0};

    /* ceilings */
    c.N = c.K = c.O = 8192;
    c.a = dev_rand((size_t)c.N * c.K, 1.0f), c.b = dev_rand((size_t)c.O * c.K, 1.0f);
    c.c = dev_rand((size_t)c.N * c.O, 1.0f);
    double t = time_op(run_gemm, &c, 5);
    double gemm_tf = 2.0 * c.N * c.K * c.O / t / 1e12;
    row("SGEMM (ceiling)", "8192^3", t, 2.0 * c.N * c.K * c.O / 1e12, "TF/s", gemm_tf);
    gpu->free(c.a), gpu->free(c.b), gpu->free(c.c);

    c.n = (size_t)1 << 28; /* 1 GiB per buffer */
    c.a = dev_rand(c.n, 1.0f), c.b = dev_rand(c.n, 1.0f);
    t = time_op(run_copy, &c, 9);
    double bw = 2.0 * c.n * 4 / t / 1e9;
    row("D2D copy (ceiling)", "2^28 floats", t, 2.0 * c.n * 4 / 1e9, "GB/s", bw);
    t = time_op(run_add, &c, 9);
    row("add_inplace", "2^28 floats", t, 3.0 * c.n * 4 / 1e9, "GB/s", bw);
    t = time_op(run_sumsq, &c, 9);
    row("sumsq", "2^28 floats", t, 1.0 * c.n * 4 / 1e9, "GB/s", bw);
    c.c = dev_rand(c.n, 0.1f), c.d = dev_rand(c.n, 0.1f);
    t = time_op(run_adamw, &c, 9);
    row("adamw_update", "2^28 floats", t, 7.0 * c.n * 4 / 1e9, "GB/s", bw); /* p,m,v read+write, g read */
    gpu->free(c.a), gpu->free(c.b), gpu->free(c.c), gpu->free(c.d);
    bench_sample(bw);

    /* model-shaped GEMM: Qwen2.5-1.5B MLP up/gate on 4096 tokens */
    c.N = 4096, c.K = 1536, c.O = 17920;
    c.a = dev_rand((size_t)c.N * c.K, 1.0f), c.b = dev_rand((size_t)c.O * c.K, 1.0f);
    c.c = dev_rand((size_t)c.N * c.O, 1.0f);
    t = time_op(run_gemm, &c, 5);
    row("matmul_forward", "N=4096 K=1536 O=17920", t, 2.0 * c.N * c.K * c.O / 1e12, "TF/s", gemm_tf);
    gpu->free(c.a), gpu->free(c.b), gpu->free(c.c);

    /* attention: causal FLOPs = 2 matmuls x 2 x B NH T^2 HD / 2 */
    int shapes[][5] = {{4, 1024, 12, 2, 128}, {1, 4096, 12, 2, 128}, {8, 512, 14, 2, 64}};
    for (int s = 0; s < 3; s++) {
        c.B = shapes[s][0], c.T = shapes[s][1], c.NH = shapes[s][2], c.KVH = shapes[s][3], c.HD = shapes[s][4];
        size_t nq = (size_t)c.B * c.T * c.NH * c.HD, nk = (size_t)c.B * c.T * c.KVH * c.HD;
        c.a = dev_rand(nq, 1.0f), c.b = dev_rand(nk, 1.0f), c.c = dev_rand(nk, 1.0f);
        c.d = dev_rand(nq, 1.0f), c.e = dev_rand((size_t)c.B * c.NH * c.T, 1.0f);
        c.f = dev_rand(nq, 1.0f), c.g = dev_rand(nk, 1.0f), c.h = dev_rand(nk, 1.0f);
        double fl = 2.0 * c.B * c.NH * (double)c.T * c.T * c.HD;
        snprintf(shape, sizeof shape, "B%d T%d NH%d KVH%d HD%d", c.B, c.T, c.NH, c.KVH, c.HD);
        t = time_op(run_att_fwd, &c, 5);
        row("attention_forward", shape, t, fl / 1e12, "TF/s", gemm_tf);
        t = time_op(run_att_bwd, &c, 5);
        row("attention_backward", shape, t, 2.5 * fl / 1e12, "TF/s", gemm_tf);
        gpu->free(c.a), gpu->free(c.b), gpu->free(c.c), gpu->free(c.d), gpu->free(c.e), gpu->free(c.f);
        gpu->free(c.g), gpu->free(c.h);
    }

    /* LM head over a Qwen vocabulary */
    c.N = 2048, c.K = 1536, c.O = 151936;
    c.a = dev_rand((size_t)c.N * c.K, 1.0f), c.b = dev_rand((size_t)c.O * c.K, 0.05f);
    c.c = dev_rand(c.N, 1.0f), c.d = dev_rand(c.N, 1.0f), c.e = dev_rand((size_t)c.N * c.K, 1.0f);
    c.f = dev_rand((size_t)c.O * c.K, 1.0f);
    int32_t *ids = malloc(c.N * sizeof(int32_t));
    for (int i = 0; i < c.N; i++) ids[i] = (i * 7919) % c.O;
    c.ids = gpu->alloc(c.N * sizeof(int32_t));
    Err err;
    cuda_upload(c.ids, ids, c.N * sizeof(int32_t), &err);
    snprintf(shape, sizeof shape, "N=%d C=%d V=%d", c.N, c.K, c.O);
    t = time_op(run_lm_fwd, &c, 5);
    row("lm_head fwd", shape, t, 2.0 * c.N * c.K * c.O / 1e12, "TF/s", gemm_tf);
    t = time_op(run_lm_bwd, &c, 5);
    row("lm_head bwd", shape, t, 6.0 * c.N * c.K * c.O / 1e12, "TF/s", gemm_tf); /* logits, dx, dw */
    /* embedding backward: rows walked in order per column (deterministic);
     * bytes = dout read + table rows read and written */
    snprintf(shape, sizeof shape, "N=%d C=%d", c.N, c.K);
    t = time_op(run_emb_bwd, &c, 5);
    row("embedding_backward", shape, t, 3.0 * c.N * c.K * 4 / 1e9, "GB/s", bw);
    free(ids);
    gpu->free(c.a), gpu->free(c.b), gpu->free(c.c), gpu->free(c.d), gpu->free(c.e), gpu->free(c.f);
    gpu->free(c.ids);

    bench_batch_invariant();
    return 0;
}
