/* TinyZero's countdown reward: the equation in the last <answer> must use
 * each given number exactly once, only + - * / ( ) and spaces, and
 * evaluate (exactly, over the rationals) to the target. Scores follow
 * TinyZero: 0 without an equation, format_score (0.1) for a wrong or
 * invalid one, score (1.0) when right. compat=tinyzero mimics TinyZero's
 * extraction quirks (see docs/rewards.md). */
#include <ctype.h>
#include <gmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/reward.h"

#define CD_MAX_EQ 1024    /* equation bytes */
#define CD_MAX_NUMS 64    /* numbers in an equation or in the record */
#define CD_MAX_DIGITS 18
#define CD_MAX_DEPTH 64
#define CD_MAX_BITS 8192

typedef struct Countdown {
    double format_score, score;
    int tinyzero;      /* mimic TinyZero's extraction and Python eval */
    int integer_only;  /* reject non-integer intermediate results */
    char numbers_field[64], target_field[64];
} Countdown;

typedef struct Ev {
    const char *s;
    size_t n, i;
    int depth;
    int python;
    int integer_only;
    char why[96];
} Ev;

static void ev_ws(Ev *e) {
    while (e->i < e->n && isspace((unsigned char)e->s[e->i])) e->i++;
}

static int ev_fail(Ev *e, const char *msg) {
    if (!e->why[0]) snprintf(e->why, sizeof e->why, "%s", msg);
    return -1;
}

static int ev_check(Ev *e, mpq_t v) {
    if (mpz_sizeinbase(mpq_numref(v), 2) + mpz_sizeinbase(mpq_denref(v), 2) > CD_MAX_BITS)
        return ev_fail(e, "intermediate result too large");
    if (e->integer_only && mpz_cmp_ui(mpq_denref(v), 1) != 0) {
        gmp_snprintf(e->why, sizeof e->why, "non-integer intermediate result %Qd", v);
        return -1;
    }
    return 0;
}

static int ev_expr(Ev *e, mpq_t out);
static int ev_unary(Ev *e, mpq_t out);

static int ev_atom(Ev *e, mpq_t out) {
    ev_ws(e);
    if (e->i >= e->n) return ev_fail(e, "equation ends early");
    char c = e->s[e->i];
    if (c == '(') {
        if (++e->depth > CD_MAX_DEPTH) return ev_fail(e, "parentheses nested too deep");
        e->i++;
        if (ev_expr(e, out) < 0) return -1;
        ev_ws(e);
        if (e->i >= e->n || e->s[e->i] != ')') return ev_fail(e, "missing ')'");
        e->i++;
        e->depth--;
        return 0;
    }
    if (isdigit((unsigned char)c) || (e->python && c == '.')) {
        size_t st = e->i;
        while (e->i < e->n && isdigit((unsigned char)e->s[e->i])) e->i++;
        size_t int_end = e->i;
        int frac = 0;
        if (e->i < e->n && e->s[e->i] == '.') {
            if (!e->python) return ev_fail(e, "decimal point in equation");
            e->i++;
            while (e->i < e->n && isdigit((unsigned char)e->s[e->i])) { e->i++; frac++; }
        }
        size_t nd = e->i - st;
        if (nd > CD_MAX_DIGITS + 1) return ev_fail(e, "number too long");
        char buf[CD_MAX_DIGITS + 3];
        size_t k = 0;
        for (size_t j = st; j < e->i; j++)
            if (e->s[j] != '.') buf[k++] = e->s[j];
        buf[k] = 0;
        if (k == 0) return ev_fail(e, "bad number");
        /* Python 3 rejects integer literals with leading zeros (05) */
        if (e->python && !frac && int_end == e->i && int_end - st > 1 && e->s[st] == '0') {
            for (size_t j = st; j < int_end; j++)
                if (e->s[j] != '0') return ev_fail(e, "leading zero");
        }
        mpz_set_str(mpq_numref(out), buf, 10);
        mpz_ui_pow_ui(mpq_denref(out), 10, (unsigned long)frac);
        mpq_canonicalize(out);
        return 0;
    }
    return ev_fail(e, "expected a number or '('");
}

