/* io/hf_config: the config.json layouts of Qwen2 / Llama 3 / Qwen3 (legacy
 * rope_theta + rope_scaling and the newer rope_parameters), refusals with
 * messages that name the file and the key, the committed fixtures, and
 * hf_config_to_json -> hf_config_parse giving back the same ModelConfig. */
#include <stdlib.h>
#include <unistd.h>

#include "base/json.h"
#include "io/hf_config.h"
#include "check.h"

static const char *QWEN2 =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"vocab_size\": 151936,"
    " \"hidden_size\": 1536, \"num_hidden_layers\": 28, \"num_attention_heads\": 12, \"num_key_value_heads\": 2,"
    " \"intermediate_size\": 8960, \"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-06,"
    " \"rope_theta\": 10000.0, \"rope_scaling\": null, \"hidden_act\": \"silu\", \"tie_word_embeddings\": false,"
    " \"use_sliding_window\": false, \"sliding_window\": 4096, \"bos_token_id\": 151643, \"eos_token_id\": 151643,"
    " \"torch_dtype\": \"bfloat16\"}";

static const char *LLAMA3 =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 128256,"
    " \"hidden_size\": 2048, \"num_hidden_layers\": 16, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
    " \"intermediate_size\": 8192, \"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-05,"
    " \"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0,"
    " \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"
    " \"hidden_act\": \"silu\", \"tie_word_embeddings\": true, \"attention_bias\": false, \"mlp_bias\": false,"
    " \"head_dim\": 64, \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009]}";

/* transformers >= 5 layout: rope_parameters, no top-level rope_theta */
static const char *QWEN3 =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", \"vocab_size\": 151936,"
    " \"hidden_size\": 1024, \"num_hidden_layers\": 28, \"num_attention_heads\": 16, \"num_key_value_heads\": 8,"
    " \"head_dim\": 128, \"intermediate_size\": 3072, \"max_position_embeddings\": 40960, \"rms_norm_eps\": 1e-06,"
    " \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}, \"hidden_act\": \"silu\","
    " \"tie_word_embeddings\": true, \"attention_bias\": false, \"use_sliding_window\": false,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645}";

static json_t *load(const char *text) {
    Err err = {{0}};
    json_t *j = json_load_buf(text, strlen(text), "inline", &err);
    if (!j) fprintf(stderr, "bad test JSON: %s\n", err.msg);
    return j;
}

static int same_config(const ModelConfig *a, const ModelConfig *b) {
    int ok = a->arch == b->arch && a->vocab_size == b->vocab_size && a->hidden == b->hidden &&
             a->n_layers == b->n_layers && a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads &&
             a->head_dim == b->head_dim && a->intermediate == b->intermediate && a->max_pos == b->max_pos &&
             a->rms_eps == b->rms_eps && a->tie_embeddings == b->tie_embeddings && a->qkv_bias == b->qkv_bias &&
             a->qk_norm == b->qk_norm && a->rope_type == b->rope_type && a->rope_theta == b->rope_theta &&
             a->rope_factor == b->rope_factor && a->rope_low_freq_factor == b->rope_low_freq_factor &&
             a->rope_high_freq_factor == b->rope_high_freq_factor &&
             a->rope_original_max_pos == b->rope_original_max_pos && a->bos_id == b->bos_id && a->n_eos == b->n_eos;
    for (int i = 0; ok && i < a->n_eos; i++) ok = a->eos_ids[i] == b->eos_ids[i];
    return ok;
}

/* hf_config_to_json(cfg) must parse back to cfg, and survive a dump/load */
static void check_roundtrip(const ModelConfig *c, const char *label) {
    json_t *o = hf_config_to_json(c);
    CHECK(o != NULL);
    ModelConfig back;
    Err err = {{0}};
    CHECKF(hf_config_parse(&back, o, label, &err) == 0, "%s: re-parse failed: %s", label, err.msg);
    CHECKF(same_config(c, &back), "%s: to_json -> parse differs", label);
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(2));
    json_t *o2 = json_load_buf(s, strlen(s), label, &err);
    CHECKF(o2 && hf_config_parse(&back, o2, label, &err) == 0 && same_config(c, &back), "%s: dump/load", label);
    free(s);
    json_decref(o2);
    json_decref(o);
}

