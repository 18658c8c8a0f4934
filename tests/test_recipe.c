/* io/recipe: typed fields, nesting, defaults, every error kind with its
 * line:col, overrides, dump -> load round trip. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/recipe.h"
#include "check.h"

typedef struct Cfg {
    int64_t steps;
    double lr;
    int bf16;
    char *model;
    RecipeList rewards;
    int loss;
    double temperature;
    int64_t max_tokens;
    char *system;
    double kl;
    int64_t group;
} Cfg;

static const char *const LOSSES[] = {"grpo", "dr_grpo", "bnpo", NULL};

static const RecipeField FIELDS[] = {
    {"steps", RECIPE_INT, offsetof(Cfg, steps), "100", .help = "optimizer steps", .has_min = 1, .min = 1},
    {"optim.lr", RECIPE_FLOAT, offsetof(Cfg, lr), "1e-6", .help = "peak learning rate", .has_min = 1, .min = 0, .has_max = 1, .max = 1},
    {"bf16", RECIPE_BOOL, offsetof(Cfg, bf16), "true", .help = "bf16 weights"},
    {"model", RECIPE_STRING, offsetof(Cfg, model), "Qwen/Qwen2.5-0.5B", .help = "checkpoint dir or hub name"},
    {"rewards", RECIPE_STRLIST, offsetof(Cfg, rewards), "format,accuracy", .help = "reward functions", .has_max = 1, .max = 4},
    {"loss", RECIPE_ENUM, offsetof(Cfg, loss), "grpo", .help = "loss normalisation", .choices = LOSSES},
    {"sampling.temperature", RECIPE_FLOAT, offsetof(Cfg, temperature), "1.0", .help = "softmax temperature", .has_min = 1, .min = 0},
    {"sampling.limits.max_tokens", RECIPE_INT, offsetof(Cfg, max_tokens), "1024", .help = "completion budget", .has_min = 1, .min = 1, .has_max = 1, .max = 131072},
    {"system", RECIPE_STRING, offsetof(Cfg, system), NULL, .help = "system prompt"},
    /* back in "optim" after other keys: the dump must still write one "optim:" */
    {"optim.kl", RECIPE_FLOAT, offsetof(Cfg, kl), "0.04", .help = "KL coefficient", .has_min = 1, .min = 0},
    {"sampling.group", RECIPE_INT, offsetof(Cfg, group), "8", .help = "completions per prompt", .has_min = 1, .min = 2},
    {NULL},
};

static int load(Cfg *c, const char *yaml, Err *err) {
    if (recipe_defaults(FIELDS, c, err) != 0) return -1;
    return recipe_load_buf(FIELDS, yaml, strlen(yaml), "r.yaml", c, err);
}

static void test_defaults(void) {
    Cfg c;
    Err err = {{0}};
    CHECK(recipe_defaults(FIELDS, &c, &err) == 0);
    CHECK(c.steps == 100 && c.lr == 1e-6 && c.bf16 == 1 && c.loss == 0);
    CHECK_STREQ(c.model, "Qwen/Qwen2.5-0.5B");
    CHECK_STREQ(c.system, "");
    CHECK(c.rewards.n == 2 && !strcmp(c.rewards.items[1], "accuracy"));
    CHECK(c.temperature == 1.0 && c.max_tokens == 1024 && c.group == 8);
    recipe_free(FIELDS, &c);
    CHECK(c.model == NULL && c.rewards.n == 0);
    /* An empty file, and "---" alone, leave the defaults. */
    CHECK(load(&c, "", &err) == 0 && c.steps == 100);
    recipe_free(FIELDS, &c);
    CHECK(load(&c, "# nothing\n---\n", &err) == 0 && c.steps == 100);
    recipe_free(FIELDS, &c);
}

