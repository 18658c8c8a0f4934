/* Data-parallel GRPO on two GPUs (`make test-cuda` on a machine with at
 * least two): r1c launch --gpus 2 with the nccl communicator against one
 * GPU (cuda-fp32: the same samples and curve within 1e-3 for every step;
 * bf16: the same first step, after which the runs are different samples
 * of the same process, see docs/distributed.md), weights
 * identical on both ranks (R1C_DIST_CHECK), ZeRO-1 bit-identical to the
 * replicated optimizer, the tcp communicator staged through host memory
 * giving the same curve, a rank killed mid-run ending the job within the
 * timeout, and a resume of that job on one GPU. With fewer than two GPUs,
 * or an r1c built without NCCL, it prints SKIP and passes. */
#include "check.h"
#include "dist_helpers.h"

/* GPU sums (cuBLAS, NCCL's ring) round differently from the CPU's and
 * from one GPU's; rewards must still agree where the weights are equal.
 * In fp32 the weights stay equal to ~1e-7 and so do the samples. In bf16
 * a weight that differs in its last fp32 bits can round to another bf16
 * value, which moves a logit by ~1e-3 and, sooner or later, a sampled
 * token: from the second step on the two runs draw different completions,
 * so only the first step (identical weights) is compared exactly. */
#define GPU_REL_TOL 1e-3

static void write_recipe(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/grpo.yaml", D);
    FILE *f = fopen(p, "w");
    fprintf(f,
            "model: %s/demo/base-model\ndata: {path: %s/demo/data/train.jsonl}\ntemplate: r1-zero\n"
            "system_prompt: \"The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.\"\n"
            "rewards: math,format:0.5\nstop: [\"</answer>\"]\ngroup_size: 4\nprompts_per_step: 8\nmax_prompt_len: 64\n"
            "max_completion_len: 24\nmicro_batch: 8\ngen_batch: 32\noptim: {lr: 1.0e-3}\nseed: 3\nquiet: true\n"
            "plot_every: 0\nsamples_every: 1\nmu: 2\nloss: {beta: 0.02, epsilon_high: 0.28}\nbackend: cuda\n",
            D, D);
    fclose(f);
}

/* rewards of the first step (equal weights: the same samples) */
static void first_step_rewards_equal(const char *a, const char *b) {
    CHECKF(sh("head -1 %s/%s/metrics.jsonl | grep -o '\"reward/mean\":[^,]*' > %s/ra && "
              "head -1 %s/%s/metrics.jsonl | grep -o '\"reward/mean\":[^,]*' > %s/rb && cmp -s %s/ra %s/rb",
              D, a, D, D, b, D, D, D) == 0, "%s vs %s: first-step rewards differ", a, b);
}

