/* Data-parallel GRPO and SFT end to end, several CPU processes over tcp on
 * the tiny model the demo builds: 2 and 3 ranks give the 1-rank curves
 * within float rounding (tolerances below, docs/distributed.md), weights
 * stay identical across ranks (R1C_DIST_CHECK), a rank killed mid-run or
 * hung ends the job within the timeout with a message naming it, the last
 * checkpoint loads and resumes on 1 and on 3 ranks, two "nodes" started
 * separately (torchrun-style variables, and r1c launch --nnodes 2) train
 * together, Ctrl-C saves on every rank, and launcher misuse and ranks with
 * different recipes are refused. */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dist_helpers.h"

/* the GRPO recipe of test_grpo_run (mu = 2, a KL term), written to a file */
static void write_recipe(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/grpo.yaml", D);
    FILE *f = fopen(p, "w");
    fprintf(f,
            "model: %s/demo/base-model\ndata: {path: %s/demo/data/train.jsonl}\ntemplate: r1-zero\n"
            "system_prompt: \"The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.\"\n"
            "rewards: math,format:0.5\nstop: [\"</answer>\"]\ngroup_size: 4\nprompts_per_step: 4\nmax_prompt_len: 64\n"
            "max_completion_len: 24\nmicro_batch: 6\ngen_batch: 16\noptim: {lr: 1.0e-3}\nseed: 3\nquiet: true\n"
            "plot_every: 0\nsamples_every: 1\nmu: 2\nloss: {beta: 0.02, epsilon_high: 0.28}\n",
            D, D);
    fclose(f);
    snprintf(p, sizeof p, "%s/sft.yaml", D);
    f = fopen(p, "w");
    fprintf(f,
            "model: %s/demo/base-model\ndata: {path: %s/sft80.jsonl}\ntemplate: r1-zero\nepochs: 1\nbatch: 16\n"
            "optim: {lr: 1.0e-3}\neval: {split: 0.1, every: 4}\nquiet: true\nseed: 4\n",
            D, D);
    fclose(f);
}

/* 2 and 3 ranks against 1 (identical weights on every rank checked after
 * every optimizer step by R1C_DIST_CHECK). */
static void test_grpo_matches(void) {
    CHECK(sh("%s grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/g1 2>%s/g1.err", R1C, D, D, D) == 0);
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --nproc 2 -- grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/g2 >%s/g2.out "
             "2>&1", R1C, D, D, D) == 0);
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --nproc 3 -- r1c grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/g3 "
             ">%s/g3.out 2>&1", R1C, D, D, D) == 0);
    compare_runs("g1", "g2", "2 ranks vs 1");
    compare_runs("g1", "g3", "3 ranks vs 1");
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/g1/checkpoints/step-3", D);
    snprintf(b, sizeof b, "%s/g2/checkpoints/step-3", D);
    double d = weights_diff(a, b);
    /* the yardstick: one process with another thread count (other GEMM
     * blockings) differs from itself by as much */
    CHECK(sh("OMP_NUM_THREADS=1 %s grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/g1t 2>/dev/null", R1C, D, D) == 0);
    snprintf(b, sizeof b, "%s/g1t/checkpoints/step-3", D);
    double base = weights_diff(a, b);
    printf("GRPO 3 steps (lr 1e-3), largest weight difference: 1 vs 2 ranks %.3g; 1 rank, 2 vs 1 threads %.3g\n", d,
           base);
    CHECKF(d <= fmax(2 * base, 1e-4), "weights after 3 steps differ by %g (threads alone: %g)", d, base);
    /* rank 0 alone writes the run directory: one line per step, samples, the sample group is rank 0's */
    CHECK(sh("test $(grep -c '\"step\"' %s/g2/metrics.jsonl) -eq 3 && cmp -s %s/g1/samples.jsonl %s/g2/samples.jsonl",
             D, D, D) == 0);
    CHECK(sh("grep -q '\\[rank 0\\] r1c grpo: data parallel over 2 ranks (tcp)' %s/g2.out", D) == 0);
}

/* ZeRO-1: sharded AdamW moments give the same bits as replicated ones
 * (the update is element-wise), checkpoints hold the full moments, and a
 * sharded checkpoint resumes sharded on 3 ranks and unsharded on 1. */
