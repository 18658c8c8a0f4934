/* r1c init: write a randomly initialised model of a named shape, in HF
 * format (benchmarks, tests, and the starting point of models trained from
 * scratch). */
#include <stdio.h>

#include <stdlib.h>

#include "base/file.h"
#include "cli/args.h"
#include "io/tokenizer.h"
#include "cli/commands.h"
#include "model/model.h"
#include "model/shapes.h"

int cmd_init(int argc, char **argv) {
    const char *shape = NULL, *out = NULL, *dtype = "f32", *tok_path = NULL, *eos_tok = "<|endoftext|>";
    int64_t seed = 0, vocab = 0;
    double std = 0.02;
    for (int i = 1; i < argc; i++) {
        int r;
        if (arg_flag(argv, i, "--help") || arg_flag(argv, i, "-h")) {
            printf("usage: r1c init --shape NAME --out DIR [--seed N] [--std X] [--vocab N] [--dtype f32|bf16]\n"
                   "                [--tokenizer tokenizer.json [--eos TOKEN]]  (vocabulary and EOS from it; copied)\n"
                   "  shapes: %s\n", model_shape_names());
            return 0;
        }
        if ((r = arg_str(argc, argv, &i, "--shape", &shape)) || (r = arg_str(argc, argv, &i, "--out", &out)) ||
            (r = arg_str(argc, argv, &i, "--dtype", &dtype)) || (r = arg_int(argc, argv, &i, "--seed", &seed)) ||
            (r = arg_int(argc, argv, &i, "--vocab", &vocab)) || (r = arg_float(argc, argv, &i, "--std", &std)) ||
            (r = arg_str(argc, argv, &i, "--tokenizer", &tok_path)) || (r = arg_str(argc, argv, &i, "--eos", &eos_tok))) {
            if (r < 0) return 2;
            continue;
        }
        return arg_unknown("init", argv[i]);
    }
    if (!shape || !out) {
        fprintf(stderr, "usage: r1c init --shape NAME --out DIR (r1c init --help)\n");
        return 2;
    }
    Err err = {{0}};
    ModelConfig cfg;
    if (model_shape(&cfg, shape, &err) != 0) {
        fprintf(stderr, "r1c init: %s\n", err.msg);
        return 2;
    }
    if (vocab > 0) {
        cfg.vocab_size = (int)vocab;
        cfg.eos_ids[0] = (int)vocab - 1;
    }
    char *tok_buf = NULL;
    size_t tok_len = 0;
    if (tok_path) { /* a model for this tokenizer (e.g. a student to distil into) */
        Tokenizer *tk;
        if (tokenizer_load(&tk, tok_path, &err) != 0 || file_read_all(tok_path, &tok_buf, &tok_len, 0, &err) != 0) {
            fprintf(stderr, "r1c init: %s\n", err.msg);
            return 1;
        }
        cfg.vocab_size = tokenizer_vocab_size(tk);
        int32_t e = tokenizer_token_id(tk, eos_tok);
        cfg.eos_ids[0] = e >= 0 ? e : cfg.vocab_size - 1;
        tokenizer_free(tk);
    }
    Model m;
    if (model_create(&m, &cfg, backend_cpu(), &err) != 0) {
        fprintf(stderr, "r1c init: %s\n", err.msg);
        return 1;
    }
    int rc = model_init_random(&m, (uint64_t)seed, (float)std, &err) ||
             model_save(&m, out, dtype[0] == 'b' ? ST_DTYPE_BF16 : ST_DTYPE_F32, &err);
    if (!rc && tok_buf) {
        char p[4096];
        snprintf(p, sizeof p, "%s/tokenizer.json", out);
        rc = file_write_atomic(p, tok_buf, tok_len, &err);
    }
    free(tok_buf);
    if (rc) fprintf(stderr, "r1c init: %s\n", err.msg);
    else printf("wrote %s (%s, %.1fM parameters)\n", out, shape, m.n_floats / 1e6);
    model_free(&m);
    return rc ? 1 : 0;
}