static int ev_power(Ev *e, mpq_t out) {
    if (ev_atom(e, out) < 0) return -1;
    ev_ws(e);
    if (e->i + 1 < e->n && e->s[e->i] == '*' && e->s[e->i + 1] == '*') {
        if (!e->python) return ev_fail(e, "'**' is not allowed");
        e->i += 2;
        mpq_t x;
        mpq_init(x);
        if (++e->depth > CD_MAX_DEPTH || ev_unary(e, x) < 0) { mpq_clear(x); return ev_fail(e, "bad exponent"); }
        e->depth--;
        int r = 0;
        if (mpz_cmp_ui(mpq_denref(x), 1) != 0 || mpz_cmpabs_ui(mpq_numref(x), 4096) > 0) r = ev_fail(e, "exponent not a small integer");
        else {
            long p = mpz_get_si(mpq_numref(x));
            unsigned long up = (unsigned long)(p < 0 ? -p : p);
            if ((double)(mpz_sizeinbase(mpq_numref(out), 2) + mpz_sizeinbase(mpq_denref(out), 2)) * (double)up > CD_MAX_BITS)
                r = ev_fail(e, "power too large");
            else if (p < 0 && mpq_sgn(out) == 0) r = ev_fail(e, "division by zero");
            else {
                if (p < 0) mpq_inv(out, out);
                mpz_pow_ui(mpq_numref(out), mpq_numref(out), up);
                mpz_pow_ui(mpq_denref(out), mpq_denref(out), up);
            }
        }
        mpq_clear(x);
        return r;
    }
    return 0;
}

static int ev_unary(Ev *e, mpq_t out) {
    ev_ws(e);
    if (e->i < e->n && (e->s[e->i] == '-' || e->s[e->i] == '+')) {
        char c = e->s[e->i++];
        if (++e->depth > CD_MAX_DEPTH) return ev_fail(e, "too many signs");
        if (ev_unary(e, out) < 0) return -1;
        e->depth--;
        if (c == '-') mpq_neg(out, out);
        return 0;
    }
    return ev_power(e, out);
}

static int ev_term(Ev *e, mpq_t out) {
    if (ev_unary(e, out) < 0) return -1;
    mpq_t y;
    mpq_init(y);
    for (;;) {
        ev_ws(e);
        if (e->i >= e->n) break;
        char c = e->s[e->i];
        if (c != '*' && c != '/') break;
        int floor_div = 0;
        e->i++;
        if (c == '/' && e->i < e->n && e->s[e->i] == '/') {
            if (!e->python) { mpq_clear(y); return ev_fail(e, "'//' is not allowed"); }
            floor_div = 1;
            e->i++;
        }
        if (ev_unary(e, y) < 0) { mpq_clear(y); return -1; }
        if (c == '*') mpq_mul(out, out, y);
        else {
            if (mpq_sgn(y) == 0) { mpq_clear(y); return ev_fail(e, "division by zero"); }
            mpq_div(out, out, y);
            if (floor_div) {
                mpz_fdiv_q(mpq_numref(out), mpq_numref(out), mpq_denref(out));
                mpz_set_ui(mpq_denref(out), 1);
            }
        }
        if (ev_check(e, out) < 0) { mpq_clear(y); return -1; }
    }
    mpq_clear(y);
    return 0;
}

static int ev_expr(Ev *e, mpq_t out) {
    if (ev_term(e, out) < 0) return -1;
    mpq_t y;
    mpq_init(y);
    for (;;) {
        ev_ws(e);
        if (e->i >= e->n) break;
        char c = e->s[e->i];
        if (c != '+' && c != '-') break;
        e->i++;
        if (ev_term(e, y) < 0) { mpq_clear(y); return -1; }
        if (c == '+') mpq_add(out, out, y);
        else mpq_sub(out, out, y);
        if (ev_check(e, out) < 0) { mpq_clear(y); return -1; }
    }
    mpq_clear(y);
    return 0;
}

static void *countdown_create(Err *err) {
    Countdown *c = calloc(1, sizeof *c);
    if (!c) { err_set(err, "out of memory"); return NULL; }
    c->format_score = 0.1;
    c->score = 1.0;
    strcpy(c->numbers_field, "numbers");
    strcpy(c->target_field, "target");
    return c;
}