static void test_layouts(void) {
    ModelConfig c;
    Err err = {{0}};

    json_t *j = load(QWEN2);
    CHECKF(hf_config_parse(&c, j, "qwen2.json", &err) == 0, "%s", err.msg);
    CHECK(c.arch == MODEL_ARCH_QWEN2 && !strcmp(model_arch_name(c.arch), "Qwen2ForCausalLM"));
    CHECK(c.vocab_size == 151936 && c.hidden == 1536 && c.n_layers == 28 && c.n_heads == 12 && c.n_kv_heads == 2);
    CHECK(c.head_dim == 128 && c.intermediate == 8960 && c.max_pos == 131072);
    CHECK(c.rms_eps == 1e-6 && c.rope_theta == 10000.0 && c.rope_type == ROPE_TYPE_DEFAULT);
    CHECK(c.qkv_bias == 1 && c.qk_norm == 0 && c.tie_embeddings == 0);
    CHECK(c.bos_id == 151643 && c.n_eos == 1 && c.eos_ids[0] == 151643);
    check_roundtrip(&c, "qwen2");
    /* the same with rope_parameters instead of the legacy keys */
    json_object_del(j, "rope_theta");
    json_object_del(j, "rope_scaling");
    json_object_set_new(j, "rope_parameters", load("{\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}"));
    CHECKF(hf_config_parse(&c, j, "qwen2b.json", &err) == 0, "%s", err.msg);
    CHECK(c.rope_theta == 1e6 && c.rope_type == ROPE_TYPE_DEFAULT);
    /* rope_parameters wins over a stale top-level rope_theta */
    json_object_set_new(j, "rope_theta", json_real(10000.0));
    CHECKF(hf_config_parse(&c, j, "qwen2c.json", &err) == 0, "%s", err.msg);
    CHECK(c.rope_theta == 1e6);
    /* defaults when optional keys are absent */
    json_object_del(j, "rope_parameters");
    json_object_del(j, "rope_theta");
    json_object_del(j, "num_key_value_heads");
    json_object_del(j, "max_position_embeddings");
    json_object_del(j, "rms_norm_eps");
    json_object_del(j, "bos_token_id");
    json_object_del(j, "eos_token_id");
    json_object_del(j, "hidden_act");
    json_object_del(j, "architectures"); /* model_type alone identifies it */
    CHECKF(hf_config_parse(&c, j, "qwen2d.json", &err) == 0, "%s", err.msg);
    CHECK(c.arch == MODEL_ARCH_QWEN2 && c.n_kv_heads == 12 && c.rope_theta == 10000.0 && c.max_pos > 0);
    CHECK(c.rms_eps == 1e-6 && c.bos_id == -1 && c.n_eos == 0);
    check_roundtrip(&c, "qwen2-defaults");
    json_decref(j);

    j = load(LLAMA3);
    CHECKF(hf_config_parse(&c, j, "llama.json", &err) == 0, "%s", err.msg);
    CHECK(c.arch == MODEL_ARCH_LLAMA && !strcmp(model_arch_name(c.arch), "LlamaForCausalLM"));
    CHECK(c.vocab_size == 128256 && c.hidden == 2048 && c.n_heads == 32 && c.n_kv_heads == 8 && c.head_dim == 64);
    CHECK(c.rms_eps == 1e-5 && c.rope_theta == 500000.0 && c.tie_embeddings == 1);
    CHECK(c.rope_type == ROPE_TYPE_LLAMA3 && c.rope_factor == 32.0 && c.rope_low_freq_factor == 1.0 &&
          c.rope_high_freq_factor == 4.0 && c.rope_original_max_pos == 8192);
    CHECK(c.qkv_bias == 0 && c.qk_norm == 0);
    CHECK(c.bos_id == 128000 && c.n_eos == 3 && c.eos_ids[0] == 128001 && c.eos_ids[1] == 128008 &&
          c.eos_ids[2] == 128009);
    check_roundtrip(&c, "llama3");
    /* llama3 scaling inside rope_parameters (transformers 5) */
    json_object_del(j, "rope_theta");
    json_object_del(j, "rope_scaling");
    json_object_set_new(j, "rope_parameters",
                        load("{\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 8.0, "
                             "\"low_freq_factor\": 2.0, \"high_freq_factor\": 8.0, "
                             "\"original_max_position_embeddings\": 4096}"));
    CHECKF(hf_config_parse(&c, j, "llama-rp.json", &err) == 0, "%s", err.msg);
    CHECK(c.rope_type == ROPE_TYPE_LLAMA3 && c.rope_theta == 500000.0 && c.rope_factor == 8.0 &&
          c.rope_low_freq_factor == 2.0 && c.rope_high_freq_factor == 8.0 && c.rope_original_max_pos == 4096);
    check_roundtrip(&c, "llama3-rope_parameters");
    /* legacy "type" key; explicit head_dim != hidden / heads */
    json_object_set_new(j, "rope_parameters", load("{\"type\": \"default\", \"rope_theta\": 5.0}"));
    json_object_set_new(j, "head_dim", json_integer(128));
    CHECKF(hf_config_parse(&c, j, "llama-hd.json", &err) == 0, "%s", err.msg);
    CHECK(c.rope_type == ROPE_TYPE_DEFAULT && c.rope_theta == 5.0 && c.head_dim == 128);
    check_roundtrip(&c, "llama-head_dim");
    /* out-of-range eos ids are dropped, integral floats accepted as ints */
    json_object_set_new(j, "eos_token_id", load("[5, 999999999, -1, 7]"));
    json_object_set_new(j, "hidden_size", json_real(2048.0));
    CHECKF(hf_config_parse(&c, j, "llama-eos.json", &err) == 0, "%s", err.msg);
    CHECK(c.n_eos == 2 && c.eos_ids[0] == 5 && c.eos_ids[1] == 7 && c.hidden == 2048); /* order kept */
    /* ids that would wrap when narrowed to int are dropped, not misread */
    json_object_set_new(j, "eos_token_id", load("[4294967298, 9]"));
    json_object_set_new(j, "bos_token_id", json_integer(4294967297LL));
    CHECKF(hf_config_parse(&c, j, "llama-wrap.json", &err) == 0, "%s", err.msg);
    CHECK(c.n_eos == 1 && c.eos_ids[0] == 9 && c.bos_id == -1);
    json_object_set_new(j, "bos_token_id", json_integer(-5));
    json_object_set_new(j, "eos_token_id", json_integer(-2));
    CHECKF(hf_config_parse(&c, j, "llama-neg.json", &err) == 0, "%s", err.msg);
    CHECK(c.bos_id == -1 && c.n_eos == 0);
    /* more than MODEL_MAX_EOS valid ids: the first ones are kept */
    json_object_set_new(j, "eos_token_id", load("[-1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"));
    CHECKF(hf_config_parse(&c, j, "llama-many.json", &err) == 0, "%s", err.msg);
    CHECK(c.n_eos == MODEL_MAX_EOS && c.eos_ids[0] == 1 && c.eos_ids[MODEL_MAX_EOS - 1] == MODEL_MAX_EOS);
    json_decref(j);

    j = load(QWEN3);
    CHECKF(hf_config_parse(&c, j, "qwen3.json", &err) == 0, "%s", err.msg);
    CHECK(c.arch == MODEL_ARCH_QWEN3 && !strcmp(model_arch_name(c.arch), "Qwen3ForCausalLM"));
    CHECK(c.hidden == 1024 && c.n_heads == 16 && c.n_kv_heads == 8 && c.head_dim == 128); /* 16*128 != 1024 */
    CHECK(c.qk_norm == 1 && c.qkv_bias == 0 && c.tie_embeddings == 1);
    CHECK(c.rope_theta == 1e6 && c.rope_type == ROPE_TYPE_DEFAULT);
    CHECK(c.bos_id == 151643 && c.n_eos == 1 && c.eos_ids[0] == 151645);
    check_roundtrip(&c, "qwen3");
    /* top-level rope_theta layout */
    json_object_del(j, "rope_parameters");
    json_object_set_new(j, "rope_theta", json_integer(1000000)); /* an integer is a number too */
    json_object_set_new(j, "rope_scaling", json_null());
    CHECKF(hf_config_parse(&c, j, "qwen3b.json", &err) == 0, "%s", err.msg);
    CHECK(c.rope_theta == 1e6);
    json_decref(j);
}

