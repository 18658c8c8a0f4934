/* libFuzzer target: dataset lines (JSONL in every built-in shape) must load
 * or be refused with an error, never crash. The first input byte picks the
 * format; the rest is written to a file, since dataset_load reads paths. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/dataset.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/r1c-fuzz-dataset-%d.jsonl", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data + 1, 1, size - 1, fp);
    fclose(fp);
    DatasetOptions o = {.format = (DatasetFormat)(data[0] % 5), .prompt_suffix = (data[0] & 8) ? "Think." : NULL,
                        .limit = (data[0] & 16) ? 3 : 0};
    Dataset d;
    Err err;
    if (dataset_load(&d, path, &o, &err) == 0) {
        for (int i = 0; i < d.n; i++)
            if (!d.ex[i].prompt || !d.ex[i].record) abort();
        dataset_free(&d);
    }
    return 0;
}
