/* Recipes: YAML files that configure a run, checked against a typed schema
 * the caller declares once. The same schema fills defaults, validates the
 * file, applies command-line overrides ("key=value"), prints help, and
 * dumps the resolved recipe (recipe.yaml in the run directory) in a form
 * that loads back to the identical struct.
 *
 *   typedef struct { double temp; int64_t n; char *model; int mode; RecipeList rewards; } Cfg;
 *   static const char *const MODES[] = {"grpo", "dr_grpo", NULL};
 *   static const RecipeField FIELDS[] = {
 *       {"sampling.temperature", RECIPE_FLOAT, offsetof(Cfg, temp), "1.0", .help = "softmax temperature",
 *        .has_min = 1, .min = 0, .has_max = 1, .max = 10},
 *       {"mode", RECIPE_ENUM, offsetof(Cfg, mode), "grpo", .help = "objective", .choices = MODES},
 *       {NULL}};
 *
 * (Name at least one member, e.g. .help: -Wextra warns about initializers
 * that are positional only and leave trailing members out.)
 *
 * Field storage by type: INT int64_t, FLOAT double, BOOL int (0/1),
 * STRING char * (malloc'd, never NULL), STRLIST RecipeList, ENUM int (index
 * into choices). recipe_free releases strings and lists.
 *
 * Errors read "FILE:LINE:COL: key 'sampling.temperature': expected a
 * number, got 'hot'". Refused: YAML syntax errors, unknown keys (with a
 * "did you mean" hint), duplicate keys, wrong types (a quoted "3" is a
 * string, not a number), values out of range or not among the choices,
 * anchors/aliases/tags, and more than one document. */
#ifndef R1C_IO_RECIPE_H
#define R1C_IO_RECIPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

typedef enum RecipeType {
    RECIPE_INT,
    RECIPE_FLOAT,
    RECIPE_BOOL,
    RECIPE_STRING,
    RECIPE_STRLIST,
    RECIPE_ENUM,
} RecipeType;

typedef struct RecipeList {
    char **items;
    size_t n;
} RecipeList;

typedef struct RecipeField {
    const char *key;   /* dotted path: "sampling.temperature" nests under "sampling:" */
    RecipeType type;
    size_t offset;     /* of the value inside the caller's struct */
    const char *def;   /* default, spelled as an override value ("0.7", "true", "a,b"); NULL: zero/empty */
    const char *help;  /* one line, shown by recipe_help and as a comment in recipe_dump */
    int has_min, has_max;
    double min, max;   /* inclusive bounds for INT and FLOAT (and STRLIST length) */
    const char *const *choices; /* ENUM: NULL-terminated allowed spellings */
} RecipeField;

/* Fills every field of out with its default. Also checks the schema
 * (keys, defaults valid, no key both a value and a section) so a
 * programming mistake surfaces as an error on first use. */
int recipe_defaults(const RecipeField *schema, void *out, Err *err);
/* Applies a YAML file on top of what out holds (call recipe_defaults first). */
int recipe_load_file(const RecipeField *schema, const char *path, void *out, Err *err);
/* Same for a buffer; `name` stands for the file in messages. */
int recipe_load_buf(const RecipeField *schema, const char *buf, size_t len, const char *name, void *out, Err *err);
/* Applies one "key=value" (a leading "--set " or "--set=" is skipped). The
 * value is taken literally for strings; lists are "a,b,c" or YAML flow
 * "[a, "b,c"]"; the empty string is an empty list. */
int recipe_override(const RecipeField *schema, const char *arg, void *out, Err *err);
/* Convenience for commands: defaults, then the file (if path is not NULL),
 * then each override in order. */
int recipe_load(const RecipeField *schema, const char *path, char *const *overrides, int n_overrides, void *out,
                Err *err);

/* Writes every field as nested YAML with its help as a comment. */
int recipe_dump(const RecipeField *schema, const void *in, FILE *fp, Err *err);
/* recipe_dump into PATH atomically. */
int recipe_save(const RecipeField *schema, const void *in, const char *path, Err *err);
/* One line per field: key, type, default, range or choices, help. */
void recipe_help(const RecipeField *schema, FILE *fp);
/* 1 when every field of a and b holds the same value (for round-trip checks). */
int recipe_equal(const RecipeField *schema, const void *a, const void *b);
void recipe_free(const RecipeField *schema, void *obj);

#endif
