/* BPE trainer: retraining on the committed text reproduces the committed
 * tokenizer.json byte for byte (determinism), and that file, which HF
 * loaded when the fixtures were made, encodes the corpus to HF's ids. */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/file.h"
#include "io/bpe_train.h"
#include "io/tokenizer.h"
#include "check.h"

#define FIX "tests/fixtures/tokenizer/"

static const char *SPECIAL[] = {"<|endoftext|>"};
static const char *ADDED[] = {"<think>", "</think>", "<answer>", "</answer>"};

static void check_retrain(void) {
    char *text, *want, *got;
    size_t tl, wl, gl;
    Err err = {{0}};
    CHECK(file_read_all(FIX "train_text.txt", &text, &tl, 0, &err) == 0);
    CHECK(file_read_all(FIX "trained_tokenizer.json", &want, &wl, 0, &err) == 0);
    /* same options as TRAIN_ARGS in tests/ref/make_tokenizer_fixtures.py */
    BpeTrainOptions opt = {600, 2, PRETOK_QWEN2, SPECIAL, 1, ADDED, 4};
    char out[] = "/tmp/r1c-bpe-XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    BpeTrainer *tr;
    CHECK(bpe_train_begin(&tr, &opt, &err) == 0);
    CHECK(bpe_train_feed(tr, text, tl, &err) == 0);
    CHECKF(bpe_train_finish(tr, out, &err) == 0, "%s", err.msg);
    bpe_train_free(tr);
    CHECK(file_read_all(out, &got, &gl, 0, &err) == 0);
    CHECKF(gl == wl && !memcmp(got, want, wl), "retrained tokenizer.json differs from the committed one");
    unlink(out);
    free(text);
    free(want);
    free(got);
}

static void check_ids(void) {
    Err err = {{0}};
    Tokenizer *tok;
    CHECKF(tokenizer_load(&tok, FIX "trained_tokenizer.json", &err) == 0, "%s", err.msg);
    if (!tok) return;
    FILE *fc = fopen(FIX "corpus.jsonl", "r"), *fi = fopen(FIX "trained_corpus_ids.jsonl", "r");
    CHECK(fc && fi);
    char *lc = NULL, *li = NULL;
    size_t cc = 0, ci = 0;
    int rows = 0;
    while (fc && fi && getline(&lc, &cc, fc) > 0 && getline(&li, &ci, fi) > 0) {
        json_error_t je;
        json_t *c = json_loads(lc, JSON_ALLOW_NUL, &je), *w = json_loads(li, 0, &je);
        json_t *t = json_object_get(c, "text"), *ids = json_object_get(w, "ids");
        TokIds got = {0};
        CHECK(tokenizer_encode(tok, json_string_value(t), json_string_length(t), &got, &err) == 0);
        int same = got.n == json_array_size(ids);
        for (size_t i = 0; same && i < got.n; i++) same = got.ids[i] == json_integer_value(json_array_get(ids, i));
        CHECKF(same, "trained tokenizer, corpus line %d: ids differ from HF", rows + 1);
        free(got.ids);
        json_decref(c);
        json_decref(w);
        rows++;
    }
    CHECK(rows >= 30);
    CHECK(tokenizer_token_id(tok, "<think>") == 1 && tokenizer_is_special(tok, 0) && !tokenizer_is_special(tok, 1));
    free(lc);
    free(li);
    if (fc) fclose(fc);
    if (fi) fclose(fi);
    tokenizer_free(tok);
}

static void check_small(void) {
    Err err = {{0}};
    BpeTrainer *tr;
    BpeTrainOptions bad = {100, 2, PRETOK_QWEN2, SPECIAL, 1, NULL, 0};
    CHECK(bpe_train_begin(&tr, &bad, &err) == -1 && strstr(err.msg, "below 256"));
    /* "aaaa" x 3: the first merge is (a, a), the second (aa, aa) */
    BpeTrainOptions opt = {256 + 1 + 2, 1, PRETOK_QWEN2, SPECIAL, 1, NULL, 0};
    CHECK(bpe_train_begin(&tr, &opt, &err) == 0);
    CHECK(bpe_train_feed(tr, "aaaa aaaa aaaa<|endoftext|>", 27, &err) == 0);
    CHECK(bpe_train_feed(tr, "\xFF", 1, &err) == -1 && strstr(err.msg, "invalid UTF-8"));
    char out[] = "/tmp/r1c-bpe-XXXXXX";
    close(mkstemp(out));
    CHECK(bpe_train_finish(tr, out, &err) == 0 && bpe_train_n_merges(tr) == 2);
    bpe_train_free(tr);
    Tokenizer *tok;
    CHECK(tokenizer_load(&tok, out, &err) == 0);
    TokIds ids = {0};
    CHECK(tokenizer_encode(tok, "aaaa<|endoftext|>", 17, &ids, &err) == 0);
    CHECK(ids.n == 2 && ids.ids[0] == 258 && ids.ids[1] == 0);
    free(ids.ids);
    tokenizer_free(tok);
    unlink(out);
}

int main(void) {
    check_retrain();
    check_ids();
    check_small();
    return check_summary("test_tokenizer_train");
}
