/* Fenced-code extraction (CommonMark fences: a line of 3+ backticks or
 * tildes, indented at most 3 spaces, closed by a line of the same
 * character at least as long). Chat models re-state drafts while they
 * reason, so only the text after the last </think> counts, and the last
 * block of the right language wins. */
#include <string.h>

#include "reward/code.h"

static int lang_match(CodeLang lang, const char *w, size_t n) {
    static const char *const py[] = {"python", "py", "python3", "py3", NULL};
    static const char *const c[] = {"c", NULL};
    static const char *const cpp[] = {"cpp", "c++", "cc", "cxx", NULL};
    const char *const *names = lang == CODE_LANG_PYTHON ? py : lang == CODE_LANG_C ? c : cpp;
    for (int i = 0; names[i]; i++) {
        size_t l = strlen(names[i]);
        if (l != n) continue;
        size_t k = 0;
        for (; k < n; k++) {
            char ch = w[k];
            if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
            if (ch != names[i][k]) break;
        }
        if (k == n) return 1;
    }
    return 0;
}

/* A fence line at [p, eol): its character, length, and info word. */
static int fence_at(const char *p, const char *eol, char *ch, size_t *len, const char **info, size_t *info_len) {
    int ind = 0;
    while (p < eol && *p == ' ' && ind < 4) p++, ind++;
    if (ind > 3 || p >= eol || (*p != '`' && *p != '~')) return 0;
    char c = *p;
    const char *q = p;
    while (q < eol && *q == c) q++;
    if (q - p < 3) return 0;
    *ch = c;
    *len = (size_t)(q - p);
    while (q < eol && (*q == ' ' || *q == '\t')) q++;
    const char *w = q;
    while (q < eol && *q != ' ' && *q != '\t' && *q != '\r' && *q != '{' && *q != '`') q++;
    if (c == '`' && memchr(q, '`', (size_t)(eol - q))) return 0; /* backticks in a backtick info string: inline code */
    *info = w;
    *info_len = (size_t)(q - w);
    return 1;
}

int code_extract(const char *s, size_t n, CodeLang lang, const char **code, size_t *len) {
    /* after the last </think> */
    const char *start = s;
    for (const char *p = s; p + 8 <= s + n; p++) {
        p = memchr(p, '<', (size_t)(s + n - p));
        if (!p || p + 8 > s + n) break;
        if (!memcmp(p, "</think>", 8)) start = p + 8;
    }
    const char *end = s + n;
    const char *best = NULL, *best_end = NULL, *plain = NULL, *plain_end = NULL;
    const char *p = start;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        char ch;
        size_t flen, ilen;
        const char *info;
        if (!fence_at(p, eol, &ch, &flen, &info, &ilen)) {
            p = eol + (eol < end);
            continue;
        }
        const char *body = eol + (eol < end), *q = body, *body_end = end, *next = end;
        while (q < end) {
            const char *e2 = memchr(q, '\n', (size_t)(end - q));
            if (!e2) e2 = end;
            char c2;
            size_t l2, il2;
            const char *i2;
            /* a closing fence carries no info string; "```</answer>" (a tag
             * glued to the fence, as R1-format answers write it) closes too */
            if (fence_at(q, e2, &c2, &l2, &i2, &il2) && c2 == ch && l2 >= flen && (il2 == 0 || i2[0] == '<')) {
                body_end = q;
                next = e2 + (e2 < end);
                break;
            }
            q = e2 + (e2 < end);
        }
        if (ilen == 0) plain = body, plain_end = body_end;
        else if (lang_match(lang, info, ilen)) best = body, best_end = body_end;
        p = next;
    }
    if (!best) best = plain, best_end = plain_end;
    if (!best) return 0;
    *code = best;
    *len = (size_t)(best_end - best);
    return 1;
}
