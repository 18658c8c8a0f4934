/* metrics.jsonl: one JSON object per training step, written by the
 * trainers and read back by `r1c plot` and on resume.
 *
 * A line looks like {"step":12,"reward/mean":0.53,"kl":0.0012,...}: "step"
 * first, then keys in the order they were added. Doubles are printed in the
 * shortest form that reads back bit-identical; NaN and +-inf are written as
 * null (JSON cannot spell them), and read back as NaN. Each line is flushed
 * as it is finished, so a crash loses at most the line being written. */
#ifndef R1C_IO_METRICS_H
#define R1C_IO_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "io/jsonl.h"

typedef struct MetricsWriter {
    FILE *fp;
    char path[4096];
    JsonlBuf line;
    int in_row;
    char bad[160]; /* first problem in the current row, reported by metrics_end */
    char **keys;   /* keys of the current row, to refuse duplicates */
    size_t n_keys, cap_keys;
} MetricsWriter;

/* Opens PATH for writing. resume_step < 0 starts a fresh file; otherwise
 * lines after resume_step (and a torn last line) are cut off and new lines
 * are appended (see jsonl_resume). */
int metrics_open(MetricsWriter *w, const char *path, int64_t resume_step, Err *err);
/* A row: metrics_begin, any number of metrics_f64/i64/str, metrics_end.
 * The adders never fail; a bad key (empty, duplicate, invalid UTF-8, or
 * "step") is remembered and makes metrics_end refuse the row. */
void metrics_begin(MetricsWriter *w, int64_t step);
void metrics_f64(MetricsWriter *w, const char *key, double value);
void metrics_i64(MetricsWriter *w, const char *key, int64_t value);
void metrics_str(MetricsWriter *w, const char *key, const char *value);
/* Writes the row as one line and flushes it. */
int metrics_end(MetricsWriter *w, Err *err);
void metrics_close(MetricsWriter *w);

/* The whole file as columns, for plotting. */
typedef struct MetricsTable {
    size_t n_rows, n_cols;
    int64_t *steps; /* (n_rows) */
    char **names;   /* (n_cols) in order of first appearance; "step" excluded */
    double **cols;  /* (n_cols, n_rows); NaN where a row lacks the key, has null, or a non-number */
} MetricsTable;

/* Reads PATH. A trailing partial line (a live run mid-write, or a crash) is
 * ignored; any other line that is not a JSON object with an integer "step"
 * is an error "PATH:LINE: ...". */
int metrics_read(const char *path, MetricsTable *t, Err *err);
/* Column index of name, or -1. */
int metrics_col(const MetricsTable *t, const char *name);
void metrics_table_free(MetricsTable *t);

#endif
