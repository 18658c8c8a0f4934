/* The sandbox supervisor: runs in the cloned process (PID 1 of its own
 * namespaces when they exist), prepares the filesystem view, writes the
 * task's files and runs its steps one by one under limits, capturing
 * output straight into memory shared with the parent. It was cloned from
 * a multi-threaded r1c without atfork handlers, so it uses system calls
 * only: no malloc, no stdio, and raw set*id calls (glibc's wrappers would
 * try to change the credentials of r1c's other threads, which are not
 * here). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reward/sandbox.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

/* Landlock (unprivileged, Linux 5.13+): every way of changing the
 * filesystem is refused except inside the work directory (and writing
 * /dev/null). It matters most in basic mode, where nothing else keeps a
 * task run by a normal user from deleting that user's files; in namespace
 * mode it backs up the read-only mounts. Returns 1 when in force. */
static int restrict_writes(const char *workdir) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) return 0;
    uint64_t file_w = LANDLOCK_ACCESS_FS_WRITE_FILE | (abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0);
    uint64_t all = file_w | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                   LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                   LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM |
                   (abi >= 2 ? LANDLOCK_ACCESS_FS_REFER : 0);
    struct landlock_ruleset_attr attr = {.handled_access_fs = all};
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (rs < 0) return 0;
    int ok = 1;
    const char *paths[2] = {workdir, "/dev/null"};
    uint64_t rights[2] = {all, file_w};
    for (int i = 0; i < 2 && ok; i++) {
        int fd = open(paths[i], O_PATH | O_CLOEXEC);
        struct landlock_path_beneath_attr pb = {.allowed_access = rights[i], .parent_fd = fd};
        ok = fd >= 0 && syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) == 0;
        if (fd >= 0) close(fd);
    }
    ok = ok && syscall(SYS_landlock_restrict_self, rs, 0) == 0;
    close(rs);
    return ok;
}

/* A clean environment: nothing of r1c's (tokens, keys) reaches the task. */
static char *const ENV_NS[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" SANDBOX_WORKDIR, "TMPDIR=" SANDBOX_WORKDIR,
                               "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1",
                               NULL};

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void copy_str(char *dst, size_t size, const char *a, const char *b) {
    size_t k = 0;
    for (; a && *a && k + 1 < size; a++) dst[k++] = *a;
    for (; b && *b && k + 1 < size; b++) dst[k++] = *b;
    dst[k] = 0;
}

static int setup_fail(SbCtx *c, const char *what) {
    /* strerror may allocate (translations): print the number */
    char num[24] = " (errno ";
    int e = errno, k = 8, nd = 0;
    char d[12];
    do d[nd++] = (char)('0' + e % 10), e /= 10;
    while (e && nd < 11);
    while (nd) num[k++] = d[--nd];
    num[k++] = ')', num[k] = 0;
    copy_str(c->sh->setup_msg, sizeof c->sh->setup_msg, what, num);
    c->sh->setup_failed = 1;
    return -1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* Namespace mode: become the namespace's root (an unprivileged uid on the
 * host), make every mount read-only, then give the task a private tmpfs
 * /tmp (its work dir inside) and a /proc of its own. */
