/* Equivalence of two parsed answers. Structure first (lists, sets,
 * intervals, matrices, relations), then values: exact rationals with GMP
 * when both sides are rational, otherwise floating evaluation at a few
 * fixed pseudo-random points (symbolic identity by sampling). A work budget
 * and bit-size caps bound the time of every call. */
#include <ctype.h>
#include <gmp.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reward/math.h"
#include "reward/math_internal.h"

#define MAX_BITS 16384     /* exact values larger than this are "too big" */
#define MAX_POW_EXP 4096
#define WORK_BUDGET 100000 /* node evaluations (plus big-number size) per call */
#define NPTS 3
#define PM_FIXED 0x80000000u /* mask bit: \pm signs already chosen */

void math_options_default(MathOptions *o) {
    o->rel_tol = 0;
    o->percent = MATH_PERCENT_BOTH;
    o->whole_max = 64;
}

typedef struct Cmp {
    const MathTree *ta, *tb;
    const MathOptions *o;
    int budget;
    int pct;        /* 0: x% = x/100, 1: x% = x */
    int used_numeric;
} Cmp;

/* ------------------------------------------------------------ exact */

static int literal_q(const MathNode *n, mpq_t out) {
    char digits[MATH_MAX_DIGITS + 2];
    int nd = 0, frac = 0, in_frac = 0, k = 0;
    long ex = 0;
    for (; k < n->slen; k++) {
        char ch = n->s[k];
        if (isdigit((unsigned char)ch)) {
            if (nd >= MATH_MAX_DIGITS) return -1;
            digits[nd++] = ch;
            if (in_frac) frac++;
        } else if (ch == '.') in_frac = 1;
        else if (ch == 'e' || ch == 'E') break;
    }
    if (k < n->slen) {
        int sign = 1;
        k++;
        if (k < n->slen && (n->s[k] == '-' || n->s[k] == '+')) sign = n->s[k++] == '-' ? -1 : 1;
        for (; k < n->slen; k++) {
            ex = ex * 10 + (n->s[k] - '0');
            if (ex > 400) return -1;
        }
        ex *= sign;
    }
    if (nd == 0) return -1;
    digits[nd] = 0;
    mpz_set_str(mpq_numref(out), digits, 10);
    mpz_set_ui(mpq_denref(out), 1);
    long e10 = ex - frac;
    mpz_t p;
    mpz_init(p);
    mpz_ui_pow_ui(p, 10, (unsigned long)(e10 < 0 ? -e10 : e10));
    if (e10 >= 0) mpz_mul(mpq_numref(out), mpq_numref(out), p);
    else mpz_set(mpq_denref(out), p);
    mpz_clear(p);
    mpq_canonicalize(out);
    return 0;
}

static int too_big(const mpq_t q) {
    return mpz_sizeinbase(mpq_numref(q), 2) + mpz_sizeinbase(mpq_denref(q), 2) > MAX_BITS;
}

/* 0: exact rational in out; 1: not rational (symbols, pi, sqrt 2...);
 * -1: error (division by zero, too large, out of budget). */
