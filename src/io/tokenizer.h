/* Byte-level BPE tokenizers from Hugging Face tokenizer.json files (Qwen2,
 * Qwen2.5, Qwen3, DeepSeek-R1-Distill-Qwen, Llama 3, and files written by
 * bpe_train). Encoding reproduces HF `tokenizers` ids exactly:
 *   added tokens matched in raw text -> NFC (if the file asks) ->
 *   Split pre-tokenizer (pretokenize.h) -> byte-level BPE by merge rank.
 * A Tokenizer is immutable after loading except for its word cache, so use
 * one per thread for encoding; decoding is thread-safe. */
#ifndef R1C_IO_TOKENIZER_H
#define R1C_IO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct Tokenizer Tokenizer;

/* Growable id array; encode appends. Free ids with free(). */
typedef struct TokIds {
    int32_t *ids;
    size_t n, cap;
} TokIds;

/* Loads tokenizer.json; every error names the file and the problem. */
int tokenizer_load(Tokenizer **out, const char *path, Err *err);
/* Same from a buffer; `name` stands for the file in errors. */
int tokenizer_load_buf(Tokenizer **out, const char *buf, size_t len, const char *name, Err *err);
void tokenizer_free(Tokenizer *tok);

/* Appends the ids of text[0..len) to out. Text must be valid UTF-8 (the
 * error gives the byte offset otherwise); NUL bytes are ordinary chars. */
int tokenizer_encode(Tokenizer *tok, const char *text, size_t len, TokIds *out, Err *err);

/* Byte range [start, end) of the caller's text that each id came from,
 * parallel to TokIds (free start and end). Exact unless NFC changed the
 * text around the token; then the range is scaled within that stretch. */
typedef struct TokOffsets {
    size_t *start, *end;
    size_t n, cap;
} TokOffsets;

/* tokenizer_encode that also appends offsets (offs may be NULL). */
int tokenizer_encode_offsets(Tokenizer *tok, const char *text, size_t len, TokIds *out, TokOffsets *offs, Err *err);

/* Decodes ids to a malloc'd NUL-terminated string (*len excludes the NUL).
 * Invalid UTF-8 from partial tokens becomes U+FFFD, as HF does.
 * skip_special drops added tokens marked special (e.g. <|im_end|>). */
int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len,
                     Err *err);

/* Streaming decode for generation: push ids one at a time and get back the
 * text that is complete so far; bytes of a UTF-8 char split over tokens
 * are held until the char completes. */
typedef struct TokDecodeStream {
    const Tokenizer *tok;
    int skip_special;
    uint8_t pending[4];
    size_t n_pending;
} TokDecodeStream;

void tokenizer_stream_init(TokDecodeStream *st, const Tokenizer *tok, int skip_special);
/* Appends the newly completed text (NUL-terminated) to *buf (realloc'd;
 * len and cap track its size). */
int tokenizer_stream_push(TokDecodeStream *st, int32_t id, char **buf, size_t *len, size_t *cap, Err *err);
/* Emits what is still held (as U+FFFD) and resets the stream. */
int tokenizer_stream_finish(TokDecodeStream *st, char **buf, size_t *len, size_t *cap, Err *err);

/* Number of ids (max id + 1). */
int32_t tokenizer_vocab_size(const Tokenizer *tok);
/* Id of an added token's content (e.g. "<think>") or of a vocabulary
 * entry spelled as raw text; -1 if none. */
int32_t tokenizer_token_id(const Tokenizer *tok, const char *text);
/* 1 if id is an added token marked special. */
int tokenizer_is_special(const Tokenizer *tok, int32_t id);

int tokids_push(TokIds *v, int32_t id, Err *err);

#endif
