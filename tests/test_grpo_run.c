/* `r1c grpo` end to end on a tiny model the demo pipeline builds in
 * seconds: exact resume (a run stopped at step 2 and resumed equals the
 * uninterrupted run, weights and optimizer bit for bit, metrics line for
 * line but the timings), kill -9 at random moments leaving a loadable
 * checkpoint, SIGINT saving one, and bad recipes refused before any work. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "shell.h"
#include "model/model.h"
#include "train/checkpoint.h"

static const char *R1C = "build/r1c"; /* R1C_BIN overrides (the SAN build) */
static char D[64]; /* work directory */


static const char *COMMON =
    "template=r1-zero 'system_prompt=The Assistant thinks inside <think> </think> and then answers inside <answer> "
    "</answer>.' rewards=math,format:0.5 'stop=</answer>' group_size=4 prompts_per_step=4 max_prompt_len=64 "
    "max_completion_len=24 micro_batch=6 gen_batch=16 optim.lr=1e-3 seed=3 quiet=true plot_every=0 samples_every=1 "
    "mu=2 loss.beta=0.02 loss.epsilon_high=0.28";

/* metrics.jsonl without the wall-clock fields */
static char *metrics_sans_time(const char *run) {
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "sed -E 's/,\"(time\\/[a-z]+|tokens_per_s)\":[^,}]*//g' %s/metrics.jsonl > %s/metrics.notime", run, run);
    if (system(cmd) != 0) return NULL;
    char path[600], *buf = NULL;
    snprintf(path, sizeof path, "%s/metrics.notime", run);
    FILE *fp = fopen(path, "r");
    if (!fp) return NULL;
    buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = 0;
    fclose(fp);
    return buf;
}

static void test_resume_exact(void) {
    CHECK(sh("%s grpo model=%s/demo/base-model data.path=%s/demo/data/train.jsonl %s steps=4 save_every=2 "
             "run_dir=%s/full", R1C, D, D, COMMON, D) == 0);
    CHECK(sh("%s grpo model=%s/demo/base-model data.path=%s/demo/data/train.jsonl %s steps=2 save_every=2 "
             "run_dir=%s/part", R1C, D, D, COMMON, D) == 0);
    CHECK(sh("%s grpo --resume %s/part steps=4", R1C, D) == 0);
    CHECKF(sh("cmp -s %s/full/checkpoints/step-4/model.safetensors %s/part/checkpoints/step-4/model.safetensors", D,
              D) == 0, "resumed weights differ from the uninterrupted run");
    CHECKF(sh("cmp -s %s/full/checkpoints/step-4/optimizer.safetensors "
              "%s/part/checkpoints/step-4/optimizer.safetensors", D, D) == 0, "resumed optimizer state differs");
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/full", D);
    snprintf(b, sizeof b, "%s/part", D);
    char *ma = metrics_sans_time(a), *mb = metrics_sans_time(b);
    CHECK(ma && mb);
    if (ma && mb) CHECKF(!strcmp(ma, mb), "metrics differ:\n%s\nvs\n%s", ma, mb);
    /* the run learned something and logged what GRPO should */
    CHECK(ma && strstr(ma, "\"step\":4") && strstr(ma, "\"reward/math/mean\"") && strstr(ma, "\"kl\"") &&
          strstr(ma, "\"logp_diff/max\""));
    free(ma), free(mb);
    CHECK(sh("test -s %s/full/samples.jsonl && test -s %s/full/recipe.yaml", D, D) == 0);
    /* sampler and trainer agree on the sampled tokens' log-probs */
    CHECK(sh("grep -q '\"logp_diff/max\":[0-9.e-]*' %s/full/metrics.jsonl", D) == 0);
    CHECK(sh("grep -q '\"logp_diff/mean\":[0-9.e-]*' %s/full/metrics.jsonl", D) == 0);
    CHECK(sh("awk -F'\"logp_diff/max\":' 'NF>1{split($2,a,\",\"); if (a[1]+0 > 1e-4) bad=1} END{exit bad}' "
             "%s/full/metrics.jsonl", D) == 0);
    /* A paged KV cache with room for about one group of 16 rollouts of 88
     * positions (25 blocks of 4: sequences are preempted and resumed):
     * the same rollouts, so the same weights bit for bit (the sampler's
     * log-probs, which may move by rounding, never reach the loss). */
    CHECK(sh("%s grpo model=%s/demo/base-model data.path=%s/demo/data/train.jsonl %s steps=4 save_every=2 "
             "kv_block=4 kv_tokens=100 run_dir=%s/paged", R1C, D, D, COMMON, D) == 0);
    CHECKF(sh("cmp -s %s/full/checkpoints/step-4/model.safetensors %s/paged/checkpoints/step-4/model.safetensors", D,
              D) == 0, "a paged KV cache changed the run's weights");
    CHECKF(sh("grep -q '\"gen/preemptions\":[1-9]' %s/paged/metrics.jsonl", D) == 0, "no preemption logged");
    CHECKF(sh("grep -q '\"gen/kv_peak_tokens\":100' %s/paged/metrics.jsonl", D) == 0, "the full pool's peak not logged");
}

