/* The GPT-2 byte <-> code point table: printable Latin-1 bytes stand for
 * themselves, the other 68 bytes are shifted to U+0100.. in byte order. */
#include "io/bytelevel.h"

static int is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t bytelevel_char(uint8_t b) {
    if (is_printable(b)) return b;
    /* count non-printable bytes before b: they are numbered from U+0100 */
    uint32_t k = 0;
    for (int i = 0; i < b; i++) k += !is_printable(i);
    return 0x100 + k;
}

int bytelevel_byte(uint32_t cp) {
    if (cp < 0x100) return is_printable((int)cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (int i = 0; i < 256; i++)
        if (!is_printable(i) && k-- == 0) return i;
    return -1;
}
