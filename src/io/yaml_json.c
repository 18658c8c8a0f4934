/* YAML -> JSON tree through libyaml's event stream (see yaml_json.h). */
#include "io/yaml_json.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/file.h"

#define YJ_MAX_DEPTH 64

typedef struct Frame {
    json_t *node;
    char *key; /* pending key inside a mapping */
} Frame;

/* Attaches value (a new reference, consumed) to the open container on top
 * of the stack; mapping keys arrive as string values first. */
static int attach(Frame *f, json_t *value, const char *name, size_t line, size_t col, Err *err) {
    if (json_is_array(f->node)) return json_array_append_new(f->node, value), 0;
    if (!f->key) {
        if (!json_is_string(value)) {
            json_decref(value);
            return err_set(err, "%s:%zu:%zu: mapping keys must be scalars", name, line, col);
        }
        f->key = strdup(json_string_value(value));
        json_decref(value);
        return 0;
    }
    if (json_object_get(f->node, f->key)) {
        json_decref(value);
        return err_set(err, "%s:%zu:%zu: duplicate key '%s'", name, line, col, f->key);
    }
    json_object_set_new(f->node, f->key, value);
    free(f->key);
    f->key = NULL;
    return 0;
}

json_t *yaml_load_json_buf(const char *buf, size_t len, const char *name, Err *err) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        err_set(err, "%s: cannot initialise the YAML parser", name);
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    Frame st[YJ_MAX_DEPTH];
    int depth = 0, docs = 0, done = 0, failed = 0;
    json_t *root = NULL;
    while (!done && !failed) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) {
            err_set(err, "%s:%zu:%zu: %s", name, p.problem_mark.line + 1, p.problem_mark.column + 1,
                    p.problem ? p.problem : "YAML syntax error");
            failed = 1;
            break;
        }
        size_t line = e.start_mark.line + 1, col = e.start_mark.column + 1;
        json_t *value = NULL;
        int open = 0;
        switch (e.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) failed = err_set(err, "%s:%zu:%zu: more than one YAML document", name, line, col);
            break;
        case YAML_ALIAS_EVENT: failed = err_set(err, "%s:%zu:%zu: aliases are not supported", name, line, col); break;
        case YAML_SCALAR_EVENT:
            if (e.data.scalar.anchor) failed = err_set(err, "%s:%zu:%zu: anchors are not supported", name, line, col);
            else if (!(value = json_stringn((const char *)e.data.scalar.value, e.data.scalar.length)))
                failed = err_set(err, "%s:%zu:%zu: scalar is not valid UTF-8", name, line, col);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == YJ_MAX_DEPTH) failed = err_set(err, "%s:%zu:%zu: nested more than %d levels", name, line, col, YJ_MAX_DEPTH);
            else value = e.type == YAML_SEQUENCE_START_EVENT ? json_array() : json_object(), open = 1;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            Frame *f = &st[--depth];
            free(f->key);
            if (depth == 0) root = f->node; /* the frame's reference becomes the result */
            else json_decref(f->node);      /* the parent keeps its own */
            break;
        }
        default: break;
        }
        yaml_event_delete(&e);
        if (failed || !value) continue;
        if (depth == 0) { /* the document's top node */
            if (open) st[depth++] = (Frame){value, NULL};
            else root = value;
            continue;
        }
        if (open) json_incref(value); /* one for the parent, one for the stack frame */
        if (attach(&st[depth - 1], value, name, line, col, err) != 0) {
            if (open) json_decref(value);
            failed = 1;
            continue;
        }
        if (open) st[depth++] = (Frame){value, NULL};
    }
    while (depth > 0) {
        Frame *f = &st[--depth];
        free(f->key);
        json_decref(f->node);
    }
    yaml_parser_delete(&p);
    if (failed) {
        json_decref(root);
        return NULL;
    }
    return root ? root : json_object();
}

json_t *yaml_load_json(const char *path, Err *err) {
    char *buf;
    size_t len;
    if (file_read_all(path, &buf, &len, 16u << 20, err) != 0) return NULL;
    json_t *j = yaml_load_json_buf(buf, len, path, err);
    free(buf);
    return j;
}
