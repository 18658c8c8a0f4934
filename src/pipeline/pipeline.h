/* `r1c pipeline RECIPE.yaml`: the multi-stage R1 recipe as a list of
 * stages (demo_base, init, sft, grpo, sample, eval) chained through their
 * outputs. Each stage runs as its own `r1c` command in RUN/<name>/; a stage
 * whose STAGE_DONE marker exists is skipped, and an interrupted sft/grpo
 * stage resumes from its newest checkpoint, so re-running the same command
 * after a kill continues where it stopped.
 *
 *   run_dir: runs/r1-tiny
 *   stages:
 *     - name: cold_start
 *       type: sft
 *       set: {model: "@base/base-model", data.path: "@base/data/sft.jsonl", epochs: 1}
 *
 * A value "@stage" is that stage's output (sft/grpo: newest checkpoint;
 * sample: its JSONL; eval, demo_base: its directory; init: its model);
 * "@stage/sub/path" appends a path. */
#ifndef R1C_PIPELINE_PIPELINE_H
#define R1C_PIPELINE_PIPELINE_H

#include "base/err.h"

/* exe: path of the r1c binary to run stages with. overrides: "run_dir=..."
 * only, for now. */
/* dry = 1: print each stage's command and check the sft/grpo stages'
 * recipes (their --check), running nothing. */
int pipeline_run(const char *recipe_path, const char *exe, const char *run_dir_override, int dry, Err *err);

#endif
