/* Named model shapes (random-weight models for tests and benchmarks, and
 * the sizes of the real checkpoints people use). */
#ifndef R1C_MODEL_SHAPES_H
#define R1C_MODEL_SHAPES_H

#include "io/hf_config.h"

/* Fills cfg for a named shape; returns -1 with a list of names if unknown. */
int model_shape(ModelConfig *cfg, const char *name, Err *err);
const char *model_shape_names(void);

#endif
