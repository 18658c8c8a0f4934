/* A YAML file as a JSON tree (mappings -> objects, sequences -> arrays,
 * scalars -> strings), for documents whose shape is not a flat recipe
 * (the pipeline's list of stages). Anchors, aliases and tags are refused;
 * errors read "FILE:LINE:COL: problem". Nesting is capped at 64 levels. */
#ifndef R1C_IO_YAML_JSON_H
#define R1C_IO_YAML_JSON_H

#include <jansson.h>

#include "base/err.h"

json_t *yaml_load_json(const char *path, Err *err);
json_t *yaml_load_json_buf(const char *buf, size_t len, const char *name, Err *err);

#endif
