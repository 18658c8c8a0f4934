/* The tcp communicator (see comm.h): a bootstrap through rank 0, then a
 * ring (each rank sends to rank + 1 and receives from rank - 1). Ring
 * collectives move 2 (W - 1) / W of the buffer per rank, as NCCL's do,
 * and sum every element exactly once in a fixed order, so all ranks end
 * with the same bits.
 *
 * Peers are untrusted input: every message has a fixed size known to both
 * sides, headers carry a magic, an op, a sequence number and a size that
 * must match this rank's own, and every wait is a poll() with a timeout.
 * A peer that closes its socket, sends garbage or stays silent past the
 * timeout turns into an Err naming its rank. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "dist/comm.h"
#include "dist/wire.h"

#define SEG_FLOATS ((size_t)1 << 20) /* per-chunk unit of the ring: bounds scratch memory */

typedef struct Tcp {
    int next_fd, prev_fd; /* ring: send to rank + 1, receive from rank - 1 */
    uint64_t seq;         /* collectives done: both sides of a link must agree */
    float *tmp;           /* reduce scratch, SEG_FLOATS */
} Tcp;

enum { OP_ALLREDUCE = 1, OP_BROADCAST, OP_ALLGATHER, OP_REDUCE_SCATTER, OP_BARRIER };
static const char *const OP_NAME[] = {"?", "allreduce", "broadcast", "allgather", "reduce_scatter", "barrier"};

static int next_rank(const Comm *c) { return (c->rank + 1) % c->world; }
static int prev_rank(const Comm *c) { return (c->rank + c->world - 1) % c->world; }

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void tune(int fd) {
    int one = 1, buf = 4 << 20;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* headers are tiny and latency-bound */
    /* a ring piece (4 MB) in flight at once instead of many poll rounds; the kernel caps it */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

/* ---- moving bytes with a timeout ---- */

/* Sends sn bytes to send_fd while receiving rn bytes from recv_fd (either
 * may be 0 / -1), so two ranks sending to each other never deadlock on
 * full socket buffers. Fails when nothing moves for timeout_ms. */
static int xfer(Comm *c, int send_fd, const void *sbuf, size_t sn, int send_peer, int recv_fd, void *rbuf,
                size_t rn, int recv_peer, Err *err) {
    const char *sp = sbuf;
    char *rp = rbuf;
    size_t so = 0, ro = 0;
    double last = clock_seconds();
    while (so < sn || ro < rn) {
        struct pollfd pf[2];
        int n = 0, si = -1, ri = -1;
        if (so < sn) pf[si = n++] = (struct pollfd){.fd = send_fd, .events = POLLOUT};
        if (ro < rn) pf[ri = n++] = (struct pollfd){.fd = recv_fd, .events = POLLIN};
        double left_ms = c->timeout_ms - (clock_seconds() - last) * 1e3;
        if (left_ms <= 0) {
            int who = ro < rn ? recv_peer : send_peer;
            return err_set(err, "rank %d: no data from rank %d for %d s (R1C_DIST_TIMEOUT): it hung, or is much slower",
                           c->rank, who, c->timeout_ms / 1000);
        }
        int pr = poll(pf, n, left_ms > 1000 ? 1000 : (int)left_ms + 1);
        if (pr < 0) {
            if (errno == EINTR) continue; /* a signal (Ctrl-C is handled between steps) */
            return err_set(err, "rank %d: poll: %s", c->rank, strerror(errno));
        }
        if (ri >= 0 && pf[ri].revents) {
            ssize_t k = recv(recv_fd, rp + ro, rn - ro, 0);
            if (k == 0)
                return err_set(err, "rank %d: rank %d closed its connection (it exited or crashed)", c->rank, recv_peer);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return err_set(err, "rank %d: receiving from rank %d: %s", c->rank, recv_peer, strerror(errno));
            if (k > 0) ro += (size_t)k, last = clock_seconds();
        }
        if (si >= 0 && pf[si].revents) {
            ssize_t k = send(send_fd, sp + so, sn - so, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return err_set(err, "rank %d: sending to rank %d: %s (it exited or crashed)", c->rank, send_peer,
                               errno == EPIPE || errno == ECONNRESET ? "connection closed" : strerror(errno));
            if (k > 0) so += (size_t)k, last = clock_seconds();
        }
    }
    return 0;
}

static int ring_xfer(Comm *c, const void *sbuf, size_t sn, void *rbuf, size_t rn, Err *err) {
    Tcp *t = c->impl;
    return xfer(c, t->next_fd, sbuf, sn, next_rank(c), t->prev_fd, rbuf, rn, prev_rank(c), err);
}

/* Both neighbours must be in the same collective with the same size. */
static int ring_header(Comm *c, int op, uint64_t bytes, Err *err) {
    Tcp *t = c->impl;
    WireHeader mine = {(uint32_t)op, t->seq++, bytes}, got;
    uint8_t out[WIRE_HEADER_BYTES], in[WIRE_HEADER_BYTES];
    wire_header_encode(out, &mine);
    if (ring_xfer(c, out, sizeof out, in, sizeof in, err) != 0) return -1;
    if (wire_header_decode(in, sizeof in, &got, err) != 0) return err_prefix(err, "rank %d: from rank %d", c->rank, prev_rank(c));
    if (got.op != mine.op || got.seq != mine.seq || got.bytes != mine.bytes)
        return err_set(err,
                       "rank %d: rank %d is in collective #%llu %s of %llu bytes, this rank in #%llu %s of %llu bytes "
                       "(the ranks ran different code paths)",
                       c->rank, prev_rank(c), (unsigned long long)got.seq,
                       got.op < sizeof OP_NAME / sizeof *OP_NAME ? OP_NAME[got.op] : "?", (unsigned long long)got.bytes,
                       (unsigned long long)mine.seq, OP_NAME[op], (unsigned long long)mine.bytes);
    return 0;
}

/* ---- collectives ---- */

static size_t chunk_lo(size_t n, int W, int i) { return n * (size_t)i / (size_t)W; }

/* Ring reduce-scatter of buf(n) split into W chunks, summing in place;
 * afterwards rank r holds the full sum of chunk (r + 1 + shift) mod W.
 * Chunks longer than SEG_FLOATS go through tmp in pieces. */
static int ring_reduce_scatter(Comm *c, float *buf, size_t n, int shift, Err *err) {
    Tcp *t = c->impl;
    int W = c->world, r = c->rank;
    for (int s = 0; s < W - 1; s++) {
        int sc = ((r - s + shift) % W + W) % W, rc = ((r - s - 1 + shift) % W + W) % W;
        size_t s0 = chunk_lo(n, W, sc), s1 = chunk_lo(n, W, sc + 1);
        size_t r0 = chunk_lo(n, W, rc), r1 = chunk_lo(n, W, rc + 1);
        /* pieces of at most SEG_FLOATS; both sides step through them alike */
        for (size_t so = s0, ro = r0; so < s1 || ro < r1;) {
            size_t sk = s1 - so < SEG_FLOATS ? s1 - so : SEG_FLOATS, rk = r1 - ro < SEG_FLOATS ? r1 - ro : SEG_FLOATS;
            if (ring_xfer(c, buf + so, sk * sizeof(float), t->tmp, rk * sizeof(float), err) != 0) return -1;
            for (size_t i = 0; i < rk; i++) buf[ro + i] += t->tmp[i];
            so += sk, ro += rk;
        }
    }
    return 0;
}

/* Ring all-gather of W chunks of buf(n) in place; rank r starts holding
 * chunk (r + shift) mod W. */
static int ring_allgather_chunks(Comm *c, float *buf, size_t n, int shift, Err *err) {
    int W = c->world, r = c->rank;
    for (int s = 0; s < W - 1; s++) {
        int sc = ((r - s + shift) % W + W) % W, rc = ((r - s - 1 + shift) % W + W) % W;
        size_t s0 = chunk_lo(n, W, sc), s1 = chunk_lo(n, W, sc + 1);
        size_t r0 = chunk_lo(n, W, rc), r1 = chunk_lo(n, W, rc + 1);
        if (ring_xfer(c, buf + s0, (s1 - s0) * sizeof(float), buf + r0, (r1 - r0) * sizeof(float), err) != 0) return -1;
    }
    return 0;
}

static int tcp_allreduce(Comm *c, float *buf, size_t n, Err *err) {
    if (c->world == 1) return 0;
    if (ring_header(c, OP_ALLREDUCE, n * sizeof(float), err) != 0) return -1;
    if (ring_reduce_scatter(c, buf, n, 0, err) != 0) return -1;
    return ring_allgather_chunks(c, buf, n, 1, err); /* rank r owns chunk r + 1 */
}

static int tcp_reduce_scatter(Comm *c, float *buf, size_t n, float *out, Err *err) {
    if (c->world > 1) {
        if (ring_header(c, OP_REDUCE_SCATTER, n * sizeof(float), err) != 0) return -1;
        /* W chunks of exactly n; shift -1 leaves rank r with chunk r */
        if (ring_reduce_scatter(c, buf, n * (size_t)c->world, -1, err) != 0) return -1;
    }
    memmove(out, buf + n * (size_t)c->rank, n * sizeof(float));
    return 0;
}

static int tcp_allgather(Comm *c, const void *send, size_t bytes, void *recv, Err *err) {
    int W = c->world, r = c->rank;
    char *rb = recv;
    memmove(rb + (size_t)r * bytes, send, bytes);
    if (W == 1) return 0;
    if (ring_header(c, OP_ALLGATHER, bytes, err) != 0) return -1;
    for (int s = 0; s < W - 1; s++) {
        int sc = ((r - s) % W + W) % W, rc = ((r - s - 1) % W + W) % W;
        if (ring_xfer(c, rb + (size_t)sc * bytes, bytes, rb + (size_t)rc * bytes, bytes, err) != 0) return -1;
    }
    return 0;
}

static int tcp_broadcast(Comm *c, void *buf, size_t bytes, int root, Err *err) {
    if (c->world == 1) return 0;
    if (root < 0 || root >= c->world) return err_set(err, "broadcast: root %d outside [0, %d)", root, c->world);
    if (ring_header(c, OP_BROADCAST, bytes, err) != 0) return -1;
    /* along the ring from root, in pieces so ranks downstream start early */
    Tcp *t = c->impl;
    int last = (root + c->world - 1) % c->world; /* does not forward */
    const size_t P = SEG_FLOATS * sizeof(float);
    for (size_t o = 0; o < bytes; o += P) {
        size_t k = bytes - o < P ? bytes - o : P;
        char *p = (char *)buf + o;
        if (c->rank != root && xfer(c, -1, NULL, 0, -1, t->prev_fd, p, k, prev_rank(c), err) != 0) return -1;
        if (c->rank != last && xfer(c, t->next_fd, p, k, next_rank(c), -1, NULL, 0, -1, err) != 0) return -1;
    }
    return 0;
}

static int tcp_barrier(Comm *c, Err *err) {
    if (c->world == 1) return 0;
    if (ring_header(c, OP_BARRIER, 0, err) != 0) return -1;
    /* a header goes once round the ring in each direction's time: one
     * more lap makes sure every rank has entered */
    char one = 1, *all = malloc((size_t)c->world);
    int rc = tcp_allgather(c, &one, 1, all, err);
    free(all);
    return rc;
}

static void tcp_close_fds(Tcp *t) {
    if (t->next_fd >= 0) shutdown(t->next_fd, SHUT_RDWR), close(t->next_fd);
    if (t->prev_fd >= 0 && t->prev_fd != t->next_fd) shutdown(t->prev_fd, SHUT_RDWR), close(t->prev_fd);
    t->next_fd = t->prev_fd = -1;
}

static void tcp_abort(Comm *c) { tcp_close_fds(c->impl); }

static void tcp_free(Comm *c) {
    Tcp *t = c->impl;
    tcp_close_fds(t);
    free(t->tmp);
    free(t);
    free(c);
}

static const CommOps TCP_OPS = {
    .name = "tcp",
    .device_memory = 0,
    .allreduce_sum_f32 = tcp_allreduce,
    .broadcast = tcp_broadcast,
    .allgather = tcp_allgather,
    .reduce_scatter_sum_f32 = tcp_reduce_scatter,
    .barrier = tcp_barrier,
    .abort = tcp_abort,
    .free = tcp_free,
};

/* ---- bootstrap ---- */

static int listen_on(int port, int *bound_port, Err *err) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0), v6 = 1;
    if (fd < 0) fd = socket(AF_INET, SOCK_STREAM, 0), v6 = 0; /* no IPv6 in this kernel */
    if (fd < 0) return err_set(err, "socket: %s", strerror(errno));
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero); /* IPv4 peers too */
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any, .sin6_port = htons((uint16_t)port)};
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY), .sin_port = htons((uint16_t)port)};
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rc != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, "cannot listen on port %d: %s%s", port, strerror(e),
                       e == EADDRINUSE ? " (another job uses MASTER_PORT? pick another)" : "");
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Accepts one connection within the deadline (clock_seconds()). */
static int accept_until(int lfd, double deadline, Err *err, const char *waiting_for) {
    for (;;) {
        double left = deadline - clock_seconds();
        if (left <= 0) return err_set(err, "timed out waiting for %s (R1C_DIST_TIMEOUT)", waiting_for);
        struct pollfd pf = {.fd = lfd, .events = POLLIN};
        int pr = poll(&pf, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
        if (pr < 0 && errno != EINTR) return err_set(err, "poll: %s", strerror(errno));
        if (pr <= 0) continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) return fd;
        if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
            return err_set(err, "accept: %s", strerror(errno));
    }
}

