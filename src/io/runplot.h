/* The standard plots of a run directory: reads RUN/metrics.jsonl and writes
 * one PNG per main curve into RUN/plots/ (or another directory). Used by
 * `r1c plot` and by trainers that refresh plots at checkpoints. */
#ifndef R1C_IO_RUNPLOT_H
#define R1C_IO_RUNPLOT_H

#include <stddef.h>

#include "base/err.h"

typedef struct RunPlotOptions {
    const char *const *keys; /* metrics to plot; NULL: the main curves that exist; "all": every column */
    size_t n_keys;
    double smooth;           /* EMA weight in [0, 1); 0 = raw only */
    const char *out_dir;     /* NULL: RUN/plots */
    int width, height;       /* 0: plot defaults */
} RunPlotOptions;

/* Writes the PNGs (each atomically) and returns how many in *n_written.
 * Unknown keys are an error that lists the keys the file has. */
int runplot_write(const char *run_dir, const RunPlotOptions *opt, int *n_written, Err *err);
/* "reward/format/mean" -> "reward_format_mean": a safe file stem. */
void runplot_file_stem(const char *key, char *out, size_t cap);

#endif
