/* The code-execution reward: the completion's last fenced code block runs
 * against the record's tests (HumanEval, MBPP, stdin/stdout) in the
 * sandbox; score 1 when every test passes (or the share passed, with
 * partial=1), and a reason naming the first failure. Batches run in
 * parallel through the sandbox pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "reward/code.h"

typedef struct Code {
    CodeOptions o;
    unsigned long long seed, calls;
} Code;

int code_options_default(CodeOptions *o, Err *err) {
    memset(o, 0, sizeof *o);
    o->lang = CODE_LANG_PYTHON;
    o->require_fence = 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o->workers = cpus > 0 ? (int)cpus : 1;
    sandbox_config_default(&o->sb);
    o->compile_lim = o->sb.lim;
    o->compile_lim.cpu_s = 20, o->compile_lim.wall_s = 30;
    o->compile_lim.mem_bytes = (size_t)2 << 30;
    o->compile_lim.fsize_bytes = (size_t)64 << 20;
    /* found now when present; an error at scoring time when not */
    Err ignore;
    if (sandbox_resolve("python3", o->python, sizeof o->python, &ignore) < 0) o->python[0] = 0;
    (void)err;
    return 0;
}

static void *code_create(Err *err) {
    Code *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(err, "out of memory");
        return NULL;
    }
    if (code_options_default(&c->o, err) < 0) {
        free(c);
        return NULL;
    }
    if (getrandom(&c->seed, sizeof c->seed, 0) != (ssize_t)sizeof c->seed) c->seed = (unsigned long long)time(NULL) ^ (unsigned long long)getpid() << 32;
    return c;
}

static int set_limit_value(const char *key, const char *value, double lo, double hi, double *out, Err *err) {
    if (reward_parse_double(key, value, out, err) < 0) return -1;
    if (*out < lo || *out > hi) return err_set(err, "option %s: want %g..%g", key, lo, hi);
    return 0;
}

static int code_set_option(void *self, const char *key, const char *value, Err *err) {
    Code *c = self;
    CodeOptions *o = &c->o;
    SandboxLimits *l = &o->sb.lim;
    double d;
    if (!strcmp(key, "lang")) {
        if (!strcmp(value, "python")) o->lang = CODE_LANG_PYTHON;
        else if (!strcmp(value, "c")) o->lang = CODE_LANG_C;
        else if (!strcmp(value, "cpp")) o->lang = CODE_LANG_CPP;
        else return err_set(err, "option lang: '%s' (expected python, c or cpp)", value);
        return 0;
    }
    if (!strcmp(key, "partial")) return reward_parse_bool(key, value, &o->partial, err) < 0 ? -1 : 0;
    if (!strcmp(key, "require_fence")) return reward_parse_bool(key, value, &o->require_fence, err) < 0 ? -1 : 0;
    if (!strcmp(key, "compare")) {
        if (!strcmp(value, "exact")) o->exact = 1;
        else if (!strcmp(value, "whitespace")) o->exact = 0;
        else return err_set(err, "option compare: '%s' (expected exact or whitespace)", value);
        return 0;
    }
    if (!strcmp(key, "mode")) {
        if (!strcmp(value, "auto")) o->sb.mode = SANDBOX_MODE_AUTO;
        else if (!strcmp(value, "namespaces")) o->sb.mode = SANDBOX_MODE_NAMESPACES;
        else if (!strcmp(value, "basic")) o->sb.mode = SANDBOX_MODE_BASIC;
        else return err_set(err, "option mode: '%s' (expected auto, namespaces or basic)", value);
        return 0;
    }
    if (!strcmp(key, "python") || !strcmp(key, "cc") || !strcmp(key, "cxx")) {
        char *dst = key[0] == 'p' ? o->python : key[1] == 'c' ? o->cc : o->cxx;
        return sandbox_resolve(value, dst, sizeof o->python, err) < 0 ? -1 : 0;
    }
    struct {
        const char *name;
        double lo, hi;
    } nums[] = {{"timeout", 0.01, 3600}, {"cpu", 0.01, 3600},   {"memory_mb", 16, 1 << 20}, {"disk_mb", 1, 1 << 20},
                {"fsize_mb", 0.001, 1 << 20}, {"nproc", 1, 4096}, {"nofile", 8, 65536},     {"output_kb", 1, 1 << 20},
                {"workers", 1, 256}, {"max_tests", 0, 1 << 20}, {"compile_timeout", 0.1, 3600}};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        if (strcmp(key, nums[i].name)) continue;
        if (set_limit_value(key, value, nums[i].lo, nums[i].hi, &d, err) < 0) return -1;
        switch (i) {
        case 0: l->wall_s = d; break;
        case 1: l->cpu_s = d; break;
        case 2: l->mem_bytes = (size_t)(d * 1048576); break;
        case 3: l->disk_bytes = (size_t)(d * 1048576); break;
        case 4: l->fsize_bytes = (size_t)(d * 1048576); break;
        case 5: l->nproc = (int)d; break;
        case 6: l->nofile = (int)d; break;
        case 7: l->out_bytes = (size_t)(d * 1024); break;
        case 8: o->workers = (int)d; break;
        case 9: o->max_tests = (int)d; break;
        case 10: o->compile_lim.wall_s = d, o->compile_lim.cpu_s = d; break;
        }
        /* the compiler gets the task's limits, but never less than its defaults */
        if (i == 3 || i == 5 || i == 6) o->compile_lim.disk_bytes = l->disk_bytes, o->compile_lim.nproc = l->nproc > 16 ? l->nproc : 16,
                                        o->compile_lim.nofile = l->nofile > 64 ? l->nofile : 64;
        return 0;
    }
    return 1;
}

