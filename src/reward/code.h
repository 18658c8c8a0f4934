/* The code-execution reward's parts, exposed for tests, evaluation,
 * benchmarks and fuzzing: fenced-code extraction, test specs read from a
 * record (HumanEval, MBPP, stdin/stdout cases), building the sandbox task
 * for one completion, and judging its result into a score and reason. */
#ifndef R1C_REWARD_CODE_H
#define R1C_REWARD_CODE_H

#include <jansson.h>
#include <stddef.h>

#include "reward/reward.h"
#include "reward/sandbox.h"

typedef enum CodeLang { CODE_LANG_PYTHON, CODE_LANG_C, CODE_LANG_CPP } CodeLang;

/* The code of a completion: the text after the last </think> (when there
 * is one), then the last fenced block (``` or ~~~) whose info string names
 * lang (python: python, py, python3, py3; c: c; cpp: cpp, c++, cc, cxx),
 * else the last untagged block. An unclosed last fence runs to the end.
 * Returns 1 and the span, or 0 when there is no block. */
int code_extract(const char *s, size_t n, CodeLang lang, const char **code, size_t *len);

typedef enum CodeTestKind { CODE_TESTS_HUMANEVAL, CODE_TESTS_MBPP, CODE_TESTS_STDIO } CodeTestKind;

typedef struct CodeCase {
    const char *input, *output;
    size_t in_len, out_len;
} CodeCase;

/* Borrowed from the record (and from `owned`, a parsed JSON-string field). */
typedef struct CodeSpec {
    CodeTestKind kind;
    const char *prompt, *test, *entry_point; /* HumanEval */
    const char *setup;                       /* MBPP test_setup_code (may be "") */
    const char **asserts;                    /* MBPP test_list */
    int n_asserts;
    CodeCase *cases;                         /* stdin/stdout */
    int n_cases;
    json_t *owned;
} CodeSpec;

/* Recognises, in order: HumanEval ("test" + "entry_point", "prompt"),
 * MBPP ("test_list", optional "test_setup_code"), stdin/stdout cases
 * ("inputs" + "outputs" arrays; "test_cases" [{input, output}]; APPS
 * "input_output" {"inputs", "outputs"}; LiveCodeBench "public_test_cases"
 * with testtype stdin), each also as a JSON string. 0 ok; -1 with why. */
int code_spec_parse(const json_t *record, CodeSpec *spec, char *why, size_t wsize);
void code_spec_free(CodeSpec *spec);

typedef struct CodeOptions {
    CodeLang lang;
    int partial;       /* score = share of tests passed (else all or nothing) */
    int exact;         /* stdout compared byte for byte (else as whitespace-separated tokens) */
    int require_fence; /* 0: without a fenced block the whole answer is the code */
    int max_tests;     /* stdin/stdout cases run per problem (0 = all) */
    int workers;       /* programs run at once */
    char python[256], cc[256], cxx[256]; /* absolute paths (sandbox_resolve) */
    SandboxConfig sb;
    SandboxLimits compile_lim;
} CodeOptions;

int code_options_default(CodeOptions *o, Err *err);
/* The protections the code reward's sandbox has on this machine (one line,
 * runs one probe the first time); self is the reward's state. */
const char *code_reward_protections(const void *self);

/* One completion's sandbox task. */
typedef struct CodeJob {
    SandboxTask task;
    SandboxFile file;
    SandboxStep *steps;
    char *program;
    int n_tests, first_test; /* tests and the index of the first test step */
    char nonce[20];          /* marks the harness's own reports on fd 3 */
    int ready;               /* 0: no task (reason already set) */
    RewardScore early;       /* the score when not ready */
} CodeJob;

/* Builds the task for code against spec; when it cannot run (unsupported
 * combination) job->ready is 0 and job->early says why. seed picks the nonce. */
int code_job_build(CodeJob *j, const CodeOptions *o, const CodeSpec *spec, const char *code, size_t len,
                   unsigned long long seed, Err *err);
void code_job_free(CodeJob *j);
/* Score and reason from the sandbox result. */
void code_judge(const CodeJob *j, const CodeSpec *spec, const CodeOptions *o, const SandboxResult *r, RewardScore *out);

/* Python string literal for s (quotes and escapes; bytes >= 0x80 kept). */
char *code_py_literal(const char *s, size_t n);
/* Program output equality: exact, or as whitespace-separated tokens. */
int code_output_equal(const char *got, size_t gl, const char *want, size_t wl, int exact);

#endif
