/* Built-in chat templates (see chat_template.h). Each function mirrors the
 * reference Jinja template of its model line by line for the roles we
 * support (system, user, assistant; tool calls are refused), so the
 * rendered string, and hence the token ids, match apply_chat_template. */
#include "io/chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "io/utf8.h"

static const char R1_ZERO_PREAMBLE[] =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.";
static const char QWEN25_DEFAULT_SYSTEM[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

static const struct { const char *name; ChatTemplateKind kind; int thinking; } NAMES[] = {
    {"r1-zero", CHAT_TEMPLATE_R1_ZERO, 1},       {"qwen2.5", CHAT_TEMPLATE_QWEN25, 1},
    {"qwen3", CHAT_TEMPLATE_QWEN3, 1},           {"qwen3-nothink", CHAT_TEMPLATE_QWEN3, 0},
    {"r1-distill", CHAT_TEMPLATE_R1_DISTILL, 1}, {"llama3", CHAT_TEMPLATE_LLAMA3, 1},
};

int chat_template_by_name(ChatTemplate *t, const char *name, Err *err) {
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (!strcmp(name, NAMES[i].name)) {
            t->kind = NAMES[i].kind;
            t->thinking = NAMES[i].thinking;
            return 0;
        }
    return err_set(err, "unknown chat template '%s' (known: r1-zero, qwen2.5, qwen3, qwen3-nothink, r1-distill, llama3)", name);
}

const char *chat_template_name(const ChatTemplate *t) {
    if (t->kind == CHAT_TEMPLATE_FILE) return "file";
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (NAMES[i].kind == t->kind && NAMES[i].thinking == t->thinking) return NAMES[i].name;
    return "?";
}

void chat_template_free(ChatTemplate *t) {
    free(t->file_text);
    t->file_text = NULL;
}

/* Checks the placeholders once at load so rendering cannot fail on them. */
static int file_template_check(const char *s, const char *path, Err *err) {
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '{' && s[i + 1] == '{') { i++; continue; }
        if (s[i] == '}' && s[i + 1] == '}') { i++; continue; }
        if (s[i] == '{') {
            if (!strncmp(s + i, "{system}", 8)) { i += 7; continue; }
            if (!strncmp(s + i, "{prompt}", 8)) { i += 7; continue; }
            return err_set(err, "%s: unknown placeholder at byte %zu (use {system}, {prompt}, {{ or }})", path, i);
        }
        if (s[i] == '}') return err_set(err, "%s: lone '}' at byte %zu (write }} for a literal brace)", path, i);
    }
    if (!strstr(s, "{prompt}")) return err_set(err, "%s: template has no {prompt} placeholder", path);
    return 0;
}

int chat_template_from_file(ChatTemplate *t, const char *path, Err *err) {
    memset(t, 0, sizeof *t);
    char *buf;
    size_t len;
    if (file_read_all(path, &buf, &len, 1 << 20, err)) return -1;
    if (strlen(buf) != len || utf8_validate((const uint8_t *)buf, len) != len) {
        free(buf);
        return err_set(err, "%s: template is not valid UTF-8 text", path);
    }
    if (file_template_check(buf, path, err)) { free(buf); return -1; }
    t->kind = CHAT_TEMPLATE_FILE;
    t->thinking = 1;
    t->file_text = buf;
    return 0;
}

int chat_template_recognise(ChatTemplate *t, const char *j, Err *err) {
    memset(t, 0, sizeof *t);
    t->thinking = 1;
    if (strstr(j, "<｜User｜>") && strstr(j, "<｜Assistant｜>")) { t->kind = CHAT_TEMPLATE_R1_DISTILL; return 0; }
    if (strstr(j, "<|im_start|>")) {
        if (strstr(j, "enable_thinking") || strstr(j, "</think>")) { t->kind = CHAT_TEMPLATE_QWEN3; return 0; }
        if (strstr(j, QWEN25_DEFAULT_SYSTEM)) { t->kind = CHAT_TEMPLATE_QWEN25; return 0; }
        return err_set(err, "ChatML chat_template not recognised as Qwen2.5 or Qwen3; pick one with --template");
    }
    if (strstr(j, "<|start_header_id|>") && strstr(j, "<|eot_id|>")) {
        if (strstr(j, "Cutting Knowledge Date") || strstr(j, "ipython"))
            return err_set(err, "Llama 3.1+ chat_template (dates, tools) is not built in; pick one with --template");
        t->kind = CHAT_TEMPLATE_LLAMA3;
        return 0;
    }
    return err_set(err, "chat_template not recognised as a built-in; pick one with --template NAME or --template-file");
}

