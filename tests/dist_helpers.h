/* Helpers of the data-parallel end-to-end tests (test_dist_run.c on CPU
 * ranks, cuda/test_cuda_dist.c on GPUs): shell commands, run directories
 * compared step by step, checkpoints compared and loaded, ranks found and
 * waited for. Include after check.h. */
#ifndef R1C_TESTS_DIST_HELPERS_H
#define R1C_TESTS_DIST_HELPERS_H

#include "shell.h"
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "io/metrics.h"
#include "model/model.h"
#include "train/checkpoint.h"

static const char *R1C = "build/r1c";
static char D[64]; /* work directory */


/* Tolerances for "the same curve" (measured: 2-rank vs 1-rank relative
 * differences of 1e-8 .. 5e-6 over these runs; see docs/distributed.md). */
#define REL_TOL 1e-4

static inline int near(double a, double b, double rel) { return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-9; }

/* Same rewards, lengths and groups exactly (same samples), loss / KL /
 * grad norm within rel, step by step, over the first `rows` steps (all
 * when rows <= 0). */
static inline void compare_runs_rows(const char *a, const char *b, const char *what, double rel, size_t rows) {
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s/%s/metrics.jsonl", D, a);
    snprintf(pb, sizeof pb, "%s/%s/metrics.jsonl", D, b);
    MetricsTable ta, tb;
    Err err;
    if (metrics_read(pa, &ta, &err) != 0 || metrics_read(pb, &tb, &err) != 0) {
        CHECKF(0, "%s: %s", what, err.msg);
        return;
    }
    CHECKF(ta.n_rows == tb.n_rows && ta.n_rows > 0, "%s: %zu vs %zu metric rows", what, ta.n_rows, tb.n_rows);
    if (rows == 0 || rows > ta.n_rows) rows = ta.n_rows;
    static const char *const EXACT[] = {"reward/mean", "reward/std", "accuracy", "format_rate", "completion_len/mean",
                                        "truncated_rate", "groups/kept", "groups/dropped", "eval/pass1",
                                        "eval/format_rate", "eval/completion_len", NULL};
    static const char *const CLOSE[] = {"loss", "kl", "grad_norm", "entropy", "clip_frac", "eval/loss", NULL};
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; (pass ? CLOSE : EXACT)[k]; k++) {
            const char *name = (pass ? CLOSE : EXACT)[k];
            int ca = metrics_col(&ta, name), cb = metrics_col(&tb, name);
            CHECKF((ca < 0) == (cb < 0), "%s: '%s' in one run only", what, name);
            if (ca < 0 || cb < 0) continue;
            for (size_t r = 0; r < rows && r < tb.n_rows; r++) {
                double x = ta.cols[ca][r], y = tb.cols[cb][r];
                if (isnan(x) && isnan(y)) continue;
                CHECKF(pass ? near(x, y, rel) : x == y, "%s: step %lld %s: %.17g vs %.17g", what,
                       (long long)ta.steps[r], name, x, y);
            }
        }
    metrics_table_free(&ta), metrics_table_free(&tb);
}

static inline void compare_runs_tol(const char *a, const char *b, const char *what, double rel) {
    compare_runs_rows(a, b, what, rel, 0);
}

static inline void compare_runs(const char *a, const char *b, const char *what) {
    compare_runs_tol(a, b, what, REL_TOL);
}

/* largest |a - b| over the weights of two checkpoints */
static inline double weights_diff(const char *ca, const char *cb) {
    Model a, b;
    Err err;
    if (model_load(&a, ca, backend_cpu(), &err) != 0) return fprintf(stderr, "%s\n", err.msg), INFINITY;
    if (model_load(&b, cb, backend_cpu(), &err) != 0) return fprintf(stderr, "%s\n", err.msg), model_free(&a), INFINITY;
    double d = a.n_floats == b.n_floats ? 0 : INFINITY;
    for (size_t i = 0; i < a.n_floats && i < b.n_floats; i++) d = fmax(d, fabs((double)a.param_mem[i] - b.param_mem[i]));
    model_free(&a), model_free(&b);
    return d;
}

static inline int latest_loads(const char *run, long long *step) {
    char ck[4096];
    Err err = {{0}};
    if (checkpoint_latest(run, ck, sizeof ck, &err) != 0) return 0;
    Model m;
    if (model_load(&m, ck, backend_cpu(), &err) != 0) return 0;
    AdamW opt;
    TrainState st;
    int ok = adamw_create(&opt, &m, 0.9f, 0.999f, 1e-8f, 0, &err) == 0 && checkpoint_load(ck, &m, &opt, &st, &err) == 0;
    if (ok) *step = st.step, json_decref(st.extra);
    adamw_free(&opt, &m);
    model_free(&m);
    return ok;
}

static inline pid_t spawn(const char *cmd) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* the ranks a launcher started (its children), in rank order */
static inline int ranks_of(pid_t launcher, pid_t *out, int cap) {
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)launcher, (int)launcher);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    int n = 0;
    if (fgets(buf, sizeof buf, f))
        for (char *s = strtok(buf, " \n"); s && n < cap; s = strtok(NULL, " \n")) out[n++] = (pid_t)atoi(s);
    fclose(f);
    return n;
}

/* Waits for run/checkpoints/step-N to exist (or gives up). */
static inline int wait_for(const char *path, double secs) {
    double t0 = clock_seconds();
    while (access(path, F_OK) != 0) {
        if (clock_seconds() - t0 > secs) return 0;
        usleep(20 * 1000);
    }
    return 1;
}

/* Waits for pid; returns its wait status, or -1 after `secs`. */
static inline int wait_within(pid_t pid, double secs, double *took) {
    double t0 = clock_seconds();
    int st;
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            *took = clock_seconds() - t0;
            return st;
        }
        if (clock_seconds() - t0 > secs) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            *took = clock_seconds() - t0;
            return -1;
        }
        usleep(20 * 1000);
    }
}

#endif
