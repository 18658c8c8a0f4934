/* One completion's program and sandbox steps, and the judgement of what
 * came back. Python tests report through fd 3 with a per-run nonce, so a
 * program that exits early (sys.exit(0), os._exit(0)) does not pass and
 * the report cannot be confused with the program's own output. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/code.h"

typedef struct Buf {
    char *p;
    size_t n, cap;
    int oom;
} Buf;

static void put(Buf *b, const char *s, size_t n) {
    if (b->oom || n > ((size_t)1 << 40)) {
        b->oom = 1;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }
static void putf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(Buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *tmp = k >= 0 ? malloc((size_t)k + 1) : NULL;
    if (!tmp) b->oom = 1;
    else {
        vsnprintf(tmp, (size_t)k + 1, fmt, ap2);
        put(b, tmp, (size_t)k);
        free(tmp);
    }
    va_end(ap2);
}

/* Whether the code defines `def NAME(` at the start of a line. */
static int defines(const char *code, size_t len, const char *name) {
    char pat[160];
    snprintf(pat, sizeof pat, "def %s(", name);
    size_t pl = strlen(pat);
    for (size_t i = 0; i + pl <= len; i++)
        if ((i == 0 || code[i - 1] == '\n') && !memcmp(code + i, pat, pl)) return 1;
    return 0;
}

static int build_python(CodeJob *j, const CodeSpec *s, const char *code, size_t len, Buf *b) {
    switch (s->kind) {
    case CODE_TESTS_HUMANEVAL:
        /* the prompt carries the imports and helpers; a block that re-states
         * the function replaces its docstring-only body, a bare body continues it */
        puts_(b, s->prompt);
        if (defines(code, len, s->entry_point)) puts_(b, "\n");
        put(b, code, len);
        puts_(b, "\n\n");
        puts_(b, s->test);
        putf(b, "\n\ncheck(%s)\n", s->entry_point);
        putf(b, "import os as _r1c_os\n_r1c_os.write(3, b\"D %s\\n\")\n", j->nonce);
        j->n_tests = 1;
        return 0;
    case CODE_TESTS_MBPP:
        /* MBPP's setup code runs after the solution: it may build its objects */
        put(b, code, len);
        puts_(b, "\n\n");
        puts_(b, s->setup);
        puts_(b, "\n\n\ndef _r1c_run_tests():\n    import os as _o\n    _tests = [\n");
        for (int i = 0; i < s->n_asserts; i++) {
            char *lit = code_py_literal(s->asserts[i], strlen(s->asserts[i]));
            if (!lit) return -1;
            putf(b, "        ");
            puts_(b, lit);
            puts_(b, ",\n");
            free(lit);
        }
        putf(b,
             "    ]\n"
             "    for _i, _t in enumerate(_tests):\n"
             "        try:\n"
             "            exec(_t, globals())\n"
             "        except AssertionError:\n"
             "            _o.write(3, (\"F %s %%d AssertionError\\n\" %% _i).encode())\n"
             "        except BaseException as _e:\n"
             "            _m = (type(_e).__name__ + \": \" + str(_e))[:120].replace(\"\\n\", \" \")\n"
             "            _o.write(3, (\"E %s %%d %%s\\n\" %% (_i, _m)).encode(\"utf-8\", \"replace\"))\n"
             "        else:\n"
             "            _o.write(3, (\"P %s %%d\\n\" %% _i).encode())\n"
             "    _o.write(3, b\"D %s\\n\")\n"
             "_r1c_run_tests()\n",
             j->nonce, j->nonce, j->nonce, j->nonce);
        j->n_tests = s->n_asserts;
        return 0;
    case CODE_TESTS_STDIO:
        put(b, code, len);
        puts_(b, "\n");
        return 0;
    }
    return -1;
}

