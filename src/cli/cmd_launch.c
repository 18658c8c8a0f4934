/* r1c launch: starts the ranks of a data-parallel job on this machine
 * (docs/distributed.md). Each child gets RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torchrun sets them (plus
 * NCCL_NVLS_ENABLE=0 and, with --gpus, its own CUDA_VISIBLE_DEVICES); its
 * output comes back line by line prefixed with "[rank R]". When a rank
 * fails, the others are stopped (SIGTERM, then SIGKILL after a grace
 * period) and the launcher exits non-zero naming the rank and how it
 * ended, so a job never outlives a dead rank. Ctrl-C is forwarded, so
 * the ranks agree to save and stop. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/commands.h"

#define MAX_PROCS 256

typedef struct Child {
    pid_t pid;
    int out_fd, err_fd; /* read ends of its stdout / stderr, -1 when closed */
    char *buf[2];       /* a partial line per stream */
    size_t len[2];
    int done, status;
} Child;

static volatile sig_atomic_t g_signals; /* SIGINT/SIGTERM received, to forward */

static void on_signal(int sig) {
    (void)sig;
    g_signals++;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: r1c launch [--nproc N | --gpus N] [options] -- COMMAND [ARGS...]\n"
            "  Starts N ranks of COMMAND (an r1c command such as `grpo ...`, `r1c grpo ...`, or any program)\n"
            "  with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT set.\n\n"
            "  --nproc N          processes on this node (CPU ranks, or GPU ranks with your own device choice)\n"
            "  --gpus N           N processes, one GPU each (CUDA_VISIBLE_DEVICES per rank)\n"
            "  --nnodes K         nodes in the job (default 1); run one launcher per node\n"
            "  --node-rank I      this node's index (0 = the node of MASTER_ADDR)\n"
            "  --master-addr A    rank 0's address (default $MASTER_ADDR or 127.0.0.1)\n"
            "  --master-port P    rank 0's port (default $MASTER_PORT; one node: a free port; several: 29500)\n"
            "  --backend B        communicator: tcp | nccl | auto (R1C_DIST_BACKEND; default auto)\n"
            "  --timeout S        seconds a rank waits for a peer before failing (R1C_DIST_TIMEOUT; default 300)\n"
            "  --grace S          seconds between SIGTERM and SIGKILL when stopping ranks (default 10)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t l = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int is_r1c_command(const char *s) {
    static const char *const CMDS[] = {"grpo", "sft", "eval", "generate", "forward", "sample", "pipeline", "demo", NULL};
    for (int i = 0; CMDS[i]; i++)
        if (!strcmp(s, CMDS[i])) return 1;
    return 0;
}

