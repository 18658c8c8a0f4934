/* libFuzzer target for the tokenizer: the first input byte picks a mode.
 *   0: load the input as a tokenizer.json (loader must refuse, not crash)
 *   1: encode the input with a small built-in byte-level BPE tokenizer
 *      and check decode(encode(x)) == NFC(x) and that offsets are sane
 *   2: decode the input as little-endian ids, whole and streamed
 *   3: pre-tokenize with both patterns and check pieces tile the text
 *   4: render the input as chat messages with every template */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "io/bytelevel.h"
#include "io/chat_template.h"
#include "io/pretokenize.h"
#include "io/tokenizer.h"
#include "io/utf8.h"

static Tokenizer *g_tok;

/* 256 bytes + merges of a few common pairs + added tokens with flags. */
static Tokenizer *build_tiny(void) {
    static char buf[1 << 16];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "{\"added_tokens\":[{\"id\":300,\"content\":\"<s>\",\"special\":true},"
                          "{\"id\":301,\"content\":\"<x>\",\"special\":false,\"lstrip\":true,\"rstrip\":true},"
                          "{\"id\":302,\"content\":\"ő\",\"special\":false,\"normalized\":true},"
                          "{\"id\":303,\"content\":\"ab\",\"single_word\":true}],"
                          "\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                          "{\"type\":\"Split\",\"pattern\":{\"Regex\":");
    json_t *pat = json_string(PRETOK_PATTERN_LLAMA3);
    char *ps = json_dumps(pat, JSON_ENCODE_ANY);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s},\"behavior\":\"Isolated\",\"invert\":false},"
                          "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
                          "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{", ps);
    free(ps);
    json_decref(pat);
    char chars[256][5];
    for (int b = 0; b < 256; b++) {
        size_t l = utf8_encode(bytelevel_char((uint8_t)b), (uint8_t *)chars[b]);
        chars[b][l] = 0;
        const char *esc = b == '"' ? "\\\"" : b == '\\' ? "\\\\" : chars[b];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\"%s\":%d,", esc, b);
    }
    /* merged tokens 256..: "th", "the", "Ġthe", "in", "ing", "Ġa" */
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "\"th\":256,\"the\":257,\"%sthe\":258,\"in\":259,\"ing\":260,\"%sa\":261},"
                          "\"merges\":[\"t h\",\"th e\",\"%s the\",\"i n\",[\"in\",\"g\"],\"%s a\"]}}",
                          chars[' '], chars[' '], chars[' '], chars[' ']);
    Tokenizer *t = NULL;
    Err err;
    if (tokenizer_load_buf(&t, buf, n, "tiny", &err)) { fprintf(stderr, "fuzz setup: %s\n", err.msg); abort(); }
    return t;
}

static void fuzz_encode(const uint8_t *d, size_t n) {
    if (utf8_validate(d, n) != n) return;
    TokIds ids = {0};
    TokOffsets offs = {0};
    Err err;
    if (tokenizer_encode_offsets(g_tok, (const char *)d, n, &ids, &offs, &err)) abort();
    if (offs.n != ids.n) abort();
    for (size_t k = 0; k < offs.n; k++)
        if (offs.start[k] > offs.end[k] || offs.end[k] > n || (k && offs.start[k] < offs.start[k - 1])) abort();
    free(offs.start);
    free(offs.end);
    char *out;
    size_t ol;
    if (tokenizer_decode(g_tok, ids.ids, ids.n, 0, &out, &ol, &err)) abort();
    /* lstrip/rstrip on <x> drop spaces, so only compare without it */
    if (!memmem(d, n, "<x>", 3) && n) {
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t nl = utf8proc_map(d, (utf8proc_ssize_t)n, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (nl >= 0 && ((size_t)nl != ol || memcmp(norm, out, ol))) abort();
        free(norm);
    }
    free(out);
    free(ids.ids);
}

static void fuzz_decode(const uint8_t *d, size_t n) {
    size_t k = n / 4;
    int32_t *ids = malloc((k ? k : 1) * sizeof *ids);
    for (size_t i = 0; i < k; i++) { uint32_t v; memcpy(&v, d + 4 * i, 4); ids[i] = (int32_t)(v % 320); }
    Err err;
    char *out = NULL;
    size_t ol;
    int rc = tokenizer_decode(g_tok, ids, k, d[0] & 1, &out, &ol, &err);
    if (!rc && utf8_validate((const uint8_t *)out, ol) != ol) abort();
    TokDecodeStream st;
    tokenizer_stream_init(&st, g_tok, d[0] & 1);
    char *sb = NULL;
    size_t sl = 0, sc = 0;
    int src = 0;
    for (size_t i = 0; i < k && !src; i++) src = tokenizer_stream_push(&st, ids[i], &sb, &sl, &sc, &err);
    if (!src) src = tokenizer_stream_finish(&st, &sb, &sl, &sc, &err);
    if (!rc && !src && (sl != ol || (ol && memcmp(sb, out, ol)))) abort();
    free(sb);
    free(out);
    free(ids);
}

static void fuzz_pretok(const uint8_t *d, size_t n) {
    if (utf8_validate(d, n) != n) return;
    for (int k = 0; k < 2; k++) {
        size_t pos = 0;
        while (pos < n) {
            size_t e = pretok_next(k ? PRETOK_LLAMA3 : PRETOK_QWEN2, d, n, pos);
            if (e <= pos || e > n) abort();
            pos = e;
        }
    }
}

static void fuzz_chat(const uint8_t *d, size_t n) {
    char *s = malloc(n + 1);
    memcpy(s, d, n);
    s[n] = 0;
    /* split at NULs into up to 6 message contents */
    ChatMessage m[6];
    const char *roles[] = {"system", "user", "assistant", "user", "assistant", "user"};
    size_t nm = 0, off = 0;
    while (nm < 6 && off <= n) {
        m[nm] = (ChatMessage){roles[nm], s + off};
        off += strlen(s + off) + 1;
        nm++;
    }
    const char *names[] = {"r1-zero", "qwen2.5", "qwen3", "qwen3-nothink", "r1-distill", "llama3"};
    ChatRender r = {0};
    Err err;
    for (int i = 0; i < 6; i++) {
        ChatTemplate t;
        if (chat_template_by_name(&t, names[i], &err)) abort();
        for (size_t k = 1; k <= nm; k++)
            if (!chat_render(&t, m, k, (int)(k & 1), &r, &err))
                for (size_t q = 0; q < r.n_spans; q++)
                    if (r.spans[q].start > r.spans[q].end || r.spans[q].end > r.len) abort();
    }
    chat_render_free(&r);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) g_tok = build_tiny();
    if (size < 1) return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: {
        Tokenizer *t = NULL;
        Err err;
        if (!tokenizer_load_buf(&t, (const char *)d, n, "fuzz.json", &err)) {
            TokIds ids = {0};
            tokenizer_encode(t, "Hello, world! 123 <|x|>", 23, &ids, &err);
            free(ids.ids);
            tokenizer_free(t);
        }
        break;
    }
    case 1: fuzz_encode(d, n); break;
    case 2: if (n >= 1) fuzz_decode(d, n); break;
    case 3: fuzz_pretok(d, n); break;
    case 4: fuzz_chat(d, n); break;
    }
    return 0;
}
