/* R1's language-consistency reward (stage-2 RL): the proportion of words
 * in the chain of thought that are in the target language. A word is a
 * run of letters (Unicode L/M categories, via utf8proc), except that each
 * CJK character counts as one word, since those scripts do not separate
 * words with spaces. Digits, punctuation and symbols are not words. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "reward/reward.h"

typedef enum { LANG_EN, LANG_ZH } Lang;

typedef struct Language {
    Lang lang;
    int open_in_prompt;
    char think_open[40], think_close[40];
} Language;

static void *language_create(Err *err) {
    Language *l = calloc(1, sizeof *l);
    if (!l) { err_set(err, "out of memory"); return NULL; }
    strcpy(l->think_open, "<think>");
    strcpy(l->think_close, "</think>");
    return l;
}

static int language_set_option(void *self, const char *key, const char *value, Err *err) {
    Language *l = self;
    if (!strcmp(key, "lang")) {
        if (!strcmp(value, "en")) l->lang = LANG_EN;
        else if (!strcmp(value, "zh")) l->lang = LANG_ZH;
        else return err_set(err, "option lang: '%s' (expected en or zh)", value);
        return 0;
    }
    if (!strcmp(key, "think_open_in_prompt")) return reward_parse_bool(key, value, &l->open_in_prompt, err);
    if (!strcmp(key, "think_tag")) {
        if (!*value || strlen(value) > 30 || strpbrk(value, "<>/ ")) return err_set(err, "option think_tag: bad tag name");
        snprintf(l->think_open, sizeof l->think_open, "<%s>", value);
        snprintf(l->think_close, sizeof l->think_close, "</%s>", value);
        return 0;
    }
    return 1;
}

/* Han ideographs, kana and CJK symbols-free ranges: one word per character. */
static int is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0x20000 && c <= 0x2FA1F) || (c >= 0x3040 && c <= 0x30FF);
}

static int is_han(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0x20000 && c <= 0x2FA1F);
}

static int is_letter(int32_t c) {
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
           cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_LO || cat == UTF8PROC_CATEGORY_MN ||
           cat == UTF8PROC_CATEGORY_MC;
}

/* Latin script: ASCII letters, Latin-1 Supplement and Latin Extended. */
static int is_latin(int32_t c) {
    return (c < 0x80) || (c >= 0xC0 && c <= 0x24F) || (c >= 0x1E00 && c <= 0x1EFF) ||
           (c >= 0x300 && c <= 0x36F); /* combining accents stay with their letter */
}

static int language_score(void *self, const RewardInput *in, RewardScore *out, Err *err) {
    Language *l = self;
    const char *think;
    size_t tlen, after;
    int closed = reward_think_span(in->completion, in->completion_len, l->think_open, l->think_close,
                                   l->open_in_prompt, &think, &tlen, &after);
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)think;
    size_t i = 0;
    long words = 0, target = 0;
    int in_word = 0, word_target = 1;
    while (i < tlen) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(tlen - i), &c);
        if (k <= 0) { c = -1; k = 1; } /* invalid UTF-8: a separator */
        i += (size_t)k;
        if (c >= 0 && is_cjk(c)) {
            if (in_word) { words++; target += word_target; in_word = 0; }
            words++;
            target += l->lang == LANG_ZH && is_han(c);
            continue;
        }
        if (c >= 0 && is_letter(c)) {
            if (!in_word) { in_word = 1; word_target = 1; }
            if (l->lang == LANG_EN && !is_latin(c)) word_target = 0;
            if (l->lang == LANG_ZH) word_target = 0;
            continue;
        }
        if (in_word) { words++; target += word_target; in_word = 0; }
    }
    if (in_word) { words++; target += word_target; }
    const char *lang = l->lang == LANG_EN ? "en" : "zh";
    const char *note = closed ? "" : " (no closing think tag: whole completion)";
    if (words == 0) {
        reward_reason(out, 0, "no words in the reasoning%s", note);
        return 0;
    }
    reward_reason(out, (double)target / (double)words, "%ld/%ld words %s%s", target, words, lang, note);
    return 0;
}

static void language_destroy(void *self) { free(self); }

const RewardKind reward_language_kind = {
    .name = "language",
    .summary = "share of target-language words (en, zh) in the <think> part: 0..1",
    .create = language_create,
    .set_option = language_set_option,
    .score = language_score,
    .destroy = language_destroy,
};
