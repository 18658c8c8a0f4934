/* Memory planning against hand-computed sizes and against peaks measured
 * on an H200 (docs/cuda.md: bench_cuda_model, 16 x 1024 training, peak
 * device memory from cudaMemGetInfo after every allocation), and the
 * refusal message through a backend that reports little free memory. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

#include "check.h"
#include "io/hf_config.h"
#include "model/shapes.h"
#include "train/memplan.h"

static double item(const MemPlan *p, const char *prefix) {
    for (int i = 0; i < p->n; i++)
        if (!strncmp(p->item[i].what, prefix, strlen(prefix))) return p->item[i].bytes;
    return -1;
}

static ModelConfig shape(const char *name) {
    ModelConfig c;
    Err err;
    if (model_shape(&c, name, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return c;
}

/* Qwen2.5-0.5B has 494,032,768 parameters (tied embeddings): 151936 x 896
 * embedding, 24 layers of 14,912,384 (q/k/v/o with q/k/v biases, SwiGLU
 * 3 x 4864 x 896, two norms), the final norm. */
static void test_counts(void) {
    ModelConfig c = shape("qwen2.5-0.5b");
    MemPlan p;
    memplan_compute(&p, &(MemPlanInput){.cfg = &c});
    CHECK_NEAR(item(&p, "policy weights"), 494032768.0 * 4, 0.5);
    CHECK_NEAR(item(&p, "gradients"), 494032768.0 * 4, 0.5);
    CHECK_NEAR(item(&p, "AdamW"), 494032768.0 * 8, 0.5);
    CHECK(item(&p, "bf16 copy") < 0 && item(&p, "reference") < 0 && item(&p, "KV cache") < 0);
    CHECK_NEAR(p.peak, 494032768.0 * 16, 0.5);
    /* the GPU's bf16 copy of the policy; the frozen reference (model_freeze):
     * 24 x 14,909,440 matrix weights in bf16, the 151936 x 896 embedding,
     * 49 norms of 896 and 24 x 1152 biases in fp32, plus the embedding's
     * bf16 shadow as the tied LM head */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .has_ref = 1, .cuda = 1, .bf16 = 1});
    CHECK_NEAR(item(&p, "bf16 copy of the policy"), 494032768.0 * 2, 0.5);
    CHECK_NEAR(item(&p, "reference model, frozen"), 24.0 * 14909440 * 2, 0.5);
    CHECK_NEAR(item(&p, "reference embedding"), (151936.0 * 896 + 49 * 896 + 24 * 1152) * 6, 0.5);
    /* fp32 on the GPU: the reference as the policy */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .has_ref = 1, .cuda = 1});
    CHECK_NEAR(item(&p, "reference model weights"), 494032768.0 * 4, 0.5);
    /* KV cache: 2 (k, v) x 24 layers x 64 sequences x 1000 tokens x 128 floats (2 kv heads x 64) x 4 bytes */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .gen_batch = 64, .gen_len = 1000});
    CHECK_NEAR(item(&p, "KV cache"), 2.0 * 24 * 64 * 1000 * 128 * 4, 0.5);
    CHECK(p.gen > item(&p, "KV cache") && p.peak == p.persistent + p.gen);
    /* paged: the pool's whole blocks (1000 positions -> 63 blocks of 16) */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .gen_batch = 64, .gen_len = 1000, .kv_block = 16,
                                        .kv_tokens = 20000});
    CHECK_NEAR(item(&p, "KV cache, paged"), 2.0 * 24 * 1250 * 16 * 128 * 4, 0.5);
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .gen_batch = 64, .gen_len = 1000, .kv_block = 16});
    CHECK_NEAR(item(&p, "KV cache, paged"), 2.0 * 24 * 64 * 63 * 16 * 128 * 4, 0.5);
    /* bf16 caches on the GPU in bf16 precision: half */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .gen_batch = 64, .gen_len = 1000, .cuda = 1, .bf16 = 1});
    CHECK_NEAR(item(&p, "KV cache"), 2.0 * 24 * 64 * 1000 * 128 * 2, 0.5);
    /* every item of the largest plan fits the table (none dropped) */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 16, .train_len = 1024, .has_ref = 1,
                                        .gen_batch = 64, .gen_len = 1000, .cuda = 1, .bf16 = 1});
    CHECKF(p.n < MEMPLAN_MAX, "%d items", p.n);
    /* the GPU's training scratch: an LM-head chunk (2 GB of fp32 logits:
     * 3533 rows of 151,936, + 1/8) where the flash backward's bf16 q, dO,
     * k, v and fp32 D are smaller (16 x 1024 at 0.5B: 2 x 16 x 1024 x
     * (896 + 128) x 2 + 16 x 14 x 1024 x 4 bytes); packed rows run the
     * GEMM attention: its fixed part plus 16 x 2 x 1024^2 x 12 bytes of
     * score blocks, larger than the chunk at a 1000-token vocabulary; no
     * decode partials either way for a flash shape */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 16, .train_len = 1024, .gen_batch = 64,
                                        .gen_len = 1000, .cuda = 1, .bf16 = 1});
    CHECK_NEAR(item(&p, "GPU scratch"), 3533.0 * 151936 * 4 * 1.125, 0.5);
    CHECK(item(&p, "decode attention partials") < 0);
    ModelConfig cv = c;
    cv.vocab_size = 1000;
    memplan_compute(&p, &(MemPlanInput){.cfg = &cv, .train_batch = 16, .train_len = 1024, .cuda = 1, .bf16 = 1,
                                        .pack = 1});
    double nq = 16.0 * 1024 * 896, nkv = 16.0 * 1024 * 128;
    double gemm_att = nq * 2 + 2 * nkv * 2 + nq * 2 + nq * 4 + 2 * nkv * 4 + 16.0 * 14 * 1024 * 4 +
                      16.0 * 2 * 1024 * 1024 * 12;
    CHECK_NEAR(item(&p, "GPU scratch"), gemm_att * 1.125, 0.5);
    ModelConfig c80 = c; /* head size 80: no flash kernels, decode partials */
    c80.head_dim = 80;
    memplan_compute(&p, &(MemPlanInput){.cfg = &c80, .gen_batch = 64, .gen_len = 1000, .cuda = 1, .bf16 = 1});
    CHECK(item(&p, "decode attention partials") > 0);
    /* activations: acts_bytes; recomputation keeps one layer's */
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 2, .train_len = 64});
    double full = item(&p, "activations");
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 2, .train_len = 64, .recompute = 1});
    CHECK(full > 5 * item(&p, "activations")); /* 24 layers of saved tensors vs one */
}

