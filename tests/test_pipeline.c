/* `r1c pipeline` end to end on a tiny recipe (the four R1 stages plus
 * distillation into a fresh student, which must beat its own score before
 * distillation): every stage runs and leaves its marker and output, a
 * second run skips them all, a run killed in the
 * middle continues when started again, and bad recipes are refused with
 * the file and the stage named. */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "shell.h"

static const char *R1C = "build/r1c";
static char D[64];


/* A number of an eval stage's results.json ("pass1", "answered"), or -1 */
static double read_result(const char *path, const char *key) {
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(buf, pat);
    return p ? atof(p + strlen(pat)) : -1;
}

#define SYS "\"The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.\""

static void write_recipe(const char *path) {
    FILE *fp = fopen(path, "w");
    fprintf(fp,
            "run_dir: unused\n"
            "stages:\n"
            "  - {name: base, type: demo_base, set: {quick: \"true\", sft-epochs: \"1\", seed: \"3\"}}\n"
            "  - name: cold_start\n    type: sft\n"
            "    set: {model: \"@base/base-model\", data.path: \"@base/data/sft.jsonl\", template: r1-zero,\n"
            "          system_prompt: " SYS ", epochs: 1, batch: 32, optim.lr: 1e-3, quiet: \"true\"}\n"
            "  - name: rl\n    type: grpo\n"
            "    set: {model: \"@cold_start\", data.path: \"@base/data/train.jsonl\", template: r1-zero,\n"
            "          system_prompt: " SYS ", group_size: 4, prompts_per_step: 4, max_completion_len: 32,\n"
            "          stop: [\"</answer>\"], steps: 6, save_every: 2, quiet: \"true\"}\n"
            "  - name: reject\n    type: sample\n"
            "    set: {model: \"@rl\", data: \"@base/data/train.jsonl\", template: r1-zero, system: " SYS ",\n"
            "          n: \"4\", keep: \"2\", limit: \"240\", temperature: \"1\", top-p: \"1\", max-new-tokens: \"32\"}\n"
            "  - name: sft\n    type: sft\n"
            "    set: {model: \"@base/base-model\", data.path: \"@reject\", template: r1-zero, system_prompt: " SYS ",\n"
            "          epochs: 1, batch: 8, quiet: \"true\"}\n"
            "  - name: eval\n    type: eval\n"
            "    set: {model: \"@sft\", data: \"@base/data/eval.jsonl\", template: r1-zero, system: " SYS ",\n"
            "          k: \"2\", limit: \"20\", max-new-tokens: \"32\"}\n"
            /* distillation: a fresh student SFT'd on the sampled traces */
            "  - {name: student, type: init, set: {shape: tiny, tokenizer: \"@base/data/tokenizer.json\", seed: \"7\", std: \"0.05\"}}\n"
            "  - name: student_before\n    type: eval\n"
            "    set: {model: \"@student\", data: \"@base/data/eval.jsonl\", template: r1-zero, system: " SYS ",\n"
            "          k: \"2\", limit: \"100\", temperature: \"1\", top-p: \"1\", max-new-tokens: \"32\"}\n"
            "  - name: distill\n    type: sft\n"
            "    set: {model: \"@student\", data.path: \"@reject\", template: r1-zero, system_prompt: " SYS ",\n"
            "          epochs: 30, batch: 8, optim.lr: 2e-3, quiet: \"true\"}\n"
            "  - name: student_after\n    type: eval\n"
            "    set: {model: \"@distill\", data: \"@base/data/eval.jsonl\", template: r1-zero, system: " SYS ",\n"
            "          k: \"2\", limit: \"100\", temperature: \"1\", top-p: \"1\", max-new-tokens: \"32\"}\n");
    fclose(fp);
}

