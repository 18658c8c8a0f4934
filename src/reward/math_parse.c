/* LaTeX-ish answer -> expression tree. A lexer folds notation variants
 * (\dfrac/\tfrac, \left/\right, spacing, $, degree signs, Unicode symbols)
 * into a few token kinds; a recursive-descent parser with a depth cap
 * builds the tree. Everything is bounded by the caps in math_internal.h. */
#include <ctype.h>
#include <string.h>

#include "reward/math_internal.h"

enum {
    T_END, T_NUM, T_WORD, T_TEXT, T_CH, T_FRAC, T_SQRT, T_PI, T_INF, T_PM, T_REL, T_CUP, T_DEG,
    T_FUNC, T_BINOM, T_BEGIN, T_ENDENV, T_SYM
};

typedef struct Tok {
    uint8_t type;
    char ch;   /* T_CH char; T_REL op; T_FUNC id */
    int16_t len;
    const char *s;
} Tok;

typedef struct Lexer {
    const char *src;
    int len;
    Tok *tok;
    int ntok;
    int thousands; /* "1,234,567" commas are digit-group separators */
    /* LaTeX takes one character as an unbraced argument (\frac12, x^23):
     * a small stack of pending single-character arguments per brace depth */
    int pend[8], pend_depth[8], npend;
    int depth;
} Lexer;

static int lx_push(Lexer *lx, int type, char ch, const char *s, int len) {
    if (lx->ntok >= MATH_MAX_TOKENS - 1) return -1;
    Tok *t = &lx->tok[lx->ntok++];
    t->type = (uint8_t)type;
    t->ch = ch;
    t->s = s;
    t->len = (int16_t)len;
    return 0;
}

static int single_pending(const Lexer *lx) {
    return lx->npend > 0 && lx->pend[lx->npend - 1] > 0 && lx->pend_depth[lx->npend - 1] == lx->depth;
}

/* Called after each complete argument-sized token at the current depth. */
static void arg_done(Lexer *lx) {
    if (lx->npend > 0 && lx->pend_depth[lx->npend - 1] == lx->depth) {
        if (--lx->pend[lx->npend - 1] <= 0) lx->npend--;
    }
}

static void want_args(Lexer *lx, int n) {
    if (lx->npend < 8) {
        lx->pend[lx->npend] = n;
        lx->pend_depth[lx->npend] = lx->depth;
        lx->npend++;
    }
}

typedef struct CmdMap {
    const char *name;
    uint8_t type;
    char ch;
} CmdMap;

static const CmdMap CMDS[] = {
    {"frac", T_FRAC, 0}, {"dfrac", T_FRAC, 0}, {"tfrac", T_FRAC, 0}, {"cfrac", T_FRAC, 0},
    {"sqrt", T_SQRT, 0}, {"pi", T_PI, 0}, {"infty", T_INF, 0}, {"infinity", T_INF, 0},
    {"cdot", T_CH, '*'}, {"times", T_CH, '*'}, {"ast", T_CH, '*'}, {"div", T_CH, '/'},
    {"pm", T_PM, 0}, {"mp", T_PM, 0},
    {"le", T_REL, 'l'}, {"leq", T_REL, 'l'}, {"leqslant", T_REL, 'l'}, {"ge", T_REL, 'g'}, {"geq", T_REL, 'g'},
    {"geqslant", T_REL, 'g'}, {"lt", T_REL, '<'}, {"gt", T_REL, '>'}, {"ne", T_REL, 'n'}, {"neq", T_REL, 'n'},
    {"in", T_REL, 'i'}, {"cup", T_CUP, 0}, {"circ", T_DEG, 0}, {"degree", T_DEG, 0}, {"degrees", T_DEG, 0},
    {"binom", T_BINOM, 0}, {"dbinom", T_BINOM, 0}, {"tbinom", T_BINOM, 0},
    {"sin", T_FUNC, MF_SIN}, {"cos", T_FUNC, MF_COS}, {"tan", T_FUNC, MF_TAN}, {"cot", T_FUNC, MF_COT},
    {"sec", T_FUNC, MF_SEC}, {"csc", T_FUNC, MF_CSC}, {"arcsin", T_FUNC, MF_ASIN}, {"arccos", T_FUNC, MF_ACOS},
    {"arctan", T_FUNC, MF_ATAN}, {"sinh", T_FUNC, MF_SINH}, {"cosh", T_FUNC, MF_COSH}, {"tanh", T_FUNC, MF_TANH},
    {"ln", T_FUNC, MF_LN}, {"log", T_FUNC, MF_LOG}, {"exp", T_FUNC, MF_EXP},
    {"lbrace", T_CH, 'S'}, {"rbrace", T_CH, 's'}, {"lvert", T_CH, '|'}, {"rvert", T_CH, '|'}, {"vert", T_CH, '|'},
    {"mid", T_CH, '|'}, {"land", T_CH, ','}, {"lor", T_CH, ','}, {"wedge", T_CH, ','}, {"vee", T_CH, ','},
    {"colon", T_CH, ':'},
};

