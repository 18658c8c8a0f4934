/* Code-execution reward: fenced-code extraction, test specs, output
 * comparison, scores and reasons on hand-written problems (Python, and C
 * when gcc is there), then every HumanEval and MBPP canonical solution
 * from ../shared/data (they must pass) and systematically broken ones
 * (they must fail). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "eval/evaluate.h"
#include "io/dataset.h"
#include "reward/code.h"
#include "reward/reward.h"

static void test_extract(void) {
    const char *code;
    size_t n;
    const char *t1 = "Here:\n```python\nprint(1)\n```\nand better:\n```py\nprint(2)\n```\ndone";
    CHECK(code_extract(t1, strlen(t1), CODE_LANG_PYTHON, &code, &n) == 1);
    CHECKF(n == 9 && !memcmp(code, "print(2)\n", 9), "'%.*s'", (int)n, code);
    /* a tagged block of another language loses to an untagged one, the tagged one of ours wins */
    const char *t2 = "```python\na=1\n```\n```\nb=2\n```\n```bash\nls\n```\n";
    CHECK(code_extract(t2, strlen(t2), CODE_LANG_PYTHON, &code, &n) == 1 && n == 4 && !memcmp(code, "a=1\n", 4));
    CHECK(code_extract(t2, strlen(t2), CODE_LANG_C, &code, &n) == 1 && n == 4 && !memcmp(code, "b=2\n", 4));
    /* drafts inside the reasoning do not count */
    const char *t3 = "<think>```python\nwrong()\n```</think>\nFinal:\n```python\nright()\n```";
    CHECK(code_extract(t3, strlen(t3), CODE_LANG_PYTHON, &code, &n) == 1 && n == 8 && !memcmp(code, "right()\n", 8));
    const char *t4 = "<think>```python\nwrong()\n```</think> no code";
    CHECK(code_extract(t4, strlen(t4), CODE_LANG_PYTHON, &code, &n) == 0);
    /* longer fences hold shorter ones; tildes; indentation up to 3; case-insensitive tags */
    const char *t5 = "````Python\ns = '''\n```\n'''\n````\n";
    CHECK(code_extract(t5, strlen(t5), CODE_LANG_PYTHON, &code, &n) == 1 && n == 16 && !memcmp(code, "s = '''\n```\n'''\n", 16));
    const char *t6 = "   ~~~cpp\nint main(){}\n   ~~~";
    CHECK(code_extract(t6, strlen(t6), CODE_LANG_CPP, &code, &n) == 1 && n == 13 && !memcmp(code, "int main(){}\n", 13));
    const char *t7 = "    ```python\nindented 4: not a fence\n    ```";
    CHECK(code_extract(t7, strlen(t7), CODE_LANG_PYTHON, &code, &n) == 0);
    /* an unclosed last fence (cut-off completion) runs to the end */
    const char *t8 = "```python\nx = 1\ny =";
    CHECK(code_extract(t8, strlen(t8), CODE_LANG_PYTHON, &code, &n) == 1 && n == 9);
    CHECK(code_extract("", 0, CODE_LANG_PYTHON, &code, &n) == 0);
    const char *t10 = "<answer>\n```python\nf()\n```</answer>";
    CHECK(code_extract(t10, strlen(t10), CODE_LANG_PYTHON, &code, &n) == 1 && n == 4 && !memcmp(code, "f()\n", 4));
    const char *t9 = "inline ```python x``` only";
    CHECK(code_extract(t9, strlen(t9), CODE_LANG_PYTHON, &code, &n) == 0);
}

