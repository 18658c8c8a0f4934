/* The adversarial suite: hostile programs run through the code reward with
 * tight limits, each must be contained and reported with the right
 * reason, and afterwards nothing they started may be alive, nothing
 * outside their directory changed, and no work directory left behind.
 * Runs in namespace mode (when the kernel allows it; the whole suite as
 * one parallel batch) and in basic mode (one at a time: there the
 * process limit is shared by every task of the sandbox uid). */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "reward/code.h"
#include "reward/reward.h"

typedef struct Case {
    const char *name, *code;
    const char *want[3]; /* the reason contains one of these */
    int ns_only;         /* needs the private tmpfs (basic mode has no disk quota) */
} Case;

static char victim[256], secret[64];

/* Processes whose command line contains marker (the "outlives the test" check). */
static int count_procs(const char *marker) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < k; i++)
            if (!buf[i]) buf[i] = ' ';
        buf[k] = 0;
        if (strstr(buf, marker)) n++;
    }
    if (d) closedir(d);
    return n;
}

static int count_workdirs(void) {
    DIR *d = opendir("/tmp");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, "r1c-sb-", 7)) n++;
    if (d) closedir(d);
    return n;
}

static void run_suite(const char *mode) {
    char code_rm[600], code_env[600], code_kill[128];
    snprintf(code_kill, sizeof code_kill, "import os\nos.kill(%d, 9)\nprint('ok')\n", (int)getpid());
    snprintf(code_rm, sizeof code_rm, "import os\nos.remove(%s)\nprint('ok')\n", "'VICTIM'");
    /* the victim's path goes in literally */
    char *p = strstr(code_rm, "VICTIM");
    char tail[600];
    snprintf(tail, sizeof tail, "%s", p + 6);
    snprintf(p, sizeof code_rm - (size_t)(p - code_rm), "%s%s", victim, tail);
    snprintf(code_env, sizeof code_env,
             "import os, glob\nfound = '%s' in str(dict(os.environ))\n"
             "for f in glob.glob('/proc/*/environ'):\n"
             "    try:\n        found |= b'%s' in open(f, 'rb').read()\n    except OSError:\n        pass\n"
             "print('leak' if found else 'ok')\n",
             secret, secret);
    const Case cases[] = {
        /* cpu limit, or the wall clock when parallel tasks share the cores */
        {"busy loop", "while True: pass\n", {"timeout (1 s cpu) on test 1", "timeout (1.5 s wall) on test 1"}, 0},
        {"sleep past the timeout", "import time\ntime.sleep(100)\n", {"timeout (1.5 s wall) on test 1"}, 0},
        {"fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
         {"timeout"}, 0},
        {"allocate 100 GB", "x = bytearray(100 * 1024 ** 3)\n", {"memory limit (256 MiB) on test 1: MemoryError"}, 0},
        {"write a 10 GB file", "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n",
         {"file size limit (1048576 bytes) on test 1"}, 0},
        {"fill /tmp", "i = 0\nwhile True:\n    open('/tmp/f%d' % i, 'wb').write(b'x' * 500000)\n    i += 1\n",
         {"disk full on test 1"}, 1},
        {"socket to 127.0.0.1", "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 22))\n",
         {"runtime error on test 1: PermissionError: [Errno 13] Permission denied"}, 0},
        {"socket to an outside address", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('1.1.1.1', 53))\n",
         {"runtime error on test 1: PermissionError: [Errno 13] Permission denied"}, 0},
        {"read the parent's environment", code_env, {"passed 1/1"}, 0},
        /* in a PID namespace the parent is the namespace's init, which
         * ignores signals from inside; in basic mode the filter refuses */
        {"kill the parent", "import os\nos.kill(os.getppid(), 9)\nprint('ok')\n",
         {"passed 1/1", "runtime error on test 1: PermissionError: [Errno 1] Operation not permitted"}, 0},
        {"kill r1c by its pid", code_kill,
         {"runtime error on test 1: ProcessLookupError", "runtime error on test 1: PermissionError: [Errno 1] Operation not permitted"}, 0},
        /* read-only mounts, Landlock or permissions; or, where the victim is
         * under /tmp, invisible behind the private tmpfs */
        {"delete files outside", code_rm,
         {"runtime error on test 1: OSError: [Errno 30] Read-only file system",
          "runtime error on test 1: PermissionError: [Errno 13] Permission denied",
          "runtime error on test 1: FileNotFoundError"}, 0},
        {"background process", "import subprocess\nsubprocess.Popen(['/bin/sleep', '31.337'], start_new_session=True)\nprint('ok')\n",
         {"passed 1/1", "runtime error on test 1: PermissionError"}, 0},
        {"double-fork daemon", "import os, time\nif os.fork() == 0:\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '31.337'])\n    os._exit(0)\ntime.sleep(0.2)\nprint('ok')\n",
         {"passed 1/1"}, 0},
        {"print 1 GB", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", {"output limit (stdout over 65536 bytes) on test 1"}, 0},
        {"flood stderr", "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)\n", {"timeout"}, 0},
    };
    int n = (int)(sizeof cases / sizeof *cases);
    RewardSet rs;
    Err err = {{0}};
    char opt[64];
    CHECK(rewardset_parse(&rs, "code", &err) == 0);
    const char *opts[] = {"timeout=1.5", "cpu=1", "memory_mb=256", "fsize_mb=1", "disk_mb=8", "nproc=16", "output_kb=64"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) CHECKF(rewardset_option(&rs, opts[i], &err) == 0, "%s", err.msg);
    snprintf(opt, sizeof opt, "mode=%s", mode);
    CHECK(rewardset_option(&rs, opt, &err) == 0);
    int ns = !strcmp(mode, "namespaces");
    /* parallel in namespace mode: every task has its own process count */
    CHECK(rewardset_option(&rs, ns ? "workers=4" : "workers=1", &err) == 0);
    const char *prot = code_reward_protections(rs.state[0]);
    printf("%s mode: %s\n", mode, prot);
    /* documented: basic mode as a normal user without Landlock leaves the user's files writable */
    int unguarded = !ns && geteuid() != 0 && !strstr(prot, "landlock (");
    if (unguarded) SKIP("basic mode as a normal user without Landlock: deleting the user's files is not prevented (docs/rewards.md)");
    json_t *rec = json_loads("{\"inputs\": [\"\"], \"outputs\": [\"ok\\n\"]}", 0, NULL);
    RewardInput in[32];
    char *comp[32];
    int idx[32], m = 0;
    for (int i = 0; i < n; i++) {
        if (cases[i].ns_only && !ns) continue;
        if (unguarded && cases[i].code == code_rm) continue;
        size_t l = strlen(cases[i].code) + 32;
        comp[m] = malloc(l);
        snprintf(comp[m], l, "```python\n%s```\n", cases[i].code);
        in[m] = (RewardInput){rec, comp[m], strlen(comp[m])};
        idx[m++] = i;
    }
    double tot[32];
    RewardScore each[32];
    int before = count_workdirs();
    int rc = rewardset_score_batch(&rs, in, m, tot, each, &err);
    CHECKF(rc == 0, "%s", err.msg);
    for (int k = 0; k < m && rc == 0; k++) {
        const Case *c = &cases[idx[k]];
        int ok = 0;
        for (int w = 0; w < 3 && c->want[w]; w++) ok |= strstr(each[k].reason, c->want[w]) != NULL;
        int want_pass = !strncmp(c->want[0], "passed", 6);
            CHECKF(ok, "%s (%s): reason '%s'", c->name, mode, each[k].reason);
        CHECKF(want_pass ? tot[k] == (strncmp(each[k].reason, "passed", 6) ? 0 : 1) : tot[k] == 0, "%s: score %g", c->name, tot[k]);
        printf("  %-32s %s\n", c->name, each[k].reason);
    }
    /* nothing survives, nothing outside changed, nothing left behind */
    CHECKF(count_procs("31.337") == 0, "%s: a background process outlived its test", mode);
    struct stat st;
    CHECKF(stat(victim, &st) == 0, "%s: %s was deleted from inside the sandbox", mode, victim);
    CHECKF(count_workdirs() <= before, "%s: work directories left in /tmp", mode);
    for (int k = 0; k < m; k++) free(comp[k]);
    json_decref(rec);
    rewardset_free(&rs);
}

