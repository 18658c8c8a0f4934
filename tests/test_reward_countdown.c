/* Countdown reward: r1c's own rules, and TinyZero parity on a fixture that
 * a Python re-implementation of TinyZero's scorer wrote
 * (tests/ref/countdown_tinyzero.py -> fixtures/rewards/countdown_tinyzero.jsonl). */
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "check.h"
#include "reward/reward.h"

static RewardSet rs;

static double score(const char *completion, const char *numbers_json, const char *target_json, char *reason) {
    char buf[512];
    snprintf(buf, sizeof buf, "{\"numbers\": %s, \"target\": %s}", numbers_json, target_json);
    json_t *rec = json_loads(buf, 0, NULL);
    RewardInput in = {rec, completion, strlen(completion)};
    RewardScore s[1];
    double total = -99;
    Err err = {{0}};
    CHECK(rewardset_score(&rs, &in, &total, s, &err) == 0);
    if (reason) strcpy(reason, s[0].reason);
    json_decref(rec);
    return total;
}

#define EXPECT(comp, nums, tgt, want, reason_part)                                                         \
    do {                                                                                                   \
        char r_[REWARD_REASON_MAX];                                                                        \
        double got_ = score(comp, nums, tgt, r_);                                                          \
        CHECKF(got_ == (want), "'%s' nums %s target %s: got %g (%s), want %g", comp, nums, tgt, got_, r_, \
               (double)(want));                                                                            \
        CHECKF(strstr(r_, reason_part) != NULL, "reason '%s' lacks '%s'", r_, reason_part);               \
    } while (0)

static void test_rules(void) {
    Err err = {{0}};
    CHECK(rewardset_parse(&rs, "countdown", &err) == 0);
    const char *N = "[44, 19, 35]", *T = "98";
    EXPECT("<think>x</think><answer>44 + 19 + 35</answer>", N, T, 1.0, "correct");
    EXPECT("<answer>(44+19)+35</answer>", N, T, 1.0, "correct");
    EXPECT("<answer>35 + 19 + 44</answer>", N, "\"98\"", 1.0, "correct");        /* target as a string */
    EXPECT("<answer>35 + 19 + 44</answer>", "\"44,19,35\"", T, 1.0, "correct");  /* numbers as "a,b,c" */
    EXPECT("<answer>\n44 + 19 + 35\n</answer>", N, T, 1.0, "correct");          /* may span lines */
    EXPECT("Assistant: <answer>1</answer> <answer>44+19+35</answer>", N, T, 1.0, "correct"); /* the last one */
    EXPECT("<answer>44 + 19 + 35</answer>", N, "99", 0.1, "wrong: = 98, target 99");
    EXPECT("<answer>44 + 19 + 35 + 35</answer>", N, T, 0.1, "numbers used [19,35,35,44] != given [19,35,44]");
    EXPECT("<answer>44 + 19</answer>", N, "63", 0.1, "!= given");
    EXPECT("<answer>44 + 19 + 36</answer>", N, T, 0.1, "!= given");
    EXPECT("<answer>44 + 19 + 35 = 98</answer>", N, T, 0.1, "!= given");
    EXPECT("<answer>44 + 19 + x35</answer>", N, T, 0.1, "illegal character 'x'");
    EXPECT("<answer>44 + 19 + 35.0</answer>", N, T, 0.1, "!= given");
    EXPECT("<answer>[44 + 19] + 35</answer>", N, T, 0.1, "illegal character '['");
    EXPECT("<answer>44 ** 1 + 19 + 35</answer>", "[44, 1, 19, 35]", T, 0.1, "'**' is not allowed");
    EXPECT("<answer>44 // 1 + 19 + 35</answer>", "[44, 1, 19, 35]", T, 0.1, "'//' is not allowed");
    EXPECT("<answer>(44 + 19 + 35</answer>", N, T, 0.1, "missing ')'");
    EXPECT("<answer>44 + 19 + 35)</answer>", N, T, 0.1, "unexpected text");
    EXPECT("<answer>(44)(19)+35</answer>", N, T, 0.1, "unexpected text");
    EXPECT("<answer>44 + 19 * 35 / (35 - 35)</answer>", "[44,19,35,35,35]", T, 0.1, "division by zero");
    EXPECT("<answer>44 / (19 - 19)</answer>", "[44,19,19]", T, 0.1, "division by zero");
    EXPECT("<answer></answer>", N, T, 0.1, "!= given");
    EXPECT("no tags at all", N, T, 0.0, "no <answer>");
    EXPECT("<answer>44 + 19 + 35", N, T, 0.0, "no <answer>");
    /* non-integer intermediates: allowed by default (as TinyZero), refused on request */
    EXPECT("<answer>7 / 3 * 2 * 3</answer>", "[7, 3, 2, 3]", "14", 1.0, "correct");
    EXPECT("<answer>(6 / 4) * 4 * 3</answer>", "[6, 4, 4, 3]", "18", 1.0, "correct");
    EXPECT("<answer>10 / 3 - 3</answer>", "[10, 3, 3]", "1", 0.1, "wrong: = 1/3");
    CHECK(rewardset_option(&rs, "countdown.integer_only=1", &err) == 0);
    EXPECT("<answer>7 / 3 * 2 * 3</answer>", "[7, 3, 2, 3]", "14", 0.1, "non-integer intermediate result 7/3");
    EXPECT("<answer>7 * 2 * 3 / 3</answer>", "[7, 3, 2, 3]", "14", 1.0, "correct");
    CHECK(rewardset_option(&rs, "countdown.integer_only=0", &err) == 0);
    /* exact arithmetic: no float rounding */
    EXPECT("<answer>1 / 3 * 3</answer>", "[1, 3, 3]", "1", 1.0, "correct");
    EXPECT("<answer>-1 - 2 - 3</answer>", "[1, 2, 3]", "-6", 1.0, "correct");
    /* bounded: deep nesting, long equations, huge numbers */
    char deep[400];
    int k = sprintf(deep, "<answer>");
    for (int i = 0; i < 100; i++) deep[k++] = '(';
    k += sprintf(deep + k, "1");
    for (int i = 0; i < 100; i++) deep[k++] = ')';
    sprintf(deep + k, "</answer>");
    EXPECT(deep, "[1]", "1", 0.1, "nested too deep");
    EXPECT("<answer>99999999999999999999999 + 1</answer>", "[1]", "1", 0.1, "too many or too long numbers");
    /* options: scores and fields */
    CHECK(rewardset_option(&rs, "countdown.format_score=0", &err) == 0);
    EXPECT("<answer>44 + 19</answer>", N, T, 0.0, "!= given");
    CHECK(rewardset_option(&rs, "format_score=0.1", &err) == 0);
    CHECK(rewardset_option(&rs, "countdown.target_field=output", &err) == 0);
    EXPECT("<answer>44 + 19 + 35</answer>", N, T, 0.0, "record field 'output' is not a number");
    rewardset_free(&rs);
}