static void test_zero(void) {
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --nproc 2 -- grpo --recipe %s/grpo.yaml steps=3 optim.zero=true quiet=false "
             "run_dir=%s/z >%s/z.out 2>&1", R1C, D, D, D) == 0);
    CHECK(sh("grep -q 'memory per rank (2 ranks, optim.zero on)' %s/z.out", D) == 0);
    CHECKF(sh("cmp -s %s/z/checkpoints/step-3/model.safetensors %s/g2/checkpoints/step-3/model.safetensors", D, D) == 0,
           "ZeRO-1 weights differ from the replicated optimizer's");
    CHECKF(sh("cmp -s %s/z/checkpoints/step-3/optimizer.safetensors %s/g2/checkpoints/step-3/optimizer.safetensors", D,
              D) == 0, "gathered ZeRO-1 moments differ from the replicated optimizer's");
    CHECK(sh("cp -r %s/z %s/z1 && cp -r %s/z %s/z3", D, D, D, D) == 0);
    CHECK(sh("%s grpo --resume %s/z1 steps=5 optim.zero=false 2>/dev/null", R1C, D) == 0);
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --nproc 3 -- grpo --resume %s/z3 steps=5 >/dev/null 2>&1", R1C, D) == 0);
    compare_runs("z1", "z3", "ZeRO-1 checkpoint resumed on 1 rank vs sharded on 3");
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --nproc 2 -- sft --recipe %s/sft.yaml optim.zero=true run_dir=%s/sz "
             ">/dev/null 2>&1", R1C, D, D) == 0);
    CHECKF(sh("cmp -s %s/sz/checkpoints/step-5/model.safetensors %s/s2/checkpoints/step-5/model.safetensors", D, D) == 0,
           "SFT ZeRO-1 weights differ from the replicated optimizer's");
}

/* DAPO-style variants whose statistics span the batch: dynamic sampling
 * (global keep/drop), batch-std advantages, dapo token normaliser; and the
 * held-out evaluation split over 3 ranks. */
static void test_grpo_variants(void) {
    char v[600];
    snprintf(v, sizeof v,
             "steps=2 dynamic_sampling=true max_resample=2 loss.type=dapo loss.scale_rewards=batch "
             "loss.mask_truncated=true prompts_per_step=3 save_at_end=false eval.path=%s/demo/data/eval.jsonl "
             "eval.limit=5 eval.samples=2 eval.every=1", D);
    CHECK(sh("%s grpo --recipe %s/grpo.yaml %s run_dir=%s/v1 2>/dev/null", R1C, D, v, D) == 0);
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --nproc 3 -- grpo --recipe %s/grpo.yaml %s run_dir=%s/v2 >/dev/null 2>&1",
             R1C, D, v, D) == 0);
    compare_runs("v1", "v2", "dapo + dynamic sampling + evaluation, 3 ranks vs 1");
    CHECK(sh("test $(grep -c eval/pass1 %s/v2/metrics.jsonl) -eq 3", D) == 0);
}

static void test_sft_matches(void) {
    CHECK(sh("head -80 %s/demo/data/sft.jsonl > %s/sft80.jsonl", D, D) == 0);
    CHECK(sh("%s sft --recipe %s/sft.yaml run_dir=%s/s1 2>/dev/null", R1C, D, D) == 0);
    CHECK(sh("R1C_DIST_CHECK=1 %s launch --nproc 2 -- sft --recipe %s/sft.yaml run_dir=%s/s2 >/dev/null 2>&1", R1C,
             D, D) == 0);
    compare_runs("s1", "s2", "SFT 2 ranks vs 1");
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/s1/checkpoints/step-5", D); /* 72 examples / 16 */
    snprintf(b, sizeof b, "%s/s2/checkpoints/step-5", D);
    double d = weights_diff(a, b);
    printf("SFT 1 vs 2 ranks, 5 steps: largest weight difference %.3g\n", d);
    CHECKF(d < 1e-4, "SFT weights differ by %g", d);
}

