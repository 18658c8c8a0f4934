/* FNV-1a over bytes: a cheap fingerprint for "are these bits the same"
 * checks (ranks' inputs and weights, a benchmark's outputs across builds),
 * never for anything adversarial. */
#ifndef R1C_BASE_HASH_H
#define R1C_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A_INIT 0xcbf29ce484222325ull

/* h continued over the n bytes at p */
static inline uint64_t hash_fnv1a(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}

#endif
