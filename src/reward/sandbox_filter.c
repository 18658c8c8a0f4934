/* The seccomp filter of sandboxed steps, built with libseccomp once in the
 * parent and exported as a BPF program: the supervisor is cloned from a
 * multi-threaded process and must not call malloc, so it only hands the
 * finished program to prctl. Default allow; denied with EPERM/EACCES:
 * sockets other than AF_UNIX (no network even without a network
 * namespace), io_uring (it would bypass this filter), tracing other
 * processes, mounts and namespaces, kernel modules, BPF, keyrings,
 * clocks, reboot, swap. Basic mode (no PID namespace) also denies
 * kill(pid) for anything but the caller's own process group, and
 * setsid/setpgid, so a task can neither signal r1c nor leave its process
 * group to outlive its step. clone3 answers ENOSYS so libc falls back to
 * clone, whose flags (namespace creation) this filter can read. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reward/sandbox.h"

static struct sock_fprog progs[2];
static int built[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const DENY[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "unshare",
    "setns", "swapon", "swapoff", "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl",
    "ioperm", "quotactl", "name_to_handle_at", "open_by_handle_at", "fanotify_init", "lookup_dcookie",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "mount_setattr", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "syslog", "vhangup", "personality",
};

static int build(scmp_filter_ctx ctx, int ns) {
    int rc = 0;
    for (size_t i = 0; i < sizeof DENY / sizeof *DENY && !rc; i++) {
        int nr = seccomp_syscall_resolve_name(DENY[i]);
        if (nr == __NR_SCMP_ERROR) continue; /* older kernel headers: not a call this arch has */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    /* network: only AF_UNIX sockets (some runtimes use socketpair internally) */
    if (!rc) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX));
    if (!rc) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* clone that creates namespaces */
    const uint64_t nsflags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                             CLONE_NEWCGROUP;
    for (int bit = 0; bit < 32 && !rc; bit++) {
        uint64_t f = 1ull << bit;
        if (!(nsflags & f)) continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
    }
    if (!ns && !rc) {
        /* without a PID namespace, kill(pid != 0) could reach r1c or its other tasks */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_NE, 0));
        if (!rc) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setsid), 0);
        if (!rc) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setpgid), 0);
    }
    return rc;
}

const void *sandbox_filter(int ns, Err *err) {
    ns = ns ? 1 : 0;
    pthread_mutex_lock(&lock);
    if (built[ns]) {
        pthread_mutex_unlock(&lock);
        return &progs[ns];
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int fd = -1, rc = -1;
    if (ctx && build(ctx, ns) == 0 && (fd = memfd_create("r1c-seccomp", MFD_CLOEXEC)) >= 0 &&
        seccomp_export_bpf(ctx, fd) == 0) {
        off_t n = lseek(fd, 0, SEEK_END);
        struct sock_filter *f = n > 0 && n % sizeof *f == 0 && n < (1 << 20) ? malloc((size_t)n) : NULL;
        if (f && pread(fd, f, (size_t)n, 0) == n) {
            progs[ns].filter = f;
            progs[ns].len = (unsigned short)(n / sizeof *f);
            built[ns] = 1;
            rc = 0;
        } else free(f);
    }
    if (fd >= 0) close(fd);
    if (ctx) seccomp_release(ctx);
    pthread_mutex_unlock(&lock);
    if (rc) {
        err_set(err, "cannot build the seccomp filter (libseccomp)");
        return NULL;
    }
    return &progs[ns];
}