/* Commands that only change typesetting. */
static const char *SKIP_CMDS[] = {
    "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
    "displaystyle", "textstyle", "scriptstyle", "quad", "qquad", "limits", "nolimits", "hspace", "dots",
    "ldots", "cdots", "mathbf", "mathit", "boldsymbol", "bm", "mathbb", "mathcal", "mathsf", "textup",
    "emph", "operatorname", "tiny", "small", "large", "Large", "huge", "rm", "bf", "it", "ensuremath", "phantom",
};

static int lex_range(Lexer *lx, int a, int b, int in_text, int depth);

static int is_word_char(int c) { return isalpha(c); }

/* Index of the brace matching src[i] == '{' within [i, b), or -1. */
static int match_brace(const char *s, int i, int b) {
    int d = 0;
    for (int j = i; j < b; j++) {
        if (s[j] == '\\' && j + 1 < b) { j++; continue; }
        if (s[j] == '{') d++;
        else if (s[j] == '}' && --d == 0) return j;
    }
    return -1;
}

static int lex_number(Lexer *lx, int i, int b) {
    const char *s = lx->src;
    int start = i;
    if (single_pending(lx)) {
        arg_done(lx);
        return lx_push(lx, T_NUM, 0, s + i, 1) < 0 ? -1 : i + 1;
    }
    int digits = 0, seen_dot = 0;
    while (i < b) {
        if (isdigit((unsigned char)s[i])) { digits++; i++; continue; }
        if (s[i] == '.' && !seen_dot && i + 1 < b && isdigit((unsigned char)s[i + 1])) { seen_dot = 1; i++; continue; }
        /* "1,234": only when the whole answer looks like one grouped number */
        if (s[i] == ',' && lx->thousands && !seen_dot && i + 3 < b && isdigit((unsigned char)s[i + 1]) && isdigit((unsigned char)s[i + 2]) &&
            isdigit((unsigned char)s[i + 3]) && (i + 4 >= b || !isdigit((unsigned char)s[i + 4]))) {
            i++;
            continue;
        }
        /* "1{,}234" is LaTeX's explicit digit-group comma */
        if (s[i] == '{' && i + 3 < b && s[i + 1] == ',' && s[i + 2] == '}' && isdigit((unsigned char)s[i + 3])) {
            i += 3;
            continue;
        }
        break;
    }
    /* scientific notation: 1.5e-3, 2E10 (not "2e" alone: that is 2 times e) */
    if (i < b && (s[i] == 'e' || s[i] == 'E')) {
        int j = i + 1;
        if (j < b && (s[j] == '-' || s[j] == '+')) j++;
        if (j < b && isdigit((unsigned char)s[j])) {
            while (j < b && isdigit((unsigned char)s[j])) j++;
            if (j >= b || !isalpha((unsigned char)s[j])) i = j;
        }
    }
    if (digits > MATH_MAX_DIGITS) return -1;
    if (lx_push(lx, T_NUM, 0, s + start, i - start) < 0) return -1;
    return i;
}

