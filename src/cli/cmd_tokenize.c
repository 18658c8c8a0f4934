/* r1c tokenize: JSON lines in, JSON lines out, in order.
 *   {"text": ...}  -> {"ids": [...]}           (default)
 *   {"ids": [...]} -> {"text": ...}            (--decode)
 * Errors name the input line and stop with exit code 1. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "io/tokenizer.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: r1c tokenize --tokenizer FILE [--decode] [--skip-special]\n"
            "  reads JSON lines {\"text\": ...} on stdin and writes {\"ids\": [...]} on stdout;\n"
            "  with --decode reads {\"ids\": [...]} and writes {\"text\": ...}\n"
            "  --skip-special  drop special added tokens when decoding\n");
}

static int encode_line(Tokenizer *tok, json_t *obj, TokIds *ids, Err *err) {
    json_t *t = json_object_get(obj, "text");
    if (!json_is_string(t)) return err_set(err, "expected an object with a string \"text\"");
    ids->n = 0;
    if (tokenizer_encode(tok, json_string_value(t), json_string_length(t), ids, err)) return -1;
    fputs("{\"ids\": [", stdout);
    for (size_t i = 0; i < ids->n; i++) printf(i ? ", %d" : "%d", ids->ids[i]);
    fputs("]}\n", stdout);
    return 0;
}

static int decode_line(Tokenizer *tok, json_t *obj, int skip_special, TokIds *ids, Err *err) {
    json_t *a = json_object_get(obj, "ids");
    if (!json_is_array(a)) return err_set(err, "expected an object with an array \"ids\"");
    ids->n = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return err_set(err, "ids[%zu] is not a valid token id", i);
        if (tokids_push(ids, (int32_t)json_integer_value(v), err)) return -1;
    }
    char *text;
    size_t len;
    if (tokenizer_decode(tok, ids->ids, ids->n, skip_special, &text, &len, err)) return -1;
    json_t *o = json_pack("{s:s%}", "text", text, len);
    free(text);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(o);
    if (!s) return err_set(err, "out of memory");
    puts(s);
    free(s);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int decode = 0, skip_special = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--decode")) decode = 1;
        else if (!strcmp(argv[i], "--skip-special")) skip_special = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else { fprintf(stderr, "r1c tokenize: unknown argument '%s'\n", argv[i]); usage(stderr); return 2; }
    }
    if (!path) { fprintf(stderr, "r1c tokenize: --tokenizer FILE is required\n"); usage(stderr); return 2; }
    Err err = {{0}};
    Tokenizer *tok;
    if (tokenizer_load(&tok, path, &err)) { fprintf(stderr, "r1c tokenize: %s\n", err.msg); return 1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    TokIds ids = {0};
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0) continue; /* blank lines carry no record */
        json_error_t je;
        json_t *obj = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &je);
        if (!obj) { fprintf(stderr, "r1c tokenize: stdin line %ld: invalid JSON: %s\n", lineno, je.text); rc = 1; break; }
        int r = decode ? decode_line(tok, obj, skip_special, &ids, &err) : encode_line(tok, obj, &ids, &err);
        json_decref(obj);
        if (r) { fprintf(stderr, "r1c tokenize: stdin line %ld: %s\n", lineno, err.msg); rc = 1; break; }
    }
    free(line);
    free(ids.ids);
    tokenizer_free(tok);
    if (fflush(stdout)) { fprintf(stderr, "r1c tokenize: write error on stdout\n"); rc = 1; }
    return rc;
}