int chat_template_from_config(ChatTemplate *t, const char *path, Err *err) {
    json_t *root = json_load_path(path, err);
    if (!root) return -1;
    json_t *ct = json_object_get(root, "chat_template");
    const char *s = NULL;
    if (json_is_string(ct)) s = json_string_value(ct);
    /* newer configs hold a list of {"name", "template"}; use "default" */
    for (size_t i = 0; json_is_array(ct) && i < json_array_size(ct); i++) {
        json_t *e = json_array_get(ct, i), *nm = json_object_get(e, "name");
        if (json_is_string(nm) && !strcmp(json_string_value(nm), "default") && json_is_string(json_object_get(e, "template")))
            s = json_string_value(json_object_get(e, "template"));
    }
    int rc = s ? chat_template_recognise(t, s, err) : err_set(err, "no 'chat_template' string");
    json_decref(root);
    if (rc) err_prefix(err, "%s", path);
    return rc;
}

/* ---- rendering ---- */

static int add(ChatRender *r, const char *s, size_t n, Err *err) {
    if (r->len + n + 1 > r->cap) {
        size_t c = r->cap ? r->cap : 256;
        while (c < r->len + n + 1) c *= 2;
        char *p = realloc(r->text, c);
        if (!p) return err_set(err, "out of memory");
        r->text = p;
        r->cap = c;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
    return 0;
}

static int adds(ChatRender *r, const char *s, Err *err) { return add(r, s, strlen(s), err); }

static int span(ChatRender *r, size_t start, Err *err) {
    if (r->n_spans == r->spans_cap) {
        size_t c = r->spans_cap ? r->spans_cap * 2 : 8;
        ChatSpan *p = realloc(r->spans, c * sizeof *p);
        if (!p) return err_set(err, "out of memory");
        r->spans = p;
        r->spans_cap = c;
    }
    r->spans[r->n_spans++] = (ChatSpan){start, r->len};
    return 0;
}

void chat_render_free(ChatRender *r) {
    free(r->text);
    free(r->spans);
    memset(r, 0, sizeof *r);
}

/* A view into a message: Python-style string slicing without copies. */
typedef struct Str { const char *p; size_t n; } Str;

static Str str_of(const char *s) { return (Str){s, strlen(s)}; }

static const char *find(Str s, const char *needle) {
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= s.n; i++)
        if (!memcmp(s.p + i, needle, nl)) return s.p + i;
    return NULL;
}

static const char *find_last(Str s, const char *needle) {
    size_t nl = strlen(needle);
    for (size_t i = s.n + 1; i-- > 0;)
        if (i + nl <= s.n && !memcmp(s.p + i, needle, nl)) return s.p + i;
    return NULL;
}

static Str lstrip_nl(Str s) { while (s.n && s.p[0] == '\n') { s.p++; s.n--; } return s; }
static Str rstrip_nl(Str s) { while (s.n && s.p[s.n - 1] == '\n') s.n--; return s; }

/* Python str.isspace(), which Jinja's trim filter (str.strip) uses. */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static Str py_strip(Str s) {
    uint32_t cp;
    size_t l;
    while (s.n && (l = utf8_decode((const uint8_t *)s.p, s.n, &cp)) && py_space(cp)) { s.p += l; s.n -= l; }
    while (s.n) {
        size_t k = s.n - 1;
        while (k > 0 && ((uint8_t)s.p[k] & 0xC0) == 0x80 && s.n - k < 4) k--;
        if (!utf8_decode((const uint8_t *)s.p + k, s.n - k, &cp) || !py_space(cp)) break;
        s.n = k;
    }
    return s;
}

static int role_is(const ChatMessage *m, const char *r) { return !strcmp(m->role, r); }

static int check_roles(const ChatTemplate *t, const ChatMessage *m, size_t n, Err *err) {
    for (size_t i = 0; i < n; i++) {
        if (!m[i].role || !m[i].content) return err_set(err, "message %zu: role and content are required", i);
        if (!role_is(&m[i], "system") && !role_is(&m[i], "user") && !role_is(&m[i], "assistant"))
            return err_set(err, "message %zu: role '%s' is not supported by the %s template (system, user, assistant)", i,
                           m[i].role, chat_template_name(t));
        if (utf8_validate((const uint8_t *)m[i].content, strlen(m[i].content)) != strlen(m[i].content))
            return err_set(err, "message %zu: content is not valid UTF-8", i);
    }
    return 0;
}

