/* The tcp communicator's messages on the wire: fixed sizes, explicit
 * little-endian fields (ranks on different machines need not share a
 * struct layout), and decoders that check every field of bytes a peer
 * sent before anything trusts them. */
#ifndef R1C_DIST_WIRE_H
#define R1C_DIST_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define WIRE_MAGIC 0x44433152u /* "R1CD" */
#define WIRE_VERSION 1u

enum { WIRE_HELLO_BYTES = 20, WIRE_HEADER_BYTES = 24, WIRE_ENTRY_BYTES = 68, WIRE_ADDR_BYTES = 64 };

/* A rank introduces itself (to rank 0, and to its ring neighbour). */
typedef struct WireHello {
    uint32_t rank, world, port; /* port: where its ring listener is */
} WireHello;

/* Every collective starts with one in each direction of each link. */
typedef struct WireHeader {
    uint32_t op;
    uint64_t seq, bytes;
} WireHeader;

/* Rank 0's table: where each rank listens. */
typedef struct WireEntry {
    char addr[WIRE_ADDR_BYTES]; /* numeric IPv4 / IPv6, NUL-terminated */
    uint32_t port;
} WireEntry;

void wire_hello_encode(uint8_t out[WIRE_HELLO_BYTES], const WireHello *h);
/* 0: a valid hello for a job of `world` ranks; 1: not an r1c rank at all
 * (wrong magic: a port scan, a stray client); -1: an r1c rank that does not
 * fit (version, world size, rank or port out of range), err says which. */
int wire_hello_decode(const uint8_t *b, size_t n, uint32_t world, WireHello *h, Err *err);

void wire_header_encode(uint8_t out[WIRE_HEADER_BYTES], const WireHeader *h);
/* 0 or -1 (wrong size or magic). */
int wire_header_decode(const uint8_t *b, size_t n, WireHeader *h, Err *err);

void wire_entry_encode(uint8_t out[WIRE_ENTRY_BYTES], const WireEntry *e);
/* 0 or -1: the address must be NUL-terminated text and the port 1..65535. */
int wire_entry_decode(const uint8_t *b, size_t n, WireEntry *e, Err *err);

#endif
