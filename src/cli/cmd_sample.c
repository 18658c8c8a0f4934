/* r1c sample: rejection sampling into SFT-ready JSON lines. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/backend_select.h"
#include "cli/commands.h"
#include "eval/reject.h"

static const char *USAGE =
    "usage: r1c sample --model DIR --data PROMPTS.jsonl --out SFT.jsonl [options]\n"
    "  Samples --n completions per prompt, keeps those every reward scores >= --min-score\n"
    "  on and that pass the readability filters, drops duplicates, keeps at most --keep\n"
    "  per prompt; writes {\"messages\", \"prompt\", \"completion\", \"answer\", \"provenance\"}\n"
    "  lines (ready for r1c sft) and OUT.summary.json (acceptance by prompt pass rate).\n"
    "  --rewards SPEC        reward set (default math,format)\n"
    "  --reward-options K=V,...   --min-score X (default 1)\n"
    "  --n N (default 8)  --keep K (default 2)  --limit N\n"
    "  --format F --template NAME --system TEXT --prompt-suffix TEXT\n"
    "  --temperature T (0.6) --top-p P (0.95) --top-k K --max-new-tokens N (1024) --seed S --batch B (64)\n"
    "  --kv-block N --kv-tokens N   a paged KV cache of N-position blocks and a pool of\n"
    "                      N positions (default: off; a full pool preempts and resumes)\n"
    "  --max-paragraph BYTES  reject reasoning with a longer paragraph (default 0: off)\n"
    "  --no-code-in-think     reject reasoning containing ``` code blocks\n"
    "  --language en|zh --min-language X   reject reasoning with less than X of that language\n"
    "  --backend NAME         cpu (default) | cuda | cuda-fp32\n";


int cmd_sample(int argc, char **argv) {
    RejectConfig c = {.format = "auto", .template_name = "auto", .rewards = "math,format", .min_score = 1.0, .n = 8,
                      .keep = 2, .batch = 64, .max_new_tokens = 1024, .temperature = 0.6f, .top_p = 0.95f,
                      .min_language = 0.95};
    const char *backend = "cpu";
    for (int i = 1; i < argc; i++) {
        int r;
        if (arg_flag(argv, i, "--help") || arg_flag(argv, i, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (arg_flag(argv, i, "--no-code-in-think")) {
            c.no_code_in_think = 1;
            continue;
        }
        if ((r = arg_str(argc, argv, &i, "--model", &c.model)) || (r = arg_str(argc, argv, &i, "--data", &c.data)) ||
            (r = arg_str(argc, argv, &i, "--out", &c.out)) || (r = arg_str(argc, argv, &i, "--format", &c.format)) ||
            (r = arg_str(argc, argv, &i, "--template", &c.template_name)) ||
            (r = arg_str(argc, argv, &i, "--system", &c.system)) ||
            (r = arg_str(argc, argv, &i, "--prompt-suffix", &c.prompt_suffix)) ||
            (r = arg_str(argc, argv, &i, "--rewards", &c.rewards)) ||
            (r = arg_str(argc, argv, &i, "--reward-options", &c.reward_options)) ||
            (r = arg_str(argc, argv, &i, "--language", &c.language)) ||
            (r = arg_str(argc, argv, &i, "--backend", &backend)) ||
            (r = arg_int_in(argc, argv, &i, "--n", &c.n, 1)) || (r = arg_int_in(argc, argv, &i, "--keep", &c.keep, 1)) ||
            (r = arg_int_in(argc, argv, &i, "--limit", &c.limit, 0)) || (r = arg_int_in(argc, argv, &i, "--batch", &c.batch, 1)) ||
            (r = arg_int_in(argc, argv, &i, "--max-new-tokens", &c.max_new_tokens, 1)) ||
            (r = arg_int_in(argc, argv, &i, "--kv-block", &c.kv_block, 0)) ||
            (r = arg_int(argc, argv, &i, "--kv-tokens", &c.kv_tokens)) ||
            (r = arg_int_in(argc, argv, &i, "--max-paragraph", &c.max_paragraph, 0))) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = arg_sampling(argc, argv, &i, &c.temperature, &c.top_p, &c.top_k, &c.seed))) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = arg_float(argc, argv, &i, "--min-score", &c.min_score)) ||
            (r = arg_float(argc, argv, &i, "--min-language", &c.min_language))) {
            if (r < 0) return 2;
            continue;
        }
        return arg_unknown("sample", argv[i]);
    }
    if (!c.model || !c.data || !c.out) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (c.kv_tokens < 0 || (c.kv_tokens > 0 && c.kv_block == 0)) {
        fprintf(stderr, "r1c sample: --kv-tokens needs --kv-block and must be at least 0\n");
        return 2;
    }
    Err err = {{0}};
    RejectSummary s;
    if (!(c.be = backend_select(backend, &err))) {
        fprintf(stderr, "r1c sample: %s\n", err.msg);
        return 2;
    }
    if (reject_run(&c, &s, &err) != 0 || backend_select_check(c.be, &err) != 0) {
        fprintf(stderr, "r1c sample: %s\n", err.msg);
        return 1;
    }
    char jp[4096];
    snprintf(jp, sizeof jp, "%s.summary.json", c.out);
    if (reject_report(&s, jp, &err) != 0) {
        fprintf(stderr, "r1c sample: %s\n", err.msg);
        return 1;
    }
    return 0;
}
