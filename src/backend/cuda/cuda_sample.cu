/* Token sampling on the device, one block per row of logits, with the
 * semantics of the CPU sampler (gen/sampler.c) so both pick the same token
 * from the same logits and uniform: every filter (top-k, top-p, min-p and
 * the exact top-p pre-filter) keeps the tokens whose unnormalised
 * probability e = exp(l/T - max) is at or above a threshold, and the draw
 * walks the kept set in token-id order. Thresholds come from radix
 * selection over the bits of e (positive floats order like their bits):
 * top-k by counts, top-p by probability mass, 8 bits per pass. Only the
 * chosen ids and log-probs leave the device: 8 bytes per row instead of
 * the 600 KB row of logits.
 *
 * Cost per row: 2 passes over the logits without filters (max and sum in
 * one online pass, then the draw's tile sums) and a tenth of one (the
 * tile the draw lands in); 4 more for top-k, 5 more for top-p. Every pass
 * reads consecutive tokens with consecutive threads: the draw used to give
 * each thread its own 150-token run, and the strided reads that made cost
 * 6x the bandwidth of the logits. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

#define SMP_THREADS 1024
#define SMP_K 8      /* least consecutive tokens per thread in a draw tile */
#define SMP_TILES 64 /* most draw tiles (more tokens per thread past that) */

__device__ __forceinline__ float smp_e(const float *l, int j, float inv_t, float zmax) {
    return expf(l[j] * inv_t - zmax);
}

/* Is token j a candidate: (e/sum >= floor_p) and e >= tau. */
__device__ __forceinline__ bool smp_kept(float e, float inv_sum, float floor_p, float tau) {
    return e >= tau && e * inv_sum >= floor_p;
}

/* Radix select over the bits of e among candidates. by_mass = 0: the bits of
 * the k-th largest value (target = k). by_mass = 1: the largest v such that
 * the candidates with e >= v weigh at least target. */
__device__ uint32_t smp_radix(const float *l, int V, float inv_t, float zmax, float inv_sum, float floor_p, float tau,
                              double target, int by_mass, unsigned *hc, double *hm, uint32_t *sh_prefix,
                              double *sh_rem) {
    uint32_t prefix = 0, mask = 0;
    double rem = target;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hc[i] = 0, hm[i] = 0.0;
        __syncthreads();
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float e = smp_e(l, j, inv_t, zmax);
            if (!smp_kept(e, inv_sum, floor_p, tau)) continue;
            uint32_t b = __float_as_uint(e);
            if ((b & mask) != prefix) continue;
            int d = (b >> shift) & 255;
            if (by_mass) atomicAdd(&hm[d], (double)e);
            else atomicAdd(&hc[d], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            double above = 0;
            int d = 255;
            for (; d > 0; d--) {
                double w = by_mass ? hm[d] : (double)hc[d];
                if (above + w >= rem) break;
                above += w;
            }
            *sh_prefix = prefix | ((uint32_t)d << shift);
            *sh_rem = rem - above;
        }
        __syncthreads();
        prefix = *sh_prefix;
        rem = *sh_rem;
        mask |= 255u << shift;
        __syncthreads();
    }
    return prefix;
}

/* Inclusive prefix sum of v in thread order; *total gets the block's sum.
 * The order of the additions is fixed, so the same inputs give the same
 * bits in both draw passes. `sh` holds 32 doubles. */
__device__ double smp_block_scan(double v, double *sh, double *total) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        double y = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += y;
    }
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 31) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        double w = lane < nw ? sh[lane] : 0.0;
        for (int o = 1; o < 32; o <<= 1) {
            double y = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += y;
        }
        if (lane < nw) sh[lane] = w;
    }
    __syncthreads();
    *total = sh[nw - 1];
    return (wid > 0 ? sh[wid - 1] : 0.0) + v;
}

/* The kept mass of tokens [j0, j1), in token order */
__device__ __forceinline__ double smp_chunk(const float *l, int j0, int j1, float inv_t, float zmax, float inv_sum,
                                            float floor_p, float tau) {
    double c = 0;
    for (int j = j0; j < j1; j += SMP_K) {
        float x[SMP_K]; /* all loads in flight before the first use */
#pragma unroll
        for (int u = 0; u < SMP_K; u++) x[u] = j + u < j1 ? l[j + u] : 0.0f;
#pragma unroll
        for (int u = 0; u < SMP_K; u++) {
            float e = expf(x[u] * inv_t - zmax); /* smp_e's arithmetic */
            if (j + u < j1 && smp_kept(e, inv_sum, floor_p, tau)) c += e;
        }
    }
    return c;
}