/* r1c clones supervisors while other threads (OpenMP, the sampler) run and
 * allocate; a supervisor that touched malloc or glibc's set*id machinery
 * could inherit a held lock and hang. Threads churn malloc while tasks
 * start; an alarm turns a hang into a failure. */
static volatile int churn_stop;
static void *churn(void *arg) {
    (void)arg;
    while (!churn_stop) {
        void *p[64];
        for (int i = 0; i < 64; i++) p[i] = malloc((size_t)(16 + i * 97));
        for (int i = 0; i < 64; i++) free(p[i]);
    }
    return NULL;
}

static void test_threads(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, NULL);
    alarm(120);
    for (int mode = 0; mode < 2; mode++) {
        SandboxConfig c;
        sandbox_config_default(&c);
        c.mode = mode ? SANDBOX_MODE_BASIC : SANDBOX_MODE_AUTO;
        SandboxStep st = {.argv = {"/bin/true", NULL}};
        SandboxTask tasks[100];
        SandboxResult r[100];
        for (int i = 0; i < 100; i++) tasks[i] = (SandboxTask){NULL, 0, &st, 1};
        Err err = {{0}};
        CHECKF(sandbox_run_many(&c, tasks, 100, r, 4, &err) == 0, "%s", err.msg);
        int ok = 0;
        for (int i = 0; i < 100; i++) {
            ok += r[i].step[0].status == SANDBOX_STATUS_EXITED && r[i].step[0].code == 0;
            sandbox_result_free(&r[i]);
        }
        CHECKF(ok == 100, "mode %d: %d/100 tasks ran while other threads allocated", mode, ok);
    }
    alarm(0);
    churn_stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
}

int main(int argc, char **argv) {
    if (access("/usr/bin/python3", X_OK) != 0) {
        SKIP("sandbox suite: /usr/bin/python3 not installed");
        return check_summary("test_sandbox");
    }
    snprintf(secret, sizeof secret, "r1c-secret-%d-hunter2", (int)getpid());
    setenv("R1C_TEST_SECRET", secret, 1);
    /* the victim lives next to this binary: on the host, outside every sandbox */
    char *self = argc > 0 ? realpath(argv[0], NULL) : NULL;
    char *slash = self ? strrchr(self, '/') : NULL;
    if (slash) *slash = 0;
    snprintf(victim, sizeof victim, "%s/r1c-victim-%d", slash ? self : "/tmp", (int)getpid());
    free(self);
    FILE *f = fopen(victim, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    chmod(victim, 0666);
    SandboxConfig probe;
    sandbox_config_default(&probe);
    probe.mode = SANDBOX_MODE_NAMESPACES;
    const char *prot = sandbox_protections(&probe);
    if (strstr(prot, "unavailable")) SKIP("namespace mode: %s", prot);
    else run_suite("namespaces");
    run_suite("basic");
    unlink(victim);
    test_threads();
    return check_summary("test_sandbox");
}