int code_job_build(CodeJob *j, const CodeOptions *o, const CodeSpec *s, const char *code, size_t len,
                   unsigned long long seed, Err *err) {
    memset(j, 0, sizeof *j);
    /* splitmix64: a nonce the program cannot predict from its own text */
    unsigned long long z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    snprintf(j->nonce, sizeof j->nonce, "%016llx", z ^ (z >> 31));
    if (s->kind != CODE_TESTS_STDIO && o->lang != CODE_LANG_PYTHON) {
        reward_reason(&j->early, 0, "%s tests need lang=python", s->kind == CODE_TESTS_HUMANEVAL ? "HumanEval" : "MBPP");
        return 0;
    }
    Buf b = {0};
    if (o->lang == CODE_LANG_PYTHON) {
        if (build_python(j, s, code, len, &b) < 0) b.oom = 1;
    } else put(&b, code, len), puts_(&b, "\n");
    if (b.oom) {
        free(b.p);
        return err_set(err, "out of memory building a program");
    }
    j->program = b.p;
    int n_cases = s->kind == CODE_TESTS_STDIO ? s->n_cases : 0;
    if (o->max_tests > 0 && n_cases > o->max_tests) n_cases = o->max_tests;
    int compile = o->lang != CODE_LANG_PYTHON;
    int n_steps = compile + (s->kind == CODE_TESTS_STDIO ? n_cases : 1);
    j->steps = calloc((size_t)n_steps, sizeof *j->steps);
    if (!j->steps) {
        code_job_free(j);
        return err_set(err, "out of memory");
    }
    j->file.name = o->lang == CODE_LANG_PYTHON ? "main.py" : o->lang == CODE_LANG_C ? "main.c" : "main.cpp";
    j->file.data = j->program;
    j->file.len = b.n;
    if (compile) {
        SandboxStep *c = &j->steps[0];
        int k = 0;
        c->argv[k++] = o->lang == CODE_LANG_C ? o->cc : o->cxx;
        c->argv[k++] = "-O2";
        c->argv[k++] = o->lang == CODE_LANG_C ? "-std=gnu17" : "-std=gnu++17";
        c->argv[k++] = "-o";
        c->argv[k++] = "main";
        c->argv[k++] = j->file.name;
        c->argv[k++] = "-lm";
        c->lim = &o->compile_lim;
        c->stop_on_fail = 1;
    }
    j->first_test = compile;
    for (int i = compile; i < n_steps; i++) {
        SandboxStep *st = &j->steps[i];
        if (o->lang == CODE_LANG_PYTHON) {
            /* not -I: it would ignore PYTHONHASHSEED=0, and set order must not
             * vary between runs of the same program (rewards are reproducible) */
            st->argv[0] = o->python, st->argv[1] = "-s", st->argv[2] = "-B", st->argv[3] = "main.py";
        } else st->argv[0] = "./main";
        if (s->kind == CODE_TESTS_STDIO) {
            const CodeCase *cs = &s->cases[i - compile];
            st->stdin_data = cs->input;
            st->stdin_len = cs->in_len;
            /* all or nothing: the first failed case settles the score, skip the rest */
            st->expect = cs->output, st->expect_len = cs->out_len, st->expect_exact = o->exact;
            st->stop_on_fail = !o->partial;
        }
    }
    if (s->kind == CODE_TESTS_STDIO) j->n_tests = n_cases;
    j->task = (SandboxTask){&j->file, 1, j->steps, n_steps};
    j->ready = 1;
    return 0;
}

void code_job_free(CodeJob *j) {
    free(j->program);
    free(j->steps);
    memset(j, 0, sizeof *j);
}

/* The last non-empty line of a text (a traceback's exception line), or
 * with want_error the first line mentioning "error" (a compiler's). */
static void pick_line(const char *t, size_t n, int want_error, char *out, size_t size) {
    const char *best = NULL, *best_end = NULL;
    for (const char *p = t; p < t + n;) {
        const char *e = memchr(p, '\n', (size_t)(t + n - p));
        if (!e) e = t + n;
        const char *q = p;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < e) {
            if (!want_error) best = q, best_end = e;
            else if (!best && memmem(q, (size_t)(e - q), "error", 5)) best = q, best_end = e;
        }
        p = e + 1;
    }
    size_t k = 0;
    for (const char *p = best; p && p < best_end && k + 1 < size && k < 100; p++)
        out[k++] = (*p >= 32 && *p < 127) ? *p : '?';
    while (k && (out[k - 1] == '\r' || out[k - 1] == ' ')) k--;
    out[k] = 0;
}