static void test_types_nesting(void) {
    Cfg c;
    Err err = {{0}};
    const char *y = "steps: 500\n"
                    "optim:\n  lr: 3.0e-6\n  kl: 0\n"
                    "bf16: False\n"
                    "model: 'my model'\n"
                    "rewards:\n  - format\n  - \"a, b\"\n"
                    "loss: dr_grpo\n"
                    "sampling:\n  temperature: 0.7\n  limits: {max_tokens: 4096}\n"
                    "sampling.group: 16\n" /* dotted key at top level */
                    "system: |\n  Think first.\n  Then answer.\n";
    CHECKF(load(&c, y, &err) == 0, "%s", err.msg);
    CHECK(c.steps == 500 && c.lr == 3e-6 && c.kl == 0 && c.bf16 == 0 && c.loss == 1);
    CHECK_STREQ(c.model, "my model");
    CHECK(c.rewards.n == 2 && !strcmp(c.rewards.items[1], "a, b"));
    CHECK(c.temperature == 0.7 && c.max_tokens == 4096 && c.group == 16);
    CHECK_STREQ(c.system, "Think first.\nThen answer.\n");
    recipe_free(FIELDS, &c);
    /* Integers are accepted for floats; an empty list is fine. */
    CHECKF(load(&c, "sampling: {temperature: 2}\nrewards: []\n", &err) == 0, "%s", err.msg);
    CHECK(c.temperature == 2.0 && c.rewards.n == 0);
    recipe_free(FIELDS, &c);
}

/* Loads yaml, expects failure with a message containing want. */
static void expect_error(const char *yaml, const char *want) {
    Cfg c;
    Err err = {{0}};
    int rc = load(&c, yaml, &err);
    CHECKF(rc == -1 && strstr(err.msg, want), "yaml %s\n  want '%s'\n  got  '%s'", yaml, want, rc ? err.msg : "(success)");
    recipe_free(FIELDS, &c);
}

