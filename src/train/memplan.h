/* Memory planning: what a training run will allocate on its backend,
 * computed from the model config and the run's settings before anything
 * is loaded, so a run that cannot fit is refused with the reason up front
 * instead of failing mid-run (GPU runs print the plan at start).
 *
 * The sizes are the allocations r1c makes (parameters, gradients, AdamW
 * moments, the CUDA backend's bf16 weight copies, activations from
 * acts_bytes, the KV cache and decode buffers of generation, the CUDA
 * backend's grow-only scratch and bf16 conversion buffers); the CUDA
 * context and cuBLAS workspaces come on top (~0.5 GB). Checked against
 * measured peaks in docs/cuda.md. */
#ifndef R1C_TRAIN_MEMPLAN_H
#define R1C_TRAIN_MEMPLAN_H

#include <stddef.h>
#include <stdio.h>

#include "backend/backend.h"
#include "base/err.h"
#include "io/hf_config.h"

typedef struct MemPlanInput {
    const ModelConfig *cfg;
    int train_batch, train_len; /* micro-batch rows x tokens per row */
    int recompute;
    int has_ref;              /* a frozen reference model (GRPO beta > 0) */
    int gen_batch, gen_len;   /* sequences decoded together, prompt + new tokens; 0: no generation */
    int prefill_chunk;        /* prompt tokens per decode step (0: gen_prefill_chunk_default) */
    int kv_block;             /* paged KV cache: positions per block (0: gen_batch x gen_len rows) */
    int64_t kv_tokens;        /* paged: the pool's positions (0: gen_batch sequences of gen_len) */
    int cuda;                 /* count the CUDA backend's scratch */
    int bf16;                 /* CUDA bf16 precision: + a bf16 copy of each model's weights */
    int world, zero;          /* data-parallel ranks; zero: AdamW moments sharded over them (ZeRO-1) */
    int pack;                 /* packed training rows (their attention runs the GEMM path on the GPU) */
    /* the forward's LM-head logits kept for the backward (acts_keep_logits)
     * whatever their size: 1; 0: only up to 128 MB (acts_create); -1:
     * memplan_run decides (1 where the plan with them leaves a tenth of
     * the device free) and writes its choice back */
    int keep_logits;
} MemPlanInput;

enum { MEMPLAN_MAX = 32 }; /* more than any plan has: add() drops items past it */

typedef struct MemPlan {
    struct {
        char what[96];
        double bytes;
        char phase; /* 'p' all run long, 'g' while generating, 't' from the first training step on */
    } item[MEMPLAN_MAX];
    int n;
    double persistent, gen, train, peak; /* bytes; peak = persistent + max(gen, train) */
} MemPlan;

void memplan_compute(MemPlan *p, const MemPlanInput *in);
/* Table of the items and the peak, one per line, each prefixed. */
void memplan_print(const MemPlan *p, FILE *fp, const char *prefix);
/* Where the backend can say how much memory it has (be->mem_info), -1 with
 * a one-line error naming the biggest item and what to change when the
 * peak exceeds the free memory; else 0. */
int memplan_check(const MemPlan *p, const Backend *be, const char *hint, Err *err);

/* For a run about to load MODEL_DIR (its config.json) on be, per rank:
 * computes the plan, prints it to fp when `print`, and where the backend
 * reports its memory (a GPU) refuses a plan that does not fit
 * (memplan_check). Does nothing (not even reading the config) on a
 * backend without a memory report when !print. */
int memplan_run(const char *model_dir, const Backend *be, MemPlanInput *in, int print, const char *hint, FILE *fp,
                Err *err);

/* Without a device: the plan of a run on the named backend ("cpu",
 * "cuda", "cuda-bf16", "cuda-fp32") for MODEL_DIR, printed to fp with a
 * header (r1c grpo / sft --plan). */
int memplan_preview(const char *model_dir, const char *backend, MemPlanInput *in, FILE *fp, Err *err);

#endif
