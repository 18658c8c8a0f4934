/* UTF-8 helpers for the tokenizer: strict decoding of validated text,
 * validation with the offset of the first bad byte, and lossy conversion
 * that replaces each maximal invalid subsequence with U+FFFD exactly as
 * Rust's String::from_utf8_lossy does (so decode matches HF tokenizers). */
#ifndef R1C_IO_UTF8_H
#define R1C_IO_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if the
 * bytes there are not a complete valid sequence; *cp gets the code point. */
size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Encodes cp (must be a scalar value) into out[4]; returns its length. */
size_t utf8_encode(uint32_t cp, uint8_t *out);
/* Returns n when s is valid UTF-8, else the offset of the first bad byte. */
size_t utf8_validate(const uint8_t *s, size_t n);
/* Length of the longest valid-so-far prefix of a sequence starting at s
 * (1..3 bytes) when s[0..n) could still become valid with more bytes;
 * 0 when it is already complete or can never become valid. */
size_t utf8_incomplete_tail(const uint8_t *s, size_t n);
/* Length of the maximal invalid subpart at s (>= 1); s must not start a
 * valid sequence. */
size_t utf8_invalid_len(const uint8_t *s, size_t n);

#endif