static int countdown_set_option(void *self, const char *key, const char *value, Err *err) {
    Countdown *c = self;
    if (!strcmp(key, "format_score")) return reward_parse_double(key, value, &c->format_score, err);
    if (!strcmp(key, "score")) return reward_parse_double(key, value, &c->score, err);
    if (!strcmp(key, "integer_only")) return reward_parse_bool(key, value, &c->integer_only, err);
    if (!strcmp(key, "compat")) {
        if (!strcmp(value, "tinyzero")) c->tinyzero = 1;
        else if (!strcmp(value, "none") || !strcmp(value, "r1c")) c->tinyzero = 0;
        else return err_set(err, "option compat: '%s' (expected tinyzero or none)", value);
        return 0;
    }
    if (!strcmp(key, "numbers_field") || !strcmp(key, "target_field")) {
        char *dst = key[0] == 'n' ? c->numbers_field : c->target_field;
        if (!*value || strlen(value) >= 64) return err_set(err, "option %s: bad field name", key);
        strcpy(dst, value);
        return 0;
    }
    return 1;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* numbers: a JSON array of integers or a string "30,100,93". */
static int record_numbers(const json_t *rec, const char *field, long *nums, int *n) {
    json_t *v = rec ? json_object_get(rec, field) : NULL;
    *n = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (*n >= CD_MAX_NUMS) return -1;
            if (json_is_integer(x)) nums[(*n)++] = (long)json_integer_value(x);
            else if (json_is_real(x) && json_real_value(x) == (double)(long)json_real_value(x)) nums[(*n)++] = (long)json_real_value(x);
            else return -1;
        }
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s) {
            while (*s == ' ' || *s == ',' || *s == '[' || *s == ']') s++;
            if (!*s) break;
            char *end;
            long x = strtol(s, &end, 10);
            if (end == s || *n >= CD_MAX_NUMS) return -1;
            nums[(*n)++] = x;
            s = end;
        }
        return *n ? 0 : -1;
    }
    return -1;
}

static int record_target(const json_t *rec, const char *field, mpq_t target) {
    json_t *v = rec ? json_object_get(rec, field) : NULL;
    if (json_is_integer(v)) { mpq_set_si(target, (long)json_integer_value(v), 1); return 0; }
    if (json_is_real(v)) { mpq_set_d(target, json_real_value(v)); return 0; }
    if (json_is_string(v)) {
        char *end;
        long x = strtol(json_string_value(v), &end, 10);
        if (end != json_string_value(v) && *end == 0) { mpq_set_si(target, x, 1); return 0; }
    }
    return -1;
}

/* The last <answer>...</answer>; TinyZero additionally looks only at the
 * last line and its regex does not cross newlines. */
static int extract_equation(const Countdown *c, const char *s, size_t len, const char **eq, size_t *eq_len) {
    const char *m = reward_find_str(s, len, "Assistant:");
    size_t skip = 0;
    if (m) skip = (size_t)(m - s) + 10;
    else if ((m = reward_find_str(s, len, "<|im_start|>assistant")) != NULL) skip = (size_t)(m - s) + 21;
    else if (c->tinyzero) return 0;
    s += skip;
    len -= skip;
    if (c->tinyzero) {
        const char *nl = NULL;
        for (size_t i = len; i > 0; i--)
            if (s[i - 1] == '\n') { nl = s + i; break; }
        if (nl) { len -= (size_t)(nl - s); s = nl; }
    }
    /* scan forward so the last complete non-overlapping pair wins (as re.finditer) */
    const char *best = NULL;
    size_t best_len = 0, i = 0;
    while (i < len) {
        const char *o = reward_find_str(s + i, len - i, "<answer>");
        if (!o) break;
        size_t a = (size_t)(o - s) + 8;
        const char *cl = reward_find_str(s + a, len - a, "</answer>");
        if (!cl) break;
        best = s + a;
        best_len = (size_t)(cl - (s + a));
        i = (size_t)(cl - s) + 9;
    }
    if (!best) return 0;
    while (best_len && isspace((unsigned char)*best)) { best++; best_len--; }
    while (best_len && isspace((unsigned char)best[best_len - 1])) best_len--;
    *eq = best;
    *eq_len = best_len;
    return 1;
}

