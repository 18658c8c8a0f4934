/* Model benchmark: training tokens/s (forward + backward + AdamW) and
 * sampling tokens/s at batch 1 and 16 for a named shape with random
 * weights, next to PyTorch + transformers on the CPU running the same
 * shapes in the same run (bench/torch_baseline.py), as ratios. Batch-1
 * decode is also reported as a fraction of this machine's memory
 * bandwidth (every decoded token reads all weights once).
 *
 * usage: bench_model [--shape tiny|qwen2.5-0.5b|...] [--threads N]
 *                    [--no-torch]   (defaults: tiny, all cores) */
#include "base/clock.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/blas.h"
#include "backend/profile.h"
#include "gen/generate.h"
#include "model/model.h"
#include "model/shapes.h"
#include "train/optim.h"

static double now_s(void) { return clock_seconds(); }

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Read bandwidth: sum a buffer much larger than the caches. */
static double read_bandwidth_gbs(void) {
    size_t n = (size_t)256 << 20; /* floats: 1 GiB */
    float *buf = malloc(n * sizeof(float));
    if (!buf) return 0;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s(), s = 0;
        /* 16 float lanes per thread so the loop is load-bound, not add-bound */
#pragma omp parallel reduction(+ : s)
        {
            float acc[16] = {0};
#pragma omp for schedule(static)
            for (size_t i = 0; i < n; i += 16)
#pragma omp simd
                for (int u = 0; u < 16; u++) acc[u] += buf[i + u];
            for (int u = 0; u < 16; u++) s += acc[u];
        }
        double dt = now_s() - t0;
        if (s < 0) printf("impossible\n");
        double gbs = n * sizeof(float) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

typedef struct Dims {
    int B, T, steps, M;
} Dims;

static double bench_train(Model *m, Dims d) {
    Err err = {{0}};
    Acts a;
    AdamW opt;
    if (model_alloc_grads(m, &err) || acts_create(&a, m, d.B, d.T, 0, &err) ||
        adamw_create(&opt, m, 0.9f, 0.999f, 1e-8f, 0.0f, &err)) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 0;
    }
    int N = d.B * d.T;
    int32_t *ids = malloc(N * sizeof(int32_t));
    float *dl = malloc(N * sizeof(float));
    Rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(rng_u64(&r) % m->cfg.vocab_size);
    for (int i = 0; i < N; i++) dl[i] = (i % d.T == d.T - 1) ? 0.0f : -1.0f / (d.B * (d.T - 1));
    double times[64];
    int n = 0;
    for (int s = 0; s <= d.steps; s++) {
        double t0 = now_s();
        model_zero_grads(m);
        model_forward(m, &a, ids, d.B, d.T, 1.0f, NULL, &err);
        model_backward(m, &a, dl);
        optim_clip_grad_norm(m, 0);
        adamw_step(&opt, m, 1e-5f);
        if (s > 0) times[n++] = now_s() - t0;
    }
    qsort(times, n, sizeof *times, cmp_d);
    free(ids);
    free(dl);
    acts_free(&a, m);
    adamw_free(&opt, m);
    return N / times[n / 2];
}

static double bench_sample(Model *m, int batch, int P, int M) {
    Err err = {{0}};
    GenRequest *req = calloc(batch, sizeof *req);
    GenOutput *out = calloc(batch, sizeof *out);
    int32_t *prompts = malloc((size_t)batch * P * sizeof(int32_t));
    Rng r;
    rng_seed(&r, 2);
    for (int i = 0; i < batch * P; i++) prompts[i] = (int32_t)(rng_u64(&r) % m->cfg.vocab_size);
    for (int b = 0; b < batch; b++) req[b] = (GenRequest){prompts + (size_t)b * P, P, (uint64_t)b};
    GenConfig cfg = {.sampling = {.temperature = 1.0f, .top_p = 1.0f}, .max_new_tokens = M, .max_batch = batch,
                     .seed = 7, .ignore_eos = 1};
    GenStats st;
    /* warm-up (page in weights), then the timed run; PyTorch's timing
     * includes its prefill too, so ours does */
    gen_run(m, req, batch, &(GenConfig){.sampling = cfg.sampling, .max_new_tokens = 2, .max_batch = batch, .ignore_eos = 1},
            out, NULL, &err);
    gen_outputs_free(out, batch);
    double t0 = now_s();
    if (gen_run(m, req, batch, &cfg, out, &st, &err) != 0) fprintf(stderr, "bench_model: %s\n", err.msg);
    double dt = now_s() - t0;
    gen_outputs_free(out, batch);
    free(req);
    free(out);
    free(prompts);
    return (double)batch * M / dt;
}

