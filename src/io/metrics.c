/* metrics.jsonl writer and reader (see metrics.h). Lines are built by hand
 * rather than through jansson so keys keep their order and doubles get the
 * shortest round-trip spelling. */
#include "io/metrics.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

#define METRICS_MAX_FILE ((size_t)1 << 30)

int metrics_open(MetricsWriter *w, const char *path, int64_t resume_step, Err *err) {
    memset(w, 0, sizeof *w);
    if (strlen(path) >= sizeof w->path) return err_set(err, "%s: path too long", path);
    snprintf(w->path, sizeof w->path, "%s", path);
    if (resume_step >= 0 && jsonl_resume(path, resume_step, err) != 0) return -1;
    w->fp = fopen(path, resume_step >= 0 ? "ab" : "wb");
    if (!w->fp) return err_set(err, "%s: cannot open for writing: %s", path, strerror(errno));
    return 0;
}

void metrics_begin(MetricsWriter *w, int64_t step) {
    w->line.len = 0;
    w->line.oom = 0;
    w->bad[0] = 0;
    for (size_t i = 0; i < w->n_keys; i++) free(w->keys[i]);
    w->n_keys = 0;
    w->in_row = 1;
    jsonl_buf_printf(&w->line, "{\"step\":%lld", (long long)step);
}

/* Writes `,"key":` after checking the key; returns 0 if the value may follow. */
static int put_key(MetricsWriter *w, const char *key) {
    if (w->bad[0]) return -1;
    if (!w->in_row) {
        snprintf(w->bad, sizeof w->bad, "metric '%.80s' added outside metrics_begin/metrics_end", key);
        return -1;
    }
    if (!key[0] || !strcmp(key, "step")) {
        snprintf(w->bad, sizeof w->bad, "metric key '%.80s' is reserved or empty", key);
        return -1;
    }
    for (size_t i = 0; i < w->n_keys; i++)
        if (!strcmp(w->keys[i], key)) {
            snprintf(w->bad, sizeof w->bad, "metric '%.80s' added twice in one step", key);
            return -1;
        }
    if (w->n_keys == w->cap_keys) {
        size_t cap = w->cap_keys ? 2 * w->cap_keys : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) { w->line.oom = 1; return -1; }
        w->keys = k;
        w->cap_keys = cap;
    }
    char *copy = strdup(key);
    if (!copy) { w->line.oom = 1; return -1; }
    w->keys[w->n_keys++] = copy;
    jsonl_buf_put(&w->line, ",", 1);
    if (jsonl_buf_string(&w->line, key) != 0) {
        snprintf(w->bad, sizeof w->bad, "metric key is not valid UTF-8");
        return -1;
    }
    jsonl_buf_put(&w->line, ":", 1);
    return 0;
}

void metrics_f64(MetricsWriter *w, const char *key, double value) {
    if (put_key(w, key) == 0) jsonl_buf_double(&w->line, value);
}

void metrics_i64(MetricsWriter *w, const char *key, int64_t value) {
    if (put_key(w, key) == 0) jsonl_buf_printf(&w->line, "%lld", (long long)value);
}

void metrics_str(MetricsWriter *w, const char *key, const char *value) {
    if (put_key(w, key) != 0) return;
    if (jsonl_buf_string(&w->line, value) != 0)
        snprintf(w->bad, sizeof w->bad, "value of metric '%.80s' is not valid UTF-8", key);
}