/* Peaks measured with bench_cuda_model on one H200 (2026-12-01), minus
 * the ~0.5 GB the CUDA context and cuBLAS take: the plan is within 2%.
 * With kept LM-head logits (what bench_cuda_model does since) the peaks
 * were 58.8 and 120.7 GB. */
static void test_measured(void) {
    struct {
        const char *shape;
        int keep_logits;
        double measured_gb;
    } cases[] = {{"qwen2.5-0.5b", 0, 48.7},
                 {"r1-distill-qwen-1.5b", 0, 110.6},
                 {"qwen2.5-0.5b", 1, 58.8},
                 {"r1-distill-qwen-1.5b", 1, 120.7}};
    for (int i = 0; i < 4; i++) {
        ModelConfig c = shape(cases[i].shape);
        MemPlan p;
        memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 16, .train_len = 1024, .cuda = 1, .bf16 = 1,
                                            .keep_logits = cases[i].keep_logits});
        double plan = p.peak / 1e9 + 0.5;
        CHECKF(fabs(plan - cases[i].measured_gb) <= 0.02 * cases[i].measured_gb, "%s: plan %.1f GB, measured %.1f GB",
               cases[i].shape, plan, cases[i].measured_gb);
        printf("%s 16 x 1024 training%s: plan %.1f GB (+0.5 runtime), measured %.1f GB\n", cases[i].shape,
               cases[i].keep_logits ? " with kept logits" : "", plan, cases[i].measured_gb);
    }
}

static size_t g_free;
static void fake_mem_info(size_t *fr, size_t *tot) {
    *fr = g_free;
    *tot = (size_t)80e9;
}

/* Kept LM-head logits: counted whatever their size when asked for, and
 * memplan_run keeps them where the plan with them leaves a tenth of the
 * device free (MODEL_DIR: a model written by r1c init). */
