/* config.json parsing and writing (see hf_config.h). */
#include "io/hf_config.h"

#include <string.h>

#include "base/json.h"

const char *model_arch_name(ModelArch a) {
    switch (a) {
    case MODEL_ARCH_QWEN2: return "Qwen2ForCausalLM";
    case MODEL_ARCH_LLAMA: return "LlamaForCausalLM";
    case MODEL_ARCH_QWEN3: return "Qwen3ForCausalLM";
    }
    return "?";
}

static const char *model_type_name(ModelArch a) {
    switch (a) {
    case MODEL_ARCH_QWEN2: return "qwen2";
    case MODEL_ARCH_LLAMA: return "llama";
    case MODEL_ARCH_QWEN3: return "qwen3";
    }
    return "?";
}

static int get_int(const json_t *o, const char *k, int *out, int required, int lo, int hi, const char *what,
                   Err *err) {
    int64_t v;
    int rc = json_get_i64(o, k, &v, what, err);
    if (rc < 0) return -1;
    if (rc == 1) return required ? err_set(err, "%s: missing key '%s'", what, k) : 0;
    if (v < lo || v > hi) return err_set(err, "%s: key '%s' = %lld is outside [%d, %d]", what, k, (long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

static int get_num(const json_t *o, const char *k, double *out, const char *what, Err *err) {
    int rc = json_get_f64(o, k, out, what, err);
    return rc < 0 ? -1 : 0;
}

/* rope: either legacy keys or rope_parameters {rope_type, rope_theta, ...}. */
static int parse_rope(ModelConfig *c, const json_t *root, const char *what, Err *err) {
    const json_t *rp = json_object_get(root, "rope_parameters");
    const json_t *rs = json_object_get(root, "rope_scaling");
    const json_t *scaling = NULL;
    c->rope_theta = 10000.0;
    if (rp && !json_is_null(rp)) {
        if (!json_is_object(rp)) return err_set(err, "%s: key 'rope_parameters' must be an object", what);
        if (get_num(rp, "rope_theta", &c->rope_theta, what, err)) return -1;
        scaling = rp;
    } else {
        if (get_num(root, "rope_theta", &c->rope_theta, what, err)) return -1;
        if (rs && !json_is_null(rs)) {
            if (!json_is_object(rs)) return err_set(err, "%s: key 'rope_scaling' must be an object or null", what);
            scaling = rs;
        }
    }
    if (!(c->rope_theta > 0)) return err_set(err, "%s: rope_theta must be positive", what);
    c->rope_type = ROPE_TYPE_DEFAULT;
    if (!scaling) return 0;
    const char *type = NULL;
    if (json_get_str(scaling, "rope_type", &type, what, err) < 0) return -1;
    if (!type && json_get_str(scaling, "type", &type, what, err) < 0) return -1;
    if (!type || !strcmp(type, "default")) return 0;
    if (strcmp(type, "llama3") != 0)
        return err_set(err, "%s: rope type '%s' is not supported (supported: default, llama3)", what, type);
    c->rope_type = ROPE_TYPE_LLAMA3;
    c->rope_factor = 8, c->rope_low_freq_factor = 1, c->rope_high_freq_factor = 4;
    c->rope_original_max_pos = 8192;
    if (get_num(scaling, "factor", &c->rope_factor, what, err) ||
        get_num(scaling, "low_freq_factor", &c->rope_low_freq_factor, what, err) ||
        get_num(scaling, "high_freq_factor", &c->rope_high_freq_factor, what, err) ||
        get_int(scaling, "original_max_position_embeddings", &c->rope_original_max_pos, 0, 1, 1 << 30, what, err))
        return -1;
    if (!(c->rope_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return err_set(err, "%s: llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor", what);
    return 0;
}

/* Ids outside [0, vocab) are dropped; checked before narrowing to int. */
static void add_eos(ModelConfig *c, json_int_t v) {
    if (v >= 0 && v < c->vocab_size && c->n_eos < MODEL_MAX_EOS) c->eos_ids[c->n_eos++] = (int)v;
}

static int parse_token_ids(ModelConfig *c, const json_t *root, const char *what, Err *err) {
    c->bos_id = -1;
    c->n_eos = 0;
    json_t *b = json_object_get(root, "bos_token_id");
    if (json_is_integer(b) && json_integer_value(b) >= 0 && json_integer_value(b) < c->vocab_size)
        c->bos_id = (int)json_integer_value(b);
    json_t *e = json_object_get(root, "eos_token_id");
    if (json_is_integer(e)) add_eos(c, json_integer_value(e));
    else if (json_is_array(e)) {
        size_t i;
        json_t *x;
        json_array_foreach(e, i, x) {
            if (!json_is_integer(x)) return err_set(err, "%s: eos_token_id[%zu] is not an integer", what, i);
            add_eos(c, json_integer_value(x));
        }
    } else if (e && !json_is_null(e)) return err_set(err, "%s: eos_token_id must be an integer or a list", what);
    return 0;
}

int hf_config_parse(ModelConfig *c, const json_t *root, const char *what, Err *err) {
    memset(c, 0, sizeof *c);
    if (!json_is_object(root)) return err_set(err, "%s: not a JSON object", what);
    const json_t *archs = json_object_get(root, "architectures");
    const char *arch = NULL;
    if (json_is_array(archs) && json_array_size(archs) >= 1 && json_is_string(json_array_get(archs, 0)))
        arch = json_string_value(json_array_get(archs, 0));
    const char *mt = NULL;
    if (json_get_str(root, "model_type", &mt, what, err) < 0) return -1;
    if (arch ? !strcmp(arch, "Qwen2ForCausalLM") : (mt && !strcmp(mt, "qwen2"))) c->arch = MODEL_ARCH_QWEN2;
    else if (arch ? !strcmp(arch, "LlamaForCausalLM") : (mt && !strcmp(mt, "llama"))) c->arch = MODEL_ARCH_LLAMA;
    else if (arch ? !strcmp(arch, "Qwen3ForCausalLM") : (mt && !strcmp(mt, "qwen3"))) c->arch = MODEL_ARCH_QWEN3;
    else
        return err_set(err, "%s: unknown architecture '%s' (supported: Qwen2ForCausalLM, LlamaForCausalLM, "
                       "Qwen3ForCausalLM)", what, arch ? arch : mt ? mt : "(none given)");
    const int BIG = 1 << 24;
    if (get_int(root, "vocab_size", &c->vocab_size, 1, 1, BIG, what, err) ||
        get_int(root, "hidden_size", &c->hidden, 1, 1, 1 << 16, what, err) ||
        get_int(root, "num_hidden_layers", &c->n_layers, 1, 1, 1024, what, err) ||
        get_int(root, "num_attention_heads", &c->n_heads, 1, 1, 1024, what, err) ||
        get_int(root, "intermediate_size", &c->intermediate, 1, 1, 1 << 20, what, err))
        return -1;
    c->n_kv_heads = c->n_heads;
    if (get_int(root, "num_key_value_heads", &c->n_kv_heads, 0, 1, 1024, what, err)) return -1;
    if (c->n_heads % c->n_kv_heads)
        return err_set(err, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", what,
                       c->n_heads, c->n_kv_heads);
    c->head_dim = c->hidden / c->n_heads;
    if (get_int(root, "head_dim", &c->head_dim, 0, 2, 1024, what, err)) return -1;
    /* also when defaulted to hidden / heads, which the key's range did not check */
    if (c->head_dim < 2 || c->head_dim > 1024 || c->head_dim % 2)
        return err_set(err, "%s: head_dim %d must be even and in [2, 1024] (rotary embeddings)", what, c->head_dim);
    if (c->arch != MODEL_ARCH_QWEN3 && c->head_dim * c->n_heads != c->hidden &&
        !json_object_get(root, "head_dim"))
        return err_set(err, "%s: hidden_size %d is not divisible by num_attention_heads %d", what, c->hidden, c->n_heads);
    c->max_pos = 32768;
    if (get_int(root, "max_position_embeddings", &c->max_pos, 0, 1, 1 << 30, what, err)) return -1;
    double eps = 1e-6;
    if (get_num(root, "rms_norm_eps", &eps, what, err)) return -1;
    c->rms_eps = eps;
    c->tie_embeddings = 0;
    if (json_get_bool(root, "tie_word_embeddings", &c->tie_embeddings, what, err) < 0) return -1;
    int hidden_act_ok = 1;
    const char *act = NULL;
    if (json_get_str(root, "hidden_act", &act, what, err) < 0) return -1;
    if (act && strcmp(act, "silu") != 0) hidden_act_ok = 0;
    if (!hidden_act_ok) return err_set(err, "%s: hidden_act '%s' is not supported (only silu)", what, act);
    int flag = 0;
    switch (c->arch) {
    case MODEL_ARCH_QWEN2:
        c->qkv_bias = 1;
        if (json_get_bool(root, "use_sliding_window", &flag, what, err) < 0) return -1;
        if (flag) return err_set(err, "%s: use_sliding_window=true is not supported", what);
        break;
    case MODEL_ARCH_LLAMA:
    case MODEL_ARCH_QWEN3:
        c->qk_norm = c->arch == MODEL_ARCH_QWEN3;
        if (json_get_bool(root, "attention_bias", &flag, what, err) < 0) return -1;
        if (flag) return err_set(err, "%s: attention_bias=true is not supported", what);
        if (json_get_bool(root, "mlp_bias", &flag, what, err) < 0) return -1;
        if (flag) return err_set(err, "%s: mlp_bias=true is not supported", what);
        if (c->arch == MODEL_ARCH_QWEN3) {
            if (json_get_bool(root, "use_sliding_window", &flag, what, err) < 0) return -1;
            if (flag) return err_set(err, "%s: use_sliding_window=true is not supported", what);
        }
        break;
    }
    if (parse_rope(c, root, what, err)) return -1;
    return parse_token_ids(c, root, what, err);
}

int hf_config_load(ModelConfig *cfg, const char *path, Err *err) {
    json_t *root = json_load_path(path, err);
    if (!root) return -1;
    int rc = hf_config_parse(cfg, root, path, err);
    json_decref(root);
    return rc;
}

json_t *hf_config_to_json(const ModelConfig *c) {
    json_t *o = json_object();
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(model_arch_name(c->arch)));
    json_object_set_new(o, "architectures", archs);
    json_object_set_new(o, "model_type", json_string(model_type_name(c->arch)));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_pos));
    json_object_set_new(o, "rms_norm_eps", json_real(c->rms_eps));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
    if (c->rope_type == ROPE_TYPE_LLAMA3) {
        json_t *s = json_object();
        json_object_set_new(s, "rope_type", json_string("llama3"));
        json_object_set_new(s, "factor", json_real(c->rope_factor));
        json_object_set_new(s, "low_freq_factor", json_real(c->rope_low_freq_factor));
        json_object_set_new(s, "high_freq_factor", json_real(c->rope_high_freq_factor));
        json_object_set_new(s, "original_max_position_embeddings", json_integer(c->rope_original_max_pos));
        json_object_set_new(o, "rope_scaling", s);
    } else json_object_set_new(o, "rope_scaling", json_null());
    if (c->arch == MODEL_ARCH_LLAMA) {
        json_object_set_new(o, "attention_bias", json_false());
        json_object_set_new(o, "mlp_bias", json_false());
    }
    if (c->arch != MODEL_ARCH_LLAMA) json_object_set_new(o, "use_sliding_window", json_false());
    if (c->arch == MODEL_ARCH_QWEN3) json_object_set_new(o, "attention_bias", json_false());
    if (c->bos_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos_id));
    if (c->n_eos == 1) json_object_set_new(o, "eos_token_id", json_integer(c->eos_ids[0]));
    else if (c->n_eos > 1) {
        json_t *e = json_array();
        for (int i = 0; i < c->n_eos; i++) json_array_append_new(e, json_integer(c->eos_ids[i]));
        json_object_set_new(o, "eos_token_id", e);
    }
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    return o;
}