int main(void) {
    if (getenv("R1C_BIN")) R1C = getenv("R1C_BIN");
    if (access(R1C, X_OK) != 0) {
        CHECKF(0, "%s not built", R1C);
        return check_summary("test_cuda_dist");
    }
    FILE *p = popen("nvidia-smi -L 2>/dev/null | grep -c '^GPU'", "r");
    int gpus = 0;
    if (p) {
        if (fscanf(p, "%d", &gpus) != 1) gpus = 0;
        pclose(p);
    }
    if (gpus < 2) {
        SKIP("data parallel on GPUs: %d GPU(s) visible, 2 needed", gpus);
        return check_summary("test_cuda_dist");
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(D, sizeof D, "/tmp/r1c-cuda-dist-%d", (int)getpid());
    if (sh("%s demo --quick --sft-epochs 1 --base-only --run-dir %s/demo >%s.log 2>&1", R1C, D, D) != 0) {
        CHECKF(0, "r1c demo failed (see %s.log)", D);
        return check_summary("test_cuda_dist");
    }
    write_recipe();
    CHECK(sh("CUDA_VISIBLE_DEVICES=0 %s grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/g1 2>%s/g1.err", R1C, D, D, D) == 0);
    CHECK(sh("CUDA_VISIBLE_DEVICES=0 %s grpo --recipe %s/grpo.yaml steps=3 backend=cuda-fp32 run_dir=%s/f1 2>%s/f1.err",
             R1C, D, D, D) == 0);
    int rc = sh("R1C_DIST_CHECK=1 %s launch --gpus 2 -- grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/g2 >%s/g2.out 2>&1",
                R1C, D, D, D);
    if (rc != 0 && sh("grep -q 'built without NCCL' %s/g2.out", D) == 0) {
        SKIP("data parallel on GPUs: this r1c was built without NCCL");
        return check_summary("test_cuda_dist");
    }
    CHECKF(rc == 0, "2-GPU run failed (see %s/g2.out)", D);
    CHECK(sh("grep -q 'data parallel over 2 ranks (nccl)' %s/g2.out", D) == 0);
    first_step_rewards_equal("g1", "g2");
    compare_runs_rows("g1", "g2", "2 GPUs (nccl, bf16) vs 1, first step", GPU_REL_TOL, 1);
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --gpus 2 -- grpo --recipe %s/grpo.yaml steps=3 backend=cuda-fp32 run_dir=%s/f2 "
             ">%s/f2.out 2>&1", R1C, D, D, D) == 0);
    compare_runs_tol("f1", "f2", "2 GPUs (nccl, fp32) vs 1", GPU_REL_TOL);
    /* ZeRO-1: the same bits as the replicated optimizer */
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --gpus 2 -- grpo --recipe %s/grpo.yaml steps=3 optim.zero=true run_dir=%s/z "
             ">%s/z.out 2>&1", R1C, D, D, D) == 0);
    CHECKF(sh("cmp -s %s/z/checkpoints/step-3/model.safetensors %s/g2/checkpoints/step-3/model.safetensors", D, D) == 0,
           "ZeRO-1 on GPUs changed the weights");
    /* tcp between GPUs: gradients staged through host memory */
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --gpus 2 --backend tcp -- grpo --recipe %s/grpo.yaml steps=3 backend=cuda-fp32 "
             "run_dir=%s/t >%s/t.out 2>&1", R1C, D, D, D) == 0);
    compare_runs_tol("f1", "t", "2 GPUs (tcp, fp32) vs 1", GPU_REL_TOL);
    /* a rank killed mid-run: the job ends, the last checkpoint resumes on one GPU */
    char cmd[4096], ck[300];
    snprintf(cmd, sizeof cmd,
             "exec %s launch --gpus 2 --timeout 30 --grace 5 -- grpo --recipe %s/grpo.yaml steps=1000 save_every=2 "
             "run_dir=%s/k >%s/k.out 2>&1", R1C, D, D, D);
    pid_t l = spawn(cmd);
    snprintf(ck, sizeof ck, "%s/k/checkpoints/step-4", D);
    CHECKF(wait_for(ck, 120), "no checkpoint appeared");
    pid_t r[4];
    if (ranks_of(l, r, 4) == 2) kill(r[1], SIGKILL);
    double took;
    int st = wait_within(l, 60, &took);
    printf("killed rank 1 of 2 GPUs: the job ended after %.2f s\n", took);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0 && took < 40, "status %d after %.1f s", st, took);
    CHECK(sh("grep -q 'rank 1 (pid [0-9]*) was killed by signal 9' %s/k.out", D) == 0);
    long long step = -1;
    char run[300];
    snprintf(run, sizeof run, "%s/k", D);
    CHECK(latest_loads(run, &step) && step >= 4);
    CHECK(sh("CUDA_VISIBLE_DEVICES=0 %s grpo --resume %s/k steps=%lld 2>%s/k1.err", R1C, D, step + 1, D) == 0);
    if (!check_failures) sh("rm -rf %s %s.log", D, D);
    return check_summary("test_cuda_dist");
}
