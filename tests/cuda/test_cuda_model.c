/* The whole model on the CUDA backend: the HF fixtures through
 * `r1c forward --backend cuda` against transformers' expected logits,
 * token log-probs and every gradient the fixture holds (the legacy, bf16
 * and sharded ones hold none; the tolerances of test_model's parity test), and generation on the GPU against the CPU (same greedy
 * tokens, log-probs to 1e-4). Without a usable GPU it prints SKIP and
 * passes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda/backend_cuda.h"
#include "check.h"
#include "gen/generate.h"
#include "model/model.h"
#include "train/optim.h"

#define FIX "tests/fixtures/models"
static const char *R1C = "build/r1c";

static double max_abs_diff(const StTensor *a, const StTensor *b) {
    if (!a || !b || a->numel != b->numel || a->dtype != ST_DTYPE_F32 || b->dtype != ST_DTYPE_F32) return INFINITY;
    const float *x = (const float *)a->data, *y = (const float *)b->data;
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = fabs((double)x[i] - y[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static double rel_err(const StTensor *a, const StTensor *b) {
    if (!a || !b || a->numel != b->numel) return INFINITY;
    const float *x = (const float *)a->data, *y = (const float *)b->data;
    double num = 0, den = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        den += (double)y[i] * y[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

/* r1c forward --backend cuda-fp32 --grad against expected.safetensors
 * (bf16 = 0: the reference arithmetic, the CPU's tolerances), or with
 * --backend cuda-bf16 held to bf16 rounding: relative L2 errors of the
 * logits and of every gradient, and token log-probs to 5e-2. */