int main(void) {
    if (getenv("R1C_BIN")) R1C = getenv("R1C_BIN");
    snprintf(D, sizeof D, "/tmp/r1c-pipeline-test-%d", (int)getpid());
    CHECK(sh("mkdir -p %s", D) == 0);
    char recipe[128];
    snprintf(recipe, sizeof recipe, "%s/tiny.yaml", D);
    write_recipe(recipe);
    /* full run */
    CHECK(sh("%s pipeline %s run_dir=%s/run >%s/log1 2>&1", R1C, recipe, D, D) == 0);
    const char *stages[] = {"base", "cold_start", "rl", "reject", "sft", "eval", "student", "student_before", "distill",
                            "student_after"};
    enum { NST = sizeof stages / sizeof stages[0] };
    for (int i = 0; i < NST; i++) CHECKF(sh("test -s %s/run/%s/STAGE_DONE", D, stages[i]) == 0, "stage %s", stages[i]);
    /* the distilled student beats itself before distillation */
    char pb[256], pa[256];
    snprintf(pb, sizeof pb, "%s/run/student_before/results.json", D);
    snprintf(pa, sizeof pa, "%s/run/student_after/results.json", D);
    double before = read_result(pb, "pass1"), after = read_result(pa, "pass1");
    double ans0 = read_result(pb, "answered"), ans1 = read_result(pa, "answered");
    CHECKF(before >= 0 && after > before, "student pass@1 before %.3f, after %.3f", before, after);
    CHECKF(ans0 >= 0 && ans1 > ans0, "student answers in the format: before %.3f, after %.3f", ans0, ans1);
    printf("distilled student: held-out pass@1 %.3f -> %.3f, answered %.3f -> %.3f\n", before, after, ans0, ans1);
    CHECK(sh("test -s %s/run/reject/data.jsonl && test -s %s/run/eval/results.json", D, D) == 0);
    CHECK(sh("grep -q 'step-6' %s/run/rl/STAGE_DONE", D) == 0);
    /* the RL stage started from the cold-start checkpoint */
    CHECK(sh("grep -q 'cold_start/checkpoints/step-' %s/run/rl/recipe.yaml", D) == 0);
    /* a second run does nothing */
    CHECK(sh("%s pipeline %s run_dir=%s/run >%s/log2 2>&1", R1C, recipe, D, D) == 0);
    CHECK(sh("test $(grep -c 'done earlier' %s/log2) -eq %d", D, (int)NST) == 0);
    /* killed in the middle (here: during or after the first stages), then continued */
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "exec %s pipeline %s run_dir=%s/killed >%s/log3 2>&1", R1C, recipe, D, D);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    sleep(6);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    sh("pkill -9 -f 'run_dir=%s/killed' 2>/dev/null; pkill -9 -f '%s/killed/' 2>/dev/null; sleep 1", D, D);
    CHECK(sh("%s pipeline %s run_dir=%s/killed >%s/log4 2>&1", R1C, recipe, D, D) == 0);
    for (int i = 0; i < NST; i++)
        CHECKF(sh("test -s %s/killed/%s/STAGE_DONE", D, stages[i]) == 0, "after kill: %s", stages[i]);
    /* bad recipes */
    sh("printf 'run_dir: x\\nstages:\\n  - {name: a, type: pretrain}\\n' > %s/bad1.yaml", D);
    CHECK(sh("%s pipeline %s/bad1.yaml 2>%s/err1; test $? -eq 1 && grep -q \"bad1.yaml: stage 'a': type 'pretrain'\" %s/err1",
             R1C, D, D, D) == 0);
    sh("printf 'run_dir: x\\nstages:\\n  - {name: a, type: eval, set: {model: \"@nothere\"}}\\n' > %s/bad2.yaml", D);
    CHECK(sh("%s pipeline %s/bad2.yaml run_dir=%s/bad2 2>%s/err2; grep -q \"'@nothere' names no earlier stage\" %s/err2",
             R1C, D, D, D, D) == 0);
    sh("printf 'run_dir: x\\nstages: [\\n' > %s/bad3.yaml", D);
    CHECK(sh("%s pipeline %s/bad3.yaml 2>%s/err3; grep -q 'bad3.yaml:' %s/err3", R1C, D, D, D) == 0);
    /* --dry-run: every shipped recipe (tiny and real-checkpoint ones) expands
     * and its sft/grpo stages' recipes check out, nothing is created; a
     * misspelt key is caught and named */
    const char *recipes[] = {"r1-tiny", "r1-zero-tiny", "distill-tiny", "r1-zero-qwen2.5-math-1.5b",
                             "r1-qwen2.5-0.5b-instruct", "distill-r1-distill-qwen-1.5b"};
    for (int i = 0; i < 6; i++) {
        CHECKF(sh("%s pipeline recipes/%s.yaml run_dir=%s/dry --dry-run >%s/dry.out 2>&1", R1C, recipes[i], D, D) == 0,
               "dry run of recipes/%s.yaml", recipes[i]);
        CHECKF(sh("test $(grep -c '^pipeline: stage' %s/dry.out) -eq $(grep -c '^  - ' recipes/%s.yaml) && test ! -e %s/dry",
                  D, recipes[i], D) == 0,
               "recipes/%s.yaml: one command per stage, no files", recipes[i]);
    }
    sh("sed 's/group_size: 8/group_sise: 8/' recipes/r1-zero-tiny.yaml > %s/typo.yaml", D);
    CHECK(sh("%s pipeline %s/typo.yaml run_dir=%s/dry --dry-run >/dev/null 2>%s/err4; test $? -eq 1 && "
             "grep -q \"stage 'rl' (grpo): its recipe does not check out\" %s/err4",
             R1C, D, D, D, D) == 0);
    sh("rm -rf %s", D);
    return check_summary("test_pipeline");
}