/* any JSON value, scalars included */
static json_t *load_any(const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j) fprintf(stderr, "bad test JSON %s: %s\n", text, je.text);
    return j;
}

/* base JSON with one key set (value given as JSON text) or removed */
static void expect_refused(const char *base, const char *key, const char *value_json, const char *want1,
                           const char *want2) {
    json_t *j = load(base);
    if (value_json) json_object_set_new(j, key, load_any(value_json));
    else json_object_del(j, key);
    ModelConfig c;
    Err err = {{0}};
    int rc = hf_config_parse(&c, j, "/some/dir/config.json", &err);
    CHECKF(rc != 0, "%s=%s accepted", key, value_json ? value_json : "(removed)");
    CHECKF(strstr(err.msg, "/some/dir/config.json") != NULL, "%s: message does not name the file: %s", key,
           err.msg);
    CHECKF(strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)), "%s: message lacks \"%s\"/\"%s\": %s",
           key, want1, want2 ? want2 : "", err.msg);
    json_decref(j);
}

static void test_refusals(void) {
    expect_refused(QWEN2, "architectures", "[\"MistralForCausalLM\"]", "unknown architecture", "MistralForCausalLM");
    expect_refused(QWEN2, "architectures", "[\"GPT2LMHeadModel\"]", "unknown architecture", "GPT2LMHeadModel");
    {
        json_t *j = load(QWEN2);
        json_object_del(j, "architectures");
        json_object_del(j, "model_type");
        ModelConfig c;
        Err err = {{0}};
        CHECK(hf_config_parse(&c, j, "x.json", &err) != 0);
        CHECKF(strstr(err.msg, "x.json") && strstr(err.msg, "unknown architecture"), "%s", err.msg);
        json_decref(j);
        j = load("[1, 2]");
        CHECK(hf_config_parse(&c, j, "arr.json", &err) != 0);
        CHECKF(strstr(err.msg, "arr.json") && strstr(err.msg, "object"), "%s", err.msg);
        json_decref(j);
    }
    expect_refused(QWEN2, "hidden_size", NULL, "missing key 'hidden_size'", NULL);
    expect_refused(LLAMA3, "vocab_size", NULL, "missing key 'vocab_size'", NULL);
    expect_refused(QWEN3, "num_hidden_layers", NULL, "missing key 'num_hidden_layers'", NULL);
    expect_refused(QWEN2, "num_attention_heads", NULL, "num_attention_heads", NULL);
    expect_refused(QWEN2, "intermediate_size", NULL, "intermediate_size", NULL);
    expect_refused(QWEN2, "num_key_value_heads", "5", "not a multiple of num_key_value_heads", "(5)");
    expect_refused(LLAMA3, "num_key_value_heads", "3", "not a multiple of num_key_value_heads", NULL);
    expect_refused(QWEN2, "num_key_value_heads", "0", "num_key_value_heads", NULL);
    expect_refused(QWEN2, "num_attention_heads", "0", "num_attention_heads", NULL);
    expect_refused(QWEN2, "hidden_size", "-4", "hidden_size", NULL);
    expect_refused(QWEN2, "hidden_size", "1537", "not divisible", NULL);
    expect_refused(QWEN2, "vocab_size", "1e12", "vocab_size", NULL);
    expect_refused(QWEN2, "rope_scaling", "{\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 32768}",
                   "rope type 'yarn' is not supported", NULL);
    expect_refused(QWEN3, "rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 1000000.0, \"factor\": 4.0}",
                   "rope type 'yarn'", NULL);
    expect_refused(LLAMA3, "rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2.0}", "'dynamic'", NULL);
    expect_refused(LLAMA3, "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", "'linear'", NULL);
    expect_refused(LLAMA3, "rope_scaling",
                   "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0}",
                   "high_freq_factor", NULL);
    expect_refused(LLAMA3, "rope_scaling", "[1]", "rope_scaling", NULL);
    expect_refused(QWEN3, "rope_parameters", "\"default\"", "rope_parameters", NULL);
    expect_refused(QWEN2, "rope_theta", "0", "rope_theta", NULL);
    expect_refused(QWEN2, "rope_theta", "\"10000\"", "rope_theta", "number");
    expect_refused(QWEN2, "hidden_act", "\"gelu\"", "hidden_act 'gelu' is not supported", NULL);
    expect_refused(LLAMA3, "hidden_act", "\"gelu_pytorch_tanh\"", "hidden_act", NULL);
    expect_refused(QWEN2, "use_sliding_window", "true", "use_sliding_window", NULL);
    expect_refused(QWEN3, "use_sliding_window", "true", "use_sliding_window", NULL);
    expect_refused(LLAMA3, "attention_bias", "true", "attention_bias", NULL);
    expect_refused(LLAMA3, "mlp_bias", "true", "mlp_bias", NULL);
    /* wrong types */
    expect_refused(QWEN2, "hidden_size", "\"1536\"", "key 'hidden_size'", "expected an integer");
    expect_refused(QWEN2, "num_hidden_layers", "28.5", "key 'num_hidden_layers'", "expected an integer");
    expect_refused(LLAMA3, "head_dim", "\"64\"", "key 'head_dim'", "integer");
    expect_refused(LLAMA3, "head_dim", "63", "head_dim", "even");
    /* no head_dim key and fewer channels than heads: hidden / heads = 0 */
    {
        json_t *j = load(QWEN3);
        json_object_del(j, "head_dim");
        json_object_set_new(j, "hidden_size", json_integer(8));
        ModelConfig c;
        Err err = {{0}};
        CHECK(hf_config_parse(&c, j, "q3.json", &err) != 0);
        CHECKF(strstr(err.msg, "q3.json") && strstr(err.msg, "head_dim 0"), "%s", err.msg);
        json_decref(j);
        /* ... or more than the explicit key may say (to_json would write it) */
        j = load(LLAMA3);
        json_object_del(j, "head_dim");
        json_object_set_new(j, "num_attention_heads", json_integer(1));
        json_object_set_new(j, "num_key_value_heads", json_integer(1));
        CHECK(hf_config_parse(&c, j, "l.json", &err) != 0);
        CHECKF(strstr(err.msg, "l.json") && strstr(err.msg, "head_dim 2048"), "%s", err.msg);
        json_decref(j);
    }
    expect_refused(QWEN2, "tie_word_embeddings", "\"false\"", "tie_word_embeddings", NULL);
    expect_refused(QWEN2, "rms_norm_eps", "\"1e-6\"", "rms_norm_eps", NULL);
    expect_refused(QWEN2, "hidden_act", "1", "hidden_act", NULL);
    expect_refused(QWEN2, "model_type", "[\"qwen2\"]", "model_type", NULL);
    expect_refused(QWEN2, "eos_token_id", "\"<eos>\"", "eos_token_id", NULL);
    expect_refused(LLAMA3, "eos_token_id", "[128001, \"x\"]", "eos_token_id[1]", NULL);
    expect_refused(LLAMA3, "rope_scaling",
                   "{\"rope_type\": \"llama3\", \"factor\": \"8\", \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}",
                   "factor", NULL);
}

