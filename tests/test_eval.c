/* Evaluation statistics: pass@k and majority vote against hand-computed
 * values (ties, equivalent answers written differently), re-scoring of
 * fixed completion files with known scores, and the real benchmark files
 * (GSM8K, MATH-500, AIME 2024/2025, AMC 2023) loaded and scored through
 * their gold answers. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "check.h"
#include "eval/evaluate.h"
#include "eval/passk.h"
#include "io/dataset.h"
#include "reward/math.h"

static int eq(void *ctx, const char *a, size_t al, const char *b, size_t bl) {
    char why[64];
    return math_equiv(a, al, b, bl, (const MathOptions *)ctx, why, sizeof why);
}

static int vote(const char *const *ans, int n, int *votes) {
    size_t lens[16];
    for (int i = 0; i < n; i++) lens[i] = ans[i] ? strlen(ans[i]) : 0;
    MathOptions mo;
    math_options_default(&mo);
    return majority_vote(n, ans, lens, eq, &mo, votes);
}

static void test_passk(void) {
    CHECK_NEAR(passk_unbiased(4, 1, 1), 0.25, 1e-12);
    CHECK_NEAR(passk_unbiased(4, 1, 2), 0.5, 1e-12);  /* 1 - C(3,2)/C(4,2) */
    CHECK_NEAR(passk_unbiased(5, 2, 3), 0.9, 1e-12);  /* 1 - C(3,3)/C(5,3) */
    CHECK_NEAR(passk_unbiased(64, 8, 1), 0.125, 1e-12);
    CHECK_NEAR(passk_unbiased(10, 3, 2), 1 - 21.0 / 45.0, 1e-12); /* 1 - C(7,2)/C(10,2) */
    CHECK(passk_unbiased(8, 0, 4) == 0);
    CHECK(passk_unbiased(4, 3, 2) == 1); /* fewer wrong than k */
    CHECK(passk_unbiased(4, 4, 4) == 1);
}

static void test_vote(void) {
    int v;
    const char *a[] = {"1/2", "0.5", "3", "3", "\\frac{1}{2}"};
    CHECK(vote(a, 5, &v) == 0 && v == 3); /* equivalent forms vote together */
    const char *b[] = {"3", "4", "4", "3"};
    CHECK(vote(b, 4, &v) == 0 && v == 2); /* tie: the class seen first */
    const char *c[] = {NULL, "4", "x=4", NULL, "5"};
    CHECK(vote(c, 5, &v) == 1 && v == 2); /* "x = 4" is 4; no-answer samples do not vote */
    const char *d[] = {NULL, NULL};
    CHECK(vote(d, 2, &v) == -1 && v == 0);
    const char *e[] = {"10%", "0.1", "\\dfrac{1}{10}", "7"};
    CHECK(vote(e, 4, &v) == 0 && v == 3);
}

/* samples.jsonl written by hand: 3 problems x 4 samples with known scores */
static void test_rescore_fixed(void) {
    char path[] = "/tmp/r1c-eval-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    /* p0: gold 1/2; samples 0.5 (ok), \frac{1}{2} (ok), 3 (no), no answer -> 2/4, vote {1/2} correct */
    fprintf(fp, "{\"record\": {\"answer\": \"\\\\frac{1}{2}\"}, \"samples\": ["
                "{\"text\": \"so \\\\boxed{0.5}\", \"tokens\": 10}, {\"text\": \"\\\\boxed{\\\\frac{1}{2}}\", \"tokens\": 20},"
                "{\"text\": \"\\\\boxed{3}\", \"tokens\": 30, \"truncated\": true}, {\"text\": \"I give up\", \"tokens\": 40}]}\n");
    /* p1: gold 7; 7, 8, 8, 7 -> 2/4 correct, tie 7 vs 8: 7 seen first -> cons correct */
    fprintf(fp, "{\"record\": {\"answer\": \"7\"}, \"samples\": ["
                "{\"text\": \"<answer> 7 </answer>\", \"tokens\": 1}, {\"text\": \"<answer> 8 </answer>\", \"tokens\": 1},"
                "{\"text\": \"<answer> 8 </answer>\", \"tokens\": 1}, {\"text\": \"<answer>7</answer>\", \"tokens\": 1}]}\n");
    /* p2: gold 12; 12, 13, 13, 13 -> 1/4, vote 13 -> cons wrong */
    fprintf(fp, "{\"record\": {\"answer\": \"12\"}, \"samples\": ["
                "{\"text\": \"The answer is 12\", \"tokens\": 1}, {\"text\": \"The answer is 13\", \"tokens\": 1},"
                "{\"text\": \"The answer is 13.\", \"tokens\": 1}, {\"text\": \"#### 13\", \"tokens\": 1}]}\n");
    fclose(fp);
    EvalConfig c = {.reward = "math"};
    EvalResult r;
    Err err = {{0}};
    CHECKF(eval_rescore(path, &c, &r, &err) == 0, "%s", err.msg);
    CHECK(r.n_problems == 3 && r.k == 4);
    CHECK_NEAR(r.pass1, (0.5 + 0.5 + 0.25) / 3, 1e-12);
    CHECK_NEAR(r.cons, 2.0 / 3, 1e-12);
    /* pass@2: p0 1-C(2,2)/C(4,2)=5/6, p1 5/6, p2 1-C(3,2)/C(4,2)=1/2 */
    CHECK(r.passk_k[1] == 2);
    CHECK_NEAR(r.passk[1], (5.0 / 6 + 5.0 / 6 + 0.5) / 3, 1e-12);
    CHECK(r.passk_k[2] == 4);
    CHECK_NEAR(r.passk[2], 1.0, 1e-12);
    CHECK_NEAR(r.trunc_rate, 1.0 / 12, 1e-12);
    CHECK_NEAR(r.answered, 11.0 / 12, 1e-12);
    CHECK_NEAR(r.mean_len, (100 + 4 + 4) / 12.0, 1e-12);
    /* a malformed line is refused with its place */
    fp = fopen(path, "a");
    fprintf(fp, "{\"record\": {\"answer\": \"1\"}, \"samples\": [{\"text\": \"1\"}]}\n");
    fclose(fp);
    CHECK(eval_rescore(path, &c, &r, &err) != 0);
    CHECKF(strstr(err.msg, ":4:") && strstr(err.msg, "1 samples, earlier lines have 4"), "%s", err.msg);
    unlink(path);
}

