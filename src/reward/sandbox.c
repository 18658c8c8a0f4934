/* The parent side of the sandbox (see sandbox.h): clones a supervisor per
 * task into new namespaces (or a plain process in basic mode), maps its
 * user ids, and runs many at once from one poll loop, killing any that
 * outlive their deadline. Results come back through shared memory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reward/sandbox.h"

#define SB_STACK (256 * 1024)

void sandbox_config_default(SandboxConfig *c) {
    memset(c, 0, sizeof *c);
    c->lim = (SandboxLimits){.cpu_s = 5,
                             .wall_s = 10,
                             .mem_bytes = (size_t)1 << 30,
                             .fsize_bytes = (size_t)16 << 20,
                             .disk_bytes = (size_t)64 << 20,
                             .out_bytes = (size_t)1 << 20,
                             .err_bytes = 16 << 10,
                             .nofile = 64,
                             .nproc = 32};
    c->mode = SANDBOX_MODE_AUTO;
    c->host_uid = 65534; /* nobody */
}

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int sandbox_resolve(const char *prog, char *out, size_t size, Err *err) {
    if (!prog || !*prog) return err_set(err, "empty program name");
    if (prog[0] == '/') {
        if (access(prog, X_OK) != 0) return err_set(err, "%s: not an executable file", prog);
        if (strlen(prog) >= size) return err_set(err, "%s: path too long", prog);
        strcpy(out, prog);
        return 0;
    }
    if (strchr(prog, '/')) return err_set(err, "'%s': give a bare name or an absolute path", prog);
    static const char *const dirs[] = {"/usr/local/bin", "/usr/bin", "/bin"};
    for (int i = 0; i < 3; i++) {
        snprintf(out, size, "%s/%s", dirs[i], prog);
        if (access(out, X_OK) == 0) return 0;
    }
    return err_set(err, "'%s' is not in the sandbox's PATH (/usr/local/bin:/usr/bin:/bin)", prog);
}

/* Whether namespaces failed once (then AUTO stays basic for the process). */
static int ns_broken;
static pthread_mutex_t ns_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct Active {
    int idx;
    pid_t pid;
    int done_fd;
    char *map;
    size_t map_len;
    double deadline;
    SbCtx ctx;
    char host_dir[64];
} Active;

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = (ssize_t)strlen(text);
    int ok = write(fd, text, (size_t)n) == n;
    close(fd);
    return ok ? 0 : -1;
}

static int map_ids(pid_t pid, int is_root, unsigned host_uid) {
    char path[64], line[64];
    unsigned uid = is_root ? host_uid : (unsigned)getuid(), gid = is_root ? host_uid : (unsigned)getgid();
    if (!is_root) {
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        if (write_file(path, "deny") < 0) return -1;
    }
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    snprintf(line, sizeof line, "0 %u 1\n", uid);
    if (write_file(path, line) < 0) return -1;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    snprintf(line, sizeof line, "0 %u 1\n", gid);
    return write_file(path, line);
}

/* Removes a basic-mode work directory without following links; a task may
 * have made directories unreadable, so each is opened for writing first. */
static void remove_tree(int dirfd, int depth) {
    if (depth > 64) return;
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0) continue;
        fchmodat(dirfd, e->d_name, 0700, 0);
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) remove_tree(sub, depth + 1);
        unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

static void remove_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) remove_tree(fd, 0);
    rmdir(path);
}

static void fail_all(SandboxResult *r, int n_steps, const char *msg) {
    r->n_steps = n_steps;
    r->step = calloc(n_steps > 0 ? (size_t)n_steps : 1, sizeof *r->step);
    snprintf(r->error, sizeof r->error, "%s", msg);
    for (int i = 0; r->step && i < n_steps; i++) r->step[i].status = SANDBOX_STATUS_ERROR;
}

