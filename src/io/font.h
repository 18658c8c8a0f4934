/* A 5x7 bitmap font for printable ASCII, drawn by hand for plot labels so
 * plotting needs no font library. Each glyph sits in a 6x10 cell: one
 * column of spacing, and below the 7 rows two rows that only descenders
 * (g p q y, drawn 2 rows lower) reach, plus one of spacing. */
#ifndef R1C_IO_FONT_H
#define R1C_IO_FONT_H

#define FONT_W 5
#define FONT_H 7
#define FONT_CELL_W 6
#define FONT_CELL_H 10
#define FONT_DESCENT 2

/* Bits of glyph c's row (0 = top): bit 4 is the leftmost pixel. Characters
 * outside ' '..'~' draw as '?'. */
unsigned font_row(unsigned char c, int row);
/* 1 when c is drawn FONT_DESCENT rows lower than the others. */
int font_descends(unsigned char c);

#endif