/* Connects to host:port, retrying (the peer may not listen yet) until the deadline. */
static int connect_until(const char *host, int port, double deadline, Err *err) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *why = "no attempt";
    char whybuf[256];
    for (;;) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
        int g = getaddrinfo(host, ps, &hints, &res);
        if (g != 0) {
            snprintf(whybuf, sizeof whybuf, "%s", gai_strerror(g));
            why = whybuf;
        } else {
            for (struct addrinfo *a = res; a; a = a->ai_next) {
                int fd = socket(a->ai_family, SOCK_STREAM, 0);
                if (fd < 0) continue;
                if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
                    freeaddrinfo(res);
                    return fd;
                }
                snprintf(whybuf, sizeof whybuf, "%s", strerror(errno));
                why = whybuf;
                close(fd);
            }
            freeaddrinfo(res);
        }
        if (clock_seconds() >= deadline) return err_set(err, "cannot connect to %s:%d: %s", host, port, why);
        usleep(100 * 1000);
    }
}

/* Blocking exact read/write of a small bootstrap message, with the deadline. */
static int boot_io(Comm *c, int fd, void *buf, size_t n, int sending, int peer, double deadline, Err *err) {
    int saved = c->timeout_ms;
    double left = (deadline - clock_seconds()) * 1e3;
    c->timeout_ms = left > 1 ? (int)left : 1;
    int rc = sending ? xfer(c, fd, buf, n, peer, -1, NULL, 0, -1, err) : xfer(c, -1, NULL, 0, -1, fd, buf, n, peer, err);
    c->timeout_ms = saved;
    return rc;
}