static void test_helpers(void) {
    char *lit = code_py_literal("a\"b\\c\nd\x01\xc3\xa9", 10);
    CHECK_STREQ(lit, "\"a\\\"b\\\\c\\nd\\x01\xc3\xa9\"");
    free(lit);
    CHECK(code_output_equal("1 2\n3\n", 6, "1 2\n3", 5, 0));
    CHECK(code_output_equal("  1\t2  \r\n3\n\n", 12, "1 2\n3", 5, 0));
    CHECK(!code_output_equal("1 2\n3\n", 6, "1 2\n3", 5, 1));
    CHECK(!code_output_equal("12", 2, "1 2", 3, 0));
    CHECK(!code_output_equal("1 2 3", 5, "1 2", 3, 0));
    CHECK(code_output_equal("", 0, "\n", 1, 0));
    CodeSpec s;
    char why[160];
    json_t *r = json_loads("{\"test_list\": [\"assert f(1) == 2\"], \"test_setup_code\": \"\"}", 0, NULL);
    CHECK(code_spec_parse(r, &s, why, sizeof why) == 0 && s.kind == CODE_TESTS_MBPP && s.n_asserts == 1);
    code_spec_free(&s);
    json_decref(r);
    r = json_loads("{\"input_output\": \"{\\\"inputs\\\": [\\\"1\\\\n\\\"], \\\"outputs\\\": [\\\"2\\\\n\\\"]}\"}", 0, NULL);
    CHECK(code_spec_parse(r, &s, why, sizeof why) == 0 && s.kind == CODE_TESTS_STDIO && s.n_cases == 1 &&
          !strcmp(s.cases[0].input, "1\n"));
    code_spec_free(&s);
    json_decref(r);
    r = json_loads("{\"inputs\": [\"1\"], \"outputs\": [\"1\", \"2\"]}", 0, NULL);
    CHECK(code_spec_parse(r, &s, why, sizeof why) == -1 && strstr(why, "1 test inputs but 2 outputs"));
    json_decref(r);
    r = json_loads("{\"test\": \"x\", \"entry_point\": \"f(); import os\"}", 0, NULL);
    CHECK(code_spec_parse(r, &s, why, sizeof why) == -1 && strstr(why, "identifier"));
    json_decref(r);
    r = json_loads("{\"answer\": \"4\"}", 0, NULL);
    CHECK(code_spec_parse(r, &s, why, sizeof why) == -1 && strstr(why, "no tests"));
    json_decref(r);
}

