/* GPT-2 byte-level alphabet: every byte maps to one printable code point,
 * so BPE vocabularies can be stored as JSON strings. */
#ifndef R1C_IO_BYTELEVEL_H
#define R1C_IO_BYTELEVEL_H

#include <stdint.h>

/* Code point that stands for byte b. */
uint32_t bytelevel_char(uint8_t b);
/* Byte that code point cp stands for, or -1 if cp is not in the alphabet. */
int bytelevel_byte(uint32_t cp);

#endif