static int start(const SandboxConfig *c, const SandboxTask *t, Active *a, Err *err) {
    int is_root = geteuid() == 0;
    pthread_mutex_lock(&ns_lock);
    int use_ns = c->mode == SANDBOX_MODE_NAMESPACES || (c->mode == SANDBOX_MODE_AUTO && !ns_broken);
    pthread_mutex_unlock(&ns_lock);
    if (t->n_steps < 1 || t->n_steps > 4096) return err_set(err, "sandbox: a task needs 1..4096 steps");
    size_t out_cap = c->lim.out_bytes, err_cap = c->lim.err_bytes;
    for (int i = 0; i < t->n_steps; i++) {
        const SandboxLimits *l = t->steps[i].lim;
        if (l && l->out_bytes > out_cap) out_cap = l->out_bytes;
        if (l && l->err_bytes > err_cap) err_cap = l->err_bytes;
        const char *a0 = t->steps[i].argv[0];
        if (!a0 || (a0[0] != '/' && strncmp(a0, "./", 2) != 0))
            return err_set(err, "sandbox: step %d: argv[0] must be an absolute path or ./NAME in the work directory", i);
    }
    size_t ns = (size_t)t->n_steps;
    size_t off_step = align64(sizeof(SbShared)), off_out = align64(off_step + ns * sizeof(SbStepOut));
    size_t off_err = align64(off_out + ns * (out_cap + 1)), off_rep = align64(off_err + ns * err_cap);
    a->map_len = align64(off_rep + ns * (SANDBOX_REPORT_BYTES + 1));
    a->map = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a->map == MAP_FAILED) {
        a->map = NULL;
        return err_set(err, "sandbox: cannot map %zu bytes for results", a->map_len);
    }
    const void *filter = sandbox_filter(use_ns, err);
    if (!filter) return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        memset(a->map, 0, off_out);
        a->ctx = (SbCtx){.cfg = c, .task = t, .use_ns = use_ns, .is_root = is_root, .sh = (SbShared *)a->map,
                         .step = (SbStepOut *)(a->map + off_step), .out = a->map + off_out, .err = a->map + off_err,
                         .rep = a->map + off_rep, .out_cap = out_cap, .err_cap = err_cap,
                         .rep_cap = SANDBOX_REPORT_BYTES, .filter = sandbox_filter(use_ns, err)};
        a->host_dir[0] = 0;
        if (!use_ns) {
            const char *tmp = getenv("TMPDIR");
            snprintf(a->host_dir, sizeof a->host_dir, "%s/r1c-sb-XXXXXX",
                     tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
            if (!mkdtemp(a->host_dir)) return err_set(err, "sandbox: cannot create a work directory: %s", strerror(errno));
            if (is_root && c->host_uid != 0 && chown(a->host_dir, c->host_uid, c->host_uid) < 0) {
                remove_dir(a->host_dir);
                return err_set(err, "sandbox: chown work directory: %s", strerror(errno));
            }
            a->ctx.host_dir = a->host_dir;
        }
        /* sync is a socket pair: writing to a supervisor that died early
         * must fail (MSG_NOSIGNAL), not SIGPIPE r1c */
        int sync[2], done[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) < 0) return err_set(err, "sandbox: socketpair: %s", strerror(errno));
        if (pipe2(done, O_CLOEXEC) < 0) {
            close(sync[0]), close(sync[1]);
            return err_set(err, "sandbox: pipe: %s", strerror(errno));
        }
        a->ctx.sync_fd = sync[0];
        a->ctx.done_fd = done[1];
        char *stack = mmap(NULL, SB_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        int flags = SIGCHLD;
        if (use_ns) flags |= CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
        pid_t pid = stack == MAP_FAILED ? -1 : clone(sandbox_supervise, stack + SB_STACK, flags, &a->ctx);
        int e = errno;
        if (stack != MAP_FAILED) munmap(stack, SB_STACK);
        close(sync[0]), close(done[1]);
        int mapped = pid > 0 && (!use_ns || map_ids(pid, is_root, c->host_uid) == 0);
        if (pid > 0 && !mapped) {
            e = errno;
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        if (mapped) {
            if (send(sync[1], "g", 1, MSG_NOSIGNAL) != 1) {
                /* the supervisor is gone already: its result says so */
            }
            close(sync[1]);
            a->pid = pid;
            a->done_fd = done[0];
            double total = 2.0;
            for (int i = 0; i < t->n_steps; i++) {
                const SandboxLimits *l = t->steps[i].lim ? t->steps[i].lim : &c->lim;
                total += l->wall_s + 0.5;
            }
            a->deadline = mono() + total;
            return 0;
        }
        close(sync[1]), close(done[0]);
        if (a->host_dir[0]) remove_dir(a->host_dir);
        if (use_ns && c->mode == SANDBOX_MODE_AUTO) {
            /* user namespaces disabled (sysctl, container): run with less */
            pthread_mutex_lock(&ns_lock);
            ns_broken = 1;
            pthread_mutex_unlock(&ns_lock);
            use_ns = 0;
            continue;
        }
        return err_set(err, "sandbox: cannot start %s: %s", use_ns ? "in new namespaces" : "a process", strerror(e));
    }
    return err_set(err, "sandbox: cannot start");
}

