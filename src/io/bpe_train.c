/* BPE training (see bpe_train.h). Words are counted once; merges update
 * only the words that contain the merged pair (each pair keeps the list of
 * words it occurs in), and a max-heap with versioned entries picks the most
 * frequent pair, ties broken by the pair's bytes so the result does not
 * depend on hash order. */
#include "io/bpe_train.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/file.h"
#include "io/bytelevel.h"
#include "io/utf8.h"

typedef struct Word {
    uint64_t off; /* bytes in the word arena */
    uint32_t len;
    int64_t count;
    uint32_t sym_off, n_sym; /* symbols (token ids) in t->syms */
} Word;

typedef struct Pair {
    int32_t a, b;
    int64_t count, old_count;
    uint32_t version;
    int dirty, banned;
    int32_t last_word;
    int32_t *words;
    uint32_t n_words, cap_words;
} Pair;

typedef struct HeapEnt { int64_t count; int32_t pair; uint32_t version; } HeapEnt;

struct BpeTrainer {
    BpeTrainOptions opt;
    char **added;     /* all added tokens: specials then non-special */
    uint8_t *is_special;
    size_t n_added;
    /* word counting */
    uint8_t *wbytes;
    size_t wlen, wcap;
    Word *words;
    size_t n_words, cap_words;
    int32_t *wmap; /* open addressing: word index + 1 */
    size_t wmap_mask;
    /* training */
    int32_t *syms;
    uint8_t **tok_bytes;
    uint32_t *tok_len;
    size_t n_tok;
    Pair *pairs;
    size_t n_pairs, cap_pairs;
    int32_t *pmap; /* pair index + 1 */
    size_t pmap_mask;
    HeapEnt *heap;
    size_t n_heap, cap_heap;
    int32_t (*merges)[2];
    size_t n_merges;
    int32_t *dirty;
    size_t n_dirty, cap_dirty;
};

static uint64_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 31);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int bpe_train_begin(BpeTrainer **out, const BpeTrainOptions *opt, Err *err) {
    *out = NULL;
    size_t na = opt->n_special + opt->n_added;
    if (opt->vocab_size < (int32_t)(256 + na))
        return err_set(err, "vocab size %d is below 256 bytes + %zu added tokens", opt->vocab_size, na);
    if (opt->vocab_size > (1 << 22)) return err_set(err, "vocab size %d is too large (limit %d)", opt->vocab_size, 1 << 22);
    BpeTrainer *t = calloc(1, sizeof *t);
    if (!t) return err_set(err, "out of memory");
    t->opt = *opt;
    if (t->opt.min_frequency < 1) t->opt.min_frequency = 1;
    t->added = calloc(na + 1, sizeof *t->added);
    t->is_special = calloc(na + 1, 1);
    t->wmap_mask = (1 << 16) - 1;
    t->wmap = calloc(t->wmap_mask + 1, sizeof *t->wmap);
    if (!t->added || !t->is_special || !t->wmap) { bpe_train_free(t); return err_set(err, "out of memory"); }
    for (size_t i = 0; i < na; i++) {
        const char *s = i < opt->n_special ? opt->special[i] : opt->added[i - opt->n_special];
        size_t l = strlen(s);
        if (!l || utf8_validate((const uint8_t *)s, l) != l) { bpe_train_free(t); return err_set(err, "added token %zu is empty or not UTF-8", i); }
        for (size_t k = 0; k < t->n_added; k++)
            if (!strcmp(t->added[k], s)) { bpe_train_free(t); return err_set(err, "added token '%s' is given twice", s); }
        t->added[t->n_added] = strdup(s);
        t->is_special[t->n_added++] = i < opt->n_special;
    }
    *out = t;
    return 0;
}