__global__ void __launch_bounds__(SMP_THREADS) sample_kernel(int32_t *tok_out, float *logp_out, const float *logits,
                                                             const double *u, int V, float temperature, int top_k,
                                                             float top_p, float min_p) {
    __shared__ float sh_f[32];
    __shared__ double sh_d[32];
    __shared__ int sh_i[32];
    __shared__ unsigned hc[256];
    __shared__ double hm[256];
    __shared__ double part[SMP_THREADS];
    __shared__ double tsum[SMP_TILES];
    __shared__ uint32_t sh_prefix;
    __shared__ double sh_rem;
    __shared__ int sh_tok, sh_tile;
    const float *l = logits + (size_t)blockIdx.x * V;
    float inv_t = temperature > 0 ? 1.0f / temperature : 1.0f;

    /* one pass: the max, the first index that holds it, and each thread's
     * sum of exp(l/T - its running max), rescaled as the max grows (NaN
     * and -inf logits weigh nothing) */
    float m = -INFINITY, zm = -INFINITY, sacc = 0.0f;
    int arg = V;
    for (int j0 = threadIdx.x; j0 < V; j0 += SMP_K * blockDim.x) {
        float xs[SMP_K]; /* SMP_K loads in flight per thread: the pass is bound by memory latency otherwise */
#pragma unroll
        for (int u = 0; u < SMP_K; u++) {
            int j = j0 + u * (int)blockDim.x;
            xs[u] = j < V ? l[j] : -INFINITY;
        }
#pragma unroll
        for (int u = 0; u < SMP_K; u++) {
            float x = xs[u], z = x * inv_t;
            if (x > m) {
                sacc = (m == -INFINITY ? 0.0f : sacc * expf(zm - z)) + 1.0f;
                m = x, zm = z, arg = j0 + u * (int)blockDim.x;
            } else if (x > -INFINITY) sacc += expf(z - zm);
        }
    }
    float mx = block_max(m, sh_f);
    int cand = m == mx ? arg : V;
    for (int o = 16; o > 0; o >>= 1) cand = min(cand, __shfl_xor_sync(0xffffffffu, cand, o));
    if ((threadIdx.x & 31) == 0) sh_i[threadIdx.x >> 5] = cand;
    __syncthreads();
    if (threadIdx.x < 32) {
        int c = threadIdx.x < (blockDim.x + 31) / 32 ? sh_i[threadIdx.x] : V;
        for (int o = 16; o > 0; o >>= 1) c = min(c, __shfl_xor_sync(0xffffffffu, c, o));
        if (threadIdx.x == 0) sh_tok = c;
    }
    __syncthreads();
    int argmax = sh_tok;
    float zmax = mx * inv_t;
    double sum = block_sum(m > -INFINITY ? (double)(sacc * expf(zm - zmax)) : 0.0, sh_d);
    float lse = zmax + (float)log(sum);
    if (temperature <= 0) {
        if (threadIdx.x == 0) {
            tok_out[blockIdx.x] = argmax;
            logp_out[blockIdx.x] = l[argmax] - lse;
        }
        return;
    }
    float inv_sum = (float)(1.0 / sum);
    float floor_p = 0.0f, pmax = 1.0f * inv_sum;
    int use_p = top_p > 0 && top_p < 1;
    if (use_p) floor_p = (1.0f - top_p) / (float)V;
    if (min_p > 0 && min_p * pmax > floor_p) floor_p = min_p * pmax;
    float tau = 0.0f;
    if (top_k > 0) {
        unsigned c = 0;
        for (int j = threadIdx.x; j < V; j += blockDim.x) c += smp_kept(smp_e(l, j, inv_t, zmax), inv_sum, floor_p, 0.0f);
        double n = block_sum((double)c, sh_d);
        if ((double)top_k < n)
            tau = __uint_as_float(smp_radix(l, V, inv_t, zmax, inv_sum, floor_p, 0.0f, (double)top_k, 0, hc, hm,
                                            &sh_prefix, &sh_rem));
    }
    if (use_p) {
        double t = 0;
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float e = smp_e(l, j, inv_t, zmax);
            if (smp_kept(e, inv_sum, floor_p, tau)) t += e;
        }
        double tot = block_sum(t, sh_d);
        float tp = __uint_as_float(smp_radix(l, V, inv_t, zmax, inv_sum, floor_p, tau, (double)top_p * tot, 1, hc, hm,
                                             &sh_prefix, &sh_rem));
        if (tp > tau) tau = tp;
    }
    if (min_p > 0 && min_p > tau) tau = min_p;

    /* The draw walks the kept tokens in id order. Tiles of bd x K
     * consecutive tokens, thread t of a tile owning K consecutive ones
     * (a warp reads 32 K contiguous floats); pass 1 sums each tile by a
     * prefix scan over its threads, pass 2 repeats that scan for the tile
     * the target falls in (the same bits) and the thread whose range holds
     * it walks its K tokens. */
    int K = (V + (int)blockDim.x * SMP_TILES - 1) / ((int)blockDim.x * SMP_TILES);
    if (K < SMP_K) K = SMP_K;
    int tile = K * (int)blockDim.x, ntiles = (V + tile - 1) / tile;
    for (int ti = 0; ti < ntiles; ti++) {
        int j0 = ti * tile + (int)threadIdx.x * K;
        double tot;
        smp_block_scan(smp_chunk(l, j0, min(V, j0 + K), inv_t, zmax, inv_sum, floor_p, tau), sh_d, &tot);
        if (threadIdx.x == 0) tsum[ti] = tot;
    }
    if (threadIdx.x == 0) {
        double tot = 0, c = 0;
        for (int ti = 0; ti < ntiles; ti++) tot += tsum[ti];
        double target = u[blockIdx.x] * tot;
        int ti = 0;
        for (; ti < ntiles; ti++) {
            if (target < c + tsum[ti]) break;
            c += tsum[ti];
        }
        sh_tile = ti;
        sh_rem = target - c;
        sh_tok = -1;
    }
    __syncthreads();
    int ti = sh_tile; /* block-uniform */
    double rel = sh_rem;
    if (ti < ntiles) {
        int j0 = ti * tile + (int)threadIdx.x * K, j1 = min(V, j0 + K);
        double s = smp_chunk(l, j0, j1, inv_t, zmax, inv_sum, floor_p, tau), tot;
        double incl = smp_block_scan(s, sh_d, &tot);
        part[threadIdx.x] = incl;
        __syncthreads();
        double excl = threadIdx.x > 0 ? part[threadIdx.x - 1] : 0.0;
        if (s > 0 && rel < incl && rel >= excl) { /* one thread at most: the sums only grow */
            double c = excl;
            int tok = -1;
            for (int j = j0; j < j1; j++) {
                float e = smp_e(l, j, inv_t, zmax);
                if (!smp_kept(e, inv_sum, floor_p, tau)) continue;
                c += e;
                tok = j; /* rounding past the end of the run: its last kept token */
                if (rel < c) break;
            }
            sh_tok = tok;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int tok = sh_tok;
        if (tok < 0) { /* rounding put the target past a tile's or the row's end: the last kept token before it */
            int end = ti < ntiles ? min(V, (ti + 1) * tile) : V;
            tok = argmax;
            for (int j = end - 1; j >= 0; j--)
                if (smp_kept(smp_e(l, j, inv_t, zmax), inv_sum, floor_p, tau)) {
                    tok = j;
                    break;
                }
        }
        tok_out[blockIdx.x] = tok;
        logp_out[blockIdx.x] = l[tok] * inv_t - lse;
    }
}

void cu_sample(int32_t *tok, float *logp, const float *logits, const double *u, int N, int V, float temperature,
               int top_k, float top_p, float min_p) {
    if (N <= 0 || V <= 0) return;
    sample_kernel<<<N, SMP_THREADS, 0, cuda_stream()>>>(tok, logp, logits, u, V, temperature, top_k, top_p, min_p);
    cuda_after_launch("sample");
}
