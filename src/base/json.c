/* JSON helpers over jansson (see json.h). */
#include "base/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

json_t *json_load_path(const char *path, Err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 0) err_set(err, "%s: %s", path, je.text);
        else err_set(err, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    return root;
}

json_t *json_load_buf(const char *buf, size_t len, const char *what, Err *err) {
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 0) err_set(err, "%s: %s", what, je.text);
        else err_set(err, "%s:%d:%d: %s", what, je.line, je.column, je.text);
    }
    return root;
}

int json_get_i64(const json_t *obj, const char *key, int64_t *out, const char *what, Err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 1;
    if (json_is_integer(v)) { *out = (int64_t)json_integer_value(v); return 0; }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9e15) { *out = (int64_t)d; return 0; }
    }
    return err_set(err, "%s: key '%s': expected an integer", what, key);
}

int json_get_f64(const json_t *obj, const char *key, double *out, const char *what, Err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 1;
    if (json_is_number(v)) { *out = json_number_value(v); return 0; }
    return err_set(err, "%s: key '%s': expected a number", what, key);
}

int json_get_bool(const json_t *obj, const char *key, int *out, const char *what, Err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 1;
    if (json_is_boolean(v)) { *out = json_is_true(v); return 0; }
    return err_set(err, "%s: key '%s': expected true or false", what, key);
}

int json_get_str(const json_t *obj, const char *key, const char **out, const char *what, Err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 1;
    if (json_is_string(v)) { *out = json_string_value(v); return 0; }
    return err_set(err, "%s: key '%s': expected a string", what, key);
}

int json_save_path(const json_t *j, size_t flags, const char *path, Err *err) {
    char *txt = json_dumps(j, flags);
    if (!txt) return err_set(err, "%s: cannot encode JSON", path);
    size_t n = strlen(txt);
    char *buf = realloc(txt, n + 2);
    if (!buf) {
        free(txt);
        return err_set(err, "%s: out of memory", path);
    }
    buf[n] = '\n';
    buf[n + 1] = 0;
    int rc = file_write_atomic(path, buf, n + 1, err);
    free(buf);
    return rc;
}
