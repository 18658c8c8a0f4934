/* samples.jsonl writer (see samples.h). */
#include "io/samples.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/jsonl.h"

int samples_open(SamplesWriter *w, const char *path, int64_t resume_step, Err *err) {
    memset(w, 0, sizeof *w);
    if (strlen(path) >= sizeof w->path) return err_set(err, "%s: path too long", path);
    snprintf(w->path, sizeof w->path, "%s", path);
    if (resume_step >= 0 && jsonl_resume(path, resume_step, err) != 0) return -1;
    w->fp = fopen(path, resume_step >= 0 ? "ab" : "wb");
    if (!w->fp) return err_set(err, "%s: cannot open for writing: %s", path, strerror(errno));
    return 0;
}

/* A JSON string of s with each invalid UTF-8 byte replaced by U+FFFD. */
static json_t *string_lossy(const char *s) {
    size_t n = strlen(s);
    if (jsonl_utf8_valid(s, n)) return json_stringn(s, n);
    if (n > (SIZE_MAX - 1) / 3) return NULL;
    char *out = malloc(3 * n + 1); /* each bad byte grows to 3 */
    if (!out) return NULL;
    size_t o = 0, i = 0;
    while (i < n) {
        /* The longest valid sequence at i is 1..4 bytes; try each length. */
        size_t len = 0;
        for (size_t k = 1; k <= 4 && i + k <= n; k++)
            if (jsonl_utf8_valid(s + i, k)) { len = k; break; }
        if (len) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

int samples_write(SamplesWriter *w, int64_t step, const char *prompt, const char *completion, const json_t *rewards,
                  const json_t *extra, Err *err) {
    if (rewards && !json_is_object(rewards)) return err_set(err, "%s: rewards must be a JSON object", w->path);
    if (extra && !json_is_object(extra)) return err_set(err, "%s: extra must be a JSON object", w->path);
    json_t *obj = json_object();
    int bad = !obj;
    bad |= json_object_set_new(obj, "step", json_integer(step)) != 0;
    bad |= json_object_set_new(obj, "prompt", string_lossy(prompt)) != 0;
    bad |= json_object_set_new(obj, "completion", string_lossy(completion)) != 0;
    bad |= json_object_set_new(obj, "rewards", rewards ? json_deep_copy(rewards) : json_object()) != 0;
    if (extra) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)extra, key, v) {
            if (json_object_get(obj, key)) {
                json_decref(obj);
                return err_set(err, "%s: extra key '%s' collides with a standard key", w->path, key);
            }
            bad |= json_object_set_new(obj, key, json_deep_copy(v)) != 0;
        }
    }
    char *line = bad ? NULL : json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!line) return err_set(err, "%s: cannot encode sample (out of memory or non-finite number)", w->path);
    size_t n = strlen(line);
    int ok = fwrite(line, 1, n, w->fp) == n && fputc('\n', w->fp) != EOF && fflush(w->fp) == 0;
    free(line);
    if (!ok) return err_set(err, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

void samples_close(SamplesWriter *w) {
    if (w->fp) fclose(w->fp);
    w->fp = NULL;
}