static char *dup_bytes(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static void finish(Active *a, const SandboxTask *t, SandboxResult *r, int killed) {
    if (killed) {
        SbShared *sh = a->ctx.sh;
        if (!a->ctx.use_ns && sh->pgid > 1) kill(-sh->pgid, SIGKILL);
        kill(a->pid, SIGKILL);
    }
    int st = 0;
    while (waitpid(a->pid, &st, 0) < 0 && errno == EINTR) {
    }
    /* basic mode: a step's group may survive a killed supervisor */
    if (!a->ctx.use_ns && a->ctx.sh->pgid > 1) kill(-a->ctx.sh->pgid, SIGKILL);
    close(a->done_fd);
    SbShared *sh = a->ctx.sh;
    memset(r, 0, sizeof *r);
    r->prot = sh->prot;
    int n = t->n_steps;
    r->n_steps = n;
    r->step = calloc((size_t)n, sizeof *r->step);
    if (sh->setup_failed) snprintf(r->error, sizeof r->error, "sandbox setup failed: %.200s", sh->setup_msg);
    else if (!killed && sh->steps_done < n)
        snprintf(r->error, sizeof r->error, "sandbox supervisor ended early (%s)",
                 WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit");
    for (int i = 0; r->step && i < n; i++) {
        SandboxStepResult *s = &r->step[i];
        const SbStepOut *o = &a->ctx.step[i];
        if (i < sh->steps_done) {
            s->status = o->status, s->code = o->code, s->sig = o->sig, s->mismatch = o->mismatch;
            s->wall_s = o->wall_s, s->cpu_s = o->cpu_s;
        } else s->status = killed && i == sh->steps_done ? SANDBOX_STATUS_TIMEOUT : r->error[0] ? SANDBOX_STATUS_ERROR : SANDBOX_STATUS_SKIPPED;
        size_t ol = o->out_len <= a->ctx.out_cap ? o->out_len : 0;
        s->out = dup_bytes(a->ctx.out + (size_t)i * (a->ctx.out_cap + 1), ol);
        s->out_len = ol;
        size_t rl = o->rep_len <= a->ctx.rep_cap ? o->rep_len : 0;
        s->report = dup_bytes(a->ctx.rep + (size_t)i * (a->ctx.rep_cap + 1), rl);
        s->report_len = rl;
        /* stderr is a ring once it overflowed: oldest byte at err_total % cap */
        size_t cap = a->ctx.err_cap, el = o->err_len <= cap ? o->err_len : 0;
        const char *ring = a->ctx.err + (size_t)i * cap;
        s->err = malloc(el + 1);
        if (s->err) {
            size_t startb = o->err_total > cap ? (size_t)(o->err_total % cap) : 0;
            for (size_t k = 0; k < el; k++) s->err[k] = ring[(startb + k) % cap];
            s->err[el] = 0;
        }
        s->err_len = s->err ? el : 0;
    }
    munmap(a->map, a->map_len);
    a->map = NULL;
    if (a->host_dir[0]) remove_dir(a->host_dir);
}

int sandbox_run_many(const SandboxConfig *c, const SandboxTask *tasks, int n, SandboxResult *res, int parallel, Err *err) {
    if (parallel < 1) parallel = 1;
    if (parallel > 256) parallel = 256;
    Active *act = calloc((size_t)parallel, sizeof *act);
    struct pollfd *p = calloc((size_t)parallel, sizeof *p);
    if (!act || !p) {
        free(act), free(p);
        return err_set(err, "out of memory");
    }
    int next = 0, running = 0, started_any = 0, rc = 0;
    Err first = {{0}};
    while (next < n || running > 0) {
        while (next < n && running < parallel) {
            Err e = {{0}};
            Active *a = &act[running];
            memset(a, 0, sizeof *a);
            a->idx = next;
            if (start(c, &tasks[next], a, &e) == 0) {
                running++;
                started_any = 1;
            } else {
                if (a->map) munmap(a->map, a->map_len);
                fail_all(&res[next], tasks[next].n_steps, e.msg);
                if (!first.msg[0]) first = e;
            }
            next++;
        }
        if (running == 0) continue;
        double now = mono(), soonest = act[0].deadline;
        for (int i = 0; i < running; i++) {
            p[i] = (struct pollfd){act[i].done_fd, POLLIN, 0};
            if (act[i].deadline < soonest) soonest = act[i].deadline;
        }
        int ms = soonest > now ? (int)((soonest - now) * 1000) + 1 : 0;
        int r = poll(p, (nfds_t)running, ms);
        if (r < 0 && errno != EINTR) {
            rc = err_set(err, "sandbox: poll: %s", strerror(errno));
            break;
        }
        now = mono();
        for (int i = running - 1; i >= 0; i--) {
            int done = r > 0 && p[i].revents != 0, late = now >= act[i].deadline;
            if (!done && !late) continue;
            finish(&act[i], &tasks[act[i].idx], &res[act[i].idx], !done);
            act[i] = act[--running];
            p[i] = p[running];
        }
    }
    for (int i = 0; i < running; i++) finish(&act[i], &tasks[act[i].idx], &res[act[i].idx], 1);
    free(act), free(p);
    if (!rc && !started_any && n > 0) rc = err_set(err, "%s", first.msg);
    return rc;
}

int sandbox_run(const SandboxConfig *c, const SandboxTask *task, SandboxResult *res, Err *err) {
    return sandbox_run_many(c, task, 1, res, 1, err);
}

void sandbox_result_free(SandboxResult *r) {
    for (int i = 0; r->step && i < r->n_steps; i++) {
        free(r->step[i].out);
        free(r->step[i].err);
        free(r->step[i].report);
    }
    free(r->step);
    memset(r, 0, sizeof *r);
}

void sandbox_describe(unsigned prot, char *buf, size_t size) {
    static const struct {
        unsigned bit;
        const char *on, *off;
    } items[] = {
        {SANDBOX_PROT_USERNS, "user namespace", "no user namespace"},
        {SANDBOX_PROT_PIDNS, "PID namespace", "no PID namespace"},
        {SANDBOX_PROT_NETNS, "no network (network namespace)", "network namespace unavailable"},
        {SANDBOX_PROT_MOUNTNS, "mount namespace", "no mount namespace"},
        {SANDBOX_PROT_READONLY, "read-only filesystem", "no read-only mounts"},
        {SANDBOX_PROT_TMPFS, "private size-limited tmpfs /tmp", "host temporary directory"},
        {SANDBOX_PROT_PROC, "private /proc", "host /proc"},
        {SANDBOX_PROT_SECCOMP, "seccomp (no sockets but AF_UNIX)", "NO seccomp"},
        {SANDBOX_PROT_UNPRIV, "unprivileged uid", "runs as root"},
        {SANDBOX_PROT_NOCAPS, "no capabilities", "capabilities kept"},
        {SANDBOX_PROT_LANDLOCK, "landlock (writes only in the work directory)", "no landlock"},
    };
    size_t k = (size_t)snprintf(buf, size, "rlimits (cpu, memory, file size, files, processes), clean environment, own process group");
    for (size_t i = 0; i < sizeof items / sizeof *items && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, ", %s", (prot & items[i].bit) ? items[i].on : items[i].off);
}

const char *sandbox_protections(const SandboxConfig *c) {
    static char descs[3][1024];
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    char *desc = descs[c->mode <= SANDBOX_MODE_BASIC ? c->mode : 0];
    pthread_mutex_lock(&lock);
    if (!desc[0]) {
        SandboxStep step = {.argv = {"/bin/true", NULL}};
        SandboxTask t = {.steps = &step, .n_steps = 1};
        SandboxResult r;
        Err err = {{0}};
        if (sandbox_run(c, &t, &r, &err) < 0) snprintf(desc, sizeof descs[0], "sandbox unavailable: %s", err.msg);
        else if (r.error[0]) snprintf(desc, sizeof descs[0], "sandbox unavailable: %s", r.error);
        else sandbox_describe(r.prot, desc, sizeof descs[0]);
        sandbox_result_free(&r);
    }
    pthread_mutex_unlock(&lock);
    return desc;
}