static const char *FIXTURES[] = {"llama3", "llama3_legacy", "qwen2", "qwen2_bf16", "qwen2_legacy",
                                 "qwen2_sharded", "qwen2_tied", "qwen3"};

static void test_fixtures(void) {
    const char *root = "tests/fixtures/models";
    if (access(root, F_OK) != 0) {
        SKIP("%s not found (run from the repository root)", root);
        return;
    }
    ModelConfig c[8];
    for (int i = 0; i < 8; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s/config.json", root, FIXTURES[i]);
        Err err = {{0}};
        CHECKF(hf_config_load(&c[i], path, &err) == 0, "%s", err.msg);
        CHECK(c[i].vocab_size == 128 && c[i].hidden == 32 && c[i].n_layers == 2 && c[i].n_heads == 4 &&
              c[i].n_kv_heads == 2 && c[i].intermediate == 48 && c[i].rms_eps == 1e-6);
        check_roundtrip(&c[i], FIXTURES[i]);
    }
    /* llama3 and llama3_legacy: same model in the two rope layouts */
    CHECK(c[0].arch == MODEL_ARCH_LLAMA && c[0].rope_type == ROPE_TYPE_LLAMA3 && c[0].rope_factor == 8.0 &&
          c[0].rope_original_max_pos == 160 && c[0].head_dim == 8 && c[0].bos_id == 1 && c[0].n_eos == 1 &&
          c[0].eos_ids[0] == 2);
    CHECK(same_config(&c[0], &c[1]));
    /* qwen2 and qwen2_legacy likewise */
    CHECK(c[2].arch == MODEL_ARCH_QWEN2 && c[2].qkv_bias && c[2].rope_theta == 1e6 && c[2].head_dim == 8 &&
          c[2].n_eos == 0 && c[2].bos_id == -1);
    CHECK(same_config(&c[2], &c[4]));
    CHECK(same_config(&c[2], &c[3]) && same_config(&c[2], &c[5]));
    CHECK(c[6].tie_embeddings == 1 && c[2].tie_embeddings == 0);
    CHECK(c[7].arch == MODEL_ARCH_QWEN3 && c[7].head_dim == 12 && c[7].qk_norm && c[7].tie_embeddings);

    /* load errors name the file */
    Err err = {{0}};
    ModelConfig x;
    CHECK(hf_config_load(&x, "tests/fixtures/models/nope/config.json", &err) != 0);
    CHECKF(strstr(err.msg, "nope/config.json") != NULL, "%s", err.msg);
    char tmp[] = "/tmp/r1c-test-cfg-XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    if (fd >= 0) {
        const char *bad = "{\n  \"hidden_size\": 32,\n  \"vocab_size\": 12,,\n}";
        CHECK(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
        close(fd);
        CHECK(hf_config_load(&x, tmp, &err) != 0);
        char want[64];
        snprintf(want, sizeof want, "%s:3:", tmp);
        CHECKF(strstr(err.msg, want) != NULL, "want %s in %s", want, err.msg);
        unlink(tmp);
    }
}

int main(void) {
    test_layouts();
    test_refusals();
    test_fixtures();
    return check_summary("test_hf_config");
}
