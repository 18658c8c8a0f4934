/* Canvas drawing and PNG output (see canvas.h). */
#include "io/canvas.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/font.h"

int canvas_init(Canvas *c, int w, int h, Rgb bg, Err *err) {
    memset(c, 0, sizeof *c);
    if (w < 1 || h < 1 || w > CANVAS_MAX_SIDE || h > CANVAS_MAX_SIDE)
        return err_set(err, "canvas: %dx%d is outside 1..%d per side", w, h, CANVAS_MAX_SIDE);
    c->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!c->rgb) return err_set(err, "canvas: out of memory for %dx%d", w, h);
    c->w = w;
    c->h = h;
    canvas_unclip(c);
    canvas_fill(c, 0, 0, w, h, bg);
    return 0;
}

void canvas_free(Canvas *c) {
    free(c->rgb);
    memset(c, 0, sizeof *c);
}

void canvas_clip(Canvas *c, int x0, int y0, int x1, int y1) {
    c->cx0 = x0 < 0 ? 0 : x0;
    c->cy0 = y0 < 0 ? 0 : y0;
    c->cx1 = x1 > c->w ? c->w : x1;
    c->cy1 = y1 > c->h ? c->h : y1;
}

void canvas_unclip(Canvas *c) {
    canvas_clip(c, 0, 0, c->w, c->h);
}

void canvas_pixel(Canvas *c, int x, int y, Rgb col) {
    if (x < c->cx0 || x >= c->cx1 || y < c->cy0 || y >= c->cy1) return;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
}

Rgb canvas_get(const Canvas *c, int x, int y) {
    if (x < 0 || x >= c->w || y < 0 || y >= c->h) return (Rgb){0, 0, 0};
    const uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    return (Rgb){p[0], p[1], p[2]};
}

void canvas_fill(Canvas *c, int x0, int y0, int x1, int y1, Rgb col) {
    if (x0 < c->cx0) x0 = c->cx0;
    if (y0 < c->cy0) y0 = c->cy0;
    if (x1 > c->cx1) x1 = c->cx1;
    if (y1 > c->cy1) y1 = c->cy1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) canvas_pixel(c, x, y, col);
}

static int clamp_coord(int v) {
    /* Keeps Bresenham's loop bounded for points far off the canvas. */
    return v < -4 * CANVAS_MAX_SIDE ? -4 * CANVAS_MAX_SIDE : v > 4 * CANVAS_MAX_SIDE ? 4 * CANVAS_MAX_SIDE : v;
}

void canvas_line(Canvas *c, int x0, int y0, int x1, int y1, int thick, Rgb col) {
    x0 = clamp_coord(x0);
    y0 = clamp_coord(y0);
    x1 = clamp_coord(x1);
    y1 = clamp_coord(y1);
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        canvas_pixel(c, x0, y0, col);
        if (thick > 1) {
            canvas_pixel(c, x0 + 1, y0, col);
            canvas_pixel(c, x0, y0 + 1, col);
            canvas_pixel(c, x0 + 1, y0 + 1, col);
        }
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) { e += dy; x0 += sx; }
        if (e2 <= dx) { e += dx; y0 += sy; }
    }
}

int canvas_text_width(const char *s, int scale) {
    size_t n = strlen(s);
    if (!n) return 0;
    return (int)(n * FONT_CELL_W - 1) * scale;
}

void canvas_text(Canvas *c, int x, int y, const char *s, int scale, Rgb col) {
    for (; *s; s++, x += FONT_CELL_W * scale) {
        int y0 = y + (font_descends((unsigned char)*s) ? FONT_DESCENT * scale : 0);
        for (int r = 0; r < FONT_H; r++) {
            unsigned bits = font_row((unsigned char)*s, r);
            for (int k = 0; k < FONT_W; k++)
                if (bits & (1u << (FONT_W - 1 - k)))
                    canvas_fill(c, x + k * scale, y0 + r * scale, x + (k + 1) * scale, y0 + (r + 1) * scale, col);
        }
    }
}

void canvas_text_up(Canvas *c, int x, int y, const char *s, int scale, Rgb col) {
    /* Glyph pixel (k, r) lands at (x + r, y - k): rotated counter-clockwise. */
    for (; *s; s++, y -= FONT_CELL_W * scale) {
        int x0 = x + (font_descends((unsigned char)*s) ? FONT_DESCENT * scale : 0);
        for (int r = 0; r < FONT_H; r++) {
            unsigned bits = font_row((unsigned char)*s, r);
            for (int k = 0; k < FONT_W; k++)
                if (bits & (1u << (FONT_W - 1 - k)))
                    canvas_fill(c, x0 + r * scale, y - (k + 1) * scale, x0 + (r + 1) * scale, y - k * scale, col);
        }
    }
}

static void png_fail(png_structp png, png_const_charp msg) {
    Err *err = png_get_error_ptr(png);
    err_set(err, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings do not stop a valid image */
}

/* Encodes into an already open file; libpng reports errors by longjmp. */
static int write_png_fp(const Canvas *c, FILE *fp, Err *err) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, png_fail, png_warn);
    if (!png) return err_set(err, "libpng: cannot create writer");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return err_set(err, "libpng: cannot create info");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < c->h; y++) png_write_row(png, c->rgb + (size_t)y * (size_t)c->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int canvas_write_png(const Canvas *c, const char *path, Err *err) {
    AtomicFile af;
    if (atomic_open(&af, path, err) != 0) return -1;
    if (write_png_fp(c, af.fp, err) != 0) {
        atomic_abort(&af);
        return err_prefix(err, "%s", path);
    }
    return atomic_commit(&af, err);
}