/* The i-th entry of a comma-separated list, or NULL. */
static int list_entry(const char *list, int i, char *out, size_t cap) {
    const char *p = list;
    for (int k = 0; k < i && p; k++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
    if (!p) return -1;
    size_t n = strcspn(p, ",");
    if (n == 0 || n >= cap) return -1;
    memcpy(out, p, n), out[n] = 0;
    return 0;
}

static void child_exec(char **cmd, int out_w, int err_w, int in_null) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the launcher died: do not run on unsupervised */
    setpgid(0, 0);                    /* Ctrl-C reaches the launcher only; it forwards once */
    dup2(in_null, 0), dup2(out_w, 1), dup2(err_w, 2);
    execvp(cmd[0], cmd);
    fprintf(stderr, "r1c launch: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(127);
}

/* Prints the complete lines of a stream with the rank prefix. */
static void drain(Child *c, int rank, int which, FILE *to, int eof) {
    char *b = c->buf[which];
    size_t start = 0;
    for (size_t i = 0; i < c->len[which]; i++)
        if (b[i] == '\n') {
            fprintf(to, "[rank %d] %.*s\n", rank, (int)(i - start), b + start);
            start = i + 1;
        }
    if (eof && start < c->len[which]) {
        fprintf(to, "[rank %d] %.*s\n", rank, (int)(c->len[which] - start), b + start);
        start = c->len[which];
    }
    memmove(b, b + start, c->len[which] - start);
    c->len[which] -= start;
    fflush(to);
}

/* A rank and whatever it started (its process group). */
static void signal_rank(const Child *c, int sig) {
    if (kill(-c->pid, sig) != 0) kill(c->pid, sig);
}

static void describe(int status, char *out, size_t cap) {
    if (WIFEXITED(status)) snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(out, cap, "ended with wait status %d", status);
}

int cmd_launch(int argc, char **argv) {
    int nproc = 0, gpus = 0, nnodes = 1, node_rank = 0, port = 0, timeout = 0, grace = 10;
    const char *addr = getenv("MASTER_ADDR"), *backend = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        int *dst = NULL, lo = 1, hi = MAX_PROCS;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "r1c launch: %s needs a value (r1c launch --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--nproc") || !strcmp(a, "--nproc-per-node")) dst = &nproc;
        else if (!strcmp(a, "--gpus")) dst = &gpus;
        else if (!strcmp(a, "--nnodes")) dst = &nnodes, hi = 65536;
        else if (!strcmp(a, "--node-rank")) dst = &node_rank, lo = 0, hi = 65535;
        else if (!strcmp(a, "--master-port")) dst = &port, hi = 65535;
        else if (!strcmp(a, "--timeout")) dst = &timeout, hi = 7 * 24 * 3600;
        else if (!strcmp(a, "--grace")) dst = &grace, lo = 0, hi = 3600;
        else if (!strcmp(a, "--master-addr")) {
            addr = argv[++i];
            continue;
        } else if (!strcmp(a, "--backend")) {
            backend = argv[++i];
            if (strcmp(backend, "tcp") && strcmp(backend, "nccl") && strcmp(backend, "auto")) {
                fprintf(stderr, "r1c launch: --backend %s: expected tcp, nccl or auto\n", backend);
                return 2;
            }
            continue;
        } else {
            fprintf(stderr, "r1c launch: unknown option '%s' (the command goes after --)\n", a);
            return 2;
        }
        if (parse_int(argv[++i], lo, hi, dst) != 0) {
            fprintf(stderr, "r1c launch: %s %s: expected an integer in [%d, %d]\n", a, argv[i], lo, hi);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "r1c launch: no command (r1c launch --nproc 2 -- grpo --recipe FILE.yaml)\n");
        return 2;
    }
    if (gpus && nproc && gpus != nproc) {
        fprintf(stderr, "r1c launch: --gpus %d and --nproc %d disagree\n", gpus, nproc);
        return 2;
    }
    if (gpus) nproc = gpus;
    if (nproc < 1) {
        fprintf(stderr, "r1c launch: --nproc N (or --gpus N) is required\n");
        return 2;
    }
    if (node_rank >= nnodes) {
        fprintf(stderr, "r1c launch: --node-rank %d is not below --nnodes %d\n", node_rank, nnodes);
        return 2;
    }
    if (!addr || !*addr) addr = "127.0.0.1";
    if (!port && getenv("MASTER_PORT")) {
        if (parse_int(getenv("MASTER_PORT"), 1, 65535, &port) != 0) {
            fprintf(stderr, "r1c launch: MASTER_PORT='%s' is not a port\n", getenv("MASTER_PORT"));
            return 2;
        }
    }
    if (!port) port = nnodes == 1 ? free_port() : 29500;
    if (port <= 0) {
        fprintf(stderr, "r1c launch: no free port found; pass --master-port\n");
        return 1;
    }

    /* the command: an r1c subcommand runs this very binary */
    int nc = argc - i;
    char **cmd = calloc((size_t)nc + 2, sizeof *cmd);
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) snprintf(self, sizeof self, "%s", "r1c");
    else self[sl] = 0;
    int k = 0;
    if (is_r1c_command(argv[i])) cmd[k++] = self;
    else if (!strcmp(argv[i], "r1c")) cmd[k++] = self, i++, nc--;
    for (int j = 0; j < nc; j++) cmd[k++] = argv[i + j];

    char v[64];
    int world = nnodes * nproc;
    snprintf(v, sizeof v, "%d", world), setenv("WORLD_SIZE", v, 1);
    snprintf(v, sizeof v, "%d", nproc), setenv("LOCAL_WORLD_SIZE", v, 1);
    snprintf(v, sizeof v, "%d", port), setenv("MASTER_PORT", v, 1);
    setenv("MASTER_ADDR", addr, 1);
    setenv("NCCL_NVLS_ENABLE", "0", 1); /* NVLink multicast stays off in everything r1c starts */
    if (backend) setenv("R1C_DIST_BACKEND", backend, 1); /* else auto: nccl on GPUs when built with it */
    if (timeout) snprintf(v, sizeof v, "%d", timeout), setenv("R1C_DIST_TIMEOUT", v, 1);
    if (!getenv("OMP_NUM_THREADS")) { /* share the cores instead of oversubscribing them */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(v, sizeof v, "%ld", ncpu / nproc > 1 ? ncpu / nproc : 1);
        setenv("OMP_NUM_THREADS", v, 1);
    }
    char *vis = getenv("CUDA_VISIBLE_DEVICES") ? strdup(getenv("CUDA_VISIBLE_DEVICES")) : NULL;

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    Child ch[MAX_PROCS];
    memset(ch, 0, sizeof ch);
    FILE *devnull = fopen("/dev/null", "r");
    int in_null = devnull ? fileno(devnull) : 0;
    fprintf(stderr, "r1c launch: %d rank%s on this node (node %d of %d, world %d), master %s:%d, pids", nproc,
            nproc > 1 ? "s" : "", node_rank, nnodes, world, addr, port);
    int started = 0, rc = 0;
    for (int r = 0; r < nproc; r++) {
        int po[2], pe[2];
        if (pipe(po) != 0 || pipe(pe) != 0) {
            fprintf(stderr, "\nr1c launch: pipe: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        snprintf(v, sizeof v, "%d", node_rank * nproc + r), setenv("RANK", v, 1);
        snprintf(v, sizeof v, "%d", r), setenv("LOCAL_RANK", v, 1);
        if (gpus) {
            char dev[64];
            if (vis && *vis) {
                if (list_entry(vis, r, dev, sizeof dev) != 0) {
                    fprintf(stderr, "\nr1c launch: --gpus %d but CUDA_VISIBLE_DEVICES=%s lists fewer\n", gpus, vis);
                    rc = 2;
                    close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
                    break;
                }
            } else snprintf(dev, sizeof dev, "%d", r);
            setenv("CUDA_VISIBLE_DEVICES", dev, 1);
        }
        fflush(stdout), fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            close(po[0]), close(pe[0]);
            child_exec(cmd, po[1], pe[1], in_null);
        }
        close(po[1]), close(pe[1]);
        if (pid > 0) setpgid(pid, pid); /* also here: signals may go to the group before the child ran */
        if (pid < 0) {
            fprintf(stderr, "\nr1c launch: fork: %s\n", strerror(errno));
            close(po[0]), close(pe[0]);
            rc = 1;
            break;
        }
        ch[r] = (Child){.pid = pid, .out_fd = po[0], .err_fd = pe[0]};
        ch[r].buf[0] = malloc(1 << 16), ch[r].buf[1] = malloc(1 << 16);
        started++;
        fprintf(stderr, " %d", (int)pid);
    }
    fprintf(stderr, "\n");

    int failed = -1, alive = started, forwarded = 0, interrupted = 0;
    double kill_at = 0; /* when stopping: time for SIGKILL */
    if (rc && started) { /* could not start them all: stop what runs */
        for (int r = 0; r < started; r++) signal_rank(&ch[r], SIGTERM);
        kill_at = clock_seconds() + grace;
    }
    while (alive > 0) {
        struct pollfd pf[2 * MAX_PROCS];
        int map[2 * MAX_PROCS], n = 0;
        for (int r = 0; r < started; r++)
            for (int w = 0; w < 2; w++) {
                int fd = w ? ch[r].err_fd : ch[r].out_fd;
                if (fd >= 0) map[n] = 2 * r + w, pf[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
            }
        int pr = poll(pf, n, 100);
        for (int j = 0; pr > 0 && j < n; j++) {
            if (!pf[j].revents) continue;
            int r = map[j] / 2, w = map[j] % 2;
            Child *c = &ch[r];
            int *fd = w ? &c->err_fd : &c->out_fd;
            if (c->len[w] == (1 << 16)) drain(c, node_rank * nproc + r, w, w ? stderr : stdout, 1); /* a huge line */
            ssize_t got = read(*fd, c->buf[w] + c->len[w], (1 << 16) - c->len[w]);
            if (got > 0) {
                c->len[w] += (size_t)got;
                drain(c, node_rank * nproc + r, w, w ? stderr : stdout, 0);
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                drain(c, node_rank * nproc + r, w, w ? stderr : stdout, 1);
                close(*fd);
                *fd = -1;
            }
        }
        while (forwarded < g_signals) { /* Ctrl-C / SIGTERM: the ranks save and stop together */
            forwarded++;
            interrupted = 1;
            for (int r = 0; r < started; r++)
                if (!ch[r].done) signal_rank(&ch[r], SIGINT);
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
            for (int r = 0; r < started; r++) {
                if (ch[r].pid != p || ch[r].done) continue;
                ch[r].done = 1, ch[r].status = st, alive--;
                int ok = WIFEXITED(st) && (WEXITSTATUS(st) == 0 || (interrupted && WEXITSTATUS(st) == 130));
                if (!ok && failed < 0 && !kill_at) {
                    failed = r;
                    char how[128];
                    describe(st, how, sizeof how);
                    fprintf(stderr, "r1c launch: rank %d (pid %d) %s; stopping the other ranks\n", node_rank * nproc + r,
                            (int)p, how);
                    for (int q = 0; q < started; q++)
                        if (!ch[q].done) signal_rank(&ch[q], SIGTERM);
                    kill_at = clock_seconds() + grace;
                }
            }
        }
        if (kill_at && clock_seconds() >= kill_at) {
            for (int r = 0; r < started; r++)
                if (!ch[r].done) signal_rank(&ch[r], SIGKILL);
            kill_at = clock_seconds() + 3600; /* once */
        }
    }
    for (int r = 0; r < started; r++) {
        for (int w = 0; w < 2; w++) {
            int fd = w ? ch[r].err_fd : ch[r].out_fd;
            if (fd >= 0) { /* what is left after the exit */
                ssize_t got;
                while ((got = read(fd, ch[r].buf[w] + ch[r].len[w], (1 << 16) - ch[r].len[w])) > 0) {
                    ch[r].len[w] += (size_t)got;
                    drain(&ch[r], node_rank * nproc + r, w, w ? stderr : stdout, ch[r].len[w] == (1 << 16));
                }
                drain(&ch[r], node_rank * nproc + r, w, w ? stderr : stdout, 1);
                close(fd);
            }
        }
        free(ch[r].buf[0]), free(ch[r].buf[1]);
    }
    if (devnull) fclose(devnull);
    free(cmd);
    free(vis);
    if (rc) return rc;
    if (failed >= 0) {
        int st = ch[failed].status;
        char how[128];
        describe(st, how, sizeof how);
        fprintf(stderr, "r1c launch: job failed: rank %d %s\n", node_rank * nproc + failed, how);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
    return interrupted ? 130 : 0;
}