/* DAPO-style options: dynamic sampling drops zero-variance groups (and
 * keeps at most prompts_per_step), truncation masking runs, dr_grpo too. */
static void test_variants(void) {
    CHECK(sh("%s grpo model=%s/demo/base-model data.path=%s/demo/data/train.jsonl %s steps=2 save_every=0 "
             "save_at_end=false run_dir=%s/dyn dynamic_sampling=true max_resample=2 loss.mask_truncated=true "
             "loss.type=dr_grpo loss.scale_rewards=none max_completion_len=12", R1C, D, D, COMMON, D) == 0);
    /* every group of 4 kept or dropped; a 12-token cap truncates these ~25-token completions */
    CHECK(sh("grep -q '\"groups/dropped\":' %s/dyn/metrics.jsonl", D) == 0);
    CHECK(sh("awk -F'\"groups/kept\":' 'NF>1{split($2,a,\",\"); if (a[1]+0 > 4) bad=1} END{exit bad}' "
             "%s/dyn/metrics.jsonl", D) == 0);
    CHECK(sh("grep -q '\"truncated_rate\":1[,}]' %s/dyn/metrics.jsonl", D) == 0);
    /* all completions truncated and masked: no gradient, the loss is 0 */
    CHECK(sh("grep -q '\"loss\":0[,}]' %s/dyn/metrics.jsonl", D) == 0);
    CHECK(sh("test ! -d %s/dyn/checkpoints", D) == 0);
}

/* the number after "key": in RUN's metrics.jsonl line of step 1, NAN when absent */
static double metric_step1(const char *run, const char *key) {
    char path[600], line[1 << 14], pat[128];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    snprintf(pat, sizeof pat, "\"%s\":", key);
    FILE *fp = fopen(path, "r");
    double v = NAN;
    while (fp && fgets(line, sizeof line, fp))
        if (strstr(line, "\"step\":1,") && strstr(line, pat)) v = strtod(strstr(line, pat) + strlen(pat), NULL);
    if (fp) fclose(fp);
    return v;
}

/* micro_batch_sort: the same rollouts trained in micro-batches of similar
 * lengths give the first pass's entropy and gradient norm of generation
 * order up to the order of the sums, with less padding (logged as
 * train/padding: with 16 completions of varied length in micro-batches
 * of 6 there is always some). */
