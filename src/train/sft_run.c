/* The `r1c sft` driver (see sft_run.h): data -> tokens with assistant
 * masks -> sft_train, with metrics, held-out loss, checkpoints, resume. */
#include "train/sft_run.h"
#include "train/memplan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "dist/dist.h"
#include "gen/prompt.h"
#include "io/metrics.h"
#include "io/runplot.h"
#include "train/checkpoint.h"
#include "train/sft.h"
#include "train/zero.h"

volatile int sft_stop_requested = 0;

static const char *const SCHEDULES[] = {"constant", "cosine", "linear", NULL};

#define F(k, t, m, d, h, ...) {k, t, offsetof(SftRecipe, m), d, .help = h, __VA_ARGS__}
const RecipeField SFT_FIELDS[] = {
    F("model", RECIPE_STRING, model, "", "checkpoint directory to fine-tune (HF format)"),
    F("tokenizer", RECIPE_STRING, tokenizer, "", "tokenizer.json (default: MODEL/tokenizer.json)"),
    F("run_dir", RECIPE_STRING, run_dir, "runs/sft", "metrics, plots and checkpoints"),
    F("template", RECIPE_STRING, template_name, "auto", "chat template: auto | r1-zero | qwen2.5 | qwen3 | r1-distill | llama3 | FILE"),
    F("system_prompt", RECIPE_STRING, system_prompt, "", "system message added to conversations without one"),
    F("data.path", RECIPE_STRING, data, "", "training data (JSON lines)"),
    F("data.messages_field", RECIPE_STRING, messages_field, "messages", "field holding a [{role, content}] list"),
    F("data.prompt_field", RECIPE_STRING, prompt_field, "prompt", "prompt field (when there is no messages list)"),
    F("data.completion_field", RECIPE_STRING, completion_field, "completion", "completion field"),
    F("eval.path", RECIPE_STRING, eval_data, "", "held-out data (same format)"),
    F("eval.split", RECIPE_FLOAT, eval_split, "0", "or hold out this fraction of data.path (seeded)", .has_min = 1, .min = 0, .has_max = 1, .max = 0.5),
    F("eval.every", RECIPE_INT, eval_every, "0", "held-out loss every N steps, and at the end (0 = end only)", .has_min = 1, .min = 0),
    F("max_len", RECIPE_INT, max_len, "2048", "longest example in tokens; longer ones are skipped and counted", .has_min = 1, .min = 2, .has_max = 1, .max = 1 << 20),
    F("pack", RECIPE_BOOL, pack, "false", "pack each batch's examples into rows (no cross-attention; same loss, less padding)"),
    F("pack_len", RECIPE_INT, pack_len, "0", "row length when packing (0: max_len)", .has_min = 1, .min = 0, .has_max = 1, .max = 1 << 20),
    F("epochs", RECIPE_INT, epochs, "1", "passes over the data", .has_min = 1, .min = 1, .has_max = 1, .max = 1000),
    F("batch", RECIPE_INT, batch, "8", "examples per optimizer step", .has_min = 1, .min = 1, .has_max = 1, .max = 65536),
    F("optim.lr", RECIPE_FLOAT, lr, "1e-5", "peak learning rate", .has_min = 1, .min = 0, .has_max = 1, .max = 1),
    F("optim.schedule", RECIPE_ENUM, lr_schedule, "cosine", "decay after warmup", .choices = SCHEDULES),
    F("optim.warmup_steps", RECIPE_INT, warmup_steps, "0", "linear warmup steps", .has_min = 1, .min = 0),
    F("optim.min_lr_ratio", RECIPE_FLOAT, min_lr_ratio, "0", "decay floor as a fraction of lr", .has_min = 1, .min = 0, .has_max = 1, .max = 1),
    F("optim.weight_decay", RECIPE_FLOAT, weight_decay, "0", "decoupled weight decay (matrices only)", .has_min = 1, .min = 0),
    F("optim.grad_clip", RECIPE_FLOAT, grad_clip, "1.0", "global gradient-norm clip (0 = off)", .has_min = 1, .min = 0),
    F("optim.zero", RECIPE_BOOL, zero, "false", "data parallel: shard AdamW moments over the ranks (ZeRO-1, 1/N of them each)"),
    F("seed", RECIPE_INT, seed, "0", "data order and eval split", .has_min = 1, .min = 0),
    F("save_every", RECIPE_INT, save_every, "0", "checkpoint every N steps (and at the end)", .has_min = 1, .min = 0),
    F("keep_checkpoints", RECIPE_INT, keep_checkpoints, "2", "newest checkpoints kept (0 = all)", .has_min = 1, .min = 0),
    F("quiet", RECIPE_BOOL, quiet, "false", "no progress line"),
    F("backend", RECIPE_STRING, backend, "cpu", "cpu | cuda (bf16 GEMMs) | cuda-fp32 (exact reference arithmetic)"),
    {NULL, 0, 0, NULL, .help = NULL},
};