/* Scores completion against the record (JSON) with the options; returns the score. */
static double score(const char *opts, const char *record, const char *completion, char *reason) {
    RewardSet rs;
    Err err = {{0}};
    double total = -1;
    if (rewardset_parse(&rs, "code", &err) < 0) {
        snprintf(reason, REWARD_REASON_MAX, "parse: %s", err.msg);
        return -1;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", opts ? opts : "");
    char *save = NULL;
    for (char *o = strtok_r(buf, " ", &save); o; o = strtok_r(NULL, " ", &save))
        if (rewardset_option(&rs, o, &err) < 0) {
            snprintf(reason, REWARD_REASON_MAX, "option: %s", err.msg);
            rewardset_free(&rs);
            return -1;
        }
    json_t *rec = json_loads(record, 0, NULL);
    RewardInput in = {rec, completion, strlen(completion)};
    RewardScore s[1];
    if (rewardset_score(&rs, &in, &total, s, &err) < 0) snprintf(reason, REWARD_REASON_MAX, "error: %s", err.msg);
    else snprintf(reason, REWARD_REASON_MAX, "%s", s[0].reason);
    json_decref(rec);
    rewardset_free(&rs);
    return total;
}

#define EXPECT(opts, rec, comp, want_score, want_reason)                                                         \
    do {                                                                                                         \
        char why_[REWARD_REASON_MAX];                                                                            \
        double s_ = score(opts, rec, comp, why_);                                                                \
        CHECKF(s_ == (want_score) && strstr(why_, want_reason), "score %g reason '%s' (want %g, '%s')", s_, why_, \
               (double)(want_score), want_reason);                                                               \
    } while (0)

static const char *HE = "{\"prompt\": \"from typing import List\\n\\ndef add(a: int, b: int) -> int:\\n    \\\"\\\"\\\"Sum.\\\"\\\"\\\"\\n\","
                        "\"test\": \"def check(candidate):\\n    assert candidate(1, 2) == 3\\n    assert candidate(-1, 1) == 0\\n\","
                        "\"entry_point\": \"add\"}";
static const char *MB = "{\"test_list\": [\"assert sq(2) == 4\", \"assert sq(3) == 9\", \"assert sq(-1) == 1\"],"
                        "\"test_setup_code\": \"import math\"}";
static const char *IO = "{\"inputs\": [\"1 2\\n\", \"5 7\\n\", \"10 -3\\n\"], \"outputs\": [\"3\\n\", \"12\\n\", \"7\\n\"]}";

static void test_python(void) {
    /* HumanEval: a body continuing the prompt, a restated function, wrong, crashing, early exit */
    EXPECT(NULL, HE, "```python\n    return a + b\n```", 1, "passed 1/1");
    EXPECT(NULL, HE, "Sure:\n```python\ndef add(a, b):\n    return sum([a, b])\n```\n", 1, "passed 1/1");
    EXPECT(NULL, HE, "```python\ndef add(a, b):\n    return a - b\n```", 0, "wrong answer: AssertionError");
    EXPECT(NULL, HE, "```python\ndef add(a, b):\n    return a + c\n```", 0, "runtime error: NameError: name 'c' is not defined");
    EXPECT(NULL, HE, "```python\ndef add(a, b)\n    return a + b\n```", 0, "compile error: SyntaxError");
    EXPECT(NULL, HE, "```python\nimport os\nos._exit(0)\n```", 0, "exited before the tests finished");
    EXPECT(NULL, HE, "```python\nimport sys\nsys.exit(0)\n```", 0, "exited before the tests finished");
    EXPECT(NULL, HE, "no code at all", 0, "no ```python code block");
    EXPECT("require_fence=0", HE, "<think>hmm</think>    return a + b\n", 1, "passed 1/1");
    /* MBPP: all, some (partial credit), none; setup code is visible */
    EXPECT(NULL, MB, "```python\ndef sq(x):\n    return int(math.pow(x, 2))\n```", 1, "passed 3/3");
    EXPECT(NULL, MB, "```python\ndef sq(x):\n    return x * x if x > 0 else 0\n```", 0, "wrong answer on test 3 (passed 2/3)");
    EXPECT("partial=1", MB, "```python\ndef sq(x):\n    return x * x if x != 3 else 0\n```", 2.0 / 3, "wrong answer on test 2 (passed 2/3)");
    EXPECT("partial=1", MB, "```python\ndef sq(x):\n    return {2: 4}[x]\n```", 1.0 / 3, "runtime error on test 2: KeyError: 3");
    EXPECT("partial=1 timeout=1", MB, "```python\ndef sq(x):\n    while x == 3: pass\n    return x * x\n```\n", 1.0 / 3, "timeout (1 s wall) on test 2 (passed 1/3)");
    EXPECT("partial=1 timeout=3 cpu=1", MB, "```python\ndef sq(x):\n    while x == 3: pass\n    return x * x\n```\n", 1.0 / 3, "timeout (1 s cpu) on test 2");
    EXPECT(NULL, MB, "```python\nraise ValueError('at import')\n```", 0, "runtime error on test 1");
    /* a program that forges the pass report without the nonce gets nothing */
    EXPECT(NULL, MB, "```python\nimport os\nfor i in range(3): os.write(3, b'P 0000 %d\\n' % i)\nos.write(3, b'D\\n')\nos._exit(0)\n```", 0, "exited before test 1");
    /* stdin/stdout */
    EXPECT(NULL, IO, "```python\na, b = map(int, input().split())\nprint(a + b)\n```", 1, "passed 3/3");
    EXPECT(NULL, IO, "```python\na, b = map(int, input().split())\nprint(a + b, '')\n```", 1, "passed 3/3");
    EXPECT("compare=exact", IO, "```python\na, b = map(int, input().split())\nprint(a + b, '')\n```", 0, "wrong answer on test 1");
    EXPECT("partial=1", IO, "```python\na, b = map(int, input().split())\nprint(abs(a + b) if b > 0 else 0)\n```", 2.0 / 3, "wrong answer on test 3 (passed 2/3)");
    EXPECT(NULL, IO, "```python\nprint(1/0)\n```", 0, "runtime error on test 1: ZeroDivisionError: division by zero");
    /* the same program gets the same reward: no hash randomization */
    EXPECT(NULL, "{\"inputs\": [\"\"], \"outputs\": [\"0 5\"]}", "```python\nimport sys\nprint(sys.flags.hash_randomization, hash('r1c') % 7)\n```", 1, "passed 1/1");
    EXPECT("max_tests=1", IO, "```python\nprint(3)\n```", 1, "passed 1/1");
    EXPECT(NULL, "{\"answer\": 3}", "```python\nprint(3)\n```", 0, "record: record has no tests");
    EXPECT(NULL, HE, "```python\ndef add(a, b):\n    return a + b\n```", 1, "passed");
    EXPECT("lang=c", HE, "```c\nint main(){}\n```", 0, "HumanEval tests need lang=python");
}

/* All or nothing: once a case fails, the rest are not run; partial runs all. */
static void test_stop_early(void) {
    CodeOptions o;
    Err err = {{0}};
    code_options_default(&o, &err);
    json_t *rec = json_loads(IO, 0, NULL);
    CodeSpec sp;
    char why[160];
    CHECK(code_spec_parse(rec, &sp, why, sizeof why) == 0);
    const char *code = "a, b = map(int, input().split())\nprint(a * b)\n"; /* 1*2 = 2, not 3 */
    for (int partial = 0; partial < 2; partial++) {
        o.partial = partial;
        CodeJob j;
        SandboxResult r;
        CHECK(code_job_build(&j, &o, &sp, code, strlen(code), 7, &err) == 0 && j.ready);
        CHECKF(sandbox_run(&o.sb, &j.task, &r, &err) == 0, "%s", err.msg);
        CHECK(r.n_steps == 3 && r.step[0].status == SANDBOX_STATUS_EXITED && r.step[0].mismatch);
        for (int i = 1; i < 3; i++) CHECK(r.step[i].status == (partial ? SANDBOX_STATUS_EXITED : SANDBOX_STATUS_SKIPPED));
        RewardScore sc;
        code_judge(&j, &sp, &o, &r, &sc);
        CHECKF(!strcmp(sc.reason, "wrong answer on test 1 (passed 0/3)"), "%s", sc.reason);
        sandbox_result_free(&r);
        code_job_free(&j);
    }
    code_spec_free(&sp);
    json_decref(rec);
}

static void test_c(void) {
    if (access("/usr/bin/gcc", X_OK) != 0) {
        SKIP("C stdin/stdout tests: /usr/bin/gcc not installed");
        return;
    }
    EXPECT("lang=c", IO, "```c\n#include <stdio.h>\nint main(void){long a,b; scanf(\"%ld %ld\",&a,&b); printf(\"%ld\\n\",a+b); return 0;}\n```", 1, "passed 3/3");
    EXPECT("lang=c", IO, "```c\nint main(void){ return oops; }\n```", 0, "compile error:");
    EXPECT("lang=c", IO, "```c\nint main(void){ int *p = 0; return *p; }\n```", 0, "runtime error on test 1: killed by signal 11");
    EXPECT("lang=cpp", IO, "```cpp\n#include <iostream>\nint main(){long a,b; std::cin>>a>>b; std::cout<<a+b<<std::endl;}\n```", 1, "passed 3/3");
}

/* Every canonical solution of a benchmark file through one batch. */
typedef struct Bench {
    json_t **rec;
    char **comp;
    int n;
} Bench;

static int load(const char *path, Bench *b, int broken, int stride) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    memset(b, 0, sizeof *b);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        /* stride < 0: MBPP's test split (task_ids 11-510) whole, every -stride'th task of the rest */
        int id = ++lineno;
        if (stride > 0 ? (id - 1) % stride : !((id >= 11 && id <= 510) || id % -stride == 0)) continue;
        json_t *r = json_loads(line, 0, NULL);
        if (!r) continue;
        const char *code = json_string_value(json_object_get(r, "canonical_solution"));
        if (!code) code = json_string_value(json_object_get(r, "code"));
        if (!code) {
            json_decref(r);
            continue;
        }
        b->rec = realloc(b->rec, (size_t)(b->n + 1) * sizeof *b->rec);
        b->comp = realloc(b->comp, (size_t)(b->n + 1) * sizeof *b->comp);
        size_t l = strlen(code) + 64;
        b->comp[b->n] = malloc(l);
        int he = json_object_get(r, "entry_point") != NULL;
        if (!broken) snprintf(b->comp[b->n], l, "```python\n%s\n```", code);
        else if (he) snprintf(b->comp[b->n], l, "```python\n    return None\n```"); /* a body that does nothing */
        else {
            /* MBPP: the right code, then every top-level function redefined to return None */
            size_t cap2 = strlen(code) * 2 + 64, k = 0;
            char *c = malloc(cap2);
            k += (size_t)snprintf(c, cap2, "%s\n", code);
            for (const char *p = code; (p = strstr(p, "def ")); p += 4) {
                if (p != code && p[-1] != '\n') continue;
                const char *e = strchr(p + 4, '(');
                if (!e || e - p > 64) continue;
                k += (size_t)snprintf(c + k, cap2 - k, "\n%.*s(*a, **k):\n    return None\n", (int)(e - p), p);
            }
            free(b->comp[b->n]);
            l = k + 32;
            b->comp[b->n] = malloc(l);
            snprintf(b->comp[b->n], l, "```python\n%s\n```", c);
            free(c);
        }
        b->rec[b->n++] = r;
    }
    free(line);
    fclose(f);
    return 0;
}

