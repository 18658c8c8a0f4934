/* Wire encoding of the tcp communicator's messages (see wire.h). */
#include "dist/wire.h"

#include <string.h>

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void wire_hello_encode(uint8_t out[WIRE_HELLO_BYTES], const WireHello *h) {
    put32(out, WIRE_MAGIC), put32(out + 4, WIRE_VERSION);
    put32(out + 8, h->rank), put32(out + 12, h->world), put32(out + 16, h->port);
}

int wire_hello_decode(const uint8_t *b, size_t n, uint32_t world, WireHello *h, Err *err) {
    if (n != WIRE_HELLO_BYTES || get32(b) != WIRE_MAGIC) return 1;
    uint32_t version = get32(b + 4);
    h->rank = get32(b + 8), h->world = get32(b + 12), h->port = get32(b + 16);
    if (version != WIRE_VERSION)
        return err_set(err, "a rank speaks protocol version %u, this one %u (mixed r1c builds?)", version, WIRE_VERSION);
    if (h->world != world) return err_set(err, "rank %u says WORLD_SIZE=%u, this rank has %u", h->rank, h->world, world);
    if (h->rank >= world) return err_set(err, "a hello from rank %u, outside [0, %u)", h->rank, world);
    if (h->port == 0 || h->port > 65535) return err_set(err, "rank %u listens on port %u, not a port", h->rank, h->port);
    return 0;
}

void wire_header_encode(uint8_t out[WIRE_HEADER_BYTES], const WireHeader *h) {
    put32(out, WIRE_MAGIC), put32(out + 4, h->op), put64(out + 8, h->seq), put64(out + 16, h->bytes);
}

int wire_header_decode(const uint8_t *b, size_t n, WireHeader *h, Err *err) {
    if (n != WIRE_HEADER_BYTES || get32(b) != WIRE_MAGIC) return err_set(err, "garbage instead of a collective header");
    h->op = get32(b + 4), h->seq = get64(b + 8), h->bytes = get64(b + 16);
    return 0;
}

void wire_entry_encode(uint8_t out[WIRE_ENTRY_BYTES], const WireEntry *e) {
    memset(out, 0, WIRE_ADDR_BYTES);
    size_t l = strnlen(e->addr, WIRE_ADDR_BYTES - 1);
    memcpy(out, e->addr, l);
    put32(out + WIRE_ADDR_BYTES, e->port);
}

int wire_entry_decode(const uint8_t *b, size_t n, WireEntry *e, Err *err) {
    if (n != WIRE_ENTRY_BYTES) return err_set(err, "address entry of %zu bytes", n);
    const uint8_t *nul = memchr(b, 0, WIRE_ADDR_BYTES);
    if (!nul || nul == b) return err_set(err, "address entry without a NUL-terminated address");
    for (const uint8_t *p = b; p < nul; p++) /* numeric addresses: digits, hex, '.', ':' */
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') || *p == '.' ||
              *p == ':'))
            return err_set(err, "address entry with a byte 0x%02x that no numeric address has", *p);
    memcpy(e->addr, b, (size_t)(nul - b) + 1);
    e->port = get32(b + WIRE_ADDR_BYTES);
    if (e->port == 0 || e->port > 65535) return err_set(err, "address entry with port %u", e->port);
    return 0;
}
