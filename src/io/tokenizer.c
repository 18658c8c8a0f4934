/* Encoder: added-token splitting, NFC, pre-tokenization and byte-level BPE
 * (see tokenizer.h). BPE merges a word with a binary heap of candidate
 * pairs ordered by (rank, position): O(n log n) per word with no recursion,
 * so a 100k-char run of one letter is as safe as a normal word. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "io/tokenizer_internal.h"
#include "io/utf8.h"

int tokids_push(TokIds *v, int32_t id, Err *err) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int32_t *p = realloc(v->ids, cap * sizeof *p);
        if (!p) return err_set(err, "out of memory");
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int heap_less(const BpeHeapEnt *a, const BpeHeapEnt *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(BpeHeapEnt *h, size_t *n, BpeHeapEnt e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static BpeHeapEnt heap_pop(BpeHeapEnt *h, size_t *n) {
    BpeHeapEnt top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const BpeHeapEnt *best = &last;
        if (l < *n && heap_less(&h[l], best)) { m = l; best = &h[l]; }
        if (r < *n && heap_less(&h[r], best)) { m = r; }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

/* The merge loop proper: symbols start as single bytes; the heap holds
 * every adjacent pair that has a merge; stale entries are skipped when
 * the pair at that position no longer produces the same token. */
static int bpe_merge(Tokenizer *t, const uint8_t *w, size_t n, TokIds *out, Err *err) {
    if (n > INT32_MAX / 2) return err_set(err, "word of %zu bytes is too long", n);
    if (grow((void **)&t->sym, &t->sym_cap, n, sizeof *t->sym) ||
        grow((void **)&t->heap, &t->heap_cap, 2 * n + 2, sizeof *t->heap))
        return err_set(err, "out of memory");
    BpeSym *sym = t->sym;
    BpeHeapEnt *heap = t->heap;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i].id = t->byte_id[w[i]];
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        sym[i].len = 1;
    }
    int32_t rank, nid;
    for (size_t i = 0; i + 1 < n; i++)
        if (!tok_pair_find(t, sym[i].id, sym[i + 1].id, &rank, &nid))
            heap_push(heap, &nh, (BpeHeapEnt){rank, (int32_t)i, nid});
    while (nh) {
        BpeHeapEnt top = heap_pop(heap, &nh);
        BpeSym *s = &sym[top.pos];
        if (s->len == 0 || s->next < 0) continue;
        BpeSym *r = &sym[s->next];
        if (tok_pair_find(t, s->id, r->id, &rank, &nid) || nid != top.new_id) continue;
        s->id = nid;
        s->len += r->len;
        r->len = 0;
        s->next = r->next;
        if (s->next >= 0) sym[s->next].prev = top.pos;
        /* each merge adds at most two pairs, so 2n+2 entries suffice */
        if (s->prev >= 0 && !tok_pair_find(t, sym[s->prev].id, s->id, &rank, &nid))
            heap_push(heap, &nh, (BpeHeapEnt){rank, s->prev, nid});
        if (s->next >= 0 && !tok_pair_find(t, s->id, sym[s->next].id, &rank, &nid))
            heap_push(heap, &nh, (BpeHeapEnt){rank, top.pos, nid});
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if (tokids_push(out, sym[i].id, err)) return -1;
    return 0;
}

static int bpe_word_uncached(Tokenizer *t, const uint8_t *w, size_t n, TokIds *out, Err *err) {
    if (t->ignore_merges) { /* Llama 3: a piece that is a token stays whole */
        int32_t id = tok_vocab_find(t, w, n);
        if (id >= 0) return tokids_push(out, id, err);
    }
    return bpe_merge(t, w, n, out, err);
}

