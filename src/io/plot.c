/* Line plot rendering (see plot.h). Layout: title on top, y tick labels on
 * the left, x tick labels and axis label below, legend in whichever inner
 * corner the curves leave emptiest. */
#include "io/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/font.h"

static const Rgb WHITE = {255, 255, 255}, INK = {34, 34, 34}, MUTED = {110, 110, 110}, GRID = {228, 228, 228},
                 FRAME = {160, 160, 160};
/* Distinct, colour-blind-friendly-ish hues, darkest first. */
static const Rgb PALETTE[] = {{31, 119, 180}, {230, 97, 1},  {44, 160, 44},  {214, 39, 40},
                              {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {23, 190, 207}};
#define N_PALETTE (sizeof PALETTE / sizeof PALETTE[0])

int plot_ticks(double lo, double hi, int max_ticks, double *first, double *step) {
    if (!isfinite(lo) || !isfinite(hi) || hi <= lo || max_ticks < 2) return 0;
    double mag = pow(10, floor(log10((hi - lo) / max_ticks)));
    if (!(mag > 0) || !isfinite(mag)) return 0;
    /* The finest 1-2-5 step that still fits: as many labels as allowed. */
    static const double mult[] = {1, 2, 5, 10, 20, 50, 100};
    for (int i = 0; i < 7; i++) {
        double s = mult[i] * mag;
        double f = ceil(lo / s - 1e-9) * s;
        int n = (int)floor((hi - f) / s + 1e-9) + 1;
        if (n >= 1 && n <= max_ticks) {
            *first = f;
            *step = s;
            return n;
        }
    }
    return 0;
}

void plot_tick_label(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0" or "1e-17" at the origin */
    double av = fabs(v);
    if (av == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    if (av >= 1e6 || step < 1e-4) {
        /* Short exponent form: "2.5e-7", not "2.5e-07". */
        char tmp[48], *e;
        snprintf(tmp, sizeof tmp, "%.3g", v);
        if ((e = strchr(tmp, 'e')) != NULL) {
            char sign = e[1] == '-' ? '-' : 0;
            char *d = e + 1 + (e[1] == '-' || e[1] == '+');
            while (*d == '0' && d[1]) d++;
            snprintf(buf, cap, "%.*se%s%s", (int)(e - tmp), tmp, sign ? "-" : "", d);
        } else {
            snprintf(buf, cap, "%s", tmp);
        }
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    /* A step of 0.25 needs two decimals, not one. */
    while (dec < 10 && fabs(round(step * pow(10, dec)) - step * pow(10, dec)) > 1e-6) dec++;
    snprintf(buf, cap, "%.*f", dec, v);
}

void plot_ema(const double *y, size_t n, double weight, double *out) {
    double last = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            out[i] = NAN;
            continue;
        }
        last = last * weight + (1 - weight) * y[i];
        norm = norm * weight + (1 - weight);
        out[i] = last / norm;
    }
}

static Rgb faded(Rgb c) {
    /* 30% colour on white: visible, but clearly behind the smoothed line. */
    return (Rgb){(uint8_t)(255 - (255 - c.r) * 3 / 10), (uint8_t)(255 - (255 - c.g) * 3 / 10),
                 (uint8_t)(255 - (255 - c.b) * 3 / 10)};
}

typedef struct Frame {
    int x0, y0, x1, y1; /* plot area in pixels */
    double xmin, xmax, ymin, ymax;
} Frame;

static double px(const Frame *f, double x) {
    return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0);
}
static double py(const Frame *f, double y) {
    return f->y1 - (y - f->ymin) / (f->ymax - f->ymin) * (f->y1 - f->y0);
}

/* Polyline through the finite points, broken at gaps; a point with no
 * finite neighbour is drawn as a dot so it does not vanish. */
static void draw_curve(Canvas *c, const Frame *f, const double *x, const double *y, size_t n, int thick, Rgb col) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        int xi = (int)lround(px(f, x[i])), yi = (int)lround(py(f, y[i]));
        int next_ok = i + 1 < n && isfinite(x[i + 1]) && isfinite(y[i + 1]);
        int prev_ok = i > 0 && isfinite(x[i - 1]) && isfinite(y[i - 1]);
        if (next_ok)
            canvas_line(c, xi, yi, (int)lround(px(f, x[i + 1])), (int)lround(py(f, y[i + 1])), thick, col);
        else if (!prev_ok)
            canvas_fill(c, xi - 1, yi - 1, xi + 2, yi + 2, col);
    }
}

