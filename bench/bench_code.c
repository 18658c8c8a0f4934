/* Code-reward throughput: programs per second through the sandbox pool
 * (namespace mode, and basic mode), for a trivial Python program and for
 * HumanEval (every canonical solution against its tests). Baseline,
 * measured in the same run: the same programs started with plain
 * fork + exec + wait (no sandbox), the same number at a time. Each row
 * is the best of 3 rounds, alternating sandbox and baseline, so a burst of
 * load from elsewhere hits both sides alike. */
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reward/code.h"
#include "reward/reward.h"

extern char **environ;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n runs of python3 -c CODE[i % m] (or /bin/true when codes is NULL), `par` at a time, no sandbox. */
static double baseline(char **codes, int m, int n, int par) {
    double t0 = now_s();
    int running = 0, started = 0;
    while (started < n || running > 0) {
        while (started < n && running < par) {
            pid_t pid;
            char *py[] = {"/usr/bin/python3", "-s", "-B", "-c", codes ? codes[started % m] : "", NULL};
            char *tr[] = {"/bin/true", NULL};
            char **argv = codes ? py : tr;
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
            posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
            if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0) running++;
            posix_spawn_file_actions_destroy(&fa);
            started++;
        }
        if (wait(NULL) > 0) running--;
        else break;
    }
    return n / (now_s() - t0);
}

/* n empty tasks (/bin/true) straight through the pool: the sandbox's own cost. */
static double empty_tasks(SandboxMode mode, int n, int par) {
    SandboxConfig c;
    sandbox_config_default(&c);
    c.mode = mode;
    SandboxStep st = {.argv = {"/bin/true", NULL}};
    SandboxTask *t = calloc((size_t)n, sizeof *t);
    SandboxResult *r = calloc((size_t)n, sizeof *r);
    for (int i = 0; i < n; i++) t[i] = (SandboxTask){NULL, 0, &st, 1};
    Err err = {{0}};
    double t0 = now_s();
    int rc = sandbox_run_many(&c, t, n, r, par, &err);
    double dt = now_s() - t0;
    for (int i = 0; i < n; i++) sandbox_result_free(&r[i]);
    free(t), free(r);
    return rc ? 0 : n / dt;
}

static double sandboxed(const char *mode, int workers, json_t **recs, char **comps, int n, int *passed) {
    RewardSet rs;
    Err err = {{0}};
    char o1[64], o2[64];
    snprintf(o1, sizeof o1, "mode=%s", mode);
    snprintf(o2, sizeof o2, "workers=%d", workers);
    if (rewardset_parse(&rs, "code", &err) < 0 || rewardset_option(&rs, o1, &err) < 0 ||
        rewardset_option(&rs, o2, &err) < 0) {
        fprintf(stderr, "bench_code: %s\n", err.msg);
        return 0;
    }
    RewardInput *in = calloc((size_t)n, sizeof *in);
    double *tot = calloc((size_t)n, sizeof *tot);
    RewardScore *each = calloc((size_t)n, sizeof *each);
    for (int i = 0; i < n; i++) in[i] = (RewardInput){recs[i], comps[i], strlen(comps[i])};
    double t0 = now_s();
    int rc = rewardset_score_batch(&rs, in, n, tot, each, &err);
    double dt = now_s() - t0;
    *passed = 0;
    for (int i = 0; i < n && rc == 0; i++) *passed += tot[i] == 1.0;
    if (rc) fprintf(stderr, "bench_code: %s\n", err.msg);
    free(in), free(tot), free(each);
    rewardset_free(&rs);
    return rc ? 0 : n / dt;
}

