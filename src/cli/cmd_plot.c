/* r1c plot RUN_DIR: PNG curves from RUN_DIR/metrics.jsonl into
 * RUN_DIR/plots/ (see io/runplot.h for which curves). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "io/runplot.h"

static void plot_usage(FILE *fp) {
    fprintf(fp,
            "usage: r1c plot RUN_DIR [options]\n"
            "Writes RUN_DIR/plots/<metric>.png from RUN_DIR/metrics.jsonl: reward, per-function\n"
            "rewards, accuracy, format rate, completion length (with min/max), KL, entropy,\n"
            "clip fraction, grad norm, lr, loss - whichever the run logged.\n\n"
            "  --keys K1,K2,...  plot these metrics instead ('all' = every metric)\n"
            "  --smooth W        EMA weight in [0, 1) drawn over the faint raw curve (default 0.6; 0 = off)\n"
            "  --out DIR         write the PNGs here instead of RUN_DIR/plots\n"
            "  --size WxH        image size in pixels (default 960x540)\n");
}

/* Splits a comma list in place into at most cap keys. */
static size_t split_keys(char *s, const char **keys, size_t cap) {
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < cap; tok = strtok(NULL, ","))
        if (*tok) keys[n++] = tok;
    return n;
}

int cmd_plot(int argc, char **argv) {
    const char *run_dir = NULL;
    RunPlotOptions opt = {.smooth = 0.6};
    const char *keys[64];
    char *keys_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plot_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--keys") && has_value) {
            free(keys_arg);
            keys_arg = strdup(argv[++i]);
            if (!keys_arg) return 1;
        } else if (!strcmp(a, "--smooth") && has_value) {
            char *end;
            opt.smooth = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(opt.smooth >= 0 && opt.smooth < 1)) {
                fprintf(stderr, "r1c plot: --smooth wants a number in [0, 1), got '%s'\n", argv[i]);
                free(keys_arg);
                return 2;
            }
        } else if (!strcmp(a, "--out") && has_value) {
            opt.out_dir = argv[++i];
        } else if (!strcmp(a, "--size") && has_value) {
            char tail;
            if (sscanf(argv[++i], "%dx%d%c", &opt.width, &opt.height, &tail) != 2 || opt.width < 200 || opt.height < 150 ||
                opt.width > 8192 || opt.height > 8192) {
                fprintf(stderr, "r1c plot: --size wants WxH between 200x150 and 8192x8192, got '%s'\n", argv[i]);
                free(keys_arg);
                return 2;
            }
        } else if (a[0] == '-' || run_dir) {
            fprintf(stderr, "r1c plot: unexpected argument '%s' (r1c plot --help)\n", a);
            free(keys_arg);
            return 2;
        } else {
            run_dir = a;
        }
    }
    if (!run_dir) {
        plot_usage(stderr);
        free(keys_arg);
        return 2;
    }
    if (keys_arg) {
        opt.n_keys = split_keys(keys_arg, keys, sizeof keys / sizeof keys[0]);
        opt.keys = keys;
    }
    Err err = {{0}};
    int written = 0;
    int rc = runplot_write(run_dir, &opt, &written, &err);
    free(keys_arg);
    if (rc != 0) {
        fprintf(stderr, "r1c plot: %s\n", err.msg);
        return 1;
    }
    printf("wrote %d plot%s to %s%s\n", written, written == 1 ? "" : "s", opt.out_dir ? opt.out_dir : run_dir,
           opt.out_dir ? "" : "/plots");
    return 0;
}
