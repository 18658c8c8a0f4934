/* The tcp communicator with real processes on this machine: every
 * collective against sums computed here (exact on integer-valued floats,
 * bit-identical across ranks otherwise), chunks larger than the ring's
 * segment, uneven splits, and the ways a job goes wrong: a rank that dies,
 * one that hangs, ranks in different collectives, a stray connection to
 * the master port, no rank 0 at all, malformed environment variables;
 * and the slices the trainers and ZeRO-1 cut.
 * Each rank is a forked child; it exits 0 when all its checks pass. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "check.h"
#include "dist/comm.h"
#include "dist/dist.h"
#include "dist/wire.h"
#include "train/zero.h"

static int g_port;

static int pick_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static Comm *join(int rank, int world, int timeout_ms, Err *err) {
    DistEnv e = {.rank = rank, .world = world, .local_rank = rank, .local_world = world, .master_port = g_port,
                 .timeout_ms = timeout_ms};
    snprintf(e.master_addr, sizeof e.master_addr, "127.0.0.1");
    return comm_tcp_create(&e, err);
}

typedef int (*RankFn)(int rank, int world);

/* Runs fn as `world` ranks; returns how many ranks failed. */
static int run_ranks(int world, RankFn fn) {
    g_port = pick_port();
    pid_t pid[8];
    for (int r = 0; r < world; r++) {
        fflush(stdout), fflush(stderr);
        pid[r] = fork();
        if (pid[r] == 0) _exit(fn(r, world));
    }
    int bad = 0;
    for (int r = 0; r < world; r++) {
        int st;
        waitpid(pid[r], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "rank %d of %d failed (status %d)\n", r, world, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            bad++;
        }
    }
    return bad;
}

#define RCHECK(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "rank %d: %s:%d: %s: ", rank, __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            fails++;                                                           \
        }                                                                      \
    } while (0)

/* integer-valued, so every summation order gives the exact same float */
static float val(size_t i, int r) { return (float)((i * 7 + (size_t)r * 13) % 1000) - 500.0f; }

static int collectives(int rank, int world) {
    Err err = {{0}};
    int fails = 0;
    Comm *c = join(rank, world, 20000, &err);
    if (!c) {
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        return 1;
    }
    RCHECK(c->rank == rank && c->world == world && !strcmp(c->ops->name, "tcp"), "identity");
    const size_t sizes[] = {0, 1, 2, 5, 1000, ((size_t)3 << 20) + 7}; /* the last crosses the 1M-float segment */
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float *b = malloc((n ? n : 1) * sizeof(float));
        for (size_t i = 0; i < n; i++) b[i] = val(i, rank);
        int rc = c->ops->allreduce_sum_f32(c, b, n, &err);
        RCHECK(rc == 0, "allreduce %zu: %s", n, err.msg);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = 0;
            for (int r = 0; r < world; r++) want += val(i, r);
            bad += b[i] != want;
        }
        RCHECK(bad == 0, "allreduce of %zu floats: %zu wrong", n, bad);
        free(b);
    }
    /* non-integer values: rounding depends on the order, but every rank
     * must end with the same bits (replicated weights stay replicated) */
    size_t n = 100003;
    float *b = malloc(n * sizeof(float));
    double maxrel = 0;
    for (size_t i = 0; i < n; i++) b[i] = 1.0f / (float)(i + 1 + rank * 3) + 1e-3f * (float)rank;
    RCHECK(c->ops->allreduce_sum_f32(c, b, n, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        double want = 0;
        for (int r = 0; r < world; r++) want += 1.0f / (float)(i + 1 + r * 3) + 1e-3f * (float)r;
        double rel = fabs(b[i] - want) / fabs(want);
        maxrel = rel > maxrel ? rel : maxrel;
    }
    RCHECK(maxrel < 1e-6, "allreduce relative error %g", maxrel);
    uint64_t h = 0xcbf29ce484222325ull, hs[8];
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ ((unsigned char *)b)[i]) * 0x100000001b3ull;
    RCHECK(c->ops->allgather(c, &h, sizeof h, hs, &err) == 0, "%s", err.msg);
    for (int r = 0; r < world; r++) RCHECK(hs[r] == h, "rank %d's all-reduce result differs from this rank's", r);
    free(b);
    /* allgather of an odd size, broadcast of more than one segment from a non-zero root */
    char mine[13], all[8 * 13];
    for (int i = 0; i < 13; i++) mine[i] = (char)(rank * 16 + i);
    RCHECK(c->ops->allgather(c, mine, 13, all, &err) == 0, "%s", err.msg);
    for (int r = 0; r < world; r++)
        for (int i = 0; i < 13; i++) RCHECK(all[r * 13 + i] == (char)(r * 16 + i), "allgather byte %d of rank %d", i, r);
    size_t nb = ((size_t)9 << 20) + 3;
    unsigned char *bb = malloc(nb);
    int root = world - 1;
    for (size_t i = 0; i < nb; i++) bb[i] = rank == root ? (unsigned char)(i * 31 + 7) : 0;
    RCHECK(c->ops->broadcast(c, bb, nb, root, &err) == 0, "%s", err.msg);
    size_t wrong = 0;
    for (size_t i = 0; i < nb; i++) wrong += bb[i] != (unsigned char)(i * 31 + 7);
    RCHECK(wrong == 0, "broadcast: %zu bytes differ from the root's", wrong);
    free(bb);
    /* reduce-scatter: rank r gets the sum of slice r */
    size_t m = 1001;
    float *rs = malloc(m * world * sizeof(float)), *out = malloc(m * sizeof(float));
    for (size_t i = 0; i < m * world; i++) rs[i] = val(i, rank);
    RCHECK(c->ops->reduce_scatter_sum_f32(c, rs, m, out, &err) == 0, "%s", err.msg);
    wrong = 0;
    for (size_t i = 0; i < m; i++) {
        float want = 0;
        for (int r = 0; r < world; r++) want += val((size_t)rank * m + i, r);
        wrong += out[i] != want;
    }
    RCHECK(wrong == 0, "reduce_scatter: %zu wrong", wrong);
    free(rs), free(out);
    RCHECK(c->ops->barrier(c, &err) == 0, "%s", err.msg);
    /* the trainer helpers: rank-order sums and maxima, agreement on a flag */
    double v[2] = {rank + 0.5, -rank};
    RCHECK(dist_sum_f64(c, v, 2, &err) == 0, "%s", err.msg);
    RCHECK(v[0] == world * (world - 1) / 2.0 + 0.5 * world && v[1] == -(world * (world - 1) / 2.0), "dist_sum_f64");
    double mx = rank == 1 ? 7 : rank;
    RCHECK(dist_max_f64(c, &mx, 1, &err) == 0 && mx == (world > 7 ? world - 1 : 7), "dist_max_f64 %g", mx);
    int any = -1;
    RCHECK(dist_any(c, rank == world - 1, &any, &err) == 0 && any == 1, "dist_any");
    RCHECK(dist_any(c, 0, &any, &err) == 0 && any == 0, "dist_any (none)");
    comm_free(c);
    return fails ? 1 : 0;
}

