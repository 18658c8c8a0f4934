/* The demo pipeline (see demo.h). */
#include "base/clock.h"
#include "pipeline/demo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "base/json.h"
#include "gen/prompt.h"
#include "io/bpe_train.h"
#include "io/dataset.h"
#include "io/metrics.h"
#include "model/model.h"
#include "train/grpo.h"
#include "train/sft.h"
#include "pipeline/demo_task.h"

static double now_s(void) { return clock_seconds(); }

/* The R1-Zero template with a one-line instruction in place of the paper's
 * preamble: same structure ("... User: {prompt}. Assistant:"), a third of
 * the tokens, which keeps the CPU demo within minutes. */
static const char DEMO_SYSTEM[] =
    "The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>.";
static const char *const SPECIAL[] = {"<|endoftext|>"};
static const char *const ADDED[] = {"<think>", "</think>", "<answer>", "</answer>"};

static int train_tokenizer(const char *sft_path, const char *out, Err *err) {
    BpeTrainOptions o = {.vocab_size = 512, .min_frequency = 2, .pretok = PRETOK_QWEN2, .special = SPECIAL,
                         .n_special = 1, .added = ADDED, .n_added = 4};
    BpeTrainer *t;
    if (bpe_train_begin(&t, &o, err) != 0) return -1;
    DatasetOptions dopt = {.format = DATASET_FORMAT_JSONL};
    Dataset d;
    int rc = dataset_load(&d, sft_path, &dopt, err);
    ChatTemplate tm;
    if (!rc) rc = chat_template_by_name(&tm, "r1-zero", err);
    for (int i = 0; !rc && i < d.n; i++) {
        ChatMessage msg[2] = {{"system", DEMO_SYSTEM}, {"user", d.ex[i].prompt}};
        ChatRender r = {0};
        rc = chat_render(&tm, msg, 2, 1, &r, err);
        const char *comp = json_string_value(json_object_get(d.ex[i].record, "completion"));
        if (!rc) rc = bpe_train_feed(t, r.text, r.len, err);
        if (!rc && comp) rc = bpe_train_feed(t, comp, strlen(comp), err);
        chat_render_free(&r);
    }
    if (!rc) rc = bpe_train_finish(t, out, err);
    bpe_train_free(t);
    if (d.ex) dataset_free(&d);
    return rc;
}

static int pretrain(const char *dir, const char *sft_path, const char *tok_path, const DemoConfig *c, Err *err) {
    Tokenizer *tok;
    if (tokenizer_load(&tok, tok_path, err) != 0) return -1;
    int V = tokenizer_vocab_size(tok), eos = tokenizer_token_id(tok, "<|endoftext|>");
    ModelConfig mc = {.arch = MODEL_ARCH_QWEN2, .vocab_size = V, .hidden = 128, .n_layers = 4, .n_heads = 4,
                      .n_kv_heads = 2, .head_dim = 32, .intermediate = 384, .max_pos = 1024, .rms_eps = 1e-6,
                      .tie_embeddings = 1, .qkv_bias = 1, .rope_theta = 10000, .bos_id = -1, .n_eos = 1};
    mc.eos_ids[0] = eos;
    Model m;
    int rc = model_create(&m, &mc, backend_cpu(), err);
    if (rc) {
        tokenizer_free(tok);
        return -1;
    }
    if (model_init_random(&m, c->seed, 0.05f, err) != 0) {
        model_free(&m);
        tokenizer_free(tok);
        return -1;
    }
    DatasetOptions dopt = {.format = DATASET_FORMAT_JSONL};
    Dataset d;
    ChatTemplate tm;
    SftExample *ex = NULL;
    rc = dataset_load(&d, sft_path, &dopt, err) || chat_template_by_name(&tm, "r1-zero", err);
    if (!rc) {
        ex = calloc(d.n, sizeof *ex);
        for (int i = 0; i < d.n && !rc; i++) {
            TokIds ids;
            rc = prompt_encode(tok, &tm, DEMO_SYSTEM, d.ex[i].prompt, &ids, NULL, err);
            if (rc) break;
            int P = (int)ids.n;
            const char *comp = json_string_value(json_object_get(d.ex[i].record, "completion"));
            rc = tokenizer_encode(tok, comp, strlen(comp), &ids, err) || tokids_push(&ids, eos, err);
            ex[i] = (SftExample){ids.ids, (int)ids.n, P, NULL};
        }
    }
    if (!rc) {
        SftConfig sc = {.epochs = c->sft_epochs, .batch = 32,
                        .lr = {.lr = 3e-3f, .schedule = LR_SCHEDULE_COSINE, .warmup_steps = 30, .min_ratio = 0.05f},
                        .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = c->seed};
        SftResult res;
        fprintf(stderr, "demo: pre-training the base model on %d imperfect traces (%d epochs)\n", d.n, c->sft_epochs);
        rc = sft_train(&m, ex, d.n, &sc, &res, err);
        if (!rc)
            fprintf(stderr, "demo: pre-training loss %.3f -> %.3f in %d steps (%.0f tokens/s)\n", res.first_loss,
                    res.last_loss, res.steps, res.tokens_per_s);
    }
    if (!rc) rc = model_save(&m, dir, ST_DTYPE_F32, err);
    if (!rc) {
        char p[4096];
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        rc = file_copy_atomic(tok_path, p, err);
    }
    for (int i = 0; ex && i < d.n; i++) free(ex[i].ids);
    free(ex);
    if (d.ex) dataset_free(&d);
    model_free(&m);
    tokenizer_free(tok);
    return rc;
}

