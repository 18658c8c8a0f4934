/* Whole-model throughput on one GPU at a named shape with random weights:
 * training tokens/s (forward + backward + AdamW over B x T), generation
 * tokens/s (S sequences, P-token prompts, M new tokens each, sampling at
 * temperature 1 without filters, continuous batching), the gap between the
 * log-probs the sampler reported and the ones the trainer's forward
 * computes for the same tokens, and peak device memory. Prints one JSON
 * line at the end (bench/cuda/bench_cuda.sh compares it with PyTorch).
 *
 * usage: bench_cuda_model [--shape NAME] [--precision bf16|fp32] [-B 16]
 *        [-T 1024] [--steps 3] [-S 256] [-P 128] [-M 256] [--prefill-chunk N]
 *        [--kv-block N --kv-tokens N] (a paged KV cache: blocks of N positions,
 *        a pool of N positions; sequences beyond it are preempted)
 *        [--recompute]
 *        [--no-train] [--no-gen] [--profile] [--att-block ROWS]
 *        [--ncu-steps A:B] [--ncu-train] [--lm-chunk ROWS] [--checksum]
 * Training steps are timed after warm-up steps: one, then more while the
 * batch-invariant GEMM tuner is still timing candidates (at most 16;
 * exactly one with --checksum).
 * --checksum prints a hash of the sampled tokens and their log-probs and
 * one of the weights after the training steps, to check that a change
 * meant to keep every bit (a fused kernel, a copy saved) does: two builds
 * must print the same lines.
 * --ncu-steps A:B opens the profiler window (cudaProfilerStart) once every
 * sequence has A new tokens and closes it at B, so that
 * `ncu --profile-from-start off` times the kernels of decode steps A..B
 * of the measured generation only; --ncu-train opens it for the last
 * training step. --lm-chunk sets the LM head's rows per logits chunk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/backend_cuda.h"
#include "backend/profile.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/rng.h"
#include "dist/dist.h"
#include "gen/generate.h"
#include "model/model.h"
#include "model/shapes.h"
#include "train/optim.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --ncu-steps: counts sampled tokens and opens/closes the window */
typedef struct NcuWin {
    long seen, from, to; /* tokens */
} NcuWin;

static void ncu_on_token(void *user, int req, int32_t tok, float logp) {
    (void)req, (void)tok, (void)logp;
    NcuWin *w = user;
    w->seen++;
    if (w->seen == w->from) cuda_profiler_window(1);
    if (w->seen == w->to) cuda_profiler_window(0);
}

static int fail(const char *what, Err *err) {
    fprintf(stderr, "bench_cuda_model: %s: %s\n", what, err->msg);
    return 1;
}

static int g_ncu_train; /* --ncu-train */

#define WARMUP_MAX 16
/* median seconds of `steps` training steps after the warm-up: one step,
 * then more while the GEMM tuner is still timing candidates (its first
 * calls of a shape wait for each timing and run slower algorithms), at
 * most WARMUP_MAX (with settle; without, one step, so that the weights
 * after the run are those of a fixed number of steps); *warm says how
 * many, *tuning how many row-count buckets were still being tuned when the
 * timed steps began */
