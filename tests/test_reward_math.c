/* Math verifier: the case table (tests/fixtures/rewards/math_cases.tsv),
 * answer extraction, and MATH-500's own answers (gold vs its solution's
 * boxed answer: equal; vs another problem's answer: unequal except the
 * listed coincidences). */
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "check.h"
#include "reward/math.h"
#include "reward/reward.h"

static int eq(const char *g, const char *p) {
    char why[128];
    return math_equiv(g, strlen(g), p, strlen(p), NULL, why, sizeof why);
}

static void test_cases(void) {
    char *buf;
    size_t len;
    Err err = {{0}};
    if (file_read_all("tests/fixtures/rewards/math_cases.tsv", &buf, &len, 0, &err) < 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    int n = 0, bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || !line[0]) continue;
        char *f[4] = {0};
        int k = 0;
        for (char *p = line; k < 4; k++) {
            f[k] = p;
            char *t = strchr(p, '\t');
            if (!t) { k++; break; }
            *t = 0;
            p = t + 1;
        }
        CHECKF(k >= 3, "bad case line: %s", line);
        if (k < 3) continue;
        char why[128];
        int got = math_equiv(f[1], strlen(f[1]), f[2], strlen(f[2]), NULL, why, sizeof why);
        int want = atoi(f[0]);
        n++;
        if (got != want) bad++;
        CHECKF(got == want, "[%s] gold '%s' pred '%s': got %d (%s), want %d", f[3] ? f[3] : "", f[1], f[2], got, why, want);
    }
    printf("math cases: %d, mismatches %d\n", n, bad);
    CHECK(n >= 300);
    free(buf);
}

static void test_options(void) {
    MathOptions o;
    math_options_default(&o);
    char why[128];
    o.percent = MATH_PERCENT_FRACTION;
    CHECK(math_equiv("50\\%", 4, "0.5", 3, &o, why, sizeof why) == 1);
    CHECK(math_equiv("50\\%", 4, "50", 2, &o, why, sizeof why) == 0);
    o.percent = MATH_PERCENT_STRIP;
    CHECK(math_equiv("50\\%", 4, "0.5", 3, &o, why, sizeof why) == 0);
    CHECK(math_equiv("50\\%", 4, "50", 2, &o, why, sizeof why) == 1);
    math_options_default(&o);
    CHECK(math_equiv("3.14159", 7, "3.1416", 6, &o, why, sizeof why) == 0);
    o.rel_tol = 1e-4;
    CHECK(math_equiv("3.14159", 7, "3.1416", 6, &o, why, sizeof why) == 1);
    CHECK(math_equiv("\\pi", 3, "3.1416", 6, &o, why, sizeof why) == 1);
}

static void ex(const char *text, unsigned anchors, const char *want, const char *want_how) {
    const char *a, *how;
    size_t n;
    int ok = math_extract(text, strlen(text), anchors, 64, &a, &n, &how);
    if (!want) {
        CHECKF(!ok, "extracted '%.*s' from '%s'", ok ? (int)n : 0, ok ? a : "", text);
        return;
    }
    CHECKF(ok && n == strlen(want) && !memcmp(a, want, n), "from '%s': got '%.*s' want '%s'", text, ok ? (int)n : 0,
           ok ? a : "", want);
    if (ok && want_how) CHECK_STREQ(how, want_how);
}

