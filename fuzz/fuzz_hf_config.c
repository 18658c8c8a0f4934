/* libFuzzer target: json_load_buf + hf_config_parse on arbitrary bytes.
 * An accepted config must satisfy the invariants the model code relies on
 * and survive hf_config_to_json -> hf_config_parse unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "io/hf_config.h"

static void check_invariants(const ModelConfig *c) {
    if (c->vocab_size < 1 || c->hidden < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 ||
        c->intermediate < 1 || c->max_pos < 1)
        abort();
    if (c->n_heads % c->n_kv_heads || c->head_dim < 2 || c->head_dim % 2) abort();
    if (!(c->rope_theta > 0)) abort();
    if (c->n_eos < 0 || c->n_eos > MODEL_MAX_EOS) abort();
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] < 0 || c->eos_ids[i] >= c->vocab_size) abort();
    if (c->bos_id < -1 || c->bos_id >= c->vocab_size) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Err err;
    json_t *root = json_load_buf((const char *)data, size, "fuzz", &err);
    if (!root) return 0;
    ModelConfig c;
    if (hf_config_parse(&c, root, "fuzz", &err) == 0) {
        check_invariants(&c);
        json_t *o = hf_config_to_json(&c);
        ModelConfig back;
        if (hf_config_parse(&back, o, "fuzz-roundtrip", &err) != 0) abort();
        /* memcmp is fine (hf_config_parse memsets) once the unused tail of
         * eos_ids, where dropped ids may linger, is cleared */
        for (int i = c.n_eos; i < MODEL_MAX_EOS; i++) c.eos_ids[i] = 0;
        for (int i = back.n_eos; i < MODEL_MAX_EOS; i++) back.eos_ids[i] = 0;
        if (memcmp(&c, &back, sizeof c) != 0) abort();
        json_decref(o);
    }
    json_decref(root);
    return 0;
}