static void test_micro_batch_sort(void) {
    const char *runs[2] = {"sorted", "genorder"};
    double pad[2], ent[2], gn[2];
    for (int k = 0; k < 2; k++) {
        CHECK(sh("%s grpo model=%s/demo/base-model data.path=%s/demo/data/train.jsonl %s steps=1 save_every=0 "
                 "save_at_end=false micro_batch_sort=%s run_dir=%s/%s", R1C, D, D, COMMON, k ? "false" : "true", D,
                 runs[k]) == 0);
        char run[300];
        snprintf(run, sizeof run, "%s/%s", D, runs[k]);
        pad[k] = metric_step1(run, "train/padding");
        ent[k] = metric_step1(run, "entropy");
        gn[k] = metric_step1(run, "grad_norm");
    }
    printf("micro_batch_sort: padding %.3f sorted, %.3f in generation order; entropy %.9g / %.9g; grad_norm %.9g / "
           "%.9g\n", pad[0], pad[1], ent[0], ent[1], gn[0], gn[1]);
    CHECKF(pad[0] >= 0 && pad[1] > 0 && pad[0] < pad[1], "padding sorted %g, generation order %g", pad[0], pad[1]);
    CHECKF(ent[1] > 0 && fabs(ent[0] - ent[1]) <= 1e-5 * ent[1], "entropy %.9g sorted vs %.9g", ent[0], ent[1]);
    CHECKF(gn[1] > 0 && fabs(gn[0] - gn[1]) <= 1e-4 * gn[1], "grad_norm %.9g sorted vs %.9g", gn[0], gn[1]);
}

/* r1c sft on the demo's traces: held-out loss logged, a run stopped by
 * SIGINT at any moment and resumed ends with the same weights as an
 * uninterrupted one. */
static void test_sft_cli(void) {
    const char *sft = "template=r1-zero 'system_prompt=The Assistant thinks inside <think> </think> and then answers "
                      "inside <answer> </answer>.' epochs=2 batch=16 optim.lr=1e-3 eval.split=0.1 quiet=true seed=4";
    CHECK(sh("head -300 %s/demo/data/sft.jsonl > %s/sft300.jsonl", D, D) == 0);
    CHECK(sh("%s sft model=%s/demo/base-model data.path=%s/sft300.jsonl %s run_dir=%s/sft-full eval.every=10 "
             ">/dev/null 2>&1", R1C, D, D, sft, D) == 0);
    CHECK(sh("grep -q '\"eval/loss\"' %s/sft-full/metrics.jsonl", D) == 0);
    CHECK(sh("test -f %s/sft-full/checkpoints/step-34/model.safetensors", D) == 0); /* 270 examples / 16 x 2 */
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec %s sft model=%s/demo/base-model data.path=%s/sft300.jsonl %s run_dir=%s/sft-part "
                 "eval.every=10 >/dev/null 2>&1", R1C, D, D, sft, D);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct timespec ts = {0, 700 * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 130 || WEXITSTATUS(st) == 0));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 130)
        CHECK(sh("%s sft --resume %s/sft-part >/dev/null 2>&1", R1C, D) == 0);
    CHECKF(sh("cmp -s %s/sft-full/checkpoints/step-34/model.safetensors %s/sft-part/checkpoints/step-34/model.safetensors",
              D, D) == 0, "resumed SFT weights differ from the uninterrupted run");
    /* malformed data lines are refused with file:line before training */
    CHECK(sh("printf '{\"prompt\": \"a\", \"completion\": \"b\"}\\n{\"prompt\": \"a\"}\\n' > %s/badsft.jsonl", D) == 0);
    CHECK(sh("%s sft model=%s/demo/base-model data.path=%s/badsft.jsonl template=r1-zero run_dir=%s/badsft 2>%s/badsft.err; "
             "test $? -eq 1 && grep -q 'badsft.jsonl:2: expected' %s/badsft.err", R1C, D, D, D, D, D) == 0);
    CHECK(sh("printf '{\"messages\": [{\"role\": \"user\"}]}\\n' > %s/badsft2.jsonl", D) == 0);
    CHECK(sh("%s sft model=%s/demo/base-model data.path=%s/badsft2.jsonl template=r1-zero run_dir=%s/badsft 2>%s/badsft.err; "
             "test $? -eq 1 && grep -q 'badsft2.jsonl:1: messages\\[0\\] needs' %s/badsft.err", R1C, D, D, D, D, D) == 0);
}