static void test_extract(void) {
    unsigned d = MATH_EXTRACT_DEFAULT;
    ex("so \\boxed{5} and then \\boxed{\\frac{1}{2}}", d, "\\frac{1}{2}", "boxed");
    ex("\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", d, "\\begin{pmatrix}1\\\\2\\end{pmatrix}", "boxed");
    ex("$\\boxed 7$", d, "7", "boxed");
    ex("\\fbox{12}", d, "12", "boxed");
    ex("\\boxed{1} then \\fbox{2}", d, "2", "boxed");
    ex("\\boxed{3} and a broken \\boxed{4", d, "3", "boxed");
    ex("<think>\\boxed{1}</think><answer> 42 </answer>", d, "42", "answer tag");
    ex("<answer>so \\boxed{x+1}</answer>", d, "x+1", "answer tag + boxed");
    ex("Thus the answer is 3.5. Done", d, "3.5", "answer is");
    ex("The final answer is: $\\frac{3}{4}$", d, "$\\frac{3}{4}$", "answer is");
    ex("Answer: 12\nmore", d, "12", "answer is");
    ex("Natalia sold 48+24 = 72 clips.\n#### 72", d, "72", "####");
    ex("  17  ", d, "17", "whole text");
    ex("We get 3 apples, then 4 more, so 7 in total, which is a lot of words, definitely more than sixty-four bytes", d,
       "7", "last number");
    ex("We get 3 apples, then 4 more, so 7 in total, which is a lot of words, definitely more than sixty-four bytes",
       d & ~(unsigned)MATH_EXTRACT_LAST_NUMBER, NULL, NULL);
    ex("it costs $1,234.50 in total and that is what we computed over many long lines of text here", d, "1,234.50", NULL);
    ex("", d, NULL, NULL);
    /* 10k nested braces: linear scan, correct result */
    size_t n = 20000 + 16;
    char *deep = malloc(n + 1);
    strcpy(deep, "\\boxed");
    size_t k = 6;
    for (int i = 0; i < 10000; i++) deep[k++] = '{';
    deep[k++] = '1';
    for (int i = 0; i < 10000; i++) deep[k++] = '}';
    deep[k] = 0;
    const char *a, *how;
    size_t al;
    CHECK(math_extract(deep, k, d, 64, &a, &al, &how) == 1 && al == 19999);
    char why[64];
    CHECK(math_equiv("1", 1, a, al, NULL, why, sizeof why) == 0); /* over the input cap: bounded, unequal */
    free(deep);
}

static void test_reward(void) {
    Err err = {{0}};
    RewardSet rs;
    CHECK(rewardset_parse(&rs, "math", &err) == 0);
    json_t *rec = json_pack("{s:s}", "answer", "Natalia sold 48/2 = 24 clips in May.\n#### 72");
    const char *c = "She sold \\boxed{72} clips";
    RewardInput in = {rec, c, strlen(c)};
    RewardScore s[1];
    double total;
    CHECK(rewardset_score(&rs, &in, &total, s, &err) == 0);
    CHECKF(total == 1.0, "%s", s[0].reason);
    CHECKF(strstr(s[0].reason, "correct") != NULL, "%s", s[0].reason);
    c = "no digits here at all, so nothing can be extracted from this completion whatsoever, really";
    in.completion = c;
    in.completion_len = strlen(c);
    CHECK(rewardset_score(&rs, &in, &total, s, &err) == 0 && total == 0);
    CHECK_STREQ(s[0].reason, "no answer found");
    json_decref(rec);
    rec = json_pack("{s:i}", "answer", 72);
    in.record = rec;
    in.completion = "72";
    in.completion_len = 2;
    CHECK(rewardset_score(&rs, &in, &total, s, &err) == 0 && total == 1.0);
    CHECK(rewardset_option(&rs, "math.percent=bogus", &err) == -1);
    CHECK(rewardset_option(&rs, "math.extract=boxed+tag", &err) == 0);
    CHECK(rewardset_score(&rs, &in, &total, s, &err) == 0 && total == 0.0);
    json_decref(rec);
    rewardset_free(&rs);
}

/* MATH-500: every gold answer equals its own solution's last boxed answer
 * and differs from its neighbour's answer unless listed as a coincidence. */
