/* r1c generate: sample completions from a checkpoint with the batched
 * KV-cache engine. Prompts are token ids (--prompt-ids or a JSONL file of
 * {"input_ids": [...]}); output is one JSON line per sample. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/args.h"
#include "cli/backend_select.h"
#include "cli/commands.h"
#include "gen/generate.h"
#include "gen/prompt.h"
#include "io/tokenizer.h"

static const char *USAGE =
    "usage: r1c generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3 | --input PROMPTS.jsonl) [options]\n"
    "  --prompt TEXT       a user message, rendered with the chat template and encoded\n"
    "                      with DIR/tokenizer.json; the first sample's text streams to\n"
    "                      stderr as it is generated, and every output line gets \"text\"\n"
    "  --template NAME     auto (from tokenizer_config.json) | r1-zero | qwen2.5 | qwen3 |\n"
    "                      qwen3-nothink | r1-distill | llama3 | FILE | raw (no template)\n"
    "  --system TEXT       system message\n"
    "  --input FILE        JSON lines {\"input_ids\": [...]}\n"
    "  --n N               samples per prompt (default 1)\n"
    "  --max-new-tokens N  (default 64)\n"
    "  --temperature T     0 = greedy (default 1)\n"
    "  --top-p P --top-k K --min-p P\n"
    "  --seed S            (default 0); sample j of prompt i uses stream i*n+j\n"
    "  --batch B           sequences decoded together (default 16)\n"
    "  --kv-block N        paged KV cache of N-position blocks (default 0: one\n"
    "                      max-length cache row per sequence)\n"
    "  --kv-tokens N       with --kv-block: the pool's positions (default: room for\n"
    "                      every sequence at full length); a smaller pool preempts\n"
    "                      and later resumes sequences (on the CPU: same tokens)\n"
    "  --stop-ids 1,2      extra stop token ids (besides the model's EOS)\n"
    "  --backend NAME      cpu (default) | cuda\n"
    "output: one line per sample {\"prompt\": i, \"sample\": j, \"tokens\": [...],\n"
    "        \"logp\": [...], \"finish\": \"eos\"|\"stop\"|\"length\"}; speed on stderr\n";

typedef struct Stream {
    Tokenizer *tok;
    TokDecodeStream ds;
    char *buf;
    size_t len, cap;
} Stream;

/* Prints sample 0's text as it arrives (the others are decoded at the end). */
static void stream_token(void *user, int req, int32_t tok, float logp) {
    Stream *s = user;
    (void)logp;
    if (req != 0) return;
    Err err;
    s->len = 0;
    if (tokenizer_stream_push(&s->ds, tok, &s->buf, &s->len, &s->cap, &err) == 0 && s->len) {
        fwrite(s->buf, 1, s->len, stderr);
        fflush(stderr);
    }
}

static void json_print_string(const char *s) {
    json_t *j = json_string(s);
    char *t = json_dumps(j, JSON_ENCODE_ANY);
    fputs(t ? t : "\"\"", stdout);
    free(t);
    json_decref(j);
}

static int parse_ids(const char *s, int32_t **out, int *n, Err *err) {
    *n = 0;
    *out = malloc((strlen(s) / 2 + 2) * sizeof(int32_t));
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) return err_set(err, "bad token id list '%s'", s);
        (*out)[(*n)++] = (int32_t)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return err_set(err, "bad token id list '%s'", s);
    }
    return *n ? 0 : err_set(err, "empty token id list");
}

