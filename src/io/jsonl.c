/* JSON-lines helpers (see jsonl.h). */
#include "io/jsonl.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int jsonl_resume(const char *path, int64_t max_step, Err *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return 0;
        return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long long keep = 0; /* byte offset just past the last kept line */
    long lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, fp)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') break; /* torn last line: dropped */
        json_error_t je;
        json_t *obj = json_loadb(line, (size_t)n, 0, &je);
        json_t *step = obj ? json_object_get(obj, "step") : NULL;
        if (!obj || !json_is_integer(step)) {
            rc = err_set(err, "%s:%ld: %s; fix or remove this line before resuming", path, lineno,
                         !obj ? je.text : "no integer \"step\" key");
            json_decref(obj);
            break;
        }
        json_int_t s = json_integer_value(step);
        json_decref(obj);
        if (s > max_step) break;
        keep += n;
    }
    free(line);
    if (ferror(fp) && rc == 0) rc = err_set(err, "%s: read failed", path);
    fclose(fp);
    if (rc != 0) return rc;
    if (truncate(path, (off_t)keep) != 0) return err_set(err, "%s: cannot truncate: %s", path, strerror(errno));
    return 0;
}

void jsonl_buf_put(JsonlBuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n + 1 > b->cap - b->len || !b->data) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2) { b->oom = 1; return; }
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d) { b->oom = 1; return; }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0; /* room was reserved above */
}

void jsonl_buf_printf(JsonlBuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) { b->oom = 1; return; } /* only used for short numbers */
    jsonl_buf_put(b, tmp, (size_t)n);
}

int jsonl_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

int jsonl_buf_string(JsonlBuf *b, const char *s) {
    size_t n = strlen(s);
    if (!jsonl_utf8_valid(s, n)) return -1;
    jsonl_buf_put(b, "\"", 1);
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jsonl_buf_put(b, s + run, i - run);
        run = i + 1;
        if (c == '"') jsonl_buf_put(b, "\\\"", 2);
        else if (c == '\\') jsonl_buf_put(b, "\\\\", 2);
        else if (c == '\n') jsonl_buf_put(b, "\\n", 2);
        else if (c == '\t') jsonl_buf_put(b, "\\t", 2);
        else jsonl_buf_printf(b, "\\u%04x", c);
    }
    jsonl_buf_put(b, s + run, n - run);
    jsonl_buf_put(b, "\"", 1);
    return 0;
}

void jsonl_buf_double(JsonlBuf *b, double v) {
    if (!isfinite(v)) { jsonl_buf_put(b, "null", 4); return; }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    jsonl_buf_put(b, tmp, strlen(tmp));
}

void jsonl_buf_free(JsonlBuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
