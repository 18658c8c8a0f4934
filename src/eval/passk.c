/* pass@k and majority vote (see passk.h). */
#include "eval/passk.h"

#include <stdlib.h>

double passk_unbiased(int n, int c, int k) {
    if (k <= 0 || n <= 0) return 0;
    if (n - c < k) return 1.0;
    /* prod_{i = n-c+1}^{n} (1 - k / i): no large binomials */
    double p = 1.0;
    for (int i = n - c + 1; i <= n; i++) p *= 1.0 - (double)k / i;
    return 1.0 - p;
}

int majority_vote(int n, const char *const *answers, const size_t *lens,
                  int (*equiv)(void *ctx, const char *a, size_t alen, const char *b, size_t blen), void *ctx,
                  int *votes) {
    int *rep = malloc((n ? n : 1) * sizeof(int)), *count = calloc(n ? n : 1, sizeof(int));
    int n_cls = 0;
    for (int i = 0; i < n; i++) {
        if (!answers[i]) continue;
        int found = -1;
        for (int c = 0; c < n_cls && found < 0; c++)
            if (equiv(ctx, answers[rep[c]], lens[rep[c]], answers[i], lens[i])) found = c;
        if (found < 0) {
            rep[n_cls] = i;
            found = n_cls++;
        }
        count[found]++;
    }
    int best = -1;
    for (int c = 0; c < n_cls; c++) /* classes are in order of first member: strict > keeps the earliest */
        if (best < 0 || count[c] > count[best]) best = c;
    int r = best < 0 ? -1 : rep[best];
    if (votes) *votes = best < 0 ? 0 : count[best];
    free(rep);
    free(count);
    return r;
}
