/* r1c grpo: GRPO training from a YAML recipe with key=value overrides. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "train/grpo.h"

static void on_sigint(int sig) {
    (void)sig;
    if (grpo_stop_requested) _exit(130); /* second Ctrl-C: stop now */
    grpo_stop_requested = 1;
}

int cmd_grpo(int argc, char **argv) {
    const char *recipe = NULL, *resume = NULL;
    char **over = calloc(argc, sizeof *over);
    int n_over = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: r1c grpo [--recipe FILE.yaml] [key=value ...] [--resume RUN_DIR]\n"
                   "  Trains with GRPO; keys below (file first, then overrides). --resume continues\n"
                   "  RUN_DIR from its newest checkpoint with RUN_DIR/recipe.yaml (overrides still apply,\n"
                   "  e.g. steps=200 to train longer). Ctrl-C saves a checkpoint and stops.\n\n");
            recipe_help(GRPO_FIELDS, stdout);
            free(over);
            return 0;
        }
        if (!strcmp(a, "--recipe") && i + 1 < argc) recipe = argv[++i];
        else if (!strncmp(a, "--recipe=", 9)) recipe = a + 9;
        else if (!strcmp(a, "--resume") && i + 1 < argc) resume = argv[++i];
        else if (!strncmp(a, "--resume=", 9)) resume = a + 9;
        else if (!strcmp(a, "--set") && i + 1 < argc) over[n_over++] = argv[++i];
        else if (strchr(a, '=') && a[0] != '-') over[n_over++] = argv[i];
        else if (!strncmp(a, "--set=", 6)) over[n_over++] = argv[i];
        else {
            fprintf(stderr, "r1c grpo: unknown argument '%s' (r1c grpo --help)\n", a);
            free(over);
            return 2;
        }
    }
    char rpath[4096];
    if (resume) {
        if (recipe) {
            fprintf(stderr, "r1c grpo: --resume uses RUN_DIR/recipe.yaml; pass changes as key=value\n");
            free(over);
            return 2;
        }
        snprintf(rpath, sizeof rpath, "%s/recipe.yaml", resume);
        recipe = rpath;
    }
    GrpoConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    Err err = {{0}};
    if (recipe_load(GRPO_FIELDS, recipe, over, n_over, &cfg, &err) != 0) {
        fprintf(stderr, "r1c grpo: %s\n", err.msg);
        recipe_free(GRPO_FIELDS, &cfg);
        free(over);
        return 2;
    }
    free(over);
    if (resume && strcmp(cfg.run_dir, resume) != 0) {
        free(cfg.run_dir);
        cfg.run_dir = strdup(resume);
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = grpo_run(&cfg, resume != NULL, &err);
    if (rc < 0) fprintf(stderr, "r1c grpo: %s\n", err.msg);
    recipe_free(GRPO_FIELDS, &cfg);
    return rc < 0 ? 1 : rc == 1 ? 130 : 0;
}
