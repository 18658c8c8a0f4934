/* The transformer against HF transformers fixtures (through `r1c forward`),
 * and its internal consistency: recompute == saved activations, sampler
 * log-probs == training forward, save/load round trips, accumulation. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "shell.h"
#include "gen/generate.h"
#include "model/model.h"
#include "train/optim.h"

#define FIX "tests/fixtures/models"
static const char *R1C = "build/r1c"; /* R1C_BIN overrides (the SAN build) */

static double max_abs_diff(const StTensor *a, const StTensor *b) {
    if (a->numel != b->numel || a->dtype != ST_DTYPE_F32 || b->dtype != ST_DTYPE_F32) return INFINITY;
    const float *x = (const float *)a->data, *y = (const float *)b->data;
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = fabs((double)x[i] - y[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static double rel_err(const StTensor *a, const StTensor *b) {
    if (a->numel != b->numel) return INFINITY;
    const float *x = (const float *)a->data, *y = (const float *)b->data;
    double num = 0, den = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        den += (double)y[i] * y[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

static void test_parity(const char *name, int recompute) {
    char cmd[1024], out[256], dir[256];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    snprintf(out, sizeof out, "/tmp/r1c-parity-%d-%s.safetensors", (int)getpid(), name);
    snprintf(cmd, sizeof cmd, "%s forward --model %s --input %s/input.json --out %s --grad %s", R1C, dir, dir, out,
             recompute ? "--recompute" : "");
    CHECKF(system(cmd) == 0, "%s", cmd);
    StFile got, exp;
    Err err = {{0}};
    char ep[300];
    snprintf(ep, sizeof ep, "%s/expected.safetensors", dir);
    if (st_open(&got, out, &err) != 0 || st_open(&exp, ep, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    double e_logits = max_abs_diff(st_find(&got, "logits"), st_find(&exp, "logits"));
    double e_tlp = max_abs_diff(st_find(&got, "token_logp"), st_find(&exp, "token_logp"));
    double e_loss = max_abs_diff(st_find(&got, "loss"), st_find(&exp, "loss"));
    CHECKF(e_logits <= 1e-4, "%s: logits max abs err %g", name, e_logits);
    CHECKF(e_tlp <= 1e-4, "%s: token_logp max abs err %g", name, e_tlp);
    CHECKF(e_loss <= 1e-4, "%s: loss err %g", name, e_loss);
    int n_grads = 0;
    double worst = 0;
    for (int i = 0; i < exp.n_tensors; i++) {
        const StTensor *t = &exp.tensors[i];
        if (strncmp(t->name, "grad.", 5) != 0) continue;
        const StTensor *g = st_find(&got, t->name);
        CHECKF(g != NULL, "%s: r1c wrote no %s", name, t->name);
        if (!g) continue;
        double r = rel_err(g, t);
        if (r > worst) worst = r;
        CHECKF(r <= 1e-3, "%s: %s relative error %g", name, t->name, r);
        n_grads++;
    }
    printf("%-14s%s logits %.2e  token_logp %.2e  grads %2d worst rel %.2e\n", name, recompute ? " (recompute)" : "",
           e_logits, e_tlp, n_grads, worst);
    st_close(&got);
    st_close(&exp);
    unlink(out);
}

/* A fixture model on the CPU backend; 0 (a failed check) when it does not load. */
static int load_cpu(Model *m, const char *name, Err *err) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    int ok = model_load(m, dir, backend_cpu(), err) == 0;
    CHECKF(ok, "%s: %s", name, err->msg);
    return ok;
}

/* Tokens sampled by the engine, scored again by the training forward. */
static void test_sampler_matches_forward(void) {
    Model m;
    Err err = {{0}};
    if (!load_cpu(&m, "qwen3", &err)) return;
    const int32_t p0[] = {5, 17, 99, 3}, p1[] = {64, 2, 7, 8, 9, 10, 11};
    GenRequest req[4] = {{p0, 4, 0}, {p1, 7, 1}, {p0, 4, 2}, {p1, 7, 3}};
    GenOutput out[4];
    GenConfig cfg = {.sampling = {.temperature = 0.7f, .top_p = 0.9f}, .max_new_tokens = 20, .max_batch = 3, .seed = 11};
    CHECK(gen_run(&m, req, 4, &cfg, out, NULL, &err) == 0);
    double worst = 0;
    for (int r = 0; r < 4; r++) {
        int P = req[r].prompt_len, T = P + out[r].n;
        int32_t *ids = malloc(T * sizeof(int32_t));
        memcpy(ids, req[r].prompt, P * sizeof(int32_t));
        memcpy(ids + P, out[r].tokens, out[r].n * sizeof(int32_t));
        Acts a;
        CHECK(acts_create(&a, &m, 1, T, 0, &err) == 0);
        CHECK(model_forward(&m, &a, ids, 1, T, 0.7f, NULL, &err) == 0);
        for (int i = 0; i < out[r].n; i++) {
            double d = fabs((double)a.logp[P - 1 + i] - out[r].logp[i]);
            if (d > worst) worst = d;
        }
        acts_free(&a, &m);
        free(ids);
    }
    CHECKF(worst <= 1e-5, "sampler vs trainer log-prob max diff %g", worst);
    printf("sampler vs trainer log-prob max abs diff: %.2e\n", worst);
    /* prefix sharing (requests 2, 3 copy the prompt rows of 0, 1) gives the
     * tokens and log-probs of prefilling every prompt separately */
    GenOutput out3[4];
    GenStats st1, st0;
    CHECK(gen_run(&m, req, 4, &cfg, out3, &st1, &err) == 0);
    GenConfig nos = cfg;
    nos.no_prefix_sharing = 1;
    GenOutput out4[4];
    CHECK(gen_run(&m, req, 4, &nos, out4, &st0, &err) == 0);
    CHECKF(st1.shared_prefix_tokens > 0 && st0.shared_prefix_tokens == 0, "shared %lld / %lld",
           (long long)st1.shared_prefix_tokens, (long long)st0.shared_prefix_tokens);
    CHECK(st1.prefill_tokens + st1.shared_prefix_tokens == st0.prefill_tokens);
    /* the step accounting: 3 slots take requests 0-2 in the first step
     * and request 3 in the step after one of them finishes */
    int64_t sampled = 0;
    for (int r = 0; r < 4; r++) sampled += out4[r].n;
    CHECKF(st0.prefill_steps == 2 && st0.decode_tokens == sampled && st0.steps > 2, "%lld steps, %lld with prompts",
           (long long)st0.steps, (long long)st0.prefill_steps);
    CHECK(st0.issue_seconds > 0 && st0.wait_seconds == 0 && st0.issue_seconds <= st0.seconds);
    CHECK(st0.prefill_step_seconds > 0 && st0.prefill_step_seconds < st0.issue_seconds);
    for (int r = 0; r < 4; r++) {
        CHECK(out3[r].n == out4[r].n && !memcmp(out3[r].tokens, out4[r].tokens, out3[r].n * sizeof(int32_t)));
        for (int i = 0; i < out3[r].n && i < out4[r].n; i++) CHECK_NEAR(out3[r].logp[i], out4[r].logp[i], 1e-5);
    }
    gen_outputs_free(out3, 4);
    gen_outputs_free(out4, 4);
    /* same seed -> same tokens, whatever the batch size */
    GenOutput out2[4];
    cfg.max_batch = 1;
    CHECK(gen_run(&m, req, 4, &cfg, out2, NULL, &err) == 0);
    for (int r = 0; r < 4; r++) {
        CHECK(out2[r].n == out[r].n && !memcmp(out2[r].tokens, out[r].tokens, out[r].n * sizeof(int32_t)));
    }
    gen_outputs_free(out, 4);
    gen_outputs_free(out2, 4);
    /* identical prompts with different streams differ (a hot temperature:
     * this tiny random model is very peaked) */
    cfg.sampling.temperature = 3.0f;
    CHECK(gen_run(&m, req, 4, &cfg, out, NULL, &err) == 0);
    CHECK(memcmp(out[0].tokens, out[2].tokens, 20 * sizeof(int32_t)) != 0);
    gen_outputs_free(out, 4);
    /* greedy: argmax at every step, and stop ids end a sequence */
    int32_t stop = 0;
    GenConfig g = {.sampling = {.temperature = 0}, .max_new_tokens = 8, .max_batch = 2, .seed = 1};
    CHECK(gen_run(&m, req, 1, &g, out, NULL, &err) == 0);
    stop = out[0].tokens[2];
    g.stop_ids = &stop;
    g.n_stop_ids = 1;
    CHECK(gen_run(&m, req, 1, &g, out2, NULL, &err) == 0);
    int first = 0;
    while (out[0].tokens[first] != stop) first++;
    CHECK(out2[0].n == first + 1 && out2[0].finish == GEN_FINISH_STOP);
    CHECK(out[0].finish == GEN_FINISH_LENGTH && out[0].n == 8);
    gen_outputs_free(out, 1);
    gen_outputs_free(out2, 1);
    model_free(&m);
}

/* A backend's `sample` op without filters, on host memory: the CPU
 * sampler's arithmetic for temperature > 0 given the row's uniform, so
 * gen_run's device-sampling path (uniforms up, ids and log-probs down in
 * one block) can run on the CPU and be compared with the host path. */
static void host_sample_op(int32_t *tok, float *logp, const float *logits, const double *u, int N, int V,
                           float temperature, int top_k, float top_p, float min_p) {
    (void)top_k, (void)top_p, (void)min_p;
    float inv_t = 1.0f / temperature;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float mx = -INFINITY;
        int32_t arg = 0;
        for (int j = 0; j < V; j++)
            if (l[j] > mx) mx = l[j], arg = j;
        float zmax = mx * inv_t;
        double sum = 0;
        for (int j = 0; j < V; j++) sum += expf(l[j] * inv_t - zmax);
        float lse = zmax + (float)log(sum);
        double tot = 0;
        for (int j = 0; j < V; j++) tot += expf(l[j] * inv_t - zmax);
        double target = u[n] * tot, c = 0;
        int32_t t = arg;
        for (int j = 0; j < V; j++) {
            c += expf(l[j] * inv_t - zmax);
            t = j;
            if (target < c) break;
        }
        tok[n] = t;
        logp[n] = l[t] * inv_t - lse;
    }
}

static void test_device_sampling_path(void) {
    Model m;
    Err err = {{0}};
    if (!load_cpu(&m, "qwen2", &err)) return;
    const int32_t p0[] = {5, 17, 99, 3}, p1[] = {64, 2, 7, 8, 9, 10, 11};
    GenRequest req[5] = {{p0, 4, 0}, {p1, 7, 1}, {p0, 4, 2}, {p1, 7, 3}, {p1, 3, 4}};
    GenConfig cfg = {.sampling = {.temperature = 1.3f, .top_p = 1.0f}, .max_new_tokens = 12, .max_batch = 3, .seed = 5};
    GenOutput host[5], dev[5];
    CHECK(gen_run(&m, req, 5, &cfg, host, NULL, &err) == 0);
    Backend be = *backend_cpu();
    be.sample = host_sample_op;
    m.be = &be;
    CHECK(gen_run(&m, req, 5, &cfg, dev, NULL, &err) == 0);
    m.be = backend_cpu();
    int same = 1; /* the same tokens; log-probs to float rounding (contraction may differ) */
    for (int r = 0; r < 5; r++) {
        same &= host[r].n == dev[r].n && !memcmp(host[r].tokens, dev[r].tokens, host[r].n * sizeof(int32_t));
        for (int i = 0; i < host[r].n && i < dev[r].n; i++) same &= fabsf(host[r].logp[i] - dev[r].logp[i]) <= 1e-6f;
    }
    CHECKF(same, "sampling through the backend's sample op differs from the host sampler");
    printf("generation through a backend sample op: tokens and log-probs equal the host sampler's: %s\n",
           same ? "yes" : "NO");
    gen_outputs_free(host, 5);
    gen_outputs_free(dev, 5);
    model_free(&m);
}

/* Tokens equal and log-probs within tol, request by request */
static int outputs_match(const GenOutput *a, const GenOutput *b, int n, float tol) {
    int same = 1;
    for (int r = 0; r < n; r++) {
        same &= a[r].n == b[r].n && a[r].finish == b[r].finish &&
                !memcmp(a[r].tokens, b[r].tokens, a[r].n * sizeof(int32_t));
        for (int i = 0; i < a[r].n && i < b[r].n; i++) same &= fabsf(a[r].logp[i] - b[r].logp[i]) <= tol;
    }
    return same;
}

/* A paged KV cache: with room for everything, the contiguous cache's
 * tokens and log-probs bit for bit; with a pool a little larger than one
 * sequence, sequences give their blocks back and start again from their
 * prompt plus what they generated, and every request still gets the
 * tokens it gets without paging (the CPU computes a row the same way in
 * any batch; log-probs to 1e-5, as prefix sharing). */
static void test_paged_generation(void) {
    Model m;
    Err err = {{0}};
    if (!load_cpu(&m, "qwen3", &err)) return;
    const int32_t p0[] = {5, 17, 99, 3}, p1[] = {64, 2, 7, 8, 9, 10, 11}, p2[] = {12, 13, 14, 15, 16, 17, 18, 19, 20};
    GenRequest req[6] = {{p0, 4, 0}, {p1, 7, 1}, {p0, 4, 2}, {p2, 9, 3}, {p1, 7, 4}, {p2, 2, 5}};
    GenConfig cfg = {.sampling = {.temperature = 0.9f, .top_p = 0.95f}, .max_new_tokens = 23, .max_batch = 4,
                     .seed = 3, .ignore_eos = 1};
    GenOutput base[6], roomy[6], tight[6];
    GenStats st;
    CHECK(gen_run(&m, req, 6, &cfg, base, NULL, &err) == 0);
    GenConfig pc = cfg;
    pc.kv_block = 4; /* a 32-position sequence ends part-way into its 8th block */
    CHECK(gen_run(&m, req, 6, &pc, roomy, &st, &err) == 0);
    CHECKF(outputs_match(base, roomy, 6, 0.0f), "paged KV cache (room for all) differs from the contiguous one");
    CHECK(st.preemptions == 0 && st.shared_prefix_tokens > 0);
    pc.kv_tokens = 9 + 23 + 6; /* one longest sequence and a few positions */
    CHECK(gen_run(&m, req, 6, &pc, tight, &st, &err) == 0);
    int same = outputs_match(base, tight, 6, 1e-5f);
    CHECKF(same && st.preemptions > 0, "tight paged pool: %lld preemptions, outputs %s", (long long)st.preemptions,
           same ? "equal" : "DIFFER");
    printf("paged KV cache: room for all: bit-identical; a pool of %lld positions: %lld preemptions, same tokens: %s\n",
           (long long)pc.kv_tokens, (long long)st.preemptions, same ? "yes" : "NO");
    gen_outputs_free(base, 6);
    gen_outputs_free(roomy, 6);
    gen_outputs_free(tight, 6);
    /* block sizes, pools from the smallest allowed up, prefix sharing on
     * and off, batches of 1 to 5: always the contiguous cache's tokens */
    GenConfig sc = cfg;
    sc.max_new_tokens = 9;
    int all_same = 1, runs = 0;
    long pre = 0;
    for (int share = 0; share < 2; share++)
        for (int mb = 1; mb <= 5; mb += 2) {
            sc.kv_block = sc.kv_tokens = 0;
            sc.no_prefix_sharing = !share;
            sc.max_batch = mb;
            CHECK(gen_run(&m, req, 6, &sc, base, NULL, &err) == 0);
            for (int bs = 1; bs <= 5; bs += 2)
                for (int extra = 0; extra <= 2; extra++) {
                    sc.kv_block = bs;
                    sc.kv_tokens = extra == 2 ? 0 : 9 + 9 + extra * 3 * bs;
                    int ok = gen_run(&m, req, 6, &sc, tight, &st, &err) == 0;
                    CHECKF(ok, "paged run (block %d, pool %lld): %s", bs, (long long)sc.kv_tokens, err.msg);
                    if (!ok) continue;
                    all_same &= outputs_match(base, tight, 6, 1e-5f);
                    pre += st.preemptions, runs++;
                    gen_outputs_free(tight, 6);
                }
            gen_outputs_free(base, 6);
        }
    CHECKF(all_same && pre > 0, "paged runs: %d, %ld preemptions, outputs %s", runs, pre, all_same ? "equal" : "DIFFER");
    printf("paged KV cache over %d block/pool/batch/sharing settings: %ld preemptions, same tokens: %s\n", runs, pre,
           all_same ? "yes" : "NO");
    /* a group of 4 samples of one 9-token prompt: shared prompt blocks
     * (3 positions each) are held once, so the pool's peak is lower than
     * with every sample prefilling its own, and the tokens are the same */
    GenRequest grp[4] = {{p2, 9, 0}, {p2, 9, 1}, {p2, 9, 2}, {p2, 9, 3}};
    GenConfig gcf = cfg;
    gcf.max_new_tokens = 6, gcf.kv_block = 3;
    GenOutput gs[4], gn[4];
    GenStats st_s, st_n;
    CHECK(gen_run(&m, grp, 4, &gcf, gs, &st_s, &err) == 0);
    gcf.no_prefix_sharing = 1;
    CHECK(gen_run(&m, grp, 4, &gcf, gn, &st_n, &err) == 0);
    /* 14 positions a sequence (9 + 6, the last token never fed): 5 blocks.
     * Shared: the first sample's 5, and each other sample shares the two
     * full blocks of the 8 copied positions and holds 3 (the part-full
     * third, copied, and two new): 5 + 3 x 3 = 14. Not shared: 4 x 5. */
    CHECKF(st_s.kv_peak_tokens == 3 * 14 && st_n.kv_peak_tokens == 3 * 20,
           "peak pool positions: %lld shared, %lld not", (long long)st_s.kv_peak_tokens,
           (long long)st_n.kv_peak_tokens);
    CHECKF(outputs_match(gs, gn, 4, 1e-5f), "shared prompt blocks changed the tokens");
    gen_outputs_free(gs, 4);
    gen_outputs_free(gn, 4);
    /* a pool that cannot hold one sequence, and a backend without paged
     * attention: clear errors, nothing generated */
    pc.kv_tokens = 20;
    CHECK(gen_run(&m, req, 6, &pc, tight, NULL, &err) != 0 && strstr(err.msg, "cannot hold one sequence"));
    Backend be = *backend_cpu();
    be.attention_decode_paged = NULL;
    m.be = &be;
    pc.kv_tokens = 0;
    CHECK(gen_run(&m, req, 6, &pc, tight, NULL, &err) != 0 && strstr(err.msg, "no paged decode attention"));
    m.be = backend_cpu();
    model_free(&m);
}

/* `r1c generate` from the command line: one JSON line per sample with the
 * tokens asked for; a paged pool smaller than the batch gives the same
 * tokens and says how full it got; bad paging flags are refused. */
static void test_generate_cli(void) {
    char d[] = "/tmp/r1c-generate-test-XXXXXX";
    if (!mkdtemp(d)) {
        CHECKF(0, "mkdtemp failed");
        return;
    }
    const char *M = FIX "/qwen3", *ARGS = "--prompt-ids 1,2,3,4,5 --n 6 --max-new-tokens 20 --batch 4 --seed 1";
    CHECK(sh("%s generate --model %s %s > %s/a.jsonl 2> %s/a.err", R1C, M, ARGS, d, d) == 0);
    CHECK(sh("test $(wc -l < %s/a.jsonl) -eq 6 && grep -c '\"sample\": 5' %s/a.jsonl | grep -q 1", d, d) == 0);
    CHECK(sh("grep -q '6 sequences, [0-9]* prompt + [0-9]* new tokens' %s/a.err && grep -q 'steps' %s/a.err", d, d) == 0);
    CHECK(sh("%s generate --model %s %s --kv-block 4 --kv-tokens 30 > %s/b.jsonl 2> %s/b.err", R1C, M, ARGS, d, d) == 0);
    CHECKF(sh("sed -E 's/\"logp\": \\[[^]]*\\], //' %s/a.jsonl > %s/a.tok && "
              "sed -E 's/\"logp\": \\[[^]]*\\], //' %s/b.jsonl > %s/b.tok && cmp -s %s/a.tok %s/b.tok && "
              "! grep -q logp %s/a.tok", d, d, d, d, d, d, d) == 0,
           "r1c generate with a paged KV cache sampled other tokens");
    CHECK(sh("grep -q 'at most 32 positions in use' %s/b.err && grep -q 'was full' %s/b.err", d, d) == 0);
    CHECK(sh("%s generate --model %s %s --kv-tokens 30 2> %s/c.err; test $? -eq 2", R1C, M, ARGS, d) == 0);
    CHECK(sh("%s generate --model %s %s --kv-block 4 --kv-tokens 8 2> %s/c.err; test $? -eq 1 && "
             "grep -q 'cannot hold one sequence' %s/c.err", R1C, M, ARGS, d, d) == 0);
    sh("rm -rf %s", d);
}

static int files_equal(const char *a, const char *b) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    return system(cmd) == 0;
}

static void test_save_roundtrip(void) {
    Model m, m2;
    Err err = {{0}};
    char d1[] = "/tmp/r1c-save1-XXXXXX", d2[] = "/tmp/r1c-save2-XXXXXX";
    CHECK(mkdtemp(d1) && mkdtemp(d2));
    CHECK(model_load(&m, FIX "/qwen2_bf16", backend_cpu(), &err) == 0);
    CHECK(model_save(&m, d1, ST_DTYPE_F32, &err) == 0);
    CHECK(model_load(&m2, d1, backend_cpu(), &err) == 0);
    CHECK(!memcmp(m.param_mem, m2.param_mem, m.n_floats * sizeof(float)));
    CHECK(model_save(&m2, d2, ST_DTYPE_F32, &err) == 0);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/model.safetensors", d1);
    snprintf(b, sizeof b, "%s/model.safetensors", d2);
    CHECKF(files_equal(a, b), "save -> load -> save is not byte-identical");
    snprintf(a, sizeof a, "%s/config.json", d1);
    snprintf(b, sizeof b, "%s/config.json", d2);
    CHECK(files_equal(a, b));
    /* BF16 save of bf16-exact weights is lossless */
    CHECK(model_save(&m2, d2, ST_DTYPE_BF16, &err) == 0);
    model_free(&m2);
    CHECK(model_load(&m2, d2, backend_cpu(), &err) == 0);
    CHECK(!memcmp(m.param_mem, m2.param_mem, m.n_floats * sizeof(float)));
    model_free(&m);
    model_free(&m2);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", d1, d2);
    CHECK(system(cmd) == 0);
}

/* Two micro-batches of one row each accumulate to the gradient of the
 * two-row batch; a few AdamW steps reduce the loss. */
static void test_accumulate_and_step(void) {
    Model m;
    Err err = {{0}};
    CHECK(model_load(&m, FIX "/llama3", backend_cpu(), &err) == 0);
    CHECK(model_alloc_grads(&m, &err) == 0);
    int T = 9;
    int32_t ids[18];
    for (int i = 0; i < 18; i++) ids[i] = (i * 37 + 5) % m.cfg.vocab_size;
    float dl[18];
    for (int i = 0; i < 18; i++) dl[i] = (i % T == T - 1) ? 0.0f : -1.0f / 16;
    Acts a2, a1;
    CHECK(acts_create(&a2, &m, 2, T, 0, &err) == 0 && acts_create(&a1, &m, 1, T, 1, &err) == 0);
    model_zero_grads(&m);
    CHECK(model_forward(&m, &a2, ids, 2, T, 1.0f, NULL, &err) == 0);
    model_backward(&m, &a2, dl);
    float *g2 = malloc(m.n_floats * sizeof(float));
    memcpy(g2, m.grad_mem, m.n_floats * sizeof(float));
    model_zero_grads(&m);
    for (int b = 0; b < 2; b++) {
        CHECK(model_forward(&m, &a1, ids + b * T, 1, T, 1.0f, NULL, &err) == 0);
        model_backward(&m, &a1, dl + b * T);
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < m.n_floats; i++) {
        num += (g2[i] - m.grad_mem[i]) * (double)(g2[i] - m.grad_mem[i]);
        den += (double)g2[i] * g2[i];
    }
    CHECKF(sqrt(num / den) < 1e-5, "accumulated grads differ: rel %g", sqrt(num / den));
    AdamW opt;
    CHECK(adamw_create(&opt, &m, 0.9f, 0.999f, 1e-8f, 0.01f, &err) == 0);
    double first = 0, last = 0;
    for (int step = 0; step < 30; step++) {
        model_zero_grads(&m);
        CHECK(model_forward(&m, &a2, ids, 2, T, 1.0f, NULL, &err) == 0);
        double loss = 0;
        for (int i = 0; i < 18; i++) loss -= dl[i] * -16 * a2.logp[i] / 16 * -1;
        loss = 0;
        for (int i = 0; i < 18; i++) if (i % T != T - 1) loss -= a2.logp[i] / 16;
        if (step == 0) first = loss;
        last = loss;
        model_backward(&m, &a2, dl);
        double gn = optim_clip_grad_norm(&m, 1.0);
        CHECK(gn > 0 && isfinite(gn));
        CHECK(optim_grad_norm(&m) <= 1.0 + 1e-4);
        adamw_step(&opt, &m, 1e-2f);
    }
    printf("AdamW overfit: loss %.3f -> %.3f\n", first, last);
    CHECK(last < 0.5 * first);
    adamw_free(&opt, &m);
    /* adamw_clip_grad_norm (the factor applied inside the update) gives
     * the parameters clipping first gives, bit for bit */
    {
        size_t n = m.n_floats;
        float *p0 = malloc(n * 4), *g0 = malloc(n * 4), *pa = malloc(n * 4);
        memcpy(p0, m.param_mem, n * 4), memcpy(g0, m.grad_mem, n * 4);
        AdamW o1, o2;
        CHECK(adamw_create(&o1, &m, 0.9f, 0.999f, 1e-8f, 0.01f, &err) == 0);
        CHECK(adamw_create(&o2, &m, 0.9f, 0.999f, 1e-8f, 0.01f, &err) == 0);
        double n1 = optim_clip_grad_norm(&m, 1e-3); /* well below the norm: clips */
        adamw_step(&o1, &m, 1e-2f);
        memcpy(pa, m.param_mem, n * 4);
        memcpy(m.param_mem, p0, n * 4), memcpy(m.grad_mem, g0, n * 4);
        double n2 = adamw_clip_grad_norm(&o2, &m, 1e-3);
        CHECK(o2.gscale < 1.0f);
        CHECK(memcmp(m.grad_mem, g0, n * 4) == 0); /* gradients untouched until the step */
        adamw_step(&o2, &m, 1e-2f);
        CHECK(n1 == n2 && n1 > 1e-3);
        CHECK(memcmp(pa, m.param_mem, n * 4) == 0);
        CHECK(memcmp(pa, p0, n * 4) != 0);
        CHECK(o2.gscale == 1.0f); /* used once */
        adamw_free(&o1, &m), adamw_free(&o2, &m);
        free(p0), free(g0), free(pa);
    }
    acts_free(&a1, &m);
    acts_free(&a2, &m);
    free(g2);
    model_free(&m);
}

/* The backward from the forward's kept logits (acts_keep_logits, what the
 * trainers do where memory allows) gives the gradients the backward that
 * recomputes them gives, bit for bit. */
static void test_kept_logits(void) {
    Model m;
    Err err = {{0}};
    CHECK(model_load(&m, FIX "/qwen2", backend_cpu(), &err) == 0);
    CHECK(model_alloc_grads(&m, &err) == 0);
    int B = 2, T = 11, N = B * T;
    int32_t ids[22];
    float dl[22];
    for (int i = 0; i < N; i++) ids[i] = (i * 53 + 7) % m.cfg.vocab_size, dl[i] = (i % T == T - 1) ? 0.0f : -0.1f;
    Acts a;
    CHECK(acts_create(&a, &m, B, T, 0, &err) == 0);
    m.be->free(a.logits_cache); /* small here: kept by acts_create; drop it to recompute */
    a.logits_cache = NULL;
    float *g[2], lp[2][22];
    for (int keep = 0; keep < 2; keep++) {
        if (keep) {
            CHECK(acts_keep_logits(&a, &m, &err) == 0 && a.logits_cache != NULL);
            float *c = a.logits_cache;
            CHECK(acts_keep_logits(&a, &m, &err) == 0 && a.logits_cache == c); /* once */
        }
        model_zero_grads(&m);
        CHECK(model_forward(&m, &a, ids, B, T, 1.0f, NULL, &err) == 0);
        CHECK((a.logits_kept != NULL) == keep);
        memcpy(lp[keep], a.logp, N * sizeof(float));
        model_backward(&m, &a, dl);
        g[keep] = malloc(m.n_floats * sizeof(float));
        memcpy(g[keep], m.grad_mem, m.n_floats * sizeof(float));
    }
    CHECK(memcmp(lp[0], lp[1], sizeof lp[0]) == 0);
    CHECK(memcmp(g[0], g[1], m.n_floats * sizeof(float)) == 0);
    acts_free(&a, &m);
    /* with recomputed layers nothing is kept */
    CHECK(acts_create(&a, &m, B, T, 1, &err) == 0);
    CHECK(acts_keep_logits(&a, &m, &err) == 0 && a.logits_cache == NULL);
    acts_free(&a, &m);
    free(g[0]), free(g[1]);
    model_free(&m);
}

static void test_bad_checkpoints(void) {
    Err err = {{0}};
    Model m;
    char d[] = "/tmp/r1c-bad-XXXXXX";
    CHECK(mkdtemp(d) != NULL);
    char cmd[600], path[600];
    CHECK(model_load(&m, d, backend_cpu(), &err) != 0);
    CHECKF(strstr(err.msg, "config.json") != NULL, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "cp " FIX "/qwen2/config.json %s/", d);
    CHECK(system(cmd) == 0);
    CHECK(model_load(&m, d, backend_cpu(), &err) != 0);
    CHECKF(strstr(err.msg, "no model.safetensors") != NULL, "%s", err.msg);
    /* a checkpoint of another shape: tensors missing */
    snprintf(cmd, sizeof cmd, "cp " FIX "/llama3/model.safetensors %s/", d);
    CHECK(system(cmd) == 0);
    CHECK(model_load(&m, d, backend_cpu(), &err) != 0);
    CHECKF(strstr(err.msg, "missing tensor 'model.layers.0.self_attn.q_proj.bias'") != NULL, "%s", err.msg);
    /* truncated file */
    snprintf(cmd, sizeof cmd, "head -c 5000 " FIX "/qwen2/model.safetensors > %s/model.safetensors", d);
    CHECK(system(cmd) == 0);
    CHECK(model_load(&m, d, backend_cpu(), &err) != 0);
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    CHECKF(strstr(err.msg, path) && strstr(err.msg, "outside the 2312 data bytes"), "%s", err.msg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
}

/* What r1c saves, transformers loads with the same logits (needs python3
 * with torch + transformers; skipped with the reason otherwise). Covers a
 * fresh `r1c init` model (generated config) and a loaded-and-saved one. */
static void test_saved_loads_in_transformers(void) {
    if (system("python3 -c 'import torch, transformers, safetensors' >/dev/null 2>&1") != 0) {
        SKIP("saved-model check in transformers: python3 with torch + transformers not installed");
        return;
    }
    char d[] = "/tmp/r1c-hf-XXXXXX";
    CHECK(mkdtemp(d) != NULL);
    const char *srcs[] = {"qwen3", "llama3_legacy"};
    char cmd[1600];
    for (int i = 0; i < 2; i++) {
        Model m;
        Err err = {{0}};
        char src[300], dst[300];
        snprintf(src, sizeof src, FIX "/%s", srcs[i]);
        snprintf(dst, sizeof dst, "%s/%s", d, srcs[i]);
        CHECK(model_load(&m, src, backend_cpu(), &err) == 0);
        CHECK(model_save(&m, dst, ST_DTYPE_F32, &err) == 0);
        model_free(&m);
        snprintf(cmd, sizeof cmd,
                 "%s forward --model %s --input %s/input.json --out %s/out.safetensors && "
                 "python3 tests/ref/check_saved_model.py %s %s/input.json %s/out.safetensors",
                 R1C, dst, src, dst, dst, src, dst);
        CHECKF(system(cmd) == 0, "%s", cmd);
    }
    snprintf(cmd, sizeof cmd,
             "%s init --shape tiny --vocab 512 --std 0.1 --seed 3 --out %s/init >/dev/null && "
             "%s forward --model %s/init --input " FIX "/qwen2/input.json --out %s/init.safetensors && "
             "python3 tests/ref/check_saved_model.py %s/init " FIX "/qwen2/input.json %s/init.safetensors",
             R1C, d, R1C, d, d, d, d);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
}

/* r1c forward refuses malformed inputs with the file and the problem. */
static void test_forward_bad_input(void) {
    static const struct { const char *json, *want; } cases[] = {
        {"{\"input_ids\": [[1, 2, 3], [4, 5]]}", "rows must have equal length"},
        {"{\"input_ids\": [[1, 2, 3]], \"loss_mask\": [[1, 1, 1]]}", "loss_mask rows have 3 entries, expected 2"},
        {"{\"input_ids\": [[1, \"a\", 3]]}", "input_ids[0][1] is not an integer"},
        {"{\"input_ids\": [[1, 2, 3]], \"loss_mask\": [[1, 2]]}", "must be 0 or 1"},
        {"{\"input_ids\": [[1]]}", "at least 2 tokens"},
        {"{\"input_ids\": [[1, 99999]]}", "outside the vocabulary"},
        {"[1, 2", "bad.json:1:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *fp = fopen("/tmp/r1c-fwd-bad.json", "w");
        fputs(cases[i].json, fp);
        fclose(fp);
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "%s forward --model " FIX "/qwen2 --input /tmp/r1c-fwd-bad.json --out /tmp/r1c-fwd-bad.st "
                 "2>/tmp/r1c-fwd-bad.err; test $? -eq 1 && grep -qF -- '%s' /tmp/r1c-fwd-bad.err",
                 R1C, !strcmp(cases[i].want, "bad.json:1:") ? "fwd-bad.json:1:" : cases[i].want);
        CHECKF(system(cmd) == 0, "case %zu (%s)", i, cases[i].json);
    }
    unlink("/tmp/r1c-fwd-bad.json");
    unlink("/tmp/r1c-fwd-bad.err");
}

/* --backend cuda checks the R1C_CUDA_* switches before it looks for a GPU,
 * so a bad value is named on any machine; a build without CUDA says that
 * instead (and this check skips, saying so). */
static void test_backend_env(void) {
    static const struct { const char *env, *want; } cases[] = {
        {"R1C_CUDA_FLASH=2", "R1C_CUDA_FLASH='2': expected 0 or 1"},
        {"R1C_CUDA_BI_TUNE=on", "R1C_CUDA_BI_TUNE='on': expected 0 or 1"},
        {"R1C_CUDA_BI_REF_M=0", "R1C_CUDA_BI_REF_M='0': expected a number of rows"},
        {"R1C_CUDA_BI_REF_M=12x", "R1C_CUDA_BI_REF_M='12x': expected a number of rows"},
        {"R1C_CUDA_BATCH_INVARIANT=3", "R1C_CUDA_BATCH_INVARIANT='3': expected 0, 1 or 2"},
        {"R1C_CUDA_PRECISION=fp16", "R1C_CUDA_PRECISION='fp16': expected bf16 or fp32"},
        {"R1C_CUDA_GRAPHS=yes", "R1C_CUDA_GRAPHS='yes': expected 0 or 1"},
        {"R1C_CUDA_GRAPH_ROWS=-1", "R1C_CUDA_GRAPH_ROWS='-1': expected a number of rows"},
    };
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "R1C_CUDA_FLASH=2 %s forward --backend cuda --model " FIX "/qwen2 --input " FIX
             "/qwen2/input.json --out /tmp/r1c-env.st 2>&1 | grep -q 'built without CUDA'",
             R1C);
    if (system(cmd) == 0) {
        printf("SKIP R1C_CUDA_* checks: this r1c was built without CUDA\n");
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "env %s %s forward --backend cuda --model " FIX "/qwen2 --input " FIX
                 "/qwen2/input.json --out /tmp/r1c-env.st 2>/tmp/r1c-env.err; test $? -ne 0 && grep -qF -- \"%s\" "
                 "/tmp/r1c-env.err",
                 cases[i].env, R1C, cases[i].want);
        CHECKF(system(cmd) == 0, "%s: expected \"%s\"", cases[i].env, cases[i].want);
    }
    unlink("/tmp/r1c-env.err");
    unlink("/tmp/r1c-env.st");
}

int main(void) {
    if (getenv("R1C_BIN")) R1C = getenv("R1C_BIN");
    if (access(R1C, X_OK) != 0) {
        fprintf(stderr, "%s not built\n", R1C);
        return 1;
    }
    const char *fx[] = {"qwen2", "qwen2_tied", "llama3", "qwen3", "qwen2_legacy", "llama3_legacy", "qwen2_bf16",
                        "qwen2_sharded"};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) test_parity(fx[i], 0);
    test_parity("qwen3", 1);
    test_parity("qwen2", 1);
    test_sampler_matches_forward();
    test_device_sampling_path();
    test_paged_generation();
    test_generate_cli();
    test_save_roundtrip();
    test_accumulate_and_step();
    test_kept_logits();
    test_bad_checkpoints();
    test_forward_bad_input();
    test_backend_env();
    test_saved_loads_in_transformers();
    return check_summary("test_model");
}