/* kill -9 one rank mid-run; then resume on 1 rank and on 3 */
static void test_kill_and_resume(void) {
    char cmd[4096], ck[300];
    snprintf(cmd, sizeof cmd,
             "exec %s launch --nproc 2 --timeout 20 --grace 2 -- grpo --recipe %s/grpo.yaml steps=1000 save_every=2 "
             "keep_checkpoints=2 run_dir=%s/k >%s/k.out 2>&1", R1C, D, D, D);
    pid_t l = spawn(cmd);
    snprintf(ck, sizeof ck, "%s/k/checkpoints/step-4", D);
    CHECKF(wait_for(ck, 60), "no checkpoint appeared");
    usleep(150 * 1000); /* somewhere in a step */
    pid_t r[4];
    int n = ranks_of(l, r, 4);
    CHECKF(n == 2, "launcher has %d children", n);
    if (n == 2) kill(r[1], SIGKILL);
    double took;
    int st = wait_within(l, 20, &took);
    printf("killed rank 1: the job ended after %.2f s\n", took);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0, "launcher status %d", st);
    CHECKF(took < 10, "the job took %.1f s to end after a rank died", took);
    CHECK(sh("grep -q 'r1c launch: rank 1 (pid [0-9]*) was killed by signal 9' %s/k.out", D) == 0);
    CHECK(sh("grep -q 'job failed: rank 1 was killed by signal 9' %s/k.out", D) == 0);
    char run[300];
    snprintf(run, sizeof run, "%s/k", D);
    long long step = -1;
    CHECKF(latest_loads(run, &step), "the newest checkpoint does not load");
    if (step < 0) return;
    /* resume the same checkpoint on 1 rank and on 3: same curve */
    CHECK(sh("cp -r %s/k %s/k1 && cp -r %s/k %s/k3", D, D, D, D) == 0);
    CHECK(sh("%s grpo --resume %s/k1 steps=%lld 2>%s/k1.err", R1C, D, step + 2, D) == 0);
    CHECK(sh("%s launch --nproc 3 -- grpo --resume %s/k3 steps=%lld >%s/k3.out 2>&1", R1C, D, step + 2, D) == 0);
    CHECK(sh("test -f %s/k1/checkpoints/step-%lld/model.safetensors && "
             "test -f %s/k3/checkpoints/step-%lld/model.safetensors", D, step + 2, D, step + 2) == 0);
    compare_runs("k1", "k3", "resumed on 1 rank vs on 3");
}

/* SIGSTOP one rank: the others give up after R1C_DIST_TIMEOUT */
static void test_hang(void) {
    char cmd[4096], ck[300];
    snprintf(cmd, sizeof cmd,
             "exec %s launch --nproc 2 --timeout 2 --grace 1 -- grpo --recipe %s/grpo.yaml steps=1000 save_every=1 "
             "run_dir=%s/h >%s/h.out 2>&1", R1C, D, D, D);
    pid_t l = spawn(cmd);
    snprintf(ck, sizeof ck, "%s/h/checkpoints/step-1", D);
    CHECKF(wait_for(ck, 60), "no checkpoint appeared");
    pid_t r[4];
    int n = ranks_of(l, r, 4);
    if (n == 2) kill(r[1], SIGSTOP);
    double took;
    int st = wait_within(l, 20, &took);
    printf("stopped rank 1: the job ended after %.2f s (timeout 2 s, grace 1 s)\n", took);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0, "launcher status %d", st);
    CHECKF(took < 8, "the job took %.1f s to end with a hung rank", took);
    CHECK(sh("grep -q 'no data from rank 1 for 2 s' %s/h.out", D) == 0);
    if (n == 2) kill(r[1], SIGKILL), kill(r[1], SIGCONT); /* the launcher killed it already; be sure */
}

/* two "nodes" started separately: raw torchrun-style variables, then
 * r1c launch --nnodes 2, each node with one rank */
static void test_two_nodes(void) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 RANK=1 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=localhost MASTER_PORT=%d "
             "R1C_DIST_TIMEOUT=30 exec %s grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/n2 >%s/n2.r1 2>&1",
             20000 + getpid() % 20000, R1C, D, D, D);
    pid_t p1 = spawn(cmd);
    CHECK(sh("OMP_NUM_THREADS=1 RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=localhost MASTER_PORT=%d "
             "R1C_DIST_TIMEOUT=30 %s grpo --recipe %s/grpo.yaml steps=3 run_dir=%s/n2 2>%s/n2.r0",
             20000 + getpid() % 20000, R1C, D, D, D) == 0);
    double took;
    int st = wait_within(p1, 30, &took);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank 1 status %d", st);
    compare_runs("g1", "n2", "2 nodes (environment) vs 1 rank");
    int port = 20000 + (getpid() + 7) % 20000;
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 exec %s launch --nnodes 2 --node-rank 1 --nproc 1 --master-addr 127.0.0.1 --master-port %d -- grpo "
             "--recipe %s/grpo.yaml steps=3 run_dir=%s/n3 >%s/n3.node1 2>&1", R1C, port, D, D, D);
    p1 = spawn(cmd);
    CHECK(sh("OMP_NUM_THREADS=1 %s launch --nnodes 2 --node-rank 0 --nproc 1 --master-addr 127.0.0.1 --master-port %d -- grpo --recipe "
             "%s/grpo.yaml steps=3 run_dir=%s/n3 >%s/n3.node0 2>&1", R1C, port, D, D, D) == 0);
    st = wait_within(p1, 30, &took);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "node 1 status %d", st);
    CHECK(sh("grep -q 'node 1 of 2, world 2' %s/n3.node1", D) == 0);
    compare_runs("g1", "n3", "r1c launch --nnodes 2 vs 1 rank");
}