typedef struct SftData {
    SftExample *ex;
    int n, skipped;
} SftData;

static void sft_data_free(SftData *d) {
    for (int i = 0; i < d->n; i++) free(d->ex[i].ids), free(d->ex[i].mask);
    free(d->ex);
    memset(d, 0, sizeof *d);
}

/* One JSONL record -> tokens and the assistant mask. */
static int encode_record(const SftRecipe *r, Tokenizer *tok, const ChatTemplate *tm, int32_t eos, json_t *j,
                         const char *where, SftExample *out, Err *err) {
    ChatMessage msgs[64];
    size_t n = 0;
    json_t *ml = json_object_get(j, r->messages_field);
    if (r->system_prompt[0]) msgs[n++] = (ChatMessage){"system", r->system_prompt};
    if (json_is_array(ml)) {
        size_t i;
        json_t *m;
        json_array_foreach(ml, i, m) {
            const char *role = json_string_value(json_object_get(m, "role"));
            const char *content = json_string_value(json_object_get(m, "content"));
            if (!role || !content) return err_set(err, "%s: %s[%zu] needs string \"role\" and \"content\"", where, r->messages_field, i);
            if (!strcmp(role, "system") && n == 1 && r->system_prompt[0]) n = 0; /* the data's own system wins */
            if (n == 64) return err_set(err, "%s: more than 64 messages", where);
            msgs[n++] = (ChatMessage){role, content};
        }
    } else {
        const char *p = json_string_value(json_object_get(j, r->prompt_field));
        const char *c = json_string_value(json_object_get(j, r->completion_field));
        if (!p || !c)
            return err_set(err, "%s: expected \"%s\": [...] or string fields \"%s\" and \"%s\"", where, r->messages_field,
                           r->prompt_field, r->completion_field);
        msgs[n++] = (ChatMessage){"user", p};
        msgs[n++] = (ChatMessage){"assistant", c};
    }
    ChatRender cr = {0};
    if (chat_render(tm, msgs, n, 0, &cr, err) != 0) {
        chat_render_free(&cr);
        return err_prefix(err, "%s", where);
    }
    if (cr.n_spans == 0) {
        chat_render_free(&cr);
        return err_set(err, "%s: no assistant message to train on", where);
    }
    TokIds ids = {0};
    TokOffsets offs = {0};
    int rc = tokenizer_encode_offsets(tok, cr.text, cr.len, &ids, &offs, err);
    if (!rc) {
        /* templates without an end-of-turn marker (r1-zero, files): the
         * model must learn to stop, so EOS ends the last answer */
        int add_eos = (tm->kind == CHAT_TEMPLATE_R1_ZERO || tm->kind == CHAT_TEMPLATE_FILE) && eos >= 0;
        out->n = (int)ids.n + add_eos;
        out->mask = calloc(out->n, 1);
        chat_assistant_mask(&cr, offs.start, ids.n, out->mask);
        if (add_eos) {
            rc = tokids_push(&ids, eos, err);
            out->mask[out->n - 1] = 1;
        }
        out->ids = ids.ids;
        out->prompt_len = 0;
    } else free(ids.ids);
    free(offs.start), free(offs.end);
    chat_render_free(&cr);
    return rc;
}

