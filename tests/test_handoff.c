/* The bf16 hand-off bookkeeping (backend/handoff.h) through the sequence
 * of ops the model's MLP backward issues on the GPU (model_train.c with
 * the GEMM-only SwiGLU forms), with the launch counter moved as the CUDA
 * backend moves it; then the unwritten-range marks. */
#include <string.h>

#include "backend/handoff.h"
#include "check.h"

static float g_mem[1 << 16]; /* stands for device memory: only addresses matter */

/* A GEMM as cuda_sgemm runs it: validity taken before it launches, its
 * own conversions and the GEMM itself move the counter, then the slots it
 * did not write over are carried and its output counts as written. */
static unsigned long long gemm(HandOffs *h, unsigned long long seq, int launches, const float *c, size_t cn) {
    unsigned m = handoff_valid(h, seq);
    seq += (unsigned long long)launches;
    handoff_carry(h, m, c, cn * sizeof(float), seq);
    handoff_written(h, c, cn * sizeof(float));
    return seq;
}

static void test_mlp_backward(void) {
    HandOffs h;
    memset(&h, 0, sizeof h);
    const size_t N = 16, C = 8, I = 24;
    float *dres = g_mem, *dh = dres + N * C, *dgu = dh + N * I, *hh = dgu + 2 * N * I, *dln = hh + N * I;
    float *gwgu = dln + N * C, *gwd = gwgu + 2 * I * C;
    unsigned long long seq = 100;
    /* rmsnorm_backward: the residual gradient handed over in slot 0 */
    seq++;
    handoff_set(&h, 0, dres, N * C, seq);
    CHECK(handoff_find(&h, dres, N * C, seq) == 0);
    CHECK(handoff_find(&h, dres, N * C - 1, seq) == -1); /* exactly the range */
    CHECK(handoff_find(&h, dres + 1, N * C, seq) == -1);
    /* the down projection's input gradient takes it (no conversion) */
    seq = gemm(&h, seq, 1, dh, N * I);
    /* swiglu_backward_gemm: one launch, dgu in slot 0 and h in slot 1 */
    seq++;
    handoff_set(&h, 0, dgu, 2 * N * I, seq);
    handoff_set(&h, 1, hh, N * I, seq);
    handoff_unwritten(&h, dgu, 2 * N * I);
    handoff_unwritten(&h, hh, N * I);
    /* gate/up input gradient: takes dgu from slot 0 */
    CHECK(handoff_find(&h, dgu, 2 * N * I, seq) == 0);
    seq = gemm(&h, seq, 2, dln, N * C); /* + the weight's refresh */
    /* gate/up weight gradient: its input ln2 is converted (a launch) */
    seq = gemm(&h, seq, 2, gwgu, 2 * I * C);
    /* the down projection's weight gradient still finds h in slot 1,
     * carried past the two GEMMs, and dres must be converted again */
    CHECK(handoff_find(&h, hh, N * I, seq) == 1);
    CHECK(handoff_find(&h, dres, N * C, seq) == -1);
    CHECK(handoff_is_unwritten(&h, hh, N * I) && handoff_is_unwritten(&h, dgu + 5, 1));
    CHECK(!handoff_is_unwritten(&h, dres, N * C) && !handoff_is_unwritten(&h, dln, N * C));
    seq = gemm(&h, seq, 2, gwd, I * C);
    /* any other launch voids both slots */
    seq++;
    CHECK(handoff_valid(&h, seq) == 0);
    CHECK(handoff_find(&h, hh, N * I, seq) == -1);
    /* but h stays marked: a GEMM reading it now would have to refuse */
    CHECK(handoff_is_unwritten(&h, hh + N * I - 1, 1));
}

