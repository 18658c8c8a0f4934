/* Chat templates: rendered strings (and ids) equal the reference Jinja
 * templates' output (fixtures from tests/ref/make_tokenizer_fixtures.py);
 * assistant spans; recognition from tokenizer_config.json; template files. */
#include <jansson.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "io/chat_template.h"
#include "io/tokenizer.h"
#include "check.h"

#define SHARED "../shared/data/"

static const char *end_marker(const char *tpl) {
    if (!strncmp(tpl, "qwen", 4)) return "<|im_end|>";
    if (!strcmp(tpl, "llama3")) return "<|eot_id|>";
    if (!strcmp(tpl, "r1-distill")) return "<｜end▁of▁sentence｜>";
    return "";
}

static void check_fixtures(void) {
    json_error_t je;
    FILE *fp = fopen("tests/fixtures/tokenizer/chat.jsonl", "r");
    CHECK(fp != NULL);
    if (!fp) return;
    Tokenizer *toks[2] = {NULL, NULL};
    const char *tok_names[2] = {"qwen3", "llama3"};
    int tok_tried[2] = {0, 0};
    char *line = NULL;
    size_t cap = 0;
    int rows = 0, id_rows = 0;
    ChatRender r = {0};
    Err err = {{0}};
    while (getline(&line, &cap, fp) > 0) {
        json_t *o = json_loads(line, 0, &je);
        CHECK(o != NULL);
        if (!o) continue;
        const char *name = json_string_value(json_object_get(o, "template"));
        json_t *msgs = json_object_get(o, "messages");
        size_t n = json_array_size(msgs);
        ChatMessage m[16];
        size_t n_asst = 0;
        for (size_t i = 0; i < n && i < 16; i++) {
            m[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
            m[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
            n_asst += !strcmp(m[i].role, "assistant");
        }
        ChatTemplate t;
        CHECK(chat_template_by_name(&t, name, &err) == 0);
        int gen = json_is_true(json_object_get(o, "add_generation_prompt"));
        CHECKF(chat_render(&t, m, n, gen, &r, &err) == 0, "%s", err.msg);
        const char *want = json_string_value(json_object_get(o, "text"));
        CHECKF(!strcmp(r.text, want), "template %s row %d:\n got: %s\nwant: %s", name, rows + 1, r.text, want);
        CHECKF(r.n_spans == n_asst, "template %s row %d: %zu spans for %zu assistant turns", name, rows + 1, r.n_spans, n_asst);
        const char *mk = end_marker(name);
        for (size_t s = 0; s < r.n_spans; s++) {
            ChatSpan sp = r.spans[s];
            CHECK(sp.start <= sp.end && sp.end <= r.len);
            CHECK(sp.end - sp.start >= strlen(mk) && !memcmp(r.text + sp.end - strlen(mk), mk, strlen(mk)));
        }
        json_t *ids = json_object_get(o, "ids");
        const char *tn = json_string_value(json_object_get(o, "tokenizer"));
        for (int k = 0; json_is_array(ids) && tn && k < 2; k++) {
            if (strcmp(tn, tok_names[k])) continue;
            if (!tok_tried[k]) {
                char path[256];
                snprintf(path, sizeof path, SHARED "tokenizers/%s/tokenizer.json", tok_names[k]);
                tok_tried[k] = 1;
                if (access(path, R_OK)) SKIP("chat ids for %s: %s is absent", tok_names[k], path);
                else CHECK(tokenizer_load(&toks[k], path, &err) == 0);
            }
            if (!toks[k]) continue;
            TokIds got = {0};
            TokOffsets offs = {0};
            CHECK(tokenizer_encode_offsets(toks[k], r.text, r.len, &got, &offs, &err) == 0);
            /* the SFT mask selects exactly the assistant spans' text */
            unsigned char *mask = malloc(got.n + 1);
            chat_assistant_mask(&r, offs.start, got.n, mask);
            TokIds sel = {0};
            for (size_t i = 0; i < got.n; i++)
                if (mask[i]) CHECK(tokids_push(&sel, got.ids[i], &err) == 0);
            char *dec;
            size_t dl;
            CHECK(tokenizer_decode(toks[k], sel.ids, sel.n, 0, &dec, &dl, &err) == 0);
            char *cat = malloc(r.len + 1);
            size_t cl = 0;
            for (size_t q = 0; q < r.n_spans; q++) {
                memcpy(cat + cl, r.text + r.spans[q].start, r.spans[q].end - r.spans[q].start);
                cl += r.spans[q].end - r.spans[q].start;
            }
            CHECKF(dl == cl && !memcmp(dec, cat, cl), "template %s row %d: masked tokens != assistant spans", name, rows + 1);
            free(dec);
            free(cat);
            free(sel.ids);
            free(mask);
            free(offs.start);
            free(offs.end);
            int same = got.n == json_array_size(ids);
            for (size_t i = 0; same && i < got.n; i++) same = got.ids[i] == json_integer_value(json_array_get(ids, i));
            CHECKF(same, "template %s row %d: ids differ", name, rows + 1);
            id_rows++;
            free(got.ids);
        }
        json_decref(o);
        rows++;
    }
    printf("chat fixtures: %d renders equal, %d with ids\n", rows, id_rows);
    CHECK(rows >= 40);
    free(line);
    fclose(fp);
    chat_render_free(&r);
    tokenizer_free(toks[0]);
    tokenizer_free(toks[1]);
}

static void check_recognise(void) {
    Err err = {{0}};
    ChatTemplate t;
    const char *cfg = SHARED "tokenizers/qwen3/tokenizer_config.json";
    if (access(cfg, R_OK)) SKIP("%s is absent", cfg);
    else CHECK(chat_template_from_config(&t, cfg, &err) == 0 && t.kind == CHAT_TEMPLATE_QWEN3);
    FILE *fp = fopen(SHARED "tokenizers/deepseek-r1-distill-qwen/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "r");
    if (!fp) SKIP("R1-Distill jinja template is absent from ../shared/data");
    else {
        static char buf[65536];
        size_t n = fread(buf, 1, sizeof buf - 1, fp);
        buf[n] = 0;
        fclose(fp);
        CHECK(chat_template_recognise(&t, buf, &err) == 0 && t.kind == CHAT_TEMPLATE_R1_DISTILL);
    }
    CHECK(chat_template_recognise(&t, "{{ messages }}", &err) == -1 && strstr(err.msg, "--template"));
    CHECK(chat_template_recognise(&t, "<|start_header_id|><|eot_id|>Cutting Knowledge Date", &err) == -1);
    CHECK(chat_template_by_name(&t, "nope", &err) == -1 && strstr(err.msg, "unknown chat template 'nope'"));
}

static void check_file_template(void) {
    char path[] = "/tmp/r1c-tpl-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *tpl = "{system}|Q: {prompt} {{x}}\nA:";
    CHECK(write(fd, tpl, strlen(tpl)) == (ssize_t)strlen(tpl));
    close(fd);
    Err err = {{0}};
    ChatTemplate t;
    CHECKF(chat_template_from_file(&t, path, &err) == 0, "%s", err.msg);
    ChatMessage m[3] = {{"system", "S"}, {"user", "2+2?"}, {"assistant", " 4"}};
    ChatRender r = {0};
    CHECK(chat_render(&t, m, 3, 0, &r, &err) == 0 && !strcmp(r.text, "S|Q: 2+2? {x}\nA: 4"));
    CHECK(r.n_spans == 1 && r.spans[0].end == r.len && r.spans[0].start == r.len - 2);
    ChatMessage two[3] = {{"user", "a"}, {"user", "b"}};
    CHECK(chat_render(&t, two, 2, 1, &r, &err) == -1 && strstr(err.msg, "one user turn"));
    ChatMessage tool[1] = {{"tool", "x"}};
    CHECK(chat_render(&t, tool, 1, 1, &r, &err) == -1 && strstr(err.msg, "role 'tool'"));
    chat_render_free(&r);
    chat_template_free(&t);
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(write(fd, "{question}", 10) == 10);
    close(fd);
    CHECK(chat_template_from_file(&t, path, &err) == -1 && strstr(err.msg, "unknown placeholder"));
    unlink(path);
}

int main(void) {
    check_fixtures();
    check_recognise();
    check_file_template();
    return check_summary("test_tokenizer_chat");
}