static int lex_range(Lexer *lx, int a, int b, int in_text, int depth) {
    const char *s = lx->src;
    if (depth > 6) return -1;
    int i = a;
    while (i < b) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '$' || c == '~') { i++; continue; }
        if (isdigit(c) || (c == '.' && i + 1 < b && isdigit((unsigned char)s[i + 1]))) {
            if ((i = lex_number(lx, i, b)) < 0) return -1;
            continue;
        }
        if (is_word_char(c)) {
            int j = i;
            if (single_pending(lx)) { j = i + 1; arg_done(lx); }
            else while (j < b && is_word_char((unsigned char)s[j])) j++;
            if (lx_push(lx, in_text ? T_TEXT : T_WORD, 0, s + i, j - i) < 0) return -1;
            i = j;
            continue;
        }
        if (c == '\\') {
            if (i + 1 >= b) { i++; continue; }
            unsigned char d = (unsigned char)s[i + 1];
            if (!isalpha(d)) {
                i += 2;
                switch (d) {
                case '{': if (lx_push(lx, T_CH, 'S', s + i - 2, 2) < 0) return -1; break;
                case '}': if (lx_push(lx, T_CH, 's', s + i - 2, 2) < 0) return -1; arg_done(lx); break;
                case '%': if (lx_push(lx, T_CH, '%', s + i - 2, 2) < 0) return -1; break;
                case '\\': if (lx_push(lx, T_CH, 'R', s + i - 2, 2) < 0) return -1; break;
                case '|': if (lx_push(lx, T_CH, '|', s + i - 2, 2) < 0) return -1; break;
                default: break; /* \, \; \! \: \  \$ \( \) \[ \] : spacing or delimiters */
                }
                continue;
            }
            int j = i + 1;
            while (j < b && isalpha((unsigned char)s[j])) j++;
            const char *name = s + i + 1;
            int nl = j - i - 1;
            i = j;
#define IS(lit) (nl == (int)sizeof(lit) - 1 && !memcmp(name, lit, sizeof(lit) - 1))
            if (IS("text") || IS("textbf") || IS("textit") || IS("textrm") || IS("mbox") || IS("mathrm") ||
                IS("textnormal") || IS("mathrm")) {
                while (i < b && s[i] == ' ') i++;
                if (i < b && s[i] == '{') {
                    int e = match_brace(s, i, b);
                    if (e < 0) return -1;
                    if (lex_range(lx, i + 1, e, 1, depth + 1) < 0) return -1;
                    arg_done(lx);
                    i = e + 1;
                }
                continue;
            }
            if (IS("begin") || IS("end")) {
                int is_begin = IS("begin");
                if (i < b && s[i] == '{') {
                    int e = match_brace(s, i, b);
                    if (e < 0) return -1;
                    const char *env = s + i + 1;
                    int el = e - i - 1;
                    i = e + 1;
                    int matrix = el >= 6 && !memcmp(env + el - 6, "matrix", 6);
                    if (matrix) {
                        if (lx_push(lx, is_begin ? T_BEGIN : T_ENDENV, 0, env, el) < 0) return -1;
                    } else if (is_begin && el == 5 && !memcmp(env, "array", 5) && i < b && s[i] == '{') {
                        /* \begin{array}{cc}: drop the column spec, treat as a matrix */
                        int e2 = match_brace(s, i, b);
                        if (e2 < 0) return -1;
                        i = e2 + 1;
                        if (lx_push(lx, T_BEGIN, 0, env, el) < 0) return -1;
                    } else if (!is_begin && el == 5 && !memcmp(env, "array", 5)) {
                        if (lx_push(lx, T_ENDENV, 0, env, el) < 0) return -1;
                    }
                }
                continue;
            }
            int found = 0;
            for (size_t k = 0; k < sizeof SKIP_CMDS / sizeof *SKIP_CMDS; k++) {
                if ((int)strlen(SKIP_CMDS[k]) == nl && !memcmp(SKIP_CMDS[k], name, nl)) { found = 1; break; }
            }
            if (found) {
                /* \left. and \right. are invisible delimiters */
                if (i < b && s[i] == '.' && (IS("left") || IS("right"))) i++;
                continue;
            }
            for (size_t k = 0; k < sizeof CMDS / sizeof *CMDS; k++) {
                if ((int)strlen(CMDS[k].name) == nl && !memcmp(CMDS[k].name, name, nl)) {
                    if (lx_push(lx, CMDS[k].type, CMDS[k].ch, name - 1, nl + 1) < 0) return -1;
                    found = 1;
                    if (CMDS[k].type == T_FRAC || CMDS[k].type == T_BINOM) want_args(lx, 2);
                    else if (CMDS[k].type == T_SQRT) want_args(lx, 1);
                    else arg_done(lx);
                    break;
                }
            }
            if (!found) {
                /* \alpha, \theta, ...: a named symbol */
                if (lx_push(lx, T_SYM, 0, name - 1, nl + 1) < 0) return -1;
                arg_done(lx);
            }
            continue;
#undef IS
        }
        /* a few Unicode symbols that models emit */
        if (c >= 0x80) {
            int n = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : (c >= 0xc0) ? 2 : 1;
            if (i + n > b) n = b - i;
            const char *u = s + i;
            int r = 0;
            if (n == 2 && !memcmp(u, "\xc2\xb0", 2)) r = lx_push(lx, T_DEG, 0, u, n);
            else if (n == 2 && !memcmp(u, "\xcf\x80", 2)) r = lx_push(lx, T_PI, 0, u, n);
            else if (n == 2 && !memcmp(u, "\xc2\xb1", 2)) r = lx_push(lx, T_PM, 0, u, n);
            else if (n == 2 && !memcmp(u, "\xc3\x97", 2)) r = lx_push(lx, T_CH, '*', u, n);
            else if (n == 2 && !memcmp(u, "\xc3\xb7", 2)) r = lx_push(lx, T_CH, '/', u, n);
            else if (n == 3 && !memcmp(u, "\xe2\x88\x9a", 3)) { r = lx_push(lx, T_SQRT, 0, u, n); want_args(lx, 1); }
            else if (n == 3 && !memcmp(u, "\xe2\x88\x9e", 3)) r = lx_push(lx, T_INF, 0, u, n);
            else if (n == 3 && !memcmp(u, "\xe2\x88\x92", 3)) r = lx_push(lx, T_CH, '-', u, n);
            else if (n == 3 && !memcmp(u, "\xe2\x89\xa4", 3)) r = lx_push(lx, T_REL, 'l', u, n);
            else if (n == 3 && !memcmp(u, "\xe2\x89\xa5", 3)) r = lx_push(lx, T_REL, 'g', u, n);
            else if (n == 3 && !memcmp(u, "\xe2\x89\xa0", 3)) r = lx_push(lx, T_REL, 'n', u, n);
            else if (n == 3 && !memcmp(u, "\xe2\x88\xaa", 3)) r = lx_push(lx, T_CUP, 0, u, n);
            else if (n == 3 && !memcmp(u, "\xe2\x8b\x85", 3)) r = lx_push(lx, T_CH, '*', u, n);
            else r = lx_push(lx, T_TEXT, 0, u, n);
            if (r < 0) return -1;
            i += n;
            continue;
        }
        /* ASCII punctuation */
        if (c == '^' && i + 1 < b) {
            /* ^\circ and ^{\circ} are degrees */
            if (i + 6 <= b && !memcmp(s + i + 1, "\\circ", 5)) {
                if (lx_push(lx, T_DEG, 0, s + i, 6) < 0) return -1;
                i += 6;
                continue;
            }
            if (i + 8 <= b && !memcmp(s + i + 1, "{\\circ}", 7)) {
                if (lx_push(lx, T_DEG, 0, s + i, 8) < 0) return -1;
                i += 8;
                continue;
            }
        }
        if (c == '<' || c == '>') {
            char op = (char)c;
            int n = 1;
            if (i + 1 < b && s[i + 1] == '=') { op = c == '<' ? 'l' : 'g'; n = 2; }
            if (lx_push(lx, T_REL, op, s + i, n) < 0) return -1;
            i += n;
            continue;
        }
        if (c == '=') {
            if (lx_push(lx, T_REL, '=', s + i, 1) < 0) return -1;
            i++;
            continue;
        }
        if (c == '!' && i + 1 < b && s[i + 1] == '=') {
            if (lx_push(lx, T_REL, 'n', s + i, 2) < 0) return -1;
            i += 2;
            continue;
        }
        if (c == '*' && i + 1 < b && s[i + 1] == '*') { /* Python power */
            if (lx_push(lx, T_CH, '^', s + i, 2) < 0) return -1;
            i += 2;
            want_args(lx, 1);
            continue;
        }
        /* a full stop that ends the sentence is not part of the answer */
        if (c == '.') { i++; continue; }
        if (lx_push(lx, T_CH, (char)c, s + i, 1) < 0) return -1;
        if (c == '{') lx->depth++;
        else if (c == '}') { lx->depth--; arg_done(lx); }
        else if (c == '^' || c == '_') want_args(lx, 1);
        else if (c == ')' || c == ']') arg_done(lx);
        i++;
    }
    return 0;
}