static int eval_q(Cmp *c, const MathTree *t, int i, unsigned mask, mpq_t out) {
    if (--c->budget < 0) return -1;
    const MathNode *n = &t->n[i];
    int a = n->first, b = a >= 0 ? t->n[a].next : -1;
    int r = 0;
    switch (n->kind) {
    case MN_NUM: return literal_q(n, out);
    case MN_NEG:
        if ((r = eval_q(c, t, a, mask, out)) != 0) return r;
        mpq_neg(out, out);
        return 0;
    case MN_PERCENT:
        if ((r = eval_q(c, t, a, mask, out)) != 0) return r;
        if (c->pct == 0) {
            mpz_mul_ui(mpq_denref(out), mpq_denref(out), 100);
            mpq_canonicalize(out);
        }
        return 0;
    case MN_ADD: case MN_SUB: case MN_MUL: case MN_DIV: case MN_PM: case MN_POW: case MN_BINOM: {
        if (n->kind == MN_PM && n->nkids == 1) {
            if ((r = eval_q(c, t, a, mask, out)) != 0) return r;
            if (mask >> n->op & 1) mpq_neg(out, out);
            return 0;
        }
        mpq_t y;
        mpq_init(y);
        if ((r = eval_q(c, t, a, mask, out)) != 0 || (r = eval_q(c, t, b, mask, y)) != 0) { mpq_clear(y); return r; }
        switch (n->kind) {
        case MN_ADD: mpq_add(out, out, y); break;
        case MN_SUB: mpq_sub(out, out, y); break;
        case MN_PM: if (mask >> n->op & 1) mpq_sub(out, out, y); else mpq_add(out, out, y); break;
        case MN_MUL: mpq_mul(out, out, y); break;
        case MN_DIV:
            if (mpq_sgn(y) == 0) r = -1;
            else mpq_div(out, out, y);
            break;
        case MN_BINOM:
            if (mpz_cmp_ui(mpq_denref(out), 1) || mpz_cmp_ui(mpq_denref(y), 1) || mpq_sgn(out) < 0 || mpq_sgn(y) < 0 ||
                mpz_cmp_ui(mpq_numref(out), 100000) > 0 || mpz_cmp_ui(mpq_numref(y), 100000) > 0)
                r = 1;
            else {
                unsigned long nn = mpz_get_ui(mpq_numref(out)), kk = mpz_get_ui(mpq_numref(y));
                if (kk > nn) mpq_set_ui(out, 0, 1);
                else if ((double)(kk < nn - kk ? kk : nn - kk) * log2((double)nn + 1) > MAX_BITS) r = -1;
                else { mpz_bin_uiui(mpq_numref(out), nn, kk); mpz_set_ui(mpq_denref(out), 1); }
            }
            break;
        case MN_POW: {
            if (mpz_cmp_ui(mpq_denref(y), 1) != 0) { r = 1; break; } /* roots: not rational in general */
            if (mpz_cmpabs_ui(mpq_numref(y), MAX_POW_EXP) > 0) {
                /* 0, 1 and -1 stay small under any power */
                if (mpq_sgn(out) == 0 || (mpz_cmpabs_ui(mpq_numref(out), 1) == 0 && mpz_cmp_ui(mpq_denref(out), 1) == 0)) {
                    if (mpq_sgn(out) == 0 && mpq_sgn(y) < 0) r = -1;
                    else if (mpq_sgn(out) < 0 && mpz_even_p(mpq_numref(y))) mpq_neg(out, out);
                } else r = -1;
                break;
            }
            long e = mpz_get_si(mpq_numref(y));
            unsigned long ue = (unsigned long)(e < 0 ? -e : e);
            double bits = (double)(mpz_sizeinbase(mpq_numref(out), 2) + mpz_sizeinbase(mpq_denref(out), 2)) * (double)ue;
            if (bits > MAX_BITS) { r = -1; break; }
            if (e < 0) {
                if (mpq_sgn(out) == 0) { r = -1; break; }
                mpq_inv(out, out);
            }
            mpz_pow_ui(mpq_numref(out), mpq_numref(out), ue);
            mpz_pow_ui(mpq_denref(out), mpq_denref(out), ue);
            break;
        }
        default: break;
        }
        mpq_clear(y);
        if (r == 0 && too_big(out)) r = -1;
        /* big operands cost work in proportion to their size */
        if (r == 0) c->budget -= (int)((mpz_sizeinbase(mpq_numref(out), 2) + mpz_sizeinbase(mpq_denref(out), 2)) / 32);
        return r;
    }
    case MN_SQRT: {
        if (n->nkids != 1) return 1;
        if ((r = eval_q(c, t, a, mask, out)) != 0) return r;
        if (mpq_sgn(out) < 0) return 1;
        if (!mpz_perfect_square_p(mpq_numref(out)) || !mpz_perfect_square_p(mpq_denref(out))) return 1;
        mpz_sqrt(mpq_numref(out), mpq_numref(out));
        mpz_sqrt(mpq_denref(out), mpq_denref(out));
        return 0;
    }
    case MN_FACT:
        if ((r = eval_q(c, t, a, mask, out)) != 0) return r;
        if (mpz_cmp_ui(mpq_denref(out), 1) || mpq_sgn(out) < 0) return 1;
        if (mpz_cmp_ui(mpq_numref(out), 1000) > 0) return -1;
        mpz_fac_ui(mpq_numref(out), mpz_get_ui(mpq_numref(out)));
        return too_big(out) ? -1 : 0;
    case MN_FUNC:
        if (n->op == MF_ABS) {
            if ((r = eval_q(c, t, a, mask, out)) != 0) return r;
            mpq_abs(out, out);
            return 0;
        }
        return 1;
    default: return 1;
    }
}

