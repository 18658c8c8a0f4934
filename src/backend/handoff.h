/* Bookkeeping of the bf16 copies an op hands to the GEMMs that read its
 * output (the CUDA backend's hand-off, src/backend/cuda/cuda_bf16.cu),
 * kept apart from any device code so that CI tests it without a GPU.
 *
 * A slot names the fp32 range [p, p + n) whose values a buffer holds in
 * bf16, and the launch counter (seq) at which that was true. The backend
 * counts launches and writes; a slot is valid while the counter has not
 * moved, except where handoff_carry moves it on past a GEMM that did not
 * write over the range.
 *
 * Unwritten ranges: an op that wrote an output's bf16 copy only (the
 * table's GEMM-only forms, backend.h) marks the fp32 range unwritten; a
 * consumer that finds no valid copy of such a range must not read it.
 * A write through the table over it (handoff_written) clears the mark;
 * the newest HANDOFF_UNWRITTEN_MAX marks are kept (a new mark takes a
 * cleared entry first, then the oldest mark's). */
#ifndef R1C_BACKEND_HANDOFF_H
#define R1C_BACKEND_HANDOFF_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HANDOFF_SLOTS 2
#define HANDOFF_UNWRITTEN_MAX 128

typedef struct HandOffs {
    struct {
        const float *p; /* NULL: empty */
        size_t n;
        unsigned long long seq;
    } slot[HANDOFF_SLOTS];
    struct {
        const float *p; /* NULL: free entry */
        size_t n;
        unsigned long long age; /* order of marking */
    } unw[HANDOFF_UNWRITTEN_MAX];
    unsigned long long unw_count;
} HandOffs;

/* slot now holds [p, p + n) as of launch counter seq; p NULL empties it */
void handoff_set(HandOffs *h, int slot, const float *p, size_t n, unsigned long long seq);
/* the slot holding exactly [p, p + n), valid at seq, or -1 */
int handoff_find(const HandOffs *h, const float *p, size_t n, unsigned long long seq);
/* bit i: slot i is valid at seq (taken before a GEMM launches anything) */
unsigned handoff_valid(const HandOffs *h, unsigned long long seq);
/* after a GEMM that wrote [c, c + cbytes): the slots in mask whose range
 * it did not touch become valid at seq_now */
void handoff_carry(HandOffs *h, unsigned mask, const void *c, size_t cbytes, unsigned long long seq_now);

void handoff_unwritten(HandOffs *h, const float *p, size_t n);
void handoff_written(HandOffs *h, const void *p, size_t bytes);
void handoff_forget_unwritten(HandOffs *h);
/* does [p, p + n) overlap a range marked unwritten? */
int handoff_is_unwritten(const HandOffs *h, const float *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif
