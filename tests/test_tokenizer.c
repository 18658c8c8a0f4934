/* Tokenizer ids against HF `tokenizers` (fixtures written by
 * tests/ref/make_tokenizer_fixtures.py): a mixed-script corpus, long
 * pathological runs, GSM8K and MATH-500 texts; decode and streaming decode
 * round-trips. Tokenizer files and data come from ../shared/data. */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>
#include <utf8proc.h>

#include "base/file.h"
#include "io/tokenizer.h"
#include "check.h"

#define FIX "tests/fixtures/tokenizer/"
#define SHARED "../shared/data/"

static json_t *load_jsonl(const char *path) {
    char *buf;
    size_t len;
    Err err = {{0}};
    if (file_read_all(path, &buf, &len, 0, &err)) { fprintf(stderr, "%s\n", err.msg); return NULL; }
    json_t *arr = json_array();
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (l) {
            json_error_t je;
            json_t *o = json_loadb(p, l, JSON_ALLOW_NUL, &je);
            if (!o) { fprintf(stderr, "%s: %s\n", path, je.text); break; }
            json_array_append_new(arr, o);
        }
        p += l + 1;
    }
    free(buf);
    return arr;
}

static uint64_t fnv_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < 4; k++) h = (h ^ ((v >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
    }
    return h;
}

static int ids_equal(const TokIds *got, const json_t *want) {
    if (got->n != json_array_size(want)) return 0;
    for (size_t i = 0; i < got->n; i++)
        if (got->ids[i] != json_integer_value(json_array_get(want, i))) return 0;
    return 1;
}

static void check_corpus(Tokenizer *tok, const char *name, int nfc) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s_corpus_ids.jsonl", name);
    json_t *corpus = load_jsonl(FIX "corpus.jsonl"), *want = load_jsonl(path);
    CHECK(corpus && want && json_array_size(corpus) == json_array_size(want));
    Err err = {{0}};
    for (size_t i = 0; corpus && want && i < json_array_size(corpus); i++) {
        json_t *t = json_object_get(json_array_get(corpus, i), "text");
        json_t *w = json_array_get(want, i);
        const char *text = json_string_value(t);
        size_t tl = json_string_length(t);
        TokIds ids = {0};
        CHECKF(tokenizer_encode(tok, text, tl, &ids, &err) == 0, "%s", err.msg);
        CHECKF(ids_equal(&ids, json_object_get(w, "ids")), "%s corpus line %zu: ids differ from HF", name, i + 1);
        for (int skip = 0; skip < 2; skip++) {
            json_t *d = json_object_get(w, skip ? "decoded_skip" : "decoded");
            char *out;
            size_t ol;
            CHECK(tokenizer_decode(tok, ids.ids, ids.n, skip, &out, &ol, &err) == 0);
            CHECKF(ol == json_string_length(d) && !memcmp(out, json_string_value(d), ol),
                   "%s corpus line %zu: decode(skip=%d) differs from HF", name, i + 1, skip);
            free(out);
        }
        /* decode(encode(x)) == NFC(x) (or x when the model does not normalize) */
        char *out;
        size_t ol;
        CHECK(tokenizer_decode(tok, ids.ids, ids.n, 0, &out, &ol, &err) == 0);
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t nl = (utf8proc_ssize_t)tl;
        if (nfc && tl) nl = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)tl, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        const char *exp = norm ? (const char *)norm : text;
        CHECKF((size_t)nl == ol && !memcmp(out, exp, ol), "%s corpus line %zu: round trip", name, i + 1);
        /* offsets: same ids; they tile the text exactly when NFC leaves it
         * alone, and are monotone and in bounds otherwise */
        TokIds ids2 = {0};
        TokOffsets offs = {0};
        CHECK(tokenizer_encode_offsets(tok, text, tl, &ids2, &offs, &err) == 0 && ids2.n == ids.n && offs.n == ids.n);
        int stable = (size_t)nl == tl && !memcmp(exp, text, tl), tiles = 1, mono = 1;
        for (size_t k = 0; k < offs.n; k++) {
            mono &= offs.start[k] <= offs.end[k] && offs.end[k] <= tl && (k == 0 || offs.start[k] >= offs.start[k - 1]);
            tiles &= offs.start[k] == (k ? offs.end[k - 1] : 0);
        }
        if (offs.n) tiles &= offs.end[offs.n - 1] == tl;
        CHECKF(mono && (!stable || tiles), "%s corpus line %zu: offsets", name, i + 1);
        free(ids2.ids);
        free(offs.start);
        free(offs.end);
        free(norm);
        /* streaming decode one id at a time gives the same text */
        TokDecodeStream st;
        tokenizer_stream_init(&st, tok, 0);
        char *sb = NULL;
        size_t sl = 0, sc = 0;
        for (size_t k = 0; k < ids.n; k++) CHECK(tokenizer_stream_push(&st, ids.ids[k], &sb, &sl, &sc, &err) == 0);
        CHECK(tokenizer_stream_finish(&st, &sb, &sl, &sc, &err) == 0);
        CHECKF(sl == ol && !memcmp(sb, out, ol), "%s corpus line %zu: streaming decode", name, i + 1);
        free(sb);
        free(out);
        free(ids.ids);
    }
    json_decref(corpus);
    json_decref(want);
}