/* the slices cover [0, n) exactly, in order, sizes within 1, rank 0 first */
static void test_slices(void) {
    for (int W = 1; W <= 5; W++)
        for (int n = 0; n <= 11; n++) {
            int at = 0, mn = 1 << 30, mx = 0;
            for (int r = 0; r < W; r++) {
                int lo, hi;
                dist_slice_of(W, r, n, &lo, &hi);
                CHECKF(lo == at && hi >= lo, "W=%d n=%d r=%d: [%d, %d) after %d", W, n, r, lo, hi, at);
                at = hi;
                mn = hi - lo < mn ? hi - lo : mn, mx = hi - lo > mx ? hi - lo : mx;
                if (r == 0 && n > 0) CHECK(hi > 0);
            }
            CHECK(at == n && mx - mn <= 1 && mx == (n + W - 1) / W);
        }
}

/* what peers send is decoded field by field and checked */
static void test_wire(void) {
    Err err;
    uint8_t b[WIRE_ENTRY_BYTES];
    WireHello h = {3, 4, 40000}, g;
    wire_hello_encode(b, &h);
    CHECK(b[0] == 0x52 && b[3] == 0x44); /* little-endian "R1CD" whatever the host */
    CHECK(wire_hello_decode(b, WIRE_HELLO_BYTES, 4, &g, &err) == 0 && g.rank == 3 && g.world == 4 && g.port == 40000);
    CHECK(wire_hello_decode(b, WIRE_HELLO_BYTES - 1, 4, &g, &err) == 1);                   /* short */
    CHECK(wire_hello_decode(b, WIRE_HELLO_BYTES, 5, &g, &err) == -1 && strstr(err.msg, "WORLD_SIZE=4"));
    h.rank = 4, wire_hello_encode(b, &h);
    CHECK(wire_hello_decode(b, WIRE_HELLO_BYTES, 4, &g, &err) == -1 && strstr(err.msg, "outside"));
    h.rank = 1, h.port = 70000, wire_hello_encode(b, &h);
    CHECK(wire_hello_decode(b, WIRE_HELLO_BYTES, 4, &g, &err) == -1 && strstr(err.msg, "port"));
    b[4] = 9; /* version */
    CHECK(wire_hello_decode(b, WIRE_HELLO_BYTES, 4, &g, &err) == -1 && strstr(err.msg, "version"));
    memcpy(b, "GET / HTTP/1.0\r\n\r\nxx", WIRE_HELLO_BYTES);
    CHECK(wire_hello_decode(b, WIRE_HELLO_BYTES, 4, &g, &err) == 1);
    WireHeader hd = {2, 0x1122334455667788ull, (uint64_t)1 << 40}, hg;
    wire_header_encode(b, &hd);
    CHECK(wire_header_decode(b, WIRE_HEADER_BYTES, &hg, &err) == 0 && hg.op == 2 && hg.seq == hd.seq &&
          hg.bytes == hd.bytes);
    b[1] ^= 1;
    CHECK(wire_header_decode(b, WIRE_HEADER_BYTES, &hg, &err) == -1);
    WireEntry e = {"192.168.1.20", 31337}, f;
    wire_entry_encode(b, &e);
    CHECK(wire_entry_decode(b, WIRE_ENTRY_BYTES, &f, &err) == 0 && !strcmp(f.addr, "192.168.1.20") && f.port == 31337);
    snprintf(e.addr, sizeof e.addr, "fe80::1"), wire_entry_encode(b, &e);
    CHECK(wire_entry_decode(b, WIRE_ENTRY_BYTES, &f, &err) == 0 && !strcmp(f.addr, "fe80::1"));
    memset(b, 'a', WIRE_ADDR_BYTES); /* no NUL */
    CHECK(wire_entry_decode(b, WIRE_ENTRY_BYTES, &f, &err) == -1);
    snprintf((char *)b, WIRE_ADDR_BYTES, "evil.host;rm -rf");
    CHECK(wire_entry_decode(b, WIRE_ENTRY_BYTES, &f, &err) == -1 && strstr(err.msg, "numeric"));
    e.port = 0, snprintf(e.addr, sizeof e.addr, "10.0.0.1"), wire_entry_encode(b, &e);
    CHECK(wire_entry_decode(b, WIRE_ENTRY_BYTES, &f, &err) == -1);
}

