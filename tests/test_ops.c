/* Every op of the CPU backend table against a naive double-precision
 * reference written here: forward by normalised max error, backward by
 * central finite differences of sum(out * R) run on the double reference
 * (so the FD itself is accurate) and compared with the op's analytic fp32
 * backward. Also checks the accumulate / overwrite contracts of backward. */
#include <stdint.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "check.h"

#define FWD_TOL 2e-5
#define BWD_TOL 2e-4

static const Backend *be;
static Rng rng;

/* ---- helpers ---- */

static float *randf(size_t n, float scale) {
    float *p = be->alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_normal(&rng);
    return p;
}

static double *to_d(const float *x, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static double *zd(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

/* When nonzero, fd_grad differentiates only this many random entries and
 * marks the others NaN (large shapes that take the OpenMP paths). */
static int g_fd_sample = 0;

/* max |got - ref| / max(|ref|, |got|) (absolute when both are ~0); ref
 * entries that are NaN were not sampled and are skipped. */
static double nerr_fd(const float *got, const double *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)got[i]) > mr) mr = fabs((double)got[i]);
        if (isnan(ref[i])) continue;
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= md)) md = d; /* NaN in got propagates */
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / (mr > 1e-6 ? mr : 1.0);
}

#define CHECK_CLOSE(what, got, ref, n, tol)                                                 \
    do {                                                                                    \
        double e_ = nerr_fd((got), (ref), (n));                                             \
        CHECKF(e_ <= (tol), "%s: normalised error %.3g > %.3g", (what), e_, (double)(tol)); \
    } while (0)

static int bits_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* Central differences of a double loss over one input array. */
typedef double (*LossFn)(void *ctx);
static void fd_grad(LossFn f, void *ctx, double *x, size_t n, double *g) {
    int sample = g_fd_sample && n > (size_t)g_fd_sample;
    for (size_t j = 0; j < (sample ? (size_t)g_fd_sample : n); j++) {
        size_t i = j;
        if (sample) {
            if (j == 0)
                for (size_t t = 0; t < n; t++) g[t] = NAN;
            i = (size_t)(rng_u64(&rng) % n);
        }
        double s = x[i], h = 1e-6 * (fabs(s) > 1 ? fabs(s) : 1);
        x[i] = s + h;
        double lp = f(ctx);
        x[i] = s - h;
        double lm = f(ctx);
        x[i] = s;
        g[i] = (lp - lm) / (2 * h);
    }
}

static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- alloc / zero / copy / add_inplace / sumsq / scale ---- */

static void test_memory_ops(void) {
    size_t n = 1001;
    float *a = be->alloc(n * sizeof(float));
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= a[i] == 0.0f;
    CHECKF(zero, "alloc must return zeroed memory");
    CHECK(((uintptr_t)a & 15) == 0);
    float *b = randf(n, 1.0f);
    be->copy(a, b, n * sizeof(float));
    CHECK(bits_equal(a, b, n));
    be->copy(a + 1, a, (n - 1) * sizeof(float)); /* overlapping copy (memmove semantics) */
    CHECK(bits_equal(a + 1, b, n - 1));
    be->zero(a, n * sizeof(float));
    zero = 1;
    for (size_t i = 0; i < n; i++) zero &= a[i] == 0.0f;
    CHECK(zero);
    void *z = be->alloc(0);
    CHECK(z != NULL);
    be->free(z);

    /* add_inplace */
    float *y = randf(n, 1.0f), *x = randf(n, 1.0f);
    double *ref = to_d(y, n);
    for (size_t i = 0; i < n; i++) ref[i] += x[i];
    be->add_inplace(y, x, n);
    CHECK_CLOSE("add_inplace", y, ref, n, 1e-7);

    /* sumsq in double, scale */
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    CHECK_NEAR(be->sumsq(x, n), s, 1e-12 * s);
    CHECK(be->sumsq(x, 0) == 0.0);
    float big[3] = {1e20f, 1e20f, 3.0f};
    double bb = (double)big[0] * big[0];
    CHECK_NEAR(be->sumsq(big, 3), 2 * bb + 9.0, 1e-12 * bb); /* no fp32 overflow */
    /* long vectors take the OpenMP paths */
    size_t nl = 70001;
    float *ly = randf(nl, 1.0f), *lx = randf(nl, 1.0f);
    double *lr = to_d(ly, nl), ls = 0;
    for (size_t i = 0; i < nl; i++) lr[i] += lx[i], ls += (double)lx[i] * lx[i];
    be->add_inplace(ly, lx, nl);
    CHECK_CLOSE("add_inplace (long)", ly, lr, nl, 1e-7);
    CHECK_NEAR(be->sumsq(lx, nl), ls, 1e-12 * ls);
    for (size_t i = 0; i < nl; i++) lr[i] = (double)lx[i] * -1.5f;
    be->scale(lx, -1.5f, nl);
    CHECK_CLOSE("scale (long)", lx, lr, nl, 1e-7);
    be->free(ly), be->free(lx);
    free(lr);
    for (size_t i = 0; i < n; i++) ref[i] = (double)x[i] * 0.37f;
    be->scale(x, 0.37f, n);
    CHECK_CLOSE("scale", x, ref, n, 1e-7);
    be->free(a), be->free(b), be->free(x), be->free(y);
    free(ref);
}

/* ---- matmul ---- */

typedef struct {
    int N, K, O, has_bias;
    double *inp, *w, *b, *R;
} MmCtx;

static void ref_matmul(double *out, const MmCtx *c) {
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->O; o++) {
            double s = c->has_bias ? c->b[o] : 0;
            for (int k = 0; k < c->K; k++) s += c->inp[n * c->K + k] * c->w[o * c->K + k];
            out[n * c->O + o] = s;
        }
}

static double loss_matmul(void *p) {
    MmCtx *c = p;
    double *out = zd((size_t)c->N * c->O);
    ref_matmul(out, c);
    double l = dot_d(out, c->R, (size_t)c->N * c->O);
    free(out);
    return l;
}

