/* Recipe output: the resolved recipe as nested YAML that recipe_load reads
 * back to identical values, and a help listing. Strings are written plain
 * only when no YAML reader could take them for anything else; otherwise
 * double-quoted with every non-printable character escaped. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/file.h"
#include "io/recipe_priv.h"

static int plain_ok(const char *s) {
    static const char *const reserved[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", NULL};
    if (!s[0]) return 0;
    int first_ok = (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_' || s[0] == '/' ||
                   (s[0] == '.' && (s[1] == '/' || s[1] == '.'));
    if (!first_ok) return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '/' || c == '-'))
            return 0;
    }
    for (int i = 0; reserved[i]; i++)
        if (!strcasecmp(s, reserved[i])) return 0;
    return 1;
}

/* Decodes one UTF-8 sequence (input is known valid); returns its length. */
static size_t utf8_next(const unsigned char *p, unsigned *cp) {
    if (p[0] < 0x80) { *cp = p[0]; return 1; }
    if (p[0] < 0xE0) { *cp = (p[0] & 0x1Fu) << 6 | (p[1] & 0x3Fu); return 2; }
    if (p[0] < 0xF0) { *cp = (p[0] & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu); return 3; }
    *cp = (p[0] & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
    return 4;
}

static void put_string(FILE *fp, const char *s) {
    if (plain_ok(s)) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned cp;
        size_t n = utf8_next(p, &cp);
        if (cp == '"') fputs("\\\"", fp);
        else if (cp == '\\') fputs("\\\\", fp);
        else if (cp == '\n') fputs("\\n", fp);
        else if (cp == '\t') fputs("\\t", fp);
        /* Controls, C1 (NEL is a line break in YAML 1.1), line/paragraph
         * separators, BOM and non-characters would not survive a reader. */
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) fprintf(fp, "\\x%02x", cp);
        else if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF) fprintf(fp, "\\u%04x", cp);
        else fwrite(p, 1, n, fp);
        p += n;
    }
    fputc('"', fp);
}

static void put_double(FILE *fp, double v) {
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* YAML 1.1 readers want a dot to see a float: 1 -> 1.0, 1e-06 -> 1.0e-06. */
    if (!strchr(tmp, '.')) {
        char *e = strchr(tmp, 'e');
        if (e) {
            char rest[48];
            snprintf(rest, sizeof rest, "%s", e);
            snprintf(e, sizeof tmp - (size_t)(e - tmp), ".0%s", rest);
        } else {
            strcat(tmp, ".0");
        }
    }
    fputs(tmp, fp);
}

static void put_value(FILE *fp, const RecipeField *f, const void *in) {
    const char *p = (const char *)in + f->offset;
    switch (f->type) {
    case RECIPE_INT: fprintf(fp, "%lld", (long long)*(const int64_t *)p); break;
    case RECIPE_FLOAT: put_double(fp, *(const double *)p); break;
    case RECIPE_BOOL: fputs(*(const int *)p ? "true" : "false", fp); break;
    case RECIPE_STRING: put_string(fp, *(char *const *)p ? *(char *const *)p : ""); break;
    case RECIPE_ENUM: put_string(fp, f->choices[*(const int *)p]); break;
    case RECIPE_STRLIST: {
        const RecipeList *l = (const RecipeList *)p;
        fputc('[', fp);
        for (size_t i = 0; i < l->n; i++) {
            if (i) fputs(", ", fp);
            put_string(fp, l->items[i]);
        }
        fputc(']', fp);
        break;
    }
    }
}

static void put_help(FILE *fp, int indent, const char *help) {
    if (!help || !help[0]) return;
    fprintf(fp, "%*s# ", indent, "");
    for (const char *h = help; *h; h++) fputc(*h == '\n' || *h == '\r' ? ' ' : *h, fp);
    fputc('\n', fp);
}

/* Emits the fields under prefix in schema order; a subsection is emitted
 * whole where its first field appears, so each mapping key occurs once. */