/* ZeRO shards: the same properties over size_t counts */
static void test_zero_shards(void) {
    const size_t ns[] = {0, 1, 7, 1000003, (size_t)7615616512ull}; /* the last: a 7B model's floats, > 2^32 */
    for (int W = 1; W <= 4; W++)
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            size_t at = 0, mn = (size_t)-1, mx = 0;
            for (int r = 0; r < W; r++) {
                size_t lo, hi;
                zero_shard(W, r, ns[k], &lo, &hi);
                CHECKF(lo == at && hi >= lo, "W=%d n=%zu r=%d", W, ns[k], r);
                at = hi, mn = hi - lo < mn ? hi - lo : mn, mx = hi - lo > mx ? hi - lo : mx;
            }
            CHECK(at == ns[k] && mx - mn <= 1);
        }
}

static int expect_err(Comm *c, int rc, const Err *err, const char *want, int rank) {
    int fails = 0;
    RCHECK(rc != 0, "the collective succeeded");
    RCHECK(strstr(err->msg, want) != NULL, "error '%s' lacks '%s'", err->msg, want);
    (void)c;
    return fails;
}

/* rank 1 dies after joining: rank 0 fails fast, naming it */
static int dead_peer(int rank, int world) {
    Err err = {{0}};
    Comm *c = join(rank, world, 20000, &err);
    if (!c) return 1;
    if (rank == 1) _exit(0); /* gone without a word */
    float b[64] = {0};
    double t0 = clock_seconds();
    int rc = c->ops->allreduce_sum_f32(c, b, 64, &err);
    int fails = expect_err(c, rc, &err, "rank 1 closed its connection", rank);
    RCHECK(clock_seconds() - t0 < 5, "took %.1f s to notice", clock_seconds() - t0);
    return fails ? 1 : 0;
}

/* rank 1 stops answering: rank 0 gives up after its 1 s timeout */
static int hung_peer(int rank, int world) {
    Err err = {{0}};
    Comm *c = join(rank, world, 1000, &err);
    if (!c) return 1;
    if (rank == 1) {
        sleep(4);
        _exit(0);
    }
    float b[64] = {0};
    double t0 = clock_seconds();
    int rc = c->ops->allreduce_sum_f32(c, b, 64, &err);
    double dt = clock_seconds() - t0;
    int fails = expect_err(c, rc, &err, "no data from rank 1", rank);
    RCHECK(dt > 0.9 && dt < 3, "timed out after %.1f s, expected about 1", dt);
    return fails ? 1 : 0;
}