int metrics_end(MetricsWriter *w, Err *err) {
    if (!w->in_row) return err_set(err, "%s: metrics_end without metrics_begin", w->path);
    w->in_row = 0;
    if (w->bad[0]) return err_set(err, "%s: %s", w->path, w->bad);
    jsonl_buf_put(&w->line, "}\n", 2);
    if (w->line.oom) return err_set(err, "%s: out of memory building a line", w->path);
    if (fwrite(w->line.data, 1, w->line.len, w->fp) != w->line.len || fflush(w->fp) != 0)
        return err_set(err, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

void metrics_close(MetricsWriter *w) {
    if (w->fp) fclose(w->fp);
    for (size_t i = 0; i < w->n_keys; i++) free(w->keys[i]);
    free(w->keys);
    jsonl_buf_free(&w->line);
    memset(w, 0, sizeof *w);
}

/* ---- reader ---- */

int metrics_col(const MetricsTable *t, const char *name) {
    for (size_t c = 0; c < t->n_cols; c++)
        if (!strcmp(t->names[c], name)) return (int)c;
    return -1;
}

void metrics_table_free(MetricsTable *t) {
    for (size_t c = 0; c < t->n_cols; c++) {
        free(t->names[c]);
        free(t->cols[c]);
    }
    free(t->names);
    free(t->cols);
    free(t->steps);
    memset(t, 0, sizeof *t);
}

/* Adds a column filled with NaN for the rows so far; returns its index or -1. */
static int add_col(MetricsTable *t, const char *name, size_t row_cap) {
    char **names = realloc(t->names, (t->n_cols + 1) * sizeof *names);
    if (!names) return -1;
    t->names = names;
    double **cols = realloc(t->cols, (t->n_cols + 1) * sizeof *cols);
    if (!cols) return -1;
    t->cols = cols;
    double *col = malloc(row_cap * sizeof *col);
    char *copy = strdup(name);
    if (!col || !copy) { free(col); free(copy); return -1; }
    for (size_t r = 0; r < row_cap; r++) col[r] = NAN;
    t->names[t->n_cols] = copy;
    t->cols[t->n_cols] = col;
    return (int)t->n_cols++;
}

static int grow_rows(MetricsTable *t, size_t *row_cap) {
    size_t cap = *row_cap ? 2 * *row_cap : 256;
    int64_t *steps = realloc(t->steps, cap * sizeof *steps);
    if (!steps) return -1;
    t->steps = steps;
    for (size_t c = 0; c < t->n_cols; c++) {
        double *col = realloc(t->cols[c], cap * sizeof *col);
        if (!col) return -1;
        for (size_t r = *row_cap; r < cap; r++) col[r] = NAN;
        t->cols[c] = col;
    }
    *row_cap = cap;
    return 0;
}

static int read_row(MetricsTable *t, json_t *obj, size_t row, size_t row_cap) {
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(obj, key, v) {
        if (!strcmp(key, "step")) continue;
        /* Rows usually repeat the previous row's key order: try that column first. */
        int c = (i < t->n_cols && !strcmp(t->names[i], key)) ? (int)i : metrics_col(t, key);
        if (c < 0 && (c = add_col(t, key, row_cap)) < 0) return -1;
        t->cols[c][row] = json_is_number(v) ? json_number_value(v) : NAN;
        i = (size_t)c + 1;
    }
    return 0;
}

int metrics_read(const char *path, MetricsTable *t, Err *err) {
    memset(t, 0, sizeof *t);
    char *buf;
    size_t len;
    if (file_read_all(path, &buf, &len, METRICS_MAX_FILE, err) != 0) return -1;
    size_t row_cap = 0, pos = 0;
    long lineno = 0;
    int rc = 0;
    while (pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) break; /* partial last line */
        size_t n = (size_t)(nl - (buf + pos));
        lineno++;
        const char *line = buf + pos;
        pos += n + 1;
        if (n == 0) continue;
        json_error_t je;
        json_t *obj = json_loadb(line, n, 0, &je);
        json_t *step = obj ? json_object_get(obj, "step") : NULL;
        if (!json_is_integer(step)) {
            rc = err_set(err, "%s:%ld: %s", path, lineno, !obj ? je.text : "not an object with an integer \"step\"");
            json_decref(obj);
            break;
        }
        if (t->n_rows == row_cap && grow_rows(t, &row_cap) != 0) {
            json_decref(obj);
            rc = err_set(err, "%s: out of memory", path);
            break;
        }
        t->steps[t->n_rows] = (int64_t)json_integer_value(step);
        if (read_row(t, obj, t->n_rows, row_cap) != 0) rc = err_set(err, "%s: out of memory", path);
        json_decref(obj);
        if (rc) break;
        t->n_rows++;
    }
    free(buf);
    if (rc) metrics_table_free(t);
    return rc;
}