static void test_carry_stops_at_overlap(void) {
    HandOffs h;
    memset(&h, 0, sizeof h);
    float *a = g_mem, *b = g_mem + 1000;
    handoff_set(&h, 0, a, 100, 5);
    handoff_set(&h, 1, b, 100, 5);
    CHECK(handoff_valid(&h, 5) == 3u);
    CHECK(handoff_valid(&h, 6) == 0u);
    /* a GEMM writing into the middle of slot 1's range carries slot 0 only */
    unsigned long long seq = gemm(&h, 5, 3, b + 50, 10);
    CHECK(handoff_find(&h, a, 100, seq) == 0 && handoff_find(&h, b, 100, seq) == -1);
    /* ranges that only touch do not overlap */
    handoff_set(&h, 1, b, 100, seq);
    seq = gemm(&h, seq, 1, b + 100, 10);
    CHECK(handoff_valid(&h, seq) == 3u);
    /* a slot not valid when the GEMM starts is not revived */
    handoff_set(&h, 1, b, 100, seq - 1);
    seq = gemm(&h, seq, 1, g_mem + 5000, 10);
    CHECK(handoff_valid(&h, seq) == 1u);
    /* emptied */
    handoff_set(&h, 0, NULL, 0, 0);
    CHECK(handoff_valid(&h, seq) == 0u && handoff_find(&h, NULL, 0, 0) == -1);
}

static void test_unwritten(void) {
    HandOffs h;
    memset(&h, 0, sizeof h);
    float *p = g_mem + 100;
    handoff_unwritten(&h, p, 100);
    CHECK(handoff_is_unwritten(&h, p, 100) && handoff_is_unwritten(&h, p + 99, 1));
    CHECK(!handoff_is_unwritten(&h, p + 100, 50) && !handoff_is_unwritten(&h, p - 10, 10));
    /* a write over part of it clears the mark (the op wrote fp32 there) */
    handoff_written(&h, p + 10, 4);
    CHECK(!handoff_is_unwritten(&h, p, 100));
    /* one entry per range: marking the same range again takes no slot */
    handoff_unwritten(&h, p, 100);
    handoff_unwritten(&h, p, 100);
    int used = 0;
    for (int i = 0; i < HANDOFF_UNWRITTEN_MAX; i++) used += h.unw[i].p != NULL;
    CHECK(used == 1);
    /* the newest HANDOFF_UNWRITTEN_MAX are kept: the oldest goes first */
    handoff_forget_unwritten(&h);
    for (int i = 0; i <= HANDOFF_UNWRITTEN_MAX; i++) handoff_unwritten(&h, g_mem + 10 * i, 5); /* one too many */
    CHECK(!handoff_is_unwritten(&h, g_mem, 5));
    CHECK(handoff_is_unwritten(&h, g_mem + 10, 5) && handoff_is_unwritten(&h, g_mem + 10 * HANDOFF_UNWRITTEN_MAX, 5));
    /* a cleared entry is taken before any mark is dropped: with ranges
     * 1..MAX marked, clear 7, mark a new one, and all but 7 stay marked;
     * one more then drops the oldest (1), not the newest */
    handoff_written(&h, g_mem + 70, 4);
    float *nu = g_mem + 10 * (HANDOFF_UNWRITTEN_MAX + 1);
    handoff_unwritten(&h, nu, 5);
    int kept = 1;
    for (int i = 1; i <= HANDOFF_UNWRITTEN_MAX; i++)
        kept &= handoff_is_unwritten(&h, g_mem + 10 * i, 5) == (i != 7);
    CHECK(kept && handoff_is_unwritten(&h, nu, 5));
    handoff_unwritten(&h, nu + 10, 5);
    CHECK(!handoff_is_unwritten(&h, g_mem + 10, 5) && handoff_is_unwritten(&h, g_mem + 20, 5) &&
          handoff_is_unwritten(&h, nu, 5) && handoff_is_unwritten(&h, nu + 10, 5));
    handoff_forget_unwritten(&h);
    CHECK(!handoff_is_unwritten(&h, g_mem, 1 << 16));
}

int main(void) {
    test_mlp_backward();
    test_carry_stops_at_overlap();
    test_unwritten();
    return check_summary("test_handoff");
}