/* Data range over every series; returns 0 when no finite point exists. */
static int data_range(const PlotSpec *s, double *xmin, double *xmax, double *ymin, double *ymax) {
    int any = 0;
    *xmin = *ymin = INFINITY;
    *xmax = *ymax = -INFINITY;
    for (size_t k = 0; k < s->n_series; k++)
        for (size_t i = 0; i < s->series[k].n; i++) {
            double x = s->series[k].x[i], y = s->series[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            any = 1;
            if (x < *xmin) *xmin = x;
            if (x > *xmax) *xmax = x;
            if (y < *ymin) *ymin = y;
            if (y > *ymax) *ymax = y;
        }
    return any;
}

/* Widens a degenerate or tight range so curves never sit on the frame. */
static void pad_range(double *lo, double *hi, double frac) {
    double span = *hi - *lo;
    if (!(span > 1e-12 * fmax(fabs(*lo), fabs(*hi)))) {
        double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
        *lo -= d;
        *hi += d;
        return;
    }
    *lo -= span * frac;
    *hi += span * frac;
}

static void draw_axes(Canvas *c, const Frame *f, int *label_w) {
    char buf[48];
    double first, step;
    int n = plot_ticks(f->ymin, f->ymax, 8, &first, &step);
    *label_w = 0;
    for (int i = 0; i < n; i++) {
        double v = first + i * step;
        int y = (int)lround(py(f, v));
        canvas_line(c, f->x0, y, f->x1 - 1, y, 1, GRID);
        canvas_line(c, f->x0 - 5, y, f->x0 - 1, y, 1, FRAME);
        plot_tick_label(buf, sizeof buf, v, step);
        int w = canvas_text_width(buf, 1);
        if (w > *label_w) *label_w = w;
        canvas_text(c, f->x0 - 8 - w, y - FONT_H / 2, buf, 1, INK);
    }
    /* Room for a label is ~60 px at this font size. */
    int max_x = (f->x1 - f->x0) / 70 + 1;
    n = plot_ticks(f->xmin, f->xmax, max_x < 2 ? 2 : max_x > 11 ? 11 : max_x, &first, &step);
    for (int i = 0; i < n; i++) {
        double v = first + i * step;
        int x = (int)lround(px(f, v));
        canvas_line(c, x, f->y0, x, f->y1 - 1, 1, GRID);
        canvas_line(c, x, f->y1, x, f->y1 + 4, 1, FRAME);
        plot_tick_label(buf, sizeof buf, v, step);
        canvas_text(c, x - canvas_text_width(buf, 1) / 2, f->y1 + 9, buf, 1, INK);
    }
    canvas_line(c, f->x0, f->y0, f->x1, f->y0, 1, FRAME);
    canvas_line(c, f->x0, f->y1, f->x1, f->y1, 1, FRAME);
    canvas_line(c, f->x0, f->y0, f->x0, f->y1, 1, FRAME);
    canvas_line(c, f->x1, f->y0, f->x1, f->y1, 1, FRAME);
}

/* Counts inked pixels in a box, to put the legend where it hides least. */
static long ink_in(const Canvas *c, int x0, int y0, int x1, int y1) {
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            Rgb p = canvas_get(c, x, y);
            if (p.r < 200 || p.g < 200 || p.b < 200) n++;
        }
    return n;
}

static void draw_legend(Canvas *c, const Frame *f, const PlotSpec *s) {
    int w = 0, line_h = FONT_CELL_H + 6;
    for (size_t k = 0; k < s->n_series; k++) {
        int tw = canvas_text_width(s->series[k].name ? s->series[k].name : "", 1);
        if (tw > w) w = tw;
    }
    w += 36;
    int h = (int)s->n_series * line_h + 8;
    if (w > f->x1 - f->x0 - 16 || h > f->y1 - f->y0 - 16) return; /* no room: skip rather than cover */
    int xs[2] = {f->x1 - w - 8, f->x0 + 8}, ys[2] = {f->y0 + 8, f->y1 - h - 8};
    int bx = xs[0], by = ys[0];
    long best = -1;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            long ink = ink_in(c, xs[i], ys[j], xs[i] + w, ys[j] + h);
            if (best < 0 || ink < best) { best = ink; bx = xs[i]; by = ys[j]; }
        }
    canvas_fill(c, bx, by, bx + w, by + h, WHITE);
    canvas_line(c, bx, by, bx + w - 1, by, 1, FRAME);
    canvas_line(c, bx, by + h - 1, bx + w - 1, by + h - 1, 1, FRAME);
    canvas_line(c, bx, by, bx, by + h - 1, 1, FRAME);
    canvas_line(c, bx + w - 1, by, bx + w - 1, by + h - 1, 1, FRAME);
    for (size_t k = 0; k < s->n_series; k++) {
        int y = by + 6 + (int)k * line_h;
        Rgb col = PALETTE[k % N_PALETTE];
        canvas_line(c, bx + 6, y + FONT_H / 2, bx + 24, y + FONT_H / 2, 2, col);
        canvas_text(c, bx + 30, y, s->series[k].name ? s->series[k].name : "", 1, INK);
    }
}

/* "last 0.5312 @ step 200" for a single series: the number people look for. */
static void last_value(const PlotSpec *s, const double *smoothed, char *buf, size_t cap) {
    buf[0] = 0;
    if (s->n_series != 1) return;
    const PlotSeries *ser = &s->series[0];
    for (size_t i = ser->n; i-- > 0;)
        if (isfinite(ser->y[i]) && isfinite(ser->x[i])) {
            double v = smoothed ? smoothed[i] : ser->y[i];
            snprintf(buf, cap, "last%s %.4g at %s %.10g", smoothed ? " (smoothed)" : "", v, s->xlabel ? s->xlabel : "x", ser->x[i]);
            return;
        }
}

