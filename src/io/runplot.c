/* Run-directory plots (see runplot.h). Which curves are "main" and their
 * titles follow the metric names in docs/run-directory.md. A key ending in
 * "/mean" gets its "/min" and "/max" siblings as extra series when present. */
#include "io/runplot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/metrics.h"
#include "io/plot.h"

typedef struct Known {
    const char *key, *title;
    int smooth; /* 0 for curves that are set, not measured (the lr schedule) */
} Known;

static const Known KNOWN[] = {
    {"reward/mean", "Reward (mean over completions)", 1},
    {"reward", "Reward", 1},
    {"accuracy", "Accuracy", 1},
    {"format_rate", "Format rate (well-formed completions)", 1},
    {"completion_len/mean", "Completion length (tokens)", 1},
    {"kl", "KL divergence to the reference policy", 1},
    {"entropy", "Entropy (nats per token)", 1},
    {"clip_frac", "Clipped fraction (policy ratio)", 1},
    {"grad_norm", "Gradient norm (before clipping)", 1},
    {"lr", "Learning rate", 0},
    {"loss", "Loss", 1},
    {NULL, NULL, 0},
};

void runplot_file_stem(const char *key, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = key; *p && o + 1 < cap; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        out[o] = ok && !(o == 0 && c == '.') ? c : '_'; /* no hidden files */
        o++;
    }
    if (cap) out[o] = 0;
}

/* "reward/<name>/mean" (a per-function reward) -> 1. */
static int is_reward_fn(const char *key) {
    size_t n = strlen(key);
    return !strncmp(key, "reward/", 7) && n > 12 && !strcmp(key + n - 5, "/mean") && memchr(key + 7, '/', n - 12) == NULL;
}

static int has_data(const MetricsTable *t, int c) {
    for (size_t r = 0; r < t->n_rows; r++)
        if (isfinite(t->cols[c][r])) return 1;
    return 0;
}

typedef struct Job {
    const RunPlotOptions *opt;
    const MetricsTable *t;
    const double *x;
    const char *dir;
    int written;
} Job;

/* One figure: columns cols[0..n) with legend names. */
static int plot_cols(Job *j, const char *stem, const char *title, const char *ylabel, const int *cols,
                     const char *const *names, size_t n, int smooth, Err *err) {
    PlotSeries series[16];
    if (n > 16) n = 16;
    for (size_t i = 0; i < n; i++) series[i] = (PlotSeries){names[i], j->x, j->t->cols[cols[i]], j->t->n_rows};
    /* Smoothing a handful of points only hides them. */
    double w = smooth && j->t->n_rows >= 10 ? j->opt->smooth : 0;
    PlotSpec spec = {.title = title, .xlabel = "step", .ylabel = ylabel, .width = j->opt->width,
                     .height = j->opt->height, .series = series, .n_series = n, .smooth = w};
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s.png", j->dir, stem);
    if (len < 0 || (size_t)len >= sizeof path) return err_set(err, "%s: output path too long", j->dir);
    if (plot_write_png(&spec, path, err) != 0) return -1;
    j->written++;
    return 0;
}

/* The figure for one key, with /min and /max siblings of a "/mean" key. */
static int plot_key(Job *j, const char *key, Err *err) {
    const MetricsTable *t = j->t;
    const char *title = key;
    int smooth = 1;
    for (const Known *k = KNOWN; k->key; k++)
        if (!strcmp(k->key, key)) { title = k->title; smooth = k->smooth; }
    char reward_title[300];
    if (is_reward_fn(key)) {
        snprintf(reward_title, sizeof reward_title, "Reward: %.*s (mean)", (int)(strlen(key) - 12), key + 7);
        title = reward_title;
    }
    int cols[3] = {metrics_col(t, key), -1, -1};
    const char *names[3] = {key, "min", "max"};
    size_t n = 1;
    size_t klen = strlen(key);
    if (klen > 5 && !strcmp(key + klen - 5, "/mean") && klen < 256) {
        char sib[264];
        snprintf(sib, sizeof sib, "%.*s/min", (int)(klen - 5), key);
        int lo = metrics_col(t, sib);
        snprintf(sib, sizeof sib, "%.*s/max", (int)(klen - 5), key);
        int hi = metrics_col(t, sib);
        if (lo >= 0 && hi >= 0) {
            cols[1] = lo;
            cols[2] = hi;
            names[0] = "mean";
            n = 3;
        }
    }
    char stem[256];
    runplot_file_stem(key, stem, sizeof stem);
    return plot_cols(j, stem, title, key, cols, names, n, smooth, err);
}

