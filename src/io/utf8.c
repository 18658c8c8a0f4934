/* UTF-8 decoding/validation (see utf8.h). Bounds are checked on every
 * byte: callers pass text straight from files and the network. */
#include "io/utf8.h"

/* Allowed range of the second byte for each lead byte (RFC 3629 table):
 * this is what rules out overlongs, surrogates and values > U+10FFFF. */
static int second_ok(uint8_t lead, uint8_t b) {
    if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
    return b >= 0x80 && b <= 0xBF;
}

static size_t seq_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t b0 = s[0];
    if (b0 < 0x80) { *cp = b0; return 1; }
    size_t len = seq_len(b0);
    if (len == 0 || n < len || !second_ok(b0, s[1])) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (len == 2) *cp = ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
    else if (len == 3) *cp = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    else *cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return len;
}

size_t utf8_encode(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | (cp >> 6)); out[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12)); out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18)); out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_validate(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t l = utf8_decode(s + i, n - i, &cp);
        if (!l) return i;
        i += l;
    }
    return n;
}

/* Number of leading bytes of s that form a valid prefix of some sequence. */
static size_t valid_prefix(const uint8_t *s, size_t n) {
    size_t len = seq_len(s[0]);
    if (len <= 1) return len == 1 ? 1 : 0;
    size_t k = 1;
    if (k < n && k < len) {
        if (!second_ok(s[0], s[1])) return 1;
        k = 2;
        while (k < n && k < len && (s[k] & 0xC0) == 0x80) k++;
    }
    return k;
}

size_t utf8_incomplete_tail(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    size_t len = seq_len(s[0]);
    if (len <= 1 || n >= len) return 0;
    size_t k = valid_prefix(s, n);
    return k == n ? n : 0;
}

size_t utf8_invalid_len(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    size_t len = seq_len(s[0]);
    if (len <= 1) return 1;
    size_t k = valid_prefix(s, n);
    return k ? k : 1;
}
