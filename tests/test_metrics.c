/* io/metrics, io/samples, io/jsonl: write, read back, torn last line,
 * resume cut-back, float spelling, bad keys. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/file.h"
#include "io/jsonl.h"
#include "io/metrics.h"
#include "io/samples.h"
#include "check.h"

static char dir[] = "/tmp/r1c-metrics-XXXXXX";

static char *slurp(const char *path) {
    char *buf;
    size_t len;
    Err err = {{0}};
    if (file_read_all(path, &buf, &len, 0, &err) != 0) return NULL;
    return buf;
}

static void append_raw(const char *path, const char *s) {
    FILE *fp = fopen(path, "ab");
    fputs(s, fp);
    fclose(fp);
}

static void write_steps(const char *path, int64_t from, int64_t to, int64_t resume) {
    MetricsWriter w;
    Err err = {{0}};
    CHECK(metrics_open(&w, path, resume, &err) == 0);
    for (int64_t s = from; s <= to; s++) {
        metrics_begin(&w, s);
        metrics_f64(&w, "reward/mean", 0.1 * (double)s);
        metrics_i64(&w, "tokens", 100 * s);
        metrics_end(&w, &err);
    }
    metrics_close(&w);
}

static void test_format(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/m.jsonl", dir);
    MetricsWriter w;
    Err err = {{0}};
    CHECK(metrics_open(&w, path, -1, &err) == 0);
    metrics_begin(&w, 3);
    metrics_f64(&w, "z", 0.1);
    metrics_f64(&w, "a", 1.0 / 3.0);
    metrics_f64(&w, "nan", NAN);
    metrics_f64(&w, "inf", -INFINITY);
    metrics_i64(&w, "n", -5);
    metrics_str(&w, "phase", "roll\"out\n");
    metrics_f64(&w, "big", 1e300);
    metrics_f64(&w, "f32", (double)0.1f);
    CHECK(metrics_end(&w, &err) == 0);
    /* Refused rows: duplicate key, reserved key, invalid UTF-8. */
    metrics_begin(&w, 4);
    metrics_f64(&w, "x", 1);
    metrics_f64(&w, "x", 2);
    CHECK(metrics_end(&w, &err) == -1);
    CHECK(strstr(err.msg, "added twice") != NULL);
    metrics_begin(&w, 4);
    metrics_f64(&w, "step", 1);
    CHECK(metrics_end(&w, &err) == -1);
    metrics_begin(&w, 4);
    metrics_f64(&w, "bad\xff", 1);
    CHECK(metrics_end(&w, &err) == -1);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    metrics_close(&w);
    char *s = slurp(path);
    CHECK(s != NULL);
    CHECK_STREQ(s, "{\"step\":3,\"z\":0.1,\"a\":0.3333333333333333,\"nan\":null,\"inf\":null,\"n\":-5,"
                   "\"phase\":\"roll\\\"out\\n\",\"big\":1e+300,\"f32\":0.10000000149011612}\n");
    free(s);

    MetricsTable t;
    CHECK(metrics_read(path, &t, &err) == 0);
    CHECK(t.n_rows == 1 && t.steps[0] == 3);
    CHECK(t.n_cols == 8);
    CHECK(metrics_col(&t, "a") == 1);
    CHECK(t.cols[1][0] == 1.0 / 3.0); /* bit-exact round trip */
    CHECK(isnan(t.cols[metrics_col(&t, "nan")][0]));
    CHECK(isnan(t.cols[metrics_col(&t, "phase")][0]));
    CHECK(t.cols[metrics_col(&t, "f32")][0] == (double)0.1f);
    CHECK(metrics_col(&t, "missing") == -1);
    metrics_table_free(&t);
}

static void test_read_sparse(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/sparse.jsonl", dir);
    unlink(path);
    append_raw(path, "{\"step\":0,\"a\":1}\n\n{\"step\":1,\"b\":2,\"a\":3}\n{\"step\":2,\"b\":4}\n{\"step\":3,\"a\":");
    MetricsTable t;
    Err err = {{0}};
    CHECK(metrics_read(path, &t, &err) == 0);
    CHECK(t.n_rows == 3); /* torn last line ignored, blank line skipped */
    int a = metrics_col(&t, "a"), b = metrics_col(&t, "b");
    CHECK(a == 0 && b == 1);
    CHECK(t.cols[a][0] == 1 && t.cols[a][1] == 3 && isnan(t.cols[a][2]));
    CHECK(isnan(t.cols[b][0]) && t.cols[b][1] == 2 && t.cols[b][2] == 4);
    metrics_table_free(&t);
    /* A broken line in the middle is an error naming the line. */
    append_raw(path, "\n{\"step\":4}\n");
    CHECK(metrics_read(path, &t, &err) == -1);
    CHECKF(strstr(err.msg, "sparse.jsonl:5:") != NULL, "%s", err.msg);
    /* Many rows: columns grow past the first allocation. */
    snprintf(path, sizeof path, "%s/long.jsonl", dir);
    write_steps(path, 0, 999, -1);
    CHECK(metrics_read(path, &t, &err) == 0);
    CHECK(t.n_rows == 1000 && t.steps[999] == 999);
    CHECK_NEAR(t.cols[0][999], 99.9, 1e-12);
    CHECK(t.cols[1][500] == 50000);
    metrics_table_free(&t);
    CHECK(metrics_read("/nonexistent/m.jsonl", &t, &err) == -1);
}

