/* libFuzzer target for the code reward's parsers of outside bytes, without
 * running anything: fenced-code extraction from the completion, test-spec
 * parsing from the record, program building, and judging a sandbox result
 * whose stdout, stderr and fd-3 report (what an untrusted program writes)
 * come from the input. Input: flags byte, then completion, record JSON,
 * report and stderr separated by NUL bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reward/code.h"

static const char *next_part(const char **p, const char *end, size_t *len) {
    const char *s = *p;
    const char *nul = s < end ? memchr(s, 0, (size_t)(end - s)) : NULL;
    const char *e = nul ? nul : end;
    *len = (size_t)(e - s);
    *p = nul ? nul + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static CodeOptions o;
    static int ready;
    Err err;
    if (!ready) {
        code_options_default(&o, &err);
        strcpy(o.python, "/usr/bin/python3");
        strcpy(o.cc, "/usr/bin/gcc");
        strcpy(o.cxx, "/usr/bin/g++");
        ready = 1;
    }
    unsigned flags = data[0];
    o.lang = (CodeLang)(flags % 3);
    o.partial = (flags >> 2) & 1;
    o.exact = (flags >> 3) & 1;
    o.max_tests = (flags >> 4) & 3;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    size_t cl, rl, pl, el;
    const char *comp = next_part(&p, end, &cl);
    const char *rec_text = next_part(&p, end, &rl);
    const char *rep = next_part(&p, end, &pl);
    const char *errb = next_part(&p, end, &el);

    const char *code;
    size_t len;
    if (!code_extract(comp, cl, o.lang, &code, &len)) code = comp, len = cl;
    json_t *rec = json_loadb(rec_text, rl, 0, NULL);
    CodeSpec spec;
    char why[160];
    if (code_spec_parse(rec, &spec, why, sizeof why) == 0) {
        CodeJob job;
        if (code_job_build(&job, &o, &spec, code, len, 42, &err) == 0) {
            if (job.ready) {
                /* a made-up run: every step exited per the flags, with the fuzzed output */
                SandboxResult r;
                memset(&r, 0, sizeof r);
                r.n_steps = job.task.n_steps;
                r.step = calloc((size_t)r.n_steps, sizeof *r.step);
                for (int i = 0; i < r.n_steps; i++) {
                    SandboxStepResult *s = &r.step[i];
                    s->status = (SandboxStatus)((flags >> 6) + i) % 6;
                    s->code = (int)(flags & 3);
                    s->sig = (int)(flags & 31);
                    s->out = strndup(rep, pl), s->out_len = strlen(s->out);
                    s->report = strndup(rep, pl), s->report_len = strlen(s->report);
                    s->err = strndup(errb, el), s->err_len = strlen(s->err);
                }
                RewardScore out;
                code_judge(&job, &spec, &o, &r, &out);
                sandbox_result_free(&r);
            }
            code_job_free(&job);
        }
        code_spec_free(&spec);
    }
    json_decref(rec);
    return 0;
}
