/* r1c sft: supervised fine-tuning from a YAML recipe with key=value overrides. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/backend_select.h"
#include "cli/commands.h"
#include "cli/dist_select.h"
#include "cli/recipe_cli.h"
#include "train/memplan.h"
#include "train/sft_run.h"

int cmd_sft(int argc, char **argv) {
    SftRecipe cfg;
    memset(&cfg, 0, sizeof cfg);
    int resume, code, plan, ranks;
    if (recipe_cli_take_plan(&argc, argv, "sft", &plan, &ranks) != 0) return 2;
    if (recipe_cli_parse(argc, argv, "sft",
                         "  Supervised fine-tuning on chat JSONL ({\"messages\": [...]}) or prompt/completion pairs;\n"
                         "  loss on assistant tokens only (docs/sft.md).",
                         SFT_FIELDS, &cfg, offsetof(SftRecipe, run_dir), &resume, &code))
        return code;
    if (plan) { /* the memory plan of this recipe, per rank, without running it */
        MemPlanInput mi;
        sft_plan_input(&cfg, ranks, &mi);
        code = recipe_cli_print_plan("sft", cfg.model, cfg.backend, &mi);
        recipe_free(SFT_FIELDS, &cfg);
        return code;
    }
    recipe_cli_catch_signals(&sft_stop_requested);
    Err err = {{0}};
    if (dist_select_device(cfg.backend, &err) != 0) {
        fprintf(stderr, "r1c sft: %s\n", err.msg);
        recipe_free(SFT_FIELDS, &cfg);
        return 2;
    }
    cfg.be = backend_select(cfg.backend, &err);
    if (!cfg.be) {
        fprintf(stderr, "r1c sft: %s\n", err.msg);
        recipe_free(SFT_FIELDS, &cfg);
        return 2;
    }
    /* a data-parallel job (r1c launch, torchrun-style variables): join it */
    if (dist_select_init(cfg.be, &cfg.comm, &err) != 0) {
        fprintf(stderr, "r1c sft: %s\n", err.msg);
        recipe_free(SFT_FIELDS, &cfg);
        return 1;
    }
    int rc = sft_run(&cfg, resume, &err);
    if (rc >= 0 && backend_select_check(cfg.be, &err) != 0) rc = -1;
    if (rc < 0) {
        fprintf(stderr, "r1c sft: %s\n", err.msg);
        dist_select_abort(cfg.comm); /* the other ranks fail now, not at their timeout */
    } else comm_free(cfg.comm);
    recipe_free(SFT_FIELDS, &cfg);
    return rc < 0 ? 1 : rc == 1 ? 130 : 0;
}
