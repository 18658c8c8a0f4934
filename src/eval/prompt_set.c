/* Dataset + tokenizer + template + model + encoded prompts (see prompt_set.h). */
#include "eval/prompt_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int prompt_set_load(PromptSet *ps, const PromptSetOptions *o, Err *err) {
    memset(ps, 0, sizeof *ps);
    DatasetOptions dopt = {.prompt_suffix = o->prompt_suffix, .limit = o->limit};
    if (dataset_format_parse(o->format ? o->format : "auto", &dopt.format) != 0)
        return err_set(err, "unknown data format '%s' (" DATASET_FORMAT_NAMES ")", o->format);
    char tp[4096];
    snprintf(tp, sizeof tp, "%s/tokenizer.json", o->model);
    int rc = dataset_load(&ps->data, o->data, &dopt, err);
    if (!rc) rc = tokenizer_load(&ps->tok, tp, err);
    if (!rc) rc = prompt_template_load(&ps->tmpl, o->template_name, o->model, err);
    if (!rc) rc = model_load(&ps->model, o->model, o->be ? o->be : backend_cpu(), err);
    if (!rc) {
        ps->ids = calloc(ps->data.n, sizeof *ps->ids);
        ps->recs = calloc(ps->data.n, sizeof *ps->recs);
        for (int i = 0; i < ps->data.n && !rc; i++) {
            rc = prompt_encode(ps->tok, &ps->tmpl, o->system, ps->data.ex[i].prompt, &ps->ids[i], NULL, err);
            ps->recs[i] = ps->data.ex[i].record;
        }
    }
    if (rc) prompt_set_free(ps);
    return rc;
}

void prompt_set_free(PromptSet *ps) {
    for (int i = 0; ps->ids && i < ps->data.n; i++) free(ps->ids[i].ids);
    free(ps->ids);
    free(ps->recs);
    if (ps->model.be) model_free(&ps->model);
    chat_template_free(&ps->tmpl);
    if (ps->tok) tokenizer_free(ps->tok);
    if (ps->data.ex) dataset_free(&ps->data);
    memset(ps, 0, sizeof *ps);
}