static void test_parity_prec(const char *name, int recompute, int bf16) {
    char cmd[1024], out[256], dir[256], ep[300];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    snprintf(out, sizeof out, "/tmp/r1c-cuda-parity-%d-%s.safetensors", (int)getpid(), name);
    snprintf(cmd, sizeof cmd, "%s forward --backend %s --model %s --input %s/input.json --out %s --grad %s", R1C,
             bf16 ? "cuda-bf16" : "cuda-fp32", dir, dir, out, recompute ? "--recompute" : "");
    CHECKF(system(cmd) == 0, "%s", cmd);
    StFile got, exp;
    Err err = {{0}};
    snprintf(ep, sizeof ep, "%s/expected.safetensors", dir);
    if (st_open(&got, out, &err) != 0 || st_open(&exp, ep, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    double e_logits = max_abs_diff(st_find(&got, "logits"), st_find(&exp, "logits"));
    double e_tlp = max_abs_diff(st_find(&got, "token_logp"), st_find(&exp, "token_logp"));
    double e_loss = max_abs_diff(st_find(&got, "loss"), st_find(&exp, "loss"));
    if (bf16) {
        double r_logits = rel_err(st_find(&got, "logits"), st_find(&exp, "logits"));
        /* a log-prob moves with the logits: held to 2% of the largest */
        const StTensor *el = st_find(&exp, "logits");
        double lmax = 0;
        for (int64_t i = 0; el && i < el->numel; i++) lmax = fmax(lmax, fabs(((const float *)el->data)[i]));
        CHECKF(r_logits <= 2e-2, "%s bf16: logits relative error %g", name, r_logits);
        CHECKF(e_tlp <= 2e-2 * lmax, "%s bf16: token_logp max abs err %g (largest logit %g)", name, e_tlp, lmax);
        int ng = 0;
        double worst = 0;
        for (int i = 0; i < exp.n_tensors; i++) {
            const StTensor *t = &exp.tensors[i];
            if (strncmp(t->name, "grad.", 5) != 0) continue;
            double r = rel_err(st_find(&got, t->name), t);
            if (r > worst) worst = r;
            CHECKF(r <= 5e-2, "%s bf16: %s relative error %g", name, t->name, r);
            ng++;
        }
        printf("cuda bf16 %-10s%s logits rel %.2e  token_logp %.2e  grads %2d worst rel %.2e\n", name,
               recompute ? " (recompute)" : "", r_logits, e_tlp, ng, worst);
        st_close(&got);
        st_close(&exp);
        unlink(out);
        return;
    }
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
    printf("cuda %-14s%s logits %.2e  token_logp %.2e  grads %2d worst rel %.2e\n", name,
           recompute ? " (recompute)" : "", e_logits, e_tlp, n_grads, worst);
    st_close(&got);
    st_close(&exp);
    unlink(out);
}

static void test_parity(const char *name, int recompute) { test_parity_prec(name, recompute, 0); }

static int run_generation(const Backend *be, const char *name, const GenConfig *cfg, const GenRequest *req, int n,
                          GenOutput *out) {
    Model m;
    Err err = {{0}};
    char dir[256];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    if (model_load(&m, dir, be, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return -1;
    }
    int rc = gen_run(&m, req, n, cfg, out, NULL, &err);
    if (!rc && be != backend_cpu()) rc = cuda_check(&err);
    CHECKF(rc == 0, "%s on %s: %s", name, be->name, err.msg);
    model_free(&m);
    return rc;
}

/* Decode steps replayed as CUDA graphs give the same tokens and the same
 * log-probs, bit for bit, as the steps issued op by op (sampling at
 * temperature 1, continuous batching with slots refilled, both
 * precisions), and graphs were actually recorded and replayed. */
static void test_graphs_match(const char *name, int bf16) {
    int32_t pr[6][5];
    GenRequest req[6];
    for (int r = 0; r < 6; r++) {
        for (int i = 0; i < 5; i++) pr[r][i] = (int32_t)(3 + 7 * r + 11 * i) % 60;
        req[r] = (GenRequest){pr[r], 2 + r % 4, (uint64_t)r};
    }
    GenConfig cfg = {.sampling = {.temperature = 1.0f}, .max_new_tokens = 20, .max_batch = 4, .seed = 11};
    GenOutput o[2][6];
    long rec0, rep0, rec1, rep1;
    cuda_set_precision(bf16 ? CUDA_PREC_BF16 : CUDA_PREC_FP32);
    cuda_set_graphs(0);
    int rc = run_generation(backend_cuda(), name, &cfg, req, 6, o[0]);
    cuda_set_graphs(1);
    cuda_graph_stats(&rec0, &rep0);
    if (!rc) rc = run_generation(backend_cuda(), name, &cfg, req, 6, o[1]);
    cuda_graph_stats(&rec1, &rep1);
    cuda_set_precision(CUDA_PREC_FP32);
    if (rc) return;
    int same = 1, total = 0;
    for (int r = 0; r < 6; r++) {
        same &= o[0][r].n == o[1][r].n && !memcmp(o[0][r].tokens, o[1][r].tokens, o[0][r].n * sizeof(int32_t)) &&
                !memcmp(o[0][r].logp, o[1][r].logp, o[0][r].n * sizeof(float));
        total += o[1][r].n;
    }
    CHECKF(same, "%s (%s): decoding with CUDA graphs differs from op by op", name, bf16 ? "bf16" : "fp32");
    CHECKF(rec1 > rec0 && rep1 - rep0 >= 10, "%s: %ld graphs recorded, %ld replays", name, rec1 - rec0, rep1 - rep0);
    printf("cuda graphs %-10s %s: %d sampled tokens bit-identical to op by op: %s (%ld graphs, %ld replays)\n", name,
           bf16 ? "bf16" : "fp32", total, same ? "yes" : "NO", rec1 - rec0, rep1 - rep0);
    gen_outputs_free(o[0], 6);
    gen_outputs_free(o[1], 6);
}

/* A paged KV cache on the GPU: with room for everything, the contiguous
 * cache's tokens and log-probs bit for bit (the same kernels read through
 * the block table), graphs on; with a pool a little over one sequence,
 * sequences are preempted and resumed and every request still gets all
 * its tokens (the resumed ones recomputed, so in bf16 they may differ
 * from the contiguous run after the resume point: only the lengths and
 * the tokens before any preemption are compared). */
static void test_paged_matches(const char *name, int bf16) {
    const int32_t p0[] = {5, 17, 99, 3}, p1[] = {64, 2, 7, 8, 9, 10, 11};
    GenRequest req[5] = {{p0, 4, 0}, {p1, 7, 1}, {p0, 4, 2}, {p1, 7, 3}, {p1, 5, 4}};
    GenConfig cfg = {.sampling = {.temperature = 1.0f}, .max_new_tokens = 21, .max_batch = 3, .seed = 9,
                     .ignore_eos = 1};
    GenOutput oc[5], op[5], ot[5];
    cuda_set_precision(bf16 ? CUDA_PREC_BF16 : CUDA_PREC_FP32);
    int rc = run_generation(backend_cuda(), name, &cfg, req, 5, oc);
    GenConfig pc = cfg;
    pc.kv_block = 4;
    if (!rc) rc = run_generation(backend_cuda(), name, &pc, req, 5, op);
    pc.kv_tokens = 7 + 21 + 4;
    if (!rc) rc = run_generation(backend_cuda(), name, &pc, req, 5, ot);
    cuda_set_precision(CUDA_PREC_FP32);
    if (rc) return;
    int same = 1, lengths = 1;
    for (int r = 0; r < 5; r++) {
        same &= oc[r].n == op[r].n && !memcmp(oc[r].tokens, op[r].tokens, oc[r].n * sizeof(int32_t)) &&
                !memcmp(oc[r].logp, op[r].logp, oc[r].n * sizeof(float));
        lengths &= ot[r].n == 21;
    }
    CHECKF(same, "%s (%s): the paged KV cache differs from the contiguous one", name, bf16 ? "bf16" : "fp32");
    CHECKF(lengths, "%s (%s): a tight paged pool lost tokens", name, bf16 ? "bf16" : "fp32");
    printf("paged KV cache %-10s %s: bit-identical to contiguous: %s; tight pool completes: %s\n", name,
           bf16 ? "bf16" : "fp32", same ? "yes" : "NO", lengths ? "yes" : "NO");
    gen_outputs_free(oc, 5);
    gen_outputs_free(op, 5);
    gen_outputs_free(ot, 5);
}

/* Greedy decoding (prefix sharing, several slots, batch of 3) on both
 * backends: same tokens, log-probs within 1e-4. */
static void test_generate_matches_cpu(const char *name) {
    const int32_t p0[] = {5, 17, 99, 3}, p1[] = {64, 2, 7, 8, 9, 10, 11};
    GenRequest req[4] = {{p0, 4, 0}, {p1, 7, 1}, {p0, 4, 2}, {p1, 7, 3}};
    GenConfig cfg = {.sampling = {.temperature = 0.0f}, .max_new_tokens = 24, .max_batch = 3, .seed = 5};
    GenOutput oc[4], og[4];
    if (run_generation(backend_cpu(), name, &cfg, req, 4, oc) != 0) return;
    if (run_generation(backend_cuda(), name, &cfg, req, 4, og) != 0) {
        gen_outputs_free(oc, 4);
        return;
    }
    double worst = 0;
    int same = 1, total = 0;
    for (int r = 0; r < 4; r++) {
        same &= oc[r].n == og[r].n && !memcmp(oc[r].tokens, og[r].tokens, oc[r].n * sizeof(int32_t));
        for (int i = 0; i < oc[r].n && i < og[r].n; i++) {
            double d = fabs((double)oc[r].logp[i] - og[r].logp[i]);
            if (d > worst) worst = d;
        }
        total += og[r].n;
    }
    CHECKF(same, "%s: greedy tokens differ between cpu and cuda", name);
    CHECKF(worst <= 1e-4, "%s: generated log-prob max diff %g", name, worst);
    printf("cuda generate %-10s %d greedy tokens identical to cpu: %s, logp max diff %.2e\n", name, total,
           same ? "yes" : "NO", worst);
    gen_outputs_free(oc, 4);
    gen_outputs_free(og, 4);
}

/* In bf16 on the GPU, the log-prob the sampler reports for each token
 * against the one the trainer's forward computes for the same sequence:
 * the two paths (KV-cache decode vs full-sequence forward) round
 * differently, and the gap must stay small enough that no importance
 * correction is needed (max |d| < 1e-2). */
static void test_sampler_trainer_bf16(const char *name, int bi) {
    int bi_was = cuda_batch_invariant();
    cuda_set_precision(CUDA_PREC_BF16);
    cuda_set_batch_invariant(bi);
    const int32_t p0[] = {5, 17, 99, 3, 44, 12}, p1[] = {64, 2, 7, 8};
    enum { NR = 4, NEW = 40 };
    GenRequest req[NR] = {{p0, 6, 0}, {p1, 4, 1}, {p0, 6, 2}, {p1, 4, 3}};
    GenConfig cfg = {.sampling = {.temperature = 1.0f, .top_p = 1.0f}, .max_new_tokens = NEW, .max_batch = 3,
                     .seed = 11, .ignore_eos = 1};
    GenOutput o[NR];
    Model m;
    Acts a;
    Err err = {{0}};
    char dir[256];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    if (model_load(&m, dir, backend_cuda(), &err) != 0 || gen_run(&m, req, NR, &cfg, o, NULL, &err) != 0 ||
        acts_create(&a, &m, 1, 6 + NEW, 0, &err) != 0) {
        CHECKF(0, "%s: %s", name, err.msg);
        cuda_set_precision(CUDA_PREC_FP32);
        cuda_set_batch_invariant(bi_was);
        return;
    }
    double worst = 0, sum = 0;
    int cnt = 0;
    for (int r = 0; r < NR; r++) {
        int32_t ids[6 + NEW];
        int P = req[r].prompt_len, T = P + o[r].n;
        memcpy(ids, req[r].prompt, P * sizeof(int32_t));
        memcpy(ids + P, o[r].tokens, o[r].n * sizeof(int32_t));
        if (model_forward(&m, &a, ids, 1, T, 1.0f, NULL, &err) != 0) {
            CHECKF(0, "%s", err.msg);
            break;
        }
        for (int i = 0; i < o[r].n; i++) { /* row P-1+i predicts ids[P+i] */
            double d = fabs((double)a.logp[P - 1 + i] - o[r].logp[i]);
            worst = fmax(worst, d);
            sum += d;
            cnt++;
        }
    }
    CHECKF(cuda_check(&err) == 0, "%s", err.msg);
    /* batch-invariant: the same logits; only the two log-softmax kernels
     * (sampler, trainer) differ, at the fp32 level */
    double tol = bi ? 1e-4 : 1e-2;
    CHECKF(worst < tol, "%s bf16%s: sampler vs trainer log-prob max diff %g", name, bi ? " batch-invariant" : "", worst);
    printf("cuda bf16%s sampler vs trainer %-8s %d tokens: log-prob max |d| %.2e, mean %.2e\n",
           bi ? " batch-invariant" : "", name, cnt, worst, cnt ? sum / cnt : 0.0);
    gen_outputs_free(o, NR);
    acts_free(&a, &m);
    model_free(&m);
    cuda_set_precision(CUDA_PREC_FP32);
    cuda_set_batch_invariant(bi_was);
}

/* Packed rows on the GPU (fp32): the log-probs and gradients of two
 * sequences packed into one row equal the CPU's packed run. */
static void test_packed_matches_cpu(void) {
    const int32_t ids[12] = {3, 9, 27, 81, 5, 15, 45, 7, 1, 2, 4, 8};
    const int32_t seg[12] = {0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 5, 5};
    float dl[12];
    for (int i = 0; i < 12; i++) dl[i] = -1.0f / 12;
    const Backend *bes[2] = {backend_cpu(), backend_cuda()};
    float lp[2][12], *g[2] = {NULL, NULL};
    size_t n = 0;
    for (int b = 0; b < 2; b++) {
        Model m;
        Acts a;
        Err err = {{0}};
        if (model_load(&m, FIX "/qwen2", bes[b], &err) != 0 || model_alloc_grads(&m, &err) != 0 ||
            acts_create(&a, &m, 1, 12, 0, &err) != 0 || model_forward_packed(&m, &a, ids, seg, 1, 12, 1.0f, &err) != 0) {
            CHECKF(0, "%s", err.msg);
            return;
        }
        memcpy(lp[b], a.logp, sizeof lp[b]);
        model_backward(&m, &a, dl);
        n = m.n_floats;
        g[b] = malloc(n * sizeof(float));
        m.be->download(g[b], m.grad_mem, n * sizeof(float));
        if (b) CHECKF(cuda_check(&err) == 0, "%s", err.msg);
        acts_free(&a, &m);
        model_free(&m);
    }
    double dlp = 0, num = 0, den = 0;
    for (int i = 0; i < 12; i++) dlp = fmax(dlp, fabs((double)lp[0][i] - lp[1][i]));
    for (size_t i = 0; i < n; i++) {
        num += ((double)g[0][i] - g[1][i]) * ((double)g[0][i] - g[1][i]);
        den += (double)g[0][i] * g[0][i];
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-30);
    CHECKF(dlp <= 1e-5 && rel <= 1e-5, "packed on cuda: logp diff %g, grad rel %g", dlp, rel);
    printf("cuda packed rows: logp max diff %.2e, gradients rel %.2e (vs cpu)\n", dlp, rel);
    free(g[0]);
    free(g[1]);
}

/* One training step on the GPU from the same weights as on the CPU:
 * gradient norm and updated weights agree (optimizer ops and the model's
 * upload / download paths together), and save after the step round-trips. */
static void test_step_matches_cpu(void) {
    const Backend *bes[2] = {backend_cpu(), backend_cuda()};
    float *w[2] = {NULL, NULL};
    double norm[2] = {0, 0};
    size_t n = 0;
    const int32_t ids[] = {3, 9, 27, 81, 5, 15, 45, 7, 1, 2, 4, 8};
    float dl[12];
    for (int i = 0; i < 12; i++) dl[i] = (i % 6 == 5) ? 0.0f : -1.0f / 10;
    for (int b = 0; b < 2; b++) {
        Model m;
        Acts a;
        AdamW opt;
        Err err = {{0}};
        if (model_load(&m, FIX "/qwen2", bes[b], &err) != 0 || model_alloc_grads(&m, &err) != 0 ||
            acts_create(&a, &m, 2, 6, 0, &err) != 0 || adamw_create(&opt, &m, 0.9f, 0.95f, 1e-8f, 0.1f, &err) != 0) {
            CHECKF(0, "%s", err.msg);
            return;
        }
        CHECK(model_forward(&m, &a, ids, 2, 6, 1.0f, NULL, &err) == 0);
        model_backward(&m, &a, dl);
        norm[b] = optim_clip_grad_norm(&m, 1.0);
        adamw_step(&opt, &m, 1e-3f);
        n = m.n_floats;
        w[b] = malloc(n * sizeof(float));
        m.be->download(w[b], m.param_mem, n * sizeof(float));
        if (b) CHECKF(cuda_check(&err) == 0, "%s", err.msg);
        adamw_free(&opt, &m);
        acts_free(&a, &m);
        model_free(&m);
    }
    double md = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)w[0][i] - w[1][i]);
        if (d > md) md = d;
    }
    CHECKF(fabs(norm[0] - norm[1]) <= 1e-4 * norm[0], "grad norm cpu %.9g cuda %.9g", norm[0], norm[1]);
    CHECKF(md <= 1e-5, "weights after one AdamW step differ by %g", md);
    printf("cuda train step: grad norm cpu %.7g cuda %.7g, weights max diff %.2e\n", norm[0], norm[1], md);
    free(w[0]);
    free(w[1]);
}