/* "1,234,567" (optionally signed / with decimals / $) and nothing else:
 * the only shape in which a comma is a digit-group separator. */
static int looks_grouped(const char *s, int len) {
    int i = 0, saw_comma = 0;
    while (i < len && (s[i] == ' ' || s[i] == '$' || s[i] == '-' || s[i] == '\\')) i++;
    int d = 0;
    while (i < len && isdigit((unsigned char)s[i])) { i++; d++; }
    if (d < 1 || d > 3) return 0;
    while (i < len && s[i] == ',') {
        if (i + 3 >= len || !isdigit((unsigned char)s[i + 1]) || !isdigit((unsigned char)s[i + 2]) ||
            !isdigit((unsigned char)s[i + 3]))
            return 0;
        i += 4;
        saw_comma = 1;
        if (i < len && isdigit((unsigned char)s[i])) return 0;
    }
    if (!saw_comma) return 0;
    /* the rest may be decimals, a unit or punctuation, but no other comma */
    for (; i < len; i++)
        if (s[i] == ',') return 0;
    return 1;
}

/* ---------------------------------------------------------------- parser */

typedef struct Parser {
    MathTree *t;
    Tok *tok;
    int pos, ntok;
    int depth;
} Parser;

static const Tok *peek(Parser *p) { return &p->tok[p->pos]; }
static int is_ch(const Tok *t, char c) { return t->type == T_CH && t->ch == c; }

static int node_new(Parser *p, int kind) {
    MathTree *t = p->t;
    if (t->count >= MATH_MAX_NODES) return -1;
    int i = t->count++;
    MathNode *n = &t->n[i];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->first = n->next = -1;
    return i;
}

static void add_kid(Parser *p, int parent, int kid) {
    MathTree *t = p->t;
    MathNode *n = &t->n[parent];
    if (n->first < 0) n->first = (int16_t)kid;
    else {
        int c = n->first;
        while (t->n[c].next >= 0) c = t->n[c].next;
        t->n[c].next = (int16_t)kid;
    }
    n->nkids++;
}

static int node2(Parser *p, int kind, int a, int b) {
    if (a < 0 || b < 0) return -1;
    int n = node_new(p, kind);
    if (n < 0) return -1;
    add_kid(p, n, a);
    add_kid(p, n, b);
    return n;
}

static int node1(Parser *p, int kind, int a) {
    if (a < 0) return -1;
    int n = node_new(p, kind);
    if (n < 0) return -1;
    add_kid(p, n, a);
    return n;
}

static int parse_list(Parser *p, char close1, char close2, int *nitems, int *items, int max_items);
static int parse_rel(Parser *p);
static int parse_sum(Parser *p);
static int parse_unary(Parser *p);
static int parse_power(Parser *p);

static const char *UNITS[] = {
    "cm", "mm", "km", "in", "ft", "yd", "mi", "inch", "inches", "feet", "foot", "meter", "meters", "metre",
    "metres", "unit", "units", "degree", "degrees", "dollar", "dollars", "cent", "cents", "sq", "square",
    "cubic", "mph", "kph", "hour", "hours", "hr", "hrs", "minute", "minutes", "min", "mins", "second",
    "seconds", "sec", "secs", "day", "days", "week", "weeks", "month", "months", "year", "years", "pound",
    "pounds", "lb", "lbs", "kg", "grams", "gram", "liter", "liters", "litre", "ml", "gallon", "gallons",
    "mile", "miles", "yard", "yards", "point", "points", "people", "students", "percent", "cups", "cup",
    "ounces", "oz", "pages", "apples", "times", "ways", "rad", "radians", "sqft", "mg", "cc",
};