static void test_math500(void) {
    const char *path = "../shared/data/math500/test.jsonl";
    char *buf;
    size_t len;
    Err err = {{0}};
    if (file_read_all(path, &buf, &len, 0, &err) < 0) {
        SKIP("MATH-500 check: %s not found (shared data absent)", path);
        return;
    }
    char *coinc = NULL;
    size_t clen = 0;
    if (file_read_all("tests/fixtures/rewards/math500_coincidences.txt", &coinc, &clen, 0, &err) < 0) {
        coinc = calloc(1, 1);
    }
    static char gold[600][512];
    int n = 0, self_ok = 0, cross_eq = 0, listed = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line && n < 600; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) continue;
        const char *ans = json_string_value(json_object_get(j, "answer"));
        const char *sol = json_string_value(json_object_get(j, "solution"));
        if (ans && sol) {
            snprintf(gold[n], sizeof gold[n], "%s", ans);
            const char *a, *how;
            size_t al;
            int got = math_extract(sol, strlen(sol), MATH_EXTRACT_BOXED, 0, &a, &al, &how);
            char why[128] = "no boxed";
            int e = got && math_equiv(ans, strlen(ans), a, al, NULL, why, sizeof why);
            self_ok += e;
            CHECKF(e, "MATH-500 #%d: gold '%s' vs solution boxed '%.*s': %s", n, ans, got ? (int)al : 0, got ? a : "", why);
            n++;
        }
        json_decref(j);
    }
    for (int i = 0; i < n; i++) {
        int k = (i + 1) % n;
        if (eq(gold[i], gold[k])) {
            cross_eq++;
            char key[32];
            snprintf(key, sizeof key, "\n%d %d ", i, k);
            int ok = strstr(coinc, key) != NULL;
            listed += ok;
            CHECKF(ok, "MATH-500 #%d '%s' equals #%d '%s' but is not listed in math500_coincidences.txt", i, gold[i], k,
                   gold[k]);
        }
    }
    printf("MATH-500: %d problems, %d self-equal, %d neighbour coincidences (%d listed)\n", n, self_ok, cross_eq, listed);
    CHECK(n == 500);
    free(coinc);
    free(buf);
}

/* GSM8K / AIME / AMC gold answers through the math reward: the gold's own
 * final number is judged correct, that number plus one wrong. */
static void test_benchmarks(void) {
    const char *files[] = {"../shared/data/gsm8k/test.jsonl", "../shared/data/aime24/test.jsonl",
                           "../shared/data/aime25/aime25.jsonl", "../shared/data/amc23/test.jsonl"};
    RewardSet rs;
    Err err = {{0}};
    CHECK(rewardset_parse(&rs, "math", &err) == 0);
    for (int f = 0; f < 4; f++) {
        char *buf;
        size_t len;
        if (file_read_all(files[f], &buf, &len, 0, &err) < 0) {
            SKIP("benchmark answers: %s not found (shared data absent)", files[f]);
            continue;
        }
        int n = 0, right = 0, wrong_rejected = 0;
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            json_t *j = json_loads(line, 0, NULL);
            if (!j) continue;
            char nb[64], comp[160];
            const char *g = reward_record_str(j, "answer", nb, sizeof nb);
            if (!g) { json_decref(j); continue; }
            const char *h = strstr(g, "####");
            const char *num = h ? h + 4 : g;
            while (*num == ' ') num++;
            char clean[64];
            size_t k = 0;
            for (const char *q = num; *q && *q != '\n' && k < sizeof clean - 1; q++)
                if (*q != ',') clean[k++] = *q;
            clean[k] = 0;
            long v = strtol(clean, NULL, 10);
            RewardInput in = {j, comp, 0};
            RewardScore sc[1];
            double total;
            snprintf(comp, sizeof comp, "<think>work</think> so the result is $\\boxed{%ld}$.", v);
            in.completion_len = strlen(comp);
            CHECK(rewardset_score(&rs, &in, &total, sc, &err) == 0);
            CHECKF(total == 1.0, "%s #%d: %s", files[f], n, sc[0].reason);
            right += total == 1.0;
            snprintf(comp, sizeof comp, "The answer is %ld", v + 1);
            in.completion_len = strlen(comp);
            CHECK(rewardset_score(&rs, &in, &total, sc, &err) == 0);
            CHECKF(total == 0.0, "%s #%d: %s", files[f], n, sc[0].reason);
            wrong_rejected += total == 0.0;
            n++;
            json_decref(j);
        }
        printf("%s: %d answers, %d judged right, %d off-by-one rejected\n", files[f], n, right, wrong_rejected);
        free(buf);
    }
    rewardset_free(&rs);
}

int main(void) {
    test_benchmarks();
    test_cases();
    test_options();
    test_extract();
    test_reward();
    test_math500();
    return check_summary("test_reward_math");
}