/* r1c generate --prompt: the text goes through the model's chat template
 * and tokenizer, every line carries its decoded "text", the speed line
 * follows on stderr; an unknown template is refused. */
static void test_generate_text(void) {
    CHECK(sh("%s generate --model %s/demo/base-model --prompt 'What is 2 + 3?' --template r1-zero --n 2 "
             "--max-new-tokens 12 --temperature 1 --top-p 1 --seed 4 > %s/gen.jsonl 2> %s/gen.err", R1C, D, D, D) == 0);
    CHECK(sh("test $(wc -l < %s/gen.jsonl) -eq 2 && test $(grep -c '\"text\": \"' %s/gen.jsonl) -eq 2", D, D) == 0);
    CHECK(sh("grep -q 'r1c generate: 2 sequences' %s/gen.err", D) == 0);
    CHECK(sh("%s generate --model %s/demo/base-model --prompt hi --template no-such-template 2>/dev/null; "
             "test $? -ne 0", R1C, D) == 0);
}

/* r1c sample -> r1c sft: rejection-sampled traces are SFT-ready. */
static void test_sample_cli(void) {
    CHECK(sh("%s sample --model %s/demo/base-model --data %s/demo/data/train.jsonl --template r1-zero "
             "--system 'The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.' "
             "--n 6 --keep 2 --limit 20 --temperature 1 --top-p 1 --max-new-tokens 32 --out %s/rs.jsonl "
             ">%s/rs.txt 2>&1", R1C, D, D, D, D) == 0);
    CHECK(sh("%s sample --model %s/demo/base-model --data %s/demo/data/train.jsonl --template r1-zero "
             "--system 'The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.' "
             "--n 6 --keep 2 --limit 20 --temperature 1 --top-p 1 --max-new-tokens 32 --kv-block 4 --kv-tokens 300 "
             "--out %s/rs-paged.jsonl >/dev/null 2>&1 && cmp -s %s/rs.jsonl %s/rs-paged.jsonl", R1C, D, D, D, D, D) == 0);
    /* at most 2 per prompt, every kept line well-formed and correct */
    CHECK(sh("n=$(wc -l < %s/rs.jsonl); [ $n -ge 1 ] && [ $n -le 40 ]", D) == 0);
    CHECK(sh("! grep -v '\"math\":{\"score\":1' %s/rs.jsonl | grep -q .", D) == 0);
    CHECK(sh("grep -q '\"kept\"' %s/rs.jsonl.summary.json && grep -q 'pass rate' %s/rs.txt", D, D) == 0);
    CHECK(sh("%s sft model=%s/demo/base-model data.path=%s/rs.jsonl template=r1-zero epochs=1 batch=8 quiet=true "
             "run_dir=%s/distill >/dev/null 2>&1", R1C, D, D, D) == 0);
    CHECK(sh("ls %s/distill/checkpoints/step-*/model.safetensors >/dev/null 2>&1", D) == 0);
}

/* r1c eval on the tiny model: the held-out split, and real GSM8K lines
 * (loading and scoring; a model this small gets them wrong). */
