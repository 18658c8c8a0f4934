/* format, language, length rewards, the registry / RewardSet, and the
 * `r1c reward` command end to end. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "check.h"
#include "reward/reward.h"

static double run1(RewardSet *rs, const char *rec_json, const char *completion, char *reason) {
    json_t *rec = rec_json ? json_loads(rec_json, 0, NULL) : NULL;
    RewardInput in = {rec, completion, strlen(completion)};
    RewardScore s[REWARDSET_MAX];
    double total = -99;
    Err err = {{0}};
    CHECKF(rewardset_score(rs, &in, &total, s, &err) == 0, "%s", err.msg);
    if (reason) strcpy(reason, s[0].reason);
    json_decref(rec);
    return total;
}

#define FMT(comp, want, part)                                                                                  \
    do {                                                                                                       \
        char r_[REWARD_REASON_MAX];                                                                            \
        double g_ = run1(&rs, NULL, comp, r_);                                                                 \
        CHECKF(g_ == (want), "format('%s') = %g (%s), want %g", comp, g_, r_, (double)(want));                 \
        CHECKF(strstr(r_, part) != NULL, "reason '%s' lacks '%s'", r_, part);                                 \
    } while (0)

static void test_format(void) {
    RewardSet rs;
    Err err = {{0}};
    CHECK(rewardset_parse(&rs, "format", &err) == 0);
    FMT("<think>\nreason\n</think>\n<answer>\n42\n</answer>", 1, "ok");
    FMT("<think>reason</think> <answer>42</answer>\n", 1, "ok");
    FMT("  <think>r</think><answer>42</answer>", 1, "ok");
    FMT("<think>r</think><answer>42</answer> and more", 0, "text after </answer>");
    FMT("<think>r</think>so<answer>42</answer>", 0, "text between </think> and <answer>");
    FMT("hi <think>r</think><answer>42</answer>", 0, "text before <think>");
    FMT("<think>r</think><think>s</think><answer>42</answer>", 0, "2 <think> tags");
    FMT("<think>r<answer>1</answer></think><answer>42</answer>", 0, "2 <answer>");
    FMT("<think>r</think><answer>1</answer><answer>42</answer>", 0, "2 <answer>");
    FMT("<think>r</think>", 0, "0 <answer>");
    FMT("<think>r", 0, "0 </think>");
    FMT("</think><think>r<answer>42</answer>", 0, "</think> before <think>");
    FMT("<think>  </think><answer>42</answer>", 0, "empty reasoning");
    FMT("<think>r</think><answer> </answer>", 0, "empty answer");
    FMT("<think>r</think></answer>42<answer>", 0, "</answer> before <answer>");
    FMT("", 0, "0 <think>");
    CHECK(rewardset_option(&rs, "format.mode=lenient", &err) == 0);
    FMT("hi <think>r</think>so<answer>42</answer>", 1, "ok");
    FMT("<think>r</think><answer>42</answer> more", 0, "text after");
    CHECK(rewardset_option(&rs, "format.mode=strict", &err) == 0);
    CHECK(rewardset_option(&rs, "format.think_open_in_prompt=1", &err) == 0);
    FMT("reasoning\n</think>\n<answer>42</answer>", 1, "ok");
    FMT("<think>reasoning</think><answer>42</answer>", 0, "the prompt opens it");
    CHECK(rewardset_option(&rs, "format.think_open_in_prompt=0", &err) == 0);
    CHECK(rewardset_option(&rs, "format.answer=boxed", &err) == 0);
    FMT("<think>r</think>The answer is $\\boxed{\\frac{1}{2}}$.", 1, "ok");
    FMT("<think>r</think>\\[\\boxed{7}\\]", 1, "ok");
    FMT("<think>r</think>\\boxed{1} or \\boxed{2}", 0, "2 \\boxed{}");
    FMT("<think>r</think>\\boxed{1} and more", 0, "text after \\boxed{}");
    FMT("<think>r</think>\\boxed{1", 0, "unbalanced");
    FMT("<think>r</think>\\boxed{}", 0, "empty \\boxed{}");
    FMT("<think>r</think>nothing", 0, "no \\boxed{}");
    FMT("<think>r</think><answer>\\boxed{1}</answer>", 0, "<answer> tag where");
    CHECK(rewardset_option(&rs, "format.answer=either", &err) == 0);
    FMT("<think>r</think><answer>1</answer>", 1, "ok");
    FMT("<think>r</think>\\boxed{1}", 1, "ok");
    CHECK(rewardset_option(&rs, "format.answer=tag", &err) == 0);
    CHECK(rewardset_option(&rs, "format.think_tag=reasoning", &err) == 0);
    CHECK(rewardset_option(&rs, "format.answer_tag=final", &err) == 0);
    FMT("<reasoning>r</reasoning><final>1</final>", 1, "ok");
    FMT("<think>r</think><answer>1</answer>", 0, "0 <reasoning>");
    CHECK(rewardset_option(&rs, "format.think_tag=<bad>", &err) == -1);
    CHECK(rewardset_option(&rs, "format.mode=sloppy", &err) == -1);
    rewardset_free(&rs);
}

static void test_language(void) {
    RewardSet rs;
    Err err = {{0}};
    char r[REWARD_REASON_MAX];
    CHECK(rewardset_parse(&rs, "language", &err) == 0);
    CHECK_NEAR(run1(&rs, NULL, "<think>we add two numbers</think><answer>5</answer>", r), 1.0, 1e-12);
    /* 4 English words + 4 Han characters = 8 words, half English */
    CHECK_NEAR(run1(&rs, NULL, "<think>we add two numbers 我们相加</think><answer>中文</answer>", r), 0.5, 1e-12);
    CHECK_STREQ(r, "4/8 words en");
    CHECK_NEAR(run1(&rs, NULL, "<think>1 + 2 = 3 !</think>", r), 0.0, 1e-12);
    CHECK_STREQ(r, "no words in the reasoning");
    CHECK_NEAR(run1(&rs, NULL, "<think>café naïve Straße</think>", r), 1.0, 1e-12); /* Latin letters with accents */
    CHECK_NEAR(run1(&rs, NULL, "<think>привет world</think>", r), 0.5, 1e-12);     /* Cyrillic is not English */
    CHECK_NEAR(run1(&rs, NULL, "no think tags here", r), 1.0, 1e-12);
    CHECK(strstr(r, "whole completion") != NULL);
    CHECK_NEAR(run1(&rs, NULL, "<think>bad \xff\xfe bytes</think>", r), 1.0, 1e-12);
    CHECK(rewardset_option(&rs, "language.lang=zh", &err) == 0);
    CHECK_NEAR(run1(&rs, NULL, "<think>我们把两个数相加 then check</think>", r), 8.0 / 10.0, 1e-12);
    CHECK_STREQ(r, "8/10 words zh");
    CHECK_NEAR(run1(&rs, NULL, "<think>ひらがな</think>", r), 0.0, 1e-12); /* kana: CJK words, not Chinese */
    CHECK(rewardset_option(&rs, "language.think_open_in_prompt=1", &err) == 0);
    CHECK_NEAR(run1(&rs, NULL, "中文推理</think>English answer", r), 1.0, 1e-12);
    CHECK(rewardset_option(&rs, "language.lang=fr", &err) == -1);
    rewardset_free(&rs);
}

