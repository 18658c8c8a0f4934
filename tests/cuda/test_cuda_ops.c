/* Every op of the CUDA backend against the CPU backend (the fp32
 * reference) on the same random data: inputs are uploaded, both backends
 * run, the GPU's outputs are downloaded and compared by normalised max
 * error (max |gpu - cpu| / max |cpu|). Outputs that an op overwrites start
 * as NaN on the GPU, so an unwritten element fails; outputs it accumulates
 * into start from the same random values on both sides. Prints the worst
 * error per op. Without a usable GPU it prints SKIP and passes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda/backend_cuda.h"
#include "base/rng.h"
#include "gen/sampler.h"
#include "check.h"

/* fp32 precision (the reference arithmetic); the bf16 pass over the
 * GEMM-backed ops raises them (main). */
static double FWD_TOL = 1e-5, BWD_TOL = 1e-4;
static const char *g_mode = ""; /* prefix of the error table's op names */

static const Backend *cpu, *gpu;
/* R1C_CUDA_TEST_SMALL=1 (for compute-sanitizer runs): small shapes only */
static int g_small;
#define BIG(call) \
    do {                \
        if (!g_small) call; \
    } while (0)
static Rng rng;

/* ---- per-op worst error table ---- */

typedef struct {
    const char *op;
    double worst, tol;
} OpErr;
static OpErr g_ops[64];
static int g_nops;

static void note_err(const char *op0, double e, double tol) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", g_mode, op0);
    const char *op = name;
    int i = 0;
    while (i < g_nops && strcmp(g_ops[i].op, op) != 0) i++;
    if (i == g_nops) {
        if (g_nops == 64) return;
        g_ops[g_nops++] = (OpErr){strdup(op), 0.0, tol};
    }
    if (!(e <= g_ops[i].worst)) g_ops[i].worst = e; /* NaN sticks */
}

/* ---- host / device helpers ---- */

static float *hrand(size_t n, float scale) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_normal(&rng);
    return p;
}

static float *hcopy(const float *x, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    memcpy(p, x, n * sizeof(float));
    return p;
}

static float *hnan(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static void *dev_of(const void *h, size_t bytes) {
    void *d = gpu->alloc(bytes);
    Err err;
    if (!d || cuda_upload(d, h, bytes, &err) != 0) {
        fprintf(stderr, "upload failed\n");
        exit(1);
    }
    return d;
}

static float *dev_f(const float *h, size_t n) { return dev_of(h, n * sizeof(float)); }
static int32_t *dev_i(const int32_t *h, size_t n) { return dev_of(h, n * sizeof(int32_t)); }

static float *down(const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    Err err;
    if (cuda_download(h, d, n * sizeof(float), &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return h;
}

static void gpu_ok(const char *what) {
    Err err;
    CHECKF(cuda_check(&err) == 0, "%s: %s", what, err.msg);
}

/* max |got - ref| / max(max |ref|, max |got|); NaN anywhere -> NaN */
static double nerr(const float *got, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i], d = fabs(g - r);
        if (isnan(g) || isnan(r)) return NAN;
        if (d > md) md = d;
        if (fabs(r) > mr) mr = fabs(r);
        if (fabs(g) > mr) mr = fabs(g);
    }
    return md / (mr > 1e-6 ? mr : 1.0);
}

/* Downloads the GPU result, compares with the CPU's, records and checks. */
static void cmp(const char *op, const char *tag, const float *dgot, const float *ref, size_t n, double tol) {
    float *got = down(dgot, n);
    double e = nerr(got, ref, n);
    note_err(op, e, tol);
    CHECKF(e <= tol, "%s %s: normalised error %.3g > %.3g", op, tag, e, tol);
    free(got);
}

static int bits_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* KV caches: bf16 elements where the backend says so (kv_elem_bytes) */
static int kv16(void) { return gpu->kv_elem_bytes && gpu->kv_elem_bytes() == 2; }
static uint16_t f2bf(float f) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static float bf2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* a cache of n elements on the device, in the backend's element type */
static float *dev_kv(const float *h, size_t n) {
    if (!kv16()) return dev_f(h, n);
    uint16_t *b = malloc((n ? n : 1) * 2);
    for (size_t i = 0; i < n; i++) b[i] = f2bf(h[i]);
    float *d = dev_of(b, (n ? n : 1) * 2);
    free(b);
    return d;
}
/* its elements as floats */
static float *down_kv(const float *d, size_t n) {
    if (!kv16()) return down(d, n);
    uint16_t *b = malloc((n ? n : 1) * 2);
    float *h = malloc((n ? n : 1) * sizeof(float));
    Err err;
    if (cuda_download(b, d, n * 2, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) h[i] = bf2f(b[i]);
    free(b);
    return h;
}

/* ---- memory ops, add, scale, sumsq, adamw ---- */

static void test_memory(void) {
    size_t n = 100003;
    float *h = hrand(n, 1.0f);
    float *a = gpu->alloc(n * sizeof(float));
    float *z = down(a, n);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= z[i] == 0.0f;
    CHECKF(zero, "alloc must return zeroed memory");
    free(z);
    void *e0 = gpu->alloc(0);
    CHECK(e0 != NULL);
    gpu->free(e0);

    float *b = dev_f(h, n);
    gpu->copy(a, b, n * sizeof(float));
    float *g = down(a, n);
    CHECK(bits_equal(g, h, n));
    free(g);
    gpu->copy(a + 1, a, (n - 1) * sizeof(float)); /* overlapping, forwards */
    g = down(a, n);
    CHECK(bits_equal(g + 1, h, n - 1));
    free(g);
    gpu->copy(a, a + 1, (n - 1) * sizeof(float)); /* and back */
    g = down(a, n);
    CHECK(bits_equal(g, h, n - 1));
    free(g);
    gpu->zero(a, n * sizeof(float));
    g = down(a, n);
    zero = 1;
    for (size_t i = 0; i < n; i++) zero &= g[i] == 0.0f;
    CHECK(zero);
    free(g);

    /* add_inplace, scale: odd lengths */
    size_t lens[] = {1, 1001, 3000017};
    for (int li = 0; li < 3; li++) {
        size_t m = lens[li];
        float *y = hrand(m, 1.0f), *x = hrand(m, 1.0f);
        float *dy = dev_f(y, m), *dx = dev_f(x, m);
        cpu->add_inplace(y, x, m);
        gpu->add_inplace(dy, dx, m);
        cmp("add_inplace", "", dy, y, m, 1e-7);
        cpu->scale(y, -0.37f, m);
        gpu->scale(dy, -0.37f, m);
        cmp("scale", "", dy, y, m, 1e-7);
        /* sumsq: matches the CPU in double, and is bitwise repeatable */
        double sc = cpu->sumsq(x, m), s1 = gpu->sumsq(dx, m), s2 = gpu->sumsq(dx, m);
        double e = fabs(s1 - sc) / sc;
        note_err("sumsq", e, 1e-12);
        CHECKF(e <= 1e-12, "sumsq n=%zu: %.17g vs cpu %.17g", m, s1, sc);
        CHECKF(memcmp(&s1, &s2, sizeof s1) == 0, "sumsq not deterministic: %.17g vs %.17g", s1, s2);
        gpu->free(dy), gpu->free(dx);
        free(y), free(x);
    }
    CHECK(gpu->sumsq(a, 0) == 0.0);
    float big[3] = {1e20f, 1e20f, 3.0f};
    float *dbig = dev_f(big, 3);
    double bb = (double)big[0] * big[0];
    CHECK_NEAR(gpu->sumsq(dbig, 3), 2 * bb + 9.0, 1e-12 * bb); /* accumulates in double */
    gpu->free(dbig);
    gpu->free(a), gpu->free(b);
    free(h);
    gpu_ok("memory ops");
}

static void test_adamw(size_t n) {
    float *p = hrand(n, 1.0f), *m = hrand(n, 0.1f), *v = hrand(n, 0.1f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *dp = dev_f(p, n), *dm = dev_f(m, n), *dv = dev_f(v, n);
    for (int t = 1; t <= 3; t++) {
        float *g = hrand(n, 1.0f), *dg = dev_f(g, n);
        float gs = t == 2 ? 0.25f : 1.0f; /* a clipped step */
        cpu->adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, gs);
        gpu->adamw_update(dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, gs);
        gpu->free(dg);
        free(g);
    }
    /* gscale gives exactly the bits of scaling the gradients first */
    {
        float *g = hrand(n, 3.0f), *dg = dev_f(g, n), *dg2 = dev_f(g, n), *z = calloc(n, 4);
        float *q = dev_f(p, n), *q2 = dev_f(p, n), *mq = dev_f(z, n), *vq = dev_f(z, n), *mq2 = dev_f(z, n),
              *vq2 = dev_f(z, n);
        gpu->scale(dg2, 0.0123f, n);
        gpu->adamw_update(q, dg, mq, vq, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 0.0123f);
        gpu->adamw_update(q2, dg2, mq2, vq2, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 1.0f);
        float *a = down(q, n), *b = down(q2, n), *am = down(vq, n), *bm = down(vq2, n);
        CHECK(bits_equal(a, b, n) && bits_equal(am, bm, n));
        free(a), free(b), free(am), free(bm), free(g), free(z);
        gpu->free(dg), gpu->free(dg2), gpu->free(q), gpu->free(q2), gpu->free(mq), gpu->free(vq), gpu->free(mq2),
            gpu->free(vq2);
    }
    cmp("adamw_update", "p", dp, p, n, FWD_TOL);
    cmp("adamw_update", "m", dm, m, n, FWD_TOL);
    cmp("adamw_update", "v", dv, v, n, FWD_TOL);
    gpu->free(dp), gpu->free(dm), gpu->free(dv);
    free(p), free(m), free(v);
    gpu_ok("adamw");
}

/* ---- matmul ---- */

static void test_matmul(int N, int K, int O, int has_bias) {
    char tag[96];
    snprintf(tag, sizeof tag, "N=%d K=%d O=%d bias=%d", N, K, O, has_bias);
    size_t ni = (size_t)N * K, nw = (size_t)O * K, no = (size_t)N * O;
    float *inp = hrand(ni, 1.0f), *w = hrand(nw, 0.5f), *b = hrand(O, 0.5f), *dout = hrand(no, 1.0f);
    float *d_inp = dev_f(inp, ni), *d_w = dev_f(w, nw), *d_b = dev_f(b, O), *d_dout = dev_f(dout, no);
    float *out = hrand(no, 1.0f), *nan_o = hnan(no), *d_out = dev_f(nan_o, no);
    cpu->matmul_forward(out, inp, w, has_bias ? b : NULL, N, K, O);
    gpu->matmul_forward(d_out, d_inp, d_w, has_bias ? d_b : NULL, N, K, O);
    cmp("matmul_forward", tag, d_out, out, no, FWD_TOL);

    /* dinp overwritten, then accumulated; dw, dbias accumulate */
    float *dinp = hrand(ni, 1.0f), *nan_i = hnan(ni), *d_dinp = dev_f(nan_i, ni);
    float *dw = hrand(nw, 1.0f), *d_dw = dev_f(dw, nw), *db = hrand(O, 1.0f), *d_db = dev_f(db, O);
    for (int acc = 0; acc <= 1; acc++) {
        cpu->matmul_backward(dinp, dw, has_bias ? db : NULL, dout, inp, w, N, K, O, acc);
        gpu->matmul_backward(d_dinp, d_dw, has_bias ? d_db : NULL, d_dout, d_inp, d_w, N, K, O, acc);
        cmp("matmul_backward", tag, d_dinp, dinp, ni, BWD_TOL);
        cmp("matmul_backward", tag, d_dw, dw, nw, BWD_TOL);
        if (has_bias) cmp("matmul_backward", tag, d_db, db, O, BWD_TOL);
    }
    /* NULL gradients are skipped */
    cpu->matmul_backward(NULL, dw, NULL, dout, inp, w, N, K, O, 0);
    gpu->matmul_backward(NULL, d_dw, NULL, d_dout, d_inp, d_w, N, K, O, 0);
    cmp("matmul_backward", tag, d_dw, dw, nw, BWD_TOL);
    gpu_ok(tag);
    gpu->free(d_inp), gpu->free(d_w), gpu->free(d_b), gpu->free(d_dout), gpu->free(d_out);
    gpu->free(d_dinp), gpu->free(d_dw), gpu->free(d_db);
    free(inp), free(w), free(b), free(dout), free(out), free(nan_o), free(dinp), free(nan_i), free(dw), free(db);
}

/* ---- rmsnorm ---- */

static void test_rmsnorm(int N, int C) {
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d C=%d", N, C);
    size_t n = (size_t)N * C;
    float *x = hrand(n, 1.0f), *w = hrand(C, 1.0f), *g = hrand(n, 1.0f);
    float *d_x = dev_f(x, n), *d_w = dev_f(w, C), *d_g = dev_f(g, n);
    float *out = hrand(n, 1.0f), *rstd = hrand(N, 1.0f), *nan_n = hnan(n), *nan_r = hnan(N);
    float *d_out = dev_f(nan_n, n), *d_rstd = dev_f(nan_r, N);
    cpu->rmsnorm_forward(out, rstd, x, w, N, C, 1e-6f);
    gpu->rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, 1e-6f);
    cmp("rmsnorm_forward", tag, d_out, out, n, FWD_TOL);
    cmp("rmsnorm_forward", tag, d_rstd, rstd, N, FWD_TOL);
    float *dx = hrand(n, 1.0f), *dw = hrand(C, 1.0f), *d_dx = dev_f(dx, n), *d_dw = dev_f(dw, C);
    cpu->rmsnorm_backward(dx, dw, g, x, w, rstd, N, C); /* both accumulate */
    gpu->rmsnorm_backward(d_dx, d_dw, d_g, d_x, d_w, d_rstd, N, C);
    cmp("rmsnorm_backward", tag, d_dx, dx, n, BWD_TOL);
    cmp("rmsnorm_backward", tag, d_dw, dw, C, BWD_TOL);
    gpu_ok(tag);
    gpu->free(d_x), gpu->free(d_w), gpu->free(d_g), gpu->free(d_out), gpu->free(d_rstd), gpu->free(d_dx),
        gpu->free(d_dw);
    free(x), free(w), free(g), free(out), free(rstd), free(nan_n), free(nan_r), free(dx), free(dw);
}

/* ---- rope ---- */

static void test_rope(int N, int H, int HD, int max_pos) {
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d H=%d HD=%d", N, H, HD);
    int half = HD / 2;
    size_t n = (size_t)N * H * HD, nt = (size_t)max_pos * (half ? half : 1);
    float *cs = malloc(nt * sizeof(float)), *sn = malloc(nt * sizeof(float));
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            double th = p * pow(10000.0, -2.0 * i / HD);
            cs[(size_t)p * half + i] = (float)cos(th), sn[(size_t)p * half + i] = (float)sin(th);
        }
    int32_t *pos = malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) pos[i] = (int32_t)(rng_u64(&rng) % max_pos);
    float *x = hrand(n, 1.0f), *d_x = dev_f(x, n), *d_c = dev_f(cs, nt), *d_s = dev_f(sn, nt);
    int32_t *d_pos = dev_i(pos, N);
    for (int inv = 0; inv <= 1; inv++) {
        cpu->rope_apply(x, pos, cs, sn, N, H, HD, inv);
        gpu->rope_apply(d_x, d_pos, d_c, d_s, N, H, HD, inv);
        cmp("rope_apply", tag, d_x, x, n, FWD_TOL);
    }
    gpu_ok(tag);
    gpu->free(d_x), gpu->free(d_c), gpu->free(d_s), gpu->free(d_pos);
    free(cs), free(sn), free(pos), free(x);
}