static int load_sft(const SftRecipe *r, Tokenizer *tok, const ChatTemplate *tm, int32_t eos, const char *path,
                    SftData *d, Err *err) {
    memset(d, 0, sizeof *d);
    FILE *fp = fopen(path, "r");
    if (!fp) return err_set(err, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0, ecap = 0;
    while (!rc && (len = getline(&line, &cap, fp)) > 0) {
        lineno++;
        if (len <= 1) continue;
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        json_t *j = json_load_buf(line, (size_t)len, where, err);
        if (!j) { rc = -1; break; }
        SftExample e = {0};
        if (!json_is_object(j)) rc = err_set(err, "%s: expected a JSON object", where);
        else rc = encode_record(r, tok, tm, eos, j, where, &e, err);
        json_decref(j);
        if (rc) break;
        if (e.n > r->max_len) {
            free(e.ids), free(e.mask);
            d->skipped++;
            continue;
        }
        if (d->n == ecap) d->ex = realloc(d->ex, (ecap = ecap ? 2 * ecap : 256) * sizeof *d->ex);
        d->ex[d->n++] = e;
    }
    free(line);
    fclose(fp);
    if (!rc && d->n == 0) rc = err_set(err, "%s: no usable examples (%d longer than max_len)", path, d->skipped);
    if (rc) sft_data_free(d);
    return rc;
}

typedef struct Ctx {
    SftRecipe *r;
    Model *m;
    AdamW *opt;
    SftData *eval;
    MetricsWriter *mw;
    char tok_path[4096];
    int total;
    int rank0;   /* writes the run directory */
    int stopped; /* a stop request every rank agreed on */
} Ctx;

static int save_ckpt(Ctx *c, int step, int epoch, Err *err) {
    TrainState st = {.step = step, .epoch = epoch};
    char cfgp[4096], genp[4096];
    snprintf(cfgp, sizeof cfgp, "%s/tokenizer_config.json", c->r->model);
    snprintf(genp, sizeof genp, "%s/generation_config.json", c->r->model);
    const char *carry[] = {c->tok_path, cfgp, genp};
    /* rank 0 writes (moments gathered when sharded), the others wait */
    return zero_checkpoint_save(c->r->comm, c->r->run_dir, c->m, c->opt, &st, carry, 3, (int)c->r->keep_checkpoints, err);
}

static int eval_log(Ctx *c, int step, Err *err) {
    if (!c->eval || c->eval->n == 0) return 0;
    double loss;
    if (sft_eval_loss_dist(c->m, c->eval->ex, c->eval->n, (int)c->r->batch, c->r->comm, &loss, err) != 0) return -1;
    if (!c->rank0) return 0;
    metrics_begin(c->mw, step);
    metrics_f64(c->mw, "eval/loss", loss);
    if (!c->r->quiet) fprintf(stderr, "\nheld-out loss at step %d: %.4f\n", step, loss);
    return metrics_end(c->mw, err);
}

static int on_step(void *user, int step, int epoch, double loss, Err *err) {
    Ctx *c = user;
    (void)loss;
    int last = step == c->total;
    if (c->r->eval_every > 0 && step % c->r->eval_every == 0 && !last && eval_log(c, step, err)) return -1;
    if (dist_any(c->r->comm, sft_stop_requested, &c->stopped, err)) return -1; /* all ranks stop together */
    if (c->stopped || (c->r->save_every > 0 && step % c->r->save_every == 0 && !last))
        if (save_ckpt(c, step, epoch, err)) return -1;
    return c->stopped ? 1 : 0;
}

void sft_plan_input(const SftRecipe *r, int world, MemPlanInput *mi) {
    int len = (int)r->max_len, pl = (int)r->pack_len;
    if (world < 1) world = 1;
    *mi = (MemPlanInput){.train_batch = ((int)r->batch + world - 1) / world,
                         .train_len = r->pack && pl > len ? pl : len, .world = world, .zero = r->zero,
                         .pack = r->pack, .keep_logits = -1};
}

int sft_run(SftRecipe *r, int resume, Err *err) {
    if (!r->model[0]) return err_set(err, "recipe: key 'model' is required");
    if (!r->data[0]) return err_set(err, "recipe: key 'data.path' is required");
    Ctx c = {.r = r, .rank0 = comm_rank(r->comm) == 0};
    if (r->tokenizer[0]) snprintf(c.tok_path, sizeof c.tok_path, "%s", r->tokenizer);
    else snprintf(c.tok_path, sizeof c.tok_path, "%s/tokenizer.json", r->model);
    Tokenizer *tok = NULL;
    ChatTemplate tm = {0};
    Model m = {0};
    AdamW opt = {0};
    SftData train = {0}, ev = {0};
    MetricsWriter mw = {0};
    int rc = tokenizer_load(&tok, c.tok_path, err);
    if (!rc) rc = prompt_template_load(&tm, r->template_name, r->model, err);
    MemPlanInput mi = {0};
    if (!rc) {
        sft_plan_input(r, comm_world(r->comm), &mi);
        rc = memplan_run(r->model, r->be, &mi, c.rank0 && r->be && r->be->mem_info, "lower batch or max_len", stderr, err);
    }
    if (!rc) rc = model_load(&m, r->model, r->be ? r->be : backend_cpu(), err);
    int32_t eos = !rc && m.cfg.n_eos > 0 ? m.cfg.eos_ids[0] : -1;
    if (!rc) rc = load_sft(r, tok, &tm, eos, r->data, &train, err);
    if (!rc && r->eval_data[0]) rc = load_sft(r, tok, &tm, eos, r->eval_data, &ev, err);
    if (!rc && !r->eval_data[0] && r->eval_split > 0) { /* seeded split off the end of a shuffle */
        Rng g;
        rng_split(&g, (uint64_t)r->seed, 0xE7A1u);
        for (int i = train.n - 1; i > 0; i--) {
            int k = (int)(rng_u64(&g) % (uint64_t)(i + 1));
            SftExample t = train.ex[i];
            train.ex[i] = train.ex[k], train.ex[k] = t;
        }
        int ne = (int)(train.n * r->eval_split);
        if (ne < 1) ne = 1;
        if (ne >= train.n) rc = err_set(err, "eval.split leaves no training data (%d examples)", train.n);
        else {
            ev.ex = malloc(ne * sizeof *ev.ex);
            memcpy(ev.ex, train.ex + train.n - ne, ne * sizeof *ev.ex);
            ev.n = ne;
            train.n -= ne;
        }
    }
    if (!rc) rc = zero_adamw_create(&opt, &m, r->comm, r->zero, 0.9f, 0.999f, 1e-8f, (float)r->weight_decay, err);
    TrainState st = {0};
    if (!rc && resume) {
        char ck[4096];
        int k = checkpoint_latest(r->run_dir, ck, sizeof ck, err);
        if (k == 1) rc = err_set(err, "%s: no checkpoint to resume from", r->run_dir);
        else if (k < 0 || checkpoint_load(ck, &m, &opt, &st, err) != 0) rc = -1;
        else if (c.rank0) fprintf(stderr, "r1c sft: resuming from %s (step %" PRId64 ")\n", ck, st.step);
        json_decref(st.extra);
    }
    char path[4096];
    if (!rc && c.rank0) rc = dir_make(r->run_dir, err);
    if (!rc && c.rank0) {
        snprintf(path, sizeof path, "%s/recipe.yaml", r->run_dir);
        rc = recipe_save(SFT_FIELDS, r, path, err);
    }
    if (!rc && c.rank0) {
        snprintf(path, sizeof path, "%s/metrics.jsonl", r->run_dir);
        rc = metrics_open(&mw, path, resume ? st.step : -1, err);
    }
    if (!rc) rc = dist_check_recipe(r->comm, SFT_FIELDS, r, err); /* before any other collective */
    int interrupted = 0;
    if (!rc) {
        if (train.n > 0 && !r->quiet && c.rank0)
            fprintf(stderr, "r1c sft: %d examples (%d over max_len skipped), %d held out\n", train.n, train.skipped, ev.n);
        c.m = &m, c.opt = &opt, c.eval = &ev, c.mw = &mw;
        c.total = sft_total_steps(train.n, (int)r->batch, (int)r->epochs);
        SftConfig sc = {.epochs = (int)r->epochs, .batch = (int)r->batch,
                        .lr = {(float)r->lr, (LrSchedule)r->lr_schedule, (int)r->warmup_steps, c.total, (float)r->min_lr_ratio},
                        .weight_decay = (float)r->weight_decay, .grad_clip = (float)r->grad_clip, .seed = (uint64_t)r->seed,
                        .metrics = c.rank0 ? &mw : NULL, .quiet = r->quiet || !c.rank0, .opt = &opt, .pack = r->pack,
                        .pack_len = (int)(r->pack_len ? r->pack_len : r->max_len), .start_step = (int)st.step, .on_step = on_step,
                        .user = &c, .comm = r->comm, .keep_logits = mi.keep_logits == 1};
        SftResult res;
        if (st.step < c.total) rc = sft_train(&m, train.ex, train.n, &sc, &res, err);
        interrupted = c.stopped;
        if (!rc && !interrupted) {
            rc = eval_log(&c, c.total, err);
            if (!rc) rc = save_ckpt(&c, c.total, (int)r->epochs, err);
        }
        metrics_close(&mw);
        RunPlotOptions po = {.smooth = 0.6};
        int nw;
        Err perr;
        if (!rc && c.rank0) runplot_write(r->run_dir, &po, &nw, &perr);
    }
    sft_data_free(&train);
    if (r->eval_data[0]) sft_data_free(&ev);
    else if (ev.ex) { /* split: the examples belong to train's buffers, already freed */
        for (int i = 0; i < ev.n; i++) free(ev.ex[i].ids), free(ev.ex[i].mask);
        free(ev.ex);
    }
    adamw_free(&opt, &m);
    if (m.be) model_free(&m);
    chat_template_free(&tm);
    if (tok) tokenizer_free(tok);
    return rc ? -1 : interrupted ? 1 : 0;
}