static int bench_train(Model *m, int B, int T, int steps, int recompute, int settle, double *sec, int *warm,
                       int *tuning, Err *err) {
    Acts a;
    AdamW opt;
    /* the logits kept for the backward, as the trainers keep them where the
     * memory plan leaves room (MemPlanInput.keep_logits) */
    if (model_alloc_grads(m, err) || acts_create(&a, m, B, T, recompute, err) || acts_keep_logits(&a, m, err) ||
        adamw_create(&opt, m, 0.9f, 0.999f, 1e-8f, 0.0f, err))
        return -1;
    int N = B * T;
    int32_t *ids = malloc(N * sizeof(int32_t));
    float *dl = malloc(N * sizeof(float));
    Rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(rng_u64(&r) % m->cfg.vocab_size);
    for (int i = 0; i < N; i++) dl[i] = (i % T == T - 1) ? 0.0f : -1.0f / (B * (T - 1));
    double times[64];
    int n = 0, rc = 0, w = 0;
    if (steps > 63) steps = 63;
    for (int s = 0; s <= steps; s++) {
        double t0 = clock_seconds();
        if (g_ncu_train && s == steps) cuda_profiler_window(1);
        model_zero_grads(m);
        if (model_forward(m, &a, ids, B, T, 1.0f, NULL, err) != 0) {
            rc = -1;
            break;
        }
        model_backward(m, &a, dl);
        adamw_clip_grad_norm(&opt, m, 1.0); /* waits for the device (returns the norm); the trainers' path */
        adamw_step(&opt, m, 1e-5f);
        if (cuda_check(err) != 0) {
            rc = -1;
            break;
        }
        if (g_ncu_train && s == steps) cuda_profiler_window(0);
        if (s == 0) { /* warming up */
            *tuning = cuda_batch_invariant_tuning();
            if (++w < WARMUP_MAX && settle && *tuning > 0) s--;
            continue;
        }
        times[n++] = clock_seconds() - t0;
    }
    *warm = w;
    if (!rc) {
        qsort(times, n, sizeof *times, cmp_d);
        *sec = times[n / 2];
    }
    free(ids);
    free(dl);
    acts_free(&a, m);
    adamw_free(&opt, m);
    return rc;
}