static int has(const char *t, size_t n, const char *pat) { return memmem(t, n, pat, strlen(pat)) != NULL; }

/* Why a step failed, from its status and stderr; "" when it exited 0. */
static void classify(const SandboxStepResult *r, const SandboxLimits *lim, char *why, size_t size) {
    char line[128];
    why[0] = 0;
    switch (r->status) {
    case SANDBOX_STATUS_TIMEOUT: snprintf(why, size, "timeout (%.3g s wall)", lim->wall_s); return;
    case SANDBOX_STATUS_OUTPUT_LIMIT: snprintf(why, size, "output limit (stdout over %zu bytes)", lim->out_bytes); return;
    case SANDBOX_STATUS_SKIPPED: snprintf(why, size, "not run"); return;
    case SANDBOX_STATUS_ERROR: snprintf(why, size, "sandbox error"); return;
    case SANDBOX_STATUS_SIGNALED:
        /* SIGXCPU comes only from RLIMIT_CPU's soft limit, SIGKILL from its hard one (or a kill) */
        if (r->sig == SIGXCPU || (r->sig == SIGKILL && r->cpu_s >= (double)(long)(lim->cpu_s + 0.999) - 0.1)) {
            snprintf(why, size, "timeout (%.0f s cpu)", (double)(long)(lim->cpu_s + 0.999));
            return;
        }
        if (r->sig == SIGXFSZ) snprintf(why, size, "file size limit (%zu bytes)", lim->fsize_bytes);
        else snprintf(why, size, "runtime error: killed by signal %d (%s)", r->sig, strsignal(r->sig));
        return;
    case SANDBOX_STATUS_EXITED:
        if (r->code == 0) return;
        pick_line(r->err, r->err_len, 0, line, sizeof line);
        if (has(r->err, r->err_len, "MemoryError") || has(r->err, r->err_len, "std::bad_alloc") ||
            has(r->err, r->err_len, "Cannot allocate memory"))
            snprintf(why, size, "memory limit (%zu MiB): %s", lim->mem_bytes >> 20, line);
        else if (has(r->err, r->err_len, "File too large")) snprintf(why, size, "file size limit (%zu bytes): %s", lim->fsize_bytes, line);
        else if (has(r->err, r->err_len, "No space left on device")) snprintf(why, size, "disk full: %s", line);
        else if (!strncmp(line, "SyntaxError", 11) || !strncmp(line, "IndentationError", 16) || !strncmp(line, "TabError", 8))
            snprintf(why, size, "compile error: %s", line);
        else if (!strncmp(line, "AssertionError", 14)) snprintf(why, size, "wrong answer: %s", line);
        else snprintf(why, size, "runtime error: %s", line[0] ? line : "non-zero exit");
        if (!line[0] && r->code != 0) snprintf(why + strlen(why), size - strlen(why), " (exit %d)", r->code);
        return;
    }
}

/* "kind: detail" -> "kind on test N: detail". */
static void at_test(char *dst, size_t size, const char *w, int test) {
    const char *colon = strstr(w, ": ");
    if (!colon) snprintf(dst, size, "%s on test %d", w, test);
    else snprintf(dst, size, "%.*s on test %d%s", (int)(colon - w), w, test, colon);
}

/* Parses the harness reports: marks[i] = 'P', 'F' or 'E' (with a message). */
static int read_reports(const CodeJob *j, const SandboxStepResult *r, char *marks, int n, char (*msg)[128]) {
    int done = 0;
    size_t nl = strlen(j->nonce);
    for (const char *p = r->report; p && p < r->report + r->report_len;) {
        const char *e = memchr(p, '\n', (size_t)(r->report + r->report_len - p));
        if (!e) break;
        if (e - p >= (long)(nl + 2) && p[1] == ' ' && !memcmp(p + 2, j->nonce, nl)) {
            if (p[0] == 'D') done = 1;
            else if (p[0] == 'P' || p[0] == 'F' || p[0] == 'E') {
                const char *q = p + 2 + nl;
                long i = 0;
                int digits = 0;
                if (q < e && *q == ' ') q++;
                while (q < e && *q >= '0' && *q <= '9' && i < 1000000) i = i * 10 + (*q++ - '0'), digits++;
                if (digits && i < n) {
                    marks[i] = p[0];
                    if (q < e && *q == ' ') q++;
                    size_t l = (size_t)(e - q) < 127 ? (size_t)(e - q) : 127;
                    memcpy(msg[i], q, l);
                    msg[i][l] = 0;
                }
            }
        }
        p = e + 1;
    }
    return done;
}