static int render_qwen25(const ChatMessage *m, size_t n, int gen, ChatRender *r, Err *err) {
    int e = 0;
    if (n && role_is(&m[0], "system")) e |= adds(r, "<|im_start|>system\n", err) | adds(r, m[0].content, err) | adds(r, "<|im_end|>\n", err);
    else e |= adds(r, "<|im_start|>system\n", err) | adds(r, QWEN25_DEFAULT_SYSTEM, err) | adds(r, "<|im_end|>\n", err);
    for (size_t i = 0; i < n && !e; i++) {
        if (i == 0 && role_is(&m[i], "system")) continue;
        e |= adds(r, "<|im_start|>", err) | adds(r, m[i].role, err) | adds(r, "\n", err);
        size_t start = r->len;
        e |= adds(r, m[i].content, err) | adds(r, "<|im_end|>", err);
        if (role_is(&m[i], "assistant")) e |= span(r, start, err);
        e |= adds(r, "\n", err);
    }
    if (gen) e |= adds(r, "<|im_start|>assistant\n", err);
    return e ? -1 : 0;
}

static int render_qwen3(const ChatMessage *m, size_t n, int gen, int thinking, ChatRender *r, Err *err) {
    int e = 0;
    if (n && role_is(&m[0], "system")) e |= adds(r, "<|im_start|>system\n", err) | adds(r, m[0].content, err) | adds(r, "<|im_end|>\n", err);
    /* the last user turn that is not a tool response: reasoning is kept
     * only for assistant turns after it */
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        Str c = str_of(m[k].content);
        int tool_resp = c.n >= 16 && !strncmp(c.p, "<tool_response>", 15) && !strcmp(c.p + c.n - 16, "</tool_response>");
        if (role_is(&m[k], "user") && !tool_resp) { last_query = k; break; }
    }
    for (size_t i = 0; i < n && !e; i++) {
        if (role_is(&m[i], "user") || (role_is(&m[i], "system") && i > 0)) {
            e |= adds(r, "<|im_start|>", err) | adds(r, m[i].role, err) | adds(r, "\n", err) | adds(r, m[i].content, err) |
                 adds(r, "<|im_end|>\n", err);
            continue;
        }
        if (!role_is(&m[i], "assistant")) continue;
        Str content = str_of(m[i].content), reasoning = {"", 0};
        if (find(content, "</think>")) {
            const char *first = find(content, "</think>"), *last = find_last(content, "</think>");
            Str before = rstrip_nl((Str){content.p, (size_t)(first - content.p)});
            const char *th = find_last(before, "<think>");
            if (th) before = (Str){th + 7, before.n - (size_t)(th + 7 - before.p)};
            reasoning = lstrip_nl(before);
            content = lstrip_nl((Str){last + 8, content.n - (size_t)(last + 8 - content.p)});
        }
        e |= adds(r, "<|im_start|>assistant\n", err);
        size_t start = r->len;
        if (i > last_query && (i == n - 1 || reasoning.n)) {
            Str rs = lstrip_nl(rstrip_nl(reasoning));
            e |= adds(r, "<think>\n", err) | add(r, rs.p, rs.n, err) | adds(r, "\n</think>\n\n", err);
            content = lstrip_nl(content);
        }
        e |= add(r, content.p, content.n, err) | adds(r, "<|im_end|>", err);
        e |= span(r, start, err) | adds(r, "\n", err);
    }
    if (gen) {
        e |= adds(r, "<|im_start|>assistant\n", err);
        if (!thinking) e |= adds(r, "<think>\n\n</think>\n\n", err);
    }
    return e ? -1 : 0;
}

static int render_r1_distill(const ChatMessage *m, size_t n, int gen, ChatRender *r, Err *err) {
    const char *system = "";
    for (size_t i = 0; i < n; i++)
        if (role_is(&m[i], "system")) system = m[i].content; /* the last one wins, as in the template */
    int e = adds(r, "<｜begin▁of▁sentence｜>", err) | adds(r, system, err);
    for (size_t i = 0; i < n && !e; i++) {
        if (role_is(&m[i], "user")) e |= adds(r, "<｜User｜>", err) | adds(r, m[i].content, err);
        if (!role_is(&m[i], "assistant")) continue;
        Str c = str_of(m[i].content);
        const char *last = find_last(c, "</think>");
        if (last) c = (Str){last + 8, c.n - (size_t)(last + 8 - c.p)};
        e |= adds(r, "<｜Assistant｜>", err);
        size_t start = r->len;
        e |= add(r, c.p, c.n, err) | adds(r, "<｜end▁of▁sentence｜>", err) | span(r, start, err);
    }
    if (gen) e |= adds(r, "<｜Assistant｜><think>\n", err);
    return e ? -1 : 0;
}

