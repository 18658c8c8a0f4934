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
 * Cost per row: 3 passes over the logits without filters (max, sum, draw),
 * 4 more for top-k, 5 more for top-p. */
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_reduce.cuh"

#define SMP_THREADS 1024

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

__global__ void __launch_bounds__(SMP_THREADS) sample_kernel(int32_t *tok_out, float *logp_out, const float *logits,
                                                             const double *u, int V, float temperature, int top_k,
                                                             float top_p, float min_p) {
    __shared__ float sh_f[32];
    __shared__ double sh_d[32];
    __shared__ int sh_i[32];
    __shared__ unsigned hc[256];
    __shared__ double hm[256];
    __shared__ double part[SMP_THREADS];
    __shared__ uint32_t sh_prefix;
    __shared__ double sh_rem;
    __shared__ int sh_tok;
    const float *l = logits + (size_t)blockIdx.x * V;
    float inv_t = temperature > 0 ? 1.0f / temperature : 1.0f;

    /* max, and the first index that holds it */
    float m = -INFINITY;
    int arg = V;
    for (int j = threadIdx.x; j < V; j += blockDim.x)
        if (l[j] > m) m = l[j], arg = j;
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
    float s = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += smp_e(l, j, inv_t, zmax);
    double sum = block_sum((double)s, sh_d);
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

    /* the draw: contiguous chunks per thread, so chunk sums in thread order
     * are prefix sums in token-id order */
    int chunk = (V + blockDim.x - 1) / blockDim.x;
    int j0 = threadIdx.x * chunk, j1 = min(V, j0 + chunk);
    double cs = 0;
    for (int j = j0; j < j1; j++) {
        float e = smp_e(l, j, inv_t, zmax);
        if (smp_kept(e, inv_sum, floor_p, tau)) cs += e;
    }
    part[threadIdx.x] = cs;
    __syncthreads();
    if (threadIdx.x == 0) {
        double tot = 0;
        for (int t = 0; t < (int)blockDim.x; t++) tot += part[t];
        double target = u[blockIdx.x] * tot, c = 0;
        int tok = argmax, t = 0;
        for (; t < (int)blockDim.x; t++) {
            if (target < c + part[t]) break;
            c += part[t];
        }
        if (t == (int)blockDim.x) { /* rounding ran past the end: the last kept token */
            for (int j = V - 1; j >= 0; j--)
                if (smp_kept(smp_e(l, j, inv_t, zmax), inv_sum, floor_p, tau)) {
                    tok = j;
                    break;
                }
        } else {
            int a = t * chunk, b = min(V, a + chunk);
            for (int j = a; j < b; j++) {
                float e = smp_e(l, j, inv_t, zmax);
                if (!smp_kept(e, inv_sum, floor_p, tau)) continue;
                c += e;
                tok = j;
                if (target < c) break;
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
