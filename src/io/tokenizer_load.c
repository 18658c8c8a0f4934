/* tokenizer.json loader: checks every field we rely on and refuses what we
 * do not implement, so a file either encodes exactly like HF or fails to
 * load with "FILE: problem". */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/file.h"
#include "base/json.h"
#include "io/bytelevel.h"
#include "io/tokenizer_internal.h"
#include "io/utf8.h"

#define MAX_IDS (1 << 24) /* 16M ids: far above any real vocabulary */

uint64_t tok_hash(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001B3ull;
    return h ^ (h >> 29);
}

int tok_is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

int32_t tok_vocab_find(const Tokenizer *t, const uint8_t *s, size_t n) {
    size_t i = tok_hash(s, n) & t->vmap_mask;
    for (;;) {
        uint32_t v = t->vmap[i];
        if (!v) return -1;
        int32_t id = (int32_t)(v - 1);
        if (t->mod_len[id] == n && !memcmp(t->arena + t->mod_off[id], s, n)) return id;
        i = (i + 1) & t->vmap_mask;
    }
}

static uint64_t pair_hash(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33;
    return k;
}

int tok_pair_find(const Tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pair_hash(key) & t->pair_mask;
    for (;;) {
        const TokPair *p = &t->pairs[i];
        if (p->key == UINT64_MAX) return -1;
        if (p->key == key) { *rank = p->rank; *new_id = p->new_id; return 0; }
        i = (i + 1) & t->pair_mask;
    }
}

int tok_id_bytes(const Tokenizer *t, int32_t id, const uint8_t **bytes, size_t *len) {
    if (id < 0 || id >= t->n_ids) return -1;
    int32_t a = t->added_by_id[id];
    if (a >= 0) { *bytes = t->added[a].dec; *len = t->added[a].dec_len; return 0; }
    if (t->mod_len[id] == TOK_NONE) return -1;
    *bytes = t->arena + t->mod_off[id];
    *len = t->mod_len[id];
    return 0;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* Byte-level string -> raw bytes. Returns 0, or -1 when a char is not in
 * the byte alphabet (out then holds nothing useful). */
static int bytelevel_to_raw(const int16_t *rev, const char *s, size_t n, uint8_t *out, size_t *out_len) {
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!l || cp >= 0x200 || rev[cp] < 0) return -1;
        out[k++] = (uint8_t)rev[cp];
        i += l;
    }
    *out_len = k;
    return 0;
}

static int arena_add(Tokenizer *t, const uint8_t *s, size_t n, uint64_t *off) {
    if (t->arena_len + n > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap * 2 : 1 << 20;
        while (cap < t->arena_len + n) cap *= 2;
        uint8_t *p = realloc(t->arena, cap);
        if (!p) return -1;
        t->arena = p;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, n);
    *off = t->arena_len;
    t->arena_len += n;
    return 0;
}

static const char *type_of(const json_t *o) {
    const json_t *ty = json_is_object(o) ? json_object_get(o, "type") : NULL;
    return json_is_string(ty) ? json_string_value(ty) : NULL;
}