static int setup_ns(SbCtx *c) {
    if (syscall(SYS_setresgid, 0, 0, 0) < 0) return setup_fail(c, "setresgid");
    syscall(SYS_setgroups, 0, NULL); /* denied for unprivileged callers: their groups stay */
    if (syscall(SYS_setresuid, 0, 0, 0) < 0) return setup_fail(c, "setresuid");
    c->sh->prot |= SANDBOX_PROT_USERNS | SANDBOX_PROT_PIDNS | SANDBOX_PROT_NETNS | SANDBOX_PROT_MOUNTNS;
    if (!c->is_root || c->cfg->host_uid != 0) c->sh->prot |= SANDBOX_PROT_UNPRIV;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return setup_fail(c, "private mounts");
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) == 0)
        c->sh->prot |= SANDBOX_PROT_READONLY;
    char opts[64] = "mode=1777,size=";
    size_t l = strlen(opts);
    unsigned long long sz = c->cfg->lim.disk_bytes;
    char digits[24];
    int nd = 0;
    do digits[nd++] = (char)('0' + sz % 10), sz /= 10;
    while (sz);
    while (nd) opts[l++] = digits[--nd];
    opts[l] = 0;
    if (mount("r1c-sandbox", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) return setup_fail(c, "tmpfs on /tmp");
    c->sh->prot |= SANDBOX_PROT_TMPFS;
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0 ||
        mount("r1c-noproc", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") == 0)
        c->sh->prot |= SANDBOX_PROT_PROC;
    if (mkdir(SANDBOX_WORKDIR, 0777) < 0 || chdir(SANDBOX_WORKDIR) < 0) return setup_fail(c, SANDBOX_WORKDIR);
    return 0;
}

static int write_files(SbCtx *c) {
    for (int i = 0; i < c->task->n_files; i++) {
        const SandboxFile *f = &c->task->files[i];
        int fd = open(f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) return setup_fail(c, f->name);
        int r = write_all(fd, f->data, f->len);
        close(fd);
        if (r < 0) return setup_fail(c, f->name);
    }
    return 0;
}

static void drop_privileges(SbCtx *c) {
    if (c->use_ns) {
        /* root inside the user namespace would regain every capability at
         * execve; lock that off, then empty every capability set */
        prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED);
        for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof d);
        syscall(SYS_capset, &h, d);
    } else if (c->is_root) {
        gid_t g = (gid_t)c->cfg->host_uid;
        uid_t u = (uid_t)c->cfg->host_uid;
        syscall(SYS_setgroups, 1, &g);
        if (syscall(SYS_setresgid, g, g, g) < 0 || syscall(SYS_setresuid, u, u, u) < 0)
            _exit(126);
    }
}

static void set_limit(int res, rlim_t v) {
    struct rlimit r = {v, v};
    if (res == RLIMIT_CPU) r.rlim_max = v + 1; /* SIGXCPU first, SIGKILL a second later */
    setrlimit(res, &r);
}

/* In the step's process: limits, privileges, filter, exec. Never returns. */
static void step_exec(SbCtx *c, const SandboxStep *s, const SandboxLimits *lim, int fin, int fout, int ferr, int frep) {
    setpgid(0, 0);
    dup2(fin, 0), dup2(fout, 1), dup2(ferr, 2), dup2(frep, 3);
    for (int fd = 0; fd <= 3; fd++) fcntl(fd, F_SETFD, 0);
    syscall(SYS_close_range, 4, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* r1c's blocked signals must not carry over */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    set_limit(RLIMIT_CPU, (rlim_t)(lim->cpu_s + 0.999));
    set_limit(RLIMIT_AS, lim->mem_bytes);
    set_limit(RLIMIT_FSIZE, lim->fsize_bytes);
    set_limit(RLIMIT_NOFILE, (rlim_t)lim->nofile);
    set_limit(RLIMIT_NPROC, (rlim_t)lim->nproc);
    set_limit(RLIMIT_CORE, 0);
    set_limit(RLIMIT_MEMLOCK, 0);
    set_limit(RLIMIT_MSGQUEUE, 0);
    drop_privileges(c);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    /* the shared map is still ours until execve: say whether it held */
    if (restrict_writes(c->use_ns ? "/tmp" : c->host_dir)) c->sh->prot |= SANDBOX_PROT_LANDLOCK;
    if (c->filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, c->filter) < 0) {
        const char m[] = "r1c sandbox: cannot install the seccomp filter\n";
        write_all(2, m, sizeof m - 1);
        _exit(126);
    }
    char *env[16];
    int ne = 0;
    char home[300], tmp[300];
    if (c->use_ns) {
        for (; ENV_NS[ne]; ne++) env[ne] = ENV_NS[ne];
    } else {
        /* the same, pointing at the host work directory */
        copy_str(home, sizeof home, "HOME=", c->host_dir);
        copy_str(tmp, sizeof tmp, "TMPDIR=", c->host_dir);
        for (; ENV_NS[ne]; ne++) env[ne] = ENV_NS[ne];
        env[1] = home, env[2] = tmp;
    }
    env[ne] = NULL;
    execve(s->argv[0], (char *const *)s->argv, env);
    const char m[] = "r1c sandbox: cannot execute ";
    write_all(2, m, sizeof m - 1);
    write_all(2, s->argv[0], strlen(s->argv[0]));
    write_all(2, "\n", 1);
    _exit(127);
}

/* Kills what the step left behind: everything in the namespace (we are
 * its PID 1), or the step's process group; then reaps all of it. */