static void test_eval_cli(void) {
    CHECK(sh("%s eval --model %s/demo/base-model --data %s/demo/data/eval.jsonl --template r1-zero "
             "--system 'The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.' "
             "--k 3 --limit 12 --max-new-tokens 32 --temperature 1 --top-p 1 --out %s/eval >%s/eval.txt 2>&1",
             R1C, D, D, D, D) == 0);
    CHECK(sh("grep -q '\"cons@3\"' %s/eval/results.json && grep -q 'pass@1 (mean over k)' %s/eval.txt", D, D) == 0);
    CHECK(sh("test $(wc -l < %s/eval/samples.jsonl) -eq 12", D) == 0);
    /* re-scoring the saved samples reproduces the same numbers */
    CHECK(sh("%s eval --rescore %s/eval/samples.jsonl > %s/rescore.txt", R1C, D, D) == 0);
    CHECK(sh("grep -E '^(pass|cons)' %s/eval.txt > %s/a.txt && grep -E '^(pass|cons)' %s/rescore.txt > %s/b.txt && "
             "cmp -s %s/a.txt %s/b.txt", D, D, D, D, D, D) == 0);
    /* a paged KV cache with a pool smaller than the batch needs: the same
     * samples, so the same numbers */
    CHECK(sh("%s eval --model %s/demo/base-model --data %s/demo/data/eval.jsonl --template r1-zero "
             "--system 'The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.' "
             "--k 3 --limit 12 --max-new-tokens 32 --temperature 1 --top-p 1 --kv-block 4 --kv-tokens 200 "
             "--out %s/eval-paged >%s/eval-paged.txt 2>&1", R1C, D, D, D, D) == 0);
    CHECKF(sh("grep -E '^(pass|cons)' %s/eval-paged.txt > %s/c.txt && cmp -s %s/a.txt %s/c.txt", D, D, D, D) == 0,
           "eval with a paged KV cache scored differently");
    CHECK(sh("grep -qE 'eval: paged KV cache: at most [0-9]+ positions in use, full [1-9]' %s/eval-paged.txt", D) == 0);
    CHECK(sh("%s eval --model %s/demo/base-model --data %s/demo/data/eval.jsonl --kv-tokens 100 2>/dev/null; "
             "test $? -eq 2", R1C, D, D) == 0); /* --kv-tokens without --kv-block */
    if (access("../shared/data/gsm8k/test.jsonl", R_OK) != 0) {
        SKIP("r1c eval on GSM8K: ../shared/data/gsm8k/test.jsonl is absent");
        return;
    }
    CHECK(sh("%s eval --model %s/demo/base-model --data ../shared/data/gsm8k/test.jsonl --template r1-zero --k 2 "
             "--limit 3 --max-new-tokens 8 --out %s/eval-gsm8k >/dev/null 2>&1", R1C, D, D) == 0);
    CHECK(sh("grep -q '\"problems\": 3' %s/eval-gsm8k/results.json", D) == 0);
}