/* A frozen model (model_freeze: GEMM weights as bf16 only, the GRPO
 * reference) gives the same log-probs, bit for bit, as the same model
 * kept in fp32 with bf16 shadows; in fp32 precision freezing is a no-op. */
static void test_frozen_matches(const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    const int32_t ids[12] = {3, 9, 27, 81, 5, 15, 45, 7, 1, 2, 4, 8};
    float lp[2][12];
    cuda_set_precision(CUDA_PREC_BF16);
    for (int f = 0; f < 2; f++) {
        Model m;
        Acts a;
        Err err = {{0}};
        if (model_load(&m, dir, backend_cuda(), &err) != 0 || (f && model_freeze(&m, &err) != 0) ||
            acts_create(&a, &m, 2, 6, 0, &err) != 0 || model_forward(&m, &a, ids, 2, 6, 1.0f, NULL, &err) != 0) {
            CHECKF(0, "%s: %s", name, err.msg);
            cuda_set_precision(CUDA_PREC_FP32);
            return;
        }
        memcpy(lp[f], a.logp, sizeof lp[f]);
        CHECKF(cuda_check(&err) == 0, "%s: %s", name, err.msg);
        if (f) {
            CHECKF(m.frozen && !m.param_mem, "%s: not frozen in bf16", name);
            CHECK(model_alloc_grads(&m, &err) != 0 && strstr(err.msg, "frozen"));
        }
        acts_free(&a, &m);
        model_free(&m);
    }
    int same = !memcmp(lp[0], lp[1], sizeof lp[0]);
    CHECKF(same, "%s: frozen bf16 model's log-probs differ from the unfrozen one's", name);
    printf("%s frozen (bf16 weights only): log-probs %s the fp32 model's bf16 GEMMs\n", name,
           same ? "bit-identical to" : "DIFFERENT from");
    cuda_set_precision(CUDA_PREC_FP32);
    Model m;
    Err err = {{0}};
    if (model_load(&m, dir, backend_cuda(), &err) == 0) {
        CHECK(model_freeze(&m, &err) == 0 && !m.frozen && m.param_mem);
        model_free(&m);
    }
}

