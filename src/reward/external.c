/* A reward computed by the user's own program (any language), kept alive
 * across calls and spoken to in JSON lines over its stdin/stdout:
 *   request : {"completion": "...", "record": {...}}\n
 *   response: {"score": 0.5, "reason": "..."}\n
 * A socketpair (not pipes) lets us write with MSG_NOSIGNAL, so a dead
 * program never SIGPIPEs the caller. Every read and write has a deadline
 * (poll); a program that hangs, crashes, exits or prints garbage is killed
 * (its whole process group) and restarted on the next call, and the call
 * either fails (on_error=fail) or scores 0 with the reason (on_error=zero). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reward/external.h"
#include "reward/reward.h"

#define EXT_MAX_LINE (1 << 20)

typedef struct External {
    char cmd[4096];
    int timeout_ms;
    int fail_on_error;
    pid_t pid;
    int fd;
    char *buf; /* bytes read but not yet consumed */
    size_t len;
    int starts;
} External;

static void *external_create(Err *err) {
    External *x = calloc(1, sizeof *x);
    if (!x) { err_set(err, "out of memory"); return NULL; }
    x->timeout_ms = 10000;
    x->fail_on_error = 1;
    x->fd = -1;
    x->buf = malloc(EXT_MAX_LINE + 1);
    if (!x->buf) { free(x); err_set(err, "out of memory"); return NULL; }
    return x;
}