static int add_word(BpeTrainer *t, const uint8_t *s, size_t n, Err *err) {
    uint64_t h = hash_bytes(s, n);
    size_t i = h & t->wmap_mask;
    while (t->wmap[i]) {
        Word *w = &t->words[t->wmap[i] - 1];
        if (w->len == n && !memcmp(t->wbytes + w->off, s, n)) { w->count++; return 0; }
        i = (i + 1) & t->wmap_mask;
    }
    if (n > UINT32_MAX / 2) return err_set(err, "word too long");
    if (grow((void **)&t->words, &t->cap_words, t->n_words + 1, sizeof *t->words) ||
        grow((void **)&t->wbytes, &t->wcap, t->wlen + n, 1))
        return err_set(err, "out of memory");
    memcpy(t->wbytes + t->wlen, s, n);
    t->words[t->n_words] = (Word){t->wlen, (uint32_t)n, 1, 0, 0};
    t->wlen += n;
    t->wmap[i] = (int32_t)++t->n_words;
    if (t->n_words * 2 > t->wmap_mask) { /* rehash to keep probes short */
        size_t mask = t->wmap_mask * 2 + 1;
        int32_t *m = calloc(mask + 1, sizeof *m);
        if (!m) return err_set(err, "out of memory");
        for (size_t k = 0; k < t->n_words; k++) {
            size_t j = hash_bytes(t->wbytes + t->words[k].off, t->words[k].len) & mask;
            while (m[j]) j = (j + 1) & mask;
            m[j] = (int32_t)k + 1;
        }
        free(t->wmap);
        t->wmap = m;
        t->wmap_mask = mask;
    }
    return 0;
}

static int count_plain(BpeTrainer *t, const uint8_t *s, size_t n, Err *err) {
    utf8proc_uint8_t *norm = NULL;
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = s[i] < 0x80;
    if (!ascii) {
        utf8proc_ssize_t r = utf8proc_map(s, (utf8proc_ssize_t)n, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0) return err_set(err, "NFC failed: %s", utf8proc_errmsg(r));
        s = norm;
        n = (size_t)r;
    }
    int rc = 0;
    for (size_t pos = 0; pos < n && !rc;) {
        size_t end = pretok_next(t->opt.pretok, s, n, pos);
        rc = add_word(t, s + pos, end - pos, err);
        pos = end;
    }
    free(norm);
    return rc;
}

int bpe_train_feed(BpeTrainer *t, const char *text, size_t len, Err *err) {
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = utf8_validate(s, len);
    if (bad != len) return err_set(err, "invalid UTF-8 at byte %zu", bad);
    size_t start = 0;
    for (size_t p = 0; p < len;) {
        size_t best = 0;
        for (size_t k = 0; k < t->n_added; k++) {
            size_t l = strlen(t->added[k]);
            if (l > best && l <= len - p && !memcmp(s + p, t->added[k], l)) best = l;
        }
        if (!best) { p++; continue; }
        if (p > start && count_plain(t, s + start, p - start, err)) return -1;
        p += best;
        start = p;
    }
    if (start < len) return count_plain(t, s + start, len - start, err);
    return 0;
}

/* ---- merge learning ---- */

