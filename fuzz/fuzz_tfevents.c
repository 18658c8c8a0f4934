/* libFuzzer target for the TFRecord reader: any bytes are walked record by
 * record without reading outside the buffer; every failure explains itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/tfevents.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t off = 0, n;
    const uint8_t *rec;
    Err err;
    int rc;
    while ((rc = tfevents_record_next(data, size, &off, &rec, &n, &err)) == 0)
        if (rec < data || rec + n > data + size) abort();
    if (rc < 0 && !err.msg[0]) abort();
    return 0;
}
