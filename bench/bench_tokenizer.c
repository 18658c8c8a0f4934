/* Tokenizer encode throughput (MB/s) on GSM8K train question+answer text,
 * the linear-scaling check (10x input should take ~10x time, also for a
 * pathological single-letter run), and the ratio to HF `tokenizers`
 * measured in the same run by bench/tokenizer_hf.py when Python has it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "io/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct Texts { char **s; size_t *len, n; size_t bytes; } Texts;

static int load_gsm8k(Texts *t) {
    char *buf;
    size_t len;
    Err err;
    if (file_read_all("../shared/data/gsm8k/train.jsonl", &buf, &len, 0, &err)) return -1;
    memset(t, 0, sizeof *t);
    for (char *p = buf, *end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_error_t je;
        json_t *o = l ? json_loadb(p, l, 0, &je) : NULL;
        if (o) {
            const char *q = json_string_value(json_object_get(o, "question"));
            const char *a = json_string_value(json_object_get(o, "answer"));
            if (q && a) {
                t->s = realloc(t->s, (t->n + 1) * sizeof *t->s);
                t->len = realloc(t->len, (t->n + 1) * sizeof *t->len);
                size_t n = strlen(q) + 2 + strlen(a);
                t->s[t->n] = malloc(n + 1);
                snprintf(t->s[t->n], n + 1, "%s\n\n%s", q, a);
                t->len[t->n++] = n;
                t->bytes += n;
            }
            json_decref(o);
        }
        p += l + 1;
    }
    free(buf);
    return 0;
}

static double encode_all(Tokenizer *tok, const Texts *t, size_t *n_ids) {
    TokIds ids = {0};
    Err err;
    double t0 = now();
    for (size_t i = 0; i < t->n; i++) {
        ids.n = 0;
        if (tokenizer_encode(tok, t->s[i], t->len[i], &ids, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        *n_ids += ids.n;
    }
    double dt = now() - t0;
    free(ids.ids);
    return dt;
}

static double encode_one(Tokenizer *tok, const char *s, size_t n) {
    TokIds ids = {0};
    Err err;
    double t0 = now();
    if (tokenizer_encode(tok, s, n, &ids, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    double dt = now() - t0;
    free(ids.ids);
    return dt;
}

/* HF numbers from bench/tokenizer_hf.py, or 0 when not measurable. */
static void hf_numbers(double *qwen, double *llama) {
    *qwen = *llama = 0;
    if (system("python3 -c 'import tokenizers' >/dev/null 2>&1")) return;
    FILE *p = popen("python3 bench/tokenizer_hf.py qwen3 llama3 2>/dev/null", "r");
    if (!p) return;
    char name[64];
    double v;
    while (fscanf(p, "hf_mbps %63s %lf\n", name, &v) == 2) {
        if (!strcmp(name, "qwen3")) *qwen = v;
        if (!strcmp(name, "llama3")) *llama = v;
    }
    pclose(p);
}

int main(void) {
    Texts t;
    if (load_gsm8k(&t)) { printf("bench_tokenizer: not measured: ../shared/data/gsm8k/train.jsonl is absent\n"); return 0; }
    double hf_q, hf_l;
    hf_numbers(&hf_q, &hf_l);
    const char *names[2] = {"qwen3", "llama3"};
    double hf[2] = {hf_q, hf_l};
    printf("%-8s %10s %10s %10s %12s %12s %12s\n", "model", "MB", "r1c MB/s", "HF MB/s", "r1c/HF", "1x->10x time", "a*1e5->1e6");
    for (int m = 0; m < 2; m++) {
        char path[256];
        snprintf(path, sizeof path, "../shared/data/tokenizers/%s/tokenizer.json", names[m]);
        Tokenizer *tok;
        Err err;
        if (access(path, R_OK) || tokenizer_load(&tok, path, &err)) { printf("%-8s not measured: %s is absent\n", names[m], path); continue; }
        size_t n_ids = 0;
        encode_all(tok, &t, &n_ids); /* warm the word cache like a long run would */
        double best = 1e9;
        for (int r = 0; r < 3; r++) {
            double dt = encode_all(tok, &t, &n_ids);
            if (dt < best) best = dt;
        }
        double mbps = t.bytes / best / 1e6;
        /* linear scaling: one document of the first ~400 KB, then 10 copies */
        size_t one = 0, k = 0;
        while (k < t.n && one < 1000000) one += t.len[k++] + 1;
        char *doc = malloc(one * 10 + 1);
        size_t off = 0;
        for (size_t i = 0; i < k; i++) { memcpy(doc + off, t.s[i], t.len[i]); off += t.len[i]; doc[off++] = '\n'; }
        for (int c = 1; c < 10; c++) memcpy(doc + c * one, doc, one);
        double t1 = 1e9, t10 = 1e9, a1 = 1e9, a10 = 1e9;
        for (int r = 0; r < 3; r++) {
            double x = encode_one(tok, doc, one), y = encode_one(tok, doc, one * 10);
            if (x < t1) t1 = x;
            if (y < t10) t10 = y;
        }
        /* pathological: one word of 1e5 and 1e6 letters */
        memset(doc, 'a', 1000000); /* one * 10 >= 1e7 bytes */
        for (int r = 0; r < 3; r++) {
            double x = encode_one(tok, doc, 100000), y = encode_one(tok, doc, 1000000);
            if (x < a1) a1 = x;
            if (y < a10) a10 = y;
        }
        char hfs[32] = "n/a", ratio[32] = "not measured";
        if (hf[m] > 0) { snprintf(hfs, sizeof hfs, "%.2f", hf[m]); snprintf(ratio, sizeof ratio, "%.2fx", mbps / hf[m]); }
        printf("%-8s %10.2f %10.2f %10s %12s %11.2fx %11.2fx\n", names[m], t.bytes / 1e6, mbps, hfs, ratio, t10 / t1, a10 / a1);
        free(doc);
        tokenizer_free(tok);
    }
    if (hf_q <= 0 && hf_l <= 0) printf("HF tokenizers: not measured (python3 with the tokenizers package is not available)\n");
    printf("(HF: one encode call per line, single thread; 1x->10x and a*1e5->1e6 near 10 mean linear time)\n");
    for (size_t i = 0; i < t.n; i++) free(t.s[i]);
    free(t.s);
    free(t.len);
    return 0;
}
