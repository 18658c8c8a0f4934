/* The R1 format reward: reasoning in <think>...</think>, then the answer
 * (<answer>...</answer> or \boxed{}), exactly one of each, nothing after.
 * With R1-Distill chat templates the prompt already opens <think>, so the
 * completion starts inside the think block (think_open_in_prompt=1). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/reward.h"

typedef enum { ANSWER_TAG, ANSWER_BOXED, ANSWER_EITHER } AnswerStyle;

typedef struct Format {
    int strict;
    int open_in_prompt;
    AnswerStyle style;
    char think_open[40], think_close[40], ans_open[40], ans_close[40];
} Format;

static void set_tags(char *open, char *close, const char *name) {
    snprintf(open, 40, "<%s>", name);
    snprintf(close, 40, "</%s>", name);
}

static void *format_create(Err *err) {
    Format *f = calloc(1, sizeof *f);
    if (!f) { err_set(err, "out of memory"); return NULL; }
    f->strict = 1;
    set_tags(f->think_open, f->think_close, "think");
    set_tags(f->ans_open, f->ans_close, "answer");
    return f;
}

static int format_set_option(void *self, const char *key, const char *value, Err *err) {
    Format *f = self;
    if (!strcmp(key, "mode")) {
        if (!strcmp(value, "strict")) f->strict = 1;
        else if (!strcmp(value, "lenient")) f->strict = 0;
        else return err_set(err, "option mode: '%s' (expected strict or lenient)", value);
        return 0;
    }
    if (!strcmp(key, "answer")) {
        if (!strcmp(value, "tag")) f->style = ANSWER_TAG;
        else if (!strcmp(value, "boxed")) f->style = ANSWER_BOXED;
        else if (!strcmp(value, "either")) f->style = ANSWER_EITHER;
        else return err_set(err, "option answer: '%s' (expected tag, boxed or either)", value);
        return 0;
    }
    if (!strcmp(key, "think_open_in_prompt")) return reward_parse_bool(key, value, &f->open_in_prompt, err);
    if (!strcmp(key, "think_tag") || !strcmp(key, "answer_tag")) {
        size_t n = strlen(value);
        if (n == 0 || n > 30) return err_set(err, "option %s: tag name must be 1..30 characters", key);
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)value[i]) && value[i] != '_' && value[i] != '-')
                return err_set(err, "option %s: '%s' (letters, digits, _ and - only)", key, value);
        if (key[0] == 't') set_tags(f->think_open, f->think_close, value);
        else set_tags(f->ans_open, f->ans_close, value);
        return 0;
    }
    return 1;
}

static size_t count_str(const char *s, size_t len, const char *pat) {
    size_t n = 0, pl = strlen(pat);
    const char *p = s, *end = s + len;
    while ((p = memmem(p, (size_t)(end - p), pat, pl)) != NULL) { n++; p += pl; }
    return n;
}

static int all_space(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

/* What may follow a \boxed{} answer: closing math delimiters and a full stop. */
static int only_closers(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (isspace((unsigned char)c) || c == '$' || c == '.') continue;
        if (c == '\\' && i + 1 < len && (s[i + 1] == ']' || s[i + 1] == ')')) { i++; continue; }
        return 0;
    }
    return 1;
}

static int check_boxed(const char *s, size_t len, RewardScore *out) {
    size_t n = count_str(s, len, "\\boxed");
    if (n == 0) { reward_reason(out, 0, "no \\boxed{} after the reasoning"); return 0; }
    if (n > 1) { reward_reason(out, 0, "%zu \\boxed{} after the reasoning (want 1)", n); return 0; }
    const char *b = memmem(s, len, "\\boxed", 6);
    size_t i = (size_t)(b - s) + 6;
    while (i < len && s[i] == ' ') i++;
    if (i >= len || s[i] != '{') { reward_reason(out, 0, "\\boxed without {"); return 0; }
    size_t d = 0, j = i;
    for (; j < len; j++) {
        if (s[j] == '{') d++;
        else if (s[j] == '}' && --d == 0) break;
    }
    if (j >= len) { reward_reason(out, 0, "unbalanced braces in \\boxed{}"); return 0; }
    if (j == i + 1 || all_space(s + i + 1, j - i - 1)) { reward_reason(out, 0, "empty \\boxed{}"); return 0; }
    if (!only_closers(s + j + 1, len - j - 1)) { reward_reason(out, 0, "text after \\boxed{}"); return 0; }
    return 1;
}