static int tok_cmp(const BpeTrainer *t, int32_t x, int32_t y) {
    uint32_t lx = t->tok_len[x], ly = t->tok_len[y];
    int c = memcmp(t->tok_bytes[x], t->tok_bytes[y], lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* 1 when heap entry e should come out before f */
static int heap_before(const BpeTrainer *t, const HeapEnt *e, const HeapEnt *f) {
    if (e->count != f->count) return e->count > f->count;
    const Pair *p = &t->pairs[e->pair], *q = &t->pairs[f->pair];
    int c = tok_cmp(t, p->a, q->a);
    if (!c) c = tok_cmp(t, p->b, q->b);
    return c < 0;
}

static int heap_push(BpeTrainer *t, int32_t pair) {
    if (grow((void **)&t->heap, &t->cap_heap, t->n_heap + 1, sizeof *t->heap)) return -1;
    HeapEnt e = {t->pairs[pair].count, pair, t->pairs[pair].version};
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(t, &e, &t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = e;
    return 0;
}

static HeapEnt heap_pop(BpeTrainer *t) {
    HeapEnt top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const HeapEnt *best = &last;
        if (l < n && heap_before(t, &t->heap[l], best)) { m = l; best = &t->heap[l]; }
        if (r < n && heap_before(t, &t->heap[r], best)) m = r;
        if (m == i) break;
        t->heap[i] = t->heap[m];
        i = m;
    }
    if (n) t->heap[i] = last;
    return top;
}

static uint64_t pair_key_hash(int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33;
    return k;
}

static int32_t pair_get(BpeTrainer *t, int32_t a, int32_t b, int create) {
    size_t i = pair_key_hash(a, b) & t->pmap_mask;
    while (t->pmap[i]) {
        Pair *p = &t->pairs[t->pmap[i] - 1];
        if (p->a == a && p->b == b) return t->pmap[i] - 1;
        i = (i + 1) & t->pmap_mask;
    }
    if (!create) return -1;
    if (grow((void **)&t->pairs, &t->cap_pairs, t->n_pairs + 1, sizeof *t->pairs)) return -2;
    memset(&t->pairs[t->n_pairs], 0, sizeof(Pair));
    t->pairs[t->n_pairs].a = a;
    t->pairs[t->n_pairs].b = b;
    t->pairs[t->n_pairs].last_word = -1;
    t->pmap[i] = (int32_t)++t->n_pairs;
    if (t->n_pairs * 2 > t->pmap_mask) {
        size_t mask = t->pmap_mask * 2 + 1;
        int32_t *m = calloc(mask + 1, sizeof *m);
        if (!m) return -2;
        for (size_t k = 0; k < t->n_pairs; k++) {
            size_t j = pair_key_hash(t->pairs[k].a, t->pairs[k].b) & mask;
            while (m[j]) j = (j + 1) & mask;
            m[j] = (int32_t)k + 1;
        }
        free(t->pmap);
        t->pmap = m;
        t->pmap_mask = mask;
    }
    return (int32_t)t->n_pairs - 1;
}

/* Adds delta occurrences of (a, b) in word w; remembers the pair as dirty
 * so its heap entry is refreshed once after the merge step. */
static int pair_add(BpeTrainer *t, int32_t a, int32_t b, int64_t delta, int32_t w) {
    int32_t pi = pair_get(t, a, b, delta > 0);
    if (pi == -2) return -1;
    if (pi < 0) return 0;
    Pair *p = &t->pairs[pi];
    if (!p->dirty) {
        p->dirty = 1;
        p->old_count = p->count;
        if (grow((void **)&t->dirty, &t->cap_dirty, t->n_dirty + 1, sizeof *t->dirty)) return -1;
        t->dirty[t->n_dirty++] = pi;
    }
    p->count += delta;
    if (delta > 0 && p->last_word != w) {
        if (p->n_words == p->cap_words) {
            uint32_t c = p->cap_words ? p->cap_words * 2 : 4;
            int32_t *q = realloc(p->words, c * sizeof *q);
            if (!q) return -1;
            p->words = q;
            p->cap_words = c;
        }
        p->words[p->n_words++] = w;
        p->last_word = w;
    }
    return 0;
}

static int flush_dirty(BpeTrainer *t) {
    for (size_t i = 0; i < t->n_dirty; i++) {
        Pair *p = &t->pairs[t->dirty[i]];
        p->dirty = 0;
        if (p->count != p->old_count) {
            p->version++;
            if (p->count > 0 && heap_push(t, t->dirty[i])) return -1;
        }
    }
    t->n_dirty = 0;
    return 0;
}

static int word_pairs(BpeTrainer *t, int32_t wi, int64_t sign) {
    Word *w = &t->words[wi];
    int32_t *s = t->syms + w->sym_off;
    for (uint32_t k = 0; k + 1 < w->n_sym; k++)
        if (pair_add(t, s[k], s[k + 1], sign * w->count, wi)) return -1;
    return 0;
}

static int learn(BpeTrainer *t, Err *err) {
    size_t total = (size_t)t->opt.vocab_size;
    t->tok_bytes = calloc(total, sizeof *t->tok_bytes);
    t->tok_len = calloc(total, sizeof *t->tok_len);
    t->merges = calloc(total, sizeof *t->merges);
    if (!t->tok_bytes || !t->tok_len || !t->merges) return err_set(err, "out of memory");
    for (size_t i = 0; i < t->n_added; i++) {
        t->tok_len[i] = (uint32_t)strlen(t->added[i]);
        t->tok_bytes[i] = (uint8_t *)strdup(t->added[i]);
    }
    for (int b = 0; b < 256; b++) {
        size_t id = t->n_added + (size_t)b;
        t->tok_bytes[id] = malloc(1);
        if (!t->tok_bytes[id]) return err_set(err, "out of memory");
        t->tok_bytes[id][0] = (uint8_t)b;
        t->tok_len[id] = 1;
    }
    t->n_tok = t->n_added + 256;
    size_t nsym = t->wlen;
    t->syms = malloc((nsym ? nsym : 1) * sizeof *t->syms);
    t->pmap_mask = (1 << 16) - 1;
    t->pmap = calloc(t->pmap_mask + 1, sizeof *t->pmap);
    if (!t->syms || !t->pmap) return err_set(err, "out of memory");
    for (size_t w = 0; w < t->n_words; w++) {
        Word *wd = &t->words[w];
        wd->sym_off = (uint32_t)wd->off;
        wd->n_sym = wd->len;
        for (uint32_t k = 0; k < wd->len; k++) t->syms[wd->sym_off + k] = (int32_t)(t->n_added + t->wbytes[wd->off + k]);
        if (word_pairs(t, (int32_t)w, 1)) return err_set(err, "out of memory");
    }
    if (flush_dirty(t)) return err_set(err, "out of memory");
    while (t->n_tok < total && t->n_heap) {
        HeapEnt e = heap_pop(t);
        Pair *p = &t->pairs[e.pair];
        if (e.version != p->version || p->count <= 0 || p->banned) continue;
        if (p->count < t->opt.min_frequency) break;
        int32_t a = p->a, b = p->b, nid = (int32_t)t->n_tok;
        size_t la = t->tok_len[a], lb = t->tok_len[b];
        uint8_t *nb = malloc(la + lb);
        if (!nb) return err_set(err, "out of memory");
        memcpy(nb, t->tok_bytes[a], la);
        memcpy(nb + la, t->tok_bytes[b], lb);
        /* added tokens are also vocabulary entries (HF keeps their ids only
         * then), so a merge may not spell one of them a second time */
        int clash = 0;
        for (size_t k = 0; k < t->n_added && !clash; k++) clash = t->tok_len[k] == la + lb && !memcmp(t->tok_bytes[k], nb, la + lb);
        if (clash) { free(nb); p->banned = 1; continue; }
        t->tok_bytes[nid] = nb;
        t->tok_len[nid] = (uint32_t)(la + lb);
        t->merges[t->n_merges][0] = a;
        t->merges[t->n_merges][1] = b;
        t->n_merges++;
        t->n_tok++;
        /* the word list may grow while we walk it: take its length now */
        uint32_t nw = p->n_words;
        for (uint32_t k = 0; k < nw; k++) {
            int32_t wi = t->pairs[e.pair].words[k];
            Word *w = &t->words[wi];
            int32_t *s = t->syms + w->sym_off;
            int has = 0;
            for (uint32_t j = 0; j + 1 < w->n_sym && !has; j++) has = s[j] == a && s[j + 1] == b;
            if (!has) continue; /* stale entry, or a word listed twice */
            if (word_pairs(t, wi, -1)) return err_set(err, "out of memory");
            uint32_t o = 0;
            for (uint32_t j = 0; j < w->n_sym; j++) {
                if (j + 1 < w->n_sym && s[j] == a && s[j + 1] == b) { s[o++] = nid; j++; }
                else s[o++] = s[j];
            }
            w->n_sym = o;
            if (word_pairs(t, wi, 1)) return err_set(err, "out of memory");
        }
        if (flush_dirty(t)) return err_set(err, "out of memory");
    }
    return 0;
}

static json_t *bytelevel_json(const uint8_t *s, size_t n) {
    char *buf = malloc(n * 2 + 1);
    if (!buf) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += utf8_encode(bytelevel_char(s[i]), (uint8_t *)buf + k);
    json_t *j = json_stringn(buf, k);
    free(buf);
    return j;
}

static json_t *bytelevel_obj(const char *type) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", type, "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0);
}

