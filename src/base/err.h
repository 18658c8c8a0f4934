/* Error reporting for library code: functions return int status (0 ok,
 * -1 failure) and fill an Err with one human-readable line. The CLI prints
 * it; library code never exits. */
#ifndef R1C_BASE_ERR_H
#define R1C_BASE_ERR_H

#include <stdarg.h>

typedef struct Err {
    char msg[1024];
} Err;

/* Formats the message into err (if non-NULL) and returns -1, so callers
 * can write `return err_set(err, "...")`. */
int err_set(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int err_setv(Err *err, const char *fmt, va_list ap);
/* Prepends "prefix: " to an existing message (e.g. the file name). */
int err_prefix(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
