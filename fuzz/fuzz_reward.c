/* libFuzzer target for every reward: the first byte picks the reward (and
 * some options), the rest is split at the first NUL into a gold answer and
 * the completion. The external reward is fuzzed through its response-line
 * parser (spawning a process per input would fuzz /bin/sh, not r1c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reward/external.h"
#include "reward/math.h"
#include "reward/reward.h"

static RewardSet sets[8];
static int ready;

static void setup(void) {
    Err err;
    const char *specs[8] = {"math", "format", "countdown", "language", "length", "math", "format", "countdown"};
    for (int i = 0; i < 8; i++)
        if (rewardset_parse(&sets[i], specs[i], &err) < 0) abort();
    rewardset_option(&sets[5], "math.percent=strip", &err);
    rewardset_option(&sets[5], "math.tolerance=1e-6", &err);
    rewardset_option(&sets[6], "format.answer=either", &err);
    rewardset_option(&sets[6], "format.think_open_in_prompt=1", &err);
    rewardset_option(&sets[7], "countdown.compat=tinyzero", &err);
    ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) setup();
    if (size < 1) return 0;
    int pick = data[0] % 10;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    const char *nul = memchr(rest, 0, n);
    size_t glen = nul ? (size_t)(nul - rest) : 0;
    const char *comp = nul ? nul + 1 : rest;
    size_t clen = nul ? n - glen - 1 : n;
    char *gold = strndup(rest, glen);
    if (pick == 8) {
        char why[256];
        MathOptions o;
        math_options_default(&o);
        math_equiv(gold, glen, comp, clen, &o, why, sizeof why);
        const char *a, *how;
        size_t al;
        math_extract(comp, clen, MATH_EXTRACT_DEFAULT, 64, &a, &al, &how);
    } else if (pick == 9) {
        double s;
        char reason[160], why[256];
        external_parse_response(comp, clen, &s, reason, sizeof reason, why, sizeof why);
    } else {
        json_t *rec = json_object();
        json_t *g = json_stringn(gold, glen);
        json_object_set_new(rec, "answer", g ? g : json_string("1"));
        json_object_set_new(rec, "numbers", json_pack("[i,i,i]", 3, 5, 7));
        json_object_set_new(rec, "target", json_integer(glen));
        json_object_set_new(rec, "completion_tokens", json_integer((json_int_t)clen * 3));
        RewardInput in = {rec, comp, clen};
        RewardScore sc[REWARDSET_MAX];
        double total;
        Err err;
        rewardset_score(&sets[pick], &in, &total, sc, &err);
        json_decref(rec);
    }
    free(gold);
    return 0;
}
