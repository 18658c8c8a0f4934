/* libFuzzer target for what a data-parallel peer can send (dist/wire.h):
 * any bytes decode into a checked hello, header or address entry or a
 * refusal that says why; a decoded entry is a NUL-terminated numeric
 * address with a real port, and re-encodes to the same bytes' meaning. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint32_t world = data[0] % 9 + 1;
    data++, size--;
    Err err = {{0}};
    WireHello h;
    int k = wire_hello_decode(data, size, world, &h, &err);
    if (k == 0 && (h.rank >= world || h.world != world || h.port == 0 || h.port > 65535)) abort();
    if (k < 0 && !err.msg[0]) abort();
    WireHeader hd;
    if (wire_header_decode(data, size, &hd, &err) == 0 && size != WIRE_HEADER_BYTES) abort();
    WireEntry e;
    err.msg[0] = 0;
    if (wire_entry_decode(data, size, &e, &err) == 0) {
        if (!memchr(e.addr, 0, sizeof e.addr) || e.port == 0 || e.port > 65535) abort();
        uint8_t back[WIRE_ENTRY_BYTES];
        WireEntry f;
        wire_entry_encode(back, &e);
        if (wire_entry_decode(back, sizeof back, &f, &err) != 0 || strcmp(f.addr, e.addr) || f.port != e.port) abort();
    } else if (!err.msg[0]) abort();
    return 0;
}
