/* io/tfevents: CRC32C vectors, record framing, protobuf bytes, and a file
 * read back (by our parser, and by TensorBoard when it is installed). */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/file.h"
#include "io/tfevents.h"
#include "check.h"

static void test_crc(void) {
    CHECK(tfevents_crc32c("123456789", 9) == 0xE3069283u);
    /* RFC 3720 (iSCSI) B.4 vectors. */
    uint8_t buf[32];
    memset(buf, 0, 32);
    CHECK(tfevents_crc32c(buf, 32) == 0x8A9136AAu);
    memset(buf, 0xFF, 32);
    CHECK(tfevents_crc32c(buf, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
    CHECK(tfevents_crc32c(buf, 32) == 0x46DD794Eu);
    CHECK(tfevents_crc32c("", 0) == 0);
    CHECK(tfevents_crc_mask(0) == 0xa282ead8u);
}

/* Known-good bytes of one scalar record (tag "loss", step 7, value 0.5,
 * wall_time 1000.0), read by TensorBoard's EventFileLoader when generated. */
static const uint8_t GOLDEN[42] = {
    0x1a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x9b, 0xd8, 0x2d, /* length 26, masked CRC */
    0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x8f, 0x40,                   /* wall_time 1000.0 */
    0x10, 0x07,                                                             /* step 7 */
    0x2a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04, 0x6c, 0x6f, 0x73, 0x73,             /* summary.value.tag "loss" */
    0x15, 0x00, 0x00, 0x00, 0x3f,                                           /* simple_value 0.5f */
    0xa6, 0x5c, 0xcb, 0xfa,                                                 /* masked CRC of data */
};

static void test_golden(void) {
    const uint8_t *data;
    size_t off = 0, n;
    Err err = {{0}};
    CHECK(tfevents_record_next(GOLDEN, sizeof GOLDEN, &off, &data, &n, &err) == 0);
    CHECK(n == 26 && off == sizeof GOLDEN);
    uint8_t buf[64];
    CHECK(tfevents_encode_scalar(buf, sizeof buf, "loss", 7, 0.5f, 1000.0) == 26);
    CHECK(!memcmp(buf, GOLDEN + 12, 26));
}

static uint64_t read_varint(const uint8_t *p, size_t n, size_t *i) {
    uint64_t v = 0;
    for (int shift = 0; *i < n && shift < 64; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) break;
    }
    return v;
}

static void test_encode(void) {
    uint8_t buf[128];
    size_t n = tfevents_encode_scalar(buf, sizeof buf, "loss", 7, 0.5f, 1000.0);
    CHECK(n == 26);
    /* wall_time: field 1, fixed64 */
    CHECK(buf[0] == 0x09);
    double wt;
    memcpy(&wt, buf + 1, 8);
    CHECK(wt == 1000.0);
    size_t i = 9;
    CHECK(buf[i++] == 0x10);
    CHECK(read_varint(buf, n, &i) == 7);
    CHECK(buf[i++] == 0x2a);           /* summary */
    CHECK(read_varint(buf, n, &i) == n - i);
    CHECK(buf[i++] == 0x0a);           /* value */
    CHECK(read_varint(buf, n, &i) == n - i);
    CHECK(buf[i++] == 0x0a);           /* tag */
    CHECK(read_varint(buf, n, &i) == 4);
    CHECK(!memcmp(buf + i, "loss", 4));
    i += 4;
    CHECK(buf[i++] == 0x15);           /* simple_value, fixed32 */
    float v;
    memcpy(&v, buf + i, 4);
    CHECK(v == 0.5f);
    CHECK(i + 4 == n);
    /* Too small a buffer is refused, never overrun. */
    CHECK(tfevents_encode_scalar(buf, 20, "loss", 7, 0.5f, 1000.0) == 0);
    /* Negative steps encode as 10-byte varints. */
    n = tfevents_encode_scalar(buf, sizeof buf, "x", -1, 1.0f, 1.0);
    i = 10;
    CHECK((int64_t)read_varint(buf, n, &i) == -1);
}

static void test_file(void) {
    char dir[] = "/tmp/r1c-tfevents-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    Err err = {{0}};
    TfEvents tf;
    CHECK(tfevents_open(&tf, dir, &err) == 0);
    for (int s = 0; s < 5; s++) {
        CHECK(tfevents_scalar(&tf, "reward/mean", s, 0.25 * s, 0, &err) == 0);
        CHECK(tfevents_scalar(&tf, "kl", s, 1e-3 * s, 0, &err) == 0);
    }
    CHECK(tfevents_scalar(&tf, "", 0, 0, 0, &err) == -1);
    char path[4096];
    snprintf(path, sizeof path, "%s", tf.path);
    tfevents_close(&tf);

    char *raw;
    size_t len;
    CHECK(file_read_all(path, &raw, &len, 0, &err) == 0);
    const uint8_t *buf = (const uint8_t *)raw, *data;
    size_t off = 0, n;
    int records = 0, rc;
    while ((rc = tfevents_record_next(buf, len, &off, &data, &n, &err)) == 0) {
        if (records == 0) CHECK(n > 14 && !memcmp(data + n - 13, "brain.Event:2", 13));
        records++;
    }
    CHECK(rc == 1);
    CHECK(records == 11);
    /* Corruption and truncation are detected. */
    off = 0;
    CHECK(tfevents_record_next(buf, len - 1, &off, &data, &n, &err) == 0); /* first record intact */
    size_t last = 0;
    for (int r = 0; r < 10; r++) tfevents_record_next(buf, len, &last, &data, &n, &err);
    CHECK(tfevents_record_next(buf, len - 1, &last, &data, &n, &err) == -1);
    raw[20] ^= 1;
    off = 0;
    CHECK(tfevents_record_next(buf, len, &off, &data, &n, &err) == -1);
    raw[20] ^= 1;
    raw[3] = 0x7f; /* absurd length: length CRC catches it */
    off = 0;
    CHECK(tfevents_record_next(buf, len, &off, &data, &n, &err) == -1);
    free(raw);

    /* TensorBoard's own reader, when installed: the real compatibility test. */
    if (system("python3 -c 'import tensorboard' >/dev/null 2>&1") != 0) {
        SKIP("tfevents: python3 tensorboard not installed; TensorBoard read-back not checked");
    } else {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "python3 tests/ref/check_tfevents.py '%s' >/dev/null", path);
        CHECKF(system(cmd) == 0, "tests/ref/check_tfevents.py rejected %s", path);
    }
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_crc();
    test_encode();
    test_golden();
    test_file();
    return check_summary("test_tfevents");
}