/* ------------------------------------------------------------ numeric */

static double sym_value(const MathNode *n, int point) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(point * 7919 + 17);
    for (int k = 0; k < n->slen; k++) {
        if (n->s[k] == ' ' || n->s[k] == '{' || n->s[k] == '}') continue;
        h = (h ^ (unsigned char)n->s[k]) * 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return 0.3 + (double)(h % 1000003) / 500001.0; /* (0.3, 2.3): away from 0, 1 and poles */
}

static double eval_d(Cmp *c, const MathTree *t, int i, unsigned mask, int point) {
    if (--c->budget < 0) return NAN;
    const MathNode *n = &t->n[i];
    int a = n->first, b = a >= 0 ? t->n[a].next : -1;
    double x, y;
    switch (n->kind) {
    case MN_NUM: {
        mpq_t q;
        mpq_init(q);
        x = literal_q(n, q) == 0 ? mpq_get_d(q) : NAN;
        mpq_clear(q);
        return x;
    }
    case MN_SYM: return sym_value(n, point);
    case MN_PI: return M_PI;
    case MN_INF: return INFINITY;
    case MN_NEG: return -eval_d(c, t, a, mask, point);
    case MN_PERCENT: x = eval_d(c, t, a, mask, point); return c->pct == 0 ? x / 100 : x;
    case MN_PM:
        if (n->nkids == 1) { x = eval_d(c, t, a, mask, point); return (mask >> n->op & 1) ? -x : x; }
        x = eval_d(c, t, a, mask, point);
        y = eval_d(c, t, b, mask, point);
        return (mask >> n->op & 1) ? x - y : x + y;
    case MN_ADD: return eval_d(c, t, a, mask, point) + eval_d(c, t, b, mask, point);
    case MN_SUB: return eval_d(c, t, a, mask, point) - eval_d(c, t, b, mask, point);
    case MN_MUL: return eval_d(c, t, a, mask, point) * eval_d(c, t, b, mask, point);
    case MN_DIV: return eval_d(c, t, a, mask, point) / eval_d(c, t, b, mask, point);
    case MN_POW: return pow(eval_d(c, t, a, mask, point), eval_d(c, t, b, mask, point));
    case MN_SQRT:
        x = eval_d(c, t, a, mask, point);
        if (n->nkids == 2) {
            y = eval_d(c, t, b, mask, point);
            if (x < 0 && fmod(y, 2) == 1) return -pow(-x, 1 / y);
            return pow(x, 1 / y);
        }
        return sqrt(x);
    case MN_FACT: x = eval_d(c, t, a, mask, point); return x > 170 ? NAN : tgamma(x + 1);
    case MN_BINOM:
        x = eval_d(c, t, a, mask, point);
        y = eval_d(c, t, b, mask, point);
        return exp(lgamma(x + 1) - lgamma(y + 1) - lgamma(x - y + 1));
    case MN_FUNC:
        x = eval_d(c, t, a, mask, point);
        switch (n->op) {
        case MF_SIN: return sin(x);
        case MF_COS: return cos(x);
        case MF_TAN: return tan(x);
        case MF_COT: return 1 / tan(x);
        case MF_SEC: return 1 / cos(x);
        case MF_CSC: return 1 / sin(x);
        case MF_ASIN: return asin(x);
        case MF_ACOS: return acos(x);
        case MF_ATAN: return atan(x);
        case MF_SINH: return sinh(x);
        case MF_COSH: return cosh(x);
        case MF_TANH: return tanh(x);
        case MF_LN: return log(x);
        case MF_LOG: return n->nkids == 2 ? log(x) / log(eval_d(c, t, b, mask, point)) : log(x);
        case MF_EXP: return exp(x);
        case MF_ABS: return fabs(x);
        default: return NAN;
        }
    default: return NAN;
    }
}