static int bpe_word(Tokenizer *t, const uint8_t *w, size_t n, TokIds *out, Err *err) {
    if (n == 1) return tokids_push(out, t->byte_id[w[0]], err);
    if (n > TOK_CACHE_MAX_WORD) return bpe_word_uncached(t, w, n, out, err);
    if (!t->cache && !(t->cache = calloc(TOK_CACHE_SLOTS, sizeof *t->cache))) return err_set(err, "out of memory");
    uint64_t h = tok_hash(w, n);
    WordCacheSlot *slot = &t->cache[h & (TOK_CACHE_SLOTS - 1)];
    if (slot->len == n && slot->hash == h && !memcmp(slot->word, w, n)) {
        for (size_t i = 0; i < slot->n_ids; i++)
            if (tokids_push(out, slot->ids[i], err)) return -1;
        return 0;
    }
    size_t before = out->n;
    if (bpe_word_uncached(t, w, n, out, err)) return -1;
    if (out->n - before > TOK_CACHE_MAX_IDS) return 0;
    slot->hash = h;
    slot->len = (uint8_t)n;
    slot->n_ids = (uint8_t)(out->n - before);
    memcpy(slot->word, w, n);
    memcpy(slot->ids, out->ids + before, slot->n_ids * sizeof(int32_t));
    return 0;
}

/* Where emitted ids go, and how positions in the buffer being encoded map
 * back to the caller's text: identity for raw text, proportional inside a
 * gap that NFC changed (exact when NFC leaves the gap alone, the usual
 * case, and always monotone). */
typedef struct EncCtx {
    TokIds *out;
    TokOffsets *offs; /* NULL: offsets not wanted */
    const uint8_t *buf0;
    size_t base, buf_len, orig_len;
} EncCtx;

static size_t map_pos(const EncCtx *c, size_t pos) {
    if (c->buf_len == c->orig_len) return c->base + pos;
    return c->base + (size_t)((double)pos * (double)c->orig_len / (double)c->buf_len + 0.5);
}

static int offs_push(EncCtx *c, size_t start, size_t end, Err *err) {
    TokOffsets *o = c->offs;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        size_t *a = realloc(o->start, cap * sizeof *a), *b;
        if (!a) return err_set(err, "out of memory");
        o->start = a;
        b = realloc(o->end, cap * sizeof *b);
        if (!b) return err_set(err, "out of memory");
        o->end = b;
        o->cap = cap;
    }
    o->start[o->n] = map_pos(c, start);
    o->end[o->n++] = map_pos(c, end);
    return 0;
}

/* Pre-tokenize then BPE each piece. */
static int encode_plain(Tokenizer *t, EncCtx *c, const uint8_t *s, size_t n, Err *err) {
    size_t pos = 0;
    while (pos < n) {
        size_t end = pretok_next(t->pretok, s, n, pos);
        size_t before = c->out->n;
        if (bpe_word(t, s + pos, end - pos, c->out, err)) return -1;
        /* a word's tokens spell its bytes in order */
        size_t p = (size_t)(s - c->buf0) + pos;
        for (size_t k = before; c->offs && k < c->out->n; k++) {
            size_t l = t->mod_len[c->out->ids[k]];
            if (offs_push(c, p, p + l, err)) return -1;
            p += l;
        }
        pos = end;
    }
    return 0;
}

/* Leftmost-longest added-token match at or after `from` (what HF's
 * Aho-Corasick LeftmostLongest finds). Returns the added index or -1. */
static int find_added(const Tokenizer *t, const AddedSet *set, const uint8_t *s, size_t n, size_t from, size_t *ms) {
    if (!set->n) return -1;
    for (size_t p = from; p < n; p++) {
        uint32_t a = set->start[s[p]], b = set->start[s[p] + 1];
        int best = -1;
        size_t best_len = 0;
        for (uint32_t k = a; k < b; k++) {
            const AddedTok *at = &t->added[set->idx[k]];
            if (at->match_len > best_len && at->match_len <= n - p && !memcmp(at->match, s + p, at->match_len)) {
                best = set->idx[k];
                best_len = at->match_len;
            }
        }
        if (best >= 0) { *ms = p; return best; }
    }
    return -1;
}

