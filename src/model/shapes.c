/* Named shapes (see shapes.h). The real-model rows copy the published
 * config.json values of those checkpoints. */
#include "model/shapes.h"

#include <string.h>

typedef struct Shape {
    const char *name;
    ModelArch arch;
    int V, C, L, NH, KVH, HD, I, tie;
    double theta;
} Shape;

static const Shape SHAPES[] = {
    {"tiny", MODEL_ARCH_QWEN2, 4096, 256, 4, 8, 2, 32, 768, 1, 1e6},
    {"small", MODEL_ARCH_QWEN2, 8192, 512, 8, 8, 2, 64, 1536, 1, 1e6},
    {"qwen2.5-0.5b", MODEL_ARCH_QWEN2, 151936, 896, 24, 14, 2, 64, 4864, 1, 1e6},
    {"qwen2.5-1.5b", MODEL_ARCH_QWEN2, 151936, 1536, 28, 12, 2, 128, 8960, 1, 1e6},
    {"r1-distill-qwen-1.5b", MODEL_ARCH_QWEN2, 151936, 1536, 28, 12, 2, 128, 8960, 0, 1e4},
    {"qwen2.5-7b", MODEL_ARCH_QWEN2, 152064, 3584, 28, 28, 4, 128, 18944, 0, 1e6},
    {"qwen3-0.6b", MODEL_ARCH_QWEN3, 151936, 1024, 28, 16, 8, 128, 3072, 1, 1e6},
    {"llama3.2-1b", MODEL_ARCH_LLAMA, 128256, 2048, 16, 32, 8, 64, 8192, 1, 5e5},
};

const char *model_shape_names(void) {
    return "tiny, small, qwen2.5-0.5b, qwen2.5-1.5b, r1-distill-qwen-1.5b, qwen2.5-7b, qwen3-0.6b, llama3.2-1b";
}

int model_shape(ModelConfig *c, const char *name, Err *err) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const Shape *s = &SHAPES[i];
        if (strcmp(s->name, name) != 0) continue;
        memset(c, 0, sizeof *c);
        c->arch = s->arch;
        c->vocab_size = s->V, c->hidden = s->C, c->n_layers = s->L, c->n_heads = s->NH, c->n_kv_heads = s->KVH;
        c->head_dim = s->HD, c->intermediate = s->I, c->tie_embeddings = s->tie, c->rope_theta = s->theta;
        c->max_pos = 32768;
        c->rms_eps = 1e-6;
        c->qkv_bias = s->arch == MODEL_ARCH_QWEN2;
        c->qk_norm = s->arch == MODEL_ARCH_QWEN3;
        if (s->arch == MODEL_ARCH_LLAMA) {
            c->rms_eps = 1e-5;
            c->rope_type = ROPE_TYPE_LLAMA3;
            c->rope_factor = 32, c->rope_low_freq_factor = 1, c->rope_high_freq_factor = 4;
            c->rope_original_max_pos = 8192;
        }
        c->bos_id = -1;
        c->n_eos = 1;
        c->eos_ids[0] = s->V - 1;
        return 0;
    }
    return err_set(err, "unknown shape '%s' (known: %s)", name, model_shape_names());
}