/* ---- attention ---- */

static void test_attention(int B, int T, int NH, int KVH, int HD) {
    char tag[96];
    snprintf(tag, sizeof tag, "B=%d T=%d NH=%d KVH=%d HD=%d", B, T, NH, KVH, HD);
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * KVH * HD, nl = (size_t)B * NH * T;
    float *q = hrand(nq, 1.0f), *k = hrand(nk, 1.0f), *v = hrand(nk, 1.0f), *g = hrand(nq, 1.0f);
    float *d_q = dev_f(q, nq), *d_k = dev_f(k, nk), *d_v = dev_f(v, nk), *d_g = dev_f(g, nq);
    float *out = malloc(nq * sizeof(float)), *lse = malloc(nl * sizeof(float));
    float *nq_nan = hnan(nq), *nk_nan = hnan(nk), *nl_nan = hnan(nl);
    float *d_out = dev_f(nq_nan, nq), *d_lse = dev_f(nl_nan, nl);
    cpu->attention_forward(out, lse, q, k, v, B, T, NH, KVH, HD);
    gpu->attention_forward(d_out, d_lse, d_q, d_k, d_v, B, T, NH, KVH, HD);
    cmp("attention_forward", tag, d_out, out, nq, FWD_TOL);
    cmp("attention_forward", tag, d_lse, lse, nl, FWD_TOL);

    float *dq = malloc(nq * sizeof(float)), *dk = malloc(nk * sizeof(float)), *dv = malloc(nk * sizeof(float));
    float *d_dq = dev_f(nq_nan, nq), *d_dk = dev_f(nk_nan, nk), *d_dv = dev_f(nk_nan, nk);
    /* the backward reads the CPU's out/lse on both sides: it is checked alone */
    float *d_out_c = dev_f(out, nq), *d_lse_c = dev_f(lse, nl);
    cpu->attention_backward(dq, dk, dv, g, out, lse, q, k, v, B, T, NH, KVH, HD);
    gpu->attention_backward(d_dq, d_dk, d_dv, d_g, d_out_c, d_lse_c, d_q, d_k, d_v, B, T, NH, KVH, HD);
    cmp("attention_backward", tag, d_dq, dq, nq, BWD_TOL);
    cmp("attention_backward", tag, d_dk, dk, nk, BWD_TOL);
    cmp("attention_backward", tag, d_dv, dv, nk, BWD_TOL);
    /* deterministic: a second run gives the same bits */
    float *dq1 = down(d_dq, nq), *dk1 = down(d_dk, nk);
    gpu->attention_backward(d_dq, d_dk, d_dv, d_g, d_out_c, d_lse_c, d_q, d_k, d_v, B, T, NH, KVH, HD);
    float *dq2 = down(d_dq, nq), *dk2 = down(d_dk, nk);
    CHECKF(bits_equal(dq1, dq2, nq) && bits_equal(dk1, dk2, nk), "attention_backward %s not deterministic", tag);
    gpu_ok(tag);
    gpu->free(d_q), gpu->free(d_k), gpu->free(d_v), gpu->free(d_g), gpu->free(d_out), gpu->free(d_lse);
    gpu->free(d_dq), gpu->free(d_dk), gpu->free(d_dv), gpu->free(d_out_c), gpu->free(d_lse_c);
    free(q), free(k), free(v), free(g), free(out), free(lse), free(nq_nan), free(nk_nan), free(nl_nan);
    free(dq), free(dk), free(dv), free(dq1), free(dk1), free(dq2), free(dk2);
}

/* Packed rows: each row holds sequences of random lengths (some longer
 * than a 32-key tile, some of one token); token t sees seg[t] .. t. */
static void test_attention_seg(int B, int T, int NH, int KVH, int HD) {
    char tag[96];
    snprintf(tag, sizeof tag, "packed B=%d T=%d NH=%d KVH=%d HD=%d", B, T, NH, KVH, HD);
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * KVH * HD, nl = (size_t)B * NH * T;
    int32_t *seg = malloc((size_t)B * T * sizeof(int32_t));
    for (int b = 0; b < B; b++)
        for (int t = 0, start = 0, left = 0; t < T; t++) {
            if (left == 0) {
                start = t;
                left = 1 + (int)(rng_u64(&rng) % (t % 3 == 0 ? 70 : 9));
            }
            seg[(size_t)b * T + t] = start;
            left--;
        }
    float *q = hrand(nq, 1.0f), *k = hrand(nk, 1.0f), *v = hrand(nk, 1.0f), *g = hrand(nq, 1.0f);
    float *d_q = dev_f(q, nq), *d_k = dev_f(k, nk), *d_v = dev_f(v, nk), *d_g = dev_f(g, nq);
    int32_t *d_seg = dev_i(seg, (size_t)B * T);
    float *out = malloc(nq * 4), *lse = malloc(nl * 4), *nq_nan = hnan(nq), *nk_nan = hnan(nk), *nl_nan = hnan(nl);
    float *d_out = dev_f(nq_nan, nq), *d_lse = dev_f(nl_nan, nl);
    cpu->attention_forward_seg(out, lse, q, k, v, seg, B, T, NH, KVH, HD);
    gpu->attention_forward_seg(d_out, d_lse, d_q, d_k, d_v, d_seg, B, T, NH, KVH, HD);
    cmp("attention_forward_seg", tag, d_out, out, nq, FWD_TOL);
    cmp("attention_forward_seg", tag, d_lse, lse, nl, FWD_TOL);
    float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    float *d_dq = dev_f(nq_nan, nq), *d_dk = dev_f(nk_nan, nk), *d_dv = dev_f(nk_nan, nk);
    float *d_out_c = dev_f(out, nq), *d_lse_c = dev_f(lse, nl);
    cpu->attention_backward_seg(dq, dk, dv, g, out, lse, q, k, v, seg, B, T, NH, KVH, HD);
    gpu->attention_backward_seg(d_dq, d_dk, d_dv, d_g, d_out_c, d_lse_c, d_q, d_k, d_v, d_seg, B, T, NH, KVH, HD);
    cmp("attention_backward_seg", tag, d_dq, dq, nq, BWD_TOL);
    cmp("attention_backward_seg", tag, d_dk, dk, nk, BWD_TOL);
    cmp("attention_backward_seg", tag, d_dv, dv, nk, BWD_TOL);
    gpu_ok(tag);
    gpu->free(d_q), gpu->free(d_k), gpu->free(d_v), gpu->free(d_g), gpu->free(d_seg), gpu->free(d_out);
    gpu->free(d_lse), gpu->free(d_dq), gpu->free(d_dk), gpu->free(d_dv), gpu->free(d_out_c), gpu->free(d_lse_c);
    free(seg), free(q), free(k), free(v), free(g), free(out), free(lse), free(nq_nan), free(nk_nan), free(nl_nan);
    free(dq), free(dk), free(dv);
}

/* ---- KV cache: write, then decode against it ---- */

/* device buffers equal bit for bit */
static int dev_same(const float *a, const float *b, size_t n) {
    float *ha = down(a, n), *hb = down(b, n);
    int same = memcmp(ha, hb, n * sizeof(float)) == 0;
    free(ha), free(hb);
    return same;
}

/* The decode step's fused ops against the op-by-op sequence they stand
 * for, on the GPU: the same bits (the CPU comparisons of the parts hold
 * for the whole). */