static int flag(const json_t *o, const char *key, int dflt) {
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int load_normalizer(Tokenizer *t, const json_t *n, Err *err) {
    if (!n || json_is_null(n)) return 0;
    const char *ty = type_of(n);
    if (!ty) return err_set(err, "normalizer: missing 'type'");
    if (!strcmp(ty, "NFC")) { t->nfc = 1; return 0; }
    if (!strcmp(ty, "Sequence")) {
        const json_t *a = json_object_get(n, "normalizers");
        if (!json_is_array(a)) return err_set(err, "normalizer: Sequence without 'normalizers' array");
        for (size_t i = 0; i < json_array_size(a); i++)
            if (load_normalizer(t, json_array_get(a, i), err)) return -1;
        return 0;
    }
    return err_set(err, "unsupported normalizer type '%s' (only NFC is implemented)", ty);
}

static int load_pretokenizer(Tokenizer *t, const json_t *p, Err *err) {
    const char *ty = type_of(p);
    if (!ty) return err_set(err, "pre_tokenizer: missing (a byte-level Split + ByteLevel sequence is required)");
    const json_t *arr = json_object_get(p, "pretokenizers");
    if (strcmp(ty, "Sequence") || !json_is_array(arr) || json_array_size(arr) != 2)
        return err_set(err, "unsupported pre_tokenizer '%s' (expected Sequence[Split, ByteLevel])", ty);
    const json_t *sp = json_array_get(arr, 0), *bl = json_array_get(arr, 1);
    const char *t0 = type_of(sp), *t1 = type_of(bl);
    if (!t0 || strcmp(t0, "Split") || !t1 || strcmp(t1, "ByteLevel"))
        return err_set(err, "unsupported pre_tokenizer sequence (expected Split then ByteLevel)");
    const json_t *pat = json_object_get(sp, "pattern");
    const json_t *re = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
    if (!json_is_string(re)) return err_set(err, "pre_tokenizer Split: pattern must be {\"Regex\": ...}");
    const json_t *beh = json_object_get(sp, "behavior");
    if (!json_is_string(beh) || strcmp(json_string_value(beh), "Isolated") || flag(sp, "invert", 0))
        return err_set(err, "pre_tokenizer Split: only behavior Isolated without invert is implemented");
    if (flag(bl, "add_prefix_space", 0)) return err_set(err, "pre_tokenizer ByteLevel: add_prefix_space is not implemented");
    if (flag(bl, "use_regex", 1)) return err_set(err, "pre_tokenizer ByteLevel: use_regex after Split is not implemented");
    return pretok_recognise(json_string_value(re), &t->pretok, err);
}

static int vmap_insert(Tokenizer *t, int32_t id, Err *err) {
    const uint8_t *s = t->arena + t->mod_off[id];
    size_t n = t->mod_len[id];
    size_t i = tok_hash(s, n) & t->vmap_mask;
    while (t->vmap[i]) {
        int32_t o = (int32_t)(t->vmap[i] - 1);
        if (t->mod_len[o] == n && !memcmp(t->arena + t->mod_off[o], s, n))
            return err_set(err, "model.vocab: ids %d and %d are the same token", o, id);
        i = (i + 1) & t->vmap_mask;
    }
    t->vmap[i] = (uint32_t)id + 1;
    return 0;
}

static int load_vocab(Tokenizer *t, const json_t *vocab, const int16_t *rev, int32_t max_added, Err *err) {
    size_t nv = json_object_size(vocab);
    if (nv == 0) return err_set(err, "model.vocab is empty");
    if (nv > MAX_IDS) return err_set(err, "model.vocab has %zu entries (limit %d)", nv, MAX_IDS);
    int32_t max_id = max_added;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= MAX_IDS)
            return err_set(err, "model.vocab: token '%.60s' has an invalid id", key);
        if (json_integer_value(val) > max_id) max_id = (int32_t)json_integer_value(val);
    }
    t->n_ids = max_id + 1;
    t->mod_off = calloc((size_t)t->n_ids, sizeof *t->mod_off);
    t->mod_len = malloc((size_t)t->n_ids * sizeof *t->mod_len);
    t->mod_raw = calloc((size_t)t->n_ids, 1);
    t->vmap_mask = pow2_at_least(nv * 2) - 1;
    t->vmap = calloc(t->vmap_mask + 1, sizeof *t->vmap);
    if (!t->mod_off || !t->mod_len || !t->mod_raw || !t->vmap) return err_set(err, "out of memory");
    memset(t->mod_len, 0xFF, (size_t)t->n_ids * sizeof *t->mod_len);
    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    json_object_foreach((json_t *)vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        size_t klen = strlen(key); /* jansson object keys are NUL-free UTF-8 */
        if (t->mod_len[id] != TOK_NONE) { free(buf); return err_set(err, "model.vocab: id %d is used twice", id); }
        if (klen > buf_cap) {
            buf_cap = klen * 2 + 16;
            uint8_t *nb = realloc(buf, buf_cap);
            if (!nb) { free(buf); return err_set(err, "out of memory"); }
            buf = nb;
        }
        size_t rl;
        int raw = bytelevel_to_raw(rev, key, klen, buf, &rl) != 0;
        /* A string outside the byte alphabet can never come out of the
         * byte-level pre-tokenizer; HF's decoder emits it verbatim. */
        const uint8_t *src = raw ? (const uint8_t *)key : buf;
        size_t sl = raw ? klen : rl;
        if (arena_add(t, src, sl, &t->mod_off[id])) { free(buf); return err_set(err, "out of memory"); }
        t->mod_len[id] = (uint32_t)sl;
        t->mod_raw[id] = (uint8_t)raw;
        if (!raw && vmap_insert(t, id, err)) { free(buf); return -1; }
    }
    free(buf);
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = tok_vocab_find(t, &c, 1);
        if (t->byte_id[b] < 0)
            return err_set(err, "model.vocab lacks the byte-level token for byte 0x%02X (not a byte-level BPE vocabulary)", b);
    }
    return 0;
}

