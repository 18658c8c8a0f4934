/* Learning-rate schedules: linear warmup, then constant, cosine or linear
 * decay to min_ratio * lr at total_steps (as transformers' schedulers). */
#ifndef R1C_TRAIN_SCHEDULE_H
#define R1C_TRAIN_SCHEDULE_H

typedef enum LrSchedule { LR_SCHEDULE_CONSTANT, LR_SCHEDULE_COSINE, LR_SCHEDULE_LINEAR } LrSchedule;

typedef struct LrConfig {
    float lr;
    LrSchedule schedule;
    int warmup_steps;
    int total_steps;
    float min_ratio; /* floor of the decay, as a fraction of lr */
} LrConfig;

/* lr for optimizer step `step` (0-based). */
float lr_at(const LrConfig *c, int step);
/* "constant" | "cosine" | "linear" -> enum; -1 if unknown. */
int lr_schedule_parse(const char *s, LrSchedule *out);

#endif