static void test_fused_decode(int N, int S, int Lmax, int NH, int KVH, int HD, int C, int with_bias) {
    char tag[128];
    snprintf(tag, sizeof tag, "N=%d S=%d L=%d NH=%d KVH=%d HD=%d C=%d bias=%d", N, S, Lmax, NH, KVH, HD, C, with_bias);
    /* add + rmsnorm */
    size_t nx = (size_t)N * C;
    float *x = hrand(nx, 1.0f), *dx = hrand(nx, 1.0f), *w = hrand(C, 1.0f);
    float *x1 = dev_f(x, nx), *x2 = dev_f(x, nx), *d_dx = dev_f(dx, nx), *d_w = dev_f(w, C);
    float *o1 = gpu->alloc(nx * 4), *o2 = gpu->alloc(nx * 4), *r1 = gpu->alloc(N * 4), *r2 = gpu->alloc(N * 4);
    gpu->add_inplace(x1, d_dx, nx);
    gpu->rmsnorm_forward(o1, r1, x1, d_w, N, C, 1e-6f);
    gpu->add_rmsnorm_forward(x2, d_dx, o2, r2, d_w, N, C, 1e-6f);
    int same = dev_same(x1, x2, nx) && dev_same(o1, o2, nx) && dev_same(r1, r2, N);
    CHECKF(same, "add_rmsnorm_forward %s: differs from add_inplace + rmsnorm_forward", tag);
    printf("fused add_rmsnorm_forward   %-44s bit-identical: %s\n", tag, same ? "yes" : "NO");
    gpu->free(x1), gpu->free(x2), gpu->free(d_dx), gpu->free(d_w), gpu->free(o1), gpu->free(o2), gpu->free(r1),
        gpu->free(r2);
    free(x), free(dx), free(w);

    /* bias + split + rope + cache write */
    int QD = NH * HD, KD = KVH * HD, W = QD + 2 * KD, half = HD / 2;
    size_t stride = (size_t)Lmax * KD, nc = (size_t)S * stride;
    float *qkv = hrand((size_t)N * W, 1.0f), *bias = hrand(W, 0.5f), *kc = hrand(nc, 1.0f);
    int32_t *slot = malloc(N * 4), *pos = malloc(N * 4);
    for (int n = 0; n < N; n++) {
        slot[n] = n % S;
        pos[n] = (int32_t)((n / S + rng_u64(&rng) % 5) % Lmax);
        for (int m = 0; m < n; m++) /* keep (slot, pos) distinct */
            if (slot[m] == slot[n] && pos[m] == pos[n]) pos[n] = (pos[n] + 1) % Lmax, m = -1;
    }
    float *cs = malloc((size_t)Lmax * (half ? half : 1) * 4), *sn = malloc((size_t)Lmax * (half ? half : 1) * 4);
    for (int p = 0; p < Lmax; p++)
        for (int i = 0; i < half; i++) {
            double th = p * pow(1e6, -2.0 * i / HD);
            cs[(size_t)p * half + i] = (float)cos(th), sn[(size_t)p * half + i] = (float)sin(th);
        }
    float *qkvb = hcopy(qkv, (size_t)N * W); /* the bias as matmul_forward adds it */
    if (with_bias)
        for (int n = 0; n < N; n++)
            for (int j = 0; j < W; j++) qkvb[(size_t)n * W + j] += bias[j];
    float *d_qkv = dev_f(qkv, (size_t)N * W), *d_qkvb = dev_f(qkvb, (size_t)N * W), *d_bias = dev_f(bias, W);
    float *d_cs = dev_f(cs, (size_t)Lmax * (half ? half : 1)), *d_sn = dev_f(sn, (size_t)Lmax * (half ? half : 1));
    int32_t *d_slot = dev_i(slot, N), *d_pos = dev_i(pos, N);
    float *kc1 = dev_f(kc, nc), *vc1 = dev_f(kc, nc), *kc2 = dev_f(kc, nc), *vc2 = dev_f(kc, nc);
    float *q1 = gpu->alloc((size_t)N * QD * 4), *k1 = gpu->alloc((size_t)N * KD * 4), *v1 = gpu->alloc((size_t)N * KD * 4);
    float *q2 = gpu->alloc((size_t)N * QD * 4);
    gpu->qkv_split(q1, k1, v1, d_qkvb, N, QD, KD);
    gpu->rope_apply(q1, d_pos, d_cs, d_sn, N, NH, HD, 0);
    gpu->rope_apply(k1, d_pos, d_cs, d_sn, N, KVH, HD, 0);
    gpu->kv_cache_write(kc1, vc1, k1, v1, d_slot, d_pos, stride, N, KD);
    gpu->qkv_rope_cache(q2, with_bias ? d_qkv : d_qkvb, with_bias ? d_bias : NULL, d_pos, d_cs, d_sn, kc2, vc2, d_slot,
                        stride, N, NH, KVH, HD);
    same = dev_same(q1, q2, (size_t)N * QD) && dev_same(kc1, kc2, nc) && dev_same(vc1, vc2, nc);
    CHECKF(same, "qkv_rope_cache %s: differs from split + rope + cache write", tag);
    printf("fused qkv_rope_cache        %-44s bit-identical: %s\n", tag, same ? "yes" : "NO");
    gpu_ok(tag);
    void *bufs[] = {d_qkv, d_qkvb, d_bias, d_cs, d_sn, d_slot, d_pos, kc1, vc1, kc2, vc2, q1, k1, v1, q2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gpu->free(bufs[i]);
    free(qkv), free(bias), free(kc), free(slot), free(pos), free(cs), free(sn), free(qkvb);
}

static void test_decode(int N, int S, int Lmax, int NH, int KVH, int HD) {
    char tag[96];
    snprintf(tag, sizeof tag, "N=%d S=%d L=%d NH=%d KVH=%d HD=%d", N, S, Lmax, NH, KVH, HD);
    int KD = KVH * HD;
    size_t stride = (size_t)Lmax * KD, nc = (size_t)S * stride, nq = (size_t)N * NH * HD;
    float *kc = hrand(nc, 1.0f), *vc = hrand(nc, 1.0f);
    float *d_kc = dev_kv(kc, nc), *d_vc = dev_kv(vc, nc);
    /* write N rows at distinct (slot, pos) */
    int32_t *slot = malloc(N * sizeof(int32_t)), *pos = malloc(N * sizeof(int32_t)), *len = malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) {
        slot[n] = n % S;
        pos[n] = (int32_t)((n / S * 7 + rng_u64(&rng) % 3) % Lmax);
        for (int m = 0; m < n; m++) /* keep (slot, pos) distinct */
            if (slot[m] == slot[n] && pos[m] == pos[n]) pos[n] = (pos[n] + 1) % Lmax, m = -1;
    }
    float *k = hrand((size_t)N * KD, 1.0f), *v = hrand((size_t)N * KD, 1.0f);
    float *d_k = dev_f(k, (size_t)N * KD), *d_v = dev_f(v, (size_t)N * KD);
    int32_t *d_slot = dev_i(slot, N), *d_pos = dev_i(pos, N);
    cpu->kv_cache_write(kc, vc, k, v, slot, pos, stride, N, KD);
    gpu->kv_cache_write(d_kc, d_vc, d_k, d_v, d_slot, d_pos, stride, N, KD);
    for (int kvi = 0; kvi < 2; kvi++) { /* exact (bf16 caches: the CPU's values rounded to bf16) */
        float *got = down_kv(kvi ? d_vc : d_kc, nc), *ref = hcopy(kvi ? vc : kc, nc);
        if (kv16())
            for (size_t i = 0; i < nc; i++) ref[i] = bf2f(f2bf(ref[i]));
        double e = nerr(got, ref, nc);
        note_err(kv16() ? "kv_cache_write (bf16 cache)" : "kv_cache_write", e, 0.0);
        CHECKF(e == 0.0, "kv_cache_write %s: normalised error %.3g", tag, e);
        free(got), free(ref);
    }

    /* decode: random slots and lengths, including 1 and the full cache */
    for (int n = 0; n < N; n++) {
        slot[n] = (int32_t)(rng_u64(&rng) % S);
        len[n] = n == 0 ? 1 : n == 1 ? Lmax : 1 + (int32_t)(rng_u64(&rng) % Lmax);
    }
    float *q = hrand(nq, 1.0f), *d_q = dev_f(q, nq), *out = malloc(nq * sizeof(float)), *nan_q = hnan(nq);
    float *d_out = dev_f(nan_q, nq);
    int32_t *d_slot2 = dev_i(slot, N), *d_len = dev_i(len, N);
    cpu->attention_decode(out, q, kc, vc, slot, len, stride, N, NH, KVH, HD);
    gpu->attention_decode(d_out, d_q, d_kc, d_vc, d_slot2, d_len, stride, N, NH, KVH, HD);
    cmp("attention_decode", tag, d_out, out, nq, FWD_TOL);
    /* the same caches paged: blocks of 5 positions in a scrambled order;
     * the same kernels read through the table, so the same bits */
    int BS = 5, MB = (Lmax + BS - 1) / BS, NB = S * MB + 3;
    int32_t *table = malloc((size_t)S * MB * sizeof(int32_t)), *perm = malloc((size_t)NB * sizeof(int32_t));
    for (int i = 0; i < NB; i++) perm[i] = i;
    for (int i = NB - 1; i > 0; i--) {
        int j = (int)(rng_u64(&rng) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int i = 0; i < S * MB; i++) table[i] = perm[i];
    size_t np = (size_t)NB * BS * KD;
    float *kp = hrand(np, 1.0f), *vp = hrand(np, 1.0f);
    for (int sl = 0; sl < S; sl++)
        for (int p = 0; p < Lmax; p++) {
            size_t to = ((size_t)table[sl * MB + p / BS] * BS + p % BS) * KD, from = (size_t)sl * stride + (size_t)p * KD;
            memcpy(kp + to, kc + from, KD * sizeof(float)), memcpy(vp + to, vc + from, KD * sizeof(float));
        }
    float *d_kp = dev_kv(kp, np), *d_vp = dev_kv(vp, np), *d_outp = dev_f(nan_q, nq);
    int32_t *d_table = dev_i(table, S * MB);
    gpu->attention_decode_paged(d_outp, d_q, d_kp, d_vp, d_table, MB, BS, d_slot2, d_len, N, NH, KVH, HD);
    float *hp = down(d_outp, nq), *hc = down(d_out, nq);
    CHECKF(bits_equal(hp, hc, nq), "attention_decode_paged %s: not the contiguous cache's bits", tag);
    free(hp), free(hc), free(table), free(perm), free(kp), free(vp);
    gpu->free(d_kp), gpu->free(d_vp), gpu->free(d_outp), gpu->free(d_table);
    gpu_ok(tag);
    gpu->free(d_kc), gpu->free(d_vc), gpu->free(d_k), gpu->free(d_v), gpu->free(d_slot), gpu->free(d_pos);
    gpu->free(d_q), gpu->free(d_out), gpu->free(d_slot2), gpu->free(d_len);
    free(kc), free(vc), free(slot), free(pos), free(len), free(k), free(v), free(q), free(out), free(nan_q);
}

/* The bf16 training forward of a (B, T) batch equals, bit for bit,
 * decoding each of its rows from a KV cache holding the batch's K and V
 * (slot b, length t + 1): the arithmetic the sampler used when it drew
 * the token. At batch-invariance level 1 for every shape; at level 0 for
 * the shapes the flash kernels take (head size 32, 64, 128; up to 16
 * query heads per kv head), in the cache's element type. */
static void test_rows_match_decode(int B, int T, int NH, int KVH, int HD, int level) {
    char tag[112];
    snprintf(tag, sizeof tag, "B=%d T=%d NH=%d KVH=%d HD=%d level %d%s", B, T, NH, KVH, HD, level,
             kv16() ? "" : " fp32 cache");
    int N = B * T, KD = KVH * HD;
    size_t nq = (size_t)N * NH * HD, nk = (size_t)N * KD, nl = (size_t)B * NH * T;
    float *q = hrand(nq, 1.0f), *k = hrand(nk, 1.0f), *v = hrand(nk, 1.0f), *nan_q = hnan(nq), *nan_l = hnan(nl);
    float *d_q = dev_f(q, nq), *d_k = dev_f(k, nk), *d_v = dev_f(v, nk);
    float *d_out = dev_f(nan_q, nq), *d_dec = dev_f(nan_q, nq), *d_lse = dev_f(nan_l, nl);
    int32_t *slot = malloc(N * sizeof(int32_t)), *len = malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) slot[n] = n / T, len[n] = n % T + 1;
    int32_t *d_slot = dev_i(slot, N), *d_len = dev_i(len, N);
    int was = cuda_batch_invariant();
    cuda_set_batch_invariant(level);
    gpu->attention_forward(d_out, d_lse, d_q, d_k, d_v, B, T, NH, KVH, HD);
    cuda_set_batch_invariant(was);
    /* the batch's K and V written into a cache of B slots x T positions,
     * in the cache's element type */
    float *d_kc = gpu->alloc(nk * 4), *d_vc = gpu->alloc(nk * 4);
    int32_t *pos = malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) pos[n] = n % T;
    int32_t *d_pos = dev_i(pos, N);
    gpu->kv_cache_write(d_kc, d_vc, d_k, d_v, d_slot, d_pos, (size_t)T * KD, N, KD);
    gpu->attention_decode(d_dec, d_q, d_kc, d_vc, d_slot, d_len, (size_t)T * KD, N, NH, KVH, HD);
    gpu->free(d_kc), gpu->free(d_vc), gpu->free(d_pos), free(pos);
    float *a = down(d_out, nq), *b = down(d_dec, nq);
    CHECKF(bits_equal(a, b, nq), "bf16 attention_forward %s differs from decoding its rows", tag);
    gpu_ok(tag);
    printf("bf16 attention_forward %-44s bit-identical to decode: %s\n", tag, bits_equal(a, b, nq) ? "yes" : "NO");
    gpu->free(d_q), gpu->free(d_k), gpu->free(d_v), gpu->free(d_out), gpu->free(d_dec), gpu->free(d_lse);
    gpu->free(d_slot), gpu->free(d_len);
    free(q), free(k), free(v), free(nan_q), free(nan_l), free(slot), free(len), free(a), free(b);
}