static int external_set_option(void *self, const char *key, const char *value, Err *err) {
    External *x = self;
    if (!strcmp(key, "cmd")) {
        if (strlen(value) >= sizeof x->cmd) return err_set(err, "option cmd: longer than %zu bytes", sizeof x->cmd - 1);
        strcpy(x->cmd, value);
        return 0;
    }
    if (!strcmp(key, "timeout_ms")) {
        double d;
        if (reward_parse_double(key, value, &d, err) < 0) return -1;
        if (d < 1 || d > 3600000) return err_set(err, "option timeout_ms: want 1..3600000");
        x->timeout_ms = (int)d;
        return 0;
    }
    if (!strcmp(key, "on_error")) {
        if (!strcmp(value, "fail")) x->fail_on_error = 1;
        else if (!strcmp(value, "zero")) x->fail_on_error = 0;
        else return err_set(err, "option on_error: '%s' (expected fail or zero)", value);
        return 0;
    }
    return 1;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* How the program ended, for the message ("exited with status 3"). */
static void describe_exit(External *x, char *buf, size_t size) {
    int st = 0;
    pid_t r = 0;
    /* give a crashing program a moment to finish dying */
    for (int i = 0; i < 50 && (r = waitpid(x->pid, &st, WNOHANG)) == 0; i++) usleep(2000);
    if (r == x->pid) {
        /* through the /bin/sh wrapper a program killed by signal N shows as 128+N */
        if (WIFEXITED(st) && WEXITSTATUS(st) > 128 && WEXITSTATUS(st) < 128 + 65)
            snprintf(buf, size, "exited with status %d (killed by signal %d: %s)", WEXITSTATUS(st), WEXITSTATUS(st) - 128,
                     strsignal(WEXITSTATUS(st) - 128));
        else if (WIFEXITED(st)) snprintf(buf, size, "exited with status %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st)) snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        else snprintf(buf, size, "stopped");
        x->pid = 0;
    } else snprintf(buf, size, "closed its output");
}

static void stop_child(External *x) {
    if (x->fd >= 0) close(x->fd);
    x->fd = -1;
    if (x->pid > 0) {
        kill(-x->pid, SIGKILL);
        kill(x->pid, SIGKILL);
        waitpid(x->pid, NULL, 0);
    }
    x->pid = 0;
    x->len = 0;
}

static int start_child(External *x, Err *err) {
    if (!x->cmd[0]) return err_set(err, "no program: set external.cmd=\"...\"");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return err_set(err, "socketpair: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return err_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0); /* so a timeout can kill everything it started */
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", x->cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    close(sv[1]);
    x->fd = sv[0];
    fcntl(x->fd, F_SETFL, fcntl(x->fd, F_GETFL) | O_NONBLOCK);
    x->pid = pid;
    x->len = 0;
    x->starts++;
    return 0;
}

static int send_all(External *x, const char *s, size_t n, long deadline, char *why, size_t wsize) {
    while (n > 0) {
        long left = deadline - now_ms();
        if (left <= 0) { snprintf(why, wsize, "timed out after %d ms writing the request", x->timeout_ms); return -1; }
        struct pollfd p = {.fd = x->fd, .events = POLLOUT};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) continue;
        ssize_t w = send(x->fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            char how[96];
            describe_exit(x, how, sizeof how);
            snprintf(why, wsize, "program %s (write: %s)", how, strerror(errno));
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One line (without '\n') into x->buf; returns its length or -1. */
static long read_line(External *x, long deadline, char *why, size_t wsize) {
    for (;;) {
        char *nl = memchr(x->buf, '\n', x->len);
        if (nl) return (long)(nl - x->buf);
        if (x->len >= EXT_MAX_LINE) { snprintf(why, wsize, "response line longer than %d bytes", EXT_MAX_LINE); return -1; }
        long left = deadline - now_ms();
        if (left <= 0) { snprintf(why, wsize, "timed out after %d ms (no response line)", x->timeout_ms); return -1; }
        struct pollfd p = {.fd = x->fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) continue;
        ssize_t got = recv(x->fd, x->buf + x->len, EXT_MAX_LINE - x->len, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (got <= 0) {
            char how[96];
            describe_exit(x, how, sizeof how);
            snprintf(why, wsize, "program %s", how);
            return -1;
        }
        x->len += (size_t)got;
    }
}

/* Parses one response line; 0 ok, -1 garbage (why says what). */
int external_parse_response(const char *line, size_t n, double *score, char *reason, size_t rsize, char *why, size_t wsize) {
    json_error_t je;
    json_t *j = json_loadb(line, n, 0, &je);
    if (!j || !json_is_object(j)) {
        char shown[48];
        size_t k = 0;
        for (size_t i = 0; i < n && k < sizeof shown - 4; i++) shown[k++] = (line[i] >= 32 && line[i] < 127) ? line[i] : '?';
        if (n > k) { memcpy(shown + k, "...", 3); k += 3; }
        shown[k] = 0;
        snprintf(why, wsize, "garbage response '%s' (want {\"score\": x})", shown);
        json_decref(j);
        return -1;
    }
    json_t *s = json_object_get(j, "score");
    if (!json_is_number(s) || json_number_value(s) != json_number_value(s)) {
        snprintf(why, wsize, "response has no numeric \"score\"");
        json_decref(j);
        return -1;
    }
    *score = json_number_value(s);
    json_t *r = json_object_get(j, "reason");
    snprintf(reason, rsize, "%s", json_is_string(r) ? json_string_value(r) : "");
    json_decref(j);
    return 0;
}

static int external_score(void *self, const RewardInput *in, RewardScore *out, Err *err) {
    External *x = self;
    char why[200] = "";
    int restarted = 0;
    if (x->pid <= 0) {
        if (start_child(x, err) < 0) return -1;
        restarted = x->starts > 1;
    }
    json_t *req = json_object();
    json_t *text = json_stringn(in->completion, in->completion_len);
    if (!text) {
        /* invalid UTF-8: send it with the bad bytes replaced */
        char *copy = malloc(in->completion_len + 1);
        if (!copy) { json_decref(req); return err_set(err, "out of memory"); }
        for (size_t i = 0; i < in->completion_len; i++) {
            unsigned char ch = (unsigned char)in->completion[i];
            copy[i] = (ch >= 0x80 || ch == 0) ? '?' : (char)ch;
        }
        text = json_stringn(copy, in->completion_len);
        free(copy);
    }
    json_object_set_new(req, "completion", text ? text : json_string(""));
    if (in->record) json_object_set(req, "record", (json_t *)in->record);
    char *line = json_dumps(req, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(req);
    if (!line) return err_set(err, "cannot encode the request");
    size_t ln = strlen(line);
    line[ln] = '\n'; /* json_dumps leaves room: replace NUL, send ln+1 bytes */
    long deadline = now_ms() + x->timeout_ms;
    int r = send_all(x, line, ln + 1, deadline, why, sizeof why);
    free(line);
    long n = r < 0 ? -1 : read_line(x, deadline, why, sizeof why);
    if (n >= 0) {
        double s;
        char reason[REWARD_REASON_MAX];
        if (external_parse_response(x->buf, (size_t)n, &s, reason, sizeof reason, why, sizeof why) == 0) {
            memmove(x->buf, x->buf + n + 1, x->len - (size_t)n - 1);
            x->len -= (size_t)n + 1;
            reward_reason(out, s, "%s", reason);
            return 0;
        }
    }
    /* anything else leaves the protocol out of step: start afresh next call */
    stop_child(x);
    if (x->fail_on_error) return err_set(err, "'%s': %s%s", x->cmd, why, restarted ? " (after a restart)" : "");
    reward_reason(out, 0, "external error: %s (restarting)", why);
    return 0;
}

static void external_destroy(void *self) {
    External *x = self;
    stop_child(x);
    free(x->buf);
    free(x);
}

const RewardKind reward_external_kind = {
    .name = "external",
    .summary = "score from your program speaking JSON lines on stdin/stdout (external.cmd=...)",
    .create = external_create,
    .set_option = external_set_option,
    .score = external_score,
    .destroy = external_destroy,
};