/* Forward only, against the double reference: the decode kernel takes
 * batches of up to 32 rows when the weight matrix is large (> 8 MB). */
static void test_matmul_decode_sizes(void) {
    const int Ns[] = {1, 2, 3, 4, 5, 13, 16, 29, 32};
    int K = 1003, O = 2113; /* 8.5 MB of weights; K tail of 11 */
    size_t nw = (size_t)O * K;
    float *w = randf(nw, 0.5f);
    for (size_t t = 0; t < sizeof Ns / sizeof Ns[0]; t++) {
        int N = Ns[t];
        float *inp = randf((size_t)N * K, 1.0f), *out = randf((size_t)N * O, 9.0f);
        be->matmul_forward(out, inp, w, NULL, N, K, O);
        double worst = 0;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o += 7) { /* a sample of outputs; fp32 sums of 1000 terms */
                double r = 0;
                for (int k = 0; k < K; k++) r += (double)inp[(size_t)n * K + k] * w[(size_t)o * K + k];
                double e = fabs(out[(size_t)n * O + o] - r) / (1 + fabs(r));
                if (e > worst) worst = e;
            }
        CHECKF(worst < 1e-4, "matmul_forward decode path N=%d K=%d O=%d: rel err %g", N, K, O, worst);
        be->free(inp), be->free(out);
    }
    be->free(w);
}

static void test_matmul(int N, int K, int O, int has_bias) {
    char tag[96];
    size_t ni = (size_t)N * K, nw = (size_t)O * K, no = (size_t)N * O;
    float *inp = randf(ni, 1.0f), *w = randf(nw, 0.5f), *b = randf(O, 0.5f), *R = randf(no, 1.0f);
    MmCtx c = {N, K, O, has_bias, to_d(inp, ni), to_d(w, nw), to_d(b, O), to_d(R, no)};
    float *out = randf(no, 9.0f); /* garbage: forward overwrites */
    be->matmul_forward(out, inp, w, has_bias ? b : NULL, N, K, O);
    double *ref = zd(no);
    ref_matmul(ref, &c);
    snprintf(tag, sizeof tag, "matmul_forward N=%d K=%d O=%d bias=%d", N, K, O, has_bias);
    CHECK_CLOSE(tag, out, ref, no, FWD_TOL);

    /* reference gradients */
    double *gi = zd(ni), *gw = zd(nw), *gb = zd(O);
    fd_grad(loss_matmul, &c, c.inp, ni, gi);
    fd_grad(loss_matmul, &c, c.w, nw, gw);
    if (has_bias) fd_grad(loss_matmul, &c, c.b, O, gb);

    /* dinp overwritten (accumulate_dinp=0), dw/dbias accumulated */
    float *dinp = randf(ni, 5.0f), *dw = be->alloc(nw * 4), *db = be->alloc(O * 4);
    be->matmul_backward(dinp, dw, has_bias ? db : NULL, R, inp, w, N, K, O, 0);
    snprintf(tag, sizeof tag, "matmul_backward dinp N=%d K=%d O=%d", N, K, O);
    CHECK_CLOSE(tag, dinp, gi, ni, BWD_TOL);
    snprintf(tag, sizeof tag, "matmul_backward dw N=%d K=%d O=%d", N, K, O);
    CHECK_CLOSE(tag, dw, gw, nw, BWD_TOL);
    if (has_bias) {
        snprintf(tag, sizeof tag, "matmul_backward dbias N=%d K=%d O=%d", N, K, O);
        CHECK_CLOSE(tag, db, gb, O, BWD_TOL);
    }
    /* second call: dinp accumulates (flag 1) -> 2x; dw, dbias -> 2x */
    be->matmul_backward(dinp, dw, has_bias ? db : NULL, R, inp, w, N, K, O, 1);
    for (size_t i = 0; i < ni; i++) gi[i] *= 2;
    for (size_t i = 0; i < nw; i++) gw[i] *= 2;
    for (int i = 0; i < O; i++) gb[i] *= 2;
    CHECK_CLOSE("matmul_backward dinp accumulate=1", dinp, gi, ni, BWD_TOL);
    CHECK_CLOSE("matmul_backward dw accumulates", dw, gw, nw, BWD_TOL);
    if (has_bias) CHECK_CLOSE("matmul_backward dbias accumulates", db, gb, O, BWD_TOL);
    /* third call with accumulate 0 overwrites dinp again; NULL dw/dbias ok */
    be->matmul_backward(dinp, NULL, NULL, R, inp, w, N, K, O, 0);
    for (size_t i = 0; i < ni; i++) gi[i] /= 2;
    CHECK_CLOSE("matmul_backward dinp accumulate=0 overwrites", dinp, gi, ni, BWD_TOL);
    /* NULL dinp: only parameter grads */
    be->zero(dw, nw * 4);
    be->matmul_backward(NULL, dw, NULL, R, inp, w, N, K, O, 0);
    for (size_t i = 0; i < nw; i++) gw[i] /= 2;
    CHECK_CLOSE("matmul_backward dinp=NULL", dw, gw, nw, BWD_TOL);

    be->free(inp), be->free(w), be->free(b), be->free(R), be->free(out), be->free(dinp), be->free(dw), be->free(db);
    free(c.inp), free(c.w), free(c.b), free(c.R), free(ref), free(gi), free(gw), free(gb);
}

/* ---- rmsnorm ---- */

typedef struct {
    int N, C;
    double eps;
    double *x, *w, *R;
} RnCtx;

static void ref_rmsnorm(double *out, double *rstd, const RnCtx *c) {
    for (int n = 0; n < c->N; n++) {
        double ss = 0;
        for (int i = 0; i < c->C; i++) ss += c->x[n * c->C + i] * c->x[n * c->C + i];
        double r = 1.0 / sqrt(ss / c->C + c->eps);
        if (rstd) rstd[n] = r;
        for (int i = 0; i < c->C; i++) out[n * c->C + i] = c->x[n * c->C + i] * r * c->w[i];
    }
}

