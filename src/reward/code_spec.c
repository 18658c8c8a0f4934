/* Test specs from prompt records: HumanEval, MBPP and stdin/stdout cases
 * (see code.h for the field names). Every field is checked for type and
 * size; a record we cannot use is a reason, not a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/code.h"

#define CODE_MAX_TESTS 4096

static const char *str_field(const json_t *r, const char *k) {
    json_t *v = json_object_get(r, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A field holding JSON, either as JSON or as a JSON-encoded string. */
static json_t *json_field(const json_t *r, const char *k, json_t **owned) {
    json_t *v = json_object_get(r, k);
    if (!json_is_string(v)) return v;
    json_t *p = json_loadb(json_string_value(v), json_string_length(v), 0, NULL);
    if (!p) return NULL;
    json_decref(*owned);
    *owned = p;
    return p;
}

static int set_cases(CodeSpec *s, const json_t *inputs, const json_t *outputs, const json_t *objects, char *why,
                     size_t wsize) {
    size_t n = objects ? json_array_size(objects) : json_array_size(inputs);
    if (!objects && json_array_size(outputs) != n)
        return snprintf(why, wsize, "%zu test inputs but %zu outputs", n, json_array_size(outputs)), -1;
    if (n == 0) return snprintf(why, wsize, "no test cases"), -1;
    if (n > CODE_MAX_TESTS) return snprintf(why, wsize, "%zu test cases (max %d)", n, CODE_MAX_TESTS), -1;
    s->cases = calloc(n, sizeof *s->cases);
    if (!s->cases) return snprintf(why, wsize, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        json_t *in, *out;
        if (objects) {
            json_t *o = json_array_get(objects, i);
            const char *tt = str_field(o, "testtype");
            if (tt && strcmp(tt, "stdin") != 0)
                return snprintf(why, wsize, "test %zu has testtype '%.32s' (only stdin is run)", i + 1, tt), -1;
            in = json_object_get(o, "input");
            out = json_object_get(o, "output");
        } else {
            in = json_array_get(inputs, i);
            out = json_array_get(outputs, i);
        }
        if (!json_is_string(in) || !json_is_string(out))
            return snprintf(why, wsize, "test %zu: input and output must be strings", i + 1), -1;
        s->cases[i] = (CodeCase){json_string_value(in), json_string_value(out), json_string_length(in), json_string_length(out)};
    }
    s->n_cases = (int)n;
    s->kind = CODE_TESTS_STDIO;
    return 0;
}

int code_spec_parse(const json_t *r, CodeSpec *s, char *why, size_t wsize) {
    memset(s, 0, sizeof *s);
    if (!json_is_object(r)) return snprintf(why, wsize, "no record"), -1;
    int rc = -1;
    const char *test = str_field(r, "test"), *entry = str_field(r, "entry_point");
    json_t *tl = json_object_get(r, "test_list");
    if (test && entry) {
        s->kind = CODE_TESTS_HUMANEVAL;
        s->test = test, s->entry_point = entry;
        s->prompt = str_field(r, "prompt");
        if (!s->prompt) s->prompt = "";
        size_t el = strlen(entry);
        int ok = el > 0 && el < 128;
        for (size_t i = 0; ok && i < el; i++) {
            char c = entry[i];
            ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9');
        }
        if (!ok) snprintf(why, wsize, "entry_point is not an identifier");
        else rc = 0;
    } else if (json_is_array(tl)) {
        size_t n = json_array_size(tl);
        if (n == 0 || n > CODE_MAX_TESTS) snprintf(why, wsize, "test_list has %zu tests", n);
        else if (!(s->asserts = calloc(n, sizeof *s->asserts))) snprintf(why, wsize, "out of memory");
        else {
            rc = 0;
            for (size_t i = 0; i < n && !rc; i++)
                if (!(s->asserts[i] = json_string_value(json_array_get(tl, i))))
                    rc = -1, snprintf(why, wsize, "test_list[%zu] is not a string", i);
            s->n_asserts = (int)n;
            s->setup = str_field(r, "test_setup_code");
            if (!s->setup) s->setup = "";
            s->kind = CODE_TESTS_MBPP;
        }
    } else {
        json_t *in = json_object_get(r, "inputs"), *out = json_object_get(r, "outputs"), *v;
        if (json_is_array(in) && json_is_array(out)) rc = set_cases(s, in, out, NULL, why, wsize);
        else if ((v = json_field(r, "test_cases", &s->owned)) && json_is_array(v)) rc = set_cases(s, NULL, NULL, v, why, wsize);
        else if ((v = json_field(r, "public_test_cases", &s->owned)) && json_is_array(v)) rc = set_cases(s, NULL, NULL, v, why, wsize);
        else if ((v = json_field(r, "input_output", &s->owned)) && json_is_object(v)) {
            if (json_object_get(v, "fn_name")) snprintf(why, wsize, "call-based input_output (fn_name) is not supported");
            else rc = set_cases(s, json_object_get(v, "inputs"), json_object_get(v, "outputs"), NULL, why, wsize);
        } else snprintf(why, wsize, "record has no tests (test+entry_point, test_list, inputs/outputs, test_cases, input_output)");
    }
    if (rc) code_spec_free(s);
    return rc;
}

void code_spec_free(CodeSpec *s) {
    free(s->asserts);
    free(s->cases);
    json_decref(s->owned);
    memset(s, 0, sizeof *s);
}

char *code_py_literal(const char *s, size_t n) {
    char *out = malloc(4 * n + 3), *o = out;
    if (!out) return NULL;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '"') *o++ = '\\', *o++ = (char)c;
        else if (c == '\n') *o++ = '\\', *o++ = 'n';
        else if (c == '\r') *o++ = '\\', *o++ = 'r';
        else if (c == '\t') *o++ = '\\', *o++ = 't';
        else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            *o++ = '\\', *o++ = 'x', *o++ = hex[c >> 4], *o++ = hex[c & 15];
        } else *o++ = (char)c; /* UTF-8 passes through: the source file is UTF-8 */
    }
    *o++ = '"';
    *o = 0;
    return out;
}

int code_output_equal(const char *a, size_t al, const char *b, size_t bl, int exact) {
    return sandbox_output_equal(a, al, b, bl, exact);
}
