/* Math answer extraction and equivalence (the verifier behind the "math"
 * reward). Pure functions over bounded strings: no allocation that outlives
 * a call, bounded time per call (see the MATH_MAX_* caps). */
#ifndef R1C_REWARD_MATH_H
#define R1C_REWARD_MATH_H

#include <stddef.h>

/* Extraction anchors, tried in this order when enabled. */
enum {
    MATH_EXTRACT_BOXED = 1 << 0,     /* last \boxed{...} or \fbox{...} */
    MATH_EXTRACT_TAG = 1 << 1,       /* last <answer>...</answer> */
    MATH_EXTRACT_ANSWER_IS = 1 << 2, /* "the answer is X" / "answer: X" */
    MATH_EXTRACT_GSM8K = 1 << 3,     /* "#### N" */
    MATH_EXTRACT_WHOLE = 1 << 4,     /* whole text when short */
    MATH_EXTRACT_LAST_NUMBER = 1 << 5,
    MATH_EXTRACT_DEFAULT = 0x3f,
};

enum { MATH_PERCENT_BOTH = 0, MATH_PERCENT_FRACTION = 1, MATH_PERCENT_STRIP = 2 };

typedef struct MathOptions {
    double rel_tol;  /* relative tolerance; 0 = exact for rationals, 1e-9 for irrationals */
    int percent;     /* MATH_PERCENT_*: 50% equals 0.5 and/or 50 */
    int whole_max;   /* longest text taken whole as the answer (bytes) */
} MathOptions;

void math_options_default(MathOptions *o);

/* Finds the answer in text[0..len). Returns 1 and sets *ans / *ans_len
 * (pointing into text) and *how (static name of the anchor), or 0. */
int math_extract(const char *text, size_t len, unsigned anchors, int whole_max, const char **ans, size_t *ans_len,
                 const char **how);

/* 1 when pred is mathematically equivalent to gold, else 0. `why` gets a
 * short reason (e.g. "equal (exact)", "unequal: 3/2 vs 2", "unparsable"). */
int math_equiv(const char *gold, size_t gold_len, const char *pred, size_t pred_len, const MathOptions *o, char *why,
               size_t why_size);

#endif