int main(void) {
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP bench_code: /usr/bin/python3 not installed\n");
        return 0;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int par = cpus > 0 ? (int)cpus : 1;
    /* trivial: read a number, print it doubled (stdin/stdout, one case) */
    int nt = 200;
    json_t *rec = json_loads("{\"inputs\": [\"21\\n\"], \"outputs\": [\"42\\n\"]}", 0, NULL);
    json_t **recs = calloc((size_t)nt, sizeof *recs);
    char **comps = calloc((size_t)nt, sizeof *comps);
    for (int i = 0; i < nt; i++) recs[i] = rec, comps[i] = "```python\nprint(int(input()) * 2)\n```";
    char *tcode = "print(42)";
    int p1, p2;
    double base_t = 0, ns_t = 0, basic_t = 0;
    for (int round = 0; round < 3; round++) {
        base_t = fmax(base_t, baseline(&tcode, 1, nt, par));
        ns_t = fmax(ns_t, sandboxed("namespaces", par, recs, comps, nt, &p1));
        basic_t = fmax(basic_t, sandboxed("basic", par, recs, comps, nt, &p2));
    }
    printf("%d workers, %d trivial programs, best of 3 rounds (all must pass: namespaces %d, basic %d)\n", par, nt, p1, p2);
    printf("| programs/s | sandbox | no sandbox (fork+exec) | ratio |\n|---|---|---|---|\n");
    printf("| trivial, namespaces | %.1f | %.1f | %.2fx |\n", ns_t, base_t, ns_t / base_t);
    printf("| trivial, basic | %.1f | %.1f | %.2fx |\n", basic_t, base_t, basic_t / base_t);
    double e_base = 0, e_ns = 0, e_basic = 0;
    for (int round = 0; round < 3; round++) {
        e_base = fmax(e_base, baseline(NULL, 1, 500, par));
        e_ns = fmax(e_ns, empty_tasks(SANDBOX_MODE_NAMESPACES, 500, par));
        e_basic = fmax(e_basic, empty_tasks(SANDBOX_MODE_BASIC, 500, par));
    }
    printf("| empty task (/bin/true), namespaces | %.1f | %.1f | %.2fx |\n", e_ns, e_base, e_ns / e_base);
    printf("| empty task (/bin/true), basic | %.1f | %.1f | %.2fx |\n", e_basic, e_base, e_basic / e_base);
    free(recs), free(comps);
    json_decref(rec);

    FILE *f = fopen("../shared/data/humaneval/HumanEval.jsonl", "r");
    if (!f) {
        printf("SKIP humaneval rows: ../shared/data/humaneval/HumanEval.jsonl not found\n");
        return 0;
    }
    int n = 0;
    recs = calloc(200, sizeof *recs);
    comps = calloc(200, sizeof *comps);
    char **progs = calloc(200, sizeof *progs);
    char *line = NULL;
    size_t cap = 0;
    while (n < 200 && getline(&line, &cap, f) > 0) {
        json_t *r = json_loads(line, 0, NULL);
        const char *sol = json_string_value(json_object_get(r, "canonical_solution"));
        const char *pr = json_string_value(json_object_get(r, "prompt"));
        const char *te = json_string_value(json_object_get(r, "test"));
        const char *ep = json_string_value(json_object_get(r, "entry_point"));
        if (!sol || !pr || !te || !ep) {
            json_decref(r);
            continue;
        }
        size_t l = strlen(sol) + 32, pl = strlen(pr) + strlen(sol) + strlen(te) + strlen(ep) + 32;
        comps[n] = malloc(l);
        snprintf(comps[n], l, "```python\n%s```", sol);
        progs[n] = malloc(pl);
        snprintf(progs[n], pl, "%s%s\n\n%s\n\ncheck(%s)\n", pr, sol, te, ep);
        recs[n++] = r;
    }
    free(line);
    fclose(f);
    base_t = ns_t = basic_t = 0;
    for (int round = 0; round < 3; round++) {
        base_t = fmax(base_t, baseline(progs, n, n, par));
        ns_t = fmax(ns_t, sandboxed("namespaces", par, recs, comps, n, &p1));
        basic_t = fmax(basic_t, sandboxed("basic", par, recs, comps, n, &p2));
    }
    printf("| HumanEval (%d problems), namespaces | %.1f | %.1f | %.2fx |\n", n, ns_t, base_t, ns_t / base_t);
    printf("| HumanEval, basic | %.1f | %.1f | %.2fx |\n", basic_t, base_t, basic_t / base_t);
    printf("HumanEval canonical solutions passing: namespaces %d/%d, basic %d/%d\n", p1, n, p2, n);
    for (int i = 0; i < n; i++) json_decref(recs[i]), free(comps[i]), free(progs[i]);
    free(recs), free(comps), free(progs);
    return 0;
}