static void test_length(void) {
    RewardSet rs;
    Err err = {{0}};
    char r[REWARD_REASON_MAX];
    CHECK(rewardset_parse(&rs, "length", &err) == 0);
    CHECK(rewardset_option(&rs, "length.max_len=100", &err) == 0);
    CHECK(rewardset_option(&rs, "length.cache=20", &err) == 0);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 50}", "x", r), 0.0, 1e-12);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 80}", "x", r), 0.0, 1e-12);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 90}", "x", r), -0.5, 1e-12);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 100}", "x", r), -1.0, 1e-12);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 101}", "x", r), -1.0, 1e-12);
    CHECK(strstr(r, "tokens > max 100") != NULL);
    /* no token count: bytes */
    char s[96];
    memset(s, 'a', 85);
    s[85] = 0;
    CHECK_NEAR(run1(&rs, "{}", s, r), -0.25, 1e-12);
    CHECK(strstr(r, "bytes") != NULL);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 10, \"truncated\": true}", "x", r), -1.0, 1e-12);
    CHECK_STREQ(r, "truncated");
    CHECK(rewardset_option(&rs, "length.truncated_score=0", &err) == 0);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 10, \"truncated\": true}", "x", r), 0.0, 1e-12);
    CHECK(rewardset_option(&rs, "length.penalize_truncated=0", &err) == 0);
    CHECK_NEAR(run1(&rs, "{\"completion_tokens\": 90, \"truncated\": true}", "x", r), -0.5, 1e-12);
    CHECK(rewardset_option(&rs, "length.length_field=n", &err) == 0);
    CHECK_NEAR(run1(&rs, "{\"n\": 95}", "x", r), -0.75, 1e-12);
    rewardset_free(&rs);
}

