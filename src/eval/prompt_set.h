/* What sampling commands (eval, sample) set up the same way: a dataset,
 * the model's tokenizer and chat template, the model, and every prompt
 * rendered and encoded. */
#ifndef R1C_EVAL_PROMPT_SET_H
#define R1C_EVAL_PROMPT_SET_H

#include <jansson.h>

#include "gen/prompt.h"
#include "io/dataset.h"
#include "model/model.h"

typedef struct PromptSet {
    Dataset data;
    Tokenizer *tok;
    ChatTemplate tmpl;
    Model model;
    TokIds *ids;    /* (data.n) encoded prompts */
    json_t **recs;  /* (data.n) reward records (owned by data) */
} PromptSet;

typedef struct PromptSetOptions {
    const char *model, *data, *format, *template_name, *system, *prompt_suffix;
    int limit;
    const Backend *be; /* where the model runs (NULL: the CPU) */
} PromptSetOptions;

int prompt_set_load(PromptSet *ps, const PromptSetOptions *o, Err *err);
void prompt_set_free(PromptSet *ps);

#endif
