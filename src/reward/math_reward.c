/* The math accuracy reward: extract the completion's final answer and
 * compare it with the record's gold answer (math_extract + math_equiv). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/math.h"
#include "reward/reward.h"

typedef struct MathReward {
    MathOptions opt;
    unsigned anchors;
    char answer_field[64];
} MathReward;

static void *math_create(Err *err) {
    MathReward *m = calloc(1, sizeof *m);
    if (!m) { err_set(err, "out of memory"); return NULL; }
    math_options_default(&m->opt);
    m->anchors = MATH_EXTRACT_DEFAULT;
    strcpy(m->answer_field, "answer");
    return m;
}

static int parse_anchors(const char *value, unsigned *out, Err *err) {
    static const struct { const char *name; unsigned bit; } A[] = {
        {"boxed", MATH_EXTRACT_BOXED}, {"tag", MATH_EXTRACT_TAG}, {"answer_is", MATH_EXTRACT_ANSWER_IS},
        {"gsm8k", MATH_EXTRACT_GSM8K}, {"whole", MATH_EXTRACT_WHOLE}, {"last_number", MATH_EXTRACT_LAST_NUMBER},
    };
    unsigned bits = 0;
    const char *p = value;
    while (*p) {
        const char *e = p;
        while (*e && *e != '+' && *e != '|' && *e != ' ') e++;
        size_t n = (size_t)(e - p), k;
        for (k = 0; k < sizeof A / sizeof *A; k++)
            if (strlen(A[k].name) == n && !strncmp(A[k].name, p, n)) { bits |= A[k].bit; break; }
        if (k == sizeof A / sizeof *A)
            return err_set(err, "option extract: unknown anchor '%.*s' (boxed, tag, answer_is, gsm8k, whole, last_number; join with +)",
                           (int)n, p);
        p = *e ? e + 1 : e;
    }
    if (!bits) return err_set(err, "option extract: empty");
    *out = bits;
    return 0;
}

static int math_set_option(void *self, const char *key, const char *value, Err *err) {
    MathReward *m = self;
    if (!strcmp(key, "tolerance")) {
        if (reward_parse_double(key, value, &m->opt.rel_tol, err) < 0) return -1;
        if (m->opt.rel_tol < 0 || m->opt.rel_tol >= 1) return err_set(err, "option tolerance: want 0 <= t < 1");
        return 0;
    }
    if (!strcmp(key, "percent")) {
        if (!strcmp(value, "both")) m->opt.percent = MATH_PERCENT_BOTH;
        else if (!strcmp(value, "fraction")) m->opt.percent = MATH_PERCENT_FRACTION;
        else if (!strcmp(value, "strip")) m->opt.percent = MATH_PERCENT_STRIP;
        else return err_set(err, "option percent: '%s' (expected both, fraction or strip)", value);
        return 0;
    }
    if (!strcmp(key, "extract")) return parse_anchors(value, &m->anchors, err);
    if (!strcmp(key, "last_number")) {
        int on;
        if (reward_parse_bool(key, value, &on, err) < 0) return -1;
        m->anchors = on ? (m->anchors | MATH_EXTRACT_LAST_NUMBER) : (m->anchors & ~(unsigned)MATH_EXTRACT_LAST_NUMBER);
        return 0;
    }
    if (!strcmp(key, "whole_max")) {
        double d;
        if (reward_parse_double(key, value, &d, err) < 0) return -1;
        if (d < 0 || d > 1024) return err_set(err, "option whole_max: want 0..1024 bytes");
        m->opt.whole_max = (int)d;
        return 0;
    }
    if (!strcmp(key, "answer_field")) {
        if (strlen(value) == 0 || strlen(value) >= sizeof m->answer_field) return err_set(err, "option answer_field: bad name");
        strcpy(m->answer_field, value);
        return 0;
    }
    return 1;
}

/* Quoted, shortened copy for reasons. */
static void clip(char *dst, size_t size, const char *s, size_t n) {
    size_t max = size - 4;
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++) dst[k++] = (s[i] == '\n' || s[i] == '\t') ? ' ' : s[i];
    if (n > max) { memcpy(dst + k, "...", 3); k += 3; }
    dst[k] = 0;
}

static int math_score(void *self, const RewardInput *in, RewardScore *out, Err *err) {
    MathReward *m = self;
    char nbuf[64];
    const char *gold = reward_record_str(in->record, m->answer_field, nbuf, sizeof nbuf);
    if (!gold) { reward_reason(out, 0, "record has no '%s' field", m->answer_field); return 0; }
    /* gold answers may be full solutions: GSM8K "#### N" or MATH \boxed{} */
    const char *g = gold, *how;
    size_t glen = strlen(gold);
    if (!math_extract(gold, glen, MATH_EXTRACT_GSM8K | MATH_EXTRACT_BOXED | MATH_EXTRACT_WHOLE, 1 << 30, &g, &glen, &how)) {
        reward_reason(out, 0, "empty gold answer");
        return 0;
    }
    const char *a;
    size_t alen;
    if (!math_extract(in->completion, in->completion_len, m->anchors, m->opt.whole_max, &a, &alen, &how)) {
        reward_reason(out, 0, "no answer found");
        return 0;
    }
    char why[96], ca[48], cg[48];
    int eq = math_equiv(g, glen, a, alen, &m->opt, why, sizeof why);
    clip(ca, sizeof ca, a, alen);
    if (eq) reward_reason(out, 1, "correct: '%s' (%s; %s)", ca, how, why);
    else {
        clip(cg, sizeof cg, g, glen);
        reward_reason(out, 0, "wrong: '%s' vs gold '%s' (%s; %s)", ca, cg, how, why);
    }
    return 0;
}

static void math_destroy(void *self) { free(self); }

const RewardKind reward_math_kind = {
    .name = "math",
    .summary = "final answer (\\boxed{}, <answer>, ...) equivalent to the gold answer: 1 or 0",
    .create = math_create,
    .set_option = math_set_option,
    .score = math_score,
    .destroy = math_destroy,
};
