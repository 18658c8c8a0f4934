/* io/safetensors: write/read round trip and determinism, bf16/f16
 * conversions against hand-computed bit patterns, every malformed-file
 * refusal (the message must name the file and the problem), and sharded
 * checkpoint directories. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "io/safetensors.h"
#include "check.h"

static char tmpdir[] = "/tmp/r1c-test-st-XXXXXX";

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static void write_bytes(const char *path, const void *b, size_t len) {
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    if (len) CHECK(fwrite(b, 1, len, fp) == len);
    fclose(fp);
}

static uint8_t *read_bytes(const char *path, size_t *len) {
    char *buf = NULL;
    Err err = {{0}};
    if (file_read_all(path, &buf, len, 0, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        *len = 0;
    }
    return (uint8_t *)buf;
}

/* A safetensors image: u64 LE header length, header, data_len data bytes. */
static uint8_t *make_st(const char *header, size_t data_len, size_t *len) {
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    uint8_t *b = calloc(*len, 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (uint8_t)(i * 7 + 1);
    return b;
}

/* The bytes must be refused by st_open (message names the file and
 * contains `want`) and by st_open_buffer (message names `what`). */
static void expect_refused_bytes(const char *label, const uint8_t *b, size_t len, const char *want) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad-%s.safetensors", tmpdir, label);
    write_bytes(path, b, len);
    StFile f;
    Err err = {{0}};
    int rc = st_open(&f, path, &err);
    CHECKF(rc != 0, "%s: accepted", label);
    if (rc == 0) st_close(&f);
    CHECKF(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", label, err.msg);
    CHECKF(strstr(err.msg, want) != NULL, "%s: message lacks \"%s\": %s", label, want, err.msg);
    Err err2 = {{0}};
    rc = st_open_buffer(&f, b, len, "BUFNAME", &err2);
    CHECKF(rc != 0, "%s: accepted from buffer", label);
    if (rc == 0) st_close(&f);
    CHECKF(strstr(err2.msg, "BUFNAME") && strstr(err2.msg, want), "%s (buffer): %s", label, err2.msg);
    unlink(path);
}

static void expect_refused(const char *label, const char *header, size_t data_len, const char *want) {
    size_t len;
    uint8_t *b = make_st(header, data_len, &len);
    expect_refused_bytes(label, b, len, want);
    free(b);
}

static void expect_accepted(const char *label, const char *header, size_t data_len, int n_tensors) {
    size_t len;
    uint8_t *b = make_st(header, data_len, &len);
    StFile f;
    Err err = {{0}};
    int rc = st_open_buffer(&f, b, len, label, &err);
    CHECKF(rc == 0, "%s refused: %s", label, err.msg);
    if (rc == 0) {
        CHECK(f.n_tensors == n_tensors);
        st_close(&f);
    }
    free(b);
}

/* ---- round trip ---- */

static void test_roundtrip(void) {
    float f32[6] = {1.5f, -2.25f, 0.0f, 3e-39f, 1e30f, -0.0f};
    uint16_t bf16[4] = {0x3f80, 0xc000, 0x7f80, 0x0001};
    uint16_t f16[3] = {0x3c00, 0x0001, 0xfbff};
    double f64[2] = {3.141592653589793, -1e300};
    int64_t i64[3] = {INT64_MIN, -1, INT64_MAX};
    int32_t i32[4] = {1, -2, 3, -4};
    int16_t i16[2] = {-32768, 32767};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    uint8_t bl[2] = {0, 1};
    float scalar = 42.0f;
    /* given out of name order: the writer sorts */
    StWriteTensor ts[] = {
        {"model.layers.0.w", ST_DTYPE_F32, 2, {2, 3}, f32},
        {"bf", ST_DTYPE_BF16, 2, {2, 2}, bf16},
        {"half", ST_DTYPE_F16, 1, {3}, f16},
        {"dbl", ST_DTYPE_F64, 1, {2}, f64},
        {"i64", ST_DTYPE_I64, 1, {3}, i64},
        {"i32", ST_DTYPE_I32, 3, {1, 2, 2}, i32},
        {"i16", ST_DTYPE_I16, 1, {2}, i16},
        {"i8", ST_DTYPE_I8, 1, {3}, i8},
        {"u8", ST_DTYPE_U8, 1, {5}, u8},
        {"bool", ST_DTYPE_BOOL, 1, {2}, bl},
        {"scalar", ST_DTYPE_F32, 0, {0}, &scalar},
        {"empty", ST_DTYPE_F32, 2, {0, 4}, f32},
        {"a.zero_first", ST_DTYPE_I32, 1, {0}, i32},
    };
    int n = (int)(sizeof ts / sizeof ts[0]);
    const char *mk[] = {"format", "note"}, *mv[] = {"pt", "h\xc3\xa9llo \"quoted\""};
    char p1[512], p2[512];
    path_in(p1, sizeof p1, "rt1.safetensors");
    path_in(p2, sizeof p2, "rt2.safetensors");
    Err err = {{0}};
    CHECKF(st_write(p1, ts, n, mk, mv, 2, &err) == 0, "%s", err.msg);
    CHECKF(st_write(p2, ts, n, mk, mv, 2, &err) == 0, "%s", err.msg);
    size_t l1, l2;
    uint8_t *b1 = read_bytes(p1, &l1), *b2 = read_bytes(p2, &l2);
    CHECKF(l1 == l2 && b1 && b2 && !memcmp(b1, b2, l1), "writing twice gives identical bytes");
    /* header length padded to a multiple of 8 with spaces */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b1[i];
    CHECK(hl % 8 == 0 && hl + 8 <= l1);
    CHECK(b1[8] == '{');
    size_t data_bytes = 24 + 8 + 6 + 16 + 24 + 16 + 4 + 3 + 5 + 2 + 4;
    CHECK(l1 == 8 + hl + data_bytes);
    /* no temp files left behind */
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%d", p1, (int)getpid());
    CHECK(access(tmpname, F_OK) != 0);
    free(b1), free(b2);

    StFile f;
    CHECKF(st_open(&f, p1, &err) == 0, "%s", err.msg);
    CHECK(f.n_tensors == n);
    for (int i = 1; i < f.n_tensors; i++) CHECK(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0);
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_find(&f, ts[i].name);
        CHECKF(t != NULL, "missing %s", ts[i].name);
        if (!t) continue;
        CHECK(t->dtype == ts[i].dtype);
        CHECK(t->ndim == ts[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == ts[i].shape[d]);
            numel *= ts[i].shape[d];
        }
        CHECK(t->numel == numel);
        CHECK(t->nbytes == (size_t)numel * st_dtype_size(ts[i].dtype));
        CHECKF(t->nbytes == 0 || !memcmp(t->data, ts[i].data, t->nbytes), "bytes of %s", ts[i].name);
    }
    CHECK(st_find(&f, "nope") == NULL);
    CHECK(st_meta(&f, "format") && !strcmp(st_meta(&f, "format"), "pt"));
    CHECK(st_meta(&f, "note") && !strcmp(st_meta(&f, "note"), mv[1]));
    CHECK(st_meta(&f, "absent") == NULL);

    /* widening to f32 */
    float out[6];
    const StTensor *t = st_find(&f, "bf");
    CHECK(st_tensor_to_f32(t, out, p1, &err) == 0);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]) && out[3] == ldexpf(1.0f, -133));
    t = st_find(&f, "half");
    CHECK(st_tensor_to_f32(t, out, p1, &err) == 0);
    CHECK(out[0] == 1.0f && out[1] == ldexpf(1.0f, -24) && out[2] == -65504.0f);
    t = st_find(&f, "model.layers.0.w");
    CHECK(st_tensor_to_f32(t, out, p1, &err) == 0);
    CHECK(!memcmp(out, f32, sizeof f32));
    t = st_find(&f, "i32");
    CHECK(st_tensor_to_f32(t, out, p1, &err) != 0);
    CHECKF(strstr(err.msg, p1) && strstr(err.msg, "'i32'") && strstr(err.msg, "I32"), "%s", err.msg);
    st_close(&f);

    /* writer refuses duplicate names */
    StWriteTensor dup[] = {{"x", ST_DTYPE_F32, 1, {1}, f32}, {"x", ST_DTYPE_F32, 1, {1}, f32}};
    char p3[512];
    path_in(p3, sizeof p3, "dup.safetensors");
    CHECK(st_write(p3, dup, 2, NULL, NULL, 0, &err) != 0);
    CHECKF(strstr(err.msg, "duplicate") && strstr(err.msg, p3), "%s", err.msg);
    CHECK(access(p3, F_OK) != 0);
    /* names and metadata the reader would refuse are refused by the writer */
    const char *badnames[] = {"bad\xff", "__metadata__", ""};
    for (int i = 0; i < 3; i++) {
        StWriteTensor bt = {badnames[i], ST_DTYPE_F32, 1, {1}, f32};
        CHECKF(st_write(p3, &bt, 1, NULL, NULL, 0, &err) != 0, "writer accepted name '%s'", badnames[i]);
        CHECKF(strstr(err.msg, p3) && strstr(err.msg, "cannot be written"), "%s", err.msg);
        CHECK(access(p3, F_OK) != 0);
    }
    const char *bk[] = {"k"}, *bv[] = {"v\xff"};
    CHECK(st_write(p3, ts, 1, bk, bv, 1, &err) != 0);
    CHECKF(strstr(err.msg, p3) && strstr(err.msg, "__metadata__ 'k'"), "%s", err.msg);
    CHECK(access(p3, F_OK) != 0);
    /* no tensors at all */
    CHECKF(st_write(p3, NULL, 0, NULL, NULL, 0, &err) == 0, "%s", err.msg);
    CHECKF(st_open(&f, p3, &err) == 0, "%s", err.msg);
    CHECK(f.n_tensors == 0 && f.n_meta == 0);
    st_close(&f);
    unlink(p1), unlink(p2), unlink(p3);
}

