/* The external reward's response parser, exposed for tests and fuzzing. */
#ifndef R1C_REWARD_EXTERNAL_H
#define R1C_REWARD_EXTERNAL_H

#include <stddef.h>

/* One response line -> score and reason; 0 ok, -1 garbage (why says what). */
int external_parse_response(const char *line, size_t n, double *score, char *reason, size_t rsize, char *why,
                            size_t wsize);

#endif
