/* A sandbox for untrusted programs (model-written code during RL): each
 * task runs under a supervisor process in fresh namespaces where the
 * kernel allows (user, PID, network, mount, IPC, UTS), with a read-only
 * view of the filesystem, a private size-limited tmpfs as its working
 * directory, rlimits, a seccomp filter, a clean environment and capped
 * output; everything a task starts dies with it. A task is a few files
 * plus steps run in order (compile, then one run per test), so a compiled
 * binary survives between steps. sandbox_run_many runs tasks in parallel,
 * up to a limit, from one thread (poll), so GRPO, rejection sampling and
 * evaluation share it. See docs/rewards.md (code) for the threat model. */
#ifndef R1C_REWARD_SANDBOX_H
#define R1C_REWARD_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct SandboxLimits {
    double cpu_s;       /* RLIMIT_CPU (rounded up to whole seconds) */
    double wall_s;      /* wall clock per step; the whole process group is killed */
    size_t mem_bytes;   /* RLIMIT_AS */
    size_t fsize_bytes; /* RLIMIT_FSIZE: largest file a step may write */
    size_t disk_bytes;  /* size of the private tmpfs work directory (namespace mode) */
    size_t out_bytes;   /* stdout kept; more kills the step (output limit) */
    size_t err_bytes;   /* stderr kept (its last bytes; the rest is dropped) */
    int nofile;         /* RLIMIT_NOFILE */
    int nproc;          /* RLIMIT_NPROC: processes + threads of the task */
} SandboxLimits;

typedef enum SandboxMode {
    SANDBOX_MODE_AUTO,       /* namespaces when the kernel allows, else basic */
    SANDBOX_MODE_NAMESPACES, /* fail rather than run with less */
    SANDBOX_MODE_BASIC,      /* rlimits + seccomp + process group + temp dir only */
} SandboxMode;

typedef struct SandboxConfig {
    SandboxLimits lim;
    SandboxMode mode;
    unsigned host_uid; /* when r1c runs as root: the unprivileged uid/gid tasks run as */
} SandboxConfig;

typedef struct SandboxFile {
    const char *name; /* plain file name in the work directory */
    const char *data;
    size_t len;
} SandboxFile;

typedef struct SandboxStep {
    const char *argv[16];       /* argv[0]: absolute (sandbox_resolve) or ./NAME; NULL-terminated */
    const char *stdin_data;     /* may be NULL */
    size_t stdin_len;
    const SandboxLimits *lim;   /* NULL: the config's */
    int stop_on_fail;           /* failing skips the remaining steps (compile; all-or-nothing tests) */
    const char *expect;         /* when set, stdout must equal it to succeed (sandbox_output_equal) */
    size_t expect_len;
    int expect_exact;
} SandboxStep;

typedef struct SandboxTask {
    const SandboxFile *files;
    int n_files;
    const SandboxStep *steps;
    int n_steps;
} SandboxTask;

typedef enum SandboxStatus {
    SANDBOX_STATUS_EXITED,       /* exit code in code (0 = success) */
    SANDBOX_STATUS_SIGNALED,     /* sig (SIGXCPU: cpu limit, SIGXFSZ: file size limit) */
    SANDBOX_STATUS_TIMEOUT,      /* wall clock */
    SANDBOX_STATUS_OUTPUT_LIMIT, /* stdout over out_bytes */
    SANDBOX_STATUS_SKIPPED,      /* an earlier stop_on_fail step failed */
    SANDBOX_STATUS_ERROR,        /* the sandbox could not run it (exec failed, setup) */
} SandboxStatus;

typedef struct SandboxStepResult {
    SandboxStatus status;
    int code, sig;
    int mismatch;                    /* exited 0 but stdout differs from expect */
    double wall_s, cpu_s;
    char *out; size_t out_len;       /* stdout (NUL-terminated, owned) */
    char *err; size_t err_len;       /* stderr tail (NUL-terminated, owned) */
    char *report; size_t report_len; /* what the step wrote to fd 3 (NUL-terminated, owned) */
} SandboxStepResult;

