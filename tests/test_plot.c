/* io/plot, io/canvas, io/font, io/runplot: PNGs that libpng decodes to the
 * rendered pixels, a known series lands where it should, odd data (empty,
 * all NaN, constant, single point) draws without crashing, ticks, EMA. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/canvas.h"
#include "io/font.h"
#include "io/metrics.h"
#include "io/plot.h"
#include "io/runplot.h"
#include "check.h"

static char dir[] = "/tmp/r1c-plot-XXXXXX";

/* Decodes an RGB PNG with libpng's simplified API. */
static uint8_t *read_png(const char *path, int *w, int *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return NULL;
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return NULL;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    return buf;
}

static int is_blueish(Rgb p) {
    return p.b > 150 && p.r < 100; /* the first palette colour (31, 119, 180) */
}

static void test_font(void) {
    /* Every glyph row is 5 pixels of '#'/'.': a typo would shift a letter. */
    for (int c = ' '; c <= '~'; c++)
        for (int r = 0; r < FONT_H; r++) CHECKF(font_row((unsigned char)c, r) < 32, "glyph '%c' row %d", c, r);
    CHECK(font_row('A', 3) == 0x1F);       /* "#####" crossbar */
    CHECK(font_row(' ', 3) == 0);
    CHECK(font_row(200, 0) == font_row('?', 0));
    CHECK(font_row('A', 7) == 0 && font_row('A', -1) == 0);
    CHECK(canvas_text_width("abc", 2) == (3 * FONT_CELL_W - 1) * 2);
}

static void test_ticks(void) {
    double first, step;
    int n = plot_ticks(0, 1, 8, &first, &step);
    CHECK(n == 6 && first == 0 && fabs(step - 0.2) < 1e-12);
    n = plot_ticks(0.13, 0.97, 8, &first, &step);
    CHECK(n >= 4 && n <= 8 && first >= 0.13 && first - step < 0.13);
    n = plot_ticks(-37, 1234, 11, &first, &step);
    CHECK(n >= 5 && n <= 11 && step == 200 && first == 0);
    CHECK(plot_ticks(1, 1, 8, &first, &step) == 0);
    CHECK(plot_ticks(0, NAN, 8, &first, &step) == 0);
    char buf[48];
    plot_tick_label(buf, sizeof buf, 0.25, 0.25);
    CHECK_STREQ(buf, "0.25");
    plot_tick_label(buf, sizeof buf, 0.4, 0.2);
    CHECK_STREQ(buf, "0.4");
    plot_tick_label(buf, sizeof buf, 1500, 500);
    CHECK_STREQ(buf, "1500");
    plot_tick_label(buf, sizeof buf, 2e-7, 2e-7);
    CHECK_STREQ(buf, "2e-7");
    plot_tick_label(buf, sizeof buf, 1e-18, 0.1);
    CHECK_STREQ(buf, "0");
}

static void test_ema(void) {
    double y[5] = {1, 1, NAN, 3, 3}, out[5];
    plot_ema(y, 5, 0.5, out);
    CHECK(out[0] == 1 && out[1] == 1); /* debiased: no pull toward 0 at the start */
    CHECK(isnan(out[2]));
    CHECK(out[3] > 1 && out[3] < 3);
    plot_ema(y, 5, 0, out);
    CHECK(out[4] == 3);
}

static void test_known_series(void) {
    enum { N = 50 };
    double x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = i;
        y[i] = i < 25 ? 0.0 : 1.0; /* a step: two flat runs */
    }
    PlotSeries s = {"step fn", x, y, N};
    PlotSpec spec = {.title = "Known", .xlabel = "step", .ylabel = "y", .width = 400, .height = 300, .series = &s, .n_series = 1};
    char path[256];
    snprintf(path, sizeof path, "%s/known.png", dir);
    Err err = {{0}};
    CHECKF(plot_write_png(&spec, path, &err) == 0, "%s", err.msg);
    Canvas c;
    CHECK(plot_render(&spec, &c, &err) == 0);
    int w = 0, h = 0;
    uint8_t *px = read_png(path, &w, &h);
    CHECK(px != NULL);
    CHECK(w == 400 && h == 300);
    if (px && w == c.w && h == c.h) CHECK(memcmp(px, c.rgb, (size_t)w * h * 3) == 0);
    free(px);
    /* The low run sits on a row below the high run; find both in columns at
     * 1/4 and 3/4 of the plot width. */
    int y_low = -1, y_high = -1;
    for (int yy = 0; yy < c.h; yy++) {
        if (is_blueish(canvas_get(&c, c.w / 4, yy)) && y_low < 0) y_low = yy;
        if (is_blueish(canvas_get(&c, 3 * c.w / 4, yy)) && y_high < 0) y_high = yy;
    }
    CHECK(y_low > 0 && y_high > 0 && y_high < y_low - 100);
    /* Lines are 2 px thick. */
    if (y_low > 0) CHECK(is_blueish(canvas_get(&c, c.w / 4, y_low + 1)) && !is_blueish(canvas_get(&c, c.w / 4, y_low + 2)));
    /* No series colour outside the plot area (left margin, title band). */
    int stray = 0;
    for (int yy = 0; yy < 40; yy++)
        for (int xx = 0; xx < c.w; xx++) stray += is_blueish(canvas_get(&c, xx, yy));
    CHECK(stray == 0);
    canvas_free(&c);
}

