/* base/: RNG streams, atomic files, JSON error locations. */
#include <stdlib.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "base/rng.h"
#include "check.h"

static void test_rng(void) {
    Rng a, b;
    rng_split(&a, 42, 7);
    rng_split(&b, 42, 7);
    for (int i = 0; i < 100; i++) CHECK(rng_u64(&a) == rng_u64(&b));
    rng_split(&b, 42, 8);
    CHECK(rng_u64(&a) != rng_u64(&b));
    /* uniform mean and normal variance, loosely */
    double m = 0, v = 0;
    rng_seed(&a, 1);
    for (int i = 0; i < 100000; i++) m += rng_f32(&a);
    CHECK_NEAR(m / 100000, 0.5, 0.01);
    for (int i = 0; i < 100000; i++) {
        double x = rng_normal(&a);
        v += x * x;
    }
    CHECK_NEAR(v / 100000, 1.0, 0.02);
}

static void test_atomic(void) {
    char dir[] = "/tmp/r1c-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/file.txt", dir);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    Err err = {{0}};
    CHECK(dir_make(sub, &err) == 0);
    AtomicFile af;
    CHECK(atomic_open(&af, path, &err) == 0);
    CHECK(atomic_write(&af, "hello", 5, &err) == 0);
    CHECK(access(path, F_OK) != 0); /* not visible before commit */
    CHECK(atomic_commit(&af, &err) == 0);
    char *buf;
    size_t len;
    CHECK(file_read_all(path, &buf, &len, 0, &err) == 0);
    CHECK(len == 5 && !memcmp(buf, "hello", 5));
    free(buf);
    /* an aborted write leaves the old content */
    CHECK(atomic_open(&af, path, &err) == 0);
    CHECK(atomic_write(&af, "XX", 2, &err) == 0);
    atomic_abort(&af);
    CHECK(file_read_all(path, &buf, &len, 0, &err) == 0);
    CHECK(len == 5);
    free(buf);
    CHECK(file_read_all(path, &buf, &len, 3, &err) != 0); /* size limit */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_json(void) {
    Err err = {{0}};
    const char *bad = "{\n  \"a\": 1,\n  \"b\": [1, 2,\n}";
    json_t *j = json_load_buf(bad, strlen(bad), "x.json", &err);
    CHECK(j == NULL);
    CHECKF(strncmp(err.msg, "x.json:4:", 9) == 0, "%s", err.msg);
    const char *dup = "{\"a\": 1, \"a\": 2}";
    CHECK(json_load_buf(dup, strlen(dup), "d.json", &err) == NULL);
    const char *ok = "{\"i\": 3, \"f\": 2.5, \"s\": \"x\", \"r\": 4.0}";
    j = json_load_buf(ok, strlen(ok), "ok.json", &err);
    CHECK(j != NULL);
    int64_t i = 0;
    double f = 0;
    const char *s = NULL;
    CHECK(json_get_i64(j, "i", &i, "ok.json", &err) == 0 && i == 3);
    CHECK(json_get_i64(j, "r", &i, "ok.json", &err) == 0 && i == 4);
    CHECK(json_get_i64(j, "f", &i, "ok.json", &err) == -1);
    CHECK(json_get_f64(j, "f", &f, "ok.json", &err) == 0 && f == 2.5);
    CHECK(json_get_str(j, "s", &s, "ok.json", &err) == 0 && !strcmp(s, "x"));
    CHECK(json_get_str(j, "missing", &s, "ok.json", &err) == 1);
    CHECK(json_get_str(j, "i", &s, "ok.json", &err) == -1);
    json_decref(j);
}

int main(void) {
    test_rng();
    test_atomic();
    test_json();
    return check_summary("test_base");
}
