/* r1c tokenizer-train: learns a byte-level BPE tokenizer.json from text or
 * JSON-lines files, for small models trained from scratch. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/commands.h"
#include "io/bpe_train.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: r1c tokenizer-train --out FILE --vocab-size N [options] INPUT...\n"
            "  INPUT: *.jsonl (string fields joined by a blank line; --field NAME, default \"text\") or plain text\n"
            "  --min-frequency N   stop when the best pair occurs fewer times (default 2)\n"
            "  --pattern qwen2|llama3  pre-tokenizer (default qwen2: digits one by one)\n"
            "  --special TOK       added special token (repeatable; default <|endoftext|>)\n"
            "  --added TOK         added non-special token (repeatable; default <think> </think> <answer> </answer>)\n"
            "  --field NAME        JSON field to read from *.jsonl inputs (repeatable)\n");
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int feed_file(BpeTrainer *tr, const char *path, const char **fields, int n_fields, Err *err) {
    char *buf;
    size_t len;
    if (file_read_all(path, &buf, &len, 0, err)) return -1;
    if (!ends_with(path, ".jsonl")) {
        int rc = bpe_train_feed(tr, buf, len, err);
        free(buf);
        return rc ? err_prefix(err, "%s", path) : 0;
    }
    int rc = 0;
    long lineno = 0;
    char *joined = NULL;
    size_t jcap = 0;
    for (char *p = buf, *end = buf + len; p < end && !rc;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        if (l) {
            json_error_t je;
            json_t *o = json_loadb(p, l, 0, &je);
            if (!o) { rc = err_set(err, "%s:%ld: invalid JSON: %s", path, lineno, je.text); break; }
            size_t jl = 0;
            for (int f = 0; f < n_fields && !rc; f++) {
                json_t *v = json_object_get(o, fields[f]);
                if (!json_is_string(v)) { rc = err_set(err, "%s:%ld: field '%s' is not a string", path, lineno, fields[f]); break; }
                size_t vl = json_string_length(v);
                if (jl + vl + 2 > jcap) {
                    jcap = (jl + vl + 2) * 2;
                    char *q = realloc(joined, jcap);
                    if (!q) { rc = err_set(err, "out of memory"); break; }
                    joined = q;
                }
                if (f) { memcpy(joined + jl, "\n\n", 2); jl += 2; }
                memcpy(joined + jl, json_string_value(v), vl);
                jl += vl;
            }
            if (!rc && bpe_train_feed(tr, joined, jl, err)) rc = err_prefix(err, "%s:%ld", path, lineno);
            json_decref(o);
        }
        p += l + 1;
    }
    free(joined);
    free(buf);
    return rc;
}

int cmd_tokenizer_train(int argc, char **argv) {
    const char *out = NULL, *special[64], *added[64], *fields[16], *inputs[256];
    int n_special = 0, n_added = 0, n_fields = 0, n_inputs = 0;
    long vocab = 0, min_freq = 2;
    PretokKind pat = PRETOK_QWEN2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--out") && more) out = argv[++i];
        else if (!strcmp(a, "--vocab-size") && more) vocab = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--min-frequency") && more) min_freq = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--special") && more && n_special < 64) special[n_special++] = argv[++i];
        else if (!strcmp(a, "--added") && more && n_added < 64) added[n_added++] = argv[++i];
        else if (!strcmp(a, "--field") && more && n_fields < 16) fields[n_fields++] = argv[++i];
        else if (!strcmp(a, "--pattern") && more) {
            const char *p = argv[++i];
            if (!strcmp(p, "qwen2")) pat = PRETOK_QWEN2;
            else if (!strcmp(p, "llama3")) pat = PRETOK_LLAMA3;
            else { fprintf(stderr, "r1c tokenizer-train: unknown --pattern '%s' (qwen2 or llama3)\n", p); return 2; }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "r1c tokenizer-train: unknown or incomplete argument '%s'\n", a); usage(stderr); return 2; }
        else if (n_inputs < 256) inputs[n_inputs++] = a;
        else { fprintf(stderr, "r1c tokenizer-train: too many inputs (limit 256)\n"); return 2; }
    }
    if (!out || vocab <= 0 || !n_inputs) {
        fprintf(stderr, "r1c tokenizer-train: --out, --vocab-size and at least one INPUT are required\n");
        usage(stderr);
        return 2;
    }
    if (!n_special && !n_added) {
        special[n_special++] = "<|endoftext|>";
        added[n_added++] = "<think>"; added[n_added++] = "</think>";
        added[n_added++] = "<answer>"; added[n_added++] = "</answer>";
    }
    if (!n_fields) fields[n_fields++] = "text";
    BpeTrainOptions opt = {(int32_t)vocab, min_freq, pat, special, (size_t)n_special, added, (size_t)n_added};
    Err err = {{0}};
    BpeTrainer *tr;
    if (bpe_train_begin(&tr, &opt, &err)) { fprintf(stderr, "r1c tokenizer-train: %s\n", err.msg); return 2; }
    int rc = 0;
    for (int i = 0; i < n_inputs && !rc; i++) rc = feed_file(tr, inputs[i], fields, n_fields, &err);
    if (!rc) rc = bpe_train_finish(tr, out, &err);
    if (rc) fprintf(stderr, "r1c tokenizer-train: %s\n", err.msg);
    else fprintf(stderr, "r1c tokenizer-train: wrote %s (%zu merges, %d added tokens)\n", out, bpe_train_n_merges(tr), n_special + n_added);
    bpe_train_free(tr);
    return rc ? 1 : 0;
}
