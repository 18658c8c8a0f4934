/* r1c grpo: GRPO training from a YAML recipe with key=value overrides. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/backend_select.h"
#include "cli/commands.h"
#include "cli/dist_select.h"
#include "cli/recipe_cli.h"
#include "train/memplan.h"
#include "train/grpo.h"

int cmd_grpo(int argc, char **argv) {
    GrpoConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    int resume, code, plan, ranks;
    if (recipe_cli_take_plan(&argc, argv, "grpo", &plan, &ranks) != 0) return 2;
    if (recipe_cli_parse(argc, argv, "grpo", "  GRPO with rule-based rewards (docs/grpo.md).", GRPO_FIELDS, &cfg,
                         offsetof(GrpoConfig, run_dir), &resume, &code))
        return code;
    if (plan) { /* the memory plan of this recipe, per rank, without running it */
        MemPlanInput mi;
        grpo_plan_input(&cfg, ranks, &mi);
        code = recipe_cli_print_plan("grpo", cfg.model, cfg.backend, &mi);
        recipe_free(GRPO_FIELDS, &cfg);
        return code;
    }
    recipe_cli_catch_signals(&grpo_stop_requested);
    Err err = {{0}};
    if (dist_select_device(cfg.backend, &err) != 0) {
        fprintf(stderr, "r1c grpo: %s\n", err.msg);
        recipe_free(GRPO_FIELDS, &cfg);
        return 2;
    }
    cfg.be = backend_select(cfg.backend, &err);
    if (!cfg.be) {
        fprintf(stderr, "r1c grpo: %s\n", err.msg);
        recipe_free(GRPO_FIELDS, &cfg);
        return 2;
    }
    /* a data-parallel job (r1c launch, torchrun-style variables): join it */
    if (dist_select_init(cfg.be, &cfg.comm, &err) != 0) {
        fprintf(stderr, "r1c grpo: %s\n", err.msg);
        recipe_free(GRPO_FIELDS, &cfg);
        return 1;
    }
    int rc = grpo_run(&cfg, resume, &err);
    if (rc >= 0 && backend_select_check(cfg.be, &err) != 0) rc = -1;
    if (rc < 0) {
        fprintf(stderr, "r1c grpo: %s\n", err.msg);
        dist_select_abort(cfg.comm); /* the other ranks fail now, not at their timeout */
    } else comm_free(cfg.comm);
    recipe_free(GRPO_FIELDS, &cfg);
    return rc < 0 ? 1 : rc == 1 ? 130 : 0;
}