static double loss_rmsnorm(void *p) {
    RnCtx *c = p;
    double *out = zd((size_t)c->N * c->C);
    ref_rmsnorm(out, NULL, c);
    double l = dot_d(out, c->R, (size_t)c->N * c->C);
    free(out);
    return l;
}

static void test_rmsnorm(int N, int C, float eps) {
    char tag[96];
    size_t nx = (size_t)N * C;
    float *x = randf(nx, 1.0f), *w = randf(C, 1.0f), *R = randf(nx, 1.0f);
    for (int i = 0; i < C; i++) w[i] += 1.0f;
    RnCtx c = {N, C, eps, to_d(x, nx), to_d(w, C), to_d(R, nx)};
    float *out = randf(nx, 3.0f), *rstd = randf(N, 3.0f);
    be->rmsnorm_forward(out, rstd, x, w, N, C, eps);
    double *ref = zd(nx), *rref = zd(N);
    ref_rmsnorm(ref, rref, &c);
    snprintf(tag, sizeof tag, "rmsnorm_forward N=%d C=%d", N, C);
    CHECK_CLOSE(tag, out, ref, nx, FWD_TOL);
    CHECK_CLOSE("rmsnorm_forward rstd", rstd, rref, N, FWD_TOL);

    double *gx = zd(nx), *gw = zd(C);
    fd_grad(loss_rmsnorm, &c, c.x, nx, gx);
    fd_grad(loss_rmsnorm, &c, c.w, C, gw);
    float *dx = be->alloc(nx * 4), *dw = be->alloc(C * 4);
    be->rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
    snprintf(tag, sizeof tag, "rmsnorm_backward dx N=%d C=%d", N, C);
    CHECK_CLOSE(tag, dx, gx, nx, BWD_TOL);
    snprintf(tag, sizeof tag, "rmsnorm_backward dw N=%d C=%d", N, C);
    CHECK_CLOSE(tag, dw, gw, C, BWD_TOL);
    /* both accumulate (backend.h: dx +=, dw +=) */
    be->rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
    for (size_t i = 0; i < nx; i++) gx[i] *= 2;
    for (int i = 0; i < C; i++) gw[i] *= 2;
    CHECK_CLOSE("rmsnorm_backward dx accumulates", dx, gx, nx, BWD_TOL);
    CHECK_CLOSE("rmsnorm_backward dw accumulates", dw, gw, C, BWD_TOL);
    /* dw NULL: only dx */
    be->zero(dx, nx * 4);
    be->rmsnorm_backward(dx, NULL, R, x, w, rstd, N, C);
    for (size_t i = 0; i < nx; i++) gx[i] /= 2;
    CHECK_CLOSE("rmsnorm_backward dw=NULL", dx, gx, nx, BWD_TOL);

    be->free(x), be->free(w), be->free(R), be->free(out), be->free(rstd), be->free(dx), be->free(dw);
    free(c.x), free(c.w), free(c.R), free(ref), free(rref), free(gx), free(gw);
}

/* ---- rope ---- */

typedef struct {
    int N, H, HD;
    const int32_t *pos;
    const float *cs, *sn;
    double *x, *R;
} RopeCtx;

static void ref_rope(double *out, const double *x, const RopeCtx *c, int inverse) {
    int half = c->HD / 2;
    for (int n = 0; n < c->N; n++)
        for (int h = 0; h < c->H; h++) {
            const double *v = x + ((size_t)n * c->H + h) * c->HD;
            double *o = out + ((size_t)n * c->H + h) * c->HD;
            for (int i = 0; i < half; i++) {
                double co = c->cs[c->pos[n] * half + i], si = c->sn[c->pos[n] * half + i];
                if (inverse) si = -si;
                o[i] = v[i] * co - v[i + half] * si;
                o[i + half] = v[i + half] * co + v[i] * si;
            }
        }
}

static double loss_rope(void *p) {
    RopeCtx *c = p;
    size_t n = (size_t)c->N * c->H * c->HD;
    double *out = zd(n);
    ref_rope(out, c->x, c, 0);
    double l = dot_d(out, c->R, n);
    free(out);
    return l;
}

static void test_rope(int N, int H, int HD, int max_pos, int real_angles) {
    char tag[96];
    int half = HD / 2;
    size_t nx = (size_t)N * H * HD;
    float *cs = malloc((size_t)max_pos * half * 4), *sn = malloc((size_t)max_pos * half * 4);
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            double th = p * pow(10000.0, -2.0 * i / HD);
            cs[p * half + i] = real_angles ? (float)cos(th) : rng_normal(&rng);
            sn[p * half + i] = real_angles ? (float)sin(th) : rng_normal(&rng);
        }
    int32_t *pos = malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) pos[n] = (int32_t)(rng_u64(&rng) % max_pos);
    float *x = randf(nx, 1.0f), *y = randf(nx, 1.0f);
    RopeCtx c = {N, H, HD, pos, cs, sn, to_d(x, nx), to_d(y, nx)};
    double *ref = zd(nx);
    ref_rope(ref, c.x, &c, 0);
    float *rx = be->alloc(nx * 4);
    memcpy(rx, x, nx * 4);
    be->rope_apply(rx, pos, cs, sn, N, H, HD, 0);
    snprintf(tag, sizeof tag, "rope_apply N=%d H=%d HD=%d", N, H, HD);
    CHECK_CLOSE(tag, rx, ref, nx, FWD_TOL);
    /* inverse is the transpose: <rope(x), y> == <x, rope_inv(y)> */
    float *ry = be->alloc(nx * 4);
    memcpy(ry, y, nx * 4);
    be->rope_apply(ry, pos, cs, sn, N, H, HD, 1);
    double a = 0, b = 0, scale = 0;
    for (size_t i = 0; i < nx; i++) {
        a += (double)rx[i] * y[i];
        b += (double)x[i] * ry[i];
        scale += fabs((double)rx[i] * y[i]);
    }
    snprintf(tag, sizeof tag, "rope transpose HD=%d", HD);
    CHECKF(fabs(a - b) <= 1e-5 * scale, "%s: %.9g vs %.9g", tag, a, b);
    /* backward = inverse applied to the output gradient, checked by FD */
    double *g = zd(nx);
    fd_grad(loss_rope, &c, c.x, nx, g);
    CHECK_CLOSE("rope backward (inverse) vs FD", ry, g, nx, BWD_TOL);
    if (real_angles) { /* a true rotation: inverse(forward(x)) == x */
        be->rope_apply(rx, pos, cs, sn, N, H, HD, 1);
        CHECK_CLOSE("rope inverse undoes forward", rx, c.x, nx, FWD_TOL);
    }
    be->free(x), be->free(y), be->free(rx), be->free(ry);
    free(cs), free(sn), free(pos), free(c.x), free(c.R), free(ref), free(g);
}