static void test_tinyzero_parity(void) {
    Err err = {{0}};
    char *buf;
    size_t len;
    if (file_read_all("tests/fixtures/rewards/countdown_tinyzero.jsonl", &buf, &len, 0, &err) < 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    RewardSet tz, def;
    CHECK(rewardset_parse(&tz, "countdown", &err) == 0);
    CHECK(rewardset_option(&tz, "countdown.compat=tinyzero", &err) == 0);
    CHECK(rewardset_parse(&def, "countdown", &err) == 0);
    int n = 0, same = 0, differ_default = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);
        CHECK(j != NULL);
        if (!j) continue;
        json_t *c = json_object_get(j, "completion");
        double want = json_number_value(json_object_get(j, "tinyzero_score"));
        RewardInput in = {j, json_string_value(c), json_string_length(c)};
        RewardScore s[1];
        double got = -1, got_def = -1;
        CHECK(rewardset_score(&tz, &in, &got, s, &err) == 0);
        CHECKF(got == want, "TinyZero parity: '%s': got %g (%s), TinyZero %g", in.completion, got, s[0].reason, want);
        same += got == want;
        CHECK(rewardset_score(&def, &in, &got_def, s, &err) == 0);
        differ_default += got_def != want;
        n++;
        json_decref(j);
    }
    printf("countdown TinyZero parity: %d/%d equal in compat=tinyzero; default mode differs on %d (documented)\n", same,
           n, differ_default);
    CHECK(n >= 60);
    rewardset_free(&tz);
    rewardset_free(&def);
    free(buf);
}

int main(void) {
    test_rules();
    test_tinyzero_parity();
    return check_summary("test_reward_countdown");
}