static void bench_free(Bench *b) {
    for (int i = 0; i < b->n; i++) json_decref(b->rec[i]), free(b->comp[i]);
    free(b->rec), free(b->comp);
}

static void run_bench(const char *name, const char *path, int broken, int stride, const char *const *known_fail, int n_known) {
    Bench b;
    if (load(path, &b, broken, stride) < 0) {
        SKIP("%s: %s not found (../shared/data absent)", name, path);
        return;
    }
    RewardSet rs;
    Err err = {{0}};
    CHECK(rewardset_parse(&rs, "code", &err) == 0);
    /* generous limits: correctness is under test here, not speed (MBPP 123
     * needs 2-5 s of CPU, more wall time on a loaded machine) */
    CHECK(rewardset_option(&rs, "code.timeout=120", &err) == 0 && rewardset_option(&rs, "code.cpu=60", &err) == 0);
    RewardInput *in = calloc((size_t)b.n, sizeof *in);
    double *tot = calloc((size_t)b.n, sizeof *tot);
    RewardScore *each = calloc((size_t)b.n, sizeof *each);
    for (int i = 0; i < b.n; i++) in[i] = (RewardInput){b.rec[i], b.comp[i], strlen(b.comp[i])};
    int rc = rewardset_score_batch(&rs, in, b.n, tot, each, &err);
    CHECKF(rc == 0, "%s: %s", name, err.msg);
    int pass = 0, unexpected = 0;
    for (int i = 0; i < b.n && rc == 0; i++) {
        char id[64];
        json_t *t = json_object_get(b.rec[i], "task_id");
        if (json_is_string(t)) snprintf(id, sizeof id, "%s", json_string_value(t));
        else snprintf(id, sizeof id, "%lld", (long long)json_integer_value(t));
        int known = 0;
        for (int k = 0; k < n_known; k++) known |= !strcmp(known_fail[k], id);
        int ok = tot[i] == 1.0;
        pass += ok;
        if (ok == broken || (known && !broken)) {
            if (!(known && !ok)) {
                unexpected++;
                fprintf(stderr, "%s %s: %s (%s)\n", name, id, ok ? "passes" : "fails", each[i].reason);
            }
        }
    }
    printf("%s: %d/%d pass\n", name, pass, b.n);
    CHECKF(unexpected == 0, "%s: %d unexpected results", name, unexpected);
    free(in), free(tot), free(each);
    rewardset_free(&rs);
    bench_free(&b);
}