static int is_unit_word(const char *s, int n) {
    for (size_t k = 0; k < sizeof UNITS / sizeof *UNITS; k++)
        if ((int)strlen(UNITS[k]) == n && !strncmp(UNITS[k], s, n)) return 1;
    return 0;
}

static int func_word(const char *s, int n) {
    static const struct { const char *w; int id; } F[] = {
        {"sin", MF_SIN}, {"cos", MF_COS}, {"tan", MF_TAN}, {"cot", MF_COT}, {"sec", MF_SEC}, {"csc", MF_CSC},
        {"arcsin", MF_ASIN}, {"arccos", MF_ACOS}, {"arctan", MF_ATAN}, {"ln", MF_LN}, {"log", MF_LOG},
        {"exp", MF_EXP}, {"sqrt", -2}, {"abs", MF_ABS}, {"pi", -3}, {"inf", -4}, {"oo", -4},
    };
    for (size_t k = 0; k < sizeof F / sizeof *F; k++)
        if ((int)strlen(F[k].w) == n && !strncmp(F[k].w, s, n)) return F[k].id;
    return -1;
}

static int is_conj(const Tok *t) {
    return (t->type == T_TEXT || t->type == T_WORD) &&
           ((t->len == 3 && !strncmp(t->s, "and", 3)) || (t->len == 2 && !strncmp(t->s, "or", 2)));
}

/* Drops a unit (and its ^2 / ^3) that follows a quantity. */
static int skip_unit(Parser *p) {
    const Tok *t = peek(p);
    int unit = 0;
    if (is_conj(t)) return 0;
    if (t->type == T_TEXT) unit = 1;
    else if (t->type == T_WORD && t->len >= 2 && func_word(t->s, t->len) < 0 &&
             (is_unit_word(t->s, t->len) || t->len >= 4))
        unit = 1;
    if (!unit) return 0;
    while ((peek(p)->type == T_TEXT || (peek(p)->type == T_WORD && peek(p)->len >= 2)) && !is_conj(peek(p))) p->pos++;
    if (is_ch(peek(p), '^') && p->pos + 1 < p->ntok && p->tok[p->pos + 1].type == T_NUM) p->pos += 2;
    return 1;
}

static int parse_group(Parser *p) {
    /* '{' already consumed: a brace group is one expression, or a set-like
     * list when it holds commas */
    int items[64], n = 0;
    if (parse_list(p, '}', '}', &n, items, 64) < 0) return -1;
    if (!is_ch(peek(p), '}')) return -1;
    p->pos++;
    if (n == 1) return items[0];
    if (n == 0) return -1;
    int l = node_new(p, MN_LIST);
    if (l < 0) return -1;
    p->t->n[l].open = '{';
    p->t->n[l].close = '}';
    for (int k = 0; k < n; k++) add_kid(p, l, items[k]);
    return l;
}

/* A LaTeX argument: {group} or one token. */
static int parse_arg(Parser *p) {
    if (is_ch(peek(p), '{')) {
        p->pos++;
        return parse_group(p);
    }
    if (is_ch(peek(p), '-')) {
        p->pos++;
        return node1(p, MN_NEG, parse_arg(p));
    }
    return parse_power(p);
}

static int parse_word(Parser *p, const Tok *t) {
    int f = func_word(t->s, t->len);
    if (t->len == 1) {
        int n = node_new(p, MN_SYM);
        if (n < 0) return -1;
        p->t->n[n].s = t->s;
        p->t->n[n].slen = 1;
        p->t->has_sym = 1;
        /* x_1, x_{12}: the subscript is part of the name */
        if (is_ch(peek(p), '_')) {
            const char *end = peek(p)->s + 1;
            p->pos++;
            if (is_ch(peek(p), '{')) {
                int d = 0;
                while (peek(p)->type != T_END) {
                    const Tok *q = peek(p);
                    if (is_ch(q, '{')) d++;
                    else if (is_ch(q, '}') && --d == 0) { end = q->s + 1; p->pos++; break; }
                    p->pos++;
                }
            } else if (peek(p)->type != T_END) {
                end = peek(p)->s + peek(p)->len;
                p->pos++;
            }
            if (end - t->s > 32000) return -1;
            p->t->n[n].slen = (int16_t)(end - t->s);
        }
        return n;
    }
    if (f == -3) return node_new(p, MN_PI);
    if (f == -4) { p->t->has_inf = 1; return node_new(p, MN_INF); }
    if (t->len <= 3 && !is_unit_word(t->s, t->len) && f < 0 && f != -2) {
        /* "xy" is x*y */
        int acc = -1;
        for (int k = 0; k < t->len; k++) {
            int n = node_new(p, MN_SYM);
            if (n < 0) return -1;
            p->t->n[n].s = t->s + k;
            p->t->n[n].slen = 1;
            if (k == t->len - 1 && is_ch(peek(p), '^')) {
                p->pos++;
                int e;
                if (is_ch(peek(p), '{')) { p->pos++; e = parse_group(p); }
                else if (is_ch(peek(p), '-')) { p->pos++; e = node1(p, MN_NEG, parse_power(p)); }
                else e = parse_power(p);
                n = node2(p, MN_POW, n, e);
            }
            acc = acc < 0 ? n : node2(p, MN_MUL, acc, n);
            if (acc < 0) return -1;
        }
        p->t->has_sym = 1;
        return acc;
    }
    /* a word: text answer */
    int n = node_new(p, MN_TEXT);
    if (n < 0) return -1;
    p->t->n[n].s = t->s;
    p->t->n[n].slen = t->len;
    return n;
}

