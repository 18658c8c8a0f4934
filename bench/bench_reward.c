/* Reward benchmarks: math verifier throughput on MATH-500 answers (gold vs
 * its solution's boxed answer, and vs the next problem's answer), against
 * plain string equality as the baseline, and the worst time per call over
 * adversarial inputs for every reward (goal: <= 10 ms). One core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "reward/math.h"
#include "reward/reward.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct Pair {
    char *gold, *pred;
} Pair;

static const char *FALLBACK[] = {"\\frac{14}{3}", "9", "\\left( 3, \\frac{\\pi}{2} \\right)", "p - q", "90^\\circ",
                                 "3\\sqrt{13}", "6 - 5i", "x=5", "1,-2", "\\text{Evelyn}", "11\\sqrt2", "3, 5, 7",
                                 "x^5 - x^4 + x^3 - x^2 + x - 1", "-\\frac{\\pi}{6}", "0.15", "[2,5)"};

static int load_pairs(Pair **out) {
    char *buf;
    size_t len;
    Err err = {{0}};
    int n = 0, cap = 1200;
    Pair *p = calloc((size_t)cap, sizeof *p);
    if (file_read_all("../shared/data/math500/test.jsonl", &buf, &len, 0, &err) == 0) {
        char *save = NULL;
        char *golds[600];
        int ng = 0;
        for (char *line = strtok_r(buf, "\n", &save); line && ng < 600; line = strtok_r(NULL, "\n", &save)) {
            json_t *j = json_loads(line, 0, NULL);
            if (!j) continue;
            const char *a = json_string_value(json_object_get(j, "answer"));
            const char *s = json_string_value(json_object_get(j, "solution"));
            const char *b, *how;
            size_t bl;
            if (a && s && math_extract(s, strlen(s), MATH_EXTRACT_BOXED, 0, &b, &bl, &how)) {
                golds[ng] = strdup(a);
                p[n].gold = golds[ng];
                p[n].pred = strndup(b, bl);
                n++;
                ng++;
            }
            json_decref(j);
        }
        for (int i = 0; i < ng; i++) {
            p[n].gold = golds[i];
            p[n].pred = strdup(golds[(i + 1) % ng]);
            n++;
        }
        free(buf);
        printf("MATH-500: %d answer pairs (gold vs own boxed, gold vs next gold)\n", n);
    } else {
        int k = (int)(sizeof FALLBACK / sizeof *FALLBACK);
        for (int i = 0; i < k; i++) {
            p[n].gold = strdup(FALLBACK[i]);
            p[n++].pred = strdup(FALLBACK[i]);
            p[n].gold = strdup(FALLBACK[i]);
            p[n++].pred = strdup(FALLBACK[(i + 1) % k]);
        }
        printf("MATH-500 absent: %d built-in pairs\n", n);
    }
    *out = p;
    return n;
}

static double throughput(Pair *p, int n, int baseline, long *checksum) {
    double t0 = now_s(), el;
    long calls = 0, sum = 0;
    char why[128];
    do {
        for (int i = 0; i < n; i++) {
            if (baseline) sum += !strcmp(p[i].gold, p[i].pred);
            else sum += math_equiv(p[i].gold, strlen(p[i].gold), p[i].pred, strlen(p[i].pred), NULL, why, sizeof why);
        }
        calls += n;
        el = now_s() - t0;
    } while (el < 1.0);
    *checksum = sum / (calls / n);
    return (double)calls / el;
}

typedef struct Worst {
    const char *name;
    const char *reward;
    char *completion;
    const char *gold;
} Worst;

static char *repeat(const char *pre, const char *unit, int times, const char *post) {
    size_t ul = strlen(unit), n = strlen(pre) + ul * (size_t)times + strlen(post);
    char *s = malloc(n + 1), *q = s;
    q += sprintf(q, "%s", pre);
    for (int i = 0; i < times; i++) { memcpy(q, unit, ul); q += ul; }
    strcpy(q, post);
    return s;
}

int main(void) {
    Pair *p;
    int n = load_pairs(&p);
    long c1, c2;
    double base = throughput(p, n, 1, &c1), rate = throughput(p, n, 0, &c2);
    printf("%-44s %14s %10s\n", "benchmark", "calls/s", "ratio");
    printf("%-44s %14.0f %10s\n", "baseline: strcmp (string equality)", base, "1.00");
    printf("%-44s %14.0f %10.4f\n", "math_equiv on MATH-500 answers", rate, rate / base);
    (void)c1;
    (void)c2;
    long c3, c4;
    double own = throughput(p, n / 2, 0, &c3), other = throughput(p + n / 2, n - n / 2, 0, &c4);
    printf("%-44s %14.0f %10.4f   (%ld equal)\n", "  gold vs own solution's boxed answer", own, own / base, c3);
    printf("%-44s %14.0f %10.4f   (%ld equal)\n", "  gold vs next problem's answer (full parse)", other, other / base, c4);
    double slowest = own < other ? own : other;
    printf("goal >= 100000 verifications/s: %s\n", slowest >= 100000 && rate >= 100000 ? "PASS" : "FAIL");

    /* worst cases: every reward, adversarial inputs */
    char big_set[8192];
    {
        char *q = big_set;
        q += sprintf(q, "\\{");
        for (int i = 0; i < 63; i++) q += sprintf(q, "%s3^{%d}+%d", i ? "," : "", 3000 + i, i);
        sprintf(q, "\\}");
    }
    char big_set2[8192];
    {
        char *q = big_set2;
        q += sprintf(q, "\\{");
        for (int i = 62; i >= 0; i--) q += sprintf(q, "%s3^{%d}+%d", i != 62 ? "," : "", 3000 + i, i);
        sprintf(q, "\\}");
    }
    char tup1[8192], tup2[8192];
    {
        char *q = tup1, *r = tup2;
        q += sprintf(q, "\\{");
        r += sprintf(r, "\\{");
        for (int i = 0; i < 45; i++) {
            q += sprintf(q, "%s(3^{%d},%d)", i ? "," : "", 4000 + i, i);
            r += sprintf(r, "%s(3^{%d},%d)", i ? "," : "", 4044 - i, 44 - i);
        }
        sprintf(q, "\\}");
        sprintf(r, "\\}");
    }
    char *tup_box = malloc(9000);
    snprintf(tup_box, 9000, "\\boxed{%s}", tup1);
    Worst w[] = {
        {"math: 45 reordered tuples of big powers", "math", tup_box, tup2},
        {"math: 10k nested braces in \\boxed", "math", repeat("\\boxed", "{", 10000, "1"), "1"},
        {"math: 1 MiB completion, no anchor", "math", repeat("", "word ", 200000, ""), "1"},
        {"math: 100k \\boxed{ openings", "math", repeat("", "\\boxed{", 100000, ""), "1"},
        {"math: 1000-digit number", "math", repeat("\\boxed{", "9", 1000, "}"), "1"},
        {"math: 10^{10^{10}}", "math", repeat("\\boxed{", "10^{", 40, repeat("10", "}", 40, "}")), "1"},
        {"math: power tower 2^2^2...", "math", repeat("\\boxed{", "2^", 300, "2}"), "1"},
        {"math: 1000! and binomials", "math", strdup("\\boxed{1000!+\\binom{100000}{50000}+(10^{400})!}"), "1"},
        {"math: 1 KiB sum of x terms", "math", repeat("\\boxed{", "x+", 500, "1}"), "1000x+1"},
        {"math: nested sqrt at depth cap", "math", repeat("\\boxed{", "\\sqrt{", 40, repeat("2", "}", 40, "}")), "2"},
        {"math: 63-element set reordered, big powers", "math", repeat("\\boxed{", "", 0, repeat(big_set, "", 0, "}")), big_set2},
        {"math: 1e999999 and 2e-99999", "math", strdup("\\boxed{1e999999+2e-99999}"), "1"},
        {"countdown: 1 MiB of <answer> tags", "countdown", repeat("Assistant:", "<answer>1+</answer>", 50000, ""), "1"},
        {"countdown: 1000 nested parens", "countdown", repeat("<answer>", "(", 1000, "1</answer>"), "1"},
        {"format: 1 MiB of tags", "format", repeat("<think>", "</think><answer>", 60000, ""), "1"},
        {"language: 1 MiB of Chinese", "language", repeat("<think>", "\xe4\xb8\xad", 350000, "</think>"), "1"},
        {"length: 1 MiB", "length", repeat("", "x", 1 << 20, ""), "1"},
    };
    int nw = (int)(sizeof w / sizeof *w);
    double worst_all = 0;
    /* min of 7 runs is the input's cost; max shows the machine's noise */
    printf("\n%-44s %9s %9s\n", "adversarial input (1 call, 7 runs)", "min ms", "max ms");
    for (int i = 0; i < nw; i++) {
        RewardSet rs;
        Err err = {{0}};
        if (rewardset_parse(&rs, w[i].reward, &err) < 0) { printf("%s\n", err.msg); return 1; }
        json_t *rec = json_pack("{s:s, s:[i], s:i}", "answer", w[i].gold, "numbers", 1, "target", 1);
        RewardInput in = {rec, w[i].completion, strlen(w[i].completion)};
        RewardScore s[1];
        double total, worst = 0, best = 1e9;
        for (int r = 0; r < 7; r++) {
            double t0 = now_s();
            rewardset_score(&rs, &in, &total, s, &err);
            double el = now_s() - t0;
            if (el > worst) worst = el;
            if (el < best) best = el;
        }
        if (best > worst_all) worst_all = best;
        printf("%-44s %9.3f %9.3f   score %g: %.50s\n", w[i].name, best * 1e3, worst * 1e3, total, s[0].reason);
        json_decref(rec);
        rewardset_free(&rs);
        free(w[i].completion);
    }
    printf("goal worst case <= 10 ms (slowest input, min of 7 runs): %s (%.3f ms)\n", worst_all <= 0.010 ? "PASS" : "FAIL", worst_all * 1e3);
    for (int i = 0; i < n; i++) free(p[i].pred);
    free(p);
    return 0;
}