/* Every problem of a benchmark answered with its own gold answer scores 1;
 * answered with the next problem's, almost never. */
static void test_benchmark_file(const char *file, const char *format) {
    if (access(file, R_OK) != 0) {
        SKIP("%s is absent (shared data not available)", file);
        return;
    }
    Dataset d;
    Err err = {{0}};
    DatasetOptions o = {0};
    dataset_format_parse(format, &o.format);
    if (dataset_load(&d, file, &o, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    char path[] = "/tmp/r1c-eval-bench-XXXXXX";
    int fd = mkstemp(path);
    FILE *fp = fdopen(fd, "w");
    for (int i = 0; i < d.n; i++) {
        const char *gold = json_string_value(json_object_get(d.ex[i].record, "answer"));
        const char *other = json_string_value(json_object_get(d.ex[(i + 1) % d.n].record, "answer"));
        json_t *line = json_object(), *s = json_array(), *a = json_object(), *b = json_object();
        char t[4096];
        snprintf(t, sizeof t, "Reasoning... so the answer is \\boxed{%s}.", gold);
        json_object_set_new(a, "text", json_string(t));
        snprintf(t, sizeof t, "Reasoning... \\boxed{%s}", other);
        json_object_set_new(b, "text", json_string(t));
        json_array_append_new(s, a);
        json_array_append_new(s, b);
        json_object_set(line, "record", d.ex[i].record);
        json_object_set_new(line, "samples", s);
        char *txt = json_dumps(line, JSON_COMPACT);
        fprintf(fp, "%s\n", txt);
        free(txt);
        json_decref(line);
    }
    fclose(fp);
    EvalConfig c = {.reward = "math"};
    EvalResult r;
    CHECKF(eval_rescore(path, &c, &r, &err) == 0, "%s", err.msg);
    CHECKF(r.n_problems == d.n, "%s: %d of %d problems", file, r.n_problems, d.n);
    /* pass@1 over the 2 samples: (1 + coincidence) / 2 */
    CHECKF(r.pass1 >= 0.5 && r.pass1 < 0.6, "%s: pass@1 %.4f", file, r.pass1);
    CHECKF(r.passk[r.n_passk - 1] == 1.0, "%s: pass@2 %.4f", file, r.passk[r.n_passk - 1]);
    printf("%s: %d problems, gold+neighbour pass@1 %.4f\n", file, d.n, r.pass1);
    unlink(path);
    dataset_free(&d);
}

int main(void) {
    test_passk();
    test_vote();
    test_rescore_fixed();
    test_benchmark_file("../shared/data/gsm8k/test.jsonl", "gsm8k");
    test_benchmark_file("../shared/data/math500/test.jsonl", "math");
    test_benchmark_file("../shared/data/aime24/test.jsonl", "auto");
    test_benchmark_file("../shared/data/aime25/aime25.jsonl", "jsonl");
    test_benchmark_file("../shared/data/amc23/test.jsonl", "auto");
    return check_summary("test_eval");
}
