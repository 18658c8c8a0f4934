/* The stage runner (see pipeline.h). Stages run as child processes of the
 * same binary: each gets a clean address space, and a kill of the whole
 * pipeline leaves every stage in a state its own resume handles. */
#include "pipeline/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "io/yaml_json.h"
#include "train/checkpoint.h"

enum { STAGE_SFT, STAGE_GRPO, STAGE_SAMPLE, STAGE_EVAL, STAGE_DEMO_BASE, STAGE_INIT, STAGE_N };
static const char *TYPES[STAGE_N] = {"sft", "grpo", "sample", "eval", "demo_base", "init"};

typedef struct Stage {
    const char *name;
    int type;
    json_t *set; /* object of key -> scalar (or list of scalars) */
    char dir[4096];
    char output[4096];
} Stage;

static int stage_output(Stage *s, Err *err) {
    switch (s->type) {
    case STAGE_SFT:
    case STAGE_GRPO: {
        int r = checkpoint_latest(s->dir, s->output, sizeof s->output, err);
        return r == 0 ? 0 : err_set(err, "stage '%s': finished without a checkpoint in %s", s->name, s->dir);
    }
    case STAGE_SAMPLE: snprintf(s->output, sizeof s->output, "%s/data.jsonl", s->dir); return 0;
    case STAGE_INIT: snprintf(s->output, sizeof s->output, "%s/model", s->dir); return 0;
    default: snprintf(s->output, sizeof s->output, "%s", s->dir); return 0;
    }
}

/* "@name[/path]" -> the named earlier stage's output (+ path). */
static int resolve(const char *v, Stage *st, int n_done, char *out, size_t cap, const char *where, Err *err) {
    if (v[0] != '@') {
        snprintf(out, cap, "%s", v);
        return 0;
    }
    const char *slash = strchr(v + 1, '/');
    size_t nl = slash ? (size_t)(slash - v - 1) : strlen(v + 1);
    for (int i = 0; i < n_done; i++)
        if (strlen(st[i].name) == nl && !strncmp(st[i].name, v + 1, nl)) {
            snprintf(out, cap, "%s%s", st[i].output, slash ? slash : "");
            return 0;
        }
    return err_set(err, "%s: '%s' names no earlier stage", where, v);
}

/* A scalar or a list of scalars (joined with ',') as text. */
static int value_text(json_t *v, char *out, size_t cap) {
    if (json_is_string(v)) return snprintf(out, cap, "%s", json_string_value(v)), 0;
    if (!json_is_array(v)) return -1;
    size_t i, o = 0;
    json_t *x;
    out[0] = 0;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x)) return -1;
        o += snprintf(out + o, o < cap ? cap - o : 0, "%s%s", i ? "," : "", json_string_value(x));
    }
    return 0;
}