/* Rust regex \w, used by single_word: letters, marks, digits, connectors. */
static int is_word_char(uint32_t c) {
    if (c < 0x80) return (c | 0x20) - 'a' < 26 || c - '0' < 10 || c == '_';
    if (c == 0x200C || c == 0x200D) return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

/* Code point ending at s[end) (valid UTF-8 assumed), and its start. */
static uint32_t char_before(const uint8_t *s, size_t end, size_t *start) {
    size_t p = end - 1;
    while (p > 0 && (s[p] & 0xC0) == 0x80 && end - p < 4) p--;
    uint32_t cp = 0xFFFD;
    if (!utf8_decode(s + p, end - p, &cp)) cp = 0xFFFD;
    *start = p;
    return cp;
}

typedef int (*GapFn)(Tokenizer *t, EncCtx *c, const uint8_t *s, size_t n, Err *err);

/* Splits a sentence on added tokens, applying single_word / lstrip /
 * rstrip as HF's AddedVocabulary::find_matches does, and hands the text
 * between tokens to gap(). */
static int split_added(Tokenizer *t, EncCtx *c, const AddedSet *set, const uint8_t *s, size_t n, GapFn gap, Err *err) {
    size_t start_offset = 0, search = 0, ms;
    int ai;
    while (search < n && (ai = find_added(t, set, s, n, search, &ms)) >= 0) {
        const AddedTok *a = &t->added[ai];
        size_t start = ms, stop = ms + a->match_len, cs;
        search = stop;
        if (a->single_word) {
            int word_before = start > 0 && is_word_char(char_before(s, start, &cs));
            uint32_t cp = 0;
            int word_after = stop < n && utf8_decode(s + stop, n - stop, &cp) && is_word_char(cp);
            if (word_before || word_after) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                uint32_t cp = char_before(s, ns, &cs);
                if (!tok_is_space(cp)) break;
                ns = cs;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            uint32_t cp;
            size_t l;
            while (stop < n && (l = utf8_decode(s + stop, n - stop, &cp)) && tok_is_space(cp)) stop += l;
        }
        /* a previous token's rstrip may already cover this start; HF then
         * emits the token without a gap, and so do we */
        if (start_offset < start && gap(t, c, s + start_offset, start - start_offset, err)) return -1;
        if (tokids_push(c->out, a->id, err)) return -1;
        size_t p = (size_t)(s - c->buf0);
        if (c->offs && offs_push(c, p + start, p + stop, err)) return -1;
        start_offset = stop;
    }
    if (start_offset < n) return gap(t, c, s + start_offset, n - start_offset, err);
    return 0;
}

static int encode_normalized_piece(Tokenizer *t, EncCtx *c, const uint8_t *s, size_t n, Err *err) {
    return split_added(t, c, &t->norm_set, s, n, encode_plain, err);
}

/* Text between raw-matched added tokens: normalize, then split on the
 * normalized added tokens, then pre-tokenize. */
static int encode_gap(Tokenizer *t, EncCtx *c, const uint8_t *s, size_t n, Err *err) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = s[i] < 0x80;
    if (!t->nfc || ascii) return encode_normalized_piece(t, c, s, n, err);
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) return err_set(err, "NFC normalization failed: %s", utf8proc_errmsg(r));
    /* raw text is the caller's text, so s - buf0 is an offset into it */
    EncCtx sub = {c->out, c->offs, o, (size_t)(s - c->buf0), (size_t)r, n};
    int rc = encode_normalized_piece(t, &sub, o, (size_t)r, err);
    free(o);
    return rc;
}

int tokenizer_encode_offsets(Tokenizer *t, const char *text, size_t len, TokIds *out, TokOffsets *offs, Err *err) {
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = utf8_validate(s, len);
    if (bad != len) return err_set(err, "invalid UTF-8 at byte %zu of the input text", bad);
    EncCtx c = {out, offs, s, 0, len, len};
    return split_added(t, &c, &t->raw_set, s, len, encode_gap, err);
}

int tokenizer_encode(Tokenizer *t, const char *text, size_t len, TokIds *out, Err *err) {
    return tokenizer_encode_offsets(t, text, len, out, NULL, err);
}
