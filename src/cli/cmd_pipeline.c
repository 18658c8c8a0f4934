/* r1c pipeline: run a multi-stage recipe (see pipeline/pipeline.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "pipeline/pipeline.h"

int cmd_pipeline(int argc, char **argv) {
    const char *recipe = NULL, *run_dir = NULL;
    int dry = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: r1c pipeline RECIPE.yaml [run_dir=DIR] [--dry-run]\n"
                   "  Runs the stages of RECIPE in order (sft, grpo, sample, eval, demo_base, init), each in\n"
                   "  RUN_DIR/<name>/ with its log in stage.log. Finished stages are skipped; run the same\n"
                   "  command again after a stop to continue. --dry-run prints each stage's command and\n"
                   "  checks the sft/grpo stages' recipes without running anything. See docs/pipeline.md\n"
                   "  and recipes/.\n");
            return 0;
        }
        if (!strncmp(argv[i], "run_dir=", 8)) run_dir = argv[i] + 8;
        else if (!strcmp(argv[i], "--dry-run")) dry = 1;
        else if (!recipe && argv[i][0] != '-') recipe = argv[i];
        else {
            fprintf(stderr, "r1c pipeline: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!recipe) {
        fprintf(stderr, "usage: r1c pipeline RECIPE.yaml [run_dir=DIR] [--dry-run]\n");
        return 2;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "r1c pipeline: cannot find the r1c binary (/proc/self/exe)\n");
        return 1;
    }
    exe[n] = 0;
    Err err = {{0}};
    if (pipeline_run(recipe, exe, run_dir, dry, &err) != 0) {
        fprintf(stderr, "r1c pipeline: %s\n", err.msg);
        return 1;
    }
    return 0;
}
