/* Prompt rendering and encoding (see prompt.h). */
#include "gen/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int prompt_encode(Tokenizer *tok, const ChatTemplate *tmpl, const char *system, const char *user, TokIds *out,
                  char **text, Err *err) {
    memset(out, 0, sizeof *out);
    ChatMessage msgs[2];
    size_t n = 0;
    if (system && system[0]) msgs[n++] = (ChatMessage){"system", system};
    msgs[n++] = (ChatMessage){"user", user};
    ChatRender r = {0};
    if (chat_render(tmpl, msgs, n, 1, &r, err) != 0) {
        chat_render_free(&r);
        return -1;
    }
    int rc = tokenizer_encode(tok, r.text, r.len, out, err);
    if (!rc && text) {
        *text = r.text;
        r.text = NULL;
    }
    chat_render_free(&r);
    return rc;
}

int prompt_template_load(ChatTemplate *t, const char *name, const char *model_dir, Err *err) {
    memset(t, 0, sizeof *t);
    if (name && name[0] && strcmp(name, "auto") != 0) {
        size_t l = strlen(name);
        if (strchr(name, '/') || (l > 4 && (!strcmp(name + l - 4, ".txt") || !strcmp(name + l - 5, ".tmpl"))))
            return chat_template_from_file(t, name, err);
        return chat_template_by_name(t, name, err);
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", model_dir);
    if (access(p, F_OK) != 0)
        return err_set(err, "%s: no tokenizer_config.json to take the chat template from; choose one with "
                       "template: r1-zero | qwen2.5 | qwen3 | r1-distill | llama3 | FILE", model_dir);
    return chat_template_from_config(t, p, err);
}