/* ---- conversions ---- */

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_conversions(void) {
    /* f32 -> bf16, round to nearest, ties to even */
    struct { uint32_t in; uint16_t out; } bf[] = {
        {0x3f800000, 0x3f80}, /* 1.0 */
        {0x3f807fff, 0x3f80}, /* just below half: down */
        {0x3f808000, 0x3f80}, /* tie, 0x3f80 even: down */
        {0x3f808001, 0x3f81}, /* just above half: up */
        {0x3f818000, 0x3f82}, /* tie, 0x3f81 odd: up to even */
        {0xbf808000, 0xbf80}, /* negative tie */
        {0xbf818000, 0xbf82},
        {0x3fffffff, 0x4000}, /* carry into the exponent */
        {0x7f7fffff, 0x7f80}, /* FLT_MAX rounds to +inf */
        {0x7f800000, 0x7f80}, /* +inf */
        {0xff800000, 0xff80}, /* -inf */
        {0x00000000, 0x0000}, {0x80000000, 0x8000}, /* signed zeros */
        {0x00018000, 0x0002}, /* subnormal tie to even (up) */
        {0x00008000, 0x0000}, /* subnormal tie to even (down) */
        {0x007fffff, 0x0080}, /* largest subnormal rounds to min normal */
    };
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++) {
        uint16_t got = st_f32_to_bf16(u2f(bf[i].in));
        CHECKF(got == bf[i].out, "bf16(0x%08x) = 0x%04x, want 0x%04x", bf[i].in, got, bf[i].out);
    }
    /* NaN stays NaN (quiet), never becomes inf, sign kept */
    uint32_t nans[] = {0x7fc00000, 0x7f800001, 0x7f80ffff, 0xffc00000, 0xff800001, 0x7fffffff};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = st_f32_to_bf16(u2f(nans[i]));
        CHECKF((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0, "bf16(NaN 0x%08x) = 0x%04x is not NaN", nans[i], h);
        CHECK((h & 0x8000) == ((nans[i] >> 16) & 0x8000));
        CHECK(isnan(st_bf16_to_f32(h)));
    }
    /* bf16 -> f32 is exact (bits shifted) */
    CHECK(st_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(st_bf16_to_f32(0xc049) == -3.140625f);
    CHECK(st_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));
    CHECK(isinf(st_bf16_to_f32(0xff80)) && st_bf16_to_f32(0xff80) < 0);
    CHECK(isnan(st_bf16_to_f32(0x7fc0)));
    CHECK(f2u(st_bf16_to_f32(0x8000)) == 0x80000000u);
    /* every bf16 survives bf16 -> f32 -> bf16 (NaNs stay NaN) */
    int ok = 1;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        uint16_t back = st_f32_to_bf16(f);
        ok &= isnan(f) ? isnan(st_bf16_to_f32(back)) : back == h;
    }
    CHECKF(ok, "bf16 round trip");

    /* f16 -> f32 */
    struct { uint16_t in; float out; } hf[] = {
        {0x3c00, 1.0f},
        {0xc000, -2.0f},
        {0x3555, 0.333251953125f},
        {0x7bff, 65504.0f},         /* largest finite */
        {0x0400, 0x1p-14f},         /* smallest normal */
        {0x0001, 0x1p-24f},         /* smallest subnormal */
        {0x0002, 0x1p-23f},
        {0x0200, 0x1p-15f},         /* subnormal, one leading zero */
        {0x03ff, 1023 * 0x1p-24f},  /* largest subnormal */
        {0x8001, -0x1p-24f},
        {0x83ff, -1023 * 0x1p-24f},
        {0x0000, 0.0f},
    };
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
        float got = st_f16_to_f32(hf[i].in);
        CHECKF(got == hf[i].out, "f16(0x%04x) = %.9g, want %.9g", hf[i].in, got, hf[i].out);
    }
    CHECK(f2u(st_f16_to_f32(0x8000)) == 0x80000000u); /* -0 */
    CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7e00)) && isnan(st_f16_to_f32(0x7c01)) && isnan(st_f16_to_f32(0xffff)));
    /* every finite f16 against the formula (-1)^s * m * 2^(e-25) */
    ok = 1;
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) continue;
        double v = e ? ldexp(1024 + m, (int)e - 25) : ldexp(m, -24);
        if (h & 0x8000) v = -v;
        ok &= (double)st_f16_to_f32((uint16_t)h) == v;
    }
    CHECKF(ok, "f16 -> f32 exact for every finite value");
}