/* (a1 - a2) vs sign * (b1 - b2), where a2 / b2 may be -1 (absent). */
static int scalar_eq(Cmp *c, int a1, int a2, unsigned ma, int b1, int b2, unsigned mb, int sign) {
    int pct_modes = (c->ta->has_percent || c->tb->has_percent) ? 2 : 1;
    for (int pm = 0; pm < pct_modes; pm++) {
        c->pct = pm;
        if (c->o->percent == MATH_PERCENT_FRACTION && pm == 1) break;
        if (c->o->percent == MATH_PERCENT_STRIP) c->pct = 1;
        mpq_t x, y, z;
        mpq_inits(x, y, z, NULL);
        int ra = eval_q(c, c->ta, a1, ma, x);
        if (ra == 0 && a2 >= 0) { ra = eval_q(c, c->ta, a2, ma, z); if (ra == 0) mpq_sub(x, x, z); }
        int rb = ra == -1 ? -1 : eval_q(c, c->tb, b1, mb, y);
        if (rb == 0 && b2 >= 0) { rb = eval_q(c, c->tb, b2, mb, z); if (rb == 0) mpq_sub(y, y, z); }
        int eq = -1;
        if (ra == 0 && rb == 0) {
            if (sign < 0) mpq_neg(y, y);
            eq = mpq_equal(x, y);
            if (!eq && c->o->rel_tol > 0) {
                double dx = mpq_get_d(x), dy = mpq_get_d(y);
                eq = fabs(dx - dy) <= c->o->rel_tol * fmax(fabs(dx), fabs(dy));
            }
        }
        mpq_clears(x, y, z, NULL);
        if (eq == 1) return 1;
        if (eq == 0 || ra == -1 || rb == -1) continue;
        /* at least one side is not rational: sample */
        c->used_numeric = 1;
        double tol = c->o->rel_tol > 1e-9 ? c->o->rel_tol : 1e-9;
        int npts = (c->ta->has_sym || c->tb->has_sym) ? NPTS : 1;
        int valid = 0, ok = 1;
        for (int p = 0; p < npts && ok; p++) {
            double dx = eval_d(c, c->ta, a1, ma, p), dy = eval_d(c, c->tb, b1, mb, p);
            if (a2 >= 0) dx -= eval_d(c, c->ta, a2, ma, p);
            if (b2 >= 0) dy -= eval_d(c, c->tb, b2, mb, p);
            dy *= sign;
            if (c->budget < 0) { ok = 0; break; }
            if (isnan(dx) && isnan(dy)) continue;
            if (isnan(dx) || isnan(dy)) { ok = 0; break; }
            if (isinf(dx) || isinf(dy)) {
                /* only a written infinity may compare equal to one; overflow never does */
                if (!(c->ta->has_inf && c->tb->has_inf) || dx != dy) ok = 0;
                else valid++;
                continue;
            }
            if (fabs(dx - dy) > tol * fmax(fabs(dx), fabs(dy)) && fabs(dx - dy) > 1e-12) ok = 0;
            else valid++;
        }
        if (ok && valid > 0) return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ structure */

static int node_eq(Cmp *c, int a, unsigned ma, int b, unsigned mb, int depth);

static void text_key(const MathTree *t, int i, char *buf, size_t size) {
    size_t k = 0;
    const MathNode *n = &t->n[i];
    for (int j = 0; j < n->slen && k + 1 < size; j++) {
        unsigned char ch = (unsigned char)n->s[j];
        if (isalnum(ch) || ch >= 0x80) buf[k++] = (char)tolower(ch);
    }
    buf[k] = 0;
}

static int is_textish(const MathTree *t, int i) { return t->n[i].kind == MN_TEXT || t->n[i].kind == MN_SYM; }

static void pm_indexes(const MathTree *t, int i, unsigned *bits) {
    if (t->n[i].kind == MN_PM) *bits |= 1u << t->n[i].op;
    for (int k = t->n[i].first; k >= 0; k = t->n[k].next) pm_indexes(t, k, bits);
}

/* Items of an unordered collection: list children, each expanded over its
 * \pm signs (1 \pm \sqrt 2 is the set of two values). */
static int expand(const MathTree *t, int i, unsigned base, int *items, unsigned *masks, int max) {
    int kids[64], nk = 0;
    if (t->n[i].kind == MN_LIST && (t->n[i].open == 0 || t->n[i].open == '{' || t->n[i].open == 'U')) {
        for (int k = t->n[i].first; k >= 0 && nk < 64; k = t->n[k].next) kids[nk++] = k;
    } else kids[nk++] = i;
    int n = 0;
    for (int k = 0; k < nk; k++) {
        unsigned bits = 0;
        pm_indexes(t, kids[k], &bits);
        /* enumerate every sign pattern of this item's \pm nodes */
        unsigned sub = 0;
        for (;;) {
            if (n >= max) return -1;
            items[n] = kids[k];
            masks[n] = base | sub | PM_FIXED;
            n++;
            if (sub == bits) break;
            sub = (sub - bits) & bits; /* next subset of bits */
        }
    }
    return n;
}

static int plain_scalar(const MathTree *t, int i) {
    int k = t->n[i].kind;
    return k != MN_LIST && k != MN_MATRIX && k != MN_REL && k != MN_TEXT;
}

static int unordered_eq(Cmp *c, int a, unsigned ma, int b, unsigned mb, int depth) {
    int ia[64], ib[64];
    unsigned ka[64], kb[64];
    int na = expand(c->ta, a, ma, ia, ka, 64), nb = expand(c->tb, b, mb, ib, kb, 64);
    if (na < 0 || nb < 0 || na != nb) return 0;
    /* exact values computed once per item, so matching n items costs n
     * evaluations, not n^2 (large sets of big powers stay cheap) */
    mpq_t va[64], vb[64];
    char ha[64] = {0}, hb[64] = {0};
    int cache = c->o->rel_tol == 0 && !c->ta->has_percent && !c->tb->has_percent;
    for (int x = 0; cache && x < na; x++) {
        mpq_init(va[x]);
        mpq_init(vb[x]);
        c->pct = 0;
        ha[x] = plain_scalar(c->ta, ia[x]) && eval_q(c, c->ta, ia[x], ka[x], va[x]) == 0;
        hb[x] = plain_scalar(c->tb, ib[x]) && eval_q(c, c->tb, ib[x], kb[x], vb[x]) == 0;
    }
    char used[64] = {0};
    int all = 1;
    for (int x = 0; x < na && all; x++) {
        int found = 0;
        for (int y = 0; y < nb && !found; y++) {
            if (used[y]) continue;
            int e = (cache && ha[x] && hb[y]) ? mpq_equal(va[x], vb[y]) != 0 : node_eq(c, ia[x], ka[x], ib[y], kb[y], depth + 1);
            if (e) { used[y] = 1; found = 1; }
        }
        if (!found) all = 0;
    }
    for (int x = 0; cache && x < na; x++) {
        mpq_clear(va[x]);
        mpq_clear(vb[x]);
    }
    return all;
}

static int is_unordered(const MathNode *n) {
    return n->kind == MN_LIST && (n->open == '{' || n->open == 'U');
}

static int has_pm(const MathTree *t, int i) {
    unsigned bits = 0;
    pm_indexes(t, i, &bits);
    return bits != 0;
}

/* x = 3 and x \in S compare by their right side against a bare answer. */
static int strip_var_eq(const MathTree *t, int i) {
    const MathNode *n = &t->n[i];
    if (n->kind != MN_REL || n->nkids != 2 || (n->op != '=' && n->op != 'i')) return i;
    int l = n->first, r = t->n[l].next;
    if (t->n[l].kind == MN_SYM) return r;
    if (t->n[r].kind == MN_SYM && n->op == '=') return l;
    return i;
}

static int inf_sign(const MathTree *t, int i) {
    if (i == -2) return -1;
    if (i == -3) return 1;
    if (t->n[i].kind == MN_INF) return 1;
    if (t->n[i].kind == MN_NEG && t->n[t->n[i].first].kind == MN_INF) return -1;
    if (t->n[i].kind == MN_PM) return 0;
    return 0;
}

typedef struct Interval {
    int lo, hi; /* node, or -2 = -inf, -3 = +inf */
    int lo_closed, hi_closed;
} Interval;

/* x > 3, 3 <= x, 1 < x < 2 and (a, b] as intervals. */
static int as_interval(const MathTree *t, int i, Interval *iv) {
    const MathNode *n = &t->n[i];
    if (n->kind == MN_LIST && n->nkids == 2 && (n->open == '(' || n->open == '[')) {
        iv->lo = n->first;
        iv->hi = t->n[n->first].next;
        iv->lo_closed = n->open == '[';
        iv->hi_closed = n->close == ']';
        return 1;
    }
    if (n->kind != MN_REL) return 0;
    int k0 = n->first, k1 = t->n[k0].next, k2 = t->n[k1].next;
    int less1 = n->op == '<' || n->op == 'l', more1 = n->op == '>' || n->op == 'g';
    if (n->nkids == 2) {
        if (!less1 && !more1) return 0;
        int var_left = t->n[k0].kind == MN_SYM, var_right = t->n[k1].kind == MN_SYM;
        if (var_left == var_right) return 0;
        int closed = n->op == 'l' || n->op == 'g';
        int bound = var_left ? k1 : k0;
        int upper = var_left ? less1 : more1; /* x < b or b > x: b is the upper bound */
        if (upper) { iv->lo = -2; iv->lo_closed = 0; iv->hi = bound; iv->hi_closed = closed; }
        else { iv->lo = bound; iv->lo_closed = closed; iv->hi = -3; iv->hi_closed = 0; }
        return 1;
    }
    if (n->nkids == 3 && t->n[k1].kind == MN_SYM) {
        int less2 = n->op2 == '<' || n->op2 == 'l', more2 = n->op2 == '>' || n->op2 == 'g';
        if (less1 && less2) {
            iv->lo = k0; iv->lo_closed = n->op == 'l'; iv->hi = k2; iv->hi_closed = n->op2 == 'l';
            return 1;
        }
        if (more1 && more2) {
            iv->lo = k2; iv->lo_closed = n->op2 == 'g'; iv->hi = k0; iv->hi_closed = n->op == 'g';
            return 1;
        }
    }
    return 0;
}

static int bound_eq(Cmp *c, int a, unsigned ma, int b, unsigned mb, int depth) {
    int sa = inf_sign(c->ta, a), sb = inf_sign(c->tb, b);
    if (sa || sb) return sa == sb;
    return node_eq(c, a, ma, b, mb, depth + 1);
}

static int interval_eq(Cmp *c, const Interval *x, unsigned ma, const Interval *y, unsigned mb, int depth) {
    /* an infinite end is open whatever bracket was written */
    int xlc = inf_sign(c->ta, x->lo) ? 0 : x->lo_closed, ylc = inf_sign(c->tb, y->lo) ? 0 : y->lo_closed;
    int xhc = inf_sign(c->ta, x->hi) ? 0 : x->hi_closed, yhc = inf_sign(c->tb, y->hi) ? 0 : y->hi_closed;
    return xlc == ylc && xhc == yhc && bound_eq(c, x->lo, ma, y->lo, mb, depth) &&
           bound_eq(c, x->hi, ma, y->hi, mb, depth);
}

static char flip(char op) { return op == '>' ? '<' : op == 'g' ? 'l' : op; }

static int rel_eq(Cmp *c, int a, unsigned ma, int b, unsigned mb, int depth) {
    const MathNode *x = &c->ta->n[a], *y = &c->tb->n[b];
    if (x->nkids != 2 || y->nkids != 2) return 0;
    int xl = x->first, xr = c->ta->n[xl].next, yl = y->first, yr = c->tb->n[yl].next;
    char xo = (char)x->op, yo = (char)y->op;
    if (xo == '>' || xo == 'g') { int s = xl; xl = xr; xr = s; xo = flip(xo); }
    if (yo == '>' || yo == 'g') { int s = yl; yl = yr; yr = s; yo = flip(yo); }
    if (xo != yo) return 0;
    if (xo == 'i') return node_eq(c, xr, ma, yr, mb, depth + 1);
    if (xo == '=' && c->ta->n[xl].kind == MN_SYM && c->tb->n[yl].kind == MN_SYM)
        return node_eq(c, xr, ma, yr, mb, depth + 1);
    if (xo == '=' || xo == 'n')
        return scalar_eq(c, xl, xr, ma, yl, yr, mb, 1) || scalar_eq(c, xl, xr, ma, yl, yr, mb, -1);
    return scalar_eq(c, xr, xl, ma, yr, yl, mb, 1);
}

/* Elements of an ordered container (tuple, interval, matrix, vector). */
static int ordered_items(const MathTree *t, int i, int *items, int max, int *rows, int *cols) {
    const MathNode *n = &t->n[i];
    int k = 0;
    for (int j = n->first; j >= 0 && k < max; j = t->n[j].next) items[k++] = j;
    if (n->kind == MN_MATRIX) { *rows = n->rows; *cols = n->cols; }
    else { *rows = 1; *cols = k; }
    return k;
}

static int node_eq(Cmp *c, int a, unsigned ma, int b, unsigned mb, int depth) {
    if (depth > MATH_MAX_DEPTH || c->budget < 0) return 0;
    const MathTree *ta = c->ta, *tb = c->tb;
    if (ta->n[a].kind != MN_REL || tb->n[b].kind != MN_REL) {
        a = strip_var_eq(ta, a);
        b = strip_var_eq(tb, b);
    }
    const MathNode *x = &ta->n[a], *y = &tb->n[b];
    /* unordered: sets, unions, bare lists of answers, \pm (once per item) */
    int px = !(ma & PM_FIXED) && has_pm(ta, a), py = !(mb & PM_FIXED) && has_pm(tb, b);
    int bare_x = x->kind == MN_LIST && x->open == 0, bare_y = y->kind == MN_LIST && y->open == 0;
    int tuple_x = x->kind == MN_LIST && (x->open == '(' || x->open == '[');
    int tuple_y = y->kind == MN_LIST && (y->open == '(' || y->open == '[');
    if (is_unordered(x) || is_unordered(y) || bare_x || bare_y || px || py) {
        int ordered = (tuple_x && (tuple_y || bare_y)) || (tuple_y && bare_x);
        if (!ordered) return unordered_eq(c, a, ma, b, mb, depth);
    }
    Interval ix, iy;
    if (tuple_x && tuple_y && x->nkids == 2 && y->nkids == 2 && as_interval(ta, a, &ix) && as_interval(tb, b, &iy))
        return interval_eq(c, &ix, ma, &iy, mb, depth);
    if ((x->kind == MN_REL || y->kind == MN_REL) && as_interval(ta, a, &ix) && as_interval(tb, b, &iy))
        return interval_eq(c, &ix, ma, &iy, mb, depth);
    if (x->kind == MN_REL || y->kind == MN_REL) {
        if (x->kind != y->kind) return 0;
        return rel_eq(c, a, ma, b, mb, depth);
    }
    if (x->kind == MN_LIST || x->kind == MN_MATRIX || y->kind == MN_LIST || y->kind == MN_MATRIX) {
        if (!(x->kind == MN_LIST || x->kind == MN_MATRIX) || !(y->kind == MN_LIST || y->kind == MN_MATRIX)) return 0;
        if (x->kind == MN_LIST && y->kind == MN_LIST && x->open && y->open && (x->open != y->open || x->close != y->close))
            return 0;
        int ia[64], ib[64], ra, ca, rb, cb;
        int na = ordered_items(ta, a, ia, 64, &ra, &ca), nb = ordered_items(tb, b, ib, 64, &rb, &cb);
        if (na != nb) return 0;
        /* a column or row vector may be written as a tuple */
        int shape_ok = (ra == rb && ca == cb) || ((ra == 1 || ca == 1) && (rb == 1 || cb == 1));
        if (!shape_ok) return 0;
        for (int k = 0; k < na; k++)
            if (!node_eq(c, ia[k], ma, ib[k], mb, depth + 1)) return 0;
        return 1;
    }
    if (x->kind == MN_TEXT || y->kind == MN_TEXT) {
        if (!is_textish(ta, a) || !is_textish(tb, b)) return 0;
        char ka[256], kb[256];
        text_key(ta, a, ka, sizeof ka);
        text_key(tb, b, kb, sizeof kb);
        return ka[0] && !strcmp(ka, kb);
    }
    return scalar_eq(c, a, -1, ma, b, -1, mb, 1);
}

/* ------------------------------------------------------------ entry */

/* Drops what never changes a value, so identical answers skip parsing. */
static size_t normalize_text(const char *s, size_t len, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < cap; i++) {
        char ch = s[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '$') continue;
        if (ch == '\\' && i + 1 < len) {
            char d = s[i + 1];
            if (d == ',' || d == ';' || d == '!' || d == ':' || d == ' ') { i++; continue; }
            if (len - i >= 5 && !memcmp(s + i, "\\left", 5) && !(len - i > 5 && isalpha((unsigned char)s[i + 5]))) { i += 4; continue; }
            if (len - i >= 6 && !memcmp(s + i, "\\right", 6) && !(len - i > 6 && isalpha((unsigned char)s[i + 6]))) { i += 5; continue; }
            if (len - i >= 6 && (!memcmp(s + i, "\\dfrac", 6) || !memcmp(s + i, "\\tfrac", 6))) {
                memcpy(out + k, "\\frac", 5 < cap - k - 1 ? 5 : cap - k - 1);
                k += 5 < cap - k - 1 ? 5 : cap - k - 1;
                i += 5;
                continue;
            }
        }
        out[k++] = ch;
    }
    while (k > 0 && out[k - 1] == '.') k--;
    out[k] = 0;
    return k;
}

/* Lowercase letters and digits outside LaTeX command names. */
static void letters_key(const char *s, size_t len, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            while (i + 1 < len && isalpha((unsigned char)s[i + 1])) i++;
            continue;
        }
        if (isalnum((unsigned char)s[i])) out[k++] = (char)tolower((unsigned char)s[i]);
    }
    out[k] = 0;
}

