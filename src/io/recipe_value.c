/* Recipe values: text to typed field, bounds and choices, and the schema
 * lookups shared by the loader and the dumper. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "io/jsonl.h"
#include "io/recipe_priv.h"

static int why_set(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_set(char *why, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

const RecipeField *recipe_field_find(const RecipeField *schema, const char *key) {
    for (const RecipeField *f = schema; f->key; f++)
        if (!strcmp(f->key, key)) return f;
    return NULL;
}

int recipe_is_section(const RecipeField *schema, const char *key) {
    size_t n = strlen(key);
    for (const RecipeField *f = schema; f->key; f++)
        if (!strncmp(f->key, key, n) && f->key[n] == '.') return 1;
    return 0;
}

/* Edit distance, capped: inputs are keys of at most RECIPE_MAX_KEY bytes. */
static size_t edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na >= RECIPE_MAX_KEY || nb >= RECIPE_MAX_KEY) return SIZE_MAX;
    size_t row[RECIPE_MAX_KEY + 1];
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static const char *last_part(const char *key) {
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

void recipe_suggest(const RecipeField *schema, const char *key, char *out, size_t cap) {
    const RecipeField *best = NULL;
    size_t best_d = SIZE_MAX;
    for (const RecipeField *f = schema; f->key; f++) {
        size_t d = edit_distance(key, f->key);
        /* The right name in the wrong section ("temperature" for "sampling.temperature"). */
        if (!strcmp(last_part(key), last_part(f->key))) d = d < 1 ? d : 1;
        if (d < best_d) { best_d = d; best = f; }
    }
    size_t limit = strlen(key) / 3 > 2 ? strlen(key) / 3 : 2;
    if (best && best_d <= limit) snprintf(out, cap, " (did you mean '%s'?)", best->key);
    else if (cap) out[0] = 0;
}

const char *recipe_type_phrase(const RecipeField *f) {
    switch (f->type) {
    case RECIPE_INT: return "an integer";
    case RECIPE_FLOAT: return "a number";
    case RECIPE_BOOL: return "true or false";
    case RECIPE_STRING: return "a string";
    case RECIPE_STRLIST: return "a list of strings";
    case RECIPE_ENUM: return "one of the choices";
    }
    return "a value";
}

void recipe_show(char *out, size_t cap, const char *s, size_t n) {
    if (!cap) return;
    size_t o = 0, max = n > 40 ? 37 : n;
    for (size_t i = 0; i < max && o + 1 < cap; i++) out[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    for (size_t i = 0; n > 40 && i < 3 && o + 1 < cap; i++) out[o++] = '.';
    out[o] = 0;
}

static void *slot(const RecipeField *f, void *out) {
    return (char *)out + f->offset;
}

static int parse_int(const char *t, size_t len, int64_t *v) {
    size_t i = (len && (t[0] == '-' || t[0] == '+')) ? 1 : 0;
    if (i == len || len - i > 19) return -1;
    for (size_t k = i; k < len; k++)
        if (!isdigit((unsigned char)t[k])) return -1;
    char buf[32];
    memcpy(buf, t, len);
    buf[len] = 0;
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    if (errno == ERANGE) return -1;
    *v = x;
    return 0;
}

/* Decimal numbers only: no hex floats, inf or nan, which strtod would take. */
static int parse_float(const char *t, size_t len, double *v) {
    if (len == 0 || len > 64) return -1;
    int digits = 0;
    for (size_t k = 0; k < len; k++) {
        char c = t[k];
        if (isdigit((unsigned char)c)) digits = 1;
        else if (!strchr("+-.eE", c)) return -1;
    }
    if (!digits) return -1;
    char buf[72], *end;
    memcpy(buf, t, len);
    buf[len] = 0;
    errno = 0;
    double x = strtod(buf, &end);
    if (end != buf + len || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

static int parse_bool(const char *t, size_t len, int *v) {
    static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False", "FALSE"};
    for (int i = 0; i < 3; i++) {
        if (strlen(yes[i]) == len && !memcmp(t, yes[i], len)) { *v = 1; return 0; }
        if (strlen(no[i]) == len && !memcmp(t, no[i], len)) { *v = 0; return 0; }
    }
    return -1;
}

static int check_range(const RecipeField *f, double x, char *why, size_t cap, const char *shown) {
    if (f->has_min && x < f->min) return why_set(why, cap, "%s is below the minimum %.17g", shown, f->min);
    if (f->has_max && x > f->max) return why_set(why, cap, "%s is above the maximum %.17g", shown, f->max);
    return 0;
}

static int choices_list(const RecipeField *f, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (const char *const *c = f->choices; c && *c; c++) {
        int n = snprintf(out + o, cap - o, "%s%s", c == f->choices ? "" : ", ", *c);
        if (n < 0 || (size_t)n >= cap - o) break;
        o += (size_t)n;
    }
    return 0;
}

int recipe_set_scalar(const RecipeField *f, void *out, const char *text, size_t len, int quoted, char *why,
                      size_t cap) {
    char shown[64];
    recipe_show(shown, sizeof shown, text, len);
    if (memchr(text, 0, len)) return why_set(why, cap, "value contains a NUL character");
    if (quoted && (f->type == RECIPE_INT || f->type == RECIPE_FLOAT || f->type == RECIPE_BOOL))
        return why_set(why, cap, "expected %s, got the quoted string \"%s\"", recipe_type_phrase(f), shown);
    switch (f->type) {
    case RECIPE_INT: {
        int64_t v;
        if (parse_int(text, len, &v) != 0)
            return why_set(why, cap, "expected an integer, got '%s'", shown);
        if (check_range(f, (double)v, why, cap, shown) != 0) return -1;
        *(int64_t *)slot(f, out) = v;
        return 0;
    }
    case RECIPE_FLOAT: {
        double v;
        if (parse_float(text, len, &v) != 0)
            return why_set(why, cap, "expected a finite number, got '%s'", shown);
        if (check_range(f, v, why, cap, shown) != 0) return -1;
        *(double *)slot(f, out) = v;
        return 0;
    }
    case RECIPE_BOOL: {
        int v;
        if (parse_bool(text, len, &v) != 0) return why_set(why, cap, "expected true or false, got '%s'", shown);
        *(int *)slot(f, out) = v;
        return 0;
    }
    case RECIPE_ENUM:
        for (const char *const *c = f->choices; c && *c; c++)
            if (strlen(*c) == len && !memcmp(*c, text, len)) {
                *(int *)slot(f, out) = (int)(c - f->choices);
                return 0;
            }
        char all[512];
        choices_list(f, all, sizeof all);
        return why_set(why, cap, "'%s' is not one of: %s", shown, all);
    case RECIPE_STRING: {
        if (len > RECIPE_MAX_STRING) return why_set(why, cap, "string of %zu bytes is longer than %zu", len, RECIPE_MAX_STRING);
        if (!jsonl_utf8_valid(text, len)) return why_set(why, cap, "string is not valid UTF-8");
        char *s = malloc(len + 1);
        if (!s) return why_set(why, cap, "out of memory");
        memcpy(s, text, len);
        s[len] = 0;
        char **dst = slot(f, out);
        free(*dst);
        *dst = s;
        return 0;
    }
    case RECIPE_STRLIST: break;
    }
    return why_set(why, cap, "expected %s", recipe_type_phrase(f));
}

void recipe_list_free(RecipeList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int recipe_set_list(const RecipeField *f, void *out, char *const *items, size_t n, char *why, size_t cap) {
    char count[32];
    snprintf(count, sizeof count, "a list of %zu", n);
    if (n > RECIPE_MAX_LIST) return why_set(why, cap, "list of %zu items is longer than %d", n, RECIPE_MAX_LIST);
    if (check_range(f, (double)n, why, cap, count) != 0) return -1;
    RecipeList l = {n ? calloc(n, sizeof(char *)) : NULL, 0};
    if (n && !l.items) return why_set(why, cap, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]);
        if (len > RECIPE_MAX_STRING || !jsonl_utf8_valid(items[i], len)) {
            recipe_list_free(&l);
            return why_set(why, cap, "item %zu is too long or not valid UTF-8", i + 1);
        }
        if (!(l.items[i] = strdup(items[i]))) {
            recipe_list_free(&l);
            return why_set(why, cap, "out of memory");
        }
        l.n = i + 1;
    }
    RecipeList *dst = slot(f, out);
    recipe_list_free(dst);
    *dst = l;
    return 0;
}

static void free_items(char **items, size_t n) {
    for (size_t i = 0; i < n; i++) free(items[i]);
    free(items);
}

int recipe_parse_flow_list(const char *text, char ***items_out, size_t *n_out, char *why, size_t cap) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return why_set(why, cap, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    char **items = NULL;
    size_t n = 0;
    int rc = 0, stage = 0; /* 0: before the sequence, 1: inside, 2: after */
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = why_set(why, cap, "list is not valid YAML: %s", p.problem ? p.problem : "?");
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) { yaml_event_delete(&ev); break; }
        if (t == YAML_SEQUENCE_START_EVENT && stage == 0) stage = 1;
        else if (t == YAML_SEQUENCE_END_EVENT && stage == 1) stage = 2;
        else if (t == YAML_SCALAR_EVENT && stage == 1 && !ev.data.scalar.anchor && !ev.data.scalar.tag) {
            size_t len = ev.data.scalar.length;
            char **grown = n < RECIPE_MAX_LIST ? realloc(items, (n + 1) * sizeof *items) : NULL;
            char *s = grown ? malloc(len + 1) : NULL;
            if (grown) items = grown;
            if (!s || memchr(ev.data.scalar.value, 0, len)) {
                free(s);
                rc = why_set(why, cap, "list too long, out of memory, or item with a NUL");
            } else {
                memcpy(s, ev.data.scalar.value, len);
                s[len] = 0;
                items[n++] = s;
            }
        } else if (t != YAML_STREAM_START_EVENT && t != YAML_DOCUMENT_START_EVENT && t != YAML_DOCUMENT_END_EVENT) {
            rc = why_set(why, cap, "expected a flat list like [a, b]");
        }
        yaml_event_delete(&ev);
        if (rc) break;
    }
    yaml_parser_delete(&p);
    if (rc == 0 && stage != 2) rc = why_set(why, cap, "expected a list like [a, b]");
    if (rc) {
        free_items(items, n);
        return -1;
    }
    *items_out = items;
    *n_out = n;
    return 0;
}

/* "a, b,c" -> {"a", "b", "c"}; "" -> no items. */
static int split_commas(const char *text, char ***items_out, size_t *n_out, char *why, size_t cap) {
    char **items = NULL;
    size_t n = 0;
    const char *p = text;
    while (*text) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (len && isspace((unsigned char)*s)) { s++; len--; }
        while (len && isspace((unsigned char)s[len - 1])) len--;
        if (!len) {
            free_items(items, n);
            return why_set(why, cap, "empty item in list '%.40s'", text);
        }
        char **grown = n < RECIPE_MAX_LIST ? realloc(items, (n + 1) * sizeof *items) : NULL;
        char *copy = grown ? strndup(s, len) : NULL;
        if (grown) items = grown;
        if (!copy) {
            free_items(items, n);
            return why_set(why, cap, "list too long or out of memory");
        }
        items[n++] = copy;
        if (!end) break;
        p = end + 1;
    }
    *items_out = items;
    *n_out = n;
    return 0;
}

int recipe_set_text(const RecipeField *f, void *out, const char *text, char *why, size_t cap) {
    if (f->type != RECIPE_STRLIST) return recipe_set_scalar(f, out, text, strlen(text), 0, why, cap);
    char **items;
    size_t n;
    const char *s = text;
    while (isspace((unsigned char)*s)) s++;
    int rc = *s == '[' ? recipe_parse_flow_list(text, &items, &n, why, cap) : split_commas(text, &items, &n, why, cap);
    if (rc) return -1;
    rc = recipe_set_list(f, out, items, n, why, cap);
    free_items(items, n);
    return rc;
}