static void kill_rest(SbCtx *c, pid_t pgid) {
    if (c->use_ns && getpid() == 1) kill(-1, SIGKILL);
    else if (pgid > 1) kill(-pgid, SIGKILL);
    while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR) {
    }
}

static void run_step(SbCtx *c, int i) {
    const SandboxStep *s = &c->task->steps[i];
    const SandboxLimits *lim = s->lim ? s->lim : &c->cfg->lim;
    SbStepOut *o = &c->step[i];
    char *out = c->out + (size_t)i * (c->out_cap + 1), *err = c->err + (size_t)i * c->err_cap,
         *rep = c->rep + (size_t)i * (c->rep_cap + 1);
    size_t out_cap = lim->out_bytes < c->out_cap ? lim->out_bytes : c->out_cap;
    size_t err_cap = lim->err_bytes < c->err_cap ? lim->err_bytes : c->err_cap;
    int pin[2], pout[2], perr[2], prep[2];
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC) || pipe2(prep, O_CLOEXEC)) {
        o->status = SANDBOX_STATUS_ERROR;
        return;
    }
    double t0 = mono();
    /* the raw system call, not fork(): glibc's fork takes malloc's locks,
     * which another r1c thread may have held when we were cloned */
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, NULL, NULL, 0UL);
    if (pid == 0) step_exec(c, s, lim, pin[0], pout[1], perr[1], prep[1]);
    close(pin[0]), close(pout[1]), close(perr[1]), close(prep[1]);
    if (pid < 0) {
        close(pin[1]), close(pout[0]), close(perr[0]), close(prep[0]);
        o->status = SANDBOX_STATUS_ERROR;
        return;
    }
    setpgid(pid, pid);
    c->sh->pgid = pid;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int fds[4] = {pout[0], perr[0], prep[0], pin[1]};
    for (int k = 0; k < 4; k++) fcntl(fds[k], F_SETFL, O_NONBLOCK);
    size_t in_off = 0;
    if (!s->stdin_data || s->stdin_len == 0) close(pin[1]), fds[3] = -1;
    int exited = 0, timeout = 0, outlimit = 0, st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    double deadline = t0 + lim->wall_s, grace = 0;
    char scratch[16384];
    for (;;) {
        int open_pipes = (fds[0] >= 0) + (fds[1] >= 0) + (fds[2] >= 0);
        if (exited && (open_pipes == 0 || mono() > grace)) break;
        double now = mono();
        if (!exited && now >= deadline) {
            timeout = 1;
            kill(-pid, SIGKILL);
        }
        struct pollfd p[5];
        int np = 0, map[5];
        for (int k = 0; k < 4; k++)
            if (fds[k] >= 0) p[np] = (struct pollfd){fds[k], k == 3 ? POLLOUT : POLLIN, 0}, map[np++] = k;
        if (!exited && pidfd >= 0) p[np] = (struct pollfd){pidfd, POLLIN, 0}, map[np++] = 4;
        double until = exited ? grace : deadline;
        int ms = until > now ? (int)((until - now) * 1000) + 1 : 0;
        if (!exited && pidfd < 0 && ms > 20) ms = 20; /* no pidfd: poll for the exit */
        int r = poll(p, (nfds_t)np, ms);
        if (r < 0 && errno != EINTR) break;
        for (int q = 0; q < np && r > 0; q++) {
            if (!p[q].revents) continue;
            int k = map[q];
            if (k == 3) {
                ssize_t w = write(fds[3], s->stdin_data + in_off, s->stdin_len - in_off);
                if (w > 0) in_off += (size_t)w;
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off >= s->stdin_len) close(fds[3]), fds[3] = -1;
            } else if (k == 4) {
                continue;
            } else {
                char *dst = scratch;
                size_t room = sizeof scratch;
                if (k == 0 && o->out_len < out_cap) dst = out + o->out_len, room = out_cap - o->out_len;
                else if (k == 2 && o->rep_len < c->rep_cap) dst = rep + o->rep_len, room = c->rep_cap - o->rep_len;
                ssize_t got = read(fds[k], dst, room);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                    close(fds[k]), fds[k] = -1;
                    continue;
                }
                if (got < 0) continue;
                if (k == 0) {
                    if (dst == scratch) {
                        outlimit = 1; /* more stdout than we keep: stop it now, not after 1 GB */
                        kill(-pid, SIGKILL);
                        close(fds[0]), fds[0] = -1;
                    } else o->out_len += (size_t)got;
                } else if (k == 2) {
                    if (dst != scratch) o->rep_len += (size_t)got;
                } else if (err_cap > 0) {
                    for (ssize_t b = 0; b < got; b++) err[(o->err_total + (uint64_t)b) % err_cap] = scratch[b];
                    o->err_total += (uint64_t)got;
                }
            }
        }
        if (!exited) {
            pid_t w = wait4(pid, &st, WNOHANG, &ru);
            if (w == pid) {
                exited = 1;
                /* what it left running would keep the pipes open: kill it now */
                kill_rest(c, pid);
                grace = mono() + 0.2;
            }
        }
    }
    if (!exited) {
        kill(-pid, SIGKILL);
        wait4(pid, &st, 0, &ru);
    }
    kill_rest(c, pid);
    c->sh->pgid = 0;
    for (int k = 0; k < 4; k++)
        if (fds[k] >= 0) close(fds[k]);
    if (pidfd >= 0) close(pidfd);
    o->wall_s = mono() - t0;
    o->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    o->err_len = o->err_total < err_cap ? (size_t)o->err_total : err_cap;
    if (timeout) o->status = SANDBOX_STATUS_TIMEOUT;
    else if (outlimit) o->status = SANDBOX_STATUS_OUTPUT_LIMIT;
    else if (WIFSIGNALED(st)) o->status = SANDBOX_STATUS_SIGNALED, o->sig = WTERMSIG(st);
    else o->status = SANDBOX_STATUS_EXITED, o->code = WEXITSTATUS(st);
}