static int run_child(char **argv, const char *log_path, Err *err) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return err_set(err, "fork failed: %s", strerror(errno));
    if (pid == 0) {
        if (log_path) {
            FILE *lf = fopen(log_path, "a");
            if (lf) dup2(fileno(lf), 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 130) return err_set(err, "interrupted");
    return err_set(err, "exit status %d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* dry: print the command, check sft/grpo stages' recipes (--check), run nothing */
static int run_stage(Stage *s, Stage *all, int idx, const char *exe, int dry, Err *err) {
    char *argv[256];
    char store[128][4096];
    int n = 0, k = 0;
    argv[n++] = (char *)exe;
    argv[n++] = (char *)TYPES[s->type];
    if (s->type == STAGE_DEMO_BASE) argv[n - 1] = "demo", argv[n++] = "--base-only";
    int recipe_style = s->type == STAGE_SFT || s->type == STAGE_GRPO;
    if (recipe_style) {
        char ck[4096];
        Err e2;
        if (checkpoint_latest(s->dir, ck, sizeof ck, &e2) == 0) { /* interrupted earlier: continue it */
            argv[n++] = "--resume";
            argv[n++] = s->dir;
        } else {
            snprintf(store[k], sizeof store[k], "run_dir=%s", s->dir);
            argv[n++] = store[k++];
        }
    } else {
        const char *flag = s->type == STAGE_DEMO_BASE ? "--run-dir" : "--out";
        argv[n++] = (char *)flag;
        if (s->type == STAGE_SAMPLE) snprintf(store[k], sizeof store[k], "%s/data.jsonl", s->dir);
        else if (s->type == STAGE_INIT) snprintf(store[k], sizeof store[k], "%s/model", s->dir);
        else snprintf(store[k], sizeof store[k], "%s", s->dir);
        argv[n++] = store[k++];
    }
    const char *key;
    json_t *v;
    json_object_foreach(s->set, key, v) {
        char raw[4096], val[4096], where[256];
        snprintf(where, sizeof where, "stage '%s': key '%s'", s->name, key);
        if (value_text(v, raw, sizeof raw) != 0) return err_set(err, "%s: expected a value or a list of values", where);
        if (resolve(raw, all, idx, val, sizeof val, where, err) != 0) return -1;
        if (n + 3 >= 250 || k + 2 >= 128) return err_set(err, "stage '%s': too many keys", s->name);
        if (recipe_style) {
            snprintf(store[k], sizeof store[k], "%s=%s", key, val);
            argv[n++] = store[k++];
        } else if (!strcmp(val, "true") && (!strcmp(key, "no-code-in-think") || !strcmp(key, "quick"))) {
            snprintf(store[k], sizeof store[k], "--%s", key);
            argv[n++] = store[k++];
        } else if (strcmp(val, "false") != 0) {
            snprintf(store[k], sizeof store[k], "--%s", key);
            argv[n++] = store[k++];
            snprintf(store[k], sizeof store[k], "%s", val);
            argv[n++] = store[k++];
        }
    }
    argv[n] = NULL;
    fprintf(dry ? stdout : stderr, "pipeline: stage %d '%s' (%s):", idx + 1, s->name, TYPES[s->type]);
    for (int i = 1; i < n; i++) fprintf(dry ? stdout : stderr, " %s", argv[i]);
    fprintf(dry ? stdout : stderr, "\n");
    if (dry) {
        if (!recipe_style) return 0;
        argv[n++] = "--check";
        argv[n] = NULL;
        /* the child's validation, its output discarded unless it fails */
        if (run_child(argv, "/dev/null", err) != 0)
            return err_set(err, "stage '%s' (%s): its recipe does not check out: run the command above with --check",
                           s->name, TYPES[s->type]);
        return 0;
    }
    if (dir_make(s->dir, err) != 0) return -1;
    char log[4200];
    snprintf(log, sizeof log, "%s/stage.log", s->dir);
    if (run_child(argv, log, err) != 0) return err_prefix(err, "stage '%s' (%s; output in %s)", s->name, TYPES[s->type], log);
    return 0;
}

int pipeline_run(const char *recipe_path, const char *exe, const char *run_dir_override, int dry, Err *err) {
    json_t *root = yaml_load_json(recipe_path, err);
    if (!root) return -1;
    int rc = 0;
    const char *run_dir = run_dir_override ? run_dir_override : json_string_value(json_object_get(root, "run_dir"));
    json_t *stages = json_object_get(root, "stages");
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
        if (strcmp(k, "run_dir") && strcmp(k, "stages")) rc = err_set(err, "%s: unknown key '%s' (run_dir, stages)", recipe_path, k);
    if (!rc && !run_dir) rc = err_set(err, "%s: 'run_dir' is required", recipe_path);
    if (!rc && (!json_is_array(stages) || json_array_size(stages) == 0))
        rc = err_set(err, "%s: 'stages' must be a non-empty list", recipe_path);
    int n = rc ? 0 : (int)json_array_size(stages);
    Stage *st = calloc(n ? n : 1, sizeof *st);
    for (int i = 0; i < n && !rc; i++) {
        json_t *s = json_array_get(stages, i);
        const char *name = json_string_value(json_object_get(s, "name"));
        const char *type = json_string_value(json_object_get(s, "type"));
        json_object_foreach(s, k, v)
            if (strcmp(k, "name") && strcmp(k, "type") && strcmp(k, "set"))
                rc = err_set(err, "%s: stage %d: unknown key '%s' (name, type, set)", recipe_path, i + 1, k);
        if (rc) break;
        if (!name || !name[0] || strchr(name, '/') || name[0] == '.')
            rc = err_set(err, "%s: stage %d: 'name' must be a plain name", recipe_path, i + 1);
        for (int j = 0; j < i && !rc; j++)
            if (!strcmp(st[j].name, name)) rc = err_set(err, "%s: stage name '%s' is used twice", recipe_path, name);
        st[i].type = -1;
        for (int t = 0; t < STAGE_N && type; t++)
            if (!strcmp(type, TYPES[t])) st[i].type = t;
        if (!rc && st[i].type < 0)
            rc = err_set(err, "%s: stage '%s': type '%s' (expected sft, grpo, sample, eval, demo_base or init)",
                         recipe_path, name ? name : "?", type ? type : "(none)");
        st[i].name = name;
        st[i].set = json_object_get(s, "set");
        if (!st[i].set) st[i].set = json_object_get(root, "__none__"); /* NULL */
        if (st[i].set && !json_is_object(st[i].set)) rc = err_set(err, "%s: stage '%s': 'set' must be a mapping", recipe_path, name);
        snprintf(st[i].dir, sizeof st[i].dir, "%s/%s", run_dir, name ? name : "?");
    }
    json_t *empty = json_object();
    for (int i = 0; i < n && !rc; i++) {
        Stage *s = &st[i];
        if (!s->set) s->set = empty;
        char done[4200];
        snprintf(done, sizeof done, "%s/STAGE_DONE", s->dir);
        if (access(done, F_OK) == 0) {
            if ((rc = stage_output(s, err))) break;
            fprintf(dry ? stdout : stderr, "pipeline: stage %d '%s' done earlier -> %s\n", i + 1, s->name, s->output);
            continue;
        }
        if (dry) { /* later stages see where this one's output will be */
            if ((rc = run_stage(s, st, i, exe, 1, err))) break;
            if (s->type == STAGE_SFT || s->type == STAGE_GRPO)
                snprintf(s->output, sizeof s->output, "%s/step-LAST", s->dir);
            else if ((rc = stage_output(s, err))) break;
            continue;
        }
        if ((rc = run_stage(s, st, i, exe, 0, err))) break;
        if ((rc = stage_output(s, err))) break;
        char line[4200];
        int len = snprintf(line, sizeof line, "%s\n", s->output);
        rc = file_write_atomic(done, line, (size_t)len, err);
        if (!rc) fprintf(stderr, "pipeline: stage %d '%s' done -> %s\n", i + 1, s->name, s->output);
    }
    json_decref(empty);
    free(st);
    json_decref(root);
    return rc;
}