/* Every per-function reward mean in one figure, to compare them. */
static int plot_rewards(Job *j, Err *err) {
    int cols[16];
    const char *names[16];
    char buf[16][64];
    size_t n = 0;
    for (size_t c = 0; c < j->t->n_cols && n < 16; c++) {
        const char *key = j->t->names[c];
        if (!is_reward_fn(key) || !has_data(j->t, (int)c)) continue;
        snprintf(buf[n], sizeof buf[n], "%.*s", (int)(strlen(key) - 12), key + 7);
        names[n] = buf[n];
        cols[n++] = (int)c;
    }
    if (n < 2) return 0;
    return plot_cols(j, "rewards", "Rewards by function (mean)", "reward", cols, names, n, 1, err);
}

static void list_keys(const MetricsTable *t, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (size_t c = 0; c < t->n_cols && o + 8 < cap; c++) {
        int n = snprintf(out + o, cap - o, "%s%s", c ? ", " : "", t->names[c]);
        if (n < 0 || (size_t)n >= cap - o) {
            snprintf(out + o, cap - o, ", ...");
            break;
        }
        o += (size_t)n;
    }
}

static int plot_default(Job *j, Err *err) {
    const MetricsTable *t = j->t;
    int before = j->written;
    for (const Known *k = KNOWN; k->key; k++) {
        int c = metrics_col(t, k->key);
        if (c >= 0 && has_data(t, c) && plot_key(j, k->key, err) != 0) return -1;
        /* Per-function rewards right after the overall reward. */
        if (!strcmp(k->key, "reward")) {
            for (size_t i = 0; i < t->n_cols; i++)
                if (is_reward_fn(t->names[i]) && has_data(t, (int)i) && plot_key(j, t->names[i], err) != 0) return -1;
            if (plot_rewards(j, err) != 0) return -1;
        }
    }
    if (j->written > before) return 0;
    /* None of the usual names: this is some other run; plot what it has. */
    for (size_t c = 0; c < t->n_cols; c++)
        if (has_data(t, (int)c) && plot_key(j, t->names[c], err) != 0) return -1;
    return 0;
}

int runplot_write(const char *run_dir, const RunPlotOptions *opt, int *n_written, Err *err) {
    *n_written = 0;
    if (opt->smooth < 0 || opt->smooth >= 1) return err_set(err, "smoothing weight %g is outside [0, 1)", opt->smooth);
    char path[4096], dir[4096];
    if (snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir) >= (int)sizeof path ||
        snprintf(dir, sizeof dir, "%s", opt->out_dir ? opt->out_dir : run_dir) >= (int)sizeof dir ||
        (!opt->out_dir && strlen(dir) + 7 >= sizeof dir))
        return err_set(err, "%s: path too long", run_dir);
    if (!opt->out_dir) strcat(dir, "/plots");
    MetricsTable t;
    if (metrics_read(path, &t, err) != 0) return -1;
    if (t.n_rows == 0) {
        metrics_table_free(&t);
        return err_set(err, "%s: no complete lines yet", path);
    }
    int rc = 0;
    double *x = malloc(t.n_rows * sizeof *x);
    if (!x) rc = err_set(err, "out of memory");
    for (size_t r = 0; x && r < t.n_rows; r++) x[r] = (double)t.steps[r];
    /* Check every requested key before writing anything. */
    for (size_t i = 0; rc == 0 && i < opt->n_keys; i++)
        if (strcmp(opt->keys[i], "all") != 0 && metrics_col(&t, opt->keys[i]) < 0) {
            char have[1024];
            list_keys(&t, have, sizeof have);
            rc = err_set(err, "%s: no metric '%s' (it has: %s)", path, opt->keys[i], have);
        }
    if (rc == 0) rc = dir_make(dir, err);
    Job j = {opt, &t, x, dir, 0};
    if (rc == 0 && !opt->keys) rc = plot_default(&j, err);
    for (size_t i = 0; rc == 0 && opt->keys && i < opt->n_keys; i++) {
        if (!strcmp(opt->keys[i], "all")) {
            for (size_t c = 0; rc == 0 && c < t.n_cols; c++) rc = plot_key(&j, t.names[c], err);
        } else {
            rc = plot_key(&j, opt->keys[i], err);
        }
    }
    *n_written = j.written;
    free(x);
    metrics_table_free(&t);
    return rc;
}