/* Random id sequences (split UTF-8 chars, added tokens) decode like HF. */
static void check_decode(Tokenizer *tok, const char *name) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s_decode.jsonl", name);
    json_t *rows = load_jsonl(path);
    CHECK(rows && json_array_size(rows) >= 100);
    Err err = {{0}};
    for (size_t i = 0; rows && i < json_array_size(rows); i++) {
        json_t *r = json_array_get(rows, i), *a = json_object_get(r, "ids");
        TokIds ids = {0};
        for (size_t k = 0; k < json_array_size(a); k++) tokids_push(&ids, (int32_t)json_integer_value(json_array_get(a, k)), &err);
        for (int skip = 0; skip < 2; skip++) {
            json_t *want = json_object_get(r, skip ? "decoded_skip" : "decoded");
            char *out;
            size_t ol;
            CHECK(tokenizer_decode(tok, ids.ids, ids.n, skip, &out, &ol, &err) == 0);
            CHECKF(ol == json_string_length(want) && !memcmp(out, json_string_value(want), ol), "%s decode row %zu skip=%d", name, i + 1, skip);
            free(out);
        }
        free(ids.ids);
    }
    json_decref(rows);
}

static void check_hashes(Tokenizer *tok, const char *name) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s_hashes.json", name);
    Err err = {{0}};
    json_error_t je;
    json_t *h = json_load_file(path, 0, &je);
    CHECKF(h != NULL, "%s: %s", path, je.text);
    if (!h) return;
    json_t *st = json_object_get(h, "stress");
    for (size_t i = 0; i < json_array_size(st); i++) {
        json_t *s = json_array_get(st, i);
        const char *unit = json_string_value(json_object_get(s, "unit"));
        size_t ul = strlen(unit), count = (size_t)json_integer_value(json_object_get(s, "count"));
        char *text = malloc(ul * count + 1);
        for (size_t k = 0; k < count; k++) memcpy(text + k * ul, unit, ul);
        TokIds ids = {0};
        CHECK(tokenizer_encode(tok, text, ul * count, &ids, &err) == 0);
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv_ids(ids.ids, ids.n));
        CHECKF(ids.n == (size_t)json_integer_value(json_object_get(s, "n")) &&
                   !strcmp(hex, json_string_value(json_object_get(s, "fnv"))),
               "%s stress '%s' x %zu: ids differ from HF", name, unit, count);
        free(ids.ids);
        free(text);
    }
    json_t *ds = json_object_get(h, "datasets");
    for (size_t i = 0; i < json_array_size(ds); i++) {
        json_t *d = json_array_get(ds, i);
        char dpath[256];
        snprintf(dpath, sizeof dpath, SHARED "%s", json_string_value(json_object_get(d, "file")));
        if (access(dpath, R_OK)) { SKIP("%s: %s is absent (shared data not laid out)", name, dpath); continue; }
        json_t *rows = load_jsonl(dpath), *fields = json_object_get(d, "fields");
        json_t *ns = json_object_get(d, "n"), *fs = json_object_get(d, "fnv");
        CHECKF(rows && json_array_size(rows) == json_array_size(ns), "%s: line count differs from fixture", dpath);
        size_t bad = 0;
        TokIds ids = {0};
        char *joined = NULL;
        size_t jl = 0;
        for (size_t r = 0; rows && r < json_array_size(rows) && r < json_array_size(ns); r++) {
            ids.n = 0;
            for (size_t f = 0; f < json_array_size(fields); f++) {
                json_t *v = json_object_get(json_array_get(rows, r), json_string_value(json_array_get(fields, f)));
                /* text = field1 + "\n\n" + field2, encoded as one string */
                if (f == 0) jl = 0;
                size_t vl = json_string_length(v);
                joined = realloc(joined, jl + vl + 3);
                if (f) { memcpy(joined + jl, "\n\n", 2); jl += 2; }
                memcpy(joined + jl, json_string_value(v), vl);
                jl += vl;
                if (f + 1 == json_array_size(fields)) CHECK(tokenizer_encode(tok, joined, jl, &ids, &err) == 0);
            }
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv_ids(ids.ids, ids.n));
            if (ids.n != (size_t)json_integer_value(json_array_get(ns, r)) || strcmp(hex, json_string_value(json_array_get(fs, r)))) {
                if (bad++ < 3) fprintf(stderr, "%s %s line %zu: ids differ from HF\n", name, dpath, r + 1);
            }
        }
        CHECKF(bad == 0, "%s %s: %zu lines differ", name, dpath, bad);
        printf("%s %s: %zu lines equal HF ids\n", name, dpath, json_array_size(rows) - bad);
        free(ids.ids);
        free(joined);
        json_decref(rows);
    }
    json_decref(h);
}