static int format_score(void *self, const RewardInput *in, RewardScore *out, Err *err) {
    Format *f = self;
    const char *s = in->completion;
    size_t len = in->completion_len;
    size_t n_open = count_str(s, len, f->think_open), n_close = count_str(s, len, f->think_close);
    size_t want_open = f->open_in_prompt ? 0 : 1;
    if (n_open != want_open) {
        reward_reason(out, 0, "%zu %s tags (want %zu%s)", n_open, f->think_open, want_open,
                      f->open_in_prompt ? ": the prompt opens it" : "");
        return 0;
    }
    if (n_close != 1) { reward_reason(out, 0, "%zu %s tags (want 1)", n_close, f->think_close); return 0; }
    const char *close = memmem(s, len, f->think_close, strlen(f->think_close));
    size_t think_start = 0;
    if (!f->open_in_prompt) {
        const char *open = memmem(s, len, f->think_open, strlen(f->think_open));
        if (open > close) { reward_reason(out, 0, "%s before %s", f->think_close, f->think_open); return 0; }
        think_start = (size_t)(open - s) + strlen(f->think_open);
        if (f->strict && !all_space(s, (size_t)(open - s))) {
            reward_reason(out, 0, "text before %s", f->think_open);
            return 0;
        }
    }
    if (all_space(s + think_start, (size_t)(close - s) - think_start)) {
        reward_reason(out, 0, "empty reasoning");
        return 0;
    }
    const char *rest = close + strlen(f->think_close);
    size_t rlen = len - (size_t)(rest - s);
    AnswerStyle style = f->style;
    if (style == ANSWER_EITHER) style = memmem(rest, rlen, f->ans_open, strlen(f->ans_open)) ? ANSWER_TAG : ANSWER_BOXED;
    if (style == ANSWER_BOXED) {
        if (count_str(s, len, f->ans_open) || count_str(s, len, f->ans_close)) {
            reward_reason(out, 0, "%s tag where \\boxed{} is expected", f->ans_open);
            return 0;
        }
        if (!check_boxed(rest, rlen, out)) return 0;
        reward_reason(out, 1, "ok");
        return 0;
    }
    size_t na = count_str(s, len, f->ans_open), nc = count_str(s, len, f->ans_close);
    if (na != 1 || nc != 1) {
        reward_reason(out, 0, "%zu %s / %zu %s tags (want 1 each)", na, f->ans_open, nc, f->ans_close);
        return 0;
    }
    const char *ao = memmem(s, len, f->ans_open, strlen(f->ans_open));
    const char *ac = memmem(s, len, f->ans_close, strlen(f->ans_close));
    if (ao < rest) { reward_reason(out, 0, "%s inside the reasoning", f->ans_open); return 0; }
    if (ac < ao) { reward_reason(out, 0, "%s before %s", f->ans_close, f->ans_open); return 0; }
    if (f->strict && !all_space(rest, (size_t)(ao - rest))) {
        reward_reason(out, 0, "text between %s and %s", f->think_close, f->ans_open);
        return 0;
    }
    const char *body = ao + strlen(f->ans_open);
    if (all_space(body, (size_t)(ac - body))) { reward_reason(out, 0, "empty answer"); return 0; }
    const char *tail = ac + strlen(f->ans_close);
    if (!all_space(tail, len - (size_t)(tail - s))) { reward_reason(out, 0, "text after %s", f->ans_close); return 0; }
    reward_reason(out, 1, "ok");
    return 0;
}

static void format_destroy(void *self) { free(self); }

const RewardKind reward_format_kind = {
    .name = "format",
    .summary = "<think>...</think> then <answer>...</answer> (or \\boxed{}): 1 or 0",
    .create = format_create,
    .set_option = format_set_option,
    .score = format_score,
    .destroy = format_destroy,
};
