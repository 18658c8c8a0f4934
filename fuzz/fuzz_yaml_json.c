/* libFuzzer target: the YAML -> JSON tree loader (pipeline recipes) must
 * parse or refuse any bytes, never crash or leak. */
#include <stdlib.h>

#include "io/yaml_json.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    Err err;
    json_t *j = yaml_load_json_buf((const char *)data, size, "fuzz.yaml", &err);
    if (j) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        free(s);
        json_decref(j);
    }
    return 0;
}