/* ---- attention ---- */

typedef struct {
    int B, T, NH, KVH, HD;
    double *q, *k, *v, *R;
} AttCtx;

static void ref_attention(double *out, double *lse, const AttCtx *c) {
    int B = c->B, T = c->T, NH = c->NH, KVH = c->KVH, HD = c->HD, group = NH / KVH;
    double scale = 1.0 / sqrt((double)HD);
    double *sc = zd(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int kh = h / group;
                const double *qt = c->q + (((size_t)b * T + t) * NH + h) * HD;
                double m = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    sc[j] = scale * dot_d(qt, c->k + (((size_t)b * T + j) * KVH + kh) * HD, HD);
                    if (sc[j] > m) m = sc[j];
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) sum += exp(sc[j] - m);
                double *ot = out + (((size_t)b * T + t) * NH + h) * HD;
                for (int d = 0; d < HD; d++) ot[d] = 0;
                for (int j = 0; j <= t; j++) {
                    double p = exp(sc[j] - m) / sum;
                    const double *vj = c->v + (((size_t)b * T + j) * KVH + kh) * HD;
                    for (int d = 0; d < HD; d++) ot[d] += p * vj[d];
                }
                if (lse) lse[((size_t)b * NH + h) * T + t] = m + log(sum);
            }
    free(sc);
}

static double loss_attention(void *p) {
    AttCtx *c = p;
    size_t n = (size_t)c->B * c->T * c->NH * c->HD;
    double *out = zd(n);
    ref_attention(out, NULL, c);
    double l = dot_d(out, c->R, n);
    free(out);
    return l;
}

