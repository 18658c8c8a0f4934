/* TensorBoard event writer (see tfevents.h). Record layout:
 *   uint64 length | uint32 masked_crc(length) | data | uint32 masked_crc(data)
 * all little-endian. Event fields used: 1 wall_time (double), 2 step (int64),
 * 3 file_version (string), 5 summary { 1 value { 1 tag, 2 simple_value } }. */
#include "io/tfevents.h"

#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TAG_MAX 1024

uint32_t tfevents_crc32c(const void *data, size_t n) {
    /* Bitwise table built once; event files are small, speed is no concern. */
    static uint32_t table[256];
    static int ready = 0;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

uint32_t tfevents_crc_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_le32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Protobuf writer over a fixed buffer; `ok` drops to 0 on overflow so the
 * caller checks once at the end. */
typedef struct Pb {
    uint8_t *buf;
    size_t cap, len;
    int ok;
} Pb;

static void pb_byte(Pb *pb, uint8_t b) {
    if (pb->len >= pb->cap) { pb->ok = 0; return; }
    pb->buf[pb->len++] = b;
}
static void pb_varint(Pb *pb, uint64_t v) {
    while (v >= 0x80) { pb_byte(pb, (uint8_t)(v | 0x80)); v >>= 7; }
    pb_byte(pb, (uint8_t)v);
}
static void pb_bytes(Pb *pb, const void *p, size_t n) {
    if (n > pb->cap - pb->len) { pb->ok = 0; return; }
    memcpy(pb->buf + pb->len, p, n);
    pb->len += n;
}
static void pb_double(Pb *pb, int field, double v) {
    uint64_t bits;
    uint8_t le[8];
    memcpy(&bits, &v, 8);
    put_le64(le, bits);
    pb_varint(pb, (uint64_t)field << 3 | 1);
    pb_bytes(pb, le, 8);
}
static void pb_float(Pb *pb, int field, float v) {
    uint32_t bits;
    uint8_t le[4];
    memcpy(&bits, &v, 4);
    put_le32(le, bits);
    pb_varint(pb, (uint64_t)field << 3 | 5);
    pb_bytes(pb, le, 4);
}
static void pb_len_prefix(Pb *pb, int field, size_t n) {
    pb_varint(pb, (uint64_t)field << 3 | 2);
    pb_varint(pb, n);
}
static size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

size_t tfevents_encode_scalar(uint8_t *buf, size_t cap, const char *tag, int64_t step, float value, double wall_time) {
    size_t tag_len = strlen(tag);
    /* Sizes of the nested messages, innermost first, for their length prefixes. */
    size_t value_len = 1 + varint_size(tag_len) + tag_len + 1 + 4;
    size_t summary_len = 1 + varint_size(value_len) + value_len;
    Pb pb = {buf, cap, 0, 1};
    pb_double(&pb, 1, wall_time);
    pb_varint(&pb, 2 << 3 | 0);
    pb_varint(&pb, (uint64_t)step);
    pb_len_prefix(&pb, 5, summary_len);
    pb_len_prefix(&pb, 1, value_len);
    pb_len_prefix(&pb, 1, tag_len);
    pb_bytes(&pb, tag, tag_len);
    pb_float(&pb, 2, value);
    return pb.ok ? pb.len : 0;
}

static size_t encode_file_version(uint8_t *buf, size_t cap, double wall_time) {
    static const char version[] = "brain.Event:2";
    Pb pb = {buf, cap, 0, 1};
    pb_double(&pb, 1, wall_time);
    pb_len_prefix(&pb, 3, sizeof version - 1);
    pb_bytes(&pb, version, sizeof version - 1);
    return pb.ok ? pb.len : 0;
}

static int write_record(TfEvents *tf, const uint8_t *data, size_t n, Err *err) {
    uint8_t head[12], tail[4];
    put_le64(head, n);
    put_le32(head + 8, tfevents_crc_mask(tfevents_crc32c(head, 8)));
    put_le32(tail, tfevents_crc_mask(tfevents_crc32c(data, n)));
    if (fwrite(head, 1, 12, tf->fp) != 12 || fwrite(data, 1, n, tf->fp) != n || fwrite(tail, 1, 4, tf->fp) != 4 ||
        fflush(tf->fp) != 0)
        return err_set(err, "%s: write failed: %s", tf->path, strerror(errno));
    return 0;
}

static double now_seconds(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

int tfevents_open(TfEvents *tf, const char *dir, Err *err) {
    memset(tf, 0, sizeof *tf);
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    int n = snprintf(tf->path, sizeof tf->path, "%s/events.out.tfevents.%lld.%s.%ld", dir, (long long)time(NULL), host,
                     (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tf->path) return err_set(err, "%s: path too long", dir);
    /* Exclusive create: two writers must never interleave records in one file. */
    tf->fp = fopen(tf->path, "wbx");
    if (!tf->fp) return err_set(err, "%s: cannot create: %s", tf->path, strerror(errno));
    uint8_t buf[64];
    size_t len = encode_file_version(buf, sizeof buf, now_seconds());
    if (write_record(tf, buf, len, err) != 0) {
        tfevents_close(tf);
        return -1;
    }
    return 0;
}

int tfevents_scalar(TfEvents *tf, const char *tag, int64_t step, double value, double wall_time, Err *err) {
    if (!tf->fp) return err_set(err, "tfevents: writer is not open");
    size_t tag_len = strlen(tag);
    if (tag_len == 0 || tag_len > TAG_MAX) return err_set(err, "%s: tag of %zu bytes (1..%d allowed)", tf->path, tag_len, TAG_MAX);
    uint8_t buf[TAG_MAX + 64];
    size_t len = tfevents_encode_scalar(buf, sizeof buf, tag, step, (float)value, wall_time > 0 ? wall_time : now_seconds());
    if (!len) return err_set(err, "%s: event for tag '%s' does not fit", tf->path, tag);
    return write_record(tf, buf, len, err);
}

void tfevents_close(TfEvents *tf) {
    if (tf->fp) fclose(tf->fp);
    tf->fp = NULL;
}

int tfevents_record_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **data, size_t *n, Err *err) {
    size_t at = *off;
    if (at > len) return err_set(err, "record offset %zu past the end (%zu)", at, len);
    if (at == len) return 1;
    if (len - at < 12) return err_set(err, "offset %zu: torn record header (%zu bytes left)", at, len - at);
    uint64_t size = get_le64(buf + at);
    if (get_le32(buf + at + 8) != tfevents_crc_mask(tfevents_crc32c(buf + at, 8)))
        return err_set(err, "offset %zu: length CRC mismatch", at);
    if (size > len - at - 12 || len - at - 12 - size < 4)
        return err_set(err, "offset %zu: record of %llu bytes runs past the end", at, (unsigned long long)size);
    const uint8_t *d = buf + at + 12;
    if (get_le32(d + size) != tfevents_crc_mask(tfevents_crc32c(d, (size_t)size)))
        return err_set(err, "offset %zu: data CRC mismatch", at);
    *data = d;
    *n = (size_t)size;
    *off = at + 12 + (size_t)size + 4;
    return 0;
}
