/* r1c eval: benchmark a checkpoint as the R1 paper reports (pass@1 over k
 * samples, cons@k, pass@k), or re-score saved samples. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/backend_select.h"
#include "cli/commands.h"
#include "eval/evaluate.h"

static const char *USAGE =
    "usage: r1c eval --model DIR --data FILE.jsonl [options]\n"
    "       r1c eval --rescore OUT/samples.jsonl [--reward NAME] [--reward-options K=V,...]\n"
    "  --format F          auto | gsm8k | math | countdown | humaneval | mbpp | jsonl (default auto)\n"
    "  --template NAME     chat template (default: from tokenizer_config.json)\n"
    "  --system TEXT       system message;  --prompt-suffix TEXT appended to every prompt\n"
    "  --k N               samples per problem (default 4)\n"
    "  --temperature T --top-p P --top-k K --max-new-tokens N --seed S --batch B\n"
    "  --preset r1         the paper's settings: temperature 0.6, top-p 0.95,\n"
    "                      32768 new tokens, k = 64 (flags after it override)\n"
    "  --limit N           first N problems\n"
    "  --kv-block N --kv-tokens N   a paged KV cache of N-position blocks and a pool of\n"
    "                      N positions (default: off; a full pool preempts and resumes)\n"
    "  --reward NAME       accuracy reward: math (default), countdown or code (HumanEval, MBPP:\n"
    "                      runs the programs in a sandbox; --reward-options code.timeout=5,...)\n"
    "  --out DIR           results.json and samples.jsonl (default runs/eval)\n"
    "  --backend NAME      cpu (default) | cuda | cuda-fp32\n"
    "prints pass@1 (mean over k), cons@k (majority vote, answers grouped by the\n"
    "math verifier), pass@k (unbiased) for k = 1, 2, 4, ..., mean length, truncation\n";


int cmd_eval(int argc, char **argv) {
    EvalConfig c = {.format = "auto", .template_name = "auto", .out_dir = "runs/eval", .reward = "math", .k = 4,
                    .batch = 64, .max_new_tokens = 1024, .temperature = 0.6f, .top_p = 0.95f};
    const char *rescore = NULL, *backend = "cpu";
    for (int i = 1; i < argc; i++) {
        int r;
        const char *s;
        if (arg_flag(argv, i, "--help") || arg_flag(argv, i, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if ((r = arg_str(argc, argv, &i, "--preset", &s))) {
            if (r < 0) return 2;
            if (strcmp(s, "r1") != 0) {
                fprintf(stderr, "r1c eval: unknown preset '%s' (known: r1)\n", s);
                return 2;
            }
            c.temperature = 0.6f, c.top_p = 0.95f, c.max_new_tokens = 32768, c.k = 64;
            continue;
        }
        if ((r = arg_str(argc, argv, &i, "--model", &c.model)) || (r = arg_str(argc, argv, &i, "--data", &c.data)) ||
            (r = arg_str(argc, argv, &i, "--format", &c.format)) ||
            (r = arg_str(argc, argv, &i, "--template", &c.template_name)) ||
            (r = arg_str(argc, argv, &i, "--system", &c.system)) ||
            (r = arg_str(argc, argv, &i, "--prompt-suffix", &c.prompt_suffix)) ||
            (r = arg_str(argc, argv, &i, "--out", &c.out_dir)) || (r = arg_str(argc, argv, &i, "--reward", &c.reward)) ||
            (r = arg_str(argc, argv, &i, "--reward-options", &c.reward_options)) ||
            (r = arg_str(argc, argv, &i, "--rescore", &rescore)) || (r = arg_str(argc, argv, &i, "--backend", &backend))) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = arg_int_in(argc, argv, &i, "--k", &c.k, 1)) || (r = arg_int_in(argc, argv, &i, "--limit", &c.limit, 0)) ||
            (r = arg_int_in(argc, argv, &i, "--batch", &c.batch, 1)) ||
            (r = arg_int_in(argc, argv, &i, "--kv-block", &c.kv_block, 0)) ||
            (r = arg_int(argc, argv, &i, "--kv-tokens", &c.kv_tokens)) ||
            (r = arg_int_in(argc, argv, &i, "--max-new-tokens", &c.max_new_tokens, 1))) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = arg_sampling(argc, argv, &i, &c.temperature, &c.top_p, &c.top_k, &c.seed))) {
            if (r < 0) return 2;
            continue;
        }
        return arg_unknown("eval", argv[i]);
    }
    Err err = {{0}};
    EvalResult res;
    char jp[4096];
    if (rescore) {
        if (eval_rescore(rescore, &c, &res, &err) != 0) {
            fprintf(stderr, "r1c eval: %s\n", err.msg);
            return 1;
        }
        return eval_report(&res, &c, NULL, &err) ? 1 : 0;
    }
    if (!c.model || !c.data) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (c.kv_tokens < 0 || (c.kv_tokens > 0 && c.kv_block == 0)) {
        fprintf(stderr, "r1c eval: --kv-tokens needs --kv-block and must be at least 0\n");
        return 2;
    }
    if (c.k < 1 || c.batch < 1 || c.max_new_tokens < 1) {
        fprintf(stderr, "r1c eval: --k, --batch and --max-new-tokens must be at least 1\n");
        return 2;
    }
    if (!(c.be = backend_select(backend, &err))) {
        fprintf(stderr, "r1c eval: %s\n", err.msg);
        return 2;
    }
    if (eval_run(&c, &res, &err) != 0 || backend_select_check(c.be, &err) != 0) {
        fprintf(stderr, "r1c eval: %s\n", err.msg);
        return 1;
    }
    snprintf(jp, sizeof jp, "%s/results.json", c.out_dir);
    if (eval_report(&res, &c, jp, &err) != 0) {
        fprintf(stderr, "r1c eval: %s\n", err.msg);
        return 1;
    }
    printf("results: %s\nsamples: %s/samples.jsonl\n", jp, c.out_dir);
    return 0;
}