static int countdown_score(void *self, const RewardInput *in, RewardScore *out, Err *err) {
    Countdown *c = self;
    long given[CD_MAX_NUMS], used[CD_MAX_NUMS];
    int ngiven = 0, nused = 0;
    if (record_numbers(in->record, c->numbers_field, given, &ngiven) < 0) {
        reward_reason(out, 0, "record field '%s' is not a list of integers", c->numbers_field);
        return 0;
    }
    mpq_t target, v;
    mpq_inits(target, v, NULL);
    if (record_target(in->record, c->target_field, target) < 0) {
        reward_reason(out, 0, "record field '%s' is not a number", c->target_field);
        mpq_clears(target, v, NULL);
        return 0;
    }
    const char *eq;
    size_t n;
    if (!extract_equation(c, in->completion, in->completion_len, &eq, &n)) {
        reward_reason(out, 0, "no <answer>...</answer> equation");
        goto done;
    }
    if (n > CD_MAX_EQ) { reward_reason(out, c->format_score, "equation too long (%zu bytes)", n); goto done; }
    /* TinyZero checks the numbers before the characters */
    for (size_t i = 0; i < n;) {
        if (!isdigit((unsigned char)eq[i])) { i++; continue; }
        size_t j = i;
        while (j < n && isdigit((unsigned char)eq[j])) j++;
        if (nused >= CD_MAX_NUMS || j - i > CD_MAX_DIGITS) { reward_reason(out, c->format_score, "too many or too long numbers"); goto done; }
        used[nused++] = strtol(eq + i, NULL, 10);
        i = j;
    }
    qsort(given, (size_t)ngiven, sizeof *given, cmp_long);
    qsort(used, (size_t)nused, sizeof *used, cmp_long);
    if (nused != ngiven || memcmp(used, given, (size_t)ngiven * sizeof *given)) {
        char ub[64] = "", gb[64] = "";
        size_t k = 0;
        for (int i = 0; i < nused && k < sizeof ub - 12; i++) k += (size_t)snprintf(ub + k, sizeof ub - k, "%s%ld", i ? "," : "", used[i]);
        k = 0;
        for (int i = 0; i < ngiven && k < sizeof gb - 12; i++) k += (size_t)snprintf(gb + k, sizeof gb - k, "%s%ld", i ? "," : "", given[i]);
        reward_reason(out, c->format_score, "numbers used [%s] != given [%s]", ub, gb);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = eq[i];
        int ok = isdigit((unsigned char)ch) || strchr("+-*/() \t\n\r\f\v", ch) || (c->tinyzero && ch == '.');
        if (!ok || ch == 0) {
            reward_reason(out, c->format_score, "illegal character '%c' in equation", isprint((unsigned char)ch) ? ch : '?');
            goto done;
        }
    }
    Ev e = {.s = eq, .n = n, .python = c->tinyzero, .integer_only = c->integer_only};
    int r = ev_expr(&e, v);
    ev_ws(&e);
    if (r == 0 && e.i != n) r = ev_fail(&e, "unexpected text after the equation");
    if (r < 0) { reward_reason(out, c->format_score, "invalid equation: %s", e.why); goto done; }
    int right;
    if (c->tinyzero) {
        /* abs(result - target) < 1e-5 */
        mpq_t d, tol;
        mpq_inits(d, tol, NULL);
        mpq_sub(d, v, target);
        mpq_abs(d, d);
        mpq_set_ui(tol, 1, 100000);
        right = mpq_cmp(d, tol) < 0;
        mpq_clears(d, tol, NULL);
    } else right = mpq_equal(v, target);
    if (right) gmp_snprintf(out->reason, sizeof out->reason, "correct: = %Qd", v), out->score = c->score;
    else gmp_snprintf(out->reason, sizeof out->reason, "wrong: = %Qd, target %Qd", v, target), out->score = c->format_score;
done:
    mpq_clears(target, v, NULL);
    return 0;
}

static void countdown_destroy(void *self) { free(self); }

const RewardKind reward_countdown_kind = {
    .name = "countdown",
    .summary = "TinyZero countdown: equation in <answer> uses each number once and hits target: 0 / 0.1 / 1",
    .create = countdown_create,
    .set_option = countdown_set_option,
    .score = countdown_score,
    .destroy = countdown_destroy,
};