static void dump_level(FILE *fp, const RecipeField *schema, const void *in, const char *prefix, int indent) {
    size_t plen = strlen(prefix);
    for (const RecipeField *f = schema; f->key; f++) {
        if (strncmp(f->key, prefix, plen) != 0) continue;
        const char *rest = f->key + plen;
        const char *dot = strchr(rest, '.');
        if (!dot) {
            put_help(fp, indent, f->help);
            fprintf(fp, "%*s%s: ", indent, "", rest);
            put_value(fp, f, in);
            fputc('\n', fp);
            continue;
        }
        size_t clen = (size_t)(dot - rest) + 1; /* component plus its dot */
        int first = 1;
        for (const RecipeField *g = schema; g < f && first; g++)
            if (!strncmp(g->key, f->key, plen + clen)) first = 0;
        if (!first) continue;
        char sub[RECIPE_MAX_KEY + 2];
        snprintf(sub, sizeof sub, "%.*s", (int)(plen + clen), f->key);
        if (indent == 0) fputc('\n', fp);
        fprintf(fp, "%*s%.*s:\n", indent, "", (int)(clen - 1), rest);
        dump_level(fp, schema, in, sub, indent + 2);
    }
}

int recipe_dump(const RecipeField *schema, const void *in, FILE *fp, Err *err) {
    fputs("# r1c recipe, resolved: every field with its value, defaults included.\n", fp);
    dump_level(fp, schema, in, "", 0);
    if (ferror(fp)) return err_set(err, "recipe: write failed");
    return 0;
}

int recipe_save(const RecipeField *schema, const void *in, const char *path, Err *err) {
    AtomicFile af;
    if (atomic_open(&af, path, err) != 0) return -1;
    if (recipe_dump(schema, in, af.fp, err) != 0) {
        atomic_abort(&af);
        return err_prefix(err, "%s", path);
    }
    return atomic_commit(&af, err);
}

void recipe_help(const RecipeField *schema, FILE *fp) {
    static const char *const type_names[] = {"int", "float", "bool", "string", "list", "choice"};
    for (const RecipeField *f = schema; f->key; f++) {
        char extra[256] = "";
        if (f->type == RECIPE_ENUM) {
            size_t o = 0;
            for (const char *const *c = f->choices; *c && o + 2 < sizeof extra; c++) {
                int n = snprintf(extra + o, sizeof extra - o, "%s%s", c == f->choices ? "" : "|", *c);
                if (n < 0) break;
                o += (size_t)n;
            }
        } else if (f->has_min || f->has_max) {
            char lo[32] = "", hi[32] = "";
            if (f->has_min) snprintf(lo, sizeof lo, "%g", f->min);
            if (f->has_max) snprintf(hi, sizeof hi, "%g", f->max);
            snprintf(extra, sizeof extra, "[%s..%s]", lo, hi);
        }
        fprintf(fp, "  %-32s %-6s default %-10s %-16s %s\n", f->key, type_names[f->type],
                f->def ? (f->def[0] ? f->def : "\"\"") : "(zero)", extra, f->help ? f->help : "");
    }
}

int recipe_equal(const RecipeField *schema, const void *a, const void *b) {
    for (const RecipeField *f = schema; f->key; f++) {
        const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
        switch (f->type) {
        case RECIPE_INT: if (*(const int64_t *)pa != *(const int64_t *)pb) return 0; break;
        case RECIPE_FLOAT: if (memcmp(pa, pb, sizeof(double)) != 0) return 0; break;
        case RECIPE_BOOL:
        case RECIPE_ENUM: if (*(const int *)pa != *(const int *)pb) return 0; break;
        case RECIPE_STRING: {
            const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
            if (strcmp(sa ? sa : "", sb ? sb : "") != 0) return 0;
            break;
        }
        case RECIPE_STRLIST: {
            const RecipeList *la = (const RecipeList *)pa, *lb = (const RecipeList *)pb;
            if (la->n != lb->n) return 0;
            for (size_t i = 0; i < la->n; i++)
                if (strcmp(la->items[i], lb->items[i]) != 0) return 0;
            break;
        }
        }
    }
    return 1;
}