static void test_registry(void) {
    RewardSet rs;
    Err err = {{0}};
    CHECK(rewardset_parse(&rs, "nope", &err) == -1);
    CHECK(strstr(err.msg, "unknown reward 'nope' (known: code, countdown, external") != NULL);
    CHECK(rewardset_parse(&rs, "math:x", &err) == -1);
    CHECK(rewardset_parse(&rs, "math,math", &err) == -1);
    CHECK(rewardset_parse(&rs, "", &err) == -1);
    CHECK(rewardset_parse(&rs, "math:2,format:0.5,length", &err) == 0);
    CHECK(rs.n == 3 && rs.weight[0] == 2 && rs.weight[1] == 0.5 && rs.weight[2] == 1);
    CHECK(rewardset_option(&rs, "mode=lenient", &err) == 0);       /* applies to format */
    CHECK(rewardset_option(&rs, "nosuch=1", &err) == -1);
    CHECK(rewardset_option(&rs, "countdown.score=1", &err) == -1); /* not in the set */
    CHECK(strstr(err.msg, "not in the set") != NULL);
    CHECK(rewardset_option(&rs, "noequals", &err) == -1);
    json_t *rec = json_pack("{s:s}", "answer", "4");
    const char *c = "<think>2+2</think><answer>4</answer>";
    RewardInput in = {rec, c, strlen(c)};
    RewardScore s[REWARDSET_MAX];
    double total;
    CHECK(rewardset_score(&rs, &in, &total, s, &err) == 0);
    CHECK_NEAR(total, 2 * 1 + 0.5 * 1 + 0, 1e-12);
    json_decref(rec);
    rewardset_free(&rs);
}

static void test_cli(const char *argv0) {
    /* build/tests/test_x -> build/r1c */
    char r1c[512];
    snprintf(r1c, sizeof r1c, "%s", argv0);
    char *slash = strrchr(r1c, '/');
    if (!slash) { SKIP("CLI test: cannot locate r1c from %s", argv0); return; }
    *slash = 0;
    slash = strrchr(r1c, '/');
    if (!slash) { SKIP("CLI test: cannot locate r1c from %s", argv0); return; }
    strcpy(slash, "/r1c");
    if (access(r1c, X_OK) != 0) { SKIP("CLI test: %s not built", r1c); return; }
    char dir[] = "/tmp/r1c-rew-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], out[256], errp[256], cmd[2048];
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(errp, sizeof errp, "%s/err.txt", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"completion\": \"<think>x</think><answer>\\\\frac12</answer>\", \"answer\": \"0.5\"}\n");
    fprintf(f, "\n{\"text\": \"\\\\boxed{3}\", \"gold\": \"4\"}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s reward --reward math --data %s --out %s 2>%s", r1c, path, out, errp);
    int rc = system(cmd);
    CHECK(rc != 0); /* line 3 lacks 'completion' */
    char *buf;
    size_t len;
    Err err = {{0}};
    CHECK(file_read_all(errp, &buf, &len, 0, &err) == 0);
    char want[300];
    snprintf(want, sizeof want, "%s:3: field 'completion' is missing", path);
    CHECKF(strstr(buf, want) != NULL, "stderr: %s", buf);
    free(buf);
    snprintf(cmd, sizeof cmd,
             "%s reward --reward math,format:0.5 --data %s --out %s --completion-field text --answer-field gold "
             "2>%s; true",
             r1c, path, out, errp);
    CHECK(system(cmd) == 0);
    f = fopen(path, "w");
    fprintf(f, "{\"text\": \"<think>x</think><answer>\\\\frac12</answer>\", \"gold\": \"0.5\"}\n");
    fprintf(f, "{\"text\": \"\\\\boxed{3}\", \"gold\": \"4\"}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s reward --reward math,format:0.5 --data %s --out %s --completion-field text --answer-field gold 2>%s",
             r1c, path, out, errp);
    CHECK(system(cmd) == 0);
    CHECK(file_read_all(out, &buf, &len, 0, &err) == 0);
    CHECKF(!strncmp(buf, "{\"score\":1.5,\"rewards\":{\"math\":{\"score\":1.0,\"reason\":\"correct:", 60), "%s", buf);
    CHECKF(strstr(buf, "\n{\"score\":0.0,\"rewards\":{\"math\":{\"score\":0.0,\"reason\":\"wrong: '3' vs gold '4'") != NULL,
           "%s", buf);
    free(buf);
    CHECK(file_read_all(errp, &buf, &len, 0, &err) == 0);
    CHECKF(strstr(buf, "2 completions scored") && strstr(buf, "math       n=2 mean=0.5000"), "%s", buf);
    free(buf);
    f = fopen(path, "w");
    fprintf(f, "{\"completion\": \"x\"}\n{\"completion\": \"y\", }\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s reward --reward format --data %s --out %s 2>%s", r1c, path, out, errp);
    CHECK(system(cmd) != 0);
    CHECK(file_read_all(errp, &buf, &len, 0, &err) == 0);
    snprintf(want, sizeof want, "%s:2:", path);
    CHECKF(strstr(buf, want) != NULL, "stderr: %s", buf);
    free(buf);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv) {
    (void)argc;
    test_format();
    test_language();
    test_length();
    test_registry();
    test_cli(argv[0]);
    return check_summary("test_reward_rules");
}