static void render_ok(const char *what, const PlotSeries *s, size_t n, double smooth) {
    PlotSpec spec = {.title = what, .xlabel = "step", .series = s, .n_series = n, .smooth = smooth};
    char path[256];
    snprintf(path, sizeof path, "%s/odd.png", dir);
    Err err = {{0}};
    CHECKF(plot_write_png(&spec, path, &err) == 0, "%s: %s", what, err.msg);
    int w, h;
    uint8_t *px = read_png(path, &w, &h);
    CHECKF(px && w == 960 && h == 540, "%s", what);
    free(px);
}

static void test_odd_data(void) {
    double x[4] = {0, 1, 2, 3}, nan4[4] = {NAN, NAN, NAN, NAN}, flat[4] = {5, 5, 5, 5}, gap[4] = {1, NAN, 2, NAN};
    double inf4[4] = {INFINITY, -INFINITY, 1e308, -1e308}, tiny[4] = {1e-300, 2e-300, 1e-300, 3e-300};
    double one_x[1] = {7}, one_y[1] = {0.5};
    render_ok("no series", NULL, 0, 0);
    PlotSeries empty = {"empty", x, flat, 0};
    render_ok("empty", &empty, 1, 0.6);
    PlotSeries s = {"nan", x, nan4, 4};
    render_ok("all NaN", &s, 1, 0.6);
    s.y = flat;
    render_ok("constant", &s, 1, 0.6);
    s.y = gap;
    render_ok("isolated points", &s, 1, 0);
    s.y = inf4;
    render_ok("infinities and huge", &s, 1, 0.9);
    s.y = tiny;
    render_ok("tiny", &s, 1, 0);
    PlotSeries one = {"one", one_x, one_y, 1};
    render_ok("single point", &one, 1, 0.6);
    PlotSeries many[12];
    for (int i = 0; i < 12; i++) many[i] = (PlotSeries){"a rather long series name", x, flat, 4};
    render_ok("many series", many, 12, 0);
    /* Bad specs are refused, not drawn. */
    Canvas c;
    Err err = {{0}};
    PlotSpec bad = {.title = "t", .width = 10, .height = 10};
    CHECK(plot_render(&bad, &c, &err) == -1);
    PlotSpec bad_smooth = {.title = "t", .smooth = 1.0};
    CHECK(plot_render(&bad_smooth, &c, &err) == -1);
    CHECK(plot_write_png(&(PlotSpec){.title = "t"}, "/nonexistent/dir/x.png", &err) == -1);
}

static void test_runplot(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/run", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/run/metrics.jsonl", dir);
    MetricsWriter w;
    Err err = {{0}};
    CHECK(metrics_open(&w, path, -1, &err) == 0);
    for (int s = 0; s < 30; s++) {
        metrics_begin(&w, s);
        metrics_f64(&w, "reward/mean", s * 0.01);
        metrics_f64(&w, "reward/format/mean", 0.5);
        metrics_f64(&w, "reward/accuracy/mean", s * 0.02);
        metrics_f64(&w, "completion_len/mean", 100 + s);
        metrics_f64(&w, "completion_len/min", 50);
        metrics_f64(&w, "completion_len/max", 200);
        metrics_f64(&w, "lr", 1e-6);
        metrics_f64(&w, "other", s);
        metrics_end(&w, &err);
    }
    metrics_close(&w);
    snprintf(path, sizeof path, "%s/run", dir);
    RunPlotOptions opt = {.smooth = 0.6};
    int n = 0;
    CHECKF(runplot_write(path, &opt, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 6); /* reward, 2 per-function, rewards overview, length, lr; not "other" */
    const char *want[] = {"reward_mean", "reward_format_mean", "reward_accuracy_mean", "rewards", "completion_len_mean", "lr"};
    for (int i = 0; i < 6; i++) {
        char png[600];
        snprintf(png, sizeof png, "%s/plots/%s.png", path, want[i]);
        CHECKF(access(png, R_OK) == 0, "%s missing", png);
    }
    const char *keys[] = {"other"};
    opt.keys = keys;
    opt.n_keys = 1;
    CHECK(runplot_write(path, &opt, &n, &err) == 0 && n == 1);
    const char *bad[] = {"nope"};
    opt.keys = bad;
    CHECK(runplot_write(path, &opt, &n, &err) == -1);
    CHECKF(strstr(err.msg, "no metric 'nope' (it has: reward/mean,") != NULL, "%s", err.msg);
    char stem[64];
    runplot_file_stem(".a/b c", stem, sizeof stem);
    CHECK_STREQ(stem, "_a_b_c");
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_font();
    test_ticks();
    test_ema();
    test_known_series();
    test_odd_data();
    test_runplot();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_plot");
}
