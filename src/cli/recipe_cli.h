/* Command lines of recipe-driven commands (grpo, sft):
 *   r1c CMD [--recipe FILE.yaml] [key=value | --set key=value ...] [--resume RUN_DIR]
 * With --resume the recipe is RUN_DIR/recipe.yaml (overrides still apply)
 * and run_dir is RUN_DIR. SIGINT/SIGTERM set *stop_flag (a second one
 * exits at once). */
#ifndef R1C_CLI_RECIPE_CLI_H
#define R1C_CLI_RECIPE_CLI_H

#include "io/recipe.h"

/* Returns 0 to run (cfg filled, *resume set), or an exit code (0 after
 * --help, 2 on a usage or recipe error, already printed). */
int recipe_cli_parse(int argc, char **argv, const char *cmd, const char *about, const RecipeField *fields, void *cfg,
                     size_t run_dir_offset, int *resume, int *exit_code);
void recipe_cli_catch_signals(volatile int *stop_flag);
/* Takes `--plan` and `--ranks N` out of argv (before recipe_cli_parse):
 * *plan = 1 when --plan was given, *ranks = N (default 1). -1 with a
 * message printed when N is not a positive integer. */
int recipe_cli_take_plan(int *argc, char **argv, const char *cmd, int *plan, int *ranks);
/* Prints the memory plan (train/memplan.h) of a run of MODEL on BACKEND to
 * stdout; returns the command's exit code (1 with the error printed). */
struct MemPlanInput;
int recipe_cli_print_plan(const char *cmd, const char *model, const char *backend, struct MemPlanInput *mi);

#endif