static int write_json(BpeTrainer *t, const char *path, Err *err) {
    json_t *added = json_array(), *vocab = json_object(), *merges = json_array();
    for (size_t i = 0; i < t->n_added; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", (int)i, "content", t->added[i],
                                               "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special",
                                               t->is_special[i]));
    for (size_t id = 0; id < t->n_tok; id++) {
        if (id < t->n_added) { /* added tokens are in the vocab as written */
            json_object_set_new(vocab, t->added[id], json_integer((json_int_t)id));
            continue;
        }
        json_t *k = bytelevel_json(t->tok_bytes[id], t->tok_len[id]);
        if (!k) return err_set(err, "out of memory");
        json_object_set_new(vocab, json_string_value(k), json_integer((json_int_t)id));
        json_decref(k);
    }
    for (size_t m = 0; m < t->n_merges; m++) {
        int32_t a = t->merges[m][0], b = t->merges[m][1];
        json_array_append_new(merges, json_pack("[oo]", bytelevel_json(t->tok_bytes[a], t->tok_len[a]),
                                                bytelevel_json(t->tok_bytes[b], t->tok_len[b])));
    }
    const char *pattern = t->opt.pretok == PRETOK_LLAMA3 ? PRETOK_PATTERN_LLAMA3 : PRETOK_PATTERN_QWEN2;
    json_t *root = json_pack(
        "{s:s, s:n, s:n, s:o, s:{s:s}, s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}, s:o, s:o,"
        " s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}}",
        "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", "type", "NFC",
        "pre_tokenizer", "type", "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex", pattern, "behavior",
        "Isolated", "invert", 0, bytelevel_obj("ByteLevel"), "post_processor", bytelevel_obj("ByteLevel"), "decoder",
        bytelevel_obj("ByteLevel"), "model", "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix",
        "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    if (!root) return err_set(err, "%s: could not build the JSON document", path);
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) return err_set(err, "out of memory");
    AtomicFile af;
    int rc = atomic_open(&af, path, err);
    if (!rc) rc = atomic_write(&af, s, strlen(s), err);
    if (!rc) rc = atomic_write(&af, "\n", 1, err);
    if (!rc) rc = atomic_commit(&af, err);
    else atomic_abort(&af);
    free(s);
    return rc;
}

int bpe_train_finish(BpeTrainer *t, const char *out_path, Err *err) {
    if (t->tok_bytes) return err_set(err, "bpe_train_finish called twice");
    if (learn(t, err)) return -1;
    return write_json(t, out_path, err);
}

size_t bpe_train_n_merges(const BpeTrainer *t) { return t->n_merges; }

void bpe_train_free(BpeTrainer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i]);
    free(t->added);
    free(t->is_special);
    free(t->wbytes);
    free(t->words);
    free(t->wmap);
    free(t->syms);
    for (size_t i = 0; t->tok_bytes && i < t->n_tok; i++) free(t->tok_bytes[i]);
    free(t->tok_bytes);
    free(t->tok_len);
    for (size_t i = 0; i < t->n_pairs; i++) free(t->pairs[i].words);
    free(t->pairs);
    free(t->pmap);
    free(t->heap);
    free(t->merges);
    free(t->dirty);
    free(t);
}
