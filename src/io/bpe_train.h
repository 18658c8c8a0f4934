/* Byte-level BPE trainer: learns merges from text and writes a
 * tokenizer.json that HF `tokenizers` and tokenizer_load both read and
 * encode identically (NFC, the Qwen2 or Llama 3 Split pattern, ByteLevel).
 * Deterministic: the same inputs in the same order give the same file.
 * Ids: added tokens first (0..k-1), then the 256 bytes, then merges. */
#ifndef R1C_IO_BPE_TRAIN_H
#define R1C_IO_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "io/pretokenize.h"

typedef struct BpeTrainOptions {
    int32_t vocab_size;    /* total ids, added tokens and 256 bytes included */
    int64_t min_frequency; /* stop when the best pair is rarer (>= 1) */
    PretokKind pretok;
    const char *const *special; /* added tokens with special=true */
    size_t n_special;
    const char *const *added;   /* added tokens with special=false (e.g. <think>) */
    size_t n_added;
} BpeTrainOptions;

typedef struct BpeTrainer BpeTrainer;

int bpe_train_begin(BpeTrainer **out, const BpeTrainOptions *opt, Err *err);
/* Counts the words of one text (added tokens are cut out first, as the
 * encoder does, so they are never learned as merges). */
int bpe_train_feed(BpeTrainer *t, const char *text, size_t len, Err *err);
/* Learns merges and writes the tokenizer.json atomically. */
int bpe_train_finish(BpeTrainer *t, const char *out_path, Err *err);
/* Number of merges learned by the last finish. */
size_t bpe_train_n_merges(const BpeTrainer *t);
void bpe_train_free(BpeTrainer *t);

#endif
