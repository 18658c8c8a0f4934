/* Monotonic wall-clock seconds, for timing phases and throughput. */
#ifndef R1C_BASE_CLOCK_H
#define R1C_BASE_CLOCK_H

#include <time.h>

static inline double clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
