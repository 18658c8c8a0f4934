/* libFuzzer target: saved evaluation samples (samples.jsonl) must re-score
 * or be refused with an error, never crash. */
#include <stdio.h>
#include <unistd.h>

#include "eval/evaluate.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/r1c-fuzz-rescore-%d.jsonl", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    EvalConfig c = {.reward = "math"};
    EvalResult r;
    Err err;
    eval_rescore(path, &c, &r, &err);
    return 0;
}