/* Ctrl-C on the launcher: forwarded, every rank agrees, rank 0 saves */
static void test_sigint(void) {
    char cmd[4096], ck[300];
    snprintf(cmd, sizeof cmd,
             "exec %s launch --nproc 2 -- grpo --recipe %s/grpo.yaml steps=1000 save_every=0 run_dir=%s/i "
             ">%s/i.out 2>&1", R1C, D, D, D);
    pid_t l = spawn(cmd);
    snprintf(ck, sizeof ck, "%s/i/metrics.jsonl", D);
    CHECK(wait_for(ck, 60));
    usleep(600 * 1000);
    kill(l, SIGINT);
    double took;
    int st = wait_within(l, 30, &took);
    CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 130, "launcher status %d", st);
    char run[300];
    snprintf(run, sizeof run, "%s/i", D);
    long long step = -1;
    CHECKF(latest_loads(run, &step) && step >= 1, "no checkpoint saved on Ctrl-C");
}

static void test_launch_usage(void) {
    CHECK(sh("%s launch --nproc 2 2>%s/u.err", R1C, D) == 2);
    CHECK(sh("grep -q 'no command' %s/u.err", D) == 0);
    CHECK(sh("%s launch --nproc 0 -- grpo 2>%s/u.err", R1C, D) == 2);
    CHECK(sh("%s launch --nproc 2 --node-rank 1 -- grpo 2>%s/u.err", R1C, D) == 2);
    CHECK(sh("%s launch --nproc 2 --backend mpi -- grpo 2>%s/u.err", R1C, D) == 2);
    /* a rank that fails at once (a bad recipe key): its status, and no hang */
    CHECK(sh("%s launch --nproc 2 -- grpo --recipe %s/grpo.yaml group_sise=3 >%s/u.out 2>&1", R1C, D, D) == 2);
    CHECK(sh("grep -q 'exited with status 2' %s/u.out && grep -q \"\\[rank [01]\\] .*group_sise\" %s/u.out", D, D) == 0);
    /* ranks started with different recipes: refused before any work */
    char cmd[4096];
    int port = 20000 + (getpid() + 13) % 20000;
    snprintf(cmd, sizeof cmd,
             "RANK=1 WORLD_SIZE=2 MASTER_PORT=%d R1C_DIST_TIMEOUT=20 exec %s grpo --recipe %s/grpo.yaml steps=1 seed=9 "
             "run_dir=%s/mm >%s/mm.r1 2>&1", port, R1C, D, D, D);
    pid_t p1 = spawn(cmd);
    CHECK(sh("RANK=0 WORLD_SIZE=2 MASTER_PORT=%d R1C_DIST_TIMEOUT=20 %s grpo --recipe %s/grpo.yaml steps=1 run_dir=%s/mm "
             "2>%s/mm.r0", port, R1C, D, D, D) == 1);
    double took;
    int st = wait_within(p1, 30, &took);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(sh("grep -q \"rank 1's recipe differs from rank 0's\" %s/mm.r0 && grep -q 'recipe differs' %s/mm.r1", D, D) == 0);
    CHECK(sh("test ! -d %s/mm/checkpoints", D) == 0);
    /* nccl asked for on the CPU backend: a clear refusal */
    CHECK(sh("%s launch --nproc 2 --backend nccl -- grpo --recipe %s/grpo.yaml steps=1 run_dir=%s/u >%s/u.out 2>&1", R1C,
             D, D, D) == 1);
    CHECK(sh("grep -q 'nccl communicator needs backend=cuda' %s/u.out", D) == 0);
}

int main(void) {
    if (getenv("R1C_BIN")) R1C = getenv("R1C_BIN");
    if (access(R1C, X_OK) != 0) {
        fprintf(stderr, "%s not built\n", R1C);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    setenv("OMP_WAIT_POLICY", "passive", 0); /* as make test runs it: ranks share 2 cores */
    snprintf(D, sizeof D, "/tmp/r1c-dist-test-%d", (int)getpid());
    if (sh("%s demo --quick --sft-epochs 1 --base-only --run-dir %s/demo >%s.log 2>&1", R1C, D, D) != 0) {
        CHECKF(0, "r1c demo --quick failed (see %s.log)", D);
        return check_summary("test_dist_run");
    }
    write_recipe();
    void (*tests[])(void) = {test_grpo_matches, test_grpo_variants, test_sft_matches, test_zero, test_kill_and_resume,
                             test_hang, test_two_nodes, test_sigint, test_launch_usage};
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        double t0 = clock_seconds();
        tests[i]();
        printf("  (test %zu: %.1f s)\n", i, clock_seconds() - t0);
    }
    if (!check_failures) sh("rm -rf %s %s.log", D, D);
    return check_summary("test_dist_run");
}
