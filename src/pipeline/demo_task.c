/* Demo task generation (see demo_task.h). */
#include "pipeline/demo_task.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/rng.h"

static int apply(int x, char op, int y) { return op == '+' ? x + y : x - y; }

void demo_problem_prompt(const DemoProblem *p, char *buf, size_t cap) {
    snprintf(buf, cap, "Compute %d%c%d%c%d", p->a, p->o1, p->b, p->o2, p->c);
}

/* Every problem with non-negative intermediate and final results. */
static int all_problems(DemoProblem **out) {
    int n = 0;
    *out = malloc(9 * 9 * 9 * 4 * sizeof **out);
    const char ops[2] = {'+', '-'};
    for (int a = 1; a <= 9; a++)
        for (int b = 1; b <= 9; b++)
            for (int c = 1; c <= 9; c++)
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++) {
                        int x = apply(a, ops[i], b);
                        if (x < 0) continue;
                        int y = apply(x, ops[j], c);
                        if (y < 0) continue;
                        (*out)[n++] = (DemoProblem){a, b, c, ops[i], ops[j], y};
                    }
    return n;
}

static void trace(const DemoProblem *p, Rng *r, const DemoTaskOptions *o, char *buf, size_t cap) {
    int x = apply(p->a, p->o1, p->b);
    int slip_step = rng_f64(r) < o->p_slip ? 1 + (int)(rng_u64(r) % 2) : 0;
    static const int D[4] = {-2, -1, 1, 2};
    if (slip_step == 1) {
        int d = D[rng_u64(r) % 4];
        if (x + d >= 0) x += d;
    }
    int y = apply(x, p->o2, p->c);
    if (slip_step == 2) {
        int d = D[rng_u64(r) % 4];
        if (y + d >= 0) y += d;
    }
    char think[128];
    snprintf(think, sizeof think, "%d%c%d=%d, %d%c%d=%d", p->a, p->o1, p->b, x, x, p->o2, p->c, y);
    int fmt = rng_f64(r) < o->p_bad_format ? 1 + (int)(rng_u64(r) % 3) : 0;
    switch (fmt) {
    case 1: snprintf(buf, cap, " <think> %s </think> The answer is %d", think, y); break;
    case 2: snprintf(buf, cap, " <think> %s <answer> %d </answer>", think, y); break;
    case 3: snprintf(buf, cap, " <think> %s </think> <answer> %d </answer> %d", think, y, y); break;
    default: snprintf(buf, cap, " <think> %s </think> <answer> %d </answer>", think, y); break;
    }
}

typedef struct Buf {
    char *s;
    size_t n, cap;
} Buf;

static void bprintf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(Buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, tmp, k + 1);
    b->n += k;
}

int demo_task_write(const char *dir, const DemoTaskOptions *o, int *n_train, Err *err) {
    if (dir_make(dir, err) != 0) return -1;
    DemoProblem *all;
    int n = all_problems(&all);
    Rng r;
    rng_split(&r, o->seed, 1);
    for (int i = n - 1; i > 0; i--) { /* shuffle, then the first n_eval are held out */
        int j = (int)(rng_u64(&r) % (uint64_t)(i + 1));
        DemoProblem t = all[i];
        all[i] = all[j], all[j] = t;
    }
    int ne = o->n_eval < n / 2 ? o->n_eval : n / 2;
    Buf ev = {0}, tr = {0}, sft = {0};
    char prompt[64], comp[256];
    for (int i = 0; i < ne; i++) {
        demo_problem_prompt(&all[i], prompt, sizeof prompt);
        bprintf(&ev, "{\"prompt\": \"%s\", \"answer\": \"%d\"}\n", prompt, all[i].answer);
    }
    for (int i = ne; i < n; i++) {
        demo_problem_prompt(&all[i], prompt, sizeof prompt);
        bprintf(&tr, "{\"prompt\": \"%s\", \"answer\": \"%d\"}\n", prompt, all[i].answer);
    }
    for (int k = 0; k < o->n_sft; k++) {
        const DemoProblem *p = &all[ne + (int)(rng_u64(&r) % (uint64_t)(n - ne))];
        demo_problem_prompt(p, prompt, sizeof prompt);
        trace(p, &r, o, comp, sizeof comp);
        bprintf(&sft, "{\"prompt\": \"%s\", \"completion\": \"%s\", \"answer\": \"%d\"}\n", prompt, comp, p->answer);
    }
    char path[4096];
    int rc = 0;
    snprintf(path, sizeof path, "%s/eval.jsonl", dir);
    rc = rc || file_write_atomic(path, ev.s, ev.n, err);
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    rc = rc || file_write_atomic(path, tr.s, tr.n, err);
    snprintf(path, sizeof path, "%s/sft.jsonl", dir);
    rc = rc || file_write_atomic(path, sft.s, sft.n, err);
    free(ev.s), free(tr.s), free(sft.s), free(all);
    *n_train = n - ne;
    return rc ? -1 : 0;
}