static void check_model(const char *name, int nfc) {
    char path[256];
    snprintf(path, sizeof path, SHARED "tokenizers/%s/tokenizer.json", name);
    if (access(path, R_OK)) { SKIP("%s: %s is absent", name, path); return; }
    Err err = {{0}};
    Tokenizer *tok;
    CHECKF(tokenizer_load(&tok, path, &err) == 0, "%s", err.msg);
    if (!tok) return;
    check_corpus(tok, name, nfc);
    check_decode(tok, name);
    check_hashes(tok, name);
    /* ids past the vocabulary (a padded embedding's rows) decode to
     * nothing, as in HF tokenizers; a negative id is an error naming it */
    int32_t pad[3] = {tokenizer_vocab_size(tok) + 5, 0, tokenizer_vocab_size(tok) + 200};
    char *out, *out0;
    size_t ol, ol0;
    CHECK(tokenizer_decode(tok, pad, 3, 0, &out, &ol, &err) == 0);
    CHECK(tokenizer_decode(tok, pad + 1, 1, 0, &out0, &ol0, &err) == 0);
    CHECK(ol == ol0 && !memcmp(out, out0, ol));
    free(out), free(out0);
    int32_t bad = -3;
    CHECK(tokenizer_decode(tok, &bad, 1, 0, &out, &ol, &err) == -1 && strstr(err.msg, "-3"));
    /* invalid UTF-8 input is refused with its offset */
    TokIds ids = {0};
    CHECK(tokenizer_encode(tok, "ab\xC3(", 4, &ids, &err) == -1 && strstr(err.msg, "byte 2"));
    free(ids.ids);
    tokenizer_free(tok);
}

int main(void) {
    check_model("qwen3", 1);
    check_model("llama3", 0);
    if (access(SHARED "tokenizers/deepseek-r1-distill-qwen/tokenizer.json", R_OK))
        SKIP("deepseek-r1-distill-qwen: ../shared/data/tokenizers/deepseek-r1-distill-qwen/tokenizer.json is absent "
             "(only its chat template is in shared data)");
    else check_model("deepseek-r1-distill-qwen", 1);
    return check_summary("test_tokenizer");
}