/* First and last values of a metric column. */
static int first_last(const MetricsTable *t, const char *key, double *first, double *last) {
    int c = metrics_col(t, key);
    if (c < 0) return -1;
    *first = *last = NAN;
    for (size_t r = 0; r < t->n_rows; r++) {
        double v = t->cols[c][r];
        if (isnan(v)) continue;
        if (isnan(*first)) *first = v;
        *last = v;
    }
    return isnan(*first) ? -1 : 0;
}

int demo_run(const DemoConfig *c, Err *err) {
    double t0 = now_s();
    char data[4096], tok[4096], base[4096], p[4096];
    snprintf(data, sizeof data, "%s/data", c->run_dir);
    snprintf(tok, sizeof tok, "%s/tokenizer.json", data);
    snprintf(base, sizeof base, "%s/base-model", c->run_dir);
    DemoTaskOptions to = {.seed = c->seed, .n_eval = 200, .n_sft = c->quick ? 2000 : 8000, .p_slip = 0.45,
                          .p_bad_format = 0.25};
    int n_train;
    if (demo_task_write(data, &to, &n_train, err) != 0) return -1;
    fprintf(stderr, "demo: task written to %s (%d training problems, %d held out, %d traces)\n", data, n_train,
            to.n_eval, to.n_sft);
    snprintf(p, sizeof p, "%s/sft.jsonl", data);
    if (train_tokenizer(p, tok, err) != 0) return -1;
    if (pretrain(base, p, tok, c, err) != 0) return -1;
    double t_pre = now_s() - t0;
    if (c->base_only) {
        printf("base model: %s\ndata:       %s\n", base, data);
        return 0;
    }
    GrpoConfig g;
    char train[4096], eval[4096], gdir[4096], steps[64], evevery[64], s_seed[64];
    snprintf(train, sizeof train, "data.path=%s/train.jsonl", data);
    snprintf(eval, sizeof eval, "eval.path=%s/eval.jsonl", data);
    snprintf(gdir, sizeof gdir, "run_dir=%s/grpo", c->run_dir);
    snprintf(steps, sizeof steps, "steps=%d", c->grpo_steps);
    snprintf(evevery, sizeof evevery, "eval.every=%d", c->grpo_steps);
    snprintf(s_seed, sizeof s_seed, "seed=%llu", (unsigned long long)c->seed);
    char mdl[4096], sys[256];
    snprintf(mdl, sizeof mdl, "model=%s", base);
    snprintf(sys, sizeof sys, "system_prompt=%s", DEMO_SYSTEM);
    char *over[] = {mdl, sys, train, eval, gdir, steps, evevery, s_seed,
                    "template=r1-zero", "rewards=math,format:0.5", "stop=</answer>",
                    "group_size=8", "prompts_per_step=16", "max_prompt_len=128", "max_completion_len=40",
                    "optim.lr=2e-4", "optim.warmup_steps=5", "loss.type=dapo", "loss.epsilon_high=0.28",
                    "micro_batch=32", "gen_batch=128", "eval.samples=4", "save_every=0", "samples_every=5",
                    "plot_every=10"};
    if (recipe_load(GRPO_FIELDS, NULL, over, sizeof over / sizeof over[0], &g, err) != 0) return -1;
    int rc = grpo_run(&g, 0, err);
    recipe_free(GRPO_FIELDS, &g);
    if (rc < 0) return -1;
    MetricsTable mt;
    snprintf(p, sizeof p, "%s/grpo/metrics.jsonl", c->run_dir);
    if (metrics_read(p, &mt, err) != 0) return -1;
    double p0, p1, f0, f1;
    rc = first_last(&mt, "eval/pass1", &p0, &p1) || first_last(&mt, "eval/format_rate", &f0, &f1);
    metrics_table_free(&mt);
    if (rc) return err_set(err, "%s: no eval/pass1 and eval/format_rate rows", p);
    double secs = now_s() - t0;
    json_t *s = json_object(), *b = json_object(), *a = json_object();
    json_object_set_new(b, "pass1", json_real(p0));
    json_object_set_new(b, "format", json_real(f0));
    json_object_set_new(a, "pass1", json_real(p1));
    json_object_set_new(a, "format", json_real(f1));
    json_object_set_new(s, "before", b);
    json_object_set_new(s, "after", a);
    json_object_set_new(s, "seconds", json_real(round(secs * 10) / 10));
    json_object_set_new(s, "seconds_pretrain", json_real(round(t_pre * 10) / 10));
    snprintf(p, sizeof p, "%s/summary.json", c->run_dir);
    rc = json_save_path(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(4), p, err);
    json_decref(s);
    if (rc) return -1;
    printf("\nR1-Zero in miniature: held-out pass@1 %.1f%% -> %.1f%%, format %.1f%% -> %.1f%% (%.0f s)\n", 100 * p0,
           100 * p1, 100 * f0, 100 * f1, secs);
    printf("summary: %s\nplots:   %s/grpo/plots/\nsamples: %s/grpo/samples.jsonl\n", p, c->run_dir, c->run_dir);
    return 0;
}
