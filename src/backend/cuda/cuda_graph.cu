/* CUDA graphs for fixed op sequences: the decode step.
 *
 * A decode step of a 0.5B model is ~450 kernel and GEMM launches over a
 * few hundred rows; each launch costs microseconds of host time and leaves
 * the GPU a gap, so at these sizes the step is mostly launch overhead (the
 * step time barely falls when the batch halves). Recording the step once
 * as a CUDA graph and replaying it turns the ~450 launches into one.
 *
 * The caller (model_decode) names the sequence with a key (model, KV
 * cache, scratch, row count); the same key means the same ops on the same
 * buffers with the same sizes, only the buffers' contents differ (token
 * ids, positions and lengths are uploaded before each step). A key is
 * recorded the second time it is seen, so the first run has grown every
 * grow-only buffer the ops use and the recording allocates nothing.
 *
 * What a replay skips is the host side of the ops, so anything host-side
 * state could change must be caught here:
 * - device memory a graph uses is freed or reallocated (cu_free, the
 *   grow-only buffers, the bf16 weight copies): every such place calls
 *   cuda_graph_invalidate, which drops all graphs before the next replay;
 * - weights written since (an optimizer step) leave their bf16 copies
 *   stale: every stale copy is refreshed before a replay or a recording.
 * A recording that fails (an op that cannot be captured) runs nothing;
 * graphs are then turned off for the process with one line on stderr and
 * the caller issues the ops directly. R1C_CUDA_GRAPHS=0 turns them off.
 *
 * Which batches are replayed: R1C_CUDA_GRAPH_ROWS (default 1024) is the
 * largest row count recorded. Early on (fp32 caches, one attention kernel
 * per row) graphs lost 10% at 256 sequences, so only 32 rows were
 * replayed. With the kernels as they are now a graph's launch costs the
 * device 0.8 us per kernel against 4-5 us of host time per direct launch
 * (bench_cuda_ops, "launch floor"), and at the 0.5B shape 256 sequences
 * x (128 + 256) tokens go from 58.2k to 62.7k tokens/s with graphs
 * (bench_cuda_model --no-train, H200). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/backend_cuda.h"
}

#define GRAPH_MAX 1024 /* distinct keys; past it, steps run without graphs */
#define GRAPH_ROWS 1024 /* default largest batch replayed */
#define KEY_WORDS 8

typedef struct GraphEntry {
    uint64_t key[KEY_WORDS];
    int nw;
    cudaGraphExec_t exec; /* NULL: seen once, not recorded yet */
} GraphEntry;

static GraphEntry g_tab[GRAPH_MAX];
static int g_n;
static unsigned long g_epoch, g_tab_epoch; /* invalidations; the table's */
static int g_on = -1;                       /* -1: from the environment */
static int g_recording, g_rec_idx, g_err_before;
static unsigned long g_rec_epoch;
static long g_recorded, g_replayed;
static int g_max_rows = -1;

void cuda_graph_invalidate(void) { g_epoch++; }
int cuda_graph_recording(void) { return g_recording; }

static void graph_clear(void) {
    for (int i = 0; i < g_n; i++)
        if (g_tab[i].exec) cudaGraphExecDestroy(g_tab[i].exec);
    g_n = 0;
}

extern "C" void cuda_set_graphs(int on) {
    if (!on) graph_clear();
    g_on = on ? 1 : 0;
}

extern "C" int cuda_graphs(void) {
    if (g_on < 0) {
        const char *s = getenv("R1C_CUDA_GRAPHS");
        g_on = !(s && !strcmp(s, "0"));
    }
    return g_on;
}

extern "C" void cuda_graph_stats(long *recorded, long *replayed) {
    if (recorded) *recorded = g_recorded;
    if (replayed) *replayed = g_replayed;
}

/* A graph just launched: with R1C_CUDA_SYNC=1, wait for it as for any op,
 * so a fault inside it is reported here. */
static void graph_launched(void) {
    g_replayed++;
    if (cuda_sync_mode()) cuda_note("decode step (CUDA graph)", cudaStreamSynchronize(cuda_stream()));
}

static void graph_off(const char *why, cudaError_t e) {
    cudaGetLastError();
    fprintf(stderr, "r1c: cuda: CUDA graphs turned off: %s (%s); the steps run op by op\n", why,
            cudaGetErrorString(e));
    graph_clear();
    g_on = 0;
}

static GraphEntry *graph_find(const uint64_t *key, int nw) {
    for (int i = 0; i < g_n; i++)
        if (g_tab[i].nw == nw && !memcmp(g_tab[i].key, key, nw * sizeof *key)) return &g_tab[i];
    return NULL;
}

int cu_graph_begin(const uint64_t *key, int nw, int rows) {
    if (g_max_rows < 0) {
        const char *s = getenv("R1C_CUDA_GRAPH_ROWS");
        g_max_rows = s && atoi(s) >= 0 ? atoi(s) : GRAPH_ROWS;
    }
    if (!cuda_graphs() || g_recording || nw < 1 || nw > KEY_WORDS || rows > g_max_rows) return -1;
    if (g_tab_epoch != g_epoch) { /* something a graph may use was freed */
        graph_clear();
        g_tab_epoch = g_epoch;
    }
    GraphEntry *e = graph_find(key, nw);
    if (!e) { /* first sighting: run directly, record next time */
        if (g_n == GRAPH_MAX) return -1;
        e = &g_tab[g_n++];
        memcpy(e->key, key, nw * sizeof *key);
        e->nw = nw;
        e->exec = NULL;
        return -1;
    }
    cuda_shadow_refresh_all(); /* launches kernels, never allocates */
    if (e->exec) {
        cudaError_t r = cudaGraphLaunch(e->exec, cuda_stream());
        if (r != cudaSuccess) {
            graph_off("a graph launch failed", r);
            return -1;
        }
        graph_launched();
        return 1;
    }
    g_err_before = cuda_error_pending();
    cudaError_t r = cudaStreamBeginCapture(cuda_stream(), cudaStreamCaptureModeThreadLocal);
    if (r != cudaSuccess) {
        graph_off("cannot record a graph", r);
        return -1;
    }
    g_recording = 1;
    g_rec_idx = (int)(e - g_tab);
    g_rec_epoch = g_epoch;
    return 0;
}

int cu_graph_end(void) {
    if (!g_recording) return -1;
    g_recording = 0;
    cudaGraph_t graph = NULL;
    cudaError_t r = cudaStreamEndCapture(cuda_stream(), &graph);
    int moved = g_rec_epoch != g_epoch; /* a buffer grew while recording */
    int failed = r != cudaSuccess || !graph || (!g_err_before && cuda_error_pending());
    cudaGraphExec_t exec = NULL;
    if (!failed && !moved) r = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (failed || moved || r != cudaSuccess) {
        cudaGetLastError();
        /* what the ops noted while recording belongs to the recording */
        if (!g_err_before) cuda_error_clear();
        if (moved && !failed) return -1; /* record again next time */
        graph_off("recording a step failed", r != cudaSuccess ? r : cudaErrorStreamCaptureInvalidated);
        return -1;
    }
    if (g_tab_epoch != g_epoch) { /* cannot happen without `moved`; be safe */
        cudaGraphExecDestroy(exec);
        return -1;
    }
    g_tab[g_rec_idx].exec = exec;
    g_recorded++;
    r = cudaGraphLaunch(exec, cuda_stream());
    if (r != cudaSuccess) {
        graph_off("a graph launch failed", r);
        return -1;
    }
    graph_launched();
    return 0;
}