static void test_resume(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/r.jsonl", dir);
    write_steps(path, 0, 9, -1);
    append_raw(path, "{\"step\":10,\"rew"); /* crash mid-line */
    /* Resume from the checkpoint at step 5: steps 6..9 and the torn line go. */
    write_steps(path, 6, 7, 5);
    MetricsTable t;
    Err err = {{0}};
    CHECK(metrics_read(path, &t, &err) == 0);
    CHECK(t.n_rows == 8);
    for (size_t r = 0; r < t.n_rows && r < 8; r++) CHECK(t.steps[r] == (int64_t)r);
    metrics_table_free(&t);
    /* Resume past the end keeps everything (only the torn tail would go). */
    append_raw(path, "{\"st");
    write_steps(path, 8, 8, 100);
    CHECK(metrics_read(path, &t, &err) == 0);
    CHECK(t.n_rows == 9 && t.steps[8] == 8);
    metrics_table_free(&t);
    char *s = slurp(path);
    CHECK(s && !strstr(s, "{\"st\n") && !strstr(s, "{\"st{"));
    free(s);
    /* Resume with no file yet is a fresh start. */
    snprintf(path, sizeof path, "%s/new.jsonl", dir);
    write_steps(path, 1, 1, 0);
    CHECK(metrics_read(path, &t, &err) == 0 && t.n_rows == 1);
    metrics_table_free(&t);
    /* A corrupt complete line is refused, not silently dropped. */
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    unlink(path);
    append_raw(path, "{\"step\":0}\nnot json\n{\"step\":2}\n");
    CHECK(jsonl_resume(path, 5, &err) == -1);
    CHECKF(strstr(err.msg, "bad.jsonl:2:") != NULL, "%s", err.msg);
}

static void test_samples(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/s.jsonl", dir);
    SamplesWriter w;
    Err err = {{0}};
    CHECK(samples_open(&w, path, -1, &err) == 0);
    json_t *rewards = json_pack("{s:f,s:f}", "format", 1.0, "accuracy", 0.0);
    json_t *extra = json_pack("{s:s,s:i}", "answer", "42", "tokens", 17);
    CHECK(samples_write(&w, 1, "What is 6*7?", "<think>hm</think> 42 \xE2\x82", rewards, extra, &err) == 0);
    CHECK(samples_write(&w, 2, "p", "c", NULL, NULL, &err) == 0);
    json_t *clash = json_pack("{s:s}", "prompt", "x");
    CHECK(samples_write(&w, 3, "p", "c", NULL, clash, &err) == -1);
    json_decref(clash);
    samples_close(&w);
    char *s = slurp(path);
    CHECK(s != NULL);
    CHECKF(s && !strncmp(s, "{\"step\":1,\"prompt\":\"What is 6*7?\",\"completion\":\"<think>hm</think> 42 \xEF\xBF\xBD\xEF\xBF\xBD\","
                           "\"rewards\":{\"format\":1.0,\"accuracy\":0.0},\"answer\":\"42\",\"tokens\":17}\n",
                  strlen("{\"step\":1")),
           "%s", s);
    CHECK(s && strstr(s, "\xEF\xBF\xBD\xEF\xBF\xBD\"") != NULL); /* truncated 3-byte char: 2 bad bytes */
    CHECK(s && strstr(s, "\"rewards\":{\"format\":1.0,\"accuracy\":0.0},\"answer\":\"42\",\"tokens\":17}") != NULL);
    free(s);
    /* Resume drops step 2. */
    CHECK(samples_open(&w, path, 1, &err) == 0);
    samples_close(&w);
    s = slurp(path);
    CHECK(s && strstr(s, "\"step\":2") == NULL && strstr(s, "\"step\":1") != NULL);
    free(s);
    json_decref(rewards);
    json_decref(extra);
}

static void test_utf8(void) {
    CHECK(jsonl_utf8_valid("abc", 3));
    CHECK(jsonl_utf8_valid("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9));
    CHECK(!jsonl_utf8_valid("\xC0\x80", 2));         /* overlong NUL */
    CHECK(!jsonl_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
    CHECK(!jsonl_utf8_valid("\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!jsonl_utf8_valid("\xE2\x82", 2));         /* truncated */
    CHECK(!jsonl_utf8_valid("\x80", 1));
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_format();
    test_read_sparse();
    test_resume();
    test_samples();
    test_utf8();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_metrics");
}
