/* TensorBoard event files written by hand: TFRecord framing around
 * protobuf-encoded Event messages carrying scalar summaries. No TensorFlow
 * or protobuf library is needed; the format is small and stable. */
#ifndef R1C_IO_TFEVENTS_H
#define R1C_IO_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

/* CRC32C (Castagnoli), as TFRecord uses it. crc32c("123456789") = 0xE3069283. */
uint32_t tfevents_crc32c(const void *data, size_t n);
/* TFRecord's masked CRC: rotate right by 15 and add 0xa282ead8. */
uint32_t tfevents_crc_mask(uint32_t crc);

typedef struct TfEvents {
    FILE *fp;
    char path[4096];
} TfEvents;

/* Creates DIR/events.out.tfevents.<unix seconds>.<host>.<pid> and writes
 * the leading file_version event ("brain.Event:2"). */
int tfevents_open(TfEvents *tf, const char *dir, Err *err);
/* Appends one scalar event and flushes, so TensorBoard sees it live.
 * wall_time is seconds since the epoch (pass 0 for "now"). */
int tfevents_scalar(TfEvents *tf, const char *tag, int64_t step, double value, double wall_time, Err *err);
void tfevents_close(TfEvents *tf);

/* Encodes a scalar Event into buf (cap bytes); returns its length, or 0 if
 * it does not fit. Exposed for tests. */
size_t tfevents_encode_scalar(uint8_t *buf, size_t cap, const char *tag, int64_t step, float value, double wall_time);
/* Reads the TFRecord at buf[*off] (len bytes total), checks both CRCs, sets
 * data and n to its payload and advances *off. Returns 0, 1 at a clean end,
 * -1 on a torn or corrupt record. */
int tfevents_record_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **data, size_t *n, Err *err);

#endif
