/* libFuzzer target: st_open_buffer on arbitrary bytes must return an error
 * or a file whose every tensor lies inside the buffer; float tensors are
 * widened to f32 (touching every byte), other dtypes must be refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    StFile f;
    Err err;
    if (st_open_buffer(&f, data, size, "fuzz", &err) != 0) {
        if (!memchr(err.msg, 0, sizeof err.msg) || !err.msg[0]) abort(); /* an error has a message */
        return 0;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        if (t->data < data || t->nbytes > size || t->data + t->nbytes > data + size) abort();
        if ((size_t)t->numel * st_dtype_size(t->dtype) != t->nbytes) abort();
        if (st_find(&f, t->name) != t) abort();
        float *out = malloc(((size_t)t->numel ? (size_t)t->numel : 1) * sizeof(float));
        int rc = st_tensor_to_f32(t, out, "fuzz", &err);
        int is_float = t->dtype == ST_DTYPE_F32 || t->dtype == ST_DTYPE_BF16 || t->dtype == ST_DTYPE_F16;
        if ((rc == 0) != is_float) abort();
        free(out);
    }
    for (int i = 0; i < f.n_meta; i++)
        if (st_meta(&f, f.meta_keys[i]) == NULL) abort();
    st_close(&f);
    return 0;
}
