/* An op-timing wrapper around a backend: every call through the table is
 * timed and counted, and backend_profile_report prints the table sorted by
 * time. For finding where a step goes, not for production runs. */
#ifndef R1C_BACKEND_PROFILE_H
#define R1C_BACKEND_PROFILE_H

#include <stdio.h>

#include "backend/backend.h"

const Backend *backend_profiled(const Backend *inner);
void backend_profile_report(FILE *fp);
void backend_profile_reset(void);

#endif