/* ---- qkv split / merge, swiglu, embedding ---- */

static void test_qkv(int N, int QD, int KD) {
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d QD=%d KD=%d", N, QD, KD);
    size_t W = (size_t)QD + 2 * KD, nq = (size_t)N * QD, nk = (size_t)N * KD;
    float *qkv = hrand(N * W, 1.0f), *d_qkv = dev_f(qkv, N * W);
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *nan_q = hnan(nq), *nan_k = hnan(nk);
    float *d_q = dev_f(nan_q, nq), *d_k = dev_f(nan_k, nk), *d_v = dev_f(nan_k, nk);
    cpu->qkv_split(q, k, v, qkv, N, QD, KD);
    gpu->qkv_split(d_q, d_k, d_v, d_qkv, N, QD, KD);
    cmp("qkv_split", tag, d_q, q, nq, 0.0);
    cmp("qkv_split", tag, d_k, k, nk, 0.0);
    cmp("qkv_split", tag, d_v, v, nk, 0.0);
    float *nan_w = hnan(N * W), *d_m = dev_f(nan_w, N * W);
    gpu->qkv_merge(d_m, d_q, d_k, d_v, N, QD, KD);
    cmp("qkv_merge", tag, d_m, qkv, N * W, 0.0);
    gpu_ok(tag);
    gpu->free(d_qkv), gpu->free(d_q), gpu->free(d_k), gpu->free(d_v), gpu->free(d_m);
    free(qkv), free(q), free(k), free(v), free(nan_q), free(nan_k), free(nan_w);
}

static void test_swiglu(int N, int K) {
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d K=%d", N, K);
    size_t n = (size_t)N * K;
    float *gu = hrand(2 * n, 2.0f), *dh = hrand(n, 1.0f), *d_gu = dev_f(gu, 2 * n), *d_dh = dev_f(dh, n);
    float *h = malloc(n * 4), *dgu = malloc(2 * n * 4), *nan_h = hnan(2 * n);
    float *d_h = dev_f(nan_h, n), *d_dgu = dev_f(nan_h, 2 * n);
    cpu->swiglu_forward(h, gu, N, K);
    gpu->swiglu_forward(d_h, d_gu, N, K);
    cmp("swiglu_forward", tag, d_h, h, n, FWD_TOL);
    cpu->swiglu_backward(dgu, dh, gu, N, K);
    gpu->swiglu_backward(d_dgu, d_dh, d_gu, N, K);
    cmp("swiglu_backward", tag, d_dgu, dgu, 2 * n, BWD_TOL);
    gpu_ok(tag);
    gpu->free(d_gu), gpu->free(d_dh), gpu->free(d_h), gpu->free(d_dgu);
    free(gu), free(dh), free(h), free(dgu), free(nan_h);
}

/* The GEMM-only SwiGLU forms (backend.h) against the full ones, through
 * the GEMMs that read their outputs in the model's order (model_train.c):
 * the same bits in both precisions, then against the CPU. A GEMM that
 * would have to read an output left in bf16 only reports an error. */
static void test_swiglu_gemm(int N, int K, int C) {
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d K=%d C=%d", N, K, C);
    size_t n = (size_t)N * K, nc = (size_t)N * C, nw = (size_t)C * K;
    float *gu = hrand(2 * n, 2.0f), *dres = hrand(nc, 1.0f), *ln = hrand(nc, 1.0f), *wd = hrand(nw, 0.1f),
          *wgu = hrand(2 * nw, 0.1f);
    float *d_gu = dev_f(gu, 2 * n), *d_dres = dev_f(dres, nc), *d_ln = dev_f(ln, nc), *d_wd = dev_f(wd, nw),
          *d_wgu = dev_f(wgu, 2 * nw);
    int bf16 = cuda_precision() == CUDA_PREC_BF16;
    float *r[2][6]; /* out, dh, dln, dwgu, dwd, h (not in bf16's GEMM-only form: unwritten) */
    for (int form = 0; form < 2; form++) {
        float *h = gpu->alloc(n * 4), *out = gpu->alloc(nc * 4), *dh = gpu->alloc(n * 4), *dgu = gpu->alloc(2 * n * 4);
        float *dln = gpu->alloc(nc * 4), *dwgu = gpu->alloc(2 * nw * 4), *dwd = gpu->alloc(nw * 4);
        if (!form) {
            gpu->swiglu_forward(h, d_gu, N, K);
            gpu->matmul_forward(out, h, d_wd, NULL, N, K, C);
            gpu->matmul_backward(dh, dwd, NULL, d_dres, h, d_wd, N, K, C, 0);
            gpu->swiglu_backward(dgu, dh, d_gu, N, K);
            gpu->matmul_backward(dln, dwgu, NULL, dgu, d_ln, d_wgu, N, C, 2 * K, 0);
        } else {
            gpu->swiglu_forward_gemm(h, d_gu, N, K);
            gpu->matmul_forward(out, h, d_wd, NULL, N, K, C);
            gpu->matmul_backward(dh, NULL, NULL, d_dres, h, d_wd, N, K, C, 0);
            gpu->swiglu_backward_gemm(dgu, h, dh, d_gu, N, K);
            gpu->matmul_backward(dln, dwgu, NULL, dgu, d_ln, d_wgu, N, C, 2 * K, 0);
            gpu->matmul_backward(NULL, dwd, NULL, d_dres, h, d_wd, N, K, C, 0);
        }
        gpu_ok(tag);
        r[form][0] = down(out, nc), r[form][1] = down(dh, n), r[form][2] = down(dln, nc);
        r[form][3] = down(dwgu, 2 * nw), r[form][4] = down(dwd, nw), r[form][5] = form && bf16 ? NULL : down(h, n);
        gpu->free(h), gpu->free(out), gpu->free(dh), gpu->free(dgu), gpu->free(dln), gpu->free(dwgu), gpu->free(dwd);
    }
    static const char *names[5] = {"out", "dh", "dln", "dw_gu", "dw_down"};
    size_t len[5] = {nc, n, nc, 2 * nw, nw};
    for (int i = 0; i < 5; i++)
        CHECKF(bits_equal(r[0][i], r[1][i], len[i]), "swiglu_*_gemm %s %s: not the full forms' bits", tag, names[i]);
    if (!bf16) /* full precision: h written (by the backward's recompute last) */
        CHECKF(bits_equal(r[0][5], r[1][5], n), "swiglu_*_gemm %s h: not swiglu_forward's bits", tag);
    /* and the CPU's values, within this pass's tolerances */
    float *h = malloc(n * 4), *out = malloc(nc * 4), *dh = malloc(n * 4), *dgu = malloc(2 * n * 4),
          *dln = malloc(nc * 4), *dwgu = calloc(2 * nw, 4), *dwd = calloc(nw, 4);
    cpu->swiglu_forward(h, gu, N, K);
    cpu->matmul_forward(out, h, wd, NULL, N, K, C);
    cpu->matmul_backward(dh, dwd, NULL, dres, h, wd, N, K, C, 0);
    cpu->swiglu_backward(dgu, dh, gu, N, K);
    cpu->matmul_backward(dln, dwgu, NULL, dgu, ln, wgu, N, C, 2 * K, 0);
    float *ref[5] = {out, dh, dln, dwgu, dwd};
    for (int i = 0; i < 5; i++) {
        double e = nerr(r[1][i], ref[i], len[i]);
        note_err("swiglu_*_gemm chain", e, i ? BWD_TOL : FWD_TOL);
        CHECKF(e <= (i ? BWD_TOL : FWD_TOL), "swiglu_*_gemm %s %s: normalised error %.3g", tag, names[i], e);
    }
    /* in bf16 the GEMM-only forward leaves h's fp32 values unwritten: a
     * GEMM after another op cannot take the copy and must refuse */
    if (bf16) {
        float *h2 = gpu->alloc(n * 4), *o2 = gpu->alloc(nc * 4);
        gpu->swiglu_forward_gemm(h2, d_gu, N, K);
        gpu->zero(o2, nc * 4); /* anything between voids the hand-off */
        gpu->matmul_forward(o2, h2, d_wd, NULL, N, K, C);
        Err err;
        int rc = cuda_check(&err);
        CHECKF(rc == -1 && strstr(err.msg, "bf16 only"), "GEMM over an unwritten h: expected an error, got %d '%s'", rc,
               rc ? err.msg : "");
        /* once written in full precision, the same GEMM runs */
        gpu->swiglu_forward(h2, d_gu, N, K);
        gpu->zero(o2, nc * 4);
        gpu->matmul_forward(o2, h2, d_wd, NULL, N, K, C);
        gpu_ok("swiglu_forward after swiglu_forward_gemm");
        float *o2h = down(o2, nc);
        CHECK(bits_equal(o2h, r[0][0], nc));
        free(o2h);
        gpu->free(h2), gpu->free(o2);
    }
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 6; i++) free(r[f][i]);
    gpu->free(d_gu), gpu->free(d_dres), gpu->free(d_ln), gpu->free(d_wd), gpu->free(d_wgu);
    free(gu), free(dres), free(ln), free(wd), free(wgu), free(h), free(out), free(dh), free(dgu), free(dln),
        free(dwgu), free(dwd);
}

