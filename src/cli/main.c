/* r1c: the command-line entry point. Dispatches to one command per
 * subcommand; each command parses its own flags. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

#define R1C_VERSION "0.1.0"

static const Command COMMANDS[] = {
    /* one line per command, kept in alphabetical order */
    {"chat-template", "render conversations with a chat template (JSON lines)", cmd_chat_template},
    {"demo", "R1-Zero in miniature: task, tokenizer, base model, GRPO, before/after", cmd_demo},
    {"eval", "benchmark a model: pass@1 over k samples, cons@k, pass@k", cmd_eval},
    {"forward", "run a model over token ids: logits, log-probs, loss, gradients", cmd_forward},
    {"generate", "sample completions (batched, KV cache, continuous batching)", cmd_generate},
    {"grpo", "GRPO reinforcement learning with rule-based rewards (R1-Zero)", cmd_grpo},
    {"init", "write a randomly initialised model of a named shape", cmd_init},
    {"launch", "run a command as N data-parallel ranks (GPUs, or CPU processes; one or several nodes)", cmd_launch},
    {"pipeline", "run a multi-stage recipe (cold start, RL, rejection sampling, SFT, RL, distil)", cmd_pipeline},
    {"plot", "draw PNG curves from a run's metrics.jsonl", cmd_plot},
    {"reward", "score completions in a JSONL file with rule-based rewards", cmd_reward},
    {"sample", "rejection sampling: keep correct, readable completions as SFT data", cmd_sample},
    {"sft", "supervised fine-tuning (cold start, distillation); loss on assistant tokens", cmd_sft},
    {"tokenize", "text <-> token ids with a tokenizer.json (JSON lines)", cmd_tokenize},
    {"tokenizer-train", "learn a byte-level BPE tokenizer.json from text", cmd_tokenizer_train},
    {NULL, NULL, NULL},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0] - 1)

static void usage(FILE *fp) {
    fprintf(fp,
            "r1c %s: DeepSeek-R1 training system (GRPO, SFT, rewards, evaluation) in C\n\n"
            "usage: r1c <command> [options]    (r1c <command> --help for its options)\n\n"
            "commands:\n",
            R1C_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(fp, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("r1c %s\n", R1C_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "r1c: unknown command '%s' (r1c --help lists them)\n", argv[1]);
    return 2;
}
