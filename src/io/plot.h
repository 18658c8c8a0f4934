/* Line plots as PNG: a title, axes with "nice" tick labels, a grid, one or
 * more series with a legend, an optional EMA-smoothed curve drawn over a
 * faint raw one, and gaps where values are NaN. Enough to read a training
 * curve at a glance without Python. */
#ifndef R1C_IO_PLOT_H
#define R1C_IO_PLOT_H

#include <stddef.h>

#include "base/err.h"
#include "io/canvas.h"

typedef struct PlotSeries {
    const char *name; /* legend label */
    const double *x, *y; /* (n); non-finite y (or x) leaves a gap */
    size_t n;
} PlotSeries;

typedef struct PlotSpec {
    const char *title;
    const char *xlabel, *ylabel; /* may be NULL */
    int width, height;           /* 0: 960 x 540 */
    const PlotSeries *series;
    size_t n_series;
    double smooth; /* EMA weight in [0, 1): 0 draws the raw curve only */
} PlotSpec;

/* Draws the figure into a new canvas (the caller frees it). */
int plot_render(const PlotSpec *spec, Canvas *out, Err *err);
/* Renders and writes PATH atomically. */
int plot_write_png(const PlotSpec *spec, const char *path, Err *err);

/* Tick positions for [lo, hi]: a step of 1, 2 or 5 times a power of ten
 * giving at most max_ticks ticks, the first tick at or above lo. Returns the
 * number of ticks (0 if the range is empty or not finite). */
int plot_ticks(double lo, double hi, int max_ticks, double *first, double *step);
/* Formats a tick value with just the decimals that step needs. */
void plot_tick_label(char *buf, size_t cap, double v, double step);
/* TensorBoard-style debiased EMA; NaN inputs give NaN outputs and do not
 * disturb the average. */
void plot_ema(const double *y, size_t n, double weight, double *out);

#endif
