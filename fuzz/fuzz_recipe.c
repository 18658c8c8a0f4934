/* libFuzzer target for the recipe loader: any bytes must load or fail with
 * a message, never crash or leak; whatever loads must dump to YAML that
 * loads back to identical values and dumps to identical text. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/recipe.h"

typedef struct Cfg {
    int64_t steps, max_tokens;
    double lr, temperature;
    int bf16, loss;
    char *model, *system;
    RecipeList rewards;
} Cfg;

static const char *const LOSSES[] = {"grpo", "dr_grpo", "bnpo", NULL};

static const RecipeField FIELDS[] = {
    {"steps", RECIPE_INT, offsetof(Cfg, steps), "100", .has_min = 1, .min = 1},
    {"optim.lr", RECIPE_FLOAT, offsetof(Cfg, lr), "1e-6", .has_min = 1, .min = 0, .has_max = 1, .max = 1},
    {"bf16", RECIPE_BOOL, offsetof(Cfg, bf16), "true", .help = "bf16"},
    {"model", RECIPE_STRING, offsetof(Cfg, model), "m", .help = "model"},
    {"rewards", RECIPE_STRLIST, offsetof(Cfg, rewards), "format,accuracy", .has_max = 1, .max = 8},
    {"loss", RECIPE_ENUM, offsetof(Cfg, loss), "grpo", .choices = LOSSES},
    {"sampling.temperature", RECIPE_FLOAT, offsetof(Cfg, temperature), "1.0", .help = "t"},
    {"sampling.limits.max_tokens", RECIPE_INT, offsetof(Cfg, max_tokens), "1024", .help = "n"},
    {"system", RECIPE_STRING, offsetof(Cfg, system), NULL, .help = "s"},
    {NULL},
};

static char *dump(const Cfg *c) {
    char *text = NULL;
    size_t len = 0;
    Err err;
    FILE *fp = open_memstream(&text, &len);
    if (!fp || recipe_dump(FIELDS, c, fp, &err) != 0) abort();
    fclose(fp);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Cfg a, b;
    Err err;
    if (recipe_defaults(FIELDS, &a, &err) != 0) abort();
    if (recipe_load_buf(FIELDS, (const char *)data, size, "fuzz", &a, &err) != 0) {
        if (!err.msg[0]) abort(); /* every failure explains itself */
        recipe_free(FIELDS, &a);
        return 0;
    }
    char *t1 = dump(&a);
    if (recipe_defaults(FIELDS, &b, &err) != 0) abort();
    if (recipe_load_buf(FIELDS, t1, strlen(t1), "dump", &b, &err) != 0) {
        fprintf(stderr, "dump does not load: %s\n%s\n", err.msg, t1);
        abort();
    }
    if (!recipe_equal(FIELDS, &a, &b)) {
        fprintf(stderr, "round trip changed values:\n%s\n", t1);
        abort();
    }
    char *t2 = dump(&b);
    if (strcmp(t1, t2) != 0) abort();
    free(t1);
    free(t2);
    recipe_free(FIELDS, &a);
    recipe_free(FIELDS, &b);
    return 0;
}
