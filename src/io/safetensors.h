/* safetensors files: mmap'd, fully validated reader; deterministic atomic
 * writer; and sharded checkpoints (model.safetensors.index.json).
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data; offsets are relative to the
 * byte after the header. The reader enforces what the reference
 * implementation enforces: known dtype, shape x element size == byte
 * length, tensors tile the data region exactly (no gaps, no overlap). */
#ifndef R1C_IO_SAFETENSORS_H
#define R1C_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define ST_MAX_DIMS 8

typedef enum StDtype {
    ST_DTYPE_F32,
    ST_DTYPE_F16,
    ST_DTYPE_BF16,
    ST_DTYPE_F64,
    ST_DTYPE_I64,
    ST_DTYPE_I32,
    ST_DTYPE_I16,
    ST_DTYPE_I8,
    ST_DTYPE_U8,
    ST_DTYPE_BOOL,
    ST_DTYPE_COUNT
} StDtype;

const char *st_dtype_name(StDtype d);
size_t st_dtype_size(StDtype d);

typedef struct StTensor {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const uint8_t *data; /* points into the mapping */
} StTensor;

typedef struct StFile {
    char *path;
    uint8_t *map;
    size_t map_len;
    StTensor *tensors; /* sorted by name */
    int n_tensors;
    char **meta_keys, **meta_vals; /* __metadata__ (string -> string) */
    int n_meta;
} StFile;

int st_open(StFile *f, const char *path, Err *err);
/* Same checks on a buffer already in memory (fuzzing, tests); the buffer
 * must outlive f. */
int st_open_buffer(StFile *f, const uint8_t *buf, size_t len, const char *what, Err *err);
void st_close(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);
const char *st_meta(const StFile *f, const char *key);

/* Widens F32/BF16/F16 to f32 (out holds t->numel floats). */
int st_tensor_to_f32(const StTensor *t, float *out, const char *what, Err *err);

/* One tensor to write; data holds numel elements of dtype. */
typedef struct StWriteTensor {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteTensor;

/* Writes tensors sorted by name (header keys and data in that order), the
 * header padded with spaces to a multiple of 8, through an atomic temp
 * file. meta_keys/vals may be NULL. Output depends only on the inputs. */
int st_write(const char *path, const StWriteTensor *ts, int n, const char *const *meta_keys,
             const char *const *meta_vals, int n_meta, Err *err);

/* A checkpoint directory: model.safetensors, or the shards listed in
 * model.safetensors.index.json (every listed tensor must be in its shard;
 * every shard is validated). */
typedef struct StCheckpoint {
    StFile *files;
    int n_files;
    /* sorted (name, file index) over all files */
    const StTensor **index;
    int n_index;
} StCheckpoint;

int st_checkpoint_open(StCheckpoint *c, const char *dir, Err *err);
void st_checkpoint_close(StCheckpoint *c);
const StTensor *st_checkpoint_find(const StCheckpoint *c, const char *name);

/* bf16 <-> f32 (round to nearest even, NaN kept) and f16 -> f32. */
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
float st_f16_to_f32(uint16_t h);

#endif