/* Reads one hello from fd before the deadline: 0 valid, 1 not an r1c
 * rank (or silent, or gone), -1 an r1c rank that does not fit this job. */
static int read_hello(Comm *c, int fd, int peer, double deadline, WireHello *h, Err *err) {
    uint8_t b[WIRE_HELLO_BYTES];
    Err io;
    if (boot_io(c, fd, b, sizeof b, 0, peer, deadline, &io) != 0) return 1;
    return wire_hello_decode(b, sizeof b, (uint32_t)c->world, h, err);
}

static int send_hello(Comm *c, int fd, int peer, int port, double deadline, Err *err) {
    uint8_t b[WIRE_HELLO_BYTES];
    WireHello h = {(uint32_t)c->rank, (uint32_t)c->world, (uint32_t)port};
    wire_hello_encode(b, &h);
    return boot_io(c, fd, b, sizeof b, 1, peer, deadline, err);
}

static int bootstrap(Comm *c, const DistEnv *env, Err *err) {
    Tcp *t = c->impl;
    int W = c->world, r = c->rank;
    double deadline = clock_seconds() + c->timeout_ms / 1e3;
    int lport = 0, rc = -1;
    int lfd = listen_on(r == 0 ? env->master_port : 0, &lport, err);
    if (lfd < 0) return err_prefix(err, "rank %d", r);
    WireEntry *tab = calloc((size_t)W, sizeof *tab); /* [1, W): rank 0 is reached at MASTER_ADDR */
    size_t tab_bytes = (size_t)(W - 1) * WIRE_ENTRY_BYTES;
    uint8_t *wire = malloc(tab_bytes + 1);
    int *boot = malloc((size_t)W * sizeof(int));
    for (int i = 0; i < W; i++) boot[i] = -1;
    if (r == 0) {
        for (int got = 0; got < W - 1;) {
            char what[64];
            snprintf(what, sizeof what, "%d more rank(s) to connect", W - 1 - got);
            int fd = accept_until(lfd, deadline, err, what);
            if (fd < 0) goto out;
            /* a connection that is not an r1c rank (a port scan, a stray
             * client) is dropped, not fatal; a rank of another shape is */
            double hd = clock_seconds() + 5 < deadline ? clock_seconds() + 5 : deadline;
            WireHello h;
            int k = read_hello(c, fd, -1, hd, &h, err);
            if (k == 1) {
                close(fd);
                continue;
            }
            if (k < 0 || (h.rank == 0 && err_set(err, "another process claims rank 0") < 0) ||
                (boot[h.rank] >= 0 && err_set(err, "two processes claim rank %u", h.rank) < 0)) {
                close(fd);
                err_prefix(err, "rank 0: bootstrap");
                goto out;
            }
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            getpeername(fd, (struct sockaddr *)&ss, &sl);
            WireEntry *e = &tab[h.rank];
            if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
                if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], e->addr, sizeof e->addr);
                else inet_ntop(AF_INET6, &a6->sin6_addr, e->addr, sizeof e->addr);
            } else inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, e->addr, sizeof e->addr);
            e->port = h.port;
            boot[h.rank] = fd;
            got++;
        }
        for (int i = 1; i < W; i++) wire_entry_encode(wire + (size_t)(i - 1) * WIRE_ENTRY_BYTES, &tab[i]);
        for (int i = 1; i < W; i++)
            if (boot_io(c, boot[i], wire, tab_bytes, 1, i, deadline, err) != 0) goto out;
    } else {
        boot[0] = connect_until(env->master_addr, env->master_port, deadline, err);
        if (boot[0] < 0) {
            err_prefix(err, "rank %d: bootstrap (is rank 0 running, MASTER_ADDR/MASTER_PORT right?)", r);
            goto out;
        }
        if (send_hello(c, boot[0], 0, lport, deadline, err) != 0 ||
            boot_io(c, boot[0], wire, tab_bytes, 0, 0, deadline, err) != 0) {
            err_prefix(err, "rank %d: bootstrap", r);
            goto out;
        }
        for (int i = 1; i < W; i++) /* outside bytes: the table must be sane before use */
            if (wire_entry_decode(wire + (size_t)(i - 1) * WIRE_ENTRY_BYTES, WIRE_ENTRY_BYTES, &tab[i], err) != 0) {
                err_prefix(err, "rank %d: bootstrap: rank 0's table, rank %d", r, i);
                goto out;
            }
    }
    /* the ring: connect to the next rank's listener, accept the previous one */
    int nx = next_rank(c);
    t->next_fd = nx == 0 ? connect_until(env->master_addr, env->master_port, deadline, err)
                         : connect_until(tab[nx].addr, (int)tab[nx].port, deadline, err);
    if (t->next_fd < 0) {
        err_prefix(err, "rank %d: connecting to rank %d", r, nx);
        goto out;
    }
    if (send_hello(c, t->next_fd, nx, lport, deadline, err) != 0) goto out;
    for (;;) { /* strays (a late or foreign connection) are refused, not trusted */
        int fd = accept_until(lfd, deadline, err, "the previous rank of the ring");
        if (fd < 0) goto out;
        WireHello h;
        Err ignored;
        double hd = clock_seconds() + 5 < deadline ? clock_seconds() + 5 : deadline; /* a silent stray */
        if (read_hello(c, fd, prev_rank(c), hd, &h, &ignored) == 0 && h.rank == (uint32_t)prev_rank(c)) {
            t->prev_fd = fd;
            break;
        }
        close(fd);
    }
    tune(t->next_fd), tune(t->prev_fd);
    if (set_nonblock(t->next_fd) != 0 || set_nonblock(t->prev_fd) != 0) {
        err_set(err, "fcntl: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < W; i++)
        if (boot[i] >= 0) close(boot[i]);
    free(boot);
    free(tab);
    free(wire);
    close(lfd);
    return rc;
}

Comm *comm_tcp_create(const DistEnv *env, Err *err) {
    Comm *c = calloc(1, sizeof *c);
    Tcp *t = calloc(1, sizeof *t);
    if (!c || !t) {
        free(c), free(t);
        err_set(err, "out of memory");
        return NULL;
    }
    *c = (Comm){.rank = env->rank, .world = env->world, .local_rank = env->local_rank, .local_world = env->local_world,
                .timeout_ms = env->timeout_ms > 0 ? env->timeout_ms : 300000, .ops = &TCP_OPS, .impl = t};
    c->host = c;
    t->next_fd = t->prev_fd = -1;
    if (c->world > 1) {
        t->tmp = malloc(SEG_FLOATS * sizeof(float));
        if (!t->tmp || bootstrap(c, env, err) != 0) {
            tcp_free(c);
            return NULL;
        }
    }
    return c;
}

void comm_free(Comm *c) {
    if (c) c->ops->free(c);
}