static int ensure_tools(CodeOptions *o, Err *err) {
    if (o->lang == CODE_LANG_PYTHON && !o->python[0] && sandbox_resolve("python3", o->python, sizeof o->python, err) < 0) return -1;
    if (o->lang == CODE_LANG_C && !o->cc[0] && sandbox_resolve("gcc", o->cc, sizeof o->cc, err) < 0) return -1;
    if (o->lang == CODE_LANG_CPP && !o->cxx[0] && sandbox_resolve("g++", o->cxx, sizeof o->cxx, err) < 0) return -1;
    return 0;
}

static int code_score_batch(void *self, const RewardInput *in, int n, RewardScore *out, Err *err) {
    Code *c = self;
    if (ensure_tools(&c->o, err) < 0) return -1;
    CodeSpec *spec = calloc((size_t)n, sizeof *spec);
    CodeJob *job = calloc((size_t)n, sizeof *job);
    SandboxTask *tasks = calloc((size_t)n, sizeof *tasks);
    SandboxResult *res = calloc((size_t)n, sizeof *res);
    int *which = calloc((size_t)n, sizeof *which);
    int rc = 0, nt = 0;
    if (!spec || !job || !tasks || !res || !which) rc = err_set(err, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        char why[160];
        const char *code = NULL;
        size_t len = 0;
        if (code_spec_parse(in[i].record, &spec[i], why, sizeof why) < 0) {
            reward_reason(&out[i], 0, "record: %s", why);
            continue;
        }
        if (!code_extract(in[i].completion, in[i].completion_len, c->o.lang, &code, &len)) {
            if (c->o.require_fence) {
                static const char *const names[] = {"python", "c", "cpp"};
                reward_reason(&out[i], 0, "no ```%s code block", names[c->o.lang]);
                continue;
            }
            code = in[i].completion, len = in[i].completion_len;
            const char *t = NULL;
            for (const char *p = code; (p = memmem(p, (size_t)(code + len - p), "</think>", 8)); p += 8) t = p + 8;
            if (t) len -= (size_t)(t - code), code = t;
        }
        if ((rc = code_job_build(&job[i], &c->o, &spec[i], code, len, c->seed + c->calls++, err))) break;
        if (!job[i].ready) {
            out[i] = job[i].early;
            continue;
        }
        which[nt] = i;
        tasks[nt++] = job[i].task;
    }
    if (!rc && nt > 0) {
        rc = sandbox_run_many(&c->o.sb, tasks, nt, res, c->o.workers, err);
        for (int k = 0; k < nt && !rc; k++) code_judge(&job[which[k]], &spec[which[k]], &c->o, &res[k], &out[which[k]]);
        for (int k = 0; k < nt; k++) sandbox_result_free(&res[k]);
    }
    for (int i = 0; spec && job && i < n; i++) {
        code_job_free(&job[i]);
        code_spec_free(&spec[i]);
    }
    free(spec), free(job), free(tasks), free(res), free(which);
    return rc;
}

static int code_score(void *self, const RewardInput *in, RewardScore *out, Err *err) {
    return code_score_batch(self, in, 1, out, err);
}

static void code_destroy(void *self) { free(self); }

const char *code_reward_protections(const void *self) { return sandbox_protections(&((const Code *)self)->o.sb); }

const RewardKind reward_code_kind = {
    .name = "code",
    .summary = "runs the last fenced code block against the record's tests in a sandbox (HumanEval, MBPP, stdin/stdout)",
    .create = code_create,
    .set_option = code_set_option,
    .score = code_score,
    .destroy = code_destroy,
    .score_batch = code_score_batch,
};
