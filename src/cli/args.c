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

int arg_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }

int arg_unknown(const char *cmd, const char *arg) {
    fprintf(stderr, "r1c %s: unknown option '%s' (r1c %s --help)\n", cmd, arg, cmd);
    return 2;
}