/* The dataset loader reads both benchmark files, recognising their shape. */
static void test_datasets(void) {
    const char *paths[2] = {"../shared/data/humaneval/HumanEval.jsonl", "../shared/data/mbpp/mbpp.jsonl"};
    const int want[2] = {164, 974};
    for (int k = 0; k < 2; k++) {
        if (access(paths[k], R_OK) != 0) {
            SKIP("dataset %s not found (../shared/data absent)", paths[k]);
            continue;
        }
        Dataset d;
        DatasetOptions o = {.format = DATASET_FORMAT_AUTO};
        Err err = {{0}};
        CHECKF(dataset_load(&d, paths[k], &o, &err) == 0, "%s", err.msg);
        CHECKF(d.n == want[k], "%s: %d examples", paths[k], d.n);
        if (d.n == 0) continue;
        CHECK(strstr(d.ex[0].prompt, "```python") != NULL);
        if (k == 0) CHECK(strstr(d.ex[0].prompt, "def has_close_elements(numbers: List[float], threshold: float) -> bool:") != NULL);
        else CHECK(strstr(d.ex[0].prompt, "Your code should pass these tests:\n\nassert min_cost(") != NULL);
        CodeSpec sp;
        char why[160];
        CHECK(code_spec_parse(d.ex[0].record, &sp, why, sizeof why) == 0 && (int)sp.kind == (k ? CODE_TESTS_MBPP : CODE_TESTS_HUMANEVAL));
        code_spec_free(&sp);
        dataset_free(&d);
        DatasetFormat f;
        CHECK(dataset_format_parse(k ? "mbpp" : "humaneval", &f) == 0 && f == (k ? DATASET_FORMAT_MBPP : DATASET_FORMAT_HUMANEVAL));
    }
}

