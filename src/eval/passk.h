/* The paper's evaluation statistics over k samples of one problem:
 * pass@1 averaged over the samples, pass@k by the unbiased estimator
 * (Chen et al. 2021), and cons@k, a majority vote over extracted answers
 * grouped by mathematical equivalence rather than by string. */
#ifndef R1C_EVAL_PASSK_H
#define R1C_EVAL_PASSK_H

#include <stddef.h>

/* 1 - C(n-c, k) / C(n, k): probability that at least one of k samples drawn
 * without replacement from n (c correct) is correct. k <= n. */
double passk_unbiased(int n, int c, int k);

/* Groups answers[0..n) (NULL = no answer) into classes of equivalent
 * answers with equiv(ctx, a, alen, b, blen) and returns the index of the
 * first member of the largest class; ties go to the class whose first
 * member came first. Writes the class sizes' maximum to *votes. Returns -1
 * when no sample has an answer. */
int majority_vote(int n, const char *const *answers, const size_t *lens,
                  int (*equiv)(void *ctx, const char *a, size_t alen, const char *b, size_t blen), void *ctx,
                  int *votes);

#endif
