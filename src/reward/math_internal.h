/* Private to the math verifier: the expression tree that math_parse.c
 * builds and math_equiv.c compares. Fixed-size arrays keep every call
 * bounded; the caps are deliberately far above real answers. */
#ifndef R1C_REWARD_MATH_INTERNAL_H
#define R1C_REWARD_MATH_INTERNAL_H

#include <stdint.h>

#define MATH_MAX_INPUT 1024 /* answer bytes; longer answers are unparsable */
#define MATH_MAX_TOKENS 512
#define MATH_MAX_NODES 512
#define MATH_MAX_DEPTH 48   /* parser nesting */
#define MATH_MAX_DIGITS 80  /* per number literal */
#define MATH_MAX_PM 3       /* \pm signs expanded per item */

typedef enum {
    MN_NUM, MN_SYM, MN_PI, MN_INF, MN_TEXT,
    MN_ADD, MN_SUB, MN_MUL, MN_DIV, MN_POW, MN_NEG, MN_PM,
    MN_SQRT, MN_FUNC, MN_FACT, MN_PERCENT, MN_BINOM,
    MN_LIST, MN_MATRIX, MN_REL,
} MathNodeKind;

/* Function ids for MN_FUNC. */
enum { MF_SIN, MF_COS, MF_TAN, MF_COT, MF_SEC, MF_CSC, MF_ASIN, MF_ACOS, MF_ATAN, MF_SINH, MF_COSH, MF_TANH,
       MF_LN, MF_LOG, MF_EXP, MF_ABS, MF_COUNT };

typedef struct MathNode {
    uint8_t kind;
    uint8_t op;        /* REL: first relation; DIV: 'f' when written \frac; FUNC: id; PM: index */
    uint8_t op2;       /* REL: second relation of a chain */
    char open, close;  /* LIST brackets: '(' '[' '{' or 0 (bare) / 'U' (union) */
    int16_t first;     /* first child, -1 none */
    int16_t next;      /* next sibling, -1 none */
    int16_t nkids;
    int16_t rows, cols;/* MATRIX */
    int16_t slen;
    const char *s;     /* NUM literal, SYM name, TEXT words (into the source) */
} MathNode;

typedef struct MathTree {
    MathNode n[MATH_MAX_NODES];
    int count;
    int root;
    int npm;           /* number of \pm nodes */
    int has_percent;
    int has_inf;
    int has_sym;
} MathTree;

/* Parses src[0..len) into t. Returns 0, or -1 when unparsable / over a cap. */
int math_parse(MathTree *t, const char *src, int len);

static inline int math_kid(const MathTree *t, int i, int k) {
    int c = t->n[i].first;
    while (k-- > 0 && c >= 0) c = t->n[c].next;
    return c;
}

#endif
