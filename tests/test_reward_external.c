/* External reward: a /bin/sh program kept alive across calls, and every
 * way it can misbehave (hang, crash, garbage, exit, missing score, not
 * found) reported clearly without taking the caller down, with restart. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "reward/external.h"
#include "reward/reward.h"

static char dir[] = "/tmp/r1c-ext-XXXXXX";

static void script(const char *name, const char *body, char *path, size_t size) {
    snprintf(path, size, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fprintf(f, "#!/bin/sh\n%s", body);
    fclose(f);
    chmod(path, 0755);
}

static int setup(RewardSet *rs, const char *cmd, const char *on_error, int timeout_ms) {
    Err err = {{0}};
    char opt[600];
    if (rewardset_parse(rs, "external", &err) < 0) return -1;
    snprintf(opt, sizeof opt, "external.cmd=%s", cmd);
    if (rewardset_option(rs, opt, &err) < 0) return -1;
    snprintf(opt, sizeof opt, "external.on_error=%s", on_error);
    if (rewardset_option(rs, opt, &err) < 0) return -1;
    snprintf(opt, sizeof opt, "external.timeout_ms=%d", timeout_ms);
    return rewardset_option(rs, opt, &err);
}

/* Returns the call status; fills score, reason (or the error). */
static int call(RewardSet *rs, const char *completion, double *score, char *msg, size_t size) {
    json_t *rec = json_pack("{s:s, s:[i,i]}", "answer", "4", "numbers", 1, 2);
    RewardInput in = {rec, completion, strlen(completion)};
    RewardScore s[1];
    Err err = {{0}};
    int r = rewardset_score(rs, &in, score, s, &err);
    snprintf(msg, size, "%s", r == 0 ? s[0].reason : err.msg);
    json_decref(rec);
    return r;
}

static void test_good(void) {
    char path[256], msg[1100];
    /* counts calls to show that one process serves them all */
    script("good.sh",
           "n=0\nwhile IFS= read -r line; do\n  n=$((n+1))\n  case \"$line\" in\n"
           "    *yes*) echo \"{\\\"score\\\": 1, \\\"reason\\\": \\\"said yes (call $n)\\\"}\" ;;\n"
           "    *) echo \"{\\\"score\\\": 0.25, \\\"reason\\\": \\\"no yes (call $n)\\\"}\" ;;\n  esac\ndone\n",
           path, sizeof path);
    RewardSet rs;
    CHECK(setup(&rs, path, "fail", 5000) == 0);
    double s;
    CHECK(call(&rs, "I say yes", &s, msg, sizeof msg) == 0 && s == 1.0);
    CHECK_STREQ(msg, "said yes (call 1)");
    CHECK(call(&rs, "no", &s, msg, sizeof msg) == 0 && s == 0.25);
    CHECK_STREQ(msg, "no yes (call 2)");
    /* newlines, quotes, invalid UTF-8 in the completion stay on one request line */
    CHECK(call(&rs, "line1\nline2 \"q\" \xff yes", &s, msg, sizeof msg) == 0 && s == 1.0);
    CHECK_STREQ(msg, "said yes (call 3)");
    rewardset_free(&rs);
}

static void expect_failure(const char *name, const char *body, const char *want, int timeout_ms) {
    char path[256], msg[1100];
    script(name, body, path, sizeof path);
    RewardSet rs;
    CHECK(setup(&rs, path, "fail", timeout_ms) == 0);
    double s = -1;
    int r = call(&rs, "hello", &s, msg, sizeof msg);
    CHECKF(r == -1 && strstr(msg, want) != NULL, "%s: rc %d, message '%s' lacks '%s'", name, r, msg, want);
    CHECKF(strstr(msg, "external: '") == msg, "%s: message '%s' does not name the reward and program", name, msg);
    /* the next call restarts the program and fails the same way, cleanly */
    r = call(&rs, "hello", &s, msg, sizeof msg);
    CHECKF(r == -1 && strstr(msg, want) != NULL && strstr(msg, "after a restart"), "%s (2nd): '%s'", name, msg);
    rewardset_free(&rs);
    /* on_error=zero: a score of 0 with the reason */
    CHECK(setup(&rs, path, "zero", timeout_ms) == 0);
    r = call(&rs, "hello", &s, msg, sizeof msg);
    CHECKF(r == 0 && s == 0 && strstr(msg, want) && strstr(msg, "external error:") == msg, "%s (zero): '%s'", name, msg);
    rewardset_free(&rs);
}