/* A merge side: byte-level string -> model id. */
static int merge_side(Tokenizer *t, const int16_t *rev, const char *s, size_t n, uint8_t *buf, int32_t *id) {
    size_t rl;
    if (bytelevel_to_raw(rev, s, n, buf, &rl)) return -1;
    *id = tok_vocab_find(t, buf, rl);
    return *id < 0 ? -1 : 0;
}

static int load_merges(Tokenizer *t, const json_t *merges, const int16_t *rev, Err *err) {
    size_t nm = json_array_size(merges);
    t->pair_mask = pow2_at_least(nm * 2 + 2) - 1;
    t->pairs = malloc((t->pair_mask + 1) * sizeof *t->pairs);
    if (!t->pairs) return err_set(err, "out of memory");
    for (size_t i = 0; i <= t->pair_mask; i++) t->pairs[i].key = UINT64_MAX;
    uint8_t *buf = NULL, *cat = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t r = 0; r < nm && !rc; r++) {
        const json_t *m = json_array_get(merges, r);
        const char *a, *b;
        size_t la, lb;
        char *tmp = NULL;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t ls = json_string_length(m);
            const char *sp = memchr(s, ' ', ls);
            if (!sp || memchr(sp + 1, ' ', ls - (size_t)(sp + 1 - s)) || sp == s || sp + 1 == s + ls) {
                rc = err_set(err, "model.merges[%zu]: expected \"A B\" with one space, got \"%.60s\"", r, s);
                break;
            }
            a = s; la = (size_t)(sp - s); b = sp + 1; lb = ls - la - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)); la = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1)); lb = json_string_length(json_array_get(m, 1));
        } else {
            rc = err_set(err, "model.merges[%zu]: expected a string \"A B\" or a pair [A, B]", r);
            break;
        }
        if (la + lb + 1 > cap) {
            cap = (la + lb) * 2 + 16;
            free(buf); free(cat);
            buf = malloc(cap); cat = malloc(cap);
            if (!buf || !cat) { rc = err_set(err, "out of memory"); break; }
        }
        int32_t ia, ib;
        if (merge_side(t, rev, a, la, buf, &ia)) { rc = err_set(err, "model.merges[%zu]: unknown token '%.*s'", r, (int)(la > 60 ? 60 : la), a); break; }
        if (merge_side(t, rev, b, lb, buf, &ib)) { rc = err_set(err, "model.merges[%zu]: unknown token '%.*s'", r, (int)(lb > 60 ? 60 : lb), b); break; }
        size_t l1 = t->mod_len[ia], l2 = t->mod_len[ib];
        if (l1 + l2 > cap) {
            cap = (l1 + l2) * 2;
            free(cat);
            cat = malloc(cap);
            if (!cat) { rc = err_set(err, "out of memory"); break; }
        }
        memcpy(cat, t->arena + t->mod_off[ia], l1);
        memcpy(cat + l1, t->arena + t->mod_off[ib], l2);
        int32_t inew = tok_vocab_find(t, cat, l1 + l2);
        if (inew < 0) { rc = err_set(err, "model.merges[%zu]: merged token '%.*s%.*s' is not in the vocabulary", r, (int)(la > 40 ? 40 : la), a, (int)(lb > 40 ? 40 : lb), b); break; }
        /* HF builds a map from the list, so a repeated pair keeps its last rank */
        uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        size_t i = pair_hash(key) & t->pair_mask;
        while (t->pairs[i].key != UINT64_MAX && t->pairs[i].key != key) i = (i + 1) & t->pair_mask;
        t->pairs[i] = (TokPair){key, (int32_t)r, inew};
        free(tmp);
    }
    free(buf);
    free(cat);
    return rc;
}

