/* Internals shared by recipe.c (YAML walk), recipe_value.c (typed values,
 * schema checks) and recipe_dump.c (YAML output, help). Not a public API. */
#ifndef R1C_IO_RECIPE_PRIV_H
#define R1C_IO_RECIPE_PRIV_H

#include "io/recipe.h"

#define RECIPE_MAX_FILE ((size_t)1 << 20)
#define RECIPE_MAX_KEY 256
#define RECIPE_MAX_STRING ((size_t)1 << 16)
#define RECIPE_MAX_LIST 4096

/* The field with exactly this dotted key, or NULL. */
const RecipeField *recipe_field_find(const RecipeField *schema, const char *key);
/* 1 when some field lives under "key." (key names a section). */
int recipe_is_section(const RecipeField *schema, const char *key);
/* Writes " (did you mean 'x'?)" into out when a field key is close to key, else "". */
void recipe_suggest(const RecipeField *schema, const char *key, char *out, size_t cap);
/* "an integer", "a number", ... for messages. */
const char *recipe_type_phrase(const RecipeField *f);

/* Sets a scalar field from text. `quoted` is 1 for a quoted YAML scalar
 * (then it cannot be a number or bool). On failure writes the reason (no
 * file or key prefix) into why and returns -1. Not for STRLIST. */
int recipe_set_scalar(const RecipeField *f, void *out, const char *text, size_t len, int quoted, char *why,
                      size_t cap);
/* Replaces a STRLIST field with items (copied); checks count bounds. */
int recipe_set_list(const RecipeField *f, void *out, char *const *items, size_t n, char *why, size_t cap);
/* Sets a field from an override/default spelling (lists as "a,b" or "[a, b]"). */
int recipe_set_text(const RecipeField *f, void *out, const char *text, char *why, size_t cap);
/* Parses a YAML flow sequence of scalars ("[a, 'b c']") into a malloc'd
 * item array; used for list overrides. */
int recipe_parse_flow_list(const char *text, char ***items, size_t *n, char *why, size_t cap);
void recipe_list_free(RecipeList *l);

/* Prints s for an error message: at most ~40 bytes, controls as '?'. */
void recipe_show(char *out, size_t cap, const char *s, size_t n);

#endif