static void test_failures(void) {
    expect_failure("hang.sh", "while read -r l; do sleep 100; done\n", "timed out after 300 ms", 300);
    expect_failure("crash.sh", "read -r l\nkill -SEGV $$\n", "killed by signal 11", 5000);
    expect_failure("garbage.sh", "while read -r l; do echo 'this is not json'; done\n",
                   "garbage response 'this is not json'", 5000);
    expect_failure("exit.sh", "read -r l\nexit 3\n", "exited with status 3", 5000);
    expect_failure("noscore.sh", "while read -r l; do echo '{\"reason\": \"x\"}'; done\n", "no numeric \"score\"", 5000);
    expect_failure("missing.sh", "exec /nonexistent/program\n", "exited with status", 5000);
    expect_failure("silent.sh", "while read -r l; do :; done\n", "timed out", 200);
}

static void test_restart(void) {
    /* dies on its second request: the third is served by a new process */
    char path[256], msg[1100];
    script("flaky.sh",
           "n=0\nwhile read -r l; do n=$((n+1)); [ $n -eq 2 ] && exit 1; echo \"{\\\"score\\\": $n}\"; done\n", path,
           sizeof path);
    RewardSet rs;
    CHECK(setup(&rs, path, "zero", 5000) == 0);
    double s;
    CHECK(call(&rs, "a", &s, msg, sizeof msg) == 0 && s == 1);
    CHECK(call(&rs, "b", &s, msg, sizeof msg) == 0 && s == 0);
    CHECKF(strstr(msg, "exited with status 1") != NULL, "%s", msg);
    CHECK(call(&rs, "c", &s, msg, sizeof msg) == 0 && s == 1);
    rewardset_free(&rs);
    /* no command configured */
    Err err = {{0}};
    CHECK(rewardset_parse(&rs, "external", &err) == 0);
    CHECK(call(&rs, "a", &s, msg, sizeof msg) == -1 && strstr(msg, "external.cmd") != NULL);
    CHECK(rewardset_option(&rs, "external.on_error=maybe", &err) == -1);
    CHECK(rewardset_option(&rs, "external.timeout_ms=0", &err) == -1);
    rewardset_free(&rs);
}

static void test_parse(void) {
    double s;
    char reason[64], why[128];
    CHECK(external_parse_response("{\"score\": 0.5, \"reason\": \"ok\"}", 30, &s, reason, sizeof reason, why, sizeof why) == 0);
    CHECK(s == 0.5 && !strcmp(reason, "ok"));
    CHECK(external_parse_response("{\"score\": 2}", 12, &s, reason, sizeof reason, why, sizeof why) == 0 && s == 2);
    CHECK(external_parse_response("{\"score\": \"1\"}", 14, &s, reason, sizeof reason, why, sizeof why) == -1);
    CHECK(external_parse_response("[1]", 3, &s, reason, sizeof reason, why, sizeof why) == -1);
    CHECK(external_parse_response("", 0, &s, reason, sizeof reason, why, sizeof why) == -1);
}

int main(void) {
    if (!mkdtemp(dir)) {
        SKIP("external reward: cannot create a temp dir");
        return check_summary("test_reward_external");
    }
    test_parse();
    test_good();
    test_failures();
    test_restart();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_summary("test_reward_external");
}