static int load_added(Tokenizer *t, const json_t *arr, const int16_t *rev, Err *err) {
    size_t n = json_array_size(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return err_set(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(arr, i);
        const json_t *c = json_object_get(o, "content"), *id = json_object_get(o, "id");
        if (!json_is_object(o) || !json_is_string(c) || !json_is_integer(id))
            return err_set(err, "added_tokens[%zu]: needs 'id' (integer) and 'content' (string)", i);
        if (json_integer_value(id) < 0 || json_integer_value(id) >= MAX_IDS)
            return err_set(err, "added_tokens[%zu]: invalid id", i);
        if (json_string_length(c) == 0) return err_set(err, "added_tokens[%zu]: empty content", i);
        AddedTok *a = &t->added[t->n_added++];
        a->id = (int32_t)json_integer_value(id);
        a->len = json_string_length(c);
        a->content = malloc(a->len + 1);
        a->dec = malloc(a->len + 1);
        if (!a->content || !a->dec) return err_set(err, "out of memory");
        memcpy(a->content, json_string_value(c), a->len + 1);
        a->special = (uint8_t)flag(o, "special", 0);
        a->lstrip = (uint8_t)flag(o, "lstrip", 0);
        a->rstrip = (uint8_t)flag(o, "rstrip", 0);
        a->single_word = (uint8_t)flag(o, "single_word", 0);
        a->normalized = (uint8_t)flag(o, "normalized", 0);
        if (bytelevel_to_raw(rev, a->content, a->len, a->dec, &a->dec_len)) {
            memcpy(a->dec, a->content, a->len);
            a->dec_len = a->len;
        }
    }
    return 0;
}

static int build_set(Tokenizer *t, AddedSet *set, int normalized) {
    set->idx = malloc((t->n_added ? t->n_added : 1) * sizeof *set->idx);
    if (!set->idx) return -1;
    uint32_t count[257] = {0};
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized) count[(uint8_t)t->added[i].match[0]]++;
    set->start[0] = 0;
    for (int b = 0; b < 256; b++) set->start[b + 1] = set->start[b] + count[b];
    uint32_t fill[256];
    memcpy(fill, set->start, sizeof fill);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized) set->idx[fill[(uint8_t)t->added[i].match[0]]++] = (int32_t)i;
    set->n = set->start[256];
    return 0;
}

static int finish_added(Tokenizer *t, Err *err) {
    t->added_by_id = malloc((size_t)t->n_ids * sizeof *t->added_by_id);
    if (!t->added_by_id) return err_set(err, "out of memory");
    memset(t->added_by_id, 0xFF, (size_t)t->n_ids * sizeof *t->added_by_id);
    for (size_t i = 0; i < t->n_added; i++) {
        AddedTok *a = &t->added[i];
        if (t->added_by_id[a->id] >= 0) return err_set(err, "added_tokens: id %d is used twice", a->id);
        t->added_by_id[a->id] = (int32_t)i;
        if (a->normalized && t->nfc) {
            /* HF matches normalized tokens in normalized text, so their
             * content is normalized the same way first */
            utf8proc_uint8_t *o = NULL;
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)a->content, (utf8proc_ssize_t)a->len, &o,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (r < 0) return err_set(err, "added_tokens: '%.60s': %s", a->content, utf8proc_errmsg(r));
            a->match = (char *)o;
            a->match_len = (size_t)r;
        } else {
            a->match = malloc(a->len + 1);
            if (!a->match) return err_set(err, "out of memory");
            memcpy(a->match, a->content, a->len + 1);
            a->match_len = a->len;
        }
        if (a->match_len == 0) return err_set(err, "added_tokens: '%.60s' normalizes to nothing", a->content);
    }
    if (build_set(t, &t->raw_set, 0) || build_set(t, &t->norm_set, 1)) return err_set(err, "out of memory");
    return 0;
}