static int is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v'; }

int sandbox_output_equal(const char *a, size_t al, const char *b, size_t bl, int exact) {
    if (exact) return al == bl && !memcmp(a, b, al);
    size_t i = 0, j = 0;
    for (;;) {
        while (i < al && is_ws(a[i])) i++;
        while (j < bl && is_ws(b[j])) j++;
        if (i == al || j == bl) return i == al && j == bl;
        size_t i0 = i, j0 = j;
        while (i < al && !is_ws(a[i])) i++;
        while (j < bl && !is_ws(b[j])) j++;
        if (i - i0 != j - j0 || memcmp(a + i0, b + j0, i - i0)) return 0;
    }
}

int sandbox_supervise(void *arg) {
    SbCtx *c = arg;
    /* keep fds 0-3 taken so the step's pipes never land on them */
    int sync_fd = fcntl(c->sync_fd, F_DUPFD_CLOEXEC, 64), done_fd = fcntl(c->done_fd, F_DUPFD_CLOEXEC, 64);
    close(c->sync_fd), close(c->done_fd);
    int nul = open("/dev/null", O_RDWR);
    for (int fd = 0; fd <= 3; fd++)
        if (nul != fd) dup2(nul, fd);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* r1c dies: so does the task */
    char b;
    if (read(sync_fd, &b, 1) != 1) _exit(1);
    close(sync_fd);
    if (c->use_ns) {
        if (setup_ns(c) < 0) _exit(1);
    } else {
        prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans come to us, to be killed and reaped */
        if (chdir(c->host_dir) < 0) {
            setup_fail(c, "work directory");
            _exit(1);
        }
        if (!c->is_root || c->cfg->host_uid != 0) c->sh->prot |= SANDBOX_PROT_UNPRIV;
    }
    if (c->filter) c->sh->prot |= SANDBOX_PROT_SECCOMP;
    if (c->use_ns || !c->is_root || c->cfg->host_uid != 0) c->sh->prot |= SANDBOX_PROT_NOCAPS;
    if (write_files(c) < 0) _exit(1);
    int failed = 0;
    for (int i = 0; i < c->task->n_steps; i++) {
        if (failed) c->step[i].status = SANDBOX_STATUS_SKIPPED;
        else {
            run_step(c, i);
            SbStepOut *o = &c->step[i];
            const SandboxStep *s = &c->task->steps[i];
            int ok = o->status == SANDBOX_STATUS_EXITED && o->code == 0;
            if (ok && s->expect) {
                const char *out = c->out + (size_t)i * (c->out_cap + 1);
                o->mismatch = !sandbox_output_equal(out, o->out_len, s->expect, s->expect_len, s->expect_exact);
                ok = !o->mismatch;
            }
            if (s->stop_on_fail && !ok) failed = 1;
        }
        c->sh->steps_done = i + 1;
    }
    (void)done_fd;
    _exit(0);
}