static int parse_func(Parser *p, int id) {
    int base = -1, power = -1;
    if (is_ch(peek(p), '_')) {
        p->pos++;
        base = parse_arg(p);
        if (base < 0) return -1;
    }
    if (is_ch(peek(p), '^')) {
        p->pos++;
        power = parse_arg(p);
        if (power < 0) return -1;
    }
    int arg = parse_power(p);
    if (arg < 0) return -1;
    int n = node1(p, MN_FUNC, arg);
    if (n < 0) return -1;
    p->t->n[n].op = (uint8_t)id;
    if (base >= 0) add_kid(p, n, base);
    if (power >= 0) n = node2(p, MN_POW, n, power);
    return n;
}

static int parse_primary(Parser *p) {
    if (++p->depth > MATH_MAX_DEPTH) return -1;
    int r = -1;
    Tok t = *peek(p);
    switch (t.type) {
    case T_NUM:
        p->pos++;
        r = node_new(p, MN_NUM);
        if (r >= 0) { p->t->n[r].s = t.s; p->t->n[r].slen = t.len; }
        break;
    case T_WORD: {
        p->pos++;
        int f = func_word(t.s, t.len);
        if (f >= 0) r = parse_func(p, f);
        else if (f == -2) r = node1(p, MN_SQRT, parse_arg(p));
        else r = parse_word(p, &t);
        break;
    }
    case T_SYM:
        p->pos++;
        r = node_new(p, MN_SYM);
        if (r >= 0) { p->t->n[r].s = t.s; p->t->n[r].slen = t.len; p->t->has_sym = 1; }
        break;
    case T_TEXT: {
        p->pos++;
        const char *end = t.s + t.len;
        while (peek(p)->type == T_TEXT) { end = peek(p)->s + peek(p)->len; p->pos++; }
        r = node_new(p, MN_TEXT);
        if (r >= 0) {
            if (end - t.s > 30000) return -1;
            p->t->n[r].s = t.s;
            p->t->n[r].slen = (int16_t)(end - t.s);
        }
        break;
    }
    case T_PI: p->pos++; r = node_new(p, MN_PI); break;
    case T_INF: p->pos++; p->t->has_inf = 1; r = node_new(p, MN_INF); break;
    case T_FRAC: {
        p->pos++;
        int a = parse_arg(p);
        int b = a < 0 ? -1 : parse_arg(p);
        r = node2(p, MN_DIV, a, b);
        if (r >= 0) p->t->n[r].op = 'f';
        break;
    }
    case T_BINOM: {
        p->pos++;
        int a = parse_arg(p);
        int b = a < 0 ? -1 : parse_arg(p);
        r = node2(p, MN_BINOM, a, b);
        break;
    }
    case T_SQRT: {
        p->pos++;
        int idx = -1;
        if (is_ch(peek(p), '[')) {
            p->pos++;
            idx = parse_sum(p);
            if (idx < 0 || !is_ch(peek(p), ']')) return -1;
            p->pos++;
        }
        int a = parse_arg(p);
        r = node1(p, MN_SQRT, a);
        if (r >= 0 && idx >= 0) add_kid(p, r, idx);
        break;
    }
    case T_FUNC: p->pos++; r = parse_func(p, t.ch); break;
    case T_BEGIN: {
        p->pos++;
        r = node_new(p, MN_MATRIX);
        if (r < 0) return -1;
        int rows = 0, cols = 0, c = 0;
        for (;;) {
            const Tok *q = peek(p);
            if (q->type == T_ENDENV) { p->pos++; break; }
            if (q->type == T_END) return -1;
            int e = parse_sum(p);
            if (e < 0) return -1;
            add_kid(p, r, e);
            c++;
            if (is_ch(peek(p), '&')) { p->pos++; continue; }
            if (is_ch(peek(p), 'R')) {
                p->pos++;
                if (rows == 0) cols = c;
                else if (c != cols) return -1;
                rows++;
                c = 0;
                if (peek(p)->type == T_ENDENV) { p->pos++; break; }
                continue;
            }
            if (peek(p)->type == T_ENDENV) { p->pos++; break; }
            return -1;
        }
        if (c > 0) {
            if (rows == 0) cols = c;
            else if (c != cols) return -1;
            rows++;
        }
        if (rows == 0) return -1;
        p->t->n[r].rows = (int16_t)rows;
        p->t->n[r].cols = (int16_t)cols;
        break;
    }
    case T_CH:
        if (t.ch == '(' || t.ch == '[') {
            p->pos++;
            int items[64], n = 0;
            if (parse_list(p, ')', ']', &n, items, 64) < 0) return -1;
            const Tok *q = peek(p);
            if (!is_ch(q, ')') && !is_ch(q, ']')) return -1;
            char close = q->ch;
            p->pos++;
            if (n == 1 && (t.ch == '(' || close == ']')) { r = items[0]; break; }
            if (n == 0) return -1;
            r = node_new(p, MN_LIST);
            if (r < 0) return -1;
            p->t->n[r].open = t.ch;
            p->t->n[r].close = close;
            for (int k = 0; k < n; k++) add_kid(p, r, items[k]);
        } else if (t.ch == '{') {
            p->pos++;
            r = parse_group(p);
        } else if (t.ch == 'S') {
            p->pos++;
            int items[64], n = 0;
            if (parse_list(p, 's', 's', &n, items, 64) < 0) return -1;
            if (!is_ch(peek(p), 's')) return -1;
            p->pos++;
            r = node_new(p, MN_LIST);
            if (r < 0) return -1;
            p->t->n[r].open = '{';
            p->t->n[r].close = '}';
            for (int k = 0; k < n; k++) add_kid(p, r, items[k]);
        } else if (t.ch == '|') {
            p->pos++;
            int a = parse_sum(p);
            if (a < 0 || !is_ch(peek(p), '|')) return -1;
            p->pos++;
            r = node1(p, MN_FUNC, a);
            if (r >= 0) p->t->n[r].op = MF_ABS;
        }
        break;
    default: break;
    }
    p->depth--;
    return r;
}

