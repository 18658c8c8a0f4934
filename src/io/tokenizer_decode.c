/* Decoder: ids -> bytes -> UTF-8 text, replacing invalid sequences with
 * U+FFFD like Rust's from_utf8_lossy (HF's ByteLevel decoder), plus a
 * streaming form that holds back an incomplete trailing char. */
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer_internal.h"
#include "io/utf8.h"

typedef struct Buf { char **p; size_t *len, *cap; } Buf;

static int buf_add(Buf b, const void *s, size_t n, Err *err) {
    if (*b.len + n + 1 > *b.cap) {
        size_t c = *b.cap ? *b.cap : 256;
        while (c < *b.len + n + 1) c *= 2;
        char *q = realloc(*b.p, c);
        if (!q) return err_set(err, "out of memory");
        *b.p = q;
        *b.cap = c;
    }
    memcpy(*b.p + *b.len, s, n);
    *b.len += n;
    (*b.p)[*b.len] = 0;
    return 0;
}

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

/* Appends s[0..n) as valid UTF-8. With hold != NULL, an incomplete
 * sequence at the very end is not emitted; its length goes to *hold. */
static int append_lossy(Buf b, const uint8_t *s, size_t n, size_t *hold, Err *err) {
    size_t i = 0, run = 0;
    if (hold) *hold = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = s[i] < 0x80 ? 1 : utf8_decode(s + i, n - i, &cp);
        if (l) { i += l; run += l; continue; }
        if (buf_add(b, s + i - run, run, err)) return -1;
        run = 0;
        if (hold && utf8_incomplete_tail(s + i, n - i)) { *hold = n - i; return 0; }
        if (buf_add(b, REPLACEMENT, 3, err)) return -1;
        i += utf8_invalid_len(s + i, n - i);
    }
    return buf_add(b, s + n - run, run, err);
}

/* An id the vocabulary does not assign decodes to nothing, as in HF
 * tokenizers: checkpoints pad the embedding past the tokenizer (Qwen2.5:
 * 151936 rows for 151665 ids), and a sampler may pick a padding row. A
 * negative id is an error. */
static int id_bytes(const Tokenizer *t, int32_t id, int skip_special, const uint8_t **p, size_t *l, Err *err) {
    if (id < 0) return err_set(err, "token id %d is negative", id);
    if (tok_id_bytes(t, id, p, l)) {
        *l = 0;
        return 0;
    }
    if (skip_special && tokenizer_is_special(t, id)) *l = 0;
    return 0;
}

int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len, Err *err) {
    uint8_t *raw = NULL;
    size_t rl = 0, rc = 0;
    *text = NULL;
    *len = 0;
    Buf rb = {(char **)&raw, &rl, &rc};
    if (buf_add(rb, "", 0, err)) return -1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p;
        size_t l;
        if (id_bytes(t, ids[i], skip_special, &p, &l, err) || buf_add(rb, p, l, err)) { free(raw); return -1; }
    }
    size_t cap = 0;
    Buf ob = {text, len, &cap};
    int r = buf_add(ob, "", 0, err);
    if (!r) r = append_lossy(ob, raw, rl, NULL, err);
    free(raw);
    if (r) { free(*text); *text = NULL; *len = 0; }
    return r;
}

void tokenizer_stream_init(TokDecodeStream *st, const Tokenizer *tok, int skip_special) {
    memset(st, 0, sizeof *st);
    st->tok = tok;
    st->skip_special = skip_special;
}

int tokenizer_stream_push(TokDecodeStream *st, int32_t id, char **buf, size_t *len, size_t *cap, Err *err) {
    const uint8_t *p;
    size_t l;
    if (id_bytes(st->tok, id, st->skip_special, &p, &l, err)) return -1;
    Buf b = {buf, len, cap};
    if (buf_add(b, "", 0, err)) return -1;
    if (l == 0) return 0;
    /* pending (<= 3 bytes) + the token, through one small scratch copy */
    size_t n = st->n_pending + l;
    uint8_t small[64];
    uint8_t *tmp = n <= sizeof small ? small : malloc(n);
    if (!tmp) return err_set(err, "out of memory");
    memcpy(tmp, st->pending, st->n_pending);
    memcpy(tmp + st->n_pending, p, l);
    size_t hold = 0;
    int r = append_lossy(b, tmp, n, &hold, err);
    if (!r) {
        memcpy(st->pending, tmp + n - hold, hold);
        st->n_pending = hold;
    }
    if (tmp != small) free(tmp);
    return r;
}

int tokenizer_stream_finish(TokDecodeStream *st, char **buf, size_t *len, size_t *cap, Err *err) {
    Buf b = {buf, len, cap};
    int r = buf_add(b, "", 0, err);
    if (!r && st->n_pending) r = append_lossy(b, st->pending, st->n_pending, NULL, err);
    st->n_pending = 0;
    return r;
}