/* ---- malformed files ---- */

static void test_malformed(void) {
    /* empty and truncated */
    expect_refused_bytes("empty", (const uint8_t *)"", 0, "too short");
    expect_refused_bytes("short", (const uint8_t *)"\x02\0\0\0\0\0", 6, "too short");
    /* header length beyond the end of the file */
    {
        size_t len;
        uint8_t *b = make_st("{}", 0, &len);
        b[0] = 200;
        expect_refused_bytes("hlen-beyond", b, len, "beyond the end of the file");
        /* huge: 2^40 and 2^64 - 1 */
        memset(b, 0, 8);
        b[5] = 1;
        expect_refused_bytes("hlen-huge", b, len, "100 MiB");
        memset(b, 0xff, 8);
        expect_refused_bytes("hlen-max", b, len, "100 MiB");
        free(b);
    }
    expect_refused("not-json", "{\"a\": ", 0, "header");
    expect_refused("not-json2", "{\"a\": {\"dtype\": \"F32\",}} ", 0, "header");
    expect_refused("not-object", "[1, 2, 3]", 0, "{");
    expect_refused("not-object2", "\"str\"   ", 0, "{");
    expect_refused("empty-header", "", 0, "{");
    expect_refused("missing-dtype", "{\"a\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "dtype");
    expect_refused("missing-shape", "{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8, "shape");
    expect_refused("missing-offsets", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "data_offsets");
    expect_refused("entry-not-object", "{\"a\": [1]}", 0, "not an object");
    expect_refused("dtype-not-string", "{\"a\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "dtype");
    expect_refused("unknown-dtype", "{\"a\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
                   "unknown dtype 'Q4'");
    expect_refused("lowercase-dtype", "{\"a\": {\"dtype\": \"f32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
                   "unknown dtype");
    expect_refused("neg-shape", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8,
                   "shape[0]");
    expect_refused("float-shape", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1, 2.0], \"data_offsets\": [0, 8]}}", 8,
                   "shape[1]");
    expect_refused("string-shape", "{\"a\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", 8,
                   "shape[0]");
    expect_refused("shape-not-array", "{\"a\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", 8,
                   "shape");
    expect_refused("too-many-dims",
                   "{\"a\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1,
                   "dimensions");
    expect_refused("shape-overflow",
                   "{\"a\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296, 16], \"data_offsets\": [0, 8]}}",
                   8, "overflow");
    expect_refused("size-mismatch", "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8,
                   "needs 12 bytes");
    expect_refused("size-mismatch-bf16", "{\"a\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 4]}}",
                   4, "needs 8 bytes");
    expect_refused("offsets-out-of-range", "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
                   8, "outside");
    expect_refused("offsets-negative", "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [-4, -4]}}", 8,
                   "outside");
    expect_refused("offsets-reversed", "{\"a\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 8,
                   "outside");
    expect_refused("offsets-huge",
                   "{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [9223372036854775800, "
                   "9223372036854775807]}}",
                   8, "outside");
    expect_refused("offsets-three", "{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8, 8]}}", 8,
                   "data_offsets");
    expect_refused("offsets-float", "{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8.0]}}", 8,
                   "data_offsets");
    expect_refused("overlap",
                   "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                   " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                   12, "overlaps");
    expect_refused("same-offsets",
                   "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                   " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                   8, "overlaps");
    expect_refused("gap",
                   "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                   " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
                   12, "gap");
    expect_refused("leading-gap", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8,
                   "gap");
    expect_refused("trailing", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 12,
                   "4 trailing bytes");
    expect_refused("trailing-no-tensors", "{}", 3, "3 trailing bytes");
    expect_refused("duplicate-key",
                   "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                   " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                   8, "duplicate");
    expect_refused("non-utf8-name", "{\"a\xff\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                   "byte 0xff");
    expect_refused("nul-in-name", "{\"a\\u0000b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                   4, "NUL byte");
    expect_refused("empty-name", "{\"\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                   "empty tensor name");
    expect_refused("meta-non-string", "{\"__metadata__\": {\"format\": \"pt\", \"n\": 1}}", 0, "'n' is not a string");
    expect_refused("meta-not-object", "{\"__metadata__\": [\"pt\"]}", 0, "__metadata__");
    expect_refused("extra-key",
                   "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"foo\": 1}}", 4,
                   "unexpected key 'foo'");
    /* a directory is not a safetensors file */
    {
        StFile f;
        Err err = {{0}};
        CHECK(st_open(&f, tmpdir, &err) != 0);
        CHECKF(strstr(err.msg, tmpdir) && strstr(err.msg, "regular file"), "%s", err.msg);
        char p[512];
        path_in(p, sizeof p, "does-not-exist.safetensors");
        CHECK(st_open(&f, p, &err) != 0);
        CHECKF(strstr(err.msg, p) && strstr(err.msg, "cannot open"), "%s", err.msg);
    }

    /* valid files that a too-strict reader might refuse */
    expect_accepted("ok-padded", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}      ", 4, 1);
    expect_accepted("ok-meta-only", "{\"__metadata__\": {}}", 0, 0);
    /* a zero-size tensor sharing its offset with a non-empty one, listed
     * after it (the reference implementation sorts by (begin, end)) */
    expect_accepted("ok-zero-size-tie",
                    "{\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                    " \"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]},"
                    " \"c\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [8, 8]}}",
                    8, 3);
    expect_accepted("ok-zero-size-tie2",
                    "{\"c\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]},"
                    " \"b\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [1, 1]},"
                    " \"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
                    2, 3);
}

/* ---- checkpoint directories ---- */

static void mkdir_in(char *out, size_t n, const char *name) {
    path_in(out, n, name);
    CHECK(mkdir(out, 0755) == 0);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_bytes(p, text, strlen(text));
}

static void write_shard(const char *dir, const char *name, const char *const *tnames, int n) {
    static const float vals[4] = {1, 2, 3, 4};
    StWriteTensor ts[8];
    for (int i = 0; i < n; i++) ts[i] = (StWriteTensor){tnames[i], ST_DTYPE_F32, 1, {4}, vals};
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    Err err = {{0}};
    CHECKF(st_write(p, ts, n, NULL, NULL, 0, &err) == 0, "%s", err.msg);
}

static void expect_ckpt_refused(const char *dir, const char *want1, const char *want2) {
    StCheckpoint c;
    Err err = {{0}};
    int rc = st_checkpoint_open(&c, dir, &err);
    CHECKF(rc != 0, "%s: accepted", dir);
    if (rc == 0) st_checkpoint_close(&c);
    CHECKF(strstr(err.msg, want1) && strstr(err.msg, want2), "%s: message lacks \"%s\"/\"%s\": %s", dir, want1,
           want2, err.msg);
}

static void test_checkpoint(void) {
    char d[512], p[700];
    const char *ab[] = {"a", "b"}, *cx[] = {"c", "x"}, *bx[] = {"b", "x"};

    /* a good sharded checkpoint */
    mkdir_in(d, sizeof d, "ck-ok");
    write_shard(d, "s1.safetensors", ab, 2);
    write_shard(d, "s2.safetensors", cx, 2);
    write_text(d, "model.safetensors.index.json",
               "{\"metadata\": {\"total_size\": 64}, \"weight_map\": {\"a\": \"s1.safetensors\", "
               "\"b\": \"s1.safetensors\", \"c\": \"s2.safetensors\", \"x\": \"s2.safetensors\"}}");
    StCheckpoint c;
    Err err = {{0}};
    CHECKF(st_checkpoint_open(&c, d, &err) == 0, "%s", err.msg);
    CHECK(c.n_files == 2 && c.n_index == 4);
    for (int i = 0; i < 2; i++) CHECK(st_checkpoint_find(&c, ab[i]) && st_checkpoint_find(&c, cx[i]));
    CHECK(st_checkpoint_find(&c, "zz") == NULL);
    const StTensor *t = st_checkpoint_find(&c, "x");
    CHECK(t && t->numel == 4 && ((const float *)t->data)[3] == 4.0f);
    st_checkpoint_close(&c);

    /* empty directory */
    mkdir_in(d, sizeof d, "ck-empty");
    expect_ckpt_refused(d, d, "no model.safetensors");
    /* index names a shard that does not exist */
    mkdir_in(d, sizeof d, "ck-missing-shard");
    write_shard(d, "s1.safetensors", ab, 2);
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\", \"c\": \"s2.safetensors\"}}");
    snprintf(p, sizeof p, "%s/s2.safetensors", d);
    expect_ckpt_refused(d, p, "cannot open");
    /* shard name with a '/' (path traversal) */
    mkdir_in(d, sizeof d, "ck-slash");
    write_shard(d, "s1.safetensors", ab, 2);
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\": {\"a\": \"../ck-ok/s1.safetensors\", \"b\": \"s1.safetensors\"}}");
    expect_ckpt_refused(d, "model.safetensors.index.json", "plain file name");
    write_text(d, "model.safetensors.index.json", "{\"weight_map\": {\"a\": \"..\", \"b\": \"s1.safetensors\"}}");
    expect_ckpt_refused(d, "model.safetensors.index.json", "plain file name");
    write_text(d, "model.safetensors.index.json", "{\"weight_map\": {\"a\": 3}}");
    expect_ckpt_refused(d, "model.safetensors.index.json", "not a string");
    /* index names a tensor its shard lacks */
    mkdir_in(d, sizeof d, "ck-absent");
    write_shard(d, "s1.safetensors", ab, 2);
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\", \"q\": \"s1.safetensors\"}}");
    expect_ckpt_refused(d, "'q'", "not in shard s1.safetensors");
    /* a tensor present in two shards */
    mkdir_in(d, sizeof d, "ck-twice");
    write_shard(d, "s1.safetensors", cx, 2);
    write_shard(d, "s2.safetensors", bx, 2);
    write_text(d, "model.safetensors.index.json",
               "{\"weight_map\": {\"c\": \"s1.safetensors\", \"b\": \"s2.safetensors\", \"x\": \"s1.safetensors\"}}");
    expect_ckpt_refused(d, "'x'", "more than one shard");
    /* weight_map missing / wrong type; index not JSON */
    mkdir_in(d, sizeof d, "ck-no-map");
    write_shard(d, "s1.safetensors", ab, 2);
    write_text(d, "model.safetensors.index.json", "{\"metadata\": {}}");
    expect_ckpt_refused(d, "model.safetensors.index.json", "weight_map");
    write_text(d, "model.safetensors.index.json", "{\"weight_map\": [\"s1.safetensors\"]}");
    expect_ckpt_refused(d, "model.safetensors.index.json", "weight_map");
    write_text(d, "model.safetensors.index.json", "{\"weight_map\": {");
    expect_ckpt_refused(d, "model.safetensors.index.json", ":");
    /* a single-file checkpoint that is corrupt: the file's own message */
    mkdir_in(d, sizeof d, "ck-corrupt");
    write_text(d, "model.safetensors", "abc");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    expect_ckpt_refused(d, p, "too short");

    /* the committed sharded fixture opens and matches its index */
    const char *fx = "tests/fixtures/models/qwen2_sharded";
    if (access(fx, F_OK) != 0) {
        SKIP("%s not found (run from the repository root)", fx);
    } else {
        CHECKF(st_checkpoint_open(&c, fx, &err) == 0, "%s", err.msg);
        CHECK(c.n_files == 2 && c.n_index > 0);
        CHECK(st_checkpoint_find(&c, "model.embed_tokens.weight") != NULL);
        st_checkpoint_close(&c);
    }
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_conversions();
    test_malformed();
    test_checkpoint();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
    return check_summary("test_safetensors");
}