/* The newest complete checkpoint loads as a model and a trainer state. */
static int latest_loads(const char *run) {
    char ck[4096];
    Err err = {{0}};
    if (checkpoint_latest(run, ck, sizeof ck, &err) != 0) return 1; /* none yet is fine */
    Model m;
    if (model_load(&m, ck, backend_cpu(), &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    AdamW opt;
    TrainState st;
    int ok = adamw_create(&opt, &m, 0.9f, 0.999f, 1e-8f, 0, &err) == 0 && checkpoint_load(ck, &m, &opt, &st, &err) == 0;
    if (!ok) fprintf(stderr, "%s: %s\n", ck, err.msg);
    else json_decref(st.extra);
    adamw_free(&opt, &m);
    model_free(&m);
    return ok;
}

static pid_t spawn_grpo(const char *run, int steps, int save_every) {
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "exec %s grpo model=%s/demo/base-model data.path=%s/demo/data/train.jsonl %s steps=%d "
                 "save_every=%d keep_checkpoints=2 run_dir=%s >/dev/null 2>&1",
                 R1C, D, D, COMMON, steps, save_every, run);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void test_kill9(void) {
    char run[300];
    snprintf(run, sizeof run, "%s/killed", D);
    unsigned seed = 12345;
    int loads = 0, n = 6;
    for (int k = 0; k < n; k++) {
        pid_t pid = spawn_grpo(run, 1000, 1);
        seed = seed * 1103515245u + 12345u;
        struct timespec ts = {0, (long)(200 + seed % 1200) * 1000000L};
        nanosleep(&ts, NULL);
        if (ts.tv_nsec > 900000000L) nanosleep(&(struct timespec){1, 0}, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        loads += latest_loads(run);
    }
    CHECKF(loads == n, "%d of %d kill -9 runs left an unloadable newest checkpoint", n - loads, n);
}

static void test_sigint(void) {
    char run[300];
    snprintf(run, sizeof run, "%s/sigint", D);
    pid_t pid = spawn_grpo(run, 1000, 0); /* no periodic saves: only the SIGINT one */
    sleep(2);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 130, "SIGINT: exit status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    char ck[4096];
    Err err;
    CHECKF(checkpoint_latest(run, ck, sizeof ck, &err) == 0, "SIGINT left no checkpoint");
    CHECK(latest_loads(run));
}

static void test_bad_recipes(void) {
    char base[600];
    snprintf(base, sizeof base, "%s grpo model=%s/demo/base-model data.path=%s/demo/data/train.jsonl template=r1-zero",
             R1C, D, D);
#define BAD(expect_rc, pattern, ...)                                                                               \
    do {                                                                                                           \
        int rc_ = sh(__VA_ARGS__);                                                                                 \
        CHECKF(rc_ == (expect_rc), "exit %d, expected %d", rc_, expect_rc);                                        \
        CHECKF(sh("grep -q -- %s %s/err.txt", pattern, D) == 0, "message lacks %s", pattern);                      \
    } while (0)
    BAD(2, "\"key 'group_sise'\"", "%s run_dir=%s/bad group_sise=4 2>%s/err.txt", base, D, D);
    BAD(2, "\"group_size\"", "%s run_dir=%s/bad group_size=1 2>%s/err.txt", base, D, D);
    BAD(2, "\"expected\"", "%s run_dir=%s/bad steps=many 2>%s/err.txt", base, D, D);
    sh("printf 'steps: 3\\ngroup_size: [4]\\n' > %s/bad.yaml", D);
    BAD(2, "\"bad.yaml:2\"", "%s run_dir=%s/bad --recipe %s/bad.yaml 2>%s/err.txt", base, D, D, D);
    sh("printf '{\"prompt\": \"Compute 1+2+3\", \"answer\": \"6\"}\\n{\"question_text\": \"x\"}\\n' > %s/badset.jsonl", D);
    BAD(1, "\"badset.jsonl:2\"", "%s grpo model=%s/demo/base-model data.path=%s/badset.jsonl template=r1-zero "
        "data.format=jsonl run_dir=%s/bad 2>%s/err.txt", R1C, D, D, D, D);
    BAD(1, "\"max_prompt_len\"", "%s run_dir=%s/bad max_prompt_len=5 2>%s/err.txt", base, D, D);
    BAD(1, "\"rewards\"", "%s run_dir=%s/bad rewards=maths 2>%s/err.txt", base, D, D);
    /* nothing was started for any of them */
    CHECKF(sh("test ! -e %s/bad/metrics.jsonl", D) == 0, "a refused recipe left a metrics file");
}

int main(void) {
    if (getenv("R1C_BIN")) R1C = getenv("R1C_BIN");
    if (access(R1C, X_OK) != 0) {
        fprintf(stderr, "%s not built\n", R1C);
        return 1;
    }
    snprintf(D, sizeof D, "/tmp/r1c-grpo-test-%d", (int)getpid());
    /* a tiny pre-trained base model, tokenizer and data, from the demo */
    if (sh("%s demo --quick --sft-epochs 1 --grpo-steps 1 --run-dir %s/demo >%s.log 2>&1", R1C, D, D) != 0) {
        CHECKF(0, "r1c demo --quick failed (see %s.log)", D);
        return check_summary("test_grpo_run");
    }
    test_resume_exact();
    test_variants();
    test_micro_batch_sort();
    test_eval_cli();
    test_sft_cli();
    test_sample_cli();
    test_generate_text();
    test_kill9();
    test_sigint();
    test_bad_recipes();
    sh("rm -rf %s %s.log", D, D);
    return check_summary("test_grpo_run");
}