int main(int argc, char **argv) {
    const char *shape = "tiny";
    int threads = 0, torch = 1, profile = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--profile")) profile = 1, torch = 0;
        else {
            fprintf(stderr, "usage: bench_model [--shape NAME] [--threads N] [--no-torch] [--profile]\n");
            return 2;
        }
    }
    if (threads > 0) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
    Err err = {{0}};
    ModelConfig cfg;
    if (model_shape(&cfg, shape, &err) != 0) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 2;
    }
    int big = cfg.vocab_size > 50000;
    Dims d = big ? (Dims){1, 256, 3, 16} : (Dims){4, 256, 5, 64};
    const int P = 32;
    Model m;
    if (model_create(&m, &cfg, profile ? backend_profiled(backend_cpu()) : backend_cpu(), &err) != 0) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    if (model_init_random(&m, 1, 0.02f, &err) != 0) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    printf("shape %s: %.1fM parameters, %d threads, OpenBLAS core %s\n", shape, m.n_floats / 1e6, threads,
           blas_core_name());
    if (profile) { /* time the ops of training steps only */
        double tr = bench_train(&m, d);
        printf("train %.1f tokens/s; time per op over %d steps:\n", tr, d.steps + 1);
        backend_profile_report(stdout);
        model_free(&m);
        return 0;
    }
    double bw = read_bandwidth_gbs();
    double s1 = bench_sample(&m, 1, P, d.M);
    double s16 = bench_sample(&m, 16, P, d.M);
    double tr = bench_train(&m, d);
    double frac = s1 * m.n_floats * 4.0 / 1e9 / bw;
    double t_tr = 0, t_s1 = 0, t_s16 = 0;
    char why[256] = "";
    if (torch) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "python3 bench/torch_baseline.py --shape %s --threads %d -B %d -T %d --steps %d -P %d -M %d 2>&1",
                 shape, threads, d.B, d.T, d.steps, P, d.M);
        FILE *fp = popen(cmd, "r");
        char line[4096];
        while (fp && fgets(line, sizeof line, fp)) {
            char *p;
            if ((p = strstr(line, "\"train_tok_s\": "))) t_tr = atof(p + 15);
            if ((p = strstr(line, "\"sample_tok_s_b1\": "))) t_s1 = atof(p + 19);
            if ((p = strstr(line, "\"sample_tok_s_b16\": "))) t_s16 = atof(p + 20);
            if (strstr(line, "Error") || strstr(line, "No module")) snprintf(why, sizeof why, "%.200s", line);
        }
        if (fp) pclose(fp);
        if (t_tr <= 0 && !why[0]) snprintf(why, sizeof why, "bench/torch_baseline.py printed no result\n");
    } else snprintf(why, sizeof why, "--no-torch\n");
    printf("%-34s %12s %12s %8s\n", "tokens/s", "r1c", "pytorch", "ratio");
#define ROW(name, a, b)                                                                                           \
    do {                                                                                                          \
        if ((b) > 0) printf("%-34s %12.1f %12.1f %7.2fx\n", name, a, b, (a) / (b));                               \
        else printf("%-34s %12.1f %12s %8s\n", name, a, "-", "-");                                                \
    } while (0)
    char lbl[96];
    snprintf(lbl, sizeof lbl, "train (fwd+bwd+AdamW, %dx%d)", d.B, d.T);
    ROW(lbl, tr, t_tr);
    snprintf(lbl, sizeof lbl, "sample batch 1 (P=%d, %d new)", P, d.M);
    ROW(lbl, s1, t_s1);
    snprintf(lbl, sizeof lbl, "sample batch 16 (P=%d, %d new)", P, d.M);
    ROW(lbl, s16, t_s16);
    if (why[0]) printf("pytorch baseline not measured: %s", why);
    printf("batch-1 decode: %.1f tok/s x %.0f MB of fp32 weights = %.1f GB/s = %.0f%% of measured read bandwidth "
           "%.1f GB/s\n", s1, m.n_floats * 4.0 / 1e6, s1 * m.n_floats * 4.0 / 1e9, 100 * frac, bw);
    model_free(&m);
    return 0;
}
