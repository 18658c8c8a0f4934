/* r1c demo: R1-Zero in miniature (see pipeline/demo.h). */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/demo.h"

int cmd_demo(int argc, char **argv) {
    DemoConfig c = {.run_dir = "runs/demo", .seed = 1, .sft_epochs = 3, .grpo_steps = 100};
    for (int i = 1; i < argc; i++) {
        int64_t v;
        int r;
        if (arg_flag(argv, i, "--help") || arg_flag(argv, i, "-h")) {
            printf("usage: r1c demo [--run-dir DIR] [--seed N] [--sft-epochs N] [--grpo-steps N] [--quick] [--base-only]\n"
                   "  R1-Zero in miniature: task, tokenizer, tiny base model, GRPO, before/after evaluation.\n"
                   "  --base-only stops after the task data, tokenizer and base model (pipeline recipes).\n");
            return 0;
        }
        if ((r = arg_str(argc, argv, &i, "--run-dir", &c.run_dir))) {
            if (r < 0) return 2;
        } else if ((r = arg_int(argc, argv, &i, "--seed", &v))) {
            if (r < 0) return 2;
            c.seed = (uint64_t)v;
        } else if ((r = arg_int(argc, argv, &i, "--sft-epochs", &v))) {
            if (r < 0 || v < 1) return 2;
            c.sft_epochs = (int)v;
        } else if ((r = arg_int(argc, argv, &i, "--grpo-steps", &v))) {
            if (r < 0 || v < 1) return 2;
            c.grpo_steps = (int)v;
        } else if (arg_flag(argv, i, "--quick")) c.quick = 1;
        else if (arg_flag(argv, i, "--base-only")) c.base_only = 1;
        else return arg_unknown("demo", argv[i]);
    }
    Err err = {{0}};
    if (demo_run(&c, &err) != 0) {
        fprintf(stderr, "r1c demo: %s\n", err.msg);
        return 1;
    }
    return 0;
}
