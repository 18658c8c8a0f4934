/* Recipe loading: walks libyaml's event stream (not its document tree, so
 * aliases can be refused before they expand) and sets fields as it goes.
 * Every error names the file, line and column of the offending node. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/file.h"
#include "io/jsonl.h"
#include "io/recipe_priv.h"

typedef struct Seen {
    char *key;
    size_t line;
} Seen;

typedef struct Walk {
    const RecipeField *schema;
    void *out;
    const char *name;
    const char *buf; /* the input, for turning byte offsets into line:col */
    size_t len;
    yaml_parser_t parser;
    Seen *seen; /* keys met so far, to refuse duplicates */
    size_t n_seen, cap_seen;
    Err *err;
} Walk;

static int at(Walk *w, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int at(Walk *w, yaml_mark_t m, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(w->err, "%s:%zu:%zu: %s", w->name, m.line + 1, m.column + 1, msg);
}

static int syntax_error(Walk *w) {
    yaml_parser_t *p = &w->parser;
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors (bad encoding) carry a byte offset, not a mark. */
        memset(&m, 0, sizeof m);
        for (size_t i = 0; i < p->problem_offset && i < w->len; i++) {
            if (w->buf[i] == '\n') { m.line++; m.column = 0; }
            else m.column++;
        }
    }
    const char *problem = p->problem ? p->problem : "malformed input";
    if (p->context)
        return at(w, m, "YAML syntax error: %s %s (line %zu)", problem, p->context, p->context_mark.line + 1);
    return at(w, m, "YAML syntax error: %s", problem);
}

/* Next event; refuses the YAML features a recipe has no use for. */
static int next(Walk *w, yaml_event_t *ev) {
    if (!yaml_parser_parse(&w->parser, ev)) return syntax_error(w);
    const unsigned char *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT: anchor = ev->data.alias.anchor; break;
    case YAML_SCALAR_EVENT: anchor = ev->data.scalar.anchor; tag = ev->data.scalar.tag; break;
    case YAML_SEQUENCE_START_EVENT: anchor = ev->data.sequence_start.anchor; tag = ev->data.sequence_start.tag; break;
    case YAML_MAPPING_START_EVENT: anchor = ev->data.mapping_start.anchor; tag = ev->data.mapping_start.tag; break;
    default: break;
    }
    if (anchor || tag || ev->type == YAML_ALIAS_EVENT) {
        int rc = at(w, ev->start_mark, "YAML %s are not supported in recipes",
                    ev->type == YAML_ALIAS_EVENT || anchor ? "anchors and aliases" : "tags");
        yaml_event_delete(ev);
        return rc;
    }
    return 0;
}

static int remember(Walk *w, const char *key, yaml_mark_t m) {
    for (size_t i = 0; i < w->n_seen; i++)
        if (!strcmp(w->seen[i].key, key)) return at(w, m, "key '%s': duplicate (first set at line %zu)", key, w->seen[i].line);
    if (w->n_seen == w->cap_seen) {
        size_t cap = w->cap_seen ? 2 * w->cap_seen : 32;
        Seen *s = realloc(w->seen, cap * sizeof *s);
        if (!s) return at(w, m, "out of memory");
        w->seen = s;
        w->cap_seen = cap;
    }
    char *copy = strdup(key);
    if (!copy) return at(w, m, "out of memory");
    w->seen[w->n_seen++] = (Seen){copy, m.line + 1};
    return 0;
}

static int unknown(Walk *w, const char *key, yaml_mark_t m) {
    char hint[320];
    recipe_suggest(w->schema, key, hint, sizeof hint);
    return at(w, m, "key '%s': unknown%s", key, hint);
}

static const char *node_kind(yaml_event_type_t t) {
    return t == YAML_SEQUENCE_START_EVENT ? "a list" : t == YAML_MAPPING_START_EVENT ? "a mapping" : "a single value";
}

