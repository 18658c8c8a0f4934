/* Private layout of Tokenizer, shared by the loader, the encoder and the
 * decoder (tokenizer_load.c, tokenizer.c, tokenizer_decode.c). */
#ifndef R1C_IO_TOKENIZER_INTERNAL_H
#define R1C_IO_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/pretokenize.h"
#include "io/tokenizer.h"

#define TOK_NONE UINT32_MAX

typedef struct AddedTok {
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
    char *content;     /* as in the file (used for decoding) */
    size_t len;
    uint8_t *dec;      /* what it decodes to: the ByteLevel decoder maps its
                          chars to bytes when all are in the alphabet */
    size_t dec_len;
    char *match;       /* what is searched for: content, NFC'd when normalized */
    size_t match_len;
} AddedTok;

/* Added tokens of one matching pass (raw text or normalized text), grouped
 * by first byte so leftmost-longest search checks few candidates. */
typedef struct AddedSet {
    int32_t *idx;        /* indices into Tokenizer.added, by first byte */
    uint32_t start[257]; /* idx[start[b] .. start[b+1]) begin with byte b */
    size_t n;
} AddedSet;

typedef struct WordCacheSlot {
    uint64_t hash;
    uint8_t len, n_ids; /* len 0 = empty */
    uint8_t word[30];
    int32_t ids[16];
} WordCacheSlot;
#define TOK_CACHE_SLOTS 32768
#define TOK_CACHE_MAX_WORD 30
#define TOK_CACHE_MAX_IDS 16

/* One slot per merge, key and value together: one cache miss a lookup. */
typedef struct TokPair { uint64_t key; int32_t rank, new_id; } TokPair;

typedef struct BpeSym { int32_t id, prev, next, len; } BpeSym;
typedef struct BpeHeapEnt { int32_t rank, pos, new_id; } BpeHeapEnt;

struct Tokenizer {
    char name[512];
    PretokKind pretok;
    int nfc;
    int ignore_merges;
    int32_t n_ids; /* max id + 1 */

    /* model vocabulary: raw bytes of each id (byte-level decoded) */
    uint8_t *arena;
    size_t arena_len, arena_cap;
    uint64_t *mod_off;   /* per id */
    uint32_t *mod_len;   /* per id; TOK_NONE = no model token */
    uint8_t *mod_raw;    /* 1 when the vocab string was not byte-level: kept verbatim, never matched */
    uint32_t *vmap;      /* open addressing: id + 1, 0 = empty */
    size_t vmap_mask;
    int32_t byte_id[256];

    /* merges: (left id, right id) -> (rank, merged id) */
    TokPair *pairs;      /* open addressing; key UINT64_MAX = empty */
    size_t pair_mask;

    AddedTok *added;
    size_t n_added;
    int32_t *added_by_id; /* per id: index into added, -1 if none */
    AddedSet raw_set, norm_set;

    /* encoder scratch and cache (why a Tokenizer is one-thread-at-a-time) */
    WordCacheSlot *cache;
    BpeSym *sym;
    BpeHeapEnt *heap;
    size_t sym_cap, heap_cap;
    uint8_t *norm_buf;
    size_t norm_cap;
};

uint64_t tok_hash(const uint8_t *s, size_t n);
/* Model id whose raw bytes are s[0..n), or -1. */
int32_t tok_vocab_find(const Tokenizer *t, const uint8_t *s, size_t n);
/* Pair lookup; returns 0 and fills rank/new id when (a, b) merges. */
int tok_pair_find(const Tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *new_id);
/* Bytes an id decodes to (added content wins over the model token). */
int tok_id_bytes(const Tokenizer *t, int32_t id, const uint8_t **bytes, size_t *len);
/* White_Space, as Rust's \s and char::is_whitespace see it. */
int tok_is_space(uint32_t c);

#endif
