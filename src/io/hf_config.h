/* Hugging Face config.json for the architectures r1c runs:
 * Qwen2ForCausalLM (QKV bias), LlamaForCausalLM (rope_scaling llama3),
 * Qwen3ForCausalLM (q_norm/k_norm, explicit head_dim). Accepts the legacy
 * `rope_theta` + `rope_scaling` keys and the newer `rope_parameters`. */
#ifndef R1C_IO_HF_CONFIG_H
#define R1C_IO_HF_CONFIG_H

#include <jansson.h>

#include "base/err.h"

typedef enum ModelArch { MODEL_ARCH_QWEN2, MODEL_ARCH_LLAMA, MODEL_ARCH_QWEN3 } ModelArch;
typedef enum RopeType { ROPE_TYPE_DEFAULT, ROPE_TYPE_LLAMA3 } RopeType;

#define MODEL_MAX_EOS 8

typedef struct ModelConfig {
    ModelArch arch;
    int vocab_size;   /* V */
    int hidden;       /* C */
    int n_layers;     /* L */
    int n_heads;      /* NH */
    int n_kv_heads;   /* KVH, divides NH */
    int head_dim;     /* HD */
    int intermediate; /* I */
    int max_pos;
    double rms_eps;
    int tie_embeddings;
    int qkv_bias; /* Qwen2 */
    int qk_norm;  /* Qwen3 */
    RopeType rope_type;
    double rope_theta;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int bos_id; /* -1 if none */
    int eos_ids[MODEL_MAX_EOS];
    int n_eos;
} ModelConfig;

const char *model_arch_name(ModelArch a); /* "Qwen2ForCausalLM", ... */

/* Parses and validates config.json; errors name the file and the key. */
int hf_config_load(ModelConfig *cfg, const char *path, Err *err);
int hf_config_parse(ModelConfig *cfg, const json_t *root, const char *what, Err *err);
/* A config.json object for cfg, in the layout transformers writes
 * (legacy rope_theta/rope_scaling keys, which every version reads). */
json_t *hf_config_to_json(const ModelConfig *cfg);

#endif
