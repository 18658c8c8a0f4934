/* Parameter layout, HF checkpoint load/save and random init. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "base/rng.h"
#include "model/model.h"

static ParamInfo *add_param(Model *m, int *cap, const char *name, int64_t d0, int64_t d1, int decay) {
    if (m->n_params == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        m->params = realloc(m->params, *cap * sizeof *m->params);
    }
    ParamInfo *p = &m->params[m->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    p->offset = m->n_floats;
    p->decay = decay;
    m->n_floats += p->numel;
    return p;
}

/* Points a ModelParams at base using the layout in m->params (which was
 * built in the order below, so we can walk it); with `at`, parameter i is
 * at at[i] instead of base + its offset. */
static void bind(const Model *m, ModelParams *mp, float *base, float *const *at) {
    const ModelConfig *c = &m->cfg;
    int i = 0;
#define AT(j) (at ? at[j] : base + m->params[j].offset)
    mp->embed = AT(i), i++;
    for (int l = 0; l < c->n_layers; l++) {
        LayerParams *lp = &mp->layers[l];
        lp->attn_norm = AT(i), i++;
        lp->wqkv = AT(i);
        i += 3; /* q, k, v */
        lp->bqkv = NULL;
        if (c->qkv_bias) {
            lp->bqkv = AT(i);
            i += 3;
        }
        lp->q_norm = lp->k_norm = NULL;
        if (c->qk_norm) {
            lp->q_norm = AT(i), i++;
            lp->k_norm = AT(i), i++;
        }
        lp->wo = AT(i), i++;
        lp->mlp_norm = AT(i), i++;
        lp->w_gu = AT(i);
        i += 2; /* gate, up */
        lp->w_down = AT(i), i++;
    }
    mp->final_norm = AT(i), i++;
    mp->lm_head = c->tie_embeddings ? mp->embed : AT(i);
#undef AT
}

void model_layout(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const ModelConfig *c = cfg;
    int64_t C = c->hidden, HD = c->head_dim, I = c->intermediate, V = c->vocab_size;
    m->QD = c->n_heads * c->head_dim;
    m->KD = c->n_kv_heads * c->head_dim;
    m->QKVD = m->QD + 2 * m->KD;
    int cap = 0;
    char n[96];
    add_param(m, &cap, "model.embed_tokens.weight", V, C, 1);
    for (int l = 0; l < c->n_layers; l++) {
#define P(fmt, ...) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), add_param(m, &cap, n, __VA_ARGS__))
        P("input_layernorm.weight", C, 0, 0);
        P("self_attn.q_proj.weight", m->QD, C, 1);
        P("self_attn.k_proj.weight", m->KD, C, 1);
        P("self_attn.v_proj.weight", m->KD, C, 1);
        if (c->qkv_bias) {
            P("self_attn.q_proj.bias", m->QD, 0, 0);
            P("self_attn.k_proj.bias", m->KD, 0, 0);
            P("self_attn.v_proj.bias", m->KD, 0, 0);
        }
        if (c->qk_norm) {
            P("self_attn.q_norm.weight", HD, 0, 0);
            P("self_attn.k_norm.weight", HD, 0, 0);
        }
        P("self_attn.o_proj.weight", C, m->QD, 1);
        P("post_attention_layernorm.weight", C, 0, 0);
        P("mlp.gate_proj.weight", I, C, 1);
        P("mlp.up_proj.weight", I, C, 1);
        P("mlp.down_proj.weight", C, I, 1);
#undef P
    }
    add_param(m, &cap, "model.norm.weight", C, 0, 0);
    if (!c->tie_embeddings) add_param(m, &cap, "lm_head.weight", V, C, 1);
}

int model_create(Model *m, const ModelConfig *cfg, const Backend *be, Err *err) {
    model_layout(m, cfg);
    m->be = be;
    const ModelConfig *c = cfg;
    if (!m->params) return err_set(err, "out of memory for the parameter table");
    m->param_mem = be->alloc(m->n_floats * sizeof(float));
    m->w.layers = calloc(c->n_layers, sizeof(LayerParams));
    m->g.layers = calloc(c->n_layers, sizeof(LayerParams));
    if (!m->param_mem || !m->w.layers || !m->g.layers) {
        model_free(m);
        return err_set(err, "out of memory allocating %.1f MB of parameters", m->n_floats * 4.0 / 1e6);
    }
    bind(m, &m->w, m->param_mem, NULL);
    if (be->weights_hint) be->weights_hint(m->param_mem, m->n_floats);
    return model_rope_reserve(m, 256, err);
}

void model_free(Model *m) {
    if (!m->be) return;
    if (m->frozen && m->be->weights_hint) m->be->weights_hint(m->frozen, 0);
    m->be->free(m->frozen_small);
    m->be->free(m->param_mem);
    m->be->free(m->grad_mem);
    m->be->free(m->rope_cos);
    m->be->free(m->rope_sin);
    free(m->params);
    if (m->hf_json) json_decref(m->hf_json);
    free(m->w.layers);
    free(m->g.layers);
    memset(m, 0, sizeof *m);
}