int main(int argc, char **argv) {
    const char *shape = "qwen2.5-0.5b", *prec = "bf16";
    int B = 16, T = 1024, steps = 3, S = 256, P = 128, M = 256, recompute = 0, do_train = 1, do_gen = 1, profile = 0, ncu_a = -1, ncu_b = -1, chunk = 0, kv_block = 0, kv_tokens = 0, checksum = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--shape") && v) shape = v, i++;
        else if (!strcmp(a, "--precision") && v) prec = v, i++;
        else if (!strcmp(a, "-B") && v) B = atoi(v), i++;
        else if (!strcmp(a, "-T") && v) T = atoi(v), i++;
        else if (!strcmp(a, "--steps") && v) steps = atoi(v), i++;
        else if (!strcmp(a, "-S") && v) S = atoi(v), i++;
        else if (!strcmp(a, "-P") && v) P = atoi(v), i++;
        else if (!strcmp(a, "-M") && v) M = atoi(v), i++;
        else if (!strcmp(a, "--prefill-chunk") && v) chunk = atoi(v), i++;
        else if (!strcmp(a, "--kv-block") && v) kv_block = atoi(v), i++;
        else if (!strcmp(a, "--kv-tokens") && v) kv_tokens = atoi(v), i++;
        else if (!strcmp(a, "--recompute")) recompute = 1;
        else if (!strcmp(a, "--no-train")) do_train = 0;
        else if (!strcmp(a, "--no-gen")) do_gen = 0;
        else if (!strcmp(a, "--checksum")) checksum = 1;
        else if (!strcmp(a, "--ncu-train")) g_ncu_train = 1;
        else if (!strcmp(a, "--profile")) profile = 1;
        else if (!strcmp(a, "--ncu-steps") && v && sscanf(v, "%d:%d", &ncu_a, &ncu_b) == 2) i++;
        else if (!strcmp(a, "--att-block") && v) cuda_set_attention_block_rows(atoi(v)), i++;
        else if (!strcmp(a, "--lm-chunk") && v) cuda_set_lm_head_chunk(atoi(v)), i++;
        else {
            fprintf(stderr, "usage: bench_cuda_model [--shape NAME] [--precision bf16|fp32] [-B N] [-T N] [--steps N]\n"
                            "       [-S seqs] [-P prompt] [-M new] [--prefill-chunk N] [--kv-block N --kv-tokens N]\n"
                            "       [--recompute] [--no-train] [--no-gen] [--profile] [--att-block ROWS] [--ncu-steps A:B]\n"
                            "       [--ncu-train] [--lm-chunk ROWS] [--checksum]\n");
            return 2;
        }
    }
    if (B < 1 || T < 2 || S < 1 || P < 1 || M < 1 || steps < 1) {
        fprintf(stderr, "bench_cuda_model: sizes must be positive (T >= 2)\n");
        return 2;
    }
    /* --profile: every op waits for the device, so the per-op table is
     * device time plus launch; the wall time is then the sum of them */
    if (profile) setenv("R1C_CUDA_SYNC", "1", 1);
    if (!cuda_available()) {
        printf("bench_cuda_model: not measured: no usable CUDA device\n");
        return 0;
    }
    CudaPrecision cp;
    if (cuda_precision_parse(prec, &cp) != 0) {
        fprintf(stderr, "bench_cuda_model: --precision %s: expected bf16 or fp32\n", prec);
        return 2;
    }
    cuda_set_precision(cp);
    Err err = {{0}};
    ModelConfig cfg;
    Model m;
    if (model_shape(&cfg, shape, &err) != 0) return fail("shape", &err);
    if (model_create(&m, &cfg, profile ? backend_profiled(backend_cuda()) : backend_cuda(), &err) != 0 || model_init_random(&m, 1, 0.02f, &err) != 0)
        return fail("model", &err);
    printf("%s, shape %s (%.2fB parameters), %s GEMMs\n", cuda_device_name(), shape, m.n_floats / 1e9, prec);
    fflush(stdout);
    double gen_tok_s = 0, train_tok_s = 0, lp_max = -1, lp_mean = -1;
    size_t peak_gen = 0, peak_train = 0;
    if (do_gen) {
        GenRequest *req = calloc(S, sizeof *req);
        GenOutput *out = calloc(S, sizeof *out);
        int32_t *prompts = malloc((size_t)S * P * sizeof(int32_t));
        Rng r;
        rng_seed(&r, 2);
        for (int i = 0; i < S * P; i++) prompts[i] = (int32_t)(rng_u64(&r) % cfg.vocab_size);
        for (int b = 0; b < S; b++) req[b] = (GenRequest){prompts + (size_t)b * P, P, (uint64_t)b};
        GenConfig gc = {.sampling = {.temperature = 1.0f, .top_p = 1.0f}, .max_new_tokens = M, .max_batch = S, .prefill_chunk = chunk,
                        .seed = 7, .ignore_eos = 1, .kv_block = kv_block, .kv_tokens = kv_tokens};
        GenConfig warm = gc;
        warm.max_new_tokens = 2;
        if (gen_run(&m, req, S, &warm, out, NULL, &err) != 0 || cuda_check(&err) != 0) return fail("generate", &err);
        gen_outputs_free(out, S);
        cuda_mem_reset_peak();
        if (profile) backend_profile_reset();
        NcuWin win = {0, (long)S * ncu_a, (long)S * ncu_b};
        if (ncu_a >= 0) gc.on_token = ncu_on_token, gc.user = &win;
        GenStats st;
        double t0 = clock_seconds();
        if (gen_run(&m, req, S, &gc, out, &st, &err) != 0 || cuda_check(&err) != 0) return fail("generate", &err);
        double dt = clock_seconds() - t0;
        cuda_mem_info(NULL, &peak_gen, NULL);
        gen_tok_s = (double)S * M / dt;
        printf("generate: %d x (%d prompt + %d new) tokens in %.2f s: %.0f new tokens/s, peak %.1f GB\n", S, P, M, dt,
               gen_tok_s, peak_gen / 1e9);
        if (st.steps > 0)
            printf("generate: %lld steps, %.2f ms each: %.2f ms issuing on the host, %.2f ms waiting for the device\n",
                   (long long)st.steps, 1e3 * dt / st.steps, 1e3 * st.issue_seconds / st.steps,
                   1e3 * st.wait_seconds / st.steps);
        if (st.prefill_steps > 0)
            printf("generate: %lld steps with prompt tokens, %.2f ms each\n", (long long)st.prefill_steps,
                   1e3 * st.prefill_step_seconds / st.prefill_steps);
        if (kv_block > 0)
            printf("generate: paged KV cache, blocks of %d, peak %lld positions in use, %lld preemptions\n", kv_block,
                   (long long)st.kv_peak_tokens, (long long)st.preemptions);
        long g_rec = 0, g_rep = 0;
        cuda_graph_stats(&g_rec, &g_rep);
        printf("generate: CUDA graphs recorded %ld, replayed %ld\n", g_rec, g_rep);
        if (profile) {
            printf("time per op while generating (each op synchronised):\n");
            backend_profile_report(stdout);
            backend_profile_reset();
        }
        if (checksum) {
            /* the sampled tokens and their log-probs' bits: a decode change
             * meant to keep every bit must print the same line */
            uint64_t h = 1469598103934665603ull; /* the seed of the hashes recorded in bench/RESULTS.md */
            for (int b = 0; b < S; b++)
                for (int i = 0; i < out[b].n; i++) {
                    h = hash_fnv1a(h, &out[b].tokens[i], sizeof out[b].tokens[i]);
                    h = hash_fnv1a(h, &out[b].logp[i], sizeof out[b].logp[i]);
                }
            printf("generate: tokens and log-probs: FNV-1a %016llx\n", (unsigned long long)h);
        }
        fflush(stdout);
        /* sampler vs trainer: the first sequences again through the forward */
        int nchk = S < 8 ? S : 8, L = P + M;
        Acts a;
        if (acts_create(&a, &m, 1, L, 0, &err) != 0) return fail("acts", &err);
        int32_t *ids = malloc(L * sizeof(int32_t));
        double sum = 0;
        long cnt = 0;
        lp_max = 0;
        for (int b = 0; b < nchk; b++) {
            memcpy(ids, req[b].prompt, P * sizeof(int32_t));
            memcpy(ids + P, out[b].tokens, (size_t)out[b].n * sizeof(int32_t));
            if (model_forward(&m, &a, ids, 1, P + out[b].n, 1.0f, NULL, &err) != 0) return fail("forward", &err);
            for (int i = 0; i < out[b].n; i++) {
                double d = a.logp[P - 1 + i] - out[b].logp[i];
                d = d < 0 ? -d : d;
                if (d > lp_max) lp_max = d;
                sum += d;
                cnt++;
            }
        }
        lp_mean = cnt ? sum / cnt : 0;
        printf("sampler vs trainer log-prob over %ld tokens: max |d| %.2e, mean %.2e\n", cnt, lp_max, lp_mean);
        free(ids);
        acts_free(&a, &m);
        gen_outputs_free(out, S);
        free(req);
        free(out);
        free(prompts);
        cuda_trim();
    }
    if (do_train) {
        cuda_mem_reset_peak();
        if (profile) backend_profile_reset();
        double sec = 0;
        int warm = 0, tuning = 0;
        /* --checksum: a fixed step count, so that builds compare */
        if (bench_train(&m, B, T, steps, recompute, !checksum, &sec, &warm, &tuning, &err) != 0)
            return fail("train", &err);
        cuda_mem_info(NULL, &peak_train, NULL);
        train_tok_s = B * T / sec;
        if (profile) {
            printf("time per op over %d training steps (each op synchronised):\n", steps + warm);
            backend_profile_report(stdout);
        }
        /* 6 flops per parameter per token (embedding lookups included, an
         * upper bound), plus attention's 12 * L * T * C per token */
        double flops = 6.0 * m.n_floats + 12.0 * cfg.n_layers * T * cfg.n_heads * cfg.head_dim / 2;
        printf("train: %d x %d tokens, %.3f s/step: %.0f tokens/s, %.0f TFLOP/s, peak %.1f GB\n", B, T, sec,
               train_tok_s, train_tok_s * flops / 1e12, peak_train / 1e9);
        printf("train: median of %d steps after %d warm-up step%s%s\n", steps, warm, warm == 1 ? "" : "s",
               tuning ? " (GEMM tuning still timing candidates in them)" : " (GEMM tuning settled)");
        /* the trained weights' bits: two builds that claim the same
         * arithmetic must print the same */
        if (checksum)
            printf("train: weights after %d steps: FNV-1a %016llx\n", steps + 1,
                   (unsigned long long)dist_weights_hash(&m));
    }
    printf("{\"shape\": \"%s\", \"precision\": \"%s\", \"gen_tok_s\": %.1f, \"train_tok_s\": %.1f, "
           "\"logp_max\": %.3g, \"logp_mean\": %.3g, \"peak_gen_gb\": %.2f, \"peak_train_gb\": %.2f}\n",
           shape, prec, gen_tok_s, train_tok_s, lp_max, lp_mean, peak_gen / 1e9, peak_train / 1e9);
    model_free(&m);
    return 0;
}
