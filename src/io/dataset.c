/* Dataset loading (see dataset.h). */
#include "io/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

int dataset_format_parse(const char *s, DatasetFormat *out) {
    static const char *names[] = {"auto", "jsonl", "gsm8k", "math", "countdown", "humaneval", "mbpp"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(s, names[i])) return *out = (DatasetFormat)i, 0;
    return -1;
}

void dataset_free(Dataset *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->ex[i].prompt);
        json_decref(d->ex[i].record);
    }
    free(d->ex);
    memset(d, 0, sizeof *d);
}

char *dataset_countdown_prompt(const json_t *numbers, long long target) {
    char nums[512] = "";
    size_t i;
    json_t *v;
    json_array_foreach(numbers, i, v) {
        size_t l = strlen(nums);
        snprintf(nums + l, sizeof nums - l, "%s%lld", i ? ", " : "", (long long)json_integer_value(v));
    }
    char *out = malloc(1024);
    snprintf(out, 1024,
             "Using the numbers [%s], create an equation that equals %lld. You can use basic arithmetic operations "
             "(+, -, *, /) and each number can only be used once. Show your work in <think> </think> tags. And "
             "return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.",
             nums, target);
    return out;
}

/* The last \boxed{...} of a solution (braces balanced), or NULL. */
static char *last_boxed(const char *s) {
    const char *best = NULL;
    for (const char *p = s; (p = strstr(p, "\\boxed")); p += 6) best = p;
    if (!best) return NULL;
    const char *b = strchr(best, '{');
    if (!b) return NULL;
    int depth = 0;
    for (const char *q = b; *q; q++) {
        if (*q == '{') depth++;
        else if (*q == '}' && --depth == 0) return strndup(b + 1, (size_t)(q - b - 1));
    }
    return NULL;
}

static DatasetFormat detect(const json_t *j) {
    if (json_is_string(json_object_get(j, "test")) && json_is_string(json_object_get(j, "entry_point")))
        return DATASET_FORMAT_HUMANEVAL;
    if (json_is_array(json_object_get(j, "test_list"))) return DATASET_FORMAT_MBPP;
    if (json_object_get(j, "question") && json_is_string(json_object_get(j, "answer")) &&
        strstr(json_string_value(json_object_get(j, "answer")), "####"))
        return DATASET_FORMAT_GSM8K;
    if (json_object_get(j, "problem") && (json_object_get(j, "answer") || json_object_get(j, "solution")))
        return DATASET_FORMAT_MATH;
    if ((json_object_get(j, "input") && json_object_get(j, "output")) ||
        (json_object_get(j, "nums") && json_object_get(j, "target")) ||
        (json_object_get(j, "numbers") && json_object_get(j, "target")))
        return DATASET_FORMAT_COUNTDOWN;
    return DATASET_FORMAT_JSONL;
}

/* A field as text: strings as they are, numbers formatted. */
static char *field_text(const json_t *j, const char *key) {
    json_t *v = json_object_get(j, key);
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
        return strdup(b);
    }
    if (json_is_real(v)) {
        char b[64];
        snprintf(b, sizeof b, "%.17g", json_real_value(v));
        return strdup(b);
    }
    return NULL;
}

/* The instruction for a code problem. HumanEval: the function to complete
 * (as in the chat-model evaluations of DeepSeek-Coder and evalplus); MBPP:
 * the task and its tests, worded as in the MBPP paper. Both ask for one
 * ```python block, which is what the code reward runs. */
