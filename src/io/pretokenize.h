/* Regex-free pre-tokenizer: a hand-written linear-time scanner with the
 * exact match semantics of the Split regexes that byte-level BPE models
 * ship in tokenizer.json. We recognise the pattern string and refuse any
 * other, because a near-miss would silently change token ids. */
#ifndef R1C_IO_PRETOKENIZE_H
#define R1C_IO_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef enum PretokKind {
    PRETOK_QWEN2,  /* \p{N} : digits one at a time (Qwen2/2.5/3, R1-Distill-Qwen) */
    PRETOK_LLAMA3, /* \p{N}{1,3} : up to three digits (Llama 3, tiktoken cl100k) */
} PretokKind;

/* The exact pattern strings as they appear in tokenizer.json. */
extern const char PRETOK_PATTERN_QWEN2[];
extern const char PRETOK_PATTERN_LLAMA3[];

/* Maps a Split regex to its kind; unknown patterns are an error. */
int pretok_recognise(const char *pattern, PretokKind *kind, Err *err);

/* Given valid UTF-8 s[0..n) and pos < n at a match boundary, returns the
 * end of the next piece. Pieces tile the input: calling it again from the
 * returned end walks the whole text in O(n). */
size_t pretok_next(PretokKind kind, const uint8_t *s, size_t n, size_t pos);

#endif
