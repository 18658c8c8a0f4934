/* DAPO's overlong reward shaping: 0 up to L_max - L_cache tokens, then a
 * linear penalty down to -1 at L_max, and -1 beyond. The length comes from
 * the record (a token count written by the sampler) or, when absent, is
 * the completion's length in bytes. A truncated completion (record flag)
 * gets truncated_score. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/reward.h"

typedef struct Length {
    double max_len, cache;
    double truncated_score;
    int penalize_truncated;
    char length_field[64], truncated_field[64];
} Length;

static void *length_create(Err *err) {
    Length *l = calloc(1, sizeof *l);
    if (!l) { err_set(err, "out of memory"); return NULL; }
    l->max_len = 20480; /* DAPO: 16384 + 4096 */
    l->cache = 4096;
    l->truncated_score = -1;
    l->penalize_truncated = 1;
    strcpy(l->length_field, "completion_tokens");
    strcpy(l->truncated_field, "truncated");
    return l;
}

static int length_set_option(void *self, const char *key, const char *value, Err *err) {
    Length *l = self;
    if (!strcmp(key, "max_len") || !strcmp(key, "cache")) {
        double d;
        if (reward_parse_double(key, value, &d, err) < 0) return -1;
        if (d < 0 || d > 1e9) return err_set(err, "option %s: want 0..1e9", key);
        if (key[0] == 'm') l->max_len = d;
        else l->cache = d;
        return 0;
    }
    if (!strcmp(key, "truncated_score")) return reward_parse_double(key, value, &l->truncated_score, err);
    if (!strcmp(key, "penalize_truncated")) return reward_parse_bool(key, value, &l->penalize_truncated, err);
    if (!strcmp(key, "length_field") || !strcmp(key, "truncated_field")) {
        char *dst = key[0] == 'l' ? l->length_field : l->truncated_field;
        if (!*value || strlen(value) >= 64) return err_set(err, "option %s: bad field name", key);
        strcpy(dst, value);
        return 0;
    }
    return 1;
}

static int length_score(void *self, const RewardInput *in, RewardScore *out, Err *err) {
    Length *l = self;
    if (l->cache > l->max_len) { reward_reason(out, 0, "misconfigured: cache > max_len"); return 0; }
    json_t *t = in->record ? json_object_get(in->record, l->truncated_field) : NULL;
    if (l->penalize_truncated && json_is_true(t)) {
        reward_reason(out, l->truncated_score, "truncated");
        return 0;
    }
    json_t *v = in->record ? json_object_get(in->record, l->length_field) : NULL;
    double len;
    const char *unit = "tokens";
    if (json_is_number(v) && json_number_value(v) >= 0) len = json_number_value(v);
    else { len = (double)in->completion_len; unit = "bytes"; }
    double soft = l->max_len - l->cache;
    if (len <= soft) reward_reason(out, 0, "%.0f %s <= %.0f", len, unit, soft);
    else if (len <= l->max_len) reward_reason(out, (soft - len) / l->cache, "%.0f %s in the last %.0f before %.0f", len, unit, l->cache, l->max_len);
    else reward_reason(out, -1, "%.0f %s > max %.0f", len, unit, l->max_len);
    return 0;
}

static void length_destroy(void *self) { free(self); }

const RewardKind reward_length_kind = {
    .name = "length",
    .summary = "DAPO overlong penalty: 0, linear to -1 over the last `cache` tokens before max_len",
    .create = length_create,
    .set_option = length_set_option,
    .score = length_score,
    .destroy = length_destroy,
};