int math_equiv(const char *gold, size_t gold_len, const char *pred, size_t pred_len, const MathOptions *o, char *why,
               size_t why_size) {
    MathOptions def;
    if (!o) { math_options_default(&def); o = &def; }
    if (gold_len > MATH_MAX_INPUT || pred_len > MATH_MAX_INPUT) {
        snprintf(why, why_size, "%s too long (> %d bytes)", gold_len > MATH_MAX_INPUT ? "gold" : "answer", MATH_MAX_INPUT);
        return 0;
    }
    char ng[MATH_MAX_INPUT + 1], np[MATH_MAX_INPUT + 1];
    size_t lg = normalize_text(gold, gold_len, ng, sizeof ng), lp = normalize_text(pred, pred_len, np, sizeof np);
    if (lp == 0) { snprintf(why, why_size, "empty answer"); return 0; }
    if (lg == lp && !memcmp(ng, np, lg)) { snprintf(why, why_size, "equal (same text)"); return 1; }
    static _Thread_local MathTree ta, tb;
    if (math_parse(&ta, gold, (int)gold_len) < 0) {
        snprintf(why, why_size, "gold unparsable");
        return 0;
    }
    if (math_parse(&tb, pred, (int)pred_len) < 0) {
        snprintf(why, why_size, "answer unparsable");
        return 0;
    }
    if (ta.n[ta.root].kind == MN_TEXT || tb.n[tb.root].kind == MN_TEXT) {
        /* word answers ("Yes", \text{(C)}): compare letters, case-insensitively */
        char kg[MATH_MAX_INPUT + 1], kp[MATH_MAX_INPUT + 1];
        letters_key(gold, gold_len, kg);
        letters_key(pred, pred_len, kp);
        if (kg[0] && !strcmp(kg, kp)) { snprintf(why, why_size, "equal (text)"); return 1; }
    }
    Cmp c = {.ta = &ta, .tb = &tb, .o = o, .budget = WORK_BUDGET};
    int eq = node_eq(&c, ta.root, 0, tb.root, 0, 0);
    if (c.budget < 0) snprintf(why, why_size, "too costly to compare");
    else if (eq) snprintf(why, why_size, c.used_numeric ? "equal (numeric)" : "equal");
    else snprintf(why, why_size, "not equal");
    return c.budget < 0 ? 0 : eq;
}