static int load_json(Tokenizer *t, const json_t *root, Err *err) {
    if (!json_is_object(root)) return err_set(err, "top level is not a JSON object");
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return err_set(err, "missing 'model' object");
    const char *ty = type_of(model);
    if (ty && strcmp(ty, "BPE")) return err_set(err, "unsupported model type '%s' (only BPE is implemented)", ty);
    if (!ty) return err_set(err, "model: missing 'type' (expected \"BPE\")");
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab)) return err_set(err, "model: missing 'vocab' object");
    if (!json_is_array(merges)) return err_set(err, "model: missing 'merges' array");
    const json_t *dr = json_object_get(model, "dropout");
    if (dr && !json_is_null(dr) && !(json_is_number(dr) && json_number_value(dr) == 0))
        return err_set(err, "model: BPE dropout is not implemented (encoding would be random)");
    const char *sfx;
    if (json_get_str(model, "continuing_subword_prefix", &sfx, "model", err) == 0 && sfx[0])
        return err_set(err, "model: continuing_subword_prefix is not implemented");
    if (json_get_str(model, "end_of_word_suffix", &sfx, "model", err) == 0 && sfx[0])
        return err_set(err, "model: end_of_word_suffix is not implemented");
    if (flag(model, "byte_fallback", 0)) return err_set(err, "model: byte_fallback is not implemented");
    t->ignore_merges = flag(model, "ignore_merges", 0);

    if (load_normalizer(t, json_object_get(root, "normalizer"), err)) return -1;
    if (load_pretokenizer(t, json_object_get(root, "pre_tokenizer"), err)) return -1;
    const json_t *dec = json_object_get(root, "decoder");
    const char *dt = type_of(dec);
    if (!dt || strcmp(dt, "ByteLevel")) return err_set(err, "unsupported decoder '%s' (expected ByteLevel)", dt ? dt : "null");

    int16_t rev[0x200];
    for (int i = 0; i < 0x200; i++) rev[i] = -1;
    for (int b = 0; b < 256; b++) rev[bytelevel_char((uint8_t)b)] = (int16_t)b;

    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added)) return err_set(err, "'added_tokens' is not an array");
    int32_t max_added = -1;
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *id = json_object_get(json_array_get(added, i), "id");
        if (json_is_integer(id) && json_integer_value(id) < MAX_IDS && json_integer_value(id) > max_added)
            max_added = (int32_t)json_integer_value(id);
    }
    if (load_vocab(t, vocab, rev, max_added, err)) return -1;
    if (load_merges(t, merges, rev, err)) return -1;
    if (load_added(t, added, rev, err)) return -1;
    return finish_added(t, err);
}

int tokenizer_load_buf(Tokenizer **out, const char *buf, size_t len, const char *name, Err *err) {
    *out = NULL;
    size_t bad = utf8_validate((const uint8_t *)buf, len);
    if (bad != len) return err_set(err, "%s: invalid UTF-8 at byte %zu", name, bad);
    json_t *root = json_load_buf(buf, len, name, err);
    if (!root) return -1;
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) { json_decref(root); return err_set(err, "%s: out of memory", name); }
    snprintf(t->name, sizeof t->name, "%s", name);
    int rc = load_json(t, root, err);
    json_decref(root);
    if (rc) {
        err_prefix(err, "%s", name);
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tokenizer_load(Tokenizer **out, const char *path, Err *err) {
    char *buf;
    size_t len;
    *out = NULL;
    if (file_read_all(path, &buf, &len, (size_t)1 << 31, err)) return -1;
    int rc = tokenizer_load_buf(out, buf, len, path, err);
    free(buf);
    return rc;
}

static void free_set(AddedSet *s) { free(s->idx); }

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->arena); free(t->mod_off); free(t->mod_len); free(t->mod_raw); free(t->vmap);
    free(t->pairs);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content); free(t->added[i].dec); free(t->added[i].match);
    }
    free(t->added); free(t->added_by_id);
    free_set(&t->raw_set); free_set(&t->norm_set);
    free(t->cache); free(t->sym); free(t->heap); free(t->norm_buf);
    free(t);
}

int32_t tokenizer_vocab_size(const Tokenizer *t) { return t->n_ids; }

int tokenizer_is_special(const Tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_ids || t->added_by_id[id] < 0) return 0;
    return t->added[t->added_by_id[id]].special;
}

int32_t tokenizer_token_id(const Tokenizer *t, const char *text) {
    size_t n = strlen(text);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, text, n)) return t->added[i].id;
    return tok_vocab_find(t, (const uint8_t *)text, n);
}