int plot_render(const PlotSpec *s, Canvas *c, Err *err) {
    int W = s->width ? s->width : 960, H = s->height ? s->height : 540;
    if (W < 200 || H < 150) return err_set(err, "plot: %dx%d is too small (at least 200x150)", W, H);
    if (s->smooth < 0 || s->smooth >= 1) return err_set(err, "plot: smoothing weight %g is outside [0, 1)", s->smooth);
    if (canvas_init(c, W, H, WHITE, err) != 0) return -1;
    /* Smoothed copies first: they decide the legend's corner like the raw curves do. */
    double **sm = calloc(s->n_series ? s->n_series : 1, sizeof *sm);
    if (!sm) {
        canvas_free(c);
        return err_set(err, "plot: out of memory");
    }
    for (size_t k = 0; k < s->n_series && s->smooth > 0; k++) {
        if (!(sm[k] = malloc((s->series[k].n ? s->series[k].n : 1) * sizeof(double)))) {
            for (size_t j = 0; j < k; j++) free(sm[j]);
            free(sm);
            canvas_free(c);
            return err_set(err, "plot: out of memory");
        }
        plot_ema(s->series[k].y, s->series[k].n, s->smooth, sm[k]);
    }

    const char *title = s->title ? s->title : "";
    canvas_text(c, (W - canvas_text_width(title, 2)) / 2, 12, title, 2, INK);
    char note[160];
    last_value(s, s->smooth > 0 ? sm[0] : NULL, note, sizeof note);
    if (s->smooth > 0) {
        size_t n = strlen(note);
        snprintf(note + n, sizeof note - n, "%sfaint: raw, bold: EMA %.2g", n ? "   " : "", s->smooth);
    }
    canvas_text(c, W - 16 - canvas_text_width(note, 1), 36, note, 1, MUTED);

    Frame f = {.x0 = 80, .y0 = 52, .x1 = W - 24, .y1 = H - 48};
    int have = data_range(s, &f.xmin, &f.xmax, &f.ymin, &f.ymax);
    if (!have) {
        f.xmin = 0; f.xmax = 1; f.ymin = 0; f.ymax = 1;
    }
    /* A little room at the sides so end points are not hidden by the frame. */
    pad_range(&f.xmin, &f.xmax, 0.015);
    pad_range(&f.ymin, &f.ymax, 0.05);
    /* Leave the y tick labels the room they need. */
    char probe[48];
    double first, step;
    int nt = plot_ticks(f.ymin, f.ymax, 8, &first, &step), label_w = 0;
    for (int i = 0; i < nt; i++) {
        plot_tick_label(probe, sizeof probe, first + i * step, step);
        int w = canvas_text_width(probe, 1);
        if (w > label_w) label_w = w;
    }
    f.x0 = label_w + 10 + (s->ylabel ? 20 : 4);
    draw_axes(c, &f, &label_w);
    if (s->xlabel) canvas_text(c, (f.x0 + f.x1 - canvas_text_width(s->xlabel, 1)) / 2, H - 20, s->xlabel, 1, MUTED);
    if (s->ylabel) canvas_text_up(c, 8, (f.y0 + f.y1 + canvas_text_width(s->ylabel, 1)) / 2, s->ylabel, 1, MUTED);

    canvas_clip(c, f.x0 + 1, f.y0 + 1, f.x1, f.y1);
    for (size_t k = 0; k < s->n_series; k++) {
        const PlotSeries *ser = &s->series[k];
        Rgb col = PALETTE[k % N_PALETTE];
        if (s->smooth > 0) {
            draw_curve(c, &f, ser->x, ser->y, ser->n, 1, faded(col));
        } else {
            draw_curve(c, &f, ser->x, ser->y, ser->n, 2, col);
        }
    }
    for (size_t k = 0; k < s->n_series && s->smooth > 0; k++)
        draw_curve(c, &f, s->series[k].x, sm[k], s->series[k].n, 2, PALETTE[k % N_PALETTE]);
    canvas_unclip(c);
    if (!have) {
        const char *msg = "no data";
        canvas_text(c, (f.x0 + f.x1 - canvas_text_width(msg, 2)) / 2, (f.y0 + f.y1) / 2 - FONT_H, msg, 2, MUTED);
    } else if (s->n_series > 1) {
        draw_legend(c, &f, s);
    }
    for (size_t k = 0; k < s->n_series; k++) free(sm[k]);
    free(sm);
    return 0;
}

int plot_write_png(const PlotSpec *s, const char *path, Err *err) {
    Canvas c;
    if (plot_render(s, &c, err) != 0) return -1;
    int rc = canvas_write_png(&c, path, err);
    canvas_free(&c);
    return rc;
}