int main(void) {
    setenv("R1C_CUDA_SYNC", "1", 0); /* name the op at fault if a kernel faults */
    if (!cuda_available()) {
        SKIP("no usable CUDA device (driver or GPU missing): GPU model tests not run");
        return check_summary("test_cuda_model");
    }
    if (getenv("R1C_BIN")) R1C = getenv("R1C_BIN");
    printf("device: %s\n", cuda_device_name());
    cuda_set_precision(CUDA_PREC_FP32); /* in-process checks: the reference arithmetic unless a test says bf16 */
    if (access(R1C, X_OK) != 0) {
        CHECKF(0, "%s not built", R1C);
        return check_summary("test_cuda_model");
    }
    const char *fx[] = {"qwen2", "qwen2_tied", "llama3", "qwen3", "qwen2_legacy", "llama3_legacy", "qwen2_bf16",
                        "qwen2_sharded"};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) test_parity(fx[i], 0);
    test_parity("qwen3", 1);
    test_parity("qwen2", 1);
    const char *fb[] = {"qwen2", "qwen2_tied", "llama3", "qwen3"};
    for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) test_parity_prec(fb[i], 0, 1);
    test_sampler_trainer_bf16("qwen2", 0);
    test_sampler_trainer_bf16("qwen3", 0);
    test_sampler_trainer_bf16("qwen2", 1);
    test_sampler_trainer_bf16("qwen3", 1);
    test_sampler_trainer_bf16("llama3", 1);
    test_generate_matches_cpu("qwen2");
    test_generate_matches_cpu("qwen3");
    test_generate_matches_cpu("llama3");
    test_step_matches_cpu();
    test_packed_matches_cpu();
    test_graphs_match("qwen2", 0);
    test_graphs_match("qwen2", 1);
    test_graphs_match("qwen3", 1);
    test_paged_matches("qwen2", 0);
    test_paged_matches("qwen2", 1);
    test_paged_matches("qwen3", 1);
    const char *fz[] = {"qwen2", "qwen2_tied", "llama3", "qwen3"};
    for (size_t i = 0; i < sizeof fz / sizeof fz[0]; i++) test_frozen_matches(fz[i]);
    return check_summary("test_cuda_model");
}