static void test_embedding(int N, int V, int C) {
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d V=%d C=%d", N, V, C);
    size_t nt = (size_t)V * C, no = (size_t)N * C;
    int32_t *ids = malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) ids[n] = (int32_t)(rng_u64(&rng) % (V < 50 ? V : 50)); /* many repeats */
    ids[N - 1] = V - 1;
    float *table = hrand(nt, 1.0f), *d_table = dev_f(table, nt), *out = malloc(no * 4), *nan_o = hnan(no);
    float *d_out = dev_f(nan_o, no);
    int32_t *d_ids = dev_i(ids, N);
    cpu->embedding_forward(out, ids, table, N, C);
    gpu->embedding_forward(d_out, d_ids, d_table, N, C);
    cmp("embedding_forward", tag, d_out, out, no, 0.0);
    float *dout = hrand(no, 1.0f), *d_dout = dev_f(dout, no), *dt = hrand(nt, 1.0f), *d_dt = dev_f(dt, nt);
    cpu->embedding_backward(dt, dout, ids, N, C); /* accumulates */
    gpu->embedding_backward(d_dt, d_dout, d_ids, N, C);
    cmp("embedding_backward", tag, d_dt, dt, nt, 0.0); /* same order of adds: exact */
    gpu_ok(tag);
    gpu->free(d_table), gpu->free(d_out), gpu->free(d_ids), gpu->free(d_dout), gpu->free(d_dt);
    free(ids), free(table), free(out), free(nan_o), free(dout), free(dt);
}

/* ---- LM head ---- */

/* logp and entropy in double from the float inputs */
static void lm_head_ref(float *logp, float *ent, const float *x, const float *w, const int32_t *tg, int N, int C,
                        int V, float temp) {
    double *z = malloc((size_t)V * sizeof(double));
    for (int n = 0; n < N; n++) {
        double m = -INFINITY;
        for (int j = 0; j < V; j++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += (double)x[(size_t)n * C + c] * w[(size_t)j * C + c];
            z[j] = s / temp;
            if (z[j] > m) m = z[j];
        }
        double S = 0, SZ = 0;
        for (int j = 0; j < V; j++) {
            double e = exp(z[j] - m);
            S += e, SZ += e * z[j];
        }
        double lse = m + log(S);
        logp[n] = tg[n] < 0 ? 0.0f : (float)(z[tg[n]] - lse);
        ent[n] = tg[n] < 0 ? 0.0f : (float)(lse - SZ / S);
    }
    free(z);
}

static void test_lm_head(int N, int C, int V, float temp, int chunk) {
    char tag[96];
    snprintf(tag, sizeof tag, "N=%d C=%d V=%d temp=%g chunk=%d", N, C, V, temp, chunk);
    cuda_set_lm_head_chunk(chunk);
    size_t nx = (size_t)N * C, nw = (size_t)V * C, nl = (size_t)N * V;
    float *x = hrand(nx, 1.0f), *w = hrand(nw, 0.3f), *dlogp = hrand(N, 1.0f);
    int32_t *tg = malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) {
        tg[n] = n % 5 == 3 ? -1 : (int32_t)(rng_u64(&rng) % V);
        if (n % 7 == 2) dlogp[n] = 0.0f; /* skipped rows */
    }
    float *d_x = dev_f(x, nx), *d_w = dev_f(w, nw), *d_dlogp = dev_f(dlogp, N);
    int32_t *d_tg = dev_i(tg, N);
    float *logp = malloc(N * 4), *ent = malloc(N * 4), *logits = malloc(nl * 4), *nan_n = hnan(N), *nan_l = hnan(nl);
    float *d_logp = dev_f(nan_n, N), *d_ent = dev_f(nan_n, N), *d_logits = dev_f(nan_l, nl);
    /* without logits_out (chunks in scratch), then keeping them */
    cpu->lm_head_logprob_forward(logp, ent, NULL, x, w, tg, N, C, V, temp);
    gpu->lm_head_logprob_forward(d_logp, d_ent, NULL, d_x, d_w, d_tg, N, C, V, temp);
    /* Over a large vocabulary the CPU's own sums (float partials of
     * thousands of terms) drift by ~1e-5, so the forward is held to 1e-5
     * against a double-precision reference and to 5e-5 against the CPU. */
    float *ref_lp = malloc(N * 4), *ref_en = malloc(N * 4);
    lm_head_ref(ref_lp, ref_en, x, w, tg, N, C, V, temp);
    cmp("lm_head_logprob_forward (vs fp64)", tag, d_logp, ref_lp, N, FWD_TOL);
    cmp("lm_head_logprob_forward (vs fp64)", tag, d_ent, ref_en, N, FWD_TOL);
    note_err("lm_head_logprob_forward (cpu vs fp64)", fmax(nerr(logp, ref_lp, N), nerr(ent, ref_en, N)), 1.0);
    free(ref_lp), free(ref_en);
    cmp("lm_head_logprob_forward", tag, d_logp, logp, N, 5 * FWD_TOL);
    cmp("lm_head_logprob_forward", tag, d_ent, ent, N, 5 * FWD_TOL);
    gpu->zero(d_logp, N * 4);
    cpu->lm_head_logprob_forward(logp, ent, logits, x, w, tg, N, C, V, temp);
    gpu->lm_head_logprob_forward(d_logp, NULL, d_logits, d_x, d_w, d_tg, N, C, V, temp);
    cmp("lm_head_logprob_forward", tag, d_logp, logp, N, 5 * FWD_TOL);
    cmp("lm_head_logprob_forward", tag, d_logits, logits, nl, FWD_TOL);

    /* backward: dx overwritten, dw accumulated; recomputed and kept logits */
    float *dx = malloc(nx * 4), *dw = hrand(nw, 0.1f), *dw0 = hcopy(dw, nw), *nan_x = hnan(nx);
    float *d_dx = dev_f(nan_x, nx), *d_dw = dev_f(dw, nw);
    cpu->lm_head_logprob_backward(dx, dw, dlogp, x, w, NULL, tg, N, C, V, temp);
    gpu->lm_head_logprob_backward(d_dx, d_dw, d_dlogp, d_x, d_w, NULL, d_tg, N, C, V, temp);
    cmp("lm_head_logprob_backward", tag, d_dx, dx, nx, BWD_TOL);
    cmp("lm_head_logprob_backward", tag, d_dw, dw, nw, BWD_TOL);
    Err err;
    cuda_upload(d_dw, dw0, nw * 4, &err);
    memcpy(dw, dw0, nw * 4);
    gpu->zero(d_dx, nx * 4);
    float *d_logits_c = dev_f(logits, nl); /* the same logits on both sides */
    cpu->lm_head_logprob_backward(dx, dw, dlogp, x, w, logits, tg, N, C, V, temp);
    gpu->lm_head_logprob_backward(d_dx, d_dw, d_dlogp, d_x, d_w, d_logits_c, d_tg, N, C, V, temp);
    cmp("lm_head_logprob_backward", tag, d_dx, dx, nx, BWD_TOL);
    cmp("lm_head_logprob_backward", tag, d_dw, dw, nw, BWD_TOL);
    gpu_ok(tag);
    cuda_set_lm_head_chunk(0);
    gpu->free(d_x), gpu->free(d_w), gpu->free(d_dlogp), gpu->free(d_tg), gpu->free(d_logp), gpu->free(d_ent);
    gpu->free(d_logits), gpu->free(d_dx), gpu->free(d_dw), gpu->free(d_logits_c);
    free(x), free(w), free(dlogp), free(tg), free(logp), free(ent), free(logits), free(nan_n), free(nan_l);
    free(dx), free(dw), free(dw0), free(nan_x);
}

/* ---- one transformer layer, forward and backward, op after op ----
 * A Qwen2-shaped block (embedding, RMSNorm, QKV with bias, RoPE, GQA
 * attention, output projection, residual, SwiGLU MLP, final norm, LM head)
 * run on each backend from the same random weights; the log-probs and
 * every weight gradient must agree. Errors compound through the chain, so
 * everything is held to the backward tolerance. */

typedef struct {
    int B, T, C, NH, KVH, HD, F, V;
} Dims;

enum { W_EMB, W_LN1, W_QKV, W_BQKV, W_O, W_LN2, W_GU, W_DOWN, W_LNF, W_LM, NW };

static size_t w_len(const Dims *d, int i) {
    size_t C = d->C, QKV = (size_t)(d->NH + 2 * d->KVH) * d->HD;
    switch (i) {
    case W_EMB: case W_LM: return (size_t)d->V * C;
    case W_LN1: case W_LN2: case W_LNF: return C;
    case W_QKV: return QKV * C;
    case W_BQKV: return QKV;
    case W_O: return C * d->NH * d->HD;
    case W_GU: return 2 * (size_t)d->F * C;
    default: return C * d->F; /* W_DOWN */
    }
}

/* a host array in `be`'s memory */
static void *put(const Backend *be, const void *h, size_t bytes) {
    if (be == gpu) return dev_of(h, bytes);
    void *p = be->alloc(bytes);
    memcpy(p, h, bytes);
    return p;
}

static float *fetch(const Backend *be, const float *p, size_t n) {
    if (be == gpu) return down(p, n);
    return hcopy(p, n);
}

/* Runs the layer on `be`; returns host copies of logp and of every weight
 * gradient (grad[i], length w_len). */