static int is_conj(const Tok *t);

static int starts_primary(const Tok *t) {
    if (is_conj(t)) return 0;
    switch (t->type) {
    case T_NUM: case T_WORD: case T_SYM: case T_PI: case T_INF: case T_FRAC: case T_SQRT: case T_FUNC:
    case T_BINOM: case T_BEGIN: return 1;
    case T_CH: return t->ch == '(' || t->ch == '{' || t->ch == 'S' || t->ch == '[';
    default: return 0;
    }
}

static int parse_postfix(Parser *p, int x) {
    for (;;) {
        const Tok *t = peek(p);
        if (is_ch(t, '!')) { p->pos++; x = node1(p, MN_FACT, x); }
        else if (is_ch(t, '%')) { p->pos++; x = node1(p, MN_PERCENT, x); p->t->has_percent = 1; }
        else if (t->type == T_DEG) p->pos++;
        else if (is_ch(t, '\'')) p->pos++; /* primes (minutes of arc, f') are ignored */
        else return x;
        if (x < 0) return -1;
    }
}

static int parse_power(Parser *p) {
    if (++p->depth > MATH_MAX_DEPTH) return -1;
    int x = parse_primary(p);
    if (x < 0) return -1;
    x = parse_postfix(p, x);
    if (x >= 0 && is_ch(peek(p), '^')) {
        p->pos++;
        int e;
        if (is_ch(peek(p), '{')) { p->pos++; e = parse_group(p); }
        else if (is_ch(peek(p), '-')) { p->pos++; e = node1(p, MN_NEG, parse_power(p)); }
        else e = parse_power(p);
        x = node2(p, MN_POW, x, e);
        if (x >= 0) x = parse_postfix(p, x);
    }
    /* a subscript after a number is a base (52_8): keep the digits, drop the base */
    if (x >= 0 && is_ch(peek(p), '_') && p->t->n[x].kind == MN_NUM) {
        p->pos++;
        if (parse_arg(p) < 0) return -1;
    }
    p->depth--;
    return x;
}

static int is_int_literal(const MathTree *t, int i) {
    if (i < 0 || t->n[i].kind != MN_NUM) return 0;
    for (int k = 0; k < t->n[i].slen; k++)
        if (!isdigit((unsigned char)t->n[i].s[k])) return 0;
    return 1;
}

static int parse_term(Parser *p) {
    if (++p->depth > MATH_MAX_DEPTH) return -1;
    int x = parse_unary(p);
    int first = 1;
    while (x >= 0) {
        const Tok *t = peek(p);
        if (is_ch(t, '*') || is_ch(t, '/')) {
            int kind = t->ch == '*' ? MN_MUL : MN_DIV;
            p->pos++;
            x = node2(p, kind, x, parse_unary(p));
        } else if (skip_unit(p)) {
            continue;
        } else if (starts_primary(t)) {
            int y = parse_power(p);
            /* 3\frac{1}{2} is the mixed number 7/2 */
            if (first && is_int_literal(p->t, x) && y >= 0 && p->t->n[y].kind == MN_DIV && p->t->n[y].op == 'f' &&
                is_int_literal(p->t, math_kid(p->t, y, 0)) && is_int_literal(p->t, math_kid(p->t, y, 1)))
                x = node2(p, MN_ADD, x, y);
            else x = node2(p, MN_MUL, x, y);
        } else break;
        first = 0;
    }
    p->depth--;
    return x;
}