static int plain_null(const yaml_event_t *ev) {
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!v[0] || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL"));
}

/* Reads list items up to SEQUENCE_END into the field. */
static int walk_list(Walk *w, const RecipeField *f, yaml_mark_t start) {
    char **items = NULL;
    size_t n = 0;
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (next(w, &ev) != 0) { rc = -1; break; }
        if (ev.type == YAML_SEQUENCE_END_EVENT) { yaml_event_delete(&ev); break; }
        if (ev.type != YAML_SCALAR_EVENT) {
            rc = at(w, ev.start_mark, "key '%s': list items must be strings, got %s", f->key, node_kind(ev.type));
        } else if (memchr(ev.data.scalar.value, 0, ev.data.scalar.length)) {
            rc = at(w, ev.start_mark, "key '%s': list item contains a NUL character", f->key);
        } else if (n >= RECIPE_MAX_LIST) {
            rc = at(w, ev.start_mark, "key '%s': list longer than %d items", f->key, RECIPE_MAX_LIST);
        } else {
            char **grown = realloc(items, (n + 1) * sizeof *items);
            char *s = grown ? strndup((const char *)ev.data.scalar.value, ev.data.scalar.length) : NULL;
            if (grown) items = grown;
            if (!s) rc = at(w, ev.start_mark, "out of memory");
            else items[n++] = s;
        }
        yaml_event_delete(&ev);
        if (rc) break;
    }
    char why[640];
    if (rc == 0 && recipe_set_list(f, w->out, items, n, why, sizeof why) != 0)
        rc = at(w, start, "key '%s': %s", f->key, why);
    for (size_t i = 0; i < n; i++) free(items[i]);
    free(items);
    return rc;
}

static int walk_map(Walk *w, const char *prefix);

/* The value of `key` (whose mark is km) starts with event ev (consumed here). */
static int walk_value(Walk *w, const char *key, yaml_mark_t km, yaml_event_t *ev) {
    const RecipeField *f = recipe_field_find(w->schema, key);
    int section = recipe_is_section(w->schema, key);
    yaml_mark_t vm = ev->start_mark;
    int rc = 0;
    if (ev->type == YAML_MAPPING_START_EVENT && section) {
        yaml_event_delete(ev);
        return walk_map(w, key);
    }
    if (f && ev->type == YAML_SEQUENCE_START_EVENT && f->type == RECIPE_STRLIST) {
        yaml_event_delete(ev);
        return walk_list(w, f, vm);
    }
    if (f && ev->type == YAML_SCALAR_EVENT && f->type != RECIPE_STRLIST) {
        char why[640];
        if (plain_null(ev))
            rc = at(w, vm, "key '%s': no value (expected %s%s)", key, recipe_type_phrase(f),
                    f->type == RECIPE_STRING ? "; write \"\" for an empty string" : "");
        else if (recipe_set_scalar(f, w->out, (const char *)ev->data.scalar.value, ev->data.scalar.length,
                                   ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE, why, sizeof why) != 0)
            rc = at(w, vm, "key '%s': %s", key, why);
    } else if (f) {
        rc = at(w, vm, "key '%s': expected %s, got %s", key, recipe_type_phrase(f), node_kind(ev->type));
    } else if (section) {
        rc = at(w, vm, "key '%s': expected a mapping of its keys (like '%s.NAME'), got %s", key, key, node_kind(ev->type));
    } else {
        rc = unknown(w, key, km);
    }
    yaml_event_delete(ev);
    return rc;
}

