/* Finding the final answer inside a completion: <answer> tags, the last
 * \boxed{} / \fbox{} (nested braces, any depth, linear scan), "the answer
 * is", GSM8K's "#### N", the whole text when short, the last number. */
#include <ctype.h>
#include <string.h>

#include "reward/math.h"

#define BOX_MAX 65536

/* Last occurrence of pat, scanning backwards: stops at the first hit from
 * the end, so a text full of earlier hits costs no more than one pass. */
static const char *find_last(const char *s, size_t len, const char *pat, size_t *pos) {
    size_t pl = strlen(pat);
    if (len < pl) return NULL;
    size_t end = len - pl + 1; /* candidates start in [0, end) */
    while (end > 0) {
        /* memrchr is vectorised: jump between occurrences of the first byte */
        const char *c = memrchr(s, pat[0], end);
        if (!c) return NULL;
        size_t i = (size_t)(c - s);
        if (!memcmp(c, pat, pl)) {
            if (pos) *pos = i;
            return c;
        }
        end = i;
    }
    return NULL;
}

static void trim(const char **a, size_t *n) {
    const char *s = *a;
    size_t len = *n;
    while (len && isspace((unsigned char)*s)) { s++; len--; }
    while (len && isspace((unsigned char)s[len - 1])) len--;
    *a = s;
    *n = len;
}

/* Content of the \boxed / \fbox command starting at s[i] (after its name). */
static int box_content(const char *s, size_t len, size_t i, const char **out, size_t *out_len) {
    while (i < len && s[i] == ' ') i++;
    if (i < len && s[i] == '{') {
        size_t d = 0;
        /* an argument longer than BOX_MAX is no answer: bounds the rescans */
        size_t end = len - i > BOX_MAX ? i + BOX_MAX : len;
        for (size_t j = i; j < end; j++) {
            if (s[j] == '\\' && j + 1 < len) { j++; continue; }
            if (s[j] == '{') d++;
            else if (s[j] == '}' && --d == 0) {
                *out = s + i + 1;
                *out_len = j - i - 1;
                return 1;
            }
        }
        return 0; /* unbalanced */
    }
    /* \boxed 5 : up to the end of the math or the next space */
    size_t j = i;
    while (j < len && s[j] != '$' && s[j] != ' ' && s[j] != '\n') j++;
    if (j == i) return 0;
    *out = s + i;
    *out_len = j - i;
    return 1;
}

static int last_boxed(const char *s, size_t len, const char **out, size_t *out_len) {
    /* the last command with a well-formed argument wins; an unbalanced one
     * (a truncated completion) falls back to the one before, a few times at
     * most so that a flood of broken boxes stays linear */
    size_t pb = 0, pf = 0;
    const char *b = find_last(s, len, "\\boxed", &pb), *f = find_last(s, len, "\\fbox", &pf);
    for (int tries = 0; tries < 8 && (b || f); tries++) {
        if (b && (!f || pb > pf)) {
            if (box_content(s, len, pb + 6, out, out_len)) return 1;
            b = find_last(s, pb, "\\boxed", &pb);
        } else {
            if (box_content(s, len, pf + 5, out, out_len)) return 1;
            f = find_last(s, pf, "\\fbox", &pf);
        }
    }
    return 0;
}

static int answer_tag(const char *s, size_t len, const char **out, size_t *out_len) {
    size_t open;
    if (!find_last(s, len, "<answer>", &open)) return 0;
    const char *a = s + open + 8;
    const char *close = memmem(a, len - open - 8, "</answer>", 9);
    size_t n = close ? (size_t)(close - a) : len - open - 8;
    if (!close) return 0;
    *out = a;
    *out_len = n;
    return 1;
}

static int answer_is(const char *s, size_t len, const char **out, size_t *out_len) {
    /* case-insensitive search for the last "answer is" / "answer:" */
    size_t hit = (size_t)-1, hit_end = 0;
    for (size_t i = 0; i + 6 <= len; i++) {
        if ((s[i] | 0x20) != 'a' || strncasecmp(s + i, "answer", 6)) continue;
        size_t j = i + 6;
        if (j < len && s[j] == ':') { hit = i; hit_end = j + 1; continue; }
        while (j < len && s[j] == ' ') j++;
        if (j + 2 <= len && !strncasecmp(s + j, "is", 2)) {
            j += 2;
            while (j < len && (s[j] == ' ' || s[j] == ':')) j++;
            hit = i;
            hit_end = j;
        }
    }
    if (hit == (size_t)-1) return 0;
    size_t j = hit_end;
    while (j < len && s[j] != '\n') {
        /* a full stop ends the sentence; a decimal point does not */
        if (s[j] == '.' && (j + 1 >= len || !isdigit((unsigned char)s[j + 1]))) break;
        j++;
    }
    if (j - hit_end > 256) return 0;
    *out = s + hit_end;
    *out_len = j - hit_end;
    return 1;
}

static int gsm8k_hashes(const char *s, size_t len, const char **out, size_t *out_len) {
    size_t pos;
    if (!find_last(s, len, "####", &pos)) return 0;
    size_t i = pos + 4, j = i;
    while (j < len && s[j] != '\n') j++;
    *out = s + i;
    *out_len = j - i;
    return 1;
}

static int last_number(const char *s, size_t len, const char **out, size_t *out_len) {
    size_t j = len;
    while (j > 0 && !isdigit((unsigned char)s[j - 1])) j--;
    if (j == 0) return 0;
    size_t end = j, i = j;
    while (i > 0 && (isdigit((unsigned char)s[i - 1]) || s[i - 1] == '.' ||
                     (s[i - 1] == ',' && i >= 2 && isdigit((unsigned char)s[i - 2]))))
        i--;
    if (i > 0 && s[i - 1] == '-') i--;
    while (i < end && (s[i] == '.' || s[i] == ',')) i++;
    *out = s + i;
    *out_len = end - i;
    return 1;
}

int math_extract(const char *text, size_t len, unsigned anchors, int whole_max, const char **ans, size_t *ans_len,
                 const char **how) {
    const char *a = NULL;
    size_t n = 0;
    if ((anchors & MATH_EXTRACT_TAG) && answer_tag(text, len, &a, &n)) {
        /* a \boxed inside the tag is the sharper answer */
        const char *b;
        size_t bn;
        if ((anchors & MATH_EXTRACT_BOXED) && last_boxed(a, n, &b, &bn)) { a = b; n = bn; *how = "answer tag + boxed"; }
        else *how = "answer tag";
    } else if ((anchors & MATH_EXTRACT_BOXED) && last_boxed(text, len, &a, &n)) *how = "boxed";
    else if ((anchors & MATH_EXTRACT_ANSWER_IS) && answer_is(text, len, &a, &n)) *how = "answer is";
    else if ((anchors & MATH_EXTRACT_GSM8K) && gsm8k_hashes(text, len, &a, &n)) *how = "####";
    else {
        a = text;
        n = len;
        trim(&a, &n);
        if ((anchors & MATH_EXTRACT_WHOLE) && n > 0 && n <= (size_t)whole_max) *how = "whole text";
        else if ((anchors & MATH_EXTRACT_LAST_NUMBER) && last_number(text, len, &a, &n)) *how = "last number";
        else return 0;
    }
    trim(&a, &n);
    *ans = a;
    *ans_len = n;
    return 1;
}
