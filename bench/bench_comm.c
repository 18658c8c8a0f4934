/* The tcp communicator's all-reduce between processes on this machine:
 * bus bandwidth (2 (N - 1) / N x bytes / time, the figure NCCL's tests
 * print) for a gradient-sized buffer, next to the machine's memcpy
 * bandwidth measured in the same run as the baseline (a loopback ring
 * cannot beat copying the bytes).
 * usage: bench_comm [--ranks N] [--mfloats M]   (defaults 2 and 16) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "dist/comm.h"

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static int rank_main(int rank, int world, int port, size_t n, int out_fd) {
    DistEnv e = {.rank = rank, .world = world, .local_rank = rank, .local_world = world, .master_port = port,
                 .timeout_ms = 60000};
    snprintf(e.master_addr, sizeof e.master_addr, "127.0.0.1");
    Err err;
    Comm *c = comm_tcp_create(&e, &err);
    if (!c) {
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        return 1;
    }
    float *b = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) b[i] = (float)(i % 97) * 0.01f;
    const int reps = 5;
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first is a warm-up */
        if (c->ops->barrier(c, &err) != 0) return 1;
        double t0 = clock_seconds();
        if (c->ops->allreduce_sum_f32(c, b, n, &err) != 0) {
            fprintf(stderr, "rank %d: %s\n", rank, err.msg);
            return 1;
        }
        double dt = clock_seconds() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    if (rank == 0 && write(out_fd, &best, sizeof best) != sizeof best) return 1;
    free(b);
    comm_free(c);
    return 0;
}

int main(int argc, char **argv) {
    int world = 2;
    size_t mf = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ranks")) world = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mfloats")) mf = (size_t)atol(argv[i + 1]);
    }
    if (world < 2 || world > 16 || mf < 1) {
        fprintf(stderr, "usage: bench_comm [--ranks 2..16] [--mfloats M]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    size_t n = mf << 20, bytes = n * sizeof(float);
    /* baseline: memcpy of the same buffer */
    char *a = malloc(bytes), *b2 = malloc(bytes);
    memset(a, 1, bytes), memset(b2, 2, bytes);
    double cp = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = clock_seconds();
        memcpy(b2, a, bytes);
        double dt = clock_seconds() - t0;
        cp = dt < cp ? dt : cp;
    }
    free(a), free(b2);
    int port = free_port(), pfd[2];
    if (pipe(pfd) != 0) return 1;
    pid_t pid[16];
    for (int r = 0; r < world; r++) {
        fflush(stdout);
        if ((pid[r] = fork()) == 0) _exit(rank_main(r, world, port, n, pfd[1]));
    }
    int bad = 0;
    for (int r = 0; r < world; r++) {
        int st;
        waitpid(pid[r], &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double t = 0;
    if (bad || read(pfd[0], &t, sizeof t) != sizeof t) {
        fprintf(stderr, "bench_comm: a rank failed\n");
        return 1;
    }
    double bus = 2.0 * (world - 1) / world * bytes / t / 1e9, copy = bytes / cp / 1e9;
    printf("tcp all-reduce, %d ranks on this machine, %zu M floats (%.0f MB), best of 5:\n", world, mf, bytes / 1e6);
    printf("  %-28s %8.3f s\n", "time", t);
    printf("  %-28s %8.2f GB/s\n", "bus bandwidth", bus);
    printf("  %-28s %8.2f GB/s\n", "memcpy (baseline)", copy);
    printf("  %-28s %8.2fx\n", "ratio", bus / copy);
    return 0;
}
