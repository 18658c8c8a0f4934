/* Training checkpoints: RUN/checkpoints/step-N/ holds an HF-loadable model
 * (config.json, model.safetensors), any files to carry along (tokenizer
 * files), optimizer.safetensors (AdamW moments) and trainer_state.json
 * (step, RNG, data position, the trainer's own fields). The directory is
 * built under a temporary name, every file fsynced, then renamed: a kill at
 * any moment leaves the previous checkpoint intact and no half-written one
 * that looks complete. */
#ifndef R1C_TRAIN_CHECKPOINT_H
#define R1C_TRAIN_CHECKPOINT_H

#include <jansson.h>
#include <stdint.h>

#include "base/rng.h"
#include "model/model.h"
#include "train/optim.h"

typedef struct TrainState {
    int64_t step;     /* optimizer steps done */
    int64_t data_pos; /* next example in the data order */
    int64_t epoch;
    Rng rng;          /* the trainer's random stream */
    json_t *extra;    /* trainer-specific fields (owned by the caller) */
} TrainState;

/* Saves step-<st->step>; copies each existing file of carry[] (paths) into
 * it; keeps the newest `keep` checkpoints (0 = all). */
int checkpoint_save(const char *run_dir, const Model *m, const AdamW *opt, const TrainState *st,
                    const char *const *carry, int n_carry, int keep, Err *err);
/* The same with the AdamW moments given as host arrays of all parameters
 * (hm, hv: m->n_floats each, or NULL for no optimizer state) and its step
 * count: how rank 0 saves moments gathered from a sharded optimizer. */
int checkpoint_save_host(const char *run_dir, const Model *m, const float *hm, const float *hv, int adam_t,
                         const TrainState *st, const char *const *carry, int n_carry, int keep, Err *err);
/* Path of the newest complete checkpoint, or 1 if there is none. */
int checkpoint_latest(const char *run_dir, char *out, size_t cap, Err *err);
/* Loads weights into m (same config), moments into opt (created; a
 * sharded one takes its part), state into st (st->extra is a new reference
 * the caller must decref). */
int checkpoint_load(const char *dir, Model *m, AdamW *opt, TrainState *st, Err *err);

#endif