int model_param_gemm_only(const Model *m, int i) { return i > 0 && m->params[i].ndim == 2; }

int model_freeze(Model *m, Err *err) {
    const Backend *be = m->be;
    if (!be || !be->weights_freeze || !m->param_mem || m->grad_mem || m->n_params < 2) return 0;
    /* The embedding comes first; the copy covers everything after it,
     * from a multiple of 8 floats so that every weight sits at the same
     * 16-byte alignment in it as in the unfrozen bf16 copy (GEMM kernel
     * choice depends on alignment: the same choice, the same bits). */
    size_t lo = m->params[1].offset & ~(size_t)7, n_small = 0;
    for (int i = 0; i < m->n_params; i++)
        if (!model_param_gemm_only(m, i)) n_small += m->params[i].numel;
    float **at = malloc(m->n_params * sizeof *at);
    float *small = at ? be->alloc(n_small * sizeof(float)) : NULL;
    if (!small) {
        free(at);
        return err_set(err, "out of memory freezing the reference model (%.1f MB)", n_small * 4.0 / 1e6);
    }
    const float *key = be->weights_freeze(m->param_mem + lo, m->n_floats - lo);
    if (!key) { /* not supported in this mode, or no room: stay fp32 */
        be->free(small);
        free(at);
        return 0;
    }
    size_t o = 0;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        if (model_param_gemm_only(m, i)) {
            at[i] = (float *)key + (p->offset - lo);
        } else {
            be->copy(small + o, m->param_mem + p->offset, p->numel * sizeof(float));
            at[i] = small + o;
            o += p->numel;
        }
    }
    bind(m, &m->w, NULL, at);
    free(at);
    be->free(m->param_mem); /* also drops its shadow */
    m->param_mem = NULL;
    m->frozen = key;
    m->frozen_small = small;
    /* a tied LM head is the fp32 embedding: GEMMs get a shadow of it */
    if (be->weights_hint) be->weights_hint(small, n_small);
    return 0;
}

int model_alloc_grads(Model *m, Err *err) {
    if (m->frozen) return err_set(err, "a frozen model has no gradients");
    if (m->grad_mem) return 0;
    m->grad_mem = m->be->alloc(m->n_floats * sizeof(float));
    if (!m->grad_mem) return err_set(err, "out of memory allocating gradients (%.1f MB)", m->n_floats * 4.0 / 1e6);
    bind(m, &m->g, m->grad_mem, NULL);
    return 0;
}

void model_zero_grads(Model *m) {
    if (m->grad_mem) m->be->zero(m->grad_mem, m->n_floats * sizeof(float));
}