static int parse_unary(Parser *p) {
    if (++p->depth > MATH_MAX_DEPTH) return -1;
    const Tok *t = peek(p);
    int r;
    if (is_ch(t, '-')) { p->pos++; r = node1(p, MN_NEG, parse_unary(p)); }
    else if (is_ch(t, '+')) { p->pos++; r = parse_unary(p); }
    else if (t->type == T_PM) {
        p->pos++;
        r = node1(p, MN_PM, parse_unary(p));
        if (r >= 0) {
            if (p->t->npm >= 8) return -1;
            p->t->n[r].op = (uint8_t)p->t->npm++;
        }
    } else r = parse_power(p);
    p->depth--;
    return r;
}

static int parse_sum(Parser *p) {
    if (++p->depth > MATH_MAX_DEPTH) return -1;
    int x = parse_term(p);
    while (x >= 0) {
        const Tok *t = peek(p);
        if (is_ch(t, '+')) { p->pos++; x = node2(p, MN_ADD, x, parse_term(p)); }
        else if (is_ch(t, '-')) { p->pos++; x = node2(p, MN_SUB, x, parse_term(p)); }
        else if (t->type == T_PM) {
            p->pos++;
            x = node2(p, MN_PM, x, parse_term(p));
            if (x >= 0) {
                if (p->t->npm >= 8) return -1;
                p->t->n[x].op = (uint8_t)p->t->npm++;
            }
        } else break;
    }
    p->depth--;
    return x;
}

static int parse_rel(Parser *p) {
    if (++p->depth > MATH_MAX_DEPTH) return -1;
    int x = parse_sum(p);
    if (x >= 0 && peek(p)->type == T_REL) {
        int r = node_new(p, MN_REL);
        if (r < 0) return -1;
        add_kid(p, r, x);
        int nops = 0;
        while (peek(p)->type == T_REL) {
            char op = peek(p)->ch;
            p->pos++;
            if (nops == 0) p->t->n[r].op = (uint8_t)op;
            else if (nops == 1) p->t->n[r].op2 = (uint8_t)op;
            else return -1;
            nops++;
            int y = parse_sum(p);
            if (y < 0) return -1;
            add_kid(p, r, y);
        }
        x = r;
    }
    p->depth--;
    return x;
}

static int is_sep(const Tok *t, int top) {
    if (is_ch(t, ',') || is_ch(t, ';')) return 1;
    if (top && t->type == T_CUP) return 2;
    if ((t->type == T_TEXT || t->type == T_WORD) &&
        ((t->len == 3 && !strncmp(t->s, "and", 3)) || (t->len == 2 && !strncmp(t->s, "or", 2))))
        return 1;
    return 0;
}

/* Items separated by commas (or \cup / "and" / "or") until one of the
 * closing characters or the end. */
static int parse_list(Parser *p, char close1, char close2, int *nitems, int *items, int max_items) {
    if (++p->depth > MATH_MAX_DEPTH) return -1;
    int n = 0;
    for (;;) {
        const Tok *t = peek(p);
        if (t->type == T_END || is_ch(t, close1) || is_ch(t, close2)) break;
        if (is_sep(t, 1)) { p->pos++; continue; } /* empty item: "1, , 2" or leading "and" */
        if (n >= max_items) return -1;
        int x = parse_rel(p);
        if (x < 0) return -1;
        items[n++] = x;
        t = peek(p);
        if (is_sep(t, 1)) { p->pos++; continue; }
        if (t->type == T_END || is_ch(t, close1) || is_ch(t, close2)) break;
        return -1; /* junk after an item */
    }
    *nitems = n;
    p->depth--;
    return 0;
}

int math_parse(MathTree *t, const char *src, int len) {
    Tok tok[MATH_MAX_TOKENS];
    if (len > MATH_MAX_INPUT) return -1;
    Lexer lx = {.src = src, .len = len, .tok = tok};
    lx.thousands = looks_grouped(src, len);
    if (lex_range(&lx, 0, len, 0, 0) < 0) return -1;
    tok[lx.ntok].type = T_END;
    tok[lx.ntok].s = src + len;
    tok[lx.ntok].len = 0;
    t->count = t->npm = t->has_percent = t->has_inf = t->has_sym = 0;
    Parser p = {.t = t, .tok = tok, .ntok = lx.ntok};
    /* union separators make a union; other separators a bare list */
    int union_seen = 0;
    for (int k = 0; k < lx.ntok; k++)
        if (tok[k].type == T_CUP) union_seen = 1;
    int items[64], n = 0;
    if (parse_list(&p, 0, 0, &n, items, 64) < 0) return -1;
    if (peek(&p)->type != T_END || n == 0) return -1;
    if (n == 1) t->root = items[0];
    else {
        int l = node_new(&p, MN_LIST);
        if (l < 0) return -1;
        t->n[l].open = union_seen ? 'U' : 0;
        for (int k = 0; k < n; k++) add_kid(&p, l, items[k]);
        t->root = l;
    }
    return 0;
}
