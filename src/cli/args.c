/* Flag parsing helpers (see args.h). */
#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int arg_str(int argc, char **argv, int *i, const char *name, const char **out) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *out = a + n + 1;
        return 1;
    }
    if (a[n] != 0) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "r1c: option %s needs a value\n", name);
        return -1;
    }
    *out = argv[++*i];
    return 1;
}

int arg_int(int argc, char **argv, int *i, const char *name, int64_t *out) {
    const char *s;
    int rc = arg_str(argc, argv, i, name, &s);
    if (rc != 1) return rc;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "r1c: option %s expects an integer, got '%s'\n", name, s);
        return -1;
    }
    *out = v;
    return 1;
}

int arg_float(int argc, char **argv, int *i, const char *name, double *out) {
    const char *s;
    int rc = arg_str(argc, argv, i, name, &s);
    if (rc != 1) return rc;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) {
        fprintf(stderr, "r1c: option %s expects a number, got '%s'\n", name, s);
        return -1;
    }
    *out = v;
    return 1;
}

int arg_int_in(int argc, char **argv, int *i, const char *name, int *out, int lo) {
    int64_t v;
    int r = arg_int(argc, argv, i, name, &v);
    if (r == 1 && (v < lo || v > (1 << 30))) {
        fprintf(stderr, "r1c: %s must be between %d and 2^30\n", name, lo);
        return -1;
    }
    if (r == 1) *out = (int)v;
    return r;
}

int arg_sampling(int argc, char **argv, int *i, float *temperature, float *top_p, int *top_k, uint64_t *seed) {
    double f;
    int64_t v;
    int r;
    if ((r = arg_float(argc, argv, i, "--temperature", &f))) {
        if (r == 1 && f < 0) return fprintf(stderr, "r1c: --temperature must be >= 0\n"), -1;
        if (r == 1) *temperature = (float)f;
        return r;
    }
    if ((r = arg_float(argc, argv, i, "--top-p", &f))) {
        if (r == 1 && (f <= 0 || f > 1)) return fprintf(stderr, "r1c: --top-p must be in (0, 1]\n"), -1;
        if (r == 1) *top_p = (float)f;
        return r;
    }
    if ((r = arg_int(argc, argv, i, "--seed", &v))) {
        if (r == 1) *seed = (uint64_t)v;
        return r;
    }
    return arg_int_in(argc, argv, i, "--top-k", top_k, 0);
}

int arg_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }

int arg_unknown(const char *cmd, const char *arg) {
    fprintf(stderr, "r1c %s: unknown option '%s' (r1c %s --help)\n", cmd, arg, cmd);
    return 2;
}