static void test_attention(int B, int T, int NH, int KVH, int HD) {
    char tag[128];
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * KVH * HD, nl = (size_t)B * NH * T;
    float *q = randf(nq, 1.0f), *k = randf(nk, 1.0f), *v = randf(nk, 1.0f), *R = randf(nq, 1.0f);
    AttCtx c = {B, T, NH, KVH, HD, to_d(q, nq), to_d(k, nk), to_d(v, nk), to_d(R, nq)};
    float *out = randf(nq, 7.0f), *lse = randf(nl, 7.0f);
    be->attention_forward(out, lse, q, k, v, B, T, NH, KVH, HD);
    double *ref = zd(nq), *lref = zd(nl);
    ref_attention(ref, lref, &c);
    snprintf(tag, sizeof tag, "attention_forward B=%d T=%d NH=%d KVH=%d HD=%d", B, T, NH, KVH, HD);
    CHECK_CLOSE(tag, out, ref, nq, FWD_TOL);
    CHECK_CLOSE("attention_forward lse", lse, lref, nl, FWD_TOL);

    double *gq = zd(nq), *gk = zd(nk), *gv = zd(nk);
    fd_grad(loss_attention, &c, c.q, nq, gq);
    fd_grad(loss_attention, &c, c.k, nk, gk);
    fd_grad(loss_attention, &c, c.v, nk, gv);
    /* dq, dk, dv are overwritten: start from garbage, call twice */
    float *dq = randf(nq, 5.0f), *dk = randf(nk, 5.0f), *dv = randf(nk, 5.0f);
    for (int rep = 0; rep < 2; rep++) {
        be->attention_backward(dq, dk, dv, R, out, lse, q, k, v, B, T, NH, KVH, HD);
        snprintf(tag, sizeof tag, "attention_backward dq B=%d T=%d NH=%d KVH=%d HD=%d call %d", B, T, NH, KVH, HD,
                 rep + 1);
        CHECK_CLOSE(tag, dq, gq, nq, BWD_TOL);
        snprintf(tag, sizeof tag, "attention_backward dk B=%d T=%d NH=%d KVH=%d HD=%d call %d", B, T, NH, KVH, HD,
                 rep + 1);
        CHECK_CLOSE(tag, dk, gk, nk, BWD_TOL);
        snprintf(tag, sizeof tag, "attention_backward dv B=%d T=%d NH=%d KVH=%d HD=%d call %d", B, T, NH, KVH, HD,
                 rep + 1);
        CHECK_CLOSE(tag, dv, gv, nk, BWD_TOL);
    }

    /* decode path: write every (b, t) row into a KV cache (slots permuted,
     * rows written in a scrambled order), then one query row per token with
     * len = t + 1 must reproduce the causal forward rows. */
    int KD = KVH * HD, maxT = T + 3;
    size_t stride = (size_t)maxT * KD + 5;
    int nslots = B + 2, N = B * T;
    float *kc = randf(stride * nslots, 9.0f), *vc = randf(stride * nslots, 9.0f);
    int32_t *slot = malloc(N * 4), *posv = malloc(N * 4), *len = malloc(N * 4), *order = malloc(N * 4);
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(rng_u64(&rng) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    float *kr = be->alloc((size_t)N * KD * 4), *vr = be->alloc((size_t)N * KD * 4);
    for (int i = 0; i < N; i++) { /* permuted rows of k, v */
        int b = order[i] / T, t = order[i] % T;
        slot[i] = (b * 7 + 3) % nslots;
        posv[i] = t;
        memcpy(kr + (size_t)i * KD, k + ((size_t)b * T + t) * KD, KD * 4);
        memcpy(vr + (size_t)i * KD, v + ((size_t)b * T + t) * KD, KD * 4);
    }
    be->kv_cache_write(kc, vc, kr, vr, slot, posv, stride, N, KD);
    for (int i = 0; i < N; i++) { /* row i of k landed at slot/pos */
        size_t off = (size_t)slot[i] * stride + (size_t)posv[i] * KD;
        CHECK(bits_equal(kc + off, kr + (size_t)i * KD, KD) && bits_equal(vc + off, vr + (size_t)i * KD, KD));
    }
    float *qd = be->alloc(nq * 4), *od = randf(nq, 9.0f);
    for (int i = 0; i < N; i++) {
        int b = order[i] / T, t = order[i] % T;
        memcpy(qd + (size_t)i * NH * HD, q + ((size_t)b * T + t) * NH * HD, (size_t)NH * HD * 4);
        len[i] = t + 1;
    }
    be->attention_decode(od, qd, kc, vc, slot, len, stride, N, NH, KVH, HD);
    double maxd = 0, maxr = 0;
    for (int i = 0; i < N; i++) {
        int b = order[i] / T, t = order[i] % T;
        for (int j = 0; j < NH * HD; j++) {
            size_t fi = ((size_t)b * T + t) * NH * HD + j;
            double d = fabs((double)od[(size_t)i * NH * HD + j] - out[fi]);
            if (!(d <= maxd)) maxd = d;
            if (fabs(ref[fi]) > maxr) maxr = fabs(ref[fi]);
        }
    }
    snprintf(tag, sizeof tag, "attention_decode == attention_forward rows B=%d T=%d NH=%d KVH=%d", B, T, NH, KVH);
    CHECKF(maxd <= 1e-5 * (maxr > 1 ? maxr : 1), "%s: max diff %.3g", tag, maxd);

    /* The same rows through a paged cache: blocks of 3 positions (a
     * sequence's last block part-full) handed out in a scrambled order,
     * written the way model_decode writes them (kv_cache_write with each
     * token's block and offset in it), then read back by
     * attention_decode_paged: the contiguous cache's bits. */
    int BS = 3, MB = (maxT + BS - 1) / BS, NB = nslots * MB + 2;
    int32_t *table = malloc((size_t)nslots * MB * 4), *perm = malloc((size_t)NB * 4);
    int32_t *wblk = malloc(N * 4), *wpos = malloc(N * 4);
    for (int i = 0; i < NB; i++) perm[i] = i;
    for (int i = NB - 1; i > 0; i--) {
        int j = (int)(rng_u64(&rng) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int i = 0; i < nslots * MB; i++) table[i] = perm[i];
    float *kp = randf((size_t)NB * BS * KD, 9.0f), *vp = randf((size_t)NB * BS * KD, 9.0f);
    for (int i = 0; i < N; i++) wblk[i] = table[(size_t)slot[i] * MB + posv[i] / BS], wpos[i] = posv[i] % BS;
    be->kv_cache_write(kp, vp, kr, vr, wblk, wpos, (size_t)BS * KD, N, KD);
    float *op = randf(nq, 9.0f);
    be->attention_decode_paged(op, qd, kp, vp, table, MB, BS, slot, len, N, NH, KVH, HD);
    snprintf(tag, sizeof tag, "attention_decode_paged == attention_decode B=%d T=%d NH=%d KVH=%d", B, T, NH, KVH);
    CHECKF(bits_equal(op, od, nq), "%s: not bit for bit", tag);
    free(table), free(perm), free(wblk), free(wpos);
    be->free(kp), be->free(vp), be->free(op);

    be->free(q), be->free(k), be->free(v), be->free(R), be->free(out), be->free(lse);
    be->free(dq), be->free(dk), be->free(dv), be->free(kc), be->free(vc), be->free(kr), be->free(vr);
    be->free(qd), be->free(od);
    free(slot), free(posv), free(len), free(order);
    free(c.q), free(c.k), free(c.v), free(c.R), free(ref), free(lref), free(gq), free(gk), free(gv);
}

/* ---- qkv split / merge ---- */

static void test_qkv(int N, int QD, int KD) {
    size_t W = (size_t)QD + 2 * KD;
    float *qkv = randf((size_t)N * W, 1.0f);
    float *q = be->alloc((size_t)N * QD * 4), *k = be->alloc((size_t)N * KD * 4), *v = be->alloc((size_t)N * KD * 4);
    be->qkv_split(q, k, v, qkv, N, QD, KD);
    int ok = 1;
    for (int n = 0; n < N; n++) {
        ok &= bits_equal(q + (size_t)n * QD, qkv + n * W, QD);
        ok &= bits_equal(k + (size_t)n * KD, qkv + n * W + QD, KD);
        ok &= bits_equal(v + (size_t)n * KD, qkv + n * W + QD + KD, KD);
    }
    CHECKF(ok, "qkv_split layout N=%d QD=%d KD=%d", N, QD, KD);
    float *back = randf((size_t)N * W, 1.0f);
    be->qkv_merge(back, q, k, v, N, QD, KD);
    CHECKF(bits_equal(back, qkv, (size_t)N * W), "qkv_merge(qkv_split(x)) == x");
    /* and the other way round */
    float *q2 = randf((size_t)N * QD, 1.0f), *k2 = randf((size_t)N * KD, 1.0f), *v2 = randf((size_t)N * KD, 1.0f);
    be->qkv_merge(back, q2, k2, v2, N, QD, KD);
    be->qkv_split(q, k, v, back, N, QD, KD);
    CHECK(bits_equal(q, q2, (size_t)N * QD) && bits_equal(k, k2, (size_t)N * KD) && bits_equal(v, v2, (size_t)N * KD));
    be->free(qkv), be->free(q), be->free(k), be->free(v), be->free(back), be->free(q2), be->free(k2), be->free(v2);
}

/* ---- swiglu ---- */

typedef struct {
    int N, K;
    double *gu, *R;
} SwCtx;

static void ref_swiglu(double *h, const SwCtx *c) {
    for (int n = 0; n < c->N; n++)
        for (int i = 0; i < c->K; i++) {
            double g = c->gu[(size_t)n * 2 * c->K + i], u = c->gu[(size_t)n * 2 * c->K + c->K + i];
            h[(size_t)n * c->K + i] = g / (1 + exp(-g)) * u;
        }
}

static double loss_swiglu(void *p) {
    SwCtx *c = p;
    double *h = zd((size_t)c->N * c->K);
    ref_swiglu(h, c);
    double l = dot_d(h, c->R, (size_t)c->N * c->K);
    free(h);
    return l;
}

static void test_swiglu(int N, int K) {
    char tag[96];
    size_t ng = (size_t)N * 2 * K, nh = (size_t)N * K;
    float *gu = randf(ng, 2.0f), *R = randf(nh, 1.0f);
    gu[0] = 30.0f, gu[1] = -30.0f; /* saturated sigmoid */
    SwCtx c = {N, K, to_d(gu, ng), to_d(R, nh)};
    float *h = randf(nh, 9.0f);
    be->swiglu_forward(h, gu, N, K);
    double *ref = zd(nh);
    ref_swiglu(ref, &c);
    snprintf(tag, sizeof tag, "swiglu_forward N=%d K=%d", N, K);
    CHECK_CLOSE(tag, h, ref, nh, FWD_TOL);
    double *g = zd(ng);
    fd_grad(loss_swiglu, &c, c.gu, ng, g);
    float *dgu = randf(ng, 9.0f); /* overwritten */
    be->swiglu_backward(dgu, R, gu, N, K);
    snprintf(tag, sizeof tag, "swiglu_backward N=%d K=%d", N, K);
    CHECK_CLOSE(tag, dgu, g, ng, BWD_TOL);
    be->swiglu_backward(dgu, R, gu, N, K);
    CHECK_CLOSE("swiglu_backward overwrites", dgu, g, ng, BWD_TOL);
    be->free(gu), be->free(R), be->free(h), be->free(dgu);
    free(c.gu), free(c.R), free(ref), free(g);
}

/* ---- embedding ---- */

typedef struct {
    int N, C;
    const int32_t *ids;
    double *table, *R;
} EmbCtx;

static double loss_embedding(void *p) {
    EmbCtx *c = p;
    double l = 0;
    for (int n = 0; n < c->N; n++)
        for (int i = 0; i < c->C; i++) l += c->table[(size_t)c->ids[n] * c->C + i] * c->R[(size_t)n * c->C + i];
    return l;
}

static void test_embedding(int N, int C, int V) {
    char tag[96];
    int32_t *ids = malloc(N * 4);
    for (int n = 0; n < N; n++) ids[n] = (int32_t)(rng_u64(&rng) % V);
    if (N > 2) ids[N - 1] = ids[0]; /* a repeated id: gradients add */
    ids[N / 2] = V - 1;
    size_t nt = (size_t)V * C, no = (size_t)N * C;
    float *table = randf(nt, 1.0f), *R = randf(no, 1.0f), *out = randf(no, 9.0f);
    EmbCtx c = {N, C, ids, to_d(table, nt), to_d(R, no)};
    be->embedding_forward(out, ids, table, N, C);
    int ok = 1;
    for (int n = 0; n < N; n++) ok &= bits_equal(out + (size_t)n * C, table + (size_t)ids[n] * C, C);
    snprintf(tag, sizeof tag, "embedding_forward N=%d C=%d V=%d", N, C, V);
    CHECKF(ok, "%s", tag);
    double *g = zd(nt);
    fd_grad(loss_embedding, &c, c.table, nt, g);
    float *dt = be->alloc(nt * 4);
    be->embedding_backward(dt, R, ids, N, C);
    snprintf(tag, sizeof tag, "embedding_backward N=%d C=%d V=%d", N, C, V);
    CHECK_CLOSE(tag, dt, g, nt, BWD_TOL);
    be->embedding_backward(dt, R, ids, N, C);
    for (size_t i = 0; i < nt; i++) g[i] *= 2;
    CHECK_CLOSE("embedding_backward accumulates", dt, g, nt, BWD_TOL);
    be->free(table), be->free(R), be->free(out), be->free(dt);
    free(ids), free(c.table), free(c.R), free(g);
}

/* ---- LM head log-prob ---- */

typedef struct {
    int N, C, V;
    double temp;
    const int32_t *target;
    double *x, *w, *R;
} LmCtx;

static void ref_lm(double *logp, double *ent, double *logits, const LmCtx *c) {
    double *z = zd(c->V);
    for (int n = 0; n < c->N; n++) {
        double m = -INFINITY;
        for (int j = 0; j < c->V; j++) {
            double s = dot_d(c->x + (size_t)n * c->C, c->w + (size_t)j * c->C, c->C);
            if (logits) logits[(size_t)n * c->V + j] = s;
            z[j] = s / c->temp;
            if (z[j] > m) m = z[j];
        }
        double sum = 0;
        for (int j = 0; j < c->V; j++) sum += exp(z[j] - m);
        double lse = m + log(sum), e = 0;
        for (int j = 0; j < c->V; j++) {
            double lp = z[j] - lse;
            e -= exp(lp) * lp;
        }
        int t = c->target[n];
        logp[n] = t < 0 ? 0 : z[t] - lse;
        if (ent) ent[n] = t < 0 ? 0 : e;
    }
    free(z);
}

static double loss_lm(void *p) {
    LmCtx *c = p;
    double *lp = zd(c->N);
    ref_lm(lp, NULL, NULL, c);
    double l = dot_d(lp, c->R, c->N);
    free(lp);
    return l;
}

static void test_lm_head(int N, int C, int V, float temp) {
    char tag[128];
    int32_t *target = malloc(N * 4);
    for (int n = 0; n < N; n++) target[n] = (int32_t)(rng_u64(&rng) % V);
    target[0] = -1;
    if (N > 3) target[N - 2] = -1, target[1] = V - 1;
    size_t nx = (size_t)N * C, nw = (size_t)V * C;
    float *x = randf(nx, 1.0f), *w = randf(nw, 0.7f), *R = randf(N, 1.0f);
    if (N > 4) R[3] = 0.0f; /* a row with zero upstream gradient */
    LmCtx c = {N, C, V, temp, target, to_d(x, nx), to_d(w, nw), to_d(R, N)};
    double *lref = zd(N), *eref = zd(N), *gref = zd((size_t)N * V);
    ref_lm(lref, eref, gref, &c);
    /* with logits_out and entropy */
    float *logp = randf(N, 9.0f), *ent = randf(N, 9.0f), *logits = randf((size_t)N * V, 9.0f);
    be->lm_head_logprob_forward(logp, ent, logits, x, w, target, N, C, V, temp);
    snprintf(tag, sizeof tag, "lm_head_logprob_forward logp N=%d C=%d V=%d temp=%g", N, C, V, temp);
    CHECK_CLOSE(tag, logp, lref, N, FWD_TOL);
    CHECK_CLOSE("lm_head_logprob_forward entropy", ent, eref, N, FWD_TOL);
    CHECK_CLOSE("lm_head_logprob_forward logits_out (before temperature)", logits, gref, (size_t)N * V, FWD_TOL);
    int zeros = 1;
    for (int n = 0; n < N; n++)
        if (target[n] < 0) zeros &= logp[n] == 0.0f && ent[n] == 0.0f;
    CHECKF(zeros, "rows with target -1 get logp = ent = 0");
    /* chunked path without logits_out, entropy NULL */
    float *logp2 = randf(N, 9.0f);
    be->lm_head_logprob_forward(logp2, NULL, NULL, x, w, target, N, C, V, temp);
    CHECK_CLOSE("lm_head_logprob_forward (no logits_out, ent NULL)", logp2, lref, N, FWD_TOL);

    double *gx = zd(nx), *gw = zd(nw);
    fd_grad(loss_lm, &c, c.x, nx, gx);
    fd_grad(loss_lm, &c, c.w, nw, gw);
    float *dx = randf(nx, 9.0f), *dw = be->alloc(nw * 4);
    be->lm_head_logprob_backward(dx, dw, R, x, w, NULL, target, N, C, V, temp);
    snprintf(tag, sizeof tag, "lm_head_logprob_backward dx N=%d C=%d V=%d temp=%g", N, C, V, temp);
    CHECK_CLOSE(tag, dx, gx, nx, BWD_TOL);
    snprintf(tag, sizeof tag, "lm_head_logprob_backward dw N=%d C=%d V=%d temp=%g", N, C, V, temp);
    CHECK_CLOSE(tag, dw, gw, nw, BWD_TOL);
    /* dx overwritten, dw accumulated; the forward's logits kept instead of recomputed */
    be->lm_head_logprob_backward(dx, dw, R, x, w, logits, target, N, C, V, temp);
    for (size_t i = 0; i < nw; i++) gw[i] *= 2;
    CHECK_CLOSE("lm_head_logprob_backward dx overwritten", dx, gx, nx, BWD_TOL);
    CHECK_CLOSE("lm_head_logprob_backward dw accumulates", dw, gw, nw, BWD_TOL);
    /* dw NULL */
    be->lm_head_logprob_backward(dx, NULL, R, x, w, NULL, target, N, C, V, temp);
    CHECK_CLOSE("lm_head_logprob_backward dw=NULL", dx, gx, nx, BWD_TOL);

    be->free(x), be->free(w), be->free(R), be->free(logp), be->free(ent), be->free(logits), be->free(logp2);
    be->free(dx), be->free(dw);
    free(target), free(c.x), free(c.w), free(c.R), free(lref), free(eref), free(gref), free(gx), free(gw);
}

/* ---- AdamW ---- */

static void test_adamw(size_t n) {
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    float *p = randf(n, 1.0f), *m = be->alloc(n * 4), *v = be->alloc(n * 4);
    float *g1 = randf(n, 1.0f), *g2 = randf(n, 1.0f);
    g1[0] = 0.0f, g2[0] = 0.0f; /* zero gradient: pure decay */
    double *pr = to_d(p, n), *mr = zd(n), *vr = zd(n);
    const float *gs[2] = {g1, g2};
    const float gscale[2] = {1.0f, 0.37f}; /* the second step's gradients clipped */
    for (int t = 1; t <= 2; t++) {
        be->adamw_update(p, gs[t - 1], m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t,
                         gscale[t - 1]);
        double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        for (size_t i = 0; i < n; i++) {
            double g = (double)gs[t - 1][i] * gscale[t - 1];
            pr[i] *= 1 - lr * wd;
            mr[i] = b1 * mr[i] + (1 - b1) * g;
            vr[i] = b2 * vr[i] + (1 - b2) * g * g;
            pr[i] -= lr / bc1 * mr[i] / (sqrt(vr[i]) / sqrt(bc2) + eps);
        }
        char tag[64];
        snprintf(tag, sizeof tag, "adamw step %d: p", t);
        CHECK_CLOSE(tag, p, pr, n, 1e-6);
        snprintf(tag, sizeof tag, "adamw step %d: m", t);
        CHECK_CLOSE(tag, m, mr, n, 1e-6);
        snprintf(tag, sizeof tag, "adamw step %d: v", t);
        CHECK_CLOSE(tag, v, vr, n, 1e-6);
    }
    /* gscale gives exactly what scaling the gradients first gives */
    float *q = randf(n, 1.0f), *q2 = be->alloc(n * 4), *mq = be->alloc(n * 4), *vq = be->alloc(n * 4);
    float *mq2 = be->alloc(n * 4), *vq2 = be->alloc(n * 4), *gq = randf(n, 3.0f), *gq2 = be->alloc(n * 4);
    memcpy(q2, q, n * 4), memcpy(gq2, gq, n * 4);
    be->scale(gq2, 0.0123f, n);
    for (int t = 1; t <= 2; t++) {
        be->adamw_update(q, gq, mq, vq, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, t, 0.0123f);
        be->adamw_update(q2, gq2, mq2, vq2, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, t, 1.0f);
    }
    CHECK(memcmp(q, q2, n * 4) == 0 && memcmp(mq, mq2, n * 4) == 0 && memcmp(vq, vq2, n * 4) == 0);
    be->free(q), be->free(q2), be->free(mq), be->free(vq), be->free(mq2), be->free(vq2), be->free(gq), be->free(gq2);
    be->free(p), be->free(m), be->free(v), be->free(g1), be->free(g2);
    free(pr), free(mr), free(vr);
}

/* eps large enough that its placement matters:
 * t=1: p = 0.999 - 0.1 * 0.5 / (0.5 + 0.1) = 0.91566667
 * t=2: p = 0.8934953936 (m = 0.02, v = 3.1225e-4) */
static void test_adamw_by_hand(void) {
    float hp = 1.0f, hm = 0, hv = 0, hg = 0.5f;
    be->adamw_update(&hp, &hg, &hm, &hv, 1, 0.1f, 0.9f, 0.999f, 0.1f, 0.01f, 1, 1.0f);
    CHECK_NEAR(hp, 0.9156666667, 1e-6);
    CHECK_NEAR(hm, 0.05, 1e-7);
    CHECK_NEAR(hv, 2.5e-4, 2e-8);
    hg = -0.25f;
    be->adamw_update(&hp, &hg, &hm, &hv, 1, 0.1f, 0.9f, 0.999f, 0.1f, 0.01f, 2, 1.0f);
    CHECK_NEAR(hp, 0.8934953936, 1e-6);
    CHECK_NEAR(hm, 0.02, 1e-7);
    CHECK_NEAR(hv, 3.1225e-4, 2e-8);
    /* first step moves every parameter with g != 0 by about lr */
    float q = 1.0f, mq = 0, vq = 0, gq = -3.0f;
    be->adamw_update(&q, &gq, &mq, &vq, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1, 1.0f);
    CHECK_NEAR(q, 1.1, 1e-6);
}

int main(void) {
    be = backend_cpu();
    CHECK(be != NULL && !strcmp(be->name, "cpu"));
    /* every slot of the table is filled, but the optional GPU ones
     * (sample, mem_info, weights_hint, weights_freeze, graph_begin/end,
     * the fused decode ops and kv_elem_bytes: the host samples, there is
     * no second copy, nothing to replay, and the callers run the unfused
     * sequences on fp32 caches) */
    const void *const *slots = (const void *const *)((const char *)be + offsetof(Backend, alloc));
    size_t nslots = (sizeof(Backend) - offsetof(Backend, alloc)) / sizeof(void *);
    const size_t optional[] = {offsetof(Backend, sample),         offsetof(Backend, mem_info),
                               offsetof(Backend, weights_hint),   offsetof(Backend, weights_freeze),
                               offsetof(Backend, graph_begin),    offsetof(Backend, graph_end),
                               offsetof(Backend, add_rmsnorm_forward), offsetof(Backend, qkv_rope_cache),
                               offsetof(Backend, kv_elem_bytes),       offsetof(Backend, swiglu_forward_gemm),
                               offsetof(Backend, swiglu_backward_gemm)};
    for (size_t i = 0; i < nslots; i++) {
        int opt = 0;
        for (size_t j = 0; j < sizeof optional / sizeof optional[0]; j++)
            opt |= i == (optional[j] - offsetof(Backend, alloc)) / sizeof(void *);
        if (opt) CHECKF(slots[i] == NULL, "optional slot %zu should be NULL on the CPU", i);
        else CHECKF(slots[i] != NULL, "Backend slot %zu is NULL", i);
    }
    rng_seed(&rng, 1234);

    test_memory_ops();

    test_matmul_decode_sizes();
    test_matmul(1, 1, 1, 1);
    test_matmul(5, 7, 3, 1);
    test_matmul(4, 9, 13, 0);
    test_matmul(1, 16, 5, 1);
    test_matmul(17, 3, 2, 1);

    test_rmsnorm(1, 8, 1e-6f);
    test_rmsnorm(5, 7, 1e-5f);
    test_rmsnorm(3, 33, 1e-6f);

    test_rope(1, 1, 2, 4, 1);
    test_rope(5, 3, 8, 16, 1);
    test_rope(4, 2, 10, 7, 0);
    test_rope(7, 1, 6, 50, 1);

    /* B, T, NH, KVH, HD: MHA, GQA 2 and 3, MQA, T=1, odd head dims */
    test_attention(2, 5, 4, 4, 4);
    test_attention(2, 6, 4, 2, 8);
    test_attention(1, 7, 6, 2, 5);
    test_attention(3, 1, 3, 1, 4);
    test_attention(1, 9, 2, 1, 3);
    test_attention(2, 4, 6, 3, 6);

    test_qkv(1, 4, 2);
    test_qkv(5, 12, 4);
    test_qkv(3, 7, 5);

    test_swiglu(1, 1);
    test_swiglu(4, 9);
    test_swiglu(3, 16);

    test_embedding(1, 4, 3);
    test_embedding(9, 5, 6);
    test_embedding(6, 8, 40);

    test_lm_head(1, 4, 5, 1.0f);
    test_lm_head(6, 7, 11, 0.7f);
    test_lm_head(70, 5, 9, 1.3f); /* more rows than one chunk (64) */

    /* shapes large enough to take the OpenMP-parallel branches (run with
     * OMP_NUM_THREADS > 1 to exercise them); FD on 24 sampled entries */
    g_fd_sample = 24;
    test_matmul(200, 6, 200, 1);
    test_rmsnorm(64, 300, 1e-6f);
    test_rope(64, 4, 72, 100, 1);
    test_swiglu(64, 300);
    test_embedding(64, 300, 50);
    test_attention(2, 40, 4, 2, 16);
    test_lm_head(130, 16, 40, 0.9f);
    g_fd_sample = 0;

    test_adamw(37);
    test_adamw_by_hand();
    test_adamw(70001); /* OpenMP path */
    return check_summary("test_ops");
}