/* r1c reward --reward code: batches, order kept, the sandbox named on stderr. */
static void test_cli(void) {
    const char *bin = getenv("R1C_BIN") ? getenv("R1C_BIN") : "build/r1c";
    if (access(bin, X_OK) != 0) {
        SKIP("CLI: %s not built", bin);
        return;
    }
    char dir[] = "/tmp/r1c-code-cli-XXXXXX";
    if (!mkdtemp(dir)) return;
    char in[256], out[256], errp[256], cmd[1024];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(errp, sizeof errp, "%s/err.txt", dir);
    FILE *f = fopen(in, "w");
    for (int i = 0; i < 70; i++) /* more than one batch of 64 */
        fprintf(f, "{\"inputs\": [\"%d\\n\"], \"outputs\": [\"%d\\n\"], \"completion\": \"```python\\nprint(int(input()) * %d)\\n```\"}\n",
                i, 2 * i, i % 3 ? 2 : 3);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s reward --reward code --data %s --out %s 2> %s", bin, in, out, errp);
    CHECK(system(cmd) == 0);
    f = fopen(out, "r");
    char line[512];
    int n = 0, good = 1;
    while (f && fgets(line, sizeof line, f)) {
        /* i * 3 == 2 * i only for i = 0 */
        int want = n % 3 ? 1 : n == 0;
        if (want != (strstr(line, "\"score\":1") != NULL)) good = 0, fprintf(stderr, "line %d: %s", n, line);
        n++;
    }
    if (f) fclose(f);
    CHECK(n == 70 && good);
    f = fopen(errp, "r");
    int named = 0;
    while (f && fgets(line, sizeof line, f)) named |= strstr(line, "code sandbox: rlimits") != NULL;
    if (f) fclose(f);
    CHECK(named);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* r1c eval --rescore --reward code: pass@1 and pass@k from saved samples. */
static void test_eval_rescore(void) {
    char path[] = "/tmp/r1c-code-eval-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    /* problem 1: 1 of 2 right; problem 2: 2 of 2 right */
    fprintf(f, "{\"record\": %s, \"samples\": [{\"text\": \"```python\\n    return a + b\\n```\", \"tokens\": 9},"
               "{\"text\": \"```python\\n    return a * b\\n```\", \"tokens\": 9}]}\n", HE);
    fprintf(f, "{\"record\": %s, \"samples\": [{\"text\": \"```python\\nprint(sum(map(int, input().split())))\\n```\"},"
               "{\"text\": \"```python\\na, b = input().split()\\nprint(int(a) + int(b))\\n```\"}]}\n", IO);
    fclose(f);
    EvalConfig c = {.reward = "code"};
    EvalResult r;
    Err err = {{0}};
    CHECKF(eval_rescore(path, &c, &r, &err) == 0, "%s", err.msg);
    CHECK_NEAR(r.pass1, 0.75, 1e-12);
    CHECK(r.n_passk == 2 && r.passk_k[1] == 2);
    CHECK_NEAR(r.passk[1], 1.0, 1e-12);
    unlink(path);
}

int main(void) {
    test_extract();
    test_eval_rescore();
    test_datasets();
    test_cli();
    test_helpers();
    test_python();
    test_stop_early();
    test_c();
    /* HumanEval whole; MBPP: the test split whole and every 4th other task
     * (all 974 with R1C_TEST_FULL=1: they pass too), broken ones on every 4th */
    int full = getenv("R1C_TEST_FULL") && !strcmp(getenv("R1C_TEST_FULL"), "1");
    run_bench("humaneval canonical", "../shared/data/humaneval/HumanEval.jsonl", 0, 1, NULL, 0);
    run_bench("humaneval broken", "../shared/data/humaneval/HumanEval.jsonl", 1, 1, NULL, 0);
    run_bench("mbpp canonical", "../shared/data/mbpp/mbpp.jsonl", 0, full ? 1 : -4, NULL, 0);
    run_bench("mbpp broken", "../shared/data/mbpp/mbpp.jsonl", 1, 4, NULL, 0);
    return check_summary("test_reward_code");
}