static int walk_map(Walk *w, const char *prefix) {
    for (;;) {
        yaml_event_t ev;
        if (next(w, &ev) != 0) return -1;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        yaml_mark_t km = ev.start_mark;
        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            return at(w, km, "keys must be plain names%s%s", prefix[0] ? " under " : "", prefix);
        }
        char key[RECIPE_MAX_KEY + 1];
        size_t plen = strlen(prefix), klen = ev.data.scalar.length;
        if (klen == 0 || memchr(ev.data.scalar.value, 0, klen) || plen + 1 + klen > RECIPE_MAX_KEY) {
            yaml_event_delete(&ev);
            return at(w, km, "key is empty, too long or contains a NUL character");
        }
        /* A dotted key at any level ("sampling.temperature: 0.7") names the same field as nesting. */
        snprintf(key, sizeof key, "%s%s%.*s", prefix, plen ? "." : "", (int)klen, (const char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        if (remember(w, key, km) != 0) return -1;
        if (next(w, &ev) != 0) return -1;
        if (walk_value(w, key, km, &ev) != 0) return -1;
    }
}

static int walk_stream(Walk *w) {
    yaml_event_t ev;
    if (next(w, &ev) != 0) return -1; /* STREAM_START */
    yaml_event_delete(&ev);
    if (next(w, &ev) != 0) return -1;
    if (ev.type == YAML_STREAM_END_EVENT) { /* empty file: defaults only */
        yaml_event_delete(&ev);
        return 0;
    }
    yaml_event_delete(&ev); /* DOCUMENT_START */
    if (next(w, &ev) != 0) return -1;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        yaml_event_delete(&ev);
        if (walk_map(w, "") != 0) return -1;
    } else if (ev.type == YAML_SCALAR_EVENT && plain_null(&ev)) {
        yaml_event_delete(&ev); /* "---" alone: an empty recipe */
    } else {
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        return at(w, m, "a recipe is a mapping of keys to values");
    }
    if (next(w, &ev) != 0) return -1; /* DOCUMENT_END */
    yaml_event_delete(&ev);
    if (next(w, &ev) != 0) return -1;
    int rc = 0;
    if (ev.type != YAML_STREAM_END_EVENT) rc = at(w, ev.start_mark, "only one YAML document is allowed in a recipe");
    yaml_event_delete(&ev);
    return rc;
}

int recipe_load_buf(const RecipeField *schema, const char *buf, size_t len, const char *name, void *out, Err *err) {
    if (len > RECIPE_MAX_FILE) return err_set(err, "%s: %zu bytes is more than the recipe limit of %zu", name, len, RECIPE_MAX_FILE);
    Walk w = {.schema = schema, .out = out, .name = name, .buf = buf, .len = len, .err = err};
    if (!yaml_parser_initialize(&w.parser)) return err_set(err, "%s: out of memory", name);
    yaml_parser_set_input_string(&w.parser, (const unsigned char *)buf, len);
    int rc = walk_stream(&w);
    yaml_parser_delete(&w.parser);
    for (size_t i = 0; i < w.n_seen; i++) free(w.seen[i].key);
    free(w.seen);
    return rc;
}

int recipe_load_file(const RecipeField *schema, const char *path, void *out, Err *err) {
    char *buf;
    size_t len;
    if (file_read_all(path, &buf, &len, RECIPE_MAX_FILE, err) != 0) return -1;
    int rc = recipe_load_buf(schema, buf, len, path, out, err);
    free(buf);
    return rc;
}

int recipe_override(const RecipeField *schema, const char *arg, void *out, Err *err) {
    /* Accept the flag itself too, so "--set k=v" passed as one string works. */
    if (!strncmp(arg, "--set=", 6) || !strncmp(arg, "--set ", 6)) arg += 6;
    char shown[64];
    recipe_show(shown, sizeof shown, arg, strlen(arg));
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return err_set(err, "override '%s': expected key=value", shown);
    size_t klen = (size_t)(eq - arg);
    char key[RECIPE_MAX_KEY + 1];
    if (klen > RECIPE_MAX_KEY) return err_set(err, "override '%s': key too long", shown);
    memcpy(key, arg, klen);
    key[klen] = 0;
    const RecipeField *f = recipe_field_find(schema, key);
    if (!f) {
        char hint[320];
        if (recipe_is_section(schema, key))
            return err_set(err, "override '%s': key '%s' is a section; set one of its keys, like '%s.NAME=VALUE'", shown, key, key);
        recipe_suggest(schema, key, hint, sizeof hint);
        return err_set(err, "override '%s': key '%s': unknown%s", shown, key, hint);
    }
    char why[640];
    if (recipe_set_text(f, out, eq + 1, why, sizeof why) != 0)
        return err_set(err, "override '%s': key '%s': %s", shown, key, why);
    return 0;
}