const ParamInfo *model_find_param(const Model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

/* inv_freq as transformers computes it (float32), with llama3 scaling. */
static void rope_inv_freq(const ModelConfig *c, float *inv) {
    int HD = c->head_dim;
    for (int i = 0; i < HD / 2; i++) {
        float e = (float)(2 * i) / (float)HD;
        inv[i] = 1.0f / powf((float)c->rope_theta, e);
    }
    if (c->rope_type != ROPE_TYPE_LLAMA3) return;
    double old = c->rope_original_max_pos;
    double low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
    for (int i = 0; i < HD / 2; i++) {
        double f = inv[i], wl = 2 * M_PI / f;
        if (wl < high_wl) continue;
        if (wl > low_wl) inv[i] = (float)(f / c->rope_factor);
        else {
            double smooth = (old / wl - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
            inv[i] = (float)((1 - smooth) * f / c->rope_factor + smooth * f);
        }
    }
}

/* Tables are computed on the host (double cos/sin of a float angle, as
 * before) and uploaded: the ops read them from backend memory. */
int model_rope_reserve(Model *m, int len, Err *err) {
    if (len <= m->rope_len) return 0;
    const Backend *be = m->be;
    int half = m->cfg.head_dim / 2;
    int n = len > 2 * m->rope_len ? len : 2 * m->rope_len;
    size_t bytes = (size_t)n * half * sizeof(float);
    float *hc = malloc(bytes ? bytes : 1), *hs = malloc(bytes ? bytes : 1);
    float *c = be->alloc(bytes), *s = be->alloc(bytes);
    if (!hc || !hs || !c || !s) {
        free(hc), free(hs), be->free(c), be->free(s);
        return err_set(err, "out of memory for RoPE tables of %d positions", n);
    }
    float inv[512];
    rope_inv_freq(&m->cfg, inv);
    for (int p = 0; p < n; p++)
        for (int i = 0; i < half; i++) {
            float ang = (float)p * inv[i]; /* float32 product, as transformers */
            hc[(size_t)p * half + i] = (float)cos((double)ang);
            hs[(size_t)p * half + i] = (float)sin((double)ang);
        }
    be->upload(c, hc, bytes);
    be->upload(s, hs, bytes);
    free(hc), free(hs);
    be->free(m->rope_cos), be->free(m->rope_sin);
    m->rope_cos = c, m->rope_sin = s;
    m->rope_len = n;
    return 0;
}

int model_load_weights(Model *m, const StCheckpoint *ck, const char *what, Err *err) {
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        const StTensor *t = st_checkpoint_find(ck, p->name);
        if (!t) return err_set(err, "%s: missing tensor '%s'", what, p->name);
        int ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
        if (!ok) {
            char got[128] = "";
            for (int d = 0; d < t->ndim && d < 4; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            return err_set(err, "%s: tensor '%s' has shape [%s], config.json implies [%lld%s%lld]", what, p->name,
                           got, (long long)p->shape[0], p->ndim == 2 ? ", " : "",
                           p->ndim == 2 ? (long long)p->shape[1] : 0LL);
        }
        /* Converted on the host, then uploaded tensor by tensor (a staging
         * buffer the size of the largest tensor, not of the model). */
        float *host = malloc(p->numel * sizeof(float));
        if (!host) return err_set(err, "%s: out of memory staging '%s'", what, p->name);
        int rc = st_tensor_to_f32(t, host, what, err);
        if (!rc) m->be->upload(m->param_mem + p->offset, host, p->numel * sizeof(float));
        free(host);
        if (rc) return -1;
    }
    return 0;
}

int model_load(Model *m, const char *dir, const Backend *be, Err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ModelConfig cfg;
    json_t *root = json_load_path(path, err);
    if (!root) return -1;
    if (hf_config_parse(&cfg, root, path, err) != 0 || model_create(m, &cfg, be, err) != 0) {
        json_decref(root);
        return -1;
    }
    m->hf_json = root;
    StCheckpoint ck;
    if (st_checkpoint_open(&ck, dir, err) != 0) {
        model_free(m);
        return -1;
    }
    int rc = model_load_weights(m, &ck, dir, err);
    st_checkpoint_close(&ck);
    if (rc) model_free(m);
    return rc;
}

int model_init_random(Model *m, uint64_t seed, float std, Err *err) {
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        float *d = malloc(p->numel * sizeof(float)); /* generated on the host, then uploaded */
        if (!d) return err_set(err, "out of memory initialising '%s'", p->name);
        Rng r;
        rng_split(&r, seed, (uint64_t)i);
        int is_norm = strstr(p->name, "norm") != NULL;
        for (size_t j = 0; j < p->numel; j++) d[j] = is_norm ? 1.0f : p->ndim == 1 ? 0.0f : std * rng_normal(&r);
        m->be->upload(m->param_mem + p->offset, d, p->numel * sizeof(float));
        free(d);
    }
    return 0;
}

int model_save(const Model *m, const char *dir, StDtype dtype, Err *err) {
    if (dtype != ST_DTYPE_F32 && dtype != ST_DTYPE_BF16) return err_set(err, "model_save: dtype must be F32 or BF16");
    if (dir_make(dir, err) != 0) return -1;
    StWriteTensor *ts = calloc(m->n_params, sizeof *ts);
    uint16_t *bf = NULL;
    if (dtype == ST_DTYPE_BF16) bf = malloc(m->n_floats * sizeof(uint16_t));
    float *host = malloc(m->n_floats * sizeof(float)); /* the parameters, downloaded */
    if (!ts || !host || (dtype == ST_DTYPE_BF16 && !bf)) {
        free(ts), free(bf), free(host);
        return err_set(err, "%s: out of memory", dir);
    }
    m->be->download(host, m->param_mem, m->n_floats * sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        ts[i].name = p->name;
        ts[i].dtype = dtype;
        ts[i].ndim = p->ndim;
        ts[i].shape[0] = p->shape[0];
        ts[i].shape[1] = p->shape[1];
        if (bf) {
            for (size_t j = 0; j < p->numel; j++) bf[p->offset + j] = st_f32_to_bf16(host[p->offset + j]);
            ts[i].data = bf + p->offset;
        } else ts[i].data = host + p->offset;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    int rc = st_write(path, ts, m->n_params, mk, mv, 1, err);
    free(ts);
    free(bf);
    free(host);
    if (rc) return -1;
    /* Keep the config a checkpoint came with (every key transformers and
     * other tools read), changing only the dtype keys to what we wrote. */
    json_t *cj = m->hf_json ? json_deep_copy(m->hf_json) : hf_config_to_json(&m->cfg);
    const char *dt = dtype == ST_DTYPE_BF16 ? "bfloat16" : "float32";
    json_object_set_new(cj, "torch_dtype", json_string(dt)); /* transformers < 4.56 */
    json_object_set_new(cj, "dtype", json_string(dt));       /* transformers >= 4.56 */
    snprintf(path, sizeof path, "%s/config.json", dir);
    rc = json_save_path(cj, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17), path, err);
    json_decref(cj);
    return rc;
}