/* What was in force for a task (bits), so users can see it. */
enum {
    SANDBOX_PROT_USERNS = 1 << 0,
    SANDBOX_PROT_PIDNS = 1 << 1,
    SANDBOX_PROT_NETNS = 1 << 2,
    SANDBOX_PROT_MOUNTNS = 1 << 3,
    SANDBOX_PROT_READONLY = 1 << 4, /* everything but the work dir and /tmp read-only */
    SANDBOX_PROT_TMPFS = 1 << 5,    /* private size-limited tmpfs work dir and /tmp */
    SANDBOX_PROT_PROC = 1 << 6,     /* /proc shows only the task's processes (or nothing) */
    SANDBOX_PROT_SECCOMP = 1 << 7,
    SANDBOX_PROT_UNPRIV = 1 << 8,   /* runs as an unprivileged host uid (RLIMIT_NPROC binds) */
    SANDBOX_PROT_NOCAPS = 1 << 9,   /* no capabilities, no_new_privs */
    SANDBOX_PROT_LANDLOCK = 1 << 10, /* Landlock: filesystem changes only in the work directory */
};

typedef struct SandboxResult {
    int n_steps;
    SandboxStepResult *step;
    unsigned prot;     /* SANDBOX_PROT_* */
    char error[256];   /* set when the sandbox itself failed (then every step is ERROR) */
} SandboxResult;

void sandbox_config_default(SandboxConfig *c);
/* Runs n tasks, at most `parallel` at a time; res[i] for tasks[i]. Returns
 * -1 only when nothing can run (err); a task that misbehaves is a result. */
int sandbox_run_many(const SandboxConfig *c, const SandboxTask *tasks, int n, SandboxResult *res, int parallel, Err *err);
int sandbox_run(const SandboxConfig *c, const SandboxTask *task, SandboxResult *res, Err *err);
void sandbox_result_free(SandboxResult *r);
/* The program's absolute path as the sandbox's PATH finds it
 * (/usr/local/bin:/usr/bin:/bin), or copies an absolute path that exists. */
int sandbox_resolve(const char *prog, char *out, size_t size, Err *err);
/* Program output equality: byte for byte, or as whitespace-separated
 * tokens. Pure (no allocation): the supervisor uses it too. */
int sandbox_output_equal(const char *got, size_t gl, const char *want, size_t wl, int exact);
/* One line naming the protections in prot. */
void sandbox_describe(unsigned prot, char *buf, size_t size);
/* Runs /bin/true once and describes what is in force (cached). */
const char *sandbox_protections(const SandboxConfig *c);

/* Internals shared by sandbox.c and sandbox_child.c. */
typedef struct SbStepOut {
    int status, code, sig, mismatch;
    double wall_s, cpu_s;
    size_t out_len, err_len, rep_len;
    uint64_t err_total; /* stderr bytes seen; the buffer is a ring when over err_bytes */
} SbStepOut;

typedef struct SbShared {
    volatile int pgid; /* the running step's process group (basic mode cleanup) */
    unsigned prot;
    int setup_failed;
    char setup_msg[200];
    int steps_done;
} SbShared;

typedef struct SbCtx {
    const SandboxConfig *cfg;
    const SandboxTask *task;
    int use_ns, is_root;
    int sync_fd, done_fd;          /* supervisor ends */
    const char *host_dir;          /* basic mode work dir */
    SbShared *sh;                  /* MAP_SHARED with the parent */
    SbStepOut *step;               /* (n_steps) inside the shared map */
    char *out, *err, *rep;         /* (n_steps * caps) inside the shared map */
    size_t out_cap, err_cap, rep_cap;
    const void *filter;            /* struct sock_fprog for the step's seccomp */
} SbCtx;

#define SANDBOX_REPORT_BYTES (64 * 1024)
#define SANDBOX_WORKDIR "/tmp/work"

int sandbox_supervise(void *ctx); /* clone entry point (sandbox_child.c) */
/* The seccomp programs (struct sock_fprog), built once. ns: namespace mode. */
const void *sandbox_filter(int ns, Err *err);

#endif
