/* The Split pre-tokenizer, hand-written (see pretokenize.h). The pattern is
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (Qwen2 uses \p{N} alone). The regex engine (Oniguruma in HF tokenizers)
 * tries alternatives in order at each position; every alternative below
 * reproduces its backtracking outcome in closed form, scanning each byte a
 * bounded number of times, so the whole text is linear and stack-free. */
#include "io/pretokenize.h"

#include <string.h>
#include <utf8proc.h>

#include "io/utf8.h"

const char PRETOK_PATTERN_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char PRETOK_PATTERN_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int pretok_recognise(const char *pattern, PretokKind *kind, Err *err) {
    if (!strcmp(pattern, PRETOK_PATTERN_QWEN2)) { *kind = PRETOK_QWEN2; return 0; }
    if (!strcmp(pattern, PRETOK_PATTERN_LLAMA3)) { *kind = PRETOK_LLAMA3; return 0; }
    return err_set(err, "unsupported pre-tokenizer Split pattern (only the Qwen2 and Llama 3 patterns are implemented): %.120s", pattern);
}

enum { C_L = 1, C_N = 2, C_WS = 4, C_CRLF = 8 };

/* \s in Oniguruma's Unicode mode is the White_Space property. */
static int is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Letters and numbers assigned after the Unicode version of the system's
 * libutf8proc but known to HF's regex engine; generated and checked by
 * tests/ref/make_unicode_delta.py. */
static const struct { uint32_t lo, hi; unsigned cls; } UNICODE_DELTA[] = {
#include "io/unicode_delta.inc"
};

static int delta_class(uint32_t c) {
    size_t lo = 0, hi = sizeof UNICODE_DELTA / sizeof UNICODE_DELTA[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < UNICODE_DELTA[mid].lo) hi = mid;
        else if (c > UNICODE_DELTA[mid].hi) lo = mid + 1;
        else return UNICODE_DELTA[mid].cls == 1 ? C_L : UNICODE_DELTA[mid].cls == 2 ? C_N : 0;
    }
    return -1;
}

static unsigned classify(uint32_t c) {
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return C_L;
        if (c >= '0' && c <= '9') return C_N;
        if (c == '\r' || c == '\n') return C_WS | C_CRLF;
        return is_white_space(c) ? C_WS : 0;
    }
    if (is_white_space(c)) return C_WS;
    if (c >= 0x1C89) {
        int d = delta_class(c);
        if (d >= 0) return (unsigned)d;
    }
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return C_L;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return C_N;
    default:
        return 0;
    }
}

/* Character at pos: its class and byte length; class 0 / len 0 at the end.
 * Input is validated before scanning, so a failed decode cannot happen;
 * we still treat it as a one-byte "other" char to stay total. */
typedef struct Ch { uint32_t cp; unsigned cls; size_t len; } Ch;

/* ASCII classes, filled on first use: most text is ASCII. */
static unsigned char ascii_cls[128];
static int ascii_ready;

static inline __attribute__((always_inline)) Ch char_at(const uint8_t *s, size_t n, size_t pos) {
    Ch ch = {0, 0, 0};
    if (pos >= n) return ch;
    if (s[pos] < 0x80) {
        if (!ascii_ready) {
            for (uint32_t c = 0; c < 128; c++) ascii_cls[c] = (unsigned char)classify(c);
            ascii_ready = 1; /* idempotent: racing threads write the same bytes */
        }
        ch.cp = s[pos]; ch.len = 1; ch.cls = ascii_cls[s[pos]];
        return ch;
    }
    ch.len = utf8_decode(s + pos, n - pos, &ch.cp);
    if (!ch.len) { ch.len = 1; ch.cp = 0xFFFD; }
    ch.cls = classify(ch.cp);
    return ch;
}

/* Case-insensitive contraction letters: Unicode case folding also maps
 * U+017F LATIN SMALL LETTER LONG S to 's' (HF matches "'ſ" as a piece). */
static uint32_t fold(uint32_t c) {
    if (c == 0x17F) return 's';
    if (c >= 'A' && c <= 'Z') return c | 0x20;
    return c;
}

static size_t contraction(const uint8_t *s, size_t n, size_t pos) {
    size_t p = pos + 1;
    Ch a = char_at(s, n, p);
    if (!a.len) return 0;
    uint32_t f = fold(a.cp);
    if (f == 's' || f == 't' || f == 'm' || f == 'd') return p + a.len;
    if (f != 'r' && f != 'v' && f != 'l') return 0;
    Ch b = char_at(s, n, p + a.len);
    if (!b.len) return 0;
    uint32_t g = fold(b.cp);
    if ((f == 'r' || f == 'v') && g == 'e') return p + a.len + b.len;
    if (f == 'l' && g == 'l') return p + a.len + b.len;
    return 0;
}

static size_t letters_from(const uint8_t *s, size_t n, size_t p) {
    for (;;) {
        Ch c = char_at(s, n, p);
        if (!(c.cls & C_L)) return p;
        p += c.len;
    }
}

/* [^\s\p{L}\p{N}] */
static int is_other(unsigned cls) { return (cls & (C_WS | C_L | C_N)) == 0; }

size_t pretok_next(PretokKind kind, const uint8_t *s, size_t n, size_t pos) {
    Ch c0 = char_at(s, n, pos);
    if (!c0.len) return n;
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c0.cp == '\'') {
        size_t e = contraction(s, n, pos);
        if (e) return e;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ : the optional char can only be taken when
     * it is not a letter, and then a letter must follow it. */
    if (c0.cls & C_L) return letters_from(s, n, pos + c0.len);
    if (!(c0.cls & (C_N | C_CRLF))) {
        Ch c1 = char_at(s, n, pos + c0.len);
        if (c1.cls & C_L) return letters_from(s, n, pos + c0.len);
    }
    /* \p{N}{1,3} or \p{N} */
    if (c0.cls & C_N) {
        size_t p = pos + c0.len;
        if (kind == PRETOK_LLAMA3) {
            for (int k = 1; k < 3; k++) {
                Ch c = char_at(s, n, p);
                if (!(c.cls & C_N)) break;
                p += c.len;
            }
        }
        return p;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    {
        size_t p = pos;
        if (c0.cp == ' ') {
            Ch c1 = char_at(s, n, pos + 1);
            if (c1.len && is_other(c1.cls)) p = pos + 1;
        }
        Ch c = char_at(s, n, p);
        if (c.len && is_other(c.cls)) {
            while (c.len && is_other(c.cls)) { p += c.len; c = char_at(s, n, p); }
            while (p < n && (s[p] == '\r' || s[p] == '\n')) p++;
            return p;
        }
    }
    /* Only whitespace is left here. Scan the run once, remembering the end
     * of its last CR/LF and the start of its last char. */
    size_t p = pos, last_crlf_end = 0, last_start = pos, nchars = 0;
    for (;;) {
        Ch c = char_at(s, n, p);
        if (!(c.cls & C_WS)) break;
        last_start = p;
        nchars++;
        p += c.len;
        if (c.cls & C_CRLF) last_crlf_end = p;
    }
    if (nchars == 0) return pos + c0.len; /* unreachable: every char is L, N, ws or other */
    /* \s*[\r\n]+ : greedy \s* backs off to the last CR/LF of the run */
    if (last_crlf_end) return last_crlf_end;
    /* \s+(?!\S) : the whole run at end of text, else all but its last char */
    if (p == n) return p;
    if (nchars >= 2) return last_start;
    /* \s+ */
    return p;
}