static float *chain_run(const Backend *be, const Dims *d, float *const *w_h, const int32_t *ids_h,
                        const int32_t *tg_h, const int32_t *pos_h, const float *cs_h, const float *sn_h,
                        int max_pos, const float *dlogp_h, float **grad_out) {
    int N = d->B * d->T, C = d->C, QD = d->NH * d->HD, KD = d->KVH * d->HD, F = d->F, V = d->V;
    size_t nt = (size_t)max_pos * (d->HD / 2);
    float *w[NW], *g[NW];
    for (int i = 0; i < NW; i++) {
        w[i] = put(be, w_h[i], w_len(d, i) * 4);
        g[i] = be->alloc(w_len(d, i) * 4);
    }
    int32_t *ids = put(be, ids_h, N * 4), *tg = put(be, tg_h, N * 4), *pos = put(be, pos_h, N * 4);
    float *cs = put(be, cs_h, nt * 4), *sn = put(be, sn_h, nt * 4), *dlogp = put(be, dlogp_h, N * 4);
#define A(n) ((float *)be->alloc((size_t)(n) * 4))
    float *x = A(N * C), *h1 = A(N * C), *r1 = A(N), *qkv = A(N * (QD + 2 * KD)), *q = A(N * QD), *k = A(N * KD);
    float *v = A(N * KD), *att = A(N * QD), *lse = A(N * d->NH), *o = A(N * C), *h2 = A(N * C), *r2 = A(N);
    float *gu = A(2 * N * F), *act = A(N * F), *mo = A(N * C), *hf = A(N * C), *rf = A(N), *logp = A(N), *ent = A(N);
    float *dhf = A(N * C), *dx3 = A(N * C), *dact = A(N * F), *dgu = A(2 * N * F), *dh = A(N * C);
    float *datt = A(N * QD), *dq = A(N * QD), *dk = A(N * KD), *dv = A(N * KD), *dqkv = A(N * (QD + 2 * KD));
#undef A
    /* forward: x1 = emb; x2 = x1 + attn(norm x1); x3 = x2 + mlp(norm x2) */
    be->embedding_forward(x, ids, w[W_EMB], N, C);
    be->rmsnorm_forward(h1, r1, x, w[W_LN1], N, C, 1e-6f);
    be->matmul_forward(qkv, h1, w[W_QKV], w[W_BQKV], N, C, QD + 2 * KD);
    be->qkv_split(q, k, v, qkv, N, QD, KD);
    be->rope_apply(q, pos, cs, sn, N, d->NH, d->HD, 0);
    be->rope_apply(k, pos, cs, sn, N, d->KVH, d->HD, 0);
    be->attention_forward(att, lse, q, k, v, d->B, d->T, d->NH, d->KVH, d->HD);
    be->matmul_forward(o, att, w[W_O], NULL, N, QD, C);
    float *x1 = fetch(be, x, (size_t)N * C); /* keep x1 for the first norm's backward */
    float *x1s = put(be, x1, (size_t)N * C * 4);
    free(x1);
    be->add_inplace(x, o, (size_t)N * C); /* x = x2 */
    be->rmsnorm_forward(h2, r2, x, w[W_LN2], N, C, 1e-6f);
    be->matmul_forward(gu, h2, w[W_GU], NULL, N, C, 2 * F);
    int gemm_forms = be->swiglu_forward_gemm && be->swiglu_backward_gemm; /* as model_train.c runs them */
    if (gemm_forms) be->swiglu_forward_gemm(act, gu, N, F);
    else be->swiglu_forward(act, gu, N, F);
    be->matmul_forward(mo, act, w[W_DOWN], NULL, N, F, C);
    float *x2 = fetch(be, x, (size_t)N * C), *x2s = put(be, x2, (size_t)N * C * 4);
    free(x2);
    be->add_inplace(x, mo, (size_t)N * C); /* x = x3 */
    be->rmsnorm_forward(hf, rf, x, w[W_LNF], N, C, 1e-6f);
    be->lm_head_logprob_forward(logp, ent, NULL, hf, w[W_LM], tg, N, C, V, 1.0f);

    /* backward */
    be->lm_head_logprob_backward(dhf, g[W_LM], dlogp, hf, w[W_LM], NULL, tg, N, C, V, 1.0f);
    be->rmsnorm_backward(dx3, g[W_LNF], dhf, x, w[W_LNF], rf, N, C); /* dx3 starts at 0 */
    if (gemm_forms) {
        be->matmul_backward(dact, NULL, NULL, dx3, act, w[W_DOWN], N, F, C, 0);
        be->swiglu_backward_gemm(dgu, act, dact, gu, N, F);
        be->matmul_backward(dh, g[W_GU], NULL, dgu, h2, w[W_GU], N, C, 2 * F, 0);
        be->matmul_backward(NULL, g[W_DOWN], NULL, dx3, act, w[W_DOWN], N, F, C, 0);
    } else {
        be->matmul_backward(dact, g[W_DOWN], NULL, dx3, act, w[W_DOWN], N, F, C, 0);
        be->swiglu_backward(dgu, dact, gu, N, F);
        be->matmul_backward(dh, g[W_GU], NULL, dgu, h2, w[W_GU], N, C, 2 * F, 0);
    }
    be->rmsnorm_backward(dx3, g[W_LN2], dh, x2s, w[W_LN2], r2, N, C); /* dx3 is now dx2 */
    be->matmul_backward(datt, g[W_O], NULL, dx3, att, w[W_O], N, QD, C, 0);
    be->attention_backward(dq, dk, dv, datt, att, lse, q, k, v, d->B, d->T, d->NH, d->KVH, d->HD);
    be->rope_apply(dq, pos, cs, sn, N, d->NH, d->HD, 1);
    be->rope_apply(dk, pos, cs, sn, N, d->KVH, d->HD, 1);
    be->qkv_merge(dqkv, dq, dk, dv, N, QD, KD);
    be->matmul_backward(dh, g[W_QKV], g[W_BQKV], dqkv, h1, w[W_QKV], N, C, QD + 2 * KD, 0);
    be->rmsnorm_backward(dx3, g[W_LN1], dh, x1s, w[W_LN1], r1, N, C); /* dx3 is now dx1 */
    be->embedding_backward(g[W_EMB], dx3, ids, N, C);

    float *out = fetch(be, logp, N);
    for (int i = 0; i < NW; i++) grad_out[i] = fetch(be, g[i], w_len(d, i));
    void *bufs[] = {ids, tg, pos, cs, sn, dlogp, x, h1, r1, qkv, q, k, v, att, lse, o, h2, r2, gu, act, mo, hf, rf,
                    logp, ent, dhf, dx3, dact, dgu, dh, datt, dq, dk, dv, dqkv, x1s, x2s};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(bufs[i]);
    for (int i = 0; i < NW; i++) be->free(w[i]), be->free(g[i]);
    return out;
}

static void test_layer_chain(Dims d) {
    static const char *names[NW] = {"embed", "ln1", "qkv", "qkv bias", "o", "ln2", "gate_up", "down", "norm", "lm_head"};
    char tag[128];
    snprintf(tag, sizeof tag, "B=%d T=%d C=%d NH=%d KVH=%d HD=%d F=%d V=%d", d.B, d.T, d.C, d.NH, d.KVH, d.HD, d.F,
             d.V);
    int N = d.B * d.T, max_pos = d.T, half = d.HD / 2;
    /* its own data, whatever the tests before it drew: the bf16 errors
     * below depend on the values, and a test added earlier in the file
     * must not move them */
    rng_seed(&rng, 0x636861696eull + (uint64_t)d.T);
    float *w[NW];
    for (int i = 0; i < NW; i++) w[i] = hrand(w_len(&d, i), i == W_LN1 || i == W_LN2 || i == W_LNF ? 1.0f : 0.1f);
    int32_t *ids = malloc(N * 4), *tg = malloc(N * 4), *pos = malloc(N * 4);
    for (int n = 0; n < N; n++) {
        ids[n] = (int32_t)(rng_u64(&rng) % d.V), pos[n] = n % d.T;
        tg[n] = n % d.T == d.T - 1 ? -1 : (int32_t)(rng_u64(&rng) % d.V);
    }
    float *cs = malloc((size_t)max_pos * half * 4), *sn = malloc((size_t)max_pos * half * 4);
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            double th = p * pow(1e6, -2.0 * i / d.HD);
            cs[(size_t)p * half + i] = (float)cos(th), sn[(size_t)p * half + i] = (float)sin(th);
        }
    float *dlogp = hrand(N, 1.0f / N);
    float *gc[NW], *gg[NW];
    float *lc = chain_run(cpu, &d, w, ids, tg, pos, cs, sn, max_pos, dlogp, gc);
    float *lg = chain_run(gpu, &d, w, ids, tg, pos, cs, sn, max_pos, dlogp, gg);
    double e = nerr(lg, lc, N);
    note_err("layer chain: logp", e, FWD_TOL);
    CHECKF(e <= FWD_TOL, "layer chain %s: logp error %.3g", tag, e);
    for (int i = 0; i < NW; i++) {
        e = nerr(gg[i], gc[i], w_len(&d, i));
        /* The bias gradient is a column sum of dqkv over all N rows whose
         * terms largely cancel: its norm is about sqrt(N) times smaller
         * than the terms', while each term carries the bf16 chain's own
         * error, so its normalised error runs higher than the weights'
         * (0.03-0.05 at T = 300 in bf16; ~1e-6 in fp32). The embedding
         * gradient is the chain's input gradient: every op's backward
         * adds its bf16 error on the way down to it (0.0553 measured with
         * one data draw whose other gradients stayed within 0.05). */
        double tol = i == W_BQKV || i == W_EMB ? 2 * BWD_TOL : BWD_TOL;
        note_err("layer chain: weight grads", e, tol);
        CHECKF(e <= tol, "layer chain %s: d%s error %.3g", tag, names[i], e);
        free(gc[i]), free(gg[i]), free(w[i]);
    }
    gpu_ok(tag);
    free(lc), free(lg), free(ids), free(tg), free(pos), free(cs), free(sn), free(dlogp);
}

/* ---- sampling: the GPU op against the CPU sampler, same uniforms ---- */

static void test_sample(int N, int V, float scale, const SamplerParams *sp, const char *name) {
    char tag[160];
    snprintf(tag, sizeof tag, "%s N=%d V=%d scale=%g", name, N, V, scale);
    float *lg = hrand((size_t)N * V, scale);
    for (int n = 0; n < N; n++) { /* ties: a few tokens share the row's top logit */
        float *r = lg + (size_t)n * V;
        if (n % 3 == 1) {
            float mx = -INFINITY;
            for (int j = 0; j < V; j++) mx = fmaxf(mx, r[j]);
            for (int j = 0; j < V; j += V / 5 + 1) r[j] = mx;
        }
    }
    int32_t *tok = malloc(N * 4);
    float *lp = malloc(N * 4);
    double *u = malloc(N * sizeof(double));
    SamplerWork w;
    sampler_work_init(&w, V);
    for (int n = 0; n < N; n++) {
        Rng r0 = rng, r1 = rng;
        rng_u64(&rng); /* the next row gets another uniform */
        u[n] = sp->temperature > 0 ? rng_f64(&r1) : 0.0;
        tok[n] = sampler_sample(sp, lg + (size_t)n * V, &w, &r0, &lp[n]);
    }
    float *d_lg = dev_f(lg, (size_t)N * V);
    double *d_u = dev_of(u, N * sizeof(double));
    int32_t *d_tok = gpu->alloc(N * 4);
    float *d_lp = gpu->alloc(N * 4);
    gpu->sample(d_tok, d_lp, d_lg, d_u, N, V, sp->temperature, sp->top_k, sp->top_p, sp->min_p);
    int32_t *gt = malloc(N * 4);
    float *gl = down(d_lp, N);
    Err err;
    cuda_download(gt, d_tok, N * 4, &err);
    gpu_ok(tag);
    int same = 0;
    double worst = 0;
    for (int n = 0; n < N; n++) {
        CHECKF(gt[n] >= 0 && gt[n] < V, "%s: row %d token %d", tag, n, gt[n]);
        if (gt[n] < 0 || gt[n] >= V) continue;
        if (gt[n] == tok[n]) {
            same++;
            worst = fmax(worst, fabs((double)gl[n] - lp[n]));
        }
    }
    /* A uniform that lands within rounding of a boundary between two
     * tokens may go either way (the sums run in another order); anything
     * more is a different filter. */
    CHECKF(same >= N - (N + 99) / 100, "%s: %d of %d tokens equal the CPU sampler's", tag, same, N);
    note_err("sample (log-prob)", worst, 1e-5);
    CHECKF(worst <= 1e-5, "%s: log-prob differs by %g", tag, worst);
    gpu->free(d_lg), gpu->free(d_u), gpu->free(d_tok), gpu->free(d_lp);
    free(lg), free(tok), free(lp), free(u), free(gt), free(gl);
    sampler_work_free(&w);
}

static void test_samplers(void) {
    static const struct {
        const char *name;
        SamplerParams p;
    } cases[] = {
        {"greedy", {0.0f, 0, 1.0f, 0.0f}},
        {"T=1", {1.0f, 0, 1.0f, 0.0f}},
        {"T=0.6 top_p=0.95", {0.6f, 0, 0.95f, 0.0f}},
        {"top_k=50", {1.0f, 50, 1.0f, 0.0f}},
        {"top_k=20 top_p=0.8", {0.8f, 20, 0.8f, 0.0f}},
        {"min_p=0.05", {1.0f, 0, 1.0f, 0.05f}},
        {"top_k=40 top_p=0.9 min_p=0.02", {0.7f, 40, 0.9f, 0.02f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_sample(64, 1000, 3.0f, &cases[i].p, cases[i].name);    /* peaked */
        test_sample(16, 1000, 0.01f, &cases[i].p, cases[i].name);   /* nearly flat */
        BIG(test_sample(64, 151936, 4.0f, &cases[i].p, cases[i].name));
    }
}

/* ---- batch-invariant bf16 GEMMs ---- */

/* x rounded to bf16 (nearest even), as a float: operands made of such
 * values pass through the GPU's bf16 rounding unchanged, so the host can
 * form the exact product of what the tensor cores multiply. */
static float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* n bf16-representable values uniform in [-scale, scale). xorshift, not
 * rng_normal: the LM-head input gradient needs 6e8 of them. */
static float *hbf16(size_t n, float scale, uint64_t seed) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        p[i] = bf16_round(scale * ((float)(s >> 40) / 16777216.0f * 2.0f - 1.0f));
    }
    return p;
}

/* Forward: C(M,N) = A(M,K) W^T; input gradient: C(M,K) (+)= A(M,N) W, with
 * W (N,K): the two forms the invariant path serves (ta = 0). */
