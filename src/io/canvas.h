/* An RGB pixel canvas with the few drawing operations plots need (filled
 * rectangles, 1-2 px Bresenham lines, bitmap text) and PNG output through
 * libpng. Drawing outside the clip rectangle is silently dropped. */
#ifndef R1C_IO_CANVAS_H
#define R1C_IO_CANVAS_H

#include <stdint.h>

#include "base/err.h"

typedef struct Rgb {
    uint8_t r, g, b;
} Rgb;

typedef struct Canvas {
    int w, h;
    uint8_t *rgb;          /* (h, w, 3) */
    int cx0, cy0, cx1, cy1; /* clip rectangle, [cx0, cx1) x [cy0, cy1) */
} Canvas;

#define CANVAS_MAX_SIDE 8192

int canvas_init(Canvas *c, int w, int h, Rgb bg, Err *err);
void canvas_free(Canvas *c);
void canvas_clip(Canvas *c, int x0, int y0, int x1, int y1);
void canvas_unclip(Canvas *c);
void canvas_pixel(Canvas *c, int x, int y, Rgb col);
Rgb canvas_get(const Canvas *c, int x, int y);
/* Fills [x0, x1) x [y0, y1). */
void canvas_fill(Canvas *c, int x0, int y0, int x1, int y1, Rgb col);
/* Bresenham line; thick 2 stamps a 2x2 brush so slopes look even. */
void canvas_line(Canvas *c, int x0, int y0, int x1, int y1, int thick, Rgb col);
/* Text with its top-left corner at (x, y), each font pixel scale x scale. */
void canvas_text(Canvas *c, int x, int y, const char *s, int scale, Rgb col);
/* The same turned 90 degrees counter-clockwise, reading bottom to top from (x, y). */
void canvas_text_up(Canvas *c, int x, int y, const char *s, int scale, Rgb col);
int canvas_text_width(const char *s, int scale);
/* Writes PATH atomically (temp file + rename). */
int canvas_write_png(const Canvas *c, const char *path, Err *err);

#endif
