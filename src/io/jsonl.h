/* Shared pieces of the run's JSON-lines files (metrics.jsonl,
 * samples.jsonl): cutting a file back to a resumed step, and the one JSON
 * string escaper the hand-written line writers use. */
#ifndef R1C_IO_JSONL_H
#define R1C_IO_JSONL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Prepares PATH for appending after a resume from step max_step: keeps the
 * complete lines up to the first one whose "step" is greater than
 * max_step, and drops that line, everything after it, and a trailing
 * partial line a crash left. Steps are written in increasing order, so
 * this is exactly "forget what happened after the checkpoint". A missing
 * file is fine. A complete line that is not a JSON object with an integer
 * "step" is refused (PATH:LINE: ...) rather than silently dropped. */
int jsonl_resume(const char *path, int64_t max_step, Err *err);

/* Growable byte buffer for building one line. */
typedef struct JsonlBuf {
    char *data;
    size_t len, cap;
    int oom; /* sticky: set when memory ran out (the line is then refused) */
} JsonlBuf;

void jsonl_buf_put(JsonlBuf *b, const char *s, size_t n);
void jsonl_buf_printf(JsonlBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted JSON string. Returns -1 (and appends nothing) if
 * s is not valid UTF-8. */
int jsonl_buf_string(JsonlBuf *b, const char *s);
/* Appends a double in the shortest form that reads back to the same
 * value; NaN and infinities become null (JSON has no spelling for them). */
void jsonl_buf_double(JsonlBuf *b, double v);
void jsonl_buf_free(JsonlBuf *b);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int jsonl_utf8_valid(const char *s, size_t n);

#endif
