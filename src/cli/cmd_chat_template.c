/* r1c chat-template: renders conversations with a built-in or file chat
 * template. JSON lines in ({"messages": [{"role", "content"}...]} or
 * {"prompt": "..."}), JSON lines out: {"text", "assistant_spans"} and,
 * with --tokenizer, "ids". Spans are byte offsets into text. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "io/chat_template.h"
#include "io/tokenizer.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: r1c chat-template (--template NAME | --template-file FILE | --tokenizer-config FILE)\n"
            "                         [--generation-prompt | --no-generation-prompt] [--tokenizer FILE]\n"
            "  NAME: r1-zero, qwen2.5, qwen3, qwen3-nothink, r1-distill, llama3\n"
            "  --template-file: text with {system} and {prompt} placeholders ({{ and }} for braces)\n"
            "  --tokenizer-config: pick the built-in matching tokenizer_config.json's chat_template\n"
            "  stdin: JSON lines {\"messages\": [{\"role\": ..., \"content\": ...}, ...]} or {\"prompt\": ...}\n"
            "         (optional per line: \"add_generation_prompt\": true/false)\n"
            "  stdout: {\"text\": ..., \"assistant_spans\": [[start, end], ...] (bytes),\n"
            "           with --tokenizer also \"ids\": [...] and \"assistant_mask\": [0/1 per id] (SFT loss mask)}\n"
            "  By default a generation prompt is added unless the last message is the assistant's.\n");
}

static int render_line(const ChatTemplate *tpl, Tokenizer *tok, json_t *obj, int gen_flag, ChatRender *r, Err *err) {
    json_t *msgs = json_object_get(obj, "messages"), *prompt = json_object_get(obj, "prompt");
    size_t n = json_is_array(msgs) ? json_array_size(msgs) : 1;
    if (!json_is_array(msgs) && !json_is_string(prompt))
        return err_set(err, "expected \"messages\" (array) or \"prompt\" (string)");
    ChatMessage *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return err_set(err, "out of memory");
    if (!json_is_array(msgs)) {
        m[0] = (ChatMessage){"user", json_string_value(prompt)};
    } else {
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(msgs, i);
            json_t *ro = json_object_get(e, "role"), *co = json_object_get(e, "content");
            if (!json_is_string(ro) || !json_is_string(co)) { free(m); return err_set(err, "messages[%zu]: needs string role and content", i); }
            m[i] = (ChatMessage){json_string_value(ro), json_string_value(co)};
        }
    }
    int gen = gen_flag >= 0 ? gen_flag : !(n && !strcmp(m[n - 1].role, "assistant"));
    json_t *g = json_object_get(obj, "add_generation_prompt");
    if (json_is_boolean(g)) gen = json_is_true(g);
    int rc = chat_render(tpl, m, n, gen, r, err);
    free(m);
    if (rc) return -1;
    json_t *out = json_pack("{s:s%}", "text", r->text, r->len), *sp = json_array();
    for (size_t i = 0; i < r->n_spans; i++)
        json_array_append_new(sp, json_pack("[II]", (json_int_t)r->spans[i].start, (json_int_t)r->spans[i].end));
    json_object_set_new(out, "assistant_spans", sp);
    if (tok) {
        TokIds ids = {0};
        TokOffsets offs = {0};
        unsigned char *mask = NULL;
        int rc2 = tokenizer_encode_offsets(tok, r->text, r->len, &ids, &offs, err);
        if (!rc2 && !(mask = malloc(ids.n + 1))) rc2 = err_set(err, "out of memory");
        if (!rc2) {
            chat_assistant_mask(r, offs.start, ids.n, mask);
            json_t *a = json_array(), *mk = json_array();
            for (size_t i = 0; i < ids.n; i++) {
                json_array_append_new(a, json_integer(ids.ids[i]));
                json_array_append_new(mk, json_integer(mask[i]));
            }
            json_object_set_new(out, "ids", a);
            json_object_set_new(out, "assistant_mask", mk);
        }
        free(mask);
        free(offs.start);
        free(offs.end);
        free(ids.ids);
        if (rc2) { json_decref(out); return -1; }
    }
    char *s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(out);
    if (!s) return err_set(err, "out of memory");
    puts(s);
    free(s);
    return 0;
}

int cmd_chat_template(int argc, char **argv) {
    const char *name = NULL, *file = NULL, *config = NULL, *tok_path = NULL;
    int gen = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--template") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--template-file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer-config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok_path = argv[++i];
        else if (!strcmp(argv[i], "--generation-prompt")) gen = 1;
        else if (!strcmp(argv[i], "--no-generation-prompt")) gen = 0;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else { fprintf(stderr, "r1c chat-template: unknown argument '%s'\n", argv[i]); usage(stderr); return 2; }
    }
    if (!!name + !!file + !!config != 1) {
        fprintf(stderr, "r1c chat-template: give exactly one of --template, --template-file, --tokenizer-config\n");
        usage(stderr);
        return 2;
    }
    Err err = {{0}};
    ChatTemplate tpl;
    int rc = name ? chat_template_by_name(&tpl, name, &err)
                  : file ? chat_template_from_file(&tpl, file, &err) : chat_template_from_config(&tpl, config, &err);
    if (rc) { fprintf(stderr, "r1c chat-template: %s\n", err.msg); return name ? 2 : 1; }
    Tokenizer *tok = NULL;
    if (tok_path && tokenizer_load(&tok, tok_path, &err)) {
        fprintf(stderr, "r1c chat-template: %s\n", err.msg);
        chat_template_free(&tpl);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    ChatRender r = {0};
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (!n) continue;
        json_error_t je;
        json_t *obj = json_loadb(line, (size_t)n, 0, &je);
        if (!obj) { fprintf(stderr, "r1c chat-template: stdin line %ld: invalid JSON: %s\n", lineno, je.text); rc = 1; break; }
        int r1 = render_line(&tpl, tok, obj, gen, &r, &err);
        json_decref(obj);
        if (r1) { fprintf(stderr, "r1c chat-template: stdin line %ld: %s\n", lineno, err.msg); rc = 1; break; }
    }
    free(line);
    chat_render_free(&r);
    tokenizer_free(tok);
    chat_template_free(&tpl);
    if (fflush(stdout)) { fprintf(stderr, "r1c chat-template: write error on stdout\n"); rc = 1; }
    return rc;
}
