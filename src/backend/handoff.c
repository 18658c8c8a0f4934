/* bf16 hand-off bookkeeping (see handoff.h). */
#include "backend/handoff.h"

#include <string.h>

static int overlaps(const void *a, size_t abytes, const void *b, size_t bbytes) {
    const char *a0 = (const char *)a, *b0 = (const char *)b;
    return a0 < b0 + bbytes && b0 < a0 + abytes;
}

void handoff_set(HandOffs *h, int slot, const float *p, size_t n, unsigned long long seq) {
    h->slot[slot].p = p;
    h->slot[slot].n = n;
    h->slot[slot].seq = seq;
}

int handoff_find(const HandOffs *h, const float *p, size_t n, unsigned long long seq) {
    for (int i = 0; i < HANDOFF_SLOTS; i++)
        if (h->slot[i].p && h->slot[i].p == p && h->slot[i].n == n && h->slot[i].seq == seq) return i;
    return -1;
}

unsigned handoff_valid(const HandOffs *h, unsigned long long seq) {
    unsigned m = 0;
    for (int i = 0; i < HANDOFF_SLOTS; i++)
        if (h->slot[i].p && h->slot[i].seq == seq) m |= 1u << i;
    return m;
}

void handoff_carry(HandOffs *h, unsigned mask, const void *c, size_t cbytes, unsigned long long seq_now) {
    for (int i = 0; i < HANDOFF_SLOTS; i++)
        if ((mask >> i & 1) && h->slot[i].p && !overlaps(c, cbytes, h->slot[i].p, h->slot[i].n * sizeof(float)))
            h->slot[i].seq = seq_now;
}

void handoff_written(HandOffs *h, const void *p, size_t bytes) {
    for (int i = 0; i < HANDOFF_UNWRITTEN_MAX; i++)
        if (h->unw[i].p && overlaps(h->unw[i].p, h->unw[i].n * sizeof(float), p, bytes)) h->unw[i].p = NULL;
}

void handoff_unwritten(HandOffs *h, const float *p, size_t n) {
    handoff_written(h, p, n * sizeof(float)); /* one entry per range */
    int e = 0; /* a free entry, else the oldest mark's */
    for (int i = 0; i < HANDOFF_UNWRITTEN_MAX; i++) {
        if (!h->unw[i].p) {
            e = i;
            break;
        }
        if (h->unw[i].age < h->unw[e].age) e = i;
    }
    h->unw[e].p = p;
    h->unw[e].n = n;
    h->unw[e].age = h->unw_count++;
}

void handoff_forget_unwritten(HandOffs *h) {
    memset(h->unw, 0, sizeof h->unw);
    h->unw_count = 0;
}

int handoff_is_unwritten(const HandOffs *h, const float *p, size_t n) {
    for (int i = 0; i < HANDOFF_UNWRITTEN_MAX; i++)
        if (h->unw[i].p && overlaps(h->unw[i].p, h->unw[i].n * sizeof(float), p, n * sizeof(float))) return 1;
    return 0;
}
