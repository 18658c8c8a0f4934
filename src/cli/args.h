/* Small flag helpers shared by the commands: `--name value` and
 * `--name=value`, with one-line errors. */
#ifndef R1C_CLI_ARGS_H
#define R1C_CLI_ARGS_H

#include <stdint.h>

/* If argv[*i] is --name, stores its value (next arg or after '=') in *out,
 * advances *i and returns 1; returns -1 (after printing) when the value is
 * missing; 0 when argv[*i] is another flag. */
int arg_str(int argc, char **argv, int *i, const char *name, const char **out);
int arg_int(int argc, char **argv, int *i, const char *name, int64_t *out);
int arg_float(int argc, char **argv, int *i, const char *name, double *out);
/* An int flag within [lo, 2^30] stored in *out; -1 (after printing) when
 * out of range. */
int arg_int_in(int argc, char **argv, int *i, const char *name, int *out, int lo);
/* The sampling flags shared by eval, sample and generate-like commands:
 * --temperature T (>= 0), --top-p P (0, 1], --top-k K (>= 0), --seed S.
 * Same return convention as arg_str. */
int arg_sampling(int argc, char **argv, int *i, float *temperature, float *top_p, int *top_k, uint64_t *seed);
/* Boolean flag with no value. */
int arg_flag(char **argv, int i, const char *name);
/* Prints "r1c CMD: unknown option 'X'" and returns 2. */
int arg_unknown(const char *cmd, const char *arg);

#endif