static int load_prompts(const char *path, int32_t ***ids, int **lens, int *n, Err *err) {
    FILE *fp = fopen(path, "r");
    if (!fp) return err_set(err, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    *n = 0;
    *ids = NULL;
    *lens = NULL;
    while ((len = getline(&line, &cap, fp)) > 0) {
        lineno++;
        if (len <= 1) continue;
        char what[600];
        snprintf(what, sizeof what, "%s:%d", path, lineno);
        json_t *j = json_load_buf(line, (size_t)len, what, err);
        if (!j) { rc = -1; break; }
        json_t *a = json_object_get(j, "input_ids");
        if (!json_is_array(a) || json_array_size(a) == 0) {
            json_decref(j);
            rc = err_set(err, "%s: expected {\"input_ids\": [non-empty list]}", what);
            break;
        }
        *ids = realloc(*ids, (*n + 1) * sizeof **ids);
        *lens = realloc(*lens, (*n + 1) * sizeof **lens);
        int m = (int)json_array_size(a);
        (*ids)[*n] = malloc(m * sizeof(int32_t));
        (*lens)[*n] = m;
        for (int i = 0; i < m; i++) {
            json_t *v = json_array_get(a, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
                rc = err_set(err, "%s: input_ids[%d] is not a token id", what, i);
                break;
            }
            (*ids)[*n][i] = (int32_t)json_integer_value(v);
        }
        (*n)++;
        json_decref(j);
        if (rc) break;
    }
    free(line);
    fclose(fp);
    if (!rc && *n == 0) rc = err_set(err, "%s: no prompts", path);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *ids_s = NULL, *input = NULL, *stop_s = NULL, *text = NULL, *tmpl_name = "auto",
               *system = NULL, *be_name = NULL;
    int64_t n_samples = 1, max_new = 64, top_k = 0, seed = 0, batch = 16, kv_block = 0, kv_tokens = 0;
    double temp = 1.0, top_p = 1.0, min_p = 0.0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (arg_flag(argv, i, "--help") || arg_flag(argv, i, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if ((r = arg_str(argc, argv, &i, "--model", &model_dir)) || (r = arg_str(argc, argv, &i, "--prompt-ids", &ids_s)) ||
            (r = arg_str(argc, argv, &i, "--input", &input)) || (r = arg_str(argc, argv, &i, "--stop-ids", &stop_s)) ||
            (r = arg_str(argc, argv, &i, "--prompt", &text)) || (r = arg_str(argc, argv, &i, "--template", &tmpl_name)) ||
            (r = arg_str(argc, argv, &i, "--system", &system)) || (r = arg_str(argc, argv, &i, "--backend", &be_name)) ||
            (r = arg_int(argc, argv, &i, "--n", &n_samples)) || (r = arg_int(argc, argv, &i, "--max-new-tokens", &max_new)) ||
            (r = arg_int(argc, argv, &i, "--top-k", &top_k)) || (r = arg_int(argc, argv, &i, "--seed", &seed)) ||
            (r = arg_int(argc, argv, &i, "--batch", &batch)) || (r = arg_float(argc, argv, &i, "--temperature", &temp)) ||
            (r = arg_float(argc, argv, &i, "--top-p", &top_p)) || (r = arg_float(argc, argv, &i, "--min-p", &min_p)) ||
            (r = arg_int(argc, argv, &i, "--kv-block", &kv_block)) || (r = arg_int(argc, argv, &i, "--kv-tokens", &kv_tokens))) {
            if (r < 0) return 2;
            continue;
        }
        return arg_unknown("generate", argv[i]);
    }
    if (!model_dir || (!!ids_s + !!input + !!text) != 1) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (n_samples < 1 || max_new < 0 || batch < 1 || temp < 0 || top_p <= 0 || top_p > 1 || min_p < 0 || min_p > 1 ||
        top_k < 0 || kv_block < 0 || kv_block > 1 << 20 || kv_tokens < 0 || (kv_tokens && !kv_block)) {
        fprintf(stderr, "r1c generate: need --n >= 1, --batch >= 1, --max-new-tokens >= 0, --temperature >= 0, "
                        "0 < --top-p <= 1, 0 <= --min-p <= 1, --top-k >= 0, 0 <= --kv-block <= 1048576, "
                        "--kv-tokens >= 0 (with --kv-block)\n");
        return 2;
    }
    Err err = {{0}};
    int32_t **prompts = NULL, *stop_ids = NULL;
    int *lens = NULL, n_prompts = 0, n_stop = 0, rc = 1;
    Model m = {0};
    GenRequest *reqs = NULL;
    GenOutput *outs = NULL;
    Stream stream = {0};
    if (text) {
        char tp[4096];
        snprintf(tp, sizeof tp, "%s/tokenizer.json", model_dir);
        if (tokenizer_load(&stream.tok, tp, &err) != 0) goto fail;
        prompts = malloc(sizeof *prompts);
        lens = malloc(sizeof *lens);
        TokIds ids = {0};
        if (!strcmp(tmpl_name, "raw")) {
            if (tokenizer_encode(stream.tok, text, strlen(text), &ids, &err) != 0) goto fail;
        } else {
            ChatTemplate tm;
            if (prompt_template_load(&tm, tmpl_name, model_dir, &err) != 0) goto fail;
            int e = prompt_encode(stream.tok, &tm, system, text, &ids, NULL, &err);
            chat_template_free(&tm);
            if (e) goto fail;
        }
        prompts[0] = ids.ids;
        lens[0] = (int)ids.n;
        n_prompts = 1;
        if (lens[0] == 0) {
            err_set(&err, "the prompt encodes to no tokens");
            goto fail;
        }
        tokenizer_stream_init(&stream.ds, stream.tok, 1);
    } else if (ids_s) {
        prompts = malloc(sizeof *prompts);
        lens = malloc(sizeof *lens);
        n_prompts = 1;
        if (parse_ids(ids_s, &prompts[0], &lens[0], &err) != 0) goto fail;
    } else if (load_prompts(input, &prompts, &lens, &n_prompts, &err) != 0) goto fail;
    if (stop_s && parse_ids(stop_s, &stop_ids, &n_stop, &err) != 0) goto fail;
    const Backend *be = backend_select(be_name, &err);
    if (!be || model_load(&m, model_dir, be, &err) != 0) goto fail;
    int n_req = n_prompts * (int)n_samples;
    reqs = calloc(n_req, sizeof *reqs);
    outs = calloc(n_req, sizeof *outs);
    for (int p = 0; p < n_prompts; p++)
        for (int j = 0; j < n_samples; j++) {
            GenRequest *q = &reqs[p * n_samples + j];
            q->prompt = prompts[p];
            q->prompt_len = lens[p];
            q->stream = (uint64_t)(p * n_samples + j);
        }
    GenConfig cfg = {
        .sampling = {.temperature = (float)temp, .top_k = (int)top_k, .top_p = (float)top_p, .min_p = (float)min_p},
        .max_new_tokens = (int)max_new,
        .max_batch = (int)batch,
        .seed = (uint64_t)seed,
        .kv_block = (int)kv_block,
        .kv_tokens = kv_tokens,
        .stop_ids = stop_ids,
        .n_stop_ids = n_stop,
        .on_token = stream.tok ? stream_token : NULL,
        .user = &stream,
    };
    GenStats st;
    if (gen_run(&m, reqs, n_req, &cfg, outs, &st, &err) != 0 || backend_select_check(be, &err) != 0) goto fail;
    static const char *FIN[] = {"length", "eos", "stop"};
    for (int r = 0; r < n_req; r++) {
        printf("{\"prompt\": %d, \"sample\": %d, \"tokens\": [", r / (int)n_samples, r % (int)n_samples);
        for (int i = 0; i < outs[r].n; i++) printf("%s%d", i ? ", " : "", outs[r].tokens[i]);
        printf("], \"logp\": [");
        for (int i = 0; i < outs[r].n; i++) printf("%s%.7g", i ? ", " : "", outs[r].logp[i]);
        printf("], \"finish\": \"%s\"", FIN[outs[r].finish]);
        if (stream.tok) {
            char *t = NULL;
            size_t tl;
            if (tokenizer_decode(stream.tok, outs[r].tokens, (size_t)outs[r].n, 1, &t, &tl, &err) == 0) {
                printf(", \"text\": ");
                json_print_string(t);
            }
            free(t);
        }
        printf("}\n");
    }
    if (stream.tok) fputc('\n', stderr);
    fprintf(stderr, "r1c generate: %d sequences, %lld prompt + %lld new tokens in %.2fs (%.1f new tokens/s)\n", n_req,
            (long long)st.prefill_tokens, (long long)st.decode_tokens, st.seconds,
            st.seconds > 0 ? st.decode_tokens / st.seconds : 0.0);
    if (st.steps > 0)
        fprintf(stderr, "r1c generate: %lld steps (%lld with prompt tokens), %.2f ms each: %.2f ms issuing, %.2f ms "
                        "waiting for the device\n",
                (long long)st.steps, (long long)st.prefill_steps, 1e3 * st.seconds / st.steps,
                1e3 * st.issue_seconds / st.steps, 1e3 * st.wait_seconds / st.steps);
    if (kv_block > 0)
        fprintf(stderr, "r1c generate: paged KV cache: at most %lld positions in use\n", (long long)st.kv_peak_tokens);
    if (st.preemptions)
        fprintf(stderr, "r1c generate: the paged KV cache was full %lld times: the latest sequence gave its blocks "
                        "back and resumed later\n",
                (long long)st.preemptions);
    gen_outputs_free(outs, n_req);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "r1c generate: %s\n", err.msg);
    for (int p = 0; p < n_prompts; p++) free(prompts[p]);
    free(prompts);
    free(lens);
    free(stop_ids);
    free(reqs);
    free(outs);
    free(stream.buf);
    if (stream.tok) tokenizer_free(stream.tok);
    model_free(&m);
    return rc;
}