static void test_keep_logits(const char *model_dir) {
    ModelConfig c = shape("qwen2.5-0.5b");
    MemPlan p;
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 16, .train_len = 1024, .cuda = 1, .bf16 = 1});
    CHECK(item(&p, "kept LM-head logits") < 0); /* 10 GB: not by default */
    double base = p.peak;
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 16, .train_len = 1024, .cuda = 1, .bf16 = 1,
                                        .keep_logits = 1});
    CHECK_NEAR(item(&p, "kept LM-head logits"), 16384.0 * 151936 * 4, 0.5);
    CHECK_NEAR(p.peak - base, 16384.0 * 151936 * 4, 0.5);
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 16, .train_len = 1024, .recompute = 1,
                                        .cuda = 1, .bf16 = 1, .keep_logits = 1});
    CHECK(item(&p, "kept LM-head logits") < 0); /* never with recomputation */
    /* the decision, through a backend that reports 80 GB */
    char cfgp[512];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", model_dir);
    ModelConfig tc;
    Err err = {{0}};
    if (hf_config_load(&tc, cfgp, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    MemPlanInput in = {.train_batch = 4, .train_len = 96, .cuda = 1, .keep_logits = 1, .cfg = &tc};
    memplan_compute(&p, &in); /* what memplan_run plans: no weights_hint, so no bf16 copies */
    Backend be = *backend_cpu();
    be.name = "fake-gpu";
    be.mem_info = fake_mem_info;
    in.cfg = NULL;
    in.keep_logits = -1;
    g_free = (size_t)(p.peak + 8.5e9); /* a tenth of 80 GB and more to spare */
    CHECK(memplan_run(model_dir, &be, &in, 0, "", NULL, &err) == 0 && in.keep_logits == 1);
    in.keep_logits = -1;
    g_free = (size_t)(p.peak + 7.5e9); /* fits, but without the tenth to spare */
    CHECK(memplan_run(model_dir, &be, &in, 0, "", NULL, &err) == 0 && in.keep_logits == 0);
    in.keep_logits = -1;
    in.recompute = 1;
    g_free = (size_t)60e9;
    CHECK(memplan_run(model_dir, &be, &in, 0, "", NULL, &err) == 0 && in.keep_logits == 0);
}

static void test_refusal(void) {
    ModelConfig c = shape("qwen2.5-0.5b");
    Backend be = *backend_cpu();
    be.name = "fake-gpu";
    be.mem_info = fake_mem_info;
    MemPlan p;
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 16, .train_len = 1024, .cuda = 1, .bf16 = 1});
    Err err = {{0}};
    g_free = (size_t)60e9;
    CHECK(memplan_check(&p, &be, "lower micro_batch", &err) == 0);
    g_free = (size_t)20e9;
    CHECK(memplan_check(&p, &be, "lower micro_batch", &err) == -1);
    CHECKF(strstr(err.msg, "needs 48.2 GB") && strstr(err.msg, "20.0 GB of 80.0 GB are free") &&
               strstr(err.msg, "largest: activations (micro-batch 16 x 1024 tokens)") &&
               strstr(err.msg, "lower micro_batch"),
           "%s", err.msg);
    /* no memory report (the CPU): nothing to check against */
    CHECK(memplan_check(&p, backend_cpu(), NULL, &err) == 0);
    char buf[4096] = {0};
    FILE *fp = fmemopen(buf, sizeof buf, "w");
    memplan_print(&p, fp, "  ");
    fclose(fp);
    CHECKF(strstr(buf, "peak") && strstr(buf, "AdamW moments"), "%s", buf);
}

static void test_keep_logits(const char *model_dir);

/* r1c grpo / sft --plan print the same plan for a recipe, per rank */
static void test_cli(void) {
    const char *r1c = getenv("R1C_BIN") ? getenv("R1C_BIN") : "build/r1c";
    char dir[64], cmd[1024];
    snprintf(dir, sizeof dir, "/tmp/r1c-memplan-%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s init --shape tiny --out %s/m >/dev/null 2>&1", r1c, dir);
    if (system(cmd) != 0) {
        CHECKF(0, "%s failed", cmd);
        return;
    }
    ModelConfig c = shape("tiny");
    MemPlan p;
    memplan_compute(&p, &(MemPlanInput){.cfg = &c, .train_batch = 4, .train_len = 96, .has_ref = 1, .gen_batch = 32,
                                        .gen_len = 96, .cuda = 1, .bf16 = 1});
    char want[64];
    snprintf(want, sizeof want, "%8.2f GB  peak", p.peak / 1e9);
    snprintf(cmd, sizeof cmd,
             "%s grpo model=%s/m backend=cuda micro_batch=4 gen_batch=32 max_prompt_len=64 max_completion_len=32 "
             "loss.beta=0.1 --plan > %s/plan.txt 2>&1 && grep -q 'memory per rank (1 rank, optim.zero off), planned for "
             "the cuda backend' %s/plan.txt && grep -qF '%s' %s/plan.txt && grep -q 'KV cache (32 sequences x 96 tokens)' "
             "%s/plan.txt",
             r1c, dir, dir, dir, want, dir, dir);
    CHECKF(system(cmd) == 0, "r1c grpo --plan: %s", cmd);
    snprintf(cmd, sizeof cmd,
             "%s sft model=%s/m batch=8 max_len=64 optim.zero=true --plan --ranks 4 > %s/plan2.txt 2>&1 && "
             "grep -q 'memory per rank (4 ranks, optim.zero on), planned for the cpu backend' %s/plan2.txt && "
             "grep -q \"AdamW moments (fp32, this rank's 1/4 slice)\" %s/plan2.txt && "
             "grep -q 'micro-batch 2 x 64 tokens' %s/plan2.txt",
             r1c, dir, dir, dir, dir, dir);
    CHECKF(system(cmd) == 0, "r1c sft --plan: %s", cmd);
    snprintf(cmd, sizeof cmd, "%s/m", dir);
    test_keep_logits(cmd);
    snprintf(cmd, sizeof cmd, "%s grpo model=%s/m --plan --ranks 0 2>/dev/null", r1c, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
}

int main(void) {
    test_counts();
    test_cli();
    test_measured();
    test_refusal();
    return check_summary("test_memplan");
}