static int render_llama3(const ChatMessage *m, size_t n, int gen, ChatRender *r, Err *err) {
    int e = 0;
    for (size_t i = 0; i < n && !e; i++) {
        if (i == 0) e |= adds(r, "<|begin_of_text|>", err);
        e |= adds(r, "<|start_header_id|>", err) | adds(r, m[i].role, err) | adds(r, "<|end_header_id|>\n\n", err);
        size_t start = r->len;
        Str c = py_strip(str_of(m[i].content));
        e |= add(r, c.p, c.n, err) | adds(r, "<|eot_id|>", err);
        if (role_is(&m[i], "assistant")) e |= span(r, start, err);
    }
    if (gen) e |= adds(r, "<|start_header_id|>assistant<|end_header_id|>\n\n", err);
    return e ? -1 : 0;
}

/* R1-Zero: "<preamble> User: {prompt}. Assistant:"; a system message
 * replaces the preamble; an assistant turn is appended verbatim after
 * "Assistant:" (its content normally starts with a space), which is
 * exactly prompt + completion as GRPO sees them. */
static int render_r1_zero(const ChatMessage *m, size_t n, int gen, ChatRender *r, Err *err) {
    const char *pre = R1_ZERO_PREAMBLE;
    for (size_t i = 0; i < n; i++)
        if (role_is(&m[i], "system")) pre = m[i].content;
    int e = adds(r, pre, err);
    for (size_t i = 0; i < n && !e; i++) {
        if (role_is(&m[i], "user")) {
            e |= adds(r, " User: ", err) | adds(r, m[i].content, err) | adds(r, ".", err);
            if (i + 1 < n || gen) e |= adds(r, " Assistant:", err);
        } else if (role_is(&m[i], "assistant")) {
            if (i == 0 || !role_is(&m[i - 1], "user")) return err_set(err, "r1-zero template: an assistant turn must follow a user turn");
            size_t start = r->len;
            e |= adds(r, m[i].content, err) | span(r, start, err);
        }
    }
    return e ? -1 : 0;
}

static int render_file(const char *tpl, const ChatMessage *m, size_t n, ChatRender *r, Err *err) {
    const char *system = "", *prompt = NULL, *answer = NULL;
    for (size_t i = 0; i < n; i++) {
        if (role_is(&m[i], "system")) {
            if (prompt) return err_set(err, "template file: a system message must come first");
            system = m[i].content;
        } else if (role_is(&m[i], "user")) {
            if (prompt) return err_set(err, "template file: only one user turn is supported (use a built-in template for multi-turn)");
            prompt = m[i].content;
        } else {
            if (!prompt || answer) return err_set(err, "template file: at most one assistant turn, after the user turn");
            answer = m[i].content;
        }
    }
    if (!prompt) return err_set(err, "template file: a user message is required");
    int e = 0;
    for (size_t i = 0; tpl[i] && !e; i++) {
        if ((tpl[i] == '{' && tpl[i + 1] == '{') || (tpl[i] == '}' && tpl[i + 1] == '}')) { e |= add(r, tpl + i, 1, err); i++; }
        else if (!strncmp(tpl + i, "{system}", 8)) { e |= adds(r, system, err); i += 7; }
        else if (!strncmp(tpl + i, "{prompt}", 8)) { e |= adds(r, prompt, err); i += 7; }
        else e |= add(r, tpl + i, 1, err);
    }
    if (answer) {
        size_t start = r->len;
        e |= adds(r, answer, err) | span(r, start, err);
    }
    return e ? -1 : 0;
}

int chat_render(const ChatTemplate *t, const ChatMessage *m, size_t n, int gen, ChatRender *r, Err *err) {
    r->len = 0;
    r->n_spans = 0;
    if (add(r, "", 0, err)) return -1;
    if (check_roles(t, m, n, err)) return -1;
    switch (t->kind) {
    case CHAT_TEMPLATE_R1_ZERO: return render_r1_zero(m, n, gen, r, err);
    case CHAT_TEMPLATE_QWEN25: return render_qwen25(m, n, gen, r, err);
    case CHAT_TEMPLATE_QWEN3: return render_qwen3(m, n, gen, t->thinking, r, err);
    case CHAT_TEMPLATE_R1_DISTILL: return render_r1_distill(m, n, gen, r, err);
    case CHAT_TEMPLATE_LLAMA3: return render_llama3(m, n, gen, r, err);
    case CHAT_TEMPLATE_FILE: return render_file(t->file_text, m, n, r, err);
    }
    return err_set(err, "invalid chat template");
}

void chat_assistant_mask(const ChatRender *r, const size_t *tok_start, size_t n, unsigned char *mask) {
    size_t k = 0; /* spans are in text order, so one merge-like pass */
    for (size_t i = 0; i < n; i++) {
        while (k < r->n_spans && r->spans[k].end <= tok_start[i]) k++;
        mask[i] = k < r->n_spans && r->spans[k].start <= tok_start[i];
    }
}
