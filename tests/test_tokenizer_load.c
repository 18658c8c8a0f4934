/* tokenizer.json validation: malformed files are refused with one line
 * naming the file and the problem; a tiny hand-built file encodes right
 * (merges as "a b" strings and as [a, b] pairs, added-token flags). */
#include <jansson.h>
#include <stdlib.h>

#include "io/bytelevel.h"
#include "io/pretokenize.h"
#include "io/tokenizer.h"
#include "io/utf8.h"
#include "check.h"

static char *bl(const char *raw) { /* raw ASCII/bytes -> byte-level string */
    static char out[8][64];
    static int k;
    char *o = out[k++ & 7];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++) n += utf8_encode(bytelevel_char(*p), (uint8_t *)o + n);
    o[n] = 0;
    return o;
}

/* 256 byte tokens, then "ab"=256, "abc"=257, " a"=258; merges as given. */
static json_t *tiny(int pair_merges) {
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t l = utf8_encode(bytelevel_char((uint8_t)b), u);
        char key[5] = {0};
        memcpy(key, u, l);
        json_object_set_new(vocab, key, json_integer(b));
    }
    json_object_set_new(vocab, bl("ab"), json_integer(256));
    json_object_set_new(vocab, bl("abc"), json_integer(257));
    json_object_set_new(vocab, bl(" a"), json_integer(258));
    json_t *merges = json_array();
    const char *m[3][2] = {{"a", "b"}, {"ab", "c"}, {" ", "a"}};
    for (int i = 0; i < 3; i++) {
        if (pair_merges) {
            json_array_append_new(merges, json_pack("[ss]", bl(m[i][0]), bl(m[i][1])));
        } else {
            char s[64];
            snprintf(s, sizeof s, "%s %s", bl(m[i][0]), bl(m[i][1]));
            json_array_append_new(merges, json_string(s));
        }
    }
    return json_pack("{s:s, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}, {s:i, s:s, s:b, s:b, s:b, s:b, s:b}],"
                     " s:{s:s}, s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]},"
                     " s:{s:s}, s:{s:s, s:o, s:o}}",
                     "version", "1.0", "added_tokens",
                     "id", 259, "content", "<eos>", "special", 1, "lstrip", 0, "rstrip", 0, "single_word", 0, "normalized", 0,
                     "id", 260, "content", "<x>", "special", 0, "lstrip", 1, "rstrip", 1, "single_word", 0, "normalized", 0,
                     "normalizer", "type", "NFC",
                     "pre_tokenizer", "type", "Sequence", "pretokenizers",
                     "type", "Split", "pattern", "Regex", PRETOK_PATTERN_QWEN2, "behavior", "Isolated", "invert", 0,
                     "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0,
                     "decoder", "type", "ByteLevel",
                     "model", "type", "BPE", "vocab", vocab, "merges", merges);
}

static int load_json(json_t *j, Tokenizer **tok, Err *err) {
    char *s = json_dumps(j, 0);
    int rc = tokenizer_load_buf(tok, s, strlen(s), "tiny.json", err);
    free(s);
    return rc;
}

static void expect_error(json_t *j, const char *what) {
    Tokenizer *tok;
    Err err = {{0}};
    int rc = load_json(j, &tok, &err);
    CHECKF(rc == -1 && strstr(err.msg, "tiny.json") && strstr(err.msg, what) && !strchr(err.msg, '\n'),
           "want '%s', got rc %d '%s'", what, rc, err.msg);
    json_decref(j);
}

static void check_encode(Tokenizer *tok, const char *text, const int32_t *want, size_t n) {
    TokIds ids = {0};
    Err err = {{0}};
    CHECK(tokenizer_encode(tok, text, strlen(text), &ids, &err) == 0);
    int same = ids.n == n;
    for (size_t i = 0; same && i < n; i++) same = ids.ids[i] == want[i];
    CHECKF(same, "encode '%s'", text);
    free(ids.ids);
}

