/* Small helpers the rewards share: reasons, option values, record fields,
 * bounded searches and the <think> span. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "reward/reward.h"

void reward_reason(RewardScore *out, double score, const char *fmt, ...) {
    out->score = score;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    /* reasons quote completions: keep them valid UTF-8 for JSON output
     * (bad bytes, or a character cut by the size limit, become '?') */
    size_t n = strlen(out->reason);
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)out->reason + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) { out->reason[i++] = '?'; continue; }
        i += (size_t)k;
    }
}

int reward_parse_double(const char *key, const char *value, double *out, Err *err) {
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    if (end == value || *end || errno || !isfinite(d)) return err_set(err, "option %s: '%s' is not a number", key, value);
    *out = d;
    return 0;
}

int reward_parse_bool(const char *key, const char *value, int *out, Err *err) {
    if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on")) *out = 1;
    else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off")) *out = 0;
    else return err_set(err, "option %s: '%s' is not a boolean (1/0, true/false)", key, value);
    return 0;
}

const char *reward_record_str(const json_t *record, const char *field, char *buf, size_t size) {
    if (!record || !json_is_object(record)) return NULL;
    json_t *v = json_object_get(record, field);
    if (!v) return NULL;
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) { snprintf(buf, size, "%lld", (long long)json_integer_value(v)); return buf; }
    if (json_is_real(v)) { snprintf(buf, size, "%.17g", json_real_value(v)); return buf; }
    return NULL;
}

const char *reward_find_str(const char *s, size_t len, const char *pat) {
    return memmem(s, len, pat, strlen(pat));
}

int reward_think_span(const char *s, size_t len, const char *open_tag, const char *close_tag, int open_in_prompt,
                      const char **think, size_t *think_len, size_t *after) {
    size_t start = 0;
    if (!open_in_prompt) {
        const char *o = reward_find_str(s, len, open_tag);
        if (o) start = (size_t)(o - s) + strlen(open_tag);
    }
    const char *c = reward_find_str(s + start, len - start, close_tag);
    if (!c) {
        *think = s + start;
        *think_len = len - start;
        *after = len;
        return 0;
    }
    *think = s + start;
    *think_len = (size_t)(c - (s + start));
    *after = (size_t)(c - s) + strlen(close_tag);
    return 1;
}
