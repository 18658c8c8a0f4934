/* Chat templates as named built-ins (no Jinja engine): each renders a list
 * of (role, content) messages to the exact string the model's reference
 * Jinja template gives, and reports the byte spans of assistant output so
 * SFT can put the loss on assistant tokens only. */
#ifndef R1C_IO_CHAT_TEMPLATE_H
#define R1C_IO_CHAT_TEMPLATE_H

#include <stddef.h>

#include "base/err.h"

typedef enum ChatTemplateKind {
    CHAT_TEMPLATE_R1_ZERO,    /* plain "A conversation between User and Assistant..." (R1 paper) */
    CHAT_TEMPLATE_QWEN25,     /* ChatML with Qwen2.5's default system prompt */
    CHAT_TEMPLATE_QWEN3,      /* ChatML with <think> handling; thinking on/off */
    CHAT_TEMPLATE_R1_DISTILL, /* DeepSeek-R1-Distill: <｜User｜>/<｜Assistant｜>, prompt ends "<think>\n" */
    CHAT_TEMPLATE_LLAMA3,     /* Llama 3 instruct headers and <|eot_id|> */
    CHAT_TEMPLATE_FILE,       /* user text with {system} / {prompt} placeholders */
} ChatTemplateKind;

typedef struct ChatTemplate {
    ChatTemplateKind kind;
    int thinking;    /* Qwen3: 0 adds the empty think block to the generation prompt */
    char *file_text; /* CHAT_TEMPLATE_FILE only (owned) */
} ChatTemplate;

typedef struct ChatMessage {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} ChatMessage;

/* Byte range [start, end) of rendered text the assistant produces: its
 * content plus the end-of-turn marker the model must learn to emit. */
typedef struct ChatSpan {
    size_t start, end;
} ChatSpan;

typedef struct ChatRender {
    char *text; /* NUL-terminated */
    size_t len, cap;
    ChatSpan *spans;
    size_t n_spans, spans_cap;
} ChatRender;

/* Names: r1-zero, qwen2.5, qwen3, qwen3-nothink, r1-distill, llama3. */
int chat_template_by_name(ChatTemplate *t, const char *name, Err *err);
const char *chat_template_name(const ChatTemplate *t);
/* A template file: {system} and {prompt} are replaced, {{ and }} are
 * literal braces; any other {name} is an error. */
int chat_template_from_file(ChatTemplate *t, const char *path, Err *err);
/* Recognises the Jinja chat_template of a tokenizer_config.json. */
int chat_template_from_config(ChatTemplate *t, const char *config_path, Err *err);
int chat_template_recognise(ChatTemplate *t, const char *jinja, Err *err);
void chat_template_free(ChatTemplate *t);

/* Renders messages (appending a generation prompt if asked) into *out,
 * which the caller zero-initialises and frees with chat_render_free. */
int chat_render(const ChatTemplate *t, const ChatMessage *msgs, size_t n, int add_generation_prompt, ChatRender *out,
                Err *err);
void chat_render_free(ChatRender *r);

/* Loss mask for SFT: mask[i] = 1 when token i (which starts at byte
 * tok_start[i] of r->text, see tokenizer_encode_offsets) starts inside an
 * assistant span, else 0. Starts must be non-decreasing. */
void chat_assistant_mask(const ChatRender *r, const size_t *tok_start, size_t n_tokens, unsigned char *mask);

#endif
