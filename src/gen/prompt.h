/* Turns a user prompt into model input: chat template (optional system
 * message, generation prompt) rendered to text, then token ids. Also
 * decodes completions back to text for rewards. */
#ifndef R1C_GEN_PROMPT_H
#define R1C_GEN_PROMPT_H

#include "io/chat_template.h"
#include "io/tokenizer.h"

/* ids: freshly allocated (caller frees out->ids); text optional (malloc'd). */
int prompt_encode(Tokenizer *tok, const ChatTemplate *tmpl, const char *system, const char *user, TokIds *out,
                  char **text, Err *err);
/* The tokenizer next to a model (DIR/tokenizer.json) and the chat template
 * its tokenizer_config.json declares, unless `name` picks one ("auto" or
 * NULL: from the config; a path ending in .txt/.tmpl: a template file). */
int prompt_template_load(ChatTemplate *t, const char *name, const char *model_dir, Err *err);

#endif