static char *code_prompt(const json_t *j, int humaneval) {
    static const char *const ASK = "Write the complete solution in a single ```python code block.";
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    if (!m) return NULL;
    int ok = 1;
    if (humaneval) {
        const char *p = json_string_value(json_object_get(j, "prompt"));
        ok = p && json_is_string(json_object_get(j, "test")) && json_is_string(json_object_get(j, "entry_point"));
        if (ok) fprintf(m, "Complete the following Python function.\n\n```python\n%s```\n\n%s", p, ASK);
    } else {
        const char *t = json_string_value(json_object_get(j, "text"));
        json_t *tl = json_object_get(j, "test_list");
        ok = t && json_is_array(tl) && json_array_size(tl) > 0;
        if (ok) fprintf(m, "You are an expert Python programmer, and here is your task: %s Your code should pass these tests:\n\n", t);
        size_t i;
        json_t *v;
        json_array_foreach(tl, i, v) {
            if (!json_is_string(v)) ok = 0;
            else if (ok) fprintf(m, "%s\n", json_string_value(v));
        }
        if (ok) fprintf(m, "\n%s", ASK);
    }
    fclose(m);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

static int parse_example(Example *e, json_t *j, DatasetFormat f, const DatasetOptions *o, const char *where,
                         Err *err) {
    char *prompt = NULL, *answer = NULL;
    json_t *rec = json_deep_copy(j);
    switch (f) {
    case DATASET_FORMAT_GSM8K: {
        prompt = field_text(j, "question");
        char *full = field_text(j, "answer");
        char *h = full ? strstr(full, "####") : NULL;
        if (h) {
            h += 4;
            while (*h == ' ') h++;
            answer = malloc(strlen(h) + 1);
            size_t k = 0;
            for (char *p = h; *p && *p != '\n'; p++)
                if (*p != ',') answer[k++] = *p;
            while (k && answer[k - 1] == ' ') k--;
            answer[k] = 0;
        }
        free(full);
        if (!prompt || !answer) {
            free(prompt);
            free(answer);
            json_decref(rec);
            return err_set(err, "%s: GSM8K line needs \"question\" and an \"answer\" ending in \"#### N\"", where);
        }
        break;
    }
    case DATASET_FORMAT_MATH: {
        prompt = field_text(j, "problem");
        answer = field_text(j, "answer");
        if (!answer) {
            char *sol = field_text(j, "solution");
            if (sol) answer = last_boxed(sol);
            free(sol);
        }
        if (!prompt || !answer) {
            free(prompt);
            free(answer);
            json_decref(rec);
            return err_set(err, "%s: MATH line needs \"problem\" and \"answer\" (or a \\boxed{} in \"solution\")", where);
        }
        break;
    }
    case DATASET_FORMAT_COUNTDOWN: {
        json_t *nums = json_array();
        long long target = 0;
        int ok = 0;
        if (json_object_get(j, "input")) {
            char *in = field_text(j, "input"), *out = field_text(j, "output");
            if (in && out) {
                ok = 1;
                for (char *p = in; *p;) {
                    char *end;
                    long long v = strtoll(p, &end, 10);
                    if (end == p) { ok = 0; break; }
                    json_array_append_new(nums, json_integer(v));
                    p = end;
                    while (*p == ',' || *p == ' ') p++;
                }
                char *end;
                target = strtoll(out, &end, 10);
                if (*end || end == out) ok = 0;
            }
            free(in);
            free(out);
        } else {
            json_t *a = json_object_get(j, "nums");
            if (!a) a = json_object_get(j, "numbers");
            json_t *t = json_object_get(j, "target");
            if (json_is_array(a) && json_is_integer(t)) {
                ok = 1;
                size_t i;
                json_t *v;
                json_array_foreach(a, i, v) {
                    if (!json_is_integer(v)) ok = 0;
                    else json_array_append_new(nums, json_integer(json_integer_value(v)));
                }
                target = json_integer_value(t);
            }
        }
        if (!ok || json_array_size(nums) == 0) {
            json_decref(nums);
            json_decref(rec);
            return err_set(err, "%s: countdown line needs {\"input\": \"3,7,25\", \"output\": \"11\"} or "
                           "{\"nums\": [..], \"target\": N}", where);
        }
        prompt = dataset_countdown_prompt(nums, target);
        json_object_set_new(rec, "numbers", nums);
        json_object_set_new(rec, "target", json_integer(target));
        char b[32];
        snprintf(b, sizeof b, "%lld", target);
        answer = strdup(b);
        break;
    }
    case DATASET_FORMAT_HUMANEVAL:
    case DATASET_FORMAT_MBPP:
        prompt = code_prompt(j, f == DATASET_FORMAT_HUMANEVAL);
        if (!prompt) {
            json_decref(rec);
            return err_set(err, "%s: %s", where,
                           f == DATASET_FORMAT_HUMANEVAL ? "HumanEval line needs string \"prompt\", \"test\" and \"entry_point\""
                                                         : "MBPP line needs string \"text\" and a \"test_list\" of strings");
        }
        break;
    default: {
        const char *pf = o->prompt_field;
        if (!pf) pf = json_object_get(j, "prompt") ? "prompt" : json_object_get(j, "question") ? "question" : "problem";
        const char *af = o->answer_field ? o->answer_field : "answer";
        prompt = field_text(j, pf);
        answer = field_text(j, af);
        if (!prompt) {
            json_decref(rec);
            free(answer);
            return err_set(err, "%s: missing string field \"%s\" (set the prompt field name)", where, pf);
        }
        break;
    }
    }
    if (answer) json_object_set_new(rec, "answer", json_string(answer));
    free(answer);
    if (o->prompt_suffix && o->prompt_suffix[0]) {
        size_t a = strlen(prompt), b = strlen(o->prompt_suffix);
        prompt = realloc(prompt, a + b + 2);
        prompt[a] = '\n';
        memcpy(prompt + a + 1, o->prompt_suffix, b + 1);
    }
    e->prompt = prompt;
    e->record = rec;
    return 0;
}

int dataset_load(Dataset *d, const char *path, const DatasetOptions *o, Err *err) {
    memset(d, 0, sizeof *d);
    FILE *fp = fopen(path, "r");
    if (!fp) return err_set(err, "%s: cannot open dataset", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0, ecap = 0;
    DatasetFormat f = o->format;
    while ((len = getline(&line, &cap, fp)) > 0) {
        lineno++;
        int blank = 1;
        for (ssize_t i = 0; i < len; i++)
            if (line[i] != ' ' && line[i] != '\n' && line[i] != '\r' && line[i] != '\t') blank = 0;
        if (blank) continue;
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        json_t *j = json_load_buf(line, (size_t)len, where, err);
        if (!j) { rc = -1; break; }
        if (!json_is_object(j)) {
            json_decref(j);
            rc = err_set(err, "%s: expected a JSON object", where);
            break;
        }
        if (f == DATASET_FORMAT_AUTO) f = detect(j);
        if (d->n == ecap) {
            ecap = ecap ? 2 * ecap : 256;
            d->ex = realloc(d->ex, ecap * sizeof *d->ex);
        }
        rc = parse_example(&d->ex[d->n], j, f, o, where, err);
        json_decref(j);
        if (rc) break;
        d->n++;
        if (o->limit > 0 && d->n >= o->limit) break;
    }
    free(line);
    fclose(fp);
    if (!rc && d->n == 0) rc = err_set(err, "%s: no examples", path);
    if (rc) dataset_free(d);
    return rc;
}