int main(void) {
    for (int pairs = 0; pairs < 2; pairs++) {
        Tokenizer *tok;
        Err err = {{0}};
        json_t *j = tiny(pairs);
        CHECKF(load_json(j, &tok, &err) == 0, "%s", err.msg);
        json_decref(j);
        if (!tok) continue;
        check_encode(tok, "abc", (int32_t[]){257}, 1);
        check_encode(tok, "ab a", (int32_t[]){256, 258}, 2);
        check_encode(tok, "abab<eos>x", (int32_t[]){256, 256, 259, 'x'}, 4);
        /* <x> has lstrip and rstrip: the spaces around it are absorbed */
        check_encode(tok, "c  <x>  c", (int32_t[]){'c', 260, 'c'}, 3);
        CHECK(tokenizer_token_id(tok, "<eos>") == 259 && tokenizer_is_special(tok, 259) && !tokenizer_is_special(tok, 260));
        char *out;
        size_t ol;
        CHECK(tokenizer_decode(tok, (int32_t[]){256, 259, 260}, 3, 1, &out, &ol, &err) == 0 && !strcmp(out, "ab<x>"));
        free(out);
        /* a lone continuation byte decodes to U+FFFD */
        CHECK(tokenizer_decode(tok, (int32_t[]){0x80, 'a'}, 2, 0, &out, &ol, &err) == 0 && !strcmp(out, "\xEF\xBF\xBD" "a"));
        free(out);
        /* streaming holds a split char until it completes: U+00E9 = C3 A9 */
        TokDecodeStream st;
        tokenizer_stream_init(&st, tok, 0);
        char *sb = NULL;
        size_t sl = 0, sc = 0;
        CHECK(tokenizer_stream_push(&st, 0xC3, &sb, &sl, &sc, &err) == 0 && sl == 0);
        CHECK(tokenizer_stream_push(&st, 0xA9, &sb, &sl, &sc, &err) == 0 && sl == 2 && !strcmp(sb, "\xC3\xA9"));
        CHECK(tokenizer_stream_push(&st, 0xE4, &sb, &sl, &sc, &err) == 0 && sl == 2);
        CHECK(tokenizer_stream_finish(&st, &sb, &sl, &sc, &err) == 0 && !strcmp(sb, "\xC3\xA9\xEF\xBF\xBD"));
        free(sb);
        tokenizer_free(tok);
    }

    json_t *j;
    expect_error(json_pack("[]"), "not a JSON object");
    j = tiny(0); json_object_del(j, "model"); expect_error(j, "missing 'model'");
    j = tiny(0); json_object_set_new(json_object_get(j, "model"), "type", json_string("Unigram")); expect_error(j, "unsupported model type 'Unigram'");
    j = tiny(0); json_object_del(json_object_get(j, "model"), "vocab"); expect_error(j, "missing 'vocab'");
    j = tiny(0); json_object_del(json_object_get(j, "model"), "merges"); expect_error(j, "missing 'merges'");
    j = tiny(0); json_array_append_new(json_object_get(json_object_get(j, "model"), "merges"), json_string("q zz")); expect_error(j, "unknown token 'zz'");
    j = tiny(0); json_array_append_new(json_object_get(json_object_get(j, "model"), "merges"), json_string("b c")); expect_error(j, "is not in the vocabulary");
    j = tiny(0); json_array_append_new(json_object_get(json_object_get(j, "model"), "merges"), json_string("abc")); expect_error(j, "one space");
    j = tiny(0); json_object_del(json_object_get(json_object_get(j, "model"), "vocab"), bl("a")); expect_error(j, "byte 0x61");
    j = tiny(0); json_object_set_new(json_object_get(j, "normalizer"), "type", json_string("NFKC")); expect_error(j, "unsupported normalizer type 'NFKC'");
    j = tiny(0);
    json_object_set_new(json_object_get(json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"), 0), "pattern"),
                        "Regex", json_string("\\w+|\\s+"));
    expect_error(j, "unsupported pre-tokenizer Split pattern");
    j = tiny(0); json_object_set_new(json_object_get(j, "decoder"), "type", json_string("WordPiece")); expect_error(j, "unsupported decoder");
    j = tiny(0); json_object_set_new(json_object_get(json_object_get(j, "model"), "vocab"), "zz", json_integer(7)); expect_error(j, "id 7 is used twice");
    {
        Tokenizer *tok;
        Err err = {{0}};
        CHECK(tokenizer_load_buf(&tok, "{\"model\": \"\xFF\"}", 15, "bad.json", &err) == -1 && strstr(err.msg, "bad.json: invalid UTF-8 at byte 11"));
        CHECK(tokenizer_load_buf(&tok, "{\"model\": ", 10, "cut.json", &err) == -1 && strstr(err.msg, "cut.json"));
        CHECK(tokenizer_load(&tok, "/nonexistent/tokenizer.json", &err) == -1 && strstr(err.msg, "/nonexistent/tokenizer.json"));
    }
    return check_summary("test_tokenizer_load");
}