void code_judge(const CodeJob *j, const CodeSpec *s, const CodeOptions *o, const SandboxResult *r, RewardScore *out) {
    if (!j->ready) {
        *out = j->early;
        return;
    }
    if (r->error[0]) {
        reward_reason(out, 0, "%s", r->error);
        return;
    }
    int n = j->n_tests, passed = 0;
    char why[200] = "";
    if (j->first_test == 1) {
        const SandboxStepResult *c = &r->step[0];
        if (!(c->status == SANDBOX_STATUS_EXITED && c->code == 0)) {
            char line[128];
            pick_line(c->err, c->err_len, 1, line, sizeof line);
            if (c->status == SANDBOX_STATUS_EXITED) reward_reason(out, 0, "compile error: %s", line);
            else {
                classify(c, &o->compile_lim, why, sizeof why);
                reward_reason(out, 0, "compile error: %s", why);
            }
            return;
        }
    }
    if (s->kind == CODE_TESTS_STDIO) {
        for (int i = 0; i < n; i++) {
            const SandboxStepResult *t = &r->step[j->first_test + i];
            char w[200];
            if (t->status == SANDBOX_STATUS_SKIPPED) continue; /* after the first failure (partial=0) */
            classify(t, &o->sb.lim, w, sizeof w);
            if (!w[0] && !code_output_equal(t->out, t->out_len, s->cases[i].output, s->cases[i].out_len, o->exact))
                snprintf(w, sizeof w, "wrong answer");
            if (!w[0]) passed++;
            else if (!why[0]) at_test(why, sizeof why, w, i + 1);
        }
    } else {
        const SandboxStepResult *t = &r->step[j->first_test];
        char *marks = calloc((size_t)n, 1);
        char(*msg)[128] = calloc((size_t)n, sizeof *msg);
        if (!marks || !msg) {
            free(marks);
            free(msg);
            reward_reason(out, 0, "out of memory judging");
            return;
        }
        int done = read_reports(j, t, marks, n, msg);
        char w[200];
        classify(t, &o->sb.lim, w, sizeof w);
        if (s->kind == CODE_TESTS_HUMANEVAL) {
            if (!w[0] && done) passed = 1;
            else if (!w[0]) snprintf(why, sizeof why, "exited before the tests finished");
            else snprintf(why, sizeof why, "%s", w);
        } else {
            for (int i = 0; i < n; i++) {
                if (marks[i] == 'P') passed++;
                else if (why[0]) continue;
                else if (marks[i] == 'F') snprintf(why, sizeof why, "wrong answer on test %d", i + 1);
                else if (marks[i] == 'E')
                    /* a limit hit inside a test shows as its exception */
                    snprintf(why, sizeof why, "%s on test %d: %.120s",
                             strncmp(msg[i], "MemoryError", 11) ? "runtime error" : "memory limit", i + 1, msg[i]);
                else if (w[0]) at_test(why, sizeof why, w, i + 1);
                else snprintf(why, sizeof why, "exited before test %d", i + 1);
            }
            if (passed == n && !done) {
                /* every test reported, then the program cut the harness short */
                passed = n - 1;
                snprintf(why, sizeof why, "exited before the tests finished");
            }
        }
        free(marks);
        free(msg);
    }
    double score = passed == n ? 1.0 : o->partial && n > 0 ? (double)passed / n : 0.0;
    if (passed == n) reward_reason(out, score, "passed %d/%d", passed, n);
    else reward_reason(out, score, "%s (passed %d/%d)", why, passed, n);
}
