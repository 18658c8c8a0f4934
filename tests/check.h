/* Minimal test harness: CHECK* record failures with file:line and keep
 * going; SKIP prints a reason (never silently passes); main returns
 * check_summary(). */
#ifndef R1C_TESTS_CHECK_H
#define R1C_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                             \
    do {                                                                        \
        check_count++;                                                          \
        if (!(cond)) {                                                          \
            check_failures++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                       \
    } while (0)

#define CHECKF(cond, ...)                                                       \
    do {                                                                        \
        check_count++;                                                          \
        if (!(cond)) {                                                          \
            check_failures++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                   \
    CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

#define CHECK_STREQ(a, b) CHECKF(strcmp((a), (b)) == 0, "\"%s\" vs \"%s\"", (a), (b))

/* Prints "SKIP <reason>" on stdout; the runner lists every skip. */
#define SKIP(...)                                                               \
    do {                                                                        \
        printf("SKIP ");                                                        \
        printf(__VA_ARGS__);                                                    \
        printf("\n");                                                           \
    } while (0)

static int check_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