/* A key is dotted names of [A-Za-z0-9_-]. */
static int key_ok(const char *k) {
    size_t n = strlen(k);
    if (!n || n > RECIPE_MAX_KEY || k[0] == '.' || k[n - 1] == '.' || strstr(k, "..")) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(k[i] == '.' || k[i] == '_' || k[i] == '-' || (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
              (k[i] >= '0' && k[i] <= '9')))
            return 0;
    return 1;
}

static void zero_field(const RecipeField *f, void *out) {
    char *p = (char *)out + f->offset;
    switch (f->type) {
    case RECIPE_INT: *(int64_t *)p = 0; break;
    case RECIPE_FLOAT: *(double *)p = 0; break;
    case RECIPE_BOOL:
    case RECIPE_ENUM: *(int *)p = 0; break;
    case RECIPE_STRING: *(char **)p = NULL; break;
    case RECIPE_STRLIST: *(RecipeList *)p = (RecipeList){NULL, 0}; break;
    }
}

int recipe_defaults(const RecipeField *schema, void *out, Err *err) {
    /* Zero first so recipe_free is safe whatever fails below. */
    for (const RecipeField *f = schema; f->key; f++) zero_field(f, out);
    for (const RecipeField *f = schema; f->key; f++) {
        if (!key_ok(f->key)) return err_set(err, "recipe schema: key '%s' is not a dotted name", f->key);
        if (recipe_field_find(schema, f->key) != f) return err_set(err, "recipe schema: key '%s' declared twice", f->key);
        if (recipe_is_section(schema, f->key))
            return err_set(err, "recipe schema: key '%s' is both a value and a section", f->key);
        if (f->type == RECIPE_ENUM && (!f->choices || !f->choices[0]))
            return err_set(err, "recipe schema: enum key '%s' has no choices", f->key);
        for (const char *const *c = f->type == RECIPE_ENUM ? f->choices : NULL; c && *c; c++)
            if (!(*c)[0] || !jsonl_utf8_valid(*c, strlen(*c)))
                return err_set(err, "recipe schema: enum key '%s' has an empty or non-UTF-8 choice", f->key);
        const char *def = f->def;
        if (!def) def = f->type == RECIPE_BOOL ? "false" : f->type == RECIPE_ENUM ? f->choices[0] : f->type <= RECIPE_FLOAT ? "0" : "";
        char why[640];
        if (recipe_set_text(f, out, def, why, sizeof why) != 0)
            return err_set(err, "recipe schema: key '%s': default: %s", f->key, why);
    }
    return 0;
}

int recipe_load(const RecipeField *schema, const char *path, char *const *overrides, int n_overrides, void *out,
                Err *err) {
    if (recipe_defaults(schema, out, err) != 0) return -1;
    if (path && recipe_load_file(schema, path, out, err) != 0) return -1;
    for (int i = 0; i < n_overrides; i++)
        if (recipe_override(schema, overrides[i], out, err) != 0) return -1;
    return 0;
}

void recipe_free(const RecipeField *schema, void *obj) {
    for (const RecipeField *f = schema; f->key; f++) {
        char *p = (char *)obj + f->offset;
        if (f->type == RECIPE_STRING) {
            free(*(char **)p);
            *(char **)p = NULL;
        } else if (f->type == RECIPE_STRLIST) {
            recipe_list_free((RecipeList *)p);
        }
    }
}
