/* Shared command line of recipe-driven commands (see recipe_cli.h). */
#include "cli/recipe_cli.h"
#include "train/memplan.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int *g_stop;

static void on_signal(int sig) {
    (void)sig;
    if (*g_stop) _exit(130); /* second Ctrl-C: stop now */
    *g_stop = 1;
}

void recipe_cli_catch_signals(volatile int *stop_flag) {
    g_stop = stop_flag;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int recipe_cli_parse(int argc, char **argv, const char *cmd, const char *about, const RecipeField *fields, void *cfg,
                     size_t run_dir_offset, int *resume, int *exit_code) {
    const char *recipe = NULL, *resume_dir = NULL;
    char **over = calloc(argc, sizeof *over);
    int n_over = 0, check = 0;
    *exit_code = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: r1c %s [--recipe FILE.yaml] [key=value ...] [--resume RUN_DIR] [--check]\n%s\n"
                   "  Keys below (file first, then overrides). --resume continues RUN_DIR from its newest\n"
                   "  checkpoint with RUN_DIR/recipe.yaml (overrides still apply). Ctrl-C saves and stops.\n"
                   "  --check validates the recipe, prints it with every default filled in, and exits.\n"
                   "  --plan [--ranks N] prints the memory each rank will need (docs/cuda.md) and exits.\n\n",
                   cmd, about);
            recipe_help(fields, stdout);
            free(over);
            return 1;
        }
        if (!strcmp(a, "--recipe") && i + 1 < argc) recipe = argv[++i];
        else if (!strncmp(a, "--recipe=", 9)) recipe = a + 9;
        else if (!strcmp(a, "--resume") && i + 1 < argc) resume_dir = argv[++i];
        else if (!strncmp(a, "--resume=", 9)) resume_dir = a + 9;
        else if (!strcmp(a, "--check")) check = 1;
        else if (!strcmp(a, "--set") && i + 1 < argc) over[n_over++] = argv[++i];
        else if (!strncmp(a, "--set=", 6) || (strchr(a, '=') && a[0] != '-')) over[n_over++] = argv[i];
        else {
            fprintf(stderr, "r1c %s: unknown argument '%s' (r1c %s --help)\n", cmd, a, cmd);
            free(over);
            *exit_code = 2;
            return 1;
        }
    }
    char rpath[4096];
    if (resume_dir) {
        if (recipe) {
            fprintf(stderr, "r1c %s: --resume uses RUN_DIR/recipe.yaml; pass changes as key=value\n", cmd);
            free(over);
            *exit_code = 2;
            return 1;
        }
        snprintf(rpath, sizeof rpath, "%s/recipe.yaml", resume_dir);
        recipe = rpath;
    }
    Err err = {{0}};
    if (recipe_load(fields, recipe, over, n_over, cfg, &err) != 0) {
        fprintf(stderr, "r1c %s: %s\n", cmd, err.msg);
        recipe_free(fields, cfg);
        free(over);
        *exit_code = 2;
        return 1;
    }
    free(over);
    if (check) { /* the recipe as the run would see it */
        int r = recipe_dump(fields, cfg, stdout, &err);
        if (r) fprintf(stderr, "r1c %s: %s\n", cmd, err.msg);
        recipe_free(fields, cfg);
        *exit_code = r ? 1 : 0;
        return 1;
    }
    char **run_dir = (char **)((char *)cfg + run_dir_offset);
    if (resume_dir && strcmp(*run_dir, resume_dir) != 0) {
        free(*run_dir);
        *run_dir = strdup(resume_dir);
    }
    *resume = resume_dir != NULL;
    return 0;
}

int recipe_cli_take_plan(int *argc, char **argv, const char *cmd, int *plan, int *ranks) {
    int n = 1;
    *plan = 0;
    *ranks = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--plan")) {
            *plan = 1;
            continue;
        }
        if (!strcmp(argv[i], "--ranks")) {
            char *end = NULL;
            long v = i + 1 < *argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= *argc || !end || *end || v < 1 || v > 65536) {
                fprintf(stderr, "r1c %s: --ranks expects a number of ranks from 1 to 65536\n", cmd);
                return -1;
            }
            *ranks = (int)v;
            i++;
            continue;
        }
        argv[n++] = argv[i];
    }
    *argc = n;
    argv[n] = NULL;
    return 0;
}

int recipe_cli_print_plan(const char *cmd, const char *model, const char *backend, struct MemPlanInput *mi) {
    Err err = {{0}};
    if (memplan_preview(model, backend, mi, stdout, &err) == 0) return 0;
    fprintf(stderr, "r1c %s: %s\n", cmd, err.msg);
    return 1;
}
