/* JSON through jansson, with errors that name the file and place.
 * Wrappers only add bounds/type checking with good messages; callers use
 * the jansson API directly for everything else. */
#ifndef R1C_BASE_JSON_H
#define R1C_BASE_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Parses a whole file; on error: "PATH:LINE:COL: message". */
json_t *json_load_path(const char *path, Err *err);
/* Parses a buffer; `what` names it in errors (e.g. "IN.json" or "line 7"). */
json_t *json_load_buf(const char *buf, size_t len, const char *what, Err *err);

/* Typed field access. Return 0 when found and valid, 1 when absent (out
 * untouched), -1 on type/range error (err says "WHAT: key 'k': ..."). */
int json_get_i64(const json_t *obj, const char *key, int64_t *out, const char *what, Err *err);
int json_get_f64(const json_t *obj, const char *key, double *out, const char *what, Err *err);
int json_get_bool(const json_t *obj, const char *key, int *out, const char *what, Err *err);
/* The returned string is owned by obj. */
int json_get_str(const json_t *obj, const char *key, const char **out, const char *what, Err *err);

/* Writes j (json_dumps flags) plus a newline to PATH atomically. */
int json_save_path(const json_t *j, size_t flags, const char *path, Err *err);

#endif
