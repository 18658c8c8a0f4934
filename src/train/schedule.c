/* Learning-rate schedules (see schedule.h). */
#include "train/schedule.h"

#include <math.h>
#include <string.h>

float lr_at(const LrConfig *c, int step) {
    if (c->warmup_steps > 0 && step < c->warmup_steps) return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    if (c->schedule == LR_SCHEDULE_CONSTANT || c->total_steps <= c->warmup_steps) return c->lr;
    double p = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    if (p > 1) p = 1;
    double f = c->schedule == LR_SCHEDULE_COSINE ? 0.5 * (1 + cos(M_PI * p)) : 1 - p;
    return (float)(c->lr * (c->min_ratio + (1 - c->min_ratio) * f));
}

int lr_schedule_parse(const char *s, LrSchedule *out) {
    if (!strcmp(s, "constant")) *out = LR_SCHEDULE_CONSTANT;
    else if (!strcmp(s, "cosine")) *out = LR_SCHEDULE_COSINE;
    else if (!strcmp(s, "linear")) *out = LR_SCHEDULE_LINEAR;
    else return -1;
    return 0;
}