static void test_errors(void) {
    expect_error("steps: 5\nstepz: 6\n", "r.yaml:2:1: key 'stepz': unknown (did you mean 'steps'?)");
    expect_error("temperature: 0.5\n", "r.yaml:1:1: key 'temperature': unknown (did you mean 'sampling.temperature'?)");
    expect_error("sampling:\n  temp: 1\n", "r.yaml:2:3: key 'sampling.temp': unknown");
    expect_error("steps: many\n", "r.yaml:1:8: key 'steps': expected an integer, got 'many'");
    expect_error("steps: 1.5\n", "r.yaml:1:8: key 'steps': expected an integer, got '1.5'");
    expect_error("steps: \"3\"\n", "r.yaml:1:8: key 'steps': expected an integer, got the quoted string \"3\"");
    expect_error("steps: 99999999999999999999\n", "r.yaml:1:8: key 'steps': expected an integer");
    expect_error("steps: 0\n", "r.yaml:1:8: key 'steps': 0 is below the minimum 1");
    expect_error("optim:\n  lr: 2\n", "r.yaml:2:7: key 'optim.lr': 2 is above the maximum 1");
    expect_error("optim:\n  lr: .nan\n", "r.yaml:2:7: key 'optim.lr': expected a finite number, got '.nan'");
    expect_error("optim:\n  lr: 0x10\n", "key 'optim.lr': expected a finite number, got '0x10'");
    expect_error("bf16: yes\n", "r.yaml:1:7: key 'bf16': expected true or false, got 'yes'");
    expect_error("loss: ppo\n", "r.yaml:1:7: key 'loss': 'ppo' is not one of: grpo, dr_grpo, bnpo");
    expect_error("model:\n", "r.yaml:1:7: key 'model': no value (expected a string; write \"\" for an empty string)");
    expect_error("model: [a]\n", "r.yaml:1:8: key 'model': expected a string, got a list");
    expect_error("rewards: format\n", "r.yaml:1:10: key 'rewards': expected a list of strings, got a single value");
    expect_error("rewards: [a, [b]]\n", "r.yaml:1:14: key 'rewards': list items must be strings, got a list");
    expect_error("rewards: [a, b, c, d, e]\n", "r.yaml:1:10: key 'rewards': a list of 5 is above the maximum 4");
    expect_error("sampling: 3\n", "r.yaml:1:11: key 'sampling': expected a mapping of its keys");
    expect_error("steps:\n  a: 1\n", "r.yaml:2:3: key 'steps': expected an integer, got a mapping");
    expect_error("steps: 1\nbf16: true\nsteps: 2\n", "r.yaml:3:1: key 'steps': duplicate (first set at line 1)");
    expect_error("sampling:\n  temperature: 1\nsampling.temperature: 2\n",
                 "r.yaml:3:1: key 'sampling.temperature': duplicate (first set at line 2)");
    expect_error("steps: 1: 2\n", "r.yaml:1:9: YAML syntax error: mapping values are not allowed in this context");
    expect_error("rewards: [a, b\n", "r.yaml:2:1: YAML syntax error: did not find expected ',' or ']'");
    expect_error("steps: &x 5\n", "r.yaml:1:8: YAML anchors and aliases are not supported");
    expect_error("steps: !!int 5\n", "r.yaml:1:8: YAML tags are not supported");
    expect_error("- a\n- b\n", "r.yaml:1:1: a recipe is a mapping of keys to values");
    expect_error("steps: 1\n---\nsteps: 2\n", "r.yaml:2:1: only one YAML document is allowed");
    expect_error("? [a]\n: 1\n", "r.yaml:1:3: keys must be plain names");
    expect_error("model: \"a\\0b\"\n", "key 'model': value contains a NUL character");
    expect_error("steps: 1\nmodel: \xff\n", "r.yaml:2:8: YAML syntax error: invalid leading UTF-8 octet");
    /* File errors name the path. */
    Cfg c;
    Err err = {{0}};
    recipe_defaults(FIELDS, &c, &err);
    CHECK(recipe_load_file(FIELDS, "/nonexistent/r.yaml", &c, &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/r.yaml") != NULL);
    recipe_free(FIELDS, &c);
}

static void test_overrides(void) {
    Cfg c;
    Err err = {{0}};
    char *ovr[] = {"steps=7", "sampling.temperature=0.25", "rewards=a, b ,c", "model=x: y = z", "loss=bnpo", "bf16=false"};
    CHECKF(recipe_load(FIELDS, NULL, ovr, 6, &c, &err) == 0, "%s", err.msg);
    CHECK(c.steps == 7 && c.temperature == 0.25 && c.loss == 2 && c.bf16 == 0);
    CHECK(c.rewards.n == 3 && !strcmp(c.rewards.items[1], "b"));
    CHECK_STREQ(c.model, "x: y = z");
    CHECK(recipe_override(FIELDS, "rewards=[\"a,b\", c]", &c, &err) == 0);
    CHECK(c.rewards.n == 2 && !strcmp(c.rewards.items[0], "a,b"));
    CHECK(recipe_override(FIELDS, "rewards=", &c, &err) == 0 && c.rewards.n == 0);
    CHECK(recipe_override(FIELDS, "system=", &c, &err) == 0 && !strcmp(c.system, ""));
    CHECK(recipe_override(FIELDS, "--set steps=9", &c, &err) == 0 && c.steps == 9);
    CHECK(recipe_override(FIELDS, "--set=steps=7", &c, &err) == 0 && c.steps == 7);
    /* Same validation as the file. */
    CHECK(recipe_override(FIELDS, "steps=0", &c, &err) == -1);
    CHECK_STREQ(err.msg, "override 'steps=0': key 'steps': 0 is below the minimum 1");
    CHECK(recipe_override(FIELDS, "sampling.temprature=1", &c, &err) == -1);
    CHECK_STREQ(err.msg, "override 'sampling.temprature=1': key 'sampling.temprature': unknown (did you mean 'sampling.temperature'?)");
    CHECK(recipe_override(FIELDS, "sampling=1", &c, &err) == -1);
    CHECK(strstr(err.msg, "is a section") != NULL);
    CHECK(recipe_override(FIELDS, "steps", &c, &err) == -1);
    CHECK(strstr(err.msg, "expected key=value") != NULL);
    CHECK(recipe_override(FIELDS, "rewards=a,,b", &c, &err) == -1);
    CHECK(recipe_override(FIELDS, "rewards=[a, [b]]", &c, &err) == -1);
    CHECK(recipe_override(FIELDS, "model=\xc3(", &c, &err) == -1);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    CHECK(c.steps == 7); /* failed overrides leave the value */
    recipe_free(FIELDS, &c);
    /* File then overrides, in that order. */
    char path[] = "/tmp/r1c-recipe-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "steps: 3\noptim: {lr: 0.5}\n", 26) == 26);
    close(fd);
    char *o2[] = {"steps=4"};
    CHECKF(recipe_load(FIELDS, path, o2, 1, &c, &err) == 0, "%s", err.msg);
    CHECK(c.steps == 4 && c.lr == 0.5);
    recipe_free(FIELDS, &c);
    unlink(path);
}

static void round_trip(Cfg *a) {
    char *text = NULL;
    size_t len = 0;
    Err err = {{0}};
    FILE *fp = open_memstream(&text, &len);
    CHECK(recipe_dump(FIELDS, a, fp, &err) == 0);
    fclose(fp);
    Cfg b;
    CHECKF(load(&b, text, &err) == 0, "%s\n%s", err.msg, text);
    CHECKF(recipe_equal(FIELDS, a, &b), "round trip changed values:\n%s", text);
    recipe_free(FIELDS, &b);
    free(text);
}

static void test_round_trip(void) {
    Cfg a;
    Err err = {{0}};
    CHECK(recipe_defaults(FIELDS, &a, &err) == 0);
    round_trip(&a);
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    recipe_dump(FIELDS, &a, fp, &err);
    fclose(fp);
    /* One "optim:" and one "sampling:" although the schema interleaves them. */
    CHECK(strstr(text, "optim:") && strstr(strstr(text, "optim:") + 1, "optim:") == NULL);
    CHECK(strstr(text, "\n  lr: 1.0e-06\n") != NULL);
    CHECK(strstr(text, "\n  # KL coefficient\n  kl: 0.04\n") != NULL);
    CHECK(strstr(text, "\n  limits:\n    # completion budget\n    max_tokens: 1024\n") != NULL);
    CHECK(strstr(text, "\nmodel: Qwen/Qwen2.5-0.5B\n") != NULL);
    CHECK(strstr(text, "\nsystem: \"\"\n") != NULL);
    free(text);
    /* Awkward strings and numbers. */
    char *ovr[] = {"model=yes", "system=line1\nline2\t\"q\" \\ # not a comment: x\x01\x7f\xc2\x85\xe2\x80\xa8 caf\xc3\xa9",
                   "rewards=[\"\", \"-\", \"1.5 x\", null]", "optim.lr=1e-300", "sampling.temperature=0.1",
                   "optim.kl=123456789.123"};
    for (size_t i = 0; i < sizeof ovr / sizeof ovr[0]; i++) CHECKF(recipe_override(FIELDS, ovr[i], &a, &err) == 0, "%s", err.msg);
    CHECK(a.rewards.n == 4); /* "null" plain stays a string item in lists */
    round_trip(&a);
    recipe_free(FIELDS, &a);
    /* recipe_save writes atomically and reads back. */
    CHECK(recipe_defaults(FIELDS, &a, &err) == 0);
    char dir[] = "/tmp/r1c-recipe-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/recipe.yaml", dir);
    CHECK(recipe_save(FIELDS, &a, path, &err) == 0);
    Cfg b;
    CHECK(recipe_defaults(FIELDS, &b, &err) == 0);
    CHECK(recipe_load_file(FIELDS, path, &b, &err) == 0);
    CHECK(recipe_equal(FIELDS, &a, &b));
    recipe_free(FIELDS, &a);
    recipe_free(FIELDS, &b);
    unlink(path);
    rmdir(dir);
}

static void test_bad_schema(void) {
    typedef struct { int64_t a, b; } S;
    S s;
    Err err = {{0}};
    RecipeField clash[] = {{"a", RECIPE_INT, offsetof(S, a), "1", .help = ""}, {"a.b", RECIPE_INT, offsetof(S, b), "1", .help = ""}, {NULL}};
    CHECK(recipe_defaults(clash, &s, &err) == -1 && strstr(err.msg, "both a value and a section"));
    RecipeField bad_def[] = {{"a", RECIPE_INT, offsetof(S, a), "x", .help = ""}, {NULL}};
    CHECK(recipe_defaults(bad_def, &s, &err) == -1 && strstr(err.msg, "default"));
    RecipeField bad_key[] = {{"a..b", RECIPE_INT, offsetof(S, a), "1", .help = ""}, {NULL}};
    CHECK(recipe_defaults(bad_key, &s, &err) == -1);
}

static void test_help(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    recipe_help(FIELDS, fp);
    fclose(fp);
    CHECK(strstr(text, "sampling.temperature") && strstr(text, "grpo|dr_grpo|bnpo") && strstr(text, "[0..1]"));
    free(text);
}

int main(void) {
    test_defaults();
    test_types_nesting();
    test_errors();
    test_overrides();
    test_round_trip();
    test_bad_schema();
    test_help();
    return check_summary("test_recipe");
}