/* ranks in different collectives: refused, not misread */
static int mismatched(int rank, int world) {
    Err err = {{0}};
    Comm *c = join(rank, world, 5000, &err);
    if (!c) return 1;
    float b[10] = {0};
    int rc = rank == 0 ? c->ops->allreduce_sum_f32(c, b, 10, &err) : c->ops->allgather(c, b, 12, b, &err);
    int fails = expect_err(c, rc, &err, "different code paths", rank);
    comm_free(c);
    return fails ? 1 : 0;
}

/* a stray client talks garbage to the master port first: ignored */
static int stray_then_join(int rank, int world) {
    Err err = {{0}};
    int fails = 0;
    if (rank == 1) {
        usleep(200 * 1000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons((uint16_t)g_port)};
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            const char junk[] = "GET / HTTP/1.0\r\n\r\n garbage garbage";
            (void)!write(fd, junk, sizeof junk);
        }
        close(fd);
    }
    Comm *c = join(rank, world, 10000, &err);
    RCHECK(c != NULL, "join after a stray connection: %s", err.msg);
    if (!c) return 1;
    float b[3] = {1, 2, 3};
    RCHECK(c->ops->allreduce_sum_f32(c, b, 3, &err) == 0 && b[2] == 6, "%s", err.msg);
    comm_free(c);
    return fails ? 1 : 0;
}

/* no rank 0 ever comes: the connect gives up at the timeout */
static int lonely(int rank, int world) {
    (void)world;
    Err err = {{0}};
    int fails = 0;
    double t0 = clock_seconds();
    Comm *c = join(1, 2, 1000, &err);
    RCHECK(c == NULL && strstr(err.msg, "cannot connect"), "%s", c ? "joined" : err.msg);
    RCHECK(clock_seconds() - t0 < 4, "gave up after %.1f s", clock_seconds() - t0);
    return fails ? 1 : 0;
}

static void test_env(void) {
    Err err;
    DistEnv e;
    const char *vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                          "R1C_DIST_TIMEOUT", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
    CHECK(dist_env_read(&e, &err) == 0 && e.world == 1 && e.rank == 0 && e.timeout_ms == 300000);
    setenv("WORLD_SIZE", "4", 1), setenv("RANK", "3", 1), setenv("MASTER_PORT", "29500", 1);
    setenv("LOCAL_RANK", "1", 1), setenv("LOCAL_WORLD_SIZE", "2", 1), setenv("R1C_DIST_TIMEOUT", "7", 1);
    CHECK(dist_env_read(&e, &err) == 0 && e.world == 4 && e.rank == 3 && e.local_rank == 1 && e.local_world == 2 &&
          e.master_port == 29500 && !strcmp(e.master_addr, "127.0.0.1") && e.timeout_ms == 7000);
    setenv("RANK", "4", 1);
    CHECK(dist_env_read(&e, &err) != 0 && strstr(err.msg, "RANK=4"));
    setenv("RANK", "1x", 1);
    CHECK(dist_env_read(&e, &err) != 0 && strstr(err.msg, "RANK='1x'"));
    setenv("RANK", "1", 1), setenv("MASTER_PORT", "70000", 1);
    CHECK(dist_env_read(&e, &err) != 0 && strstr(err.msg, "MASTER_PORT"));
    unsetenv("MASTER_PORT");
    CHECK(dist_env_read(&e, &err) != 0 && strstr(err.msg, "needs MASTER_PORT"));
    setenv("MASTER_PORT", "29500", 1), setenv("LOCAL_RANK", "2", 1);
    CHECK(dist_env_read(&e, &err) != 0 && strstr(err.msg, "LOCAL_RANK"));
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
    /* mpirun's variables when torchrun's are absent */
    setenv("OMPI_COMM_WORLD_RANK", "1", 1), setenv("OMPI_COMM_WORLD_SIZE", "2", 1), setenv("MASTER_PORT", "1234", 1);
    CHECK(dist_env_read(&e, &err) == 0 && e.world == 2 && e.rank == 1);
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_slices();
    test_wire();
    test_zero_shards();
    test_env();
    CHECKF(run_ranks(2, collectives) == 0, "collectives on 2 ranks");
    CHECKF(run_ranks(3, collectives) == 0, "collectives on 3 ranks");
    CHECKF(run_ranks(2, dead_peer) == 0, "a dead rank");
    CHECKF(run_ranks(2, hung_peer) == 0, "a hung rank");
    CHECKF(run_ranks(2, mismatched) == 0, "mismatched collectives");
    CHECKF(run_ranks(2, stray_then_join) == 0, "a stray connection");
    CHECKF(run_ranks(1, lonely) == 0, "no rank 0");
    return check_summary("test_dist");
}