static void bi_run(int dinp, int acc, float *C, const float *A, const float *W, int M, int N, int K) {
    if (dinp) gpu->matmul_backward(C, NULL, NULL, A, NULL, W, M, K, N, acc);
    else gpu->matmul_forward(C, A, W, NULL, M, K, N);
}

/* Relative Frobenius error of some rows of the GPU product against the
 * product of the same (bf16-exact) operands in double. */
static double bi_ref_err(const float *got, const float *a, const float *w, const float *c0, int dinp, int acc, int N,
                         int K, int Mbig) {
    int in = dinp ? N : K, out = dinp ? K : N;
    int rows[] = {0, 1, 999, 1000, 1500, 2999, Mbig - 1};
    double *r = malloc(out * sizeof(double)), num = 0, den = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t row = (size_t)rows[i];
        const float *x = a + row * in;
        if (!dinp)
            for (int j = 0; j < N; j++) {
                double s = 0;
                const float *wj = w + (size_t)j * K;
                for (int k = 0; k < K; k++) s += (double)x[k] * wj[k];
                r[j] = s;
            }
        else {
            for (int k = 0; k < K; k++) r[k] = 0;
            for (int n = 0; n < N; n++) {
                double xn = x[n];
                const float *wn = w + (size_t)n * K;
                for (int k = 0; k < K; k++) r[k] += xn * wn[k];
            }
        }
        for (int j = 0; j < out; j++) {
            double ref = r[j] + (acc ? c0[row * out + j] : 0.0), d = got[row * out + j] - ref;
            num += d * d, den += ref * ref;
        }
    }
    free(r);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Rows computed alone (M of them, from the start of the batch or from its
 * middle through a pointer offset) must be bitwise the rows of the same
 * product over 4096 rows, with the invariant path on; with it off
 * (cublasGemmEx's own choice per call) the test only reports how often
 * they agree. W sits at `wofs` floats into a registered weight buffer, as
 * a model's weights do. `may_fall_back`: shapes whose leading dimensions
 * cuBLASLt may have no kernel for; the fallback is then reported, not
 * failed. */
static void test_batch_invariance(int N, int K, int dinp, int acc, int wofs, int may_fall_back) {
    int was = cuda_batch_invariant();
    static uint64_t seed = 1;
    const int MBIG = 4096, Ms[] = {1, 3, 64, 256, 1000}, R0[] = {0, 1000};
    enum { NM = 5, NR = 2 };
    char tag[128];
    snprintf(tag, sizeof tag, "%s N=%d K=%d%s", dinp ? (acc ? "dinp+=" : "dinp") : "fwd", N, K,
             wofs ? " W+ofs" : "");
    int in = dinp ? N : K, out = dinp ? K : N;
    size_t na = (size_t)MBIG * in, nw = (size_t)N * K, nc = (size_t)MBIG * out, nsub = (size_t)1000 * out;
    float *a = hbf16(na, 1.0f, seed++), *w = hbf16(nw, 0.5f, seed++);
    float *c0 = acc ? hbf16(nc, 1.0f, seed++) : hnan(nc); /* overwritten outputs start as NaN */
    float *d_a = dev_f(a, na), *d_wbuf = gpu->alloc((nw + wofs) * sizeof(float)), *d_w = d_wbuf + wofs;
    float *d_c = gpu->alloc(nc * sizeof(float)), *d_s = gpu->alloc(nsub * sizeof(float));
    Err err;
    CHECK(d_wbuf && d_c && d_s && cuda_upload(d_w, w, nw * sizeof(float), &err) == 0);
    gpu->weights_hint(d_wbuf, nw + wofs); /* W read from its bf16 shadow, as in the model */
    int eq_on = 0, eq_off = 0, total = NM * NR;
    long fell = 0;
    double ref_err = NAN, tol = 1e-5;
    int tuning0 = cuda_batch_invariant_tuning();
    for (int mode = 1; mode >= 0; mode--) {
        cuda_set_batch_invariant(mode ? 2 : 0); /* 2: the input-gradient form too */
        long fb0 = cuda_batch_invariant_fallbacks();
        int eq[NM * NR];
        CHECK(cuda_upload(d_c, c0, nc * sizeof(float), &err) == 0);
        bi_run(dinp, acc, d_c, d_a, d_w, MBIG, N, K);
        float *big = down(d_c, nc);
        /* Calls above 1024 rows may run any of several algorithms checked
         * to give the reference's bits (cuda_gemm_lt.cu): the first calls
         * time them one per call, so repeating the call runs each of them.
         * Every one must give the first call's bits. */
        size_t ncmp = nc < (size_t)256 * out ? nc : (size_t)256 * out; /* the first 256 rows */
        for (int r = 1; mode && r < 10; r++) {
            if (acc) CHECK(cuda_upload(d_c, c0, nc * sizeof(float), &err) == 0); /* else all overwritten */
            bi_run(dinp, acc, d_c, d_a, d_w, MBIG, N, K);
            float *again = down(d_c, ncmp);
            CHECKF(bits_equal(again, big, ncmp), "batch invariance %s: call %d of the %d-row GEMM differs bitwise "
                                                 "from the first", tag, r + 1, MBIG);
            free(again);
        }
        /* ten calls are enough for the bucket to pick (at most 8
         * candidates, one timed per call, the pick on the next call) */
        if (mode)
            CHECKF(cuda_batch_invariant_tuning() <= tuning0, "batch invariance %s: %d row-count buckets still "
                   "timing after ten calls (%d before)", tag, cuda_batch_invariant_tuning(), tuning0);
        for (int ri = 0; ri < NR; ri++)
            for (int mi = 0; mi < NM; mi++) {
                int r0 = R0[ri], M = Ms[mi];
                size_t off = (size_t)r0 * out, n = (size_t)M * out;
                CHECK(cuda_upload(d_s, c0 + off, n * sizeof(float), &err) == 0);
                bi_run(dinp, acc, d_s, d_a + (size_t)r0 * in, d_w, M, N, K);
                float *sub = down(d_s, n);
                eq[ri * NM + mi] = bits_equal(sub, big + off, n);
                free(sub);
            }
        gpu_ok(tag);
        int same = 0;
        for (int i = 0; i < total; i++) same += eq[i];
        if (!mode) {
            eq_off = same;
        } else {
            eq_on = same;
            fell = cuda_batch_invariant_fallbacks() - fb0;
            if (!(fell && may_fall_back)) {
                CHECKF(fell == 0, "batch invariance %s: %ld GEMM calls fell back to cublasGemmEx (the stderr line "
                                  "above says why)", tag, fell);
                for (int i = 0; i < total; i++)
                    CHECKF(eq[i], "batch invariance %s: rows %d..%d computed in a %d-row GEMM differ bitwise from "
                                  "the same rows of the %d-row GEMM", tag, R0[i / NM], R0[i / NM] + Ms[i % NM] - 1,
                           Ms[i % NM], MBIG);
            }
            /* The product of bf16-exact operands, accumulated in fp32. The
             * running sum is rounded once per MMA step (16 products), and
             * tensor cores may round toward zero, so those errors can add
             * up coherently: a relative error up to about len * 2e-9 for a
             * length-len reduction of random-sign data. The tolerance is 5x
             * that (at least 1e-5); a wrong layout or operand is off by
             * O(1), a dropped 64-wide K tile by 2e-2 even at len 151936. */
            int len = dinp ? N : K;
            tol = 1e-5 * (len > 896 ? len / 896.0 : 1.0);
            ref_err = bi_ref_err(big, a, w, c0, dinp, acc, N, K, MBIG);
            CHECKF(ref_err <= tol, "batch invariance %s: relative error %.3g against the fp64 product of the bf16 "
                                   "operands > %.3g", tag, ref_err, tol);
        }
        free(big);
    }
    long t_same, t_differ;
    cuda_batch_invariant_tune_counts(&t_same, &t_differ);
    printf("batch invariance %-22s invariant path: %2d/%d subsets bitwise%s, vs fp64 %.2e (tol %.1e); "
           "cublasGemmEx: %2d/%d; tuned candidates so far: %ld same bits, %ld differ\n", tag, eq_on, total,
           fell ? " (FELL BACK to cublasGemmEx)" : "", ref_err, tol, eq_off, total, t_same, t_differ);
    cuda_set_batch_invariant(was);
    gpu->free(d_a), gpu->free(d_wbuf), gpu->free(d_c), gpu->free(d_s);
    free(a), free(w), free(c0);
}

/* ---- bf16 weight shadows follow every write to the weights ---- */

static void test_shadow(void) {
    int N = 33, K = 96, O = 70;
    size_t ni = (size_t)N * K, nw = (size_t)O * K, no = (size_t)N * O;
    float *inp = hrand(ni, 1.0f), *w = hrand(nw, 0.5f), *out = malloc(no * 4);
    float *d_inp = dev_f(inp, ni), *d_w = dev_f(w, nw), *d_out = gpu->alloc(no * 4);
    gpu->weights_hint(d_w, nw);
    const char *steps[] = {"registered", "after upload", "after copy", "after adamw", "after scale", "after add"};
    for (int step = 0; step < 6; step++) {
        if (step == 1) { /* new weights through upload */
            for (size_t i = 0; i < nw; i++) w[i] = 0.5f * rng_normal(&rng);
            gpu->upload(d_w, w, nw * 4);
        } else if (step == 2) { /* through copy from another buffer */
            float *w2 = hrand(nw, 0.5f), *d_w2 = dev_f(w2, nw);
            gpu->copy(d_w, d_w2, nw * 4);
            memcpy(w, w2, nw * 4);
            gpu->free(d_w2), free(w2);
        } else if (step == 3) { /* an optimizer step */
            float *g = hrand(nw, 1.0f), *mv = calloc(2 * nw, 4);
            float *d_g = dev_f(g, nw), *d_mv = dev_f(mv, 2 * nw);
            cpu->adamw_update(w, g, mv, mv + nw, nw, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 1.0f);
            gpu->adamw_update(d_w, d_g, d_mv, d_mv + nw, nw, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 1.0f);
            gpu->free(d_g), gpu->free(d_mv), free(g), free(mv);
        } else if (step == 4) {
            cpu->scale(w, -2.0f, nw);
            gpu->scale(d_w, -2.0f, nw);
        } else if (step == 5) {
            float *x = hrand(nw, 1.0f), *d_x = dev_f(x, nw);
            cpu->add_inplace(w, x, nw);
            gpu->add_inplace(d_w, d_x, nw);
            gpu->free(d_x), free(x);
        }
        cpu->matmul_forward(out, inp, w, NULL, N, K, O);
        gpu->matmul_forward(d_out, d_inp, d_w, NULL, N, K, O);
        cmp("matmul_forward (weight shadow)", steps[step], d_out, out, no, FWD_TOL);
    }
    gpu->free(d_w); /* forgets the shadow; a new buffer at the same address starts clean */
    gpu->free(d_inp), gpu->free(d_out);
    free(inp), free(w), free(out);
    gpu_ok("shadow");
}

/* An op given a shape it cannot run reports it through cuda_check. */
static void test_errors(void) {
    float *p = gpu->alloc(4096);
    gpu->attention_forward(p, p, p, p, p, 1, 1, 1, 1, 300); /* head size over 256 */
    Err err;
    int r = cuda_check(&err);
    CHECKF(r == -1 && strstr(err.msg, "attention_forward"), "expected an error naming the op, got %d '%s'", r,
           r ? err.msg : "");
    CHECK(cuda_check(&err) == 0); /* reported once */
    gpu->free(p);
}

int main(void) {
    setenv("R1C_CUDA_SYNC", "1", 0); /* name the op at fault if a kernel faults */
    setenv("R1C_CUDA_BI_VERBOSE", "1", 0); /* log each shape's batch-invariant GEMM algorithm */
    if (!cuda_available()) {
        SKIP("no usable CUDA device (driver or GPU missing): GPU op tests not run");
        return check_summary("test_cuda_ops");
    }
    cpu = backend_cpu();
    gpu = backend_cuda();
    printf("device: %s\n", cuda_device_name());
    CHECK(gpu != NULL && !strcmp(gpu->name, "cuda"));
    const void *const *slots = (const void *const *)((const char *)gpu + offsetof(Backend, alloc));
    size_t nslots = (sizeof(Backend) - offsetof(Backend, alloc)) / sizeof(void *);
    for (size_t i = 0; i < nslots; i++) CHECKF(slots[i] != NULL, "Backend slot %zu is NULL", i);
    cuda_set_precision(CUDA_PREC_FP32); /* the reference pass first */
    rng_seed(&rng, 4321);
    const char *sm = getenv("R1C_CUDA_TEST_SMALL");
    g_small = sm && sm[0] == '1';

    test_memory();
    test_adamw(1);
    BIG(test_adamw(1000003));

    test_matmul(1, 7, 5, 1);
    test_matmul(5, 64, 33, 0);
    BIG(test_matmul(300, 129, 257, 1));
    BIG(test_matmul(64, 896, 1152, 1));

    test_rmsnorm(1, 7);
    BIG(test_rmsnorm(300, 896));
    test_rmsnorm(5, 4099);
    BIG(test_rmsnorm(65541, 40)); /* the weight gradient's column sum at its slice cap */

    test_rope(1, 1, 16, 4);
    BIG(test_rope(300, 7, 64, 512));
    test_rope(5, 3, 7, 10); /* odd head size */
    BIG(test_rope(37, 2, 128, 4096));
    BIG(test_rope(70000, 2, 8, 64)); /* more rows than a grid's y dimension holds */

    /* B, T, NH, KVH, HD: T=1, GQA 2 and 7, MHA, MQA, odd and large heads */
    test_attention(1, 1, 2, 1, 16);
    test_attention(2, 37, 4, 2, 32);
    BIG(test_attention(1, 300, 14, 2, 64));
    test_attention(2, 65, 2, 2, 128);
    test_attention(1, 100, 8, 1, 80);
    test_attention(3, 9, 6, 3, 5);
    BIG(test_attention(1, 70, 4, 2, 256));
    test_attention_seg(2, 100, 4, 2, 32);
    BIG(test_attention_seg(2, 300, 14, 2, 64));
    test_attention_seg(1, 40, 6, 3, 5);

    BIG(test_decode(5, 3, 300, 14, 2, 64));
    test_decode(9, 4, 40, 4, 4, 128);
    test_fused_decode(9, 4, 40, 4, 2, 64, 96, 1);
    test_fused_decode(7, 3, 20, 6, 3, 5, 33, 0); /* odd head size: its last channel is not rotated */
    test_fused_decode(256, 256, 300, 14, 2, 64, 896, 1);
    test_decode(3, 2, 33, 7, 1, 80);
    test_decode(4, 2, 20, 6, 3, 5);    /* odd head size: no vector loads */
    test_decode(3, 2, 70, 16, 1, 64);  /* 16 heads per kv head: the per-head kernel */

    test_qkv(1, 4, 2);
    test_qkv(37, 7 * 64, 64);
    BIG(test_qkv(300, 896, 128));

    test_swiglu(1, 7);
    BIG(test_swiglu(300, 1000));
    test_swiglu_gemm(5, 7, 9); /* no vector loads */
    test_swiglu_gemm(37, 64, 96);

    test_embedding(1, 4, 3);
    BIG(test_embedding(300, 1000, 96));
    test_embedding(129, 151, 897);
    BIG(test_embedding(20000, 5000, 64)); /* runs of ~400 equal ids */

    test_lm_head(1, 64, 1000, 1.0f, 0);
    test_lm_head(37, 129, 5003, 1.3f, 7);   /* several chunks, a short last one */
    BIG(test_lm_head(300, 96, 50000, 0.7f, 0));  /* one chunk of the whole vocabulary */

    test_layer_chain((Dims){2, 67, 128, 4, 2, 32, 352, 1000});
    BIG(test_layer_chain((Dims){1, 300, 896, 14, 2, 64, 4864, 32000})); /* Qwen2.5-0.5B layer shape */

    test_samplers();

    /* bf16: the GEMM-backed ops again, held to bf16 rounding (inputs
     * rounded to 8 bits of mantissa, fp32 accumulation) */
    cuda_set_precision(CUDA_PREC_BF16);
    g_mode = "bf16 ";
    FWD_TOL = 2e-2, BWD_TOL = 5e-2;
    test_matmul(1, 7, 5, 1);
    test_matmul(5, 64, 33, 0);
    BIG(test_matmul(300, 129, 257, 1));
    BIG(test_matmul(64, 896, 1152, 1));
    test_shadow();
    test_swiglu_gemm(5, 7, 9);
    test_swiglu_gemm(37, 64, 96);
    BIG(test_swiglu_gemm(300, 1000, 256));
    /* (no T = 1 case: one key gives dS = dP - D = 0 exactly in fp32, but
     * bf16 rounding of dO and V in dP leaves noise the size of dO, so the
     * normalised error of a zero gradient is meaningless) */
    test_attention(2, 37, 4, 2, 32);
    BIG(test_attention(1, 300, 14, 2, 64));
    BIG(test_attention(4, 1024, 14, 2, 64)); /* several query blocks per head */
    test_attention(2, 65, 2, 2, 128);
    test_attention(3, 9, 6, 3, 5);
    /* several query blocks per head (causal skipping of later keys),
     * a short last block, and packed rows across block edges */
    cuda_set_attention_block_rows(64);
    test_attention(2, 300, 4, 2, 32);
    BIG(test_attention(1, 1000, 14, 2, 64));
    test_attention(3, 9, 6, 3, 5);
    test_attention_seg(2, 150, 4, 2, 32);
    cuda_set_attention_block_rows(0);
    test_attention_seg(2, 100, 4, 2, 32);
    BIG(test_attention_seg(2, 300, 14, 2, 64));
    BIG(test_decode(5, 3, 300, 14, 2, 64));
    test_decode(9, 4, 40, 4, 4, 128);
    test_decode(4, 2, 20, 6, 3, 5);
    /* the per-head kernel and the fused write on this pass's caches
     * (bf16 unless R1C_CUDA_KV_BF16=0), then on the other kind */
    const char *kv_env = getenv("R1C_CUDA_KV_BF16");
    int kv_on = !(kv_env && !strcmp(kv_env, "0"));
    CHECK(kv16() == kv_on); /* on by default */
    for (int other = 0; other < 2; other++) {
        cuda_set_kv_bf16(other ? !kv_on : kv_on);
        test_decode(3, 2, 70, 16, 1, 64);
        BIG(test_decode(5, 3, 300, 14, 2, 64));
        test_fused_decode(9, 4, 40, 4, 2, 64, 96, 1);
        test_fused_decode(7, 3, 20, 6, 3, 5, 33, 0);
    }
    cuda_set_kv_bf16(kv_on);
    /* batch invariance: the training forward through the decode kernel,
     * against the CPU (out, lse; the backward reads them) and bitwise
     * against decoding */
    int bi_was = cuda_batch_invariant(); /* the environment's level */
    cuda_set_batch_invariant(1);
    test_attention(2, 37, 4, 2, 32);
    BIG(test_attention(1, 300, 14, 2, 64));
    test_attention(2, 65, 2, 2, 128);
    test_attention(3, 9, 6, 3, 5);
    cuda_set_batch_invariant(bi_was);
    test_rows_match_decode(2, 37, 4, 2, 32, 1);
    test_rows_match_decode(1, 300, 14, 2, 64, 1);
    test_rows_match_decode(3, 9, 6, 3, 5, 1);
    /* the flash kernels: the same at level 0, both cache kinds, query
     * heads per kv head from 1 to 16, blocks cut short by T */
    for (int other = 0; other < 2; other++) {
        cuda_set_kv_bf16(other ? !kv_on : kv_on);
        test_rows_match_decode(2, 37, 4, 2, 32, 0);
        test_rows_match_decode(1, 300, 14, 2, 64, 0);
        test_rows_match_decode(2, 65, 2, 2, 128, 0);
        BIG(test_rows_match_decode(2, 200, 12, 2, 128, 0));
        test_rows_match_decode(1, 130, 16, 1, 64, 0);
    }
    cuda_set_kv_bf16(kv_on);
    test_lm_head(37, 129, 5003, 1.3f, 7);
    BIG(test_lm_head(300, 96, 50000, 0.7f, 0));
    test_layer_chain((Dims){2, 67, 128, 4, 2, 32, 352, 1000});
    BIG(test_layer_chain((Dims){1, 300, 896, 14, 2, 64, 4864, 32000}));

    /* batch invariance (level 1 unless the environment says 0 or 2); N, K,
     * input-gradient form, accumulate, weight offset */
    const char *bi_env = getenv("R1C_CUDA_BATCH_INVARIANT");
    CHECK(cuda_batch_invariant() ==
          (bi_env && (!strcmp(bi_env, "0") || !strcmp(bi_env, "2")) ? bi_env[0] - '0' : 1));
    test_batch_invariance(72, 96, 0, 0, 0, 0);
    test_batch_invariance(72, 96, 1, 1, 0, 0);
    test_batch_invariance(70, 96, 1, 0, 0, 1); /* 140-byte rows of A */
    test_batch_invariance(37, 7, 0, 0, 0, 1);  /* 14-byte rows */
    /* Qwen2.5-0.5B: o_proj, fused qkv (896 + 2 x 128), gate+up, down, LM head */
    int bi_shapes[][2] = {{896, 896}, {1152, 896}, {9728, 896}, {896, 4864}, {151936, 896}};
    for (int i = 0; i < 5; i++) {
        BIG(test_batch_invariance(bi_shapes[i][0], bi_shapes[i][1], 0, 0, 0, 0));
        BIG(test_batch_invariance(bi_shapes[i][0], bi_shapes[i][1], 1, 0, 0, 0));
    }
    BIG(test_batch_invariance(896, 896, 1, 1, 0, 0));
    BIG(test_batch_invariance(896, 4864, 1, 1, 0, 0));
    /* a weight 8 bytes (4 floats -> 4 bf16) off 16-byte alignment: its own algorithm */
    BIG(test_batch_invariance(1152, 896, 0, 0, 4, 0));
    BIG(test_batch_invariance(1152, 896, 1, 0, 4, 0));
    g_mode = "";
    FWD_TOL = 1e-5, BWD_TOL = 1e-4;
    cuda_set_precision(CUDA_PREC_FP32);

    test_errors();
    cuda_trim(); /* leaves only the cuBLAS handle for compute-sanitizer's leak check */
    gpu_ok("trim");
    float *tz = gpu->alloc(64 * 4), tzh[64];
    for (int i = 0; i < 64; i++) tzh[i] = (float)i;
    Err terr;
    cuda_upload(tz, tzh, sizeof tzh, &terr);
    CHECK(gpu->sumsq(tz, 64) == 85344.0); /* scratch comes back on demand */
    gpu->copy(tz + 1, tz, 63 * 4);
    float *tzd = down(tz, 64);
    CHECK(tzd[63] == 62.0f);
    free(tzd);
    gpu->free(tz);
    cuda_trim();
    gpu_ok("trim again");

    printf("%-38s %12s %10s\n", "op", "max err", "tol");
    for (int i = 0; i < g_nops; i++)
        printf("%-38s %12.3g %10.1g%s\n", g_ops[i].op, g_ops[i].worst, g_ops[i].tol,
               g_ops[i].worst <= g_ops[i].tol ? "" : "  FAIL");
    return check_summary("test_cuda_ops");
}
