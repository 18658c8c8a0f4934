/* The registry of shipped rewards and the weighted RewardSet built from a
 * "name[:weight],..." spec. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward/reward.h"

extern const RewardKind reward_format_kind, reward_math_kind, reward_countdown_kind, reward_language_kind,
    reward_length_kind, reward_external_kind, reward_code_kind;

static const RewardKind *const KINDS[] = {
    &reward_code_kind,     &reward_countdown_kind, &reward_external_kind, &reward_format_kind,
    &reward_language_kind, &reward_length_kind,    &reward_math_kind,
};

size_t reward_kind_count(void) { return sizeof KINDS / sizeof *KINDS; }
const RewardKind *reward_kind_at(size_t i) { return i < reward_kind_count() ? KINDS[i] : NULL; }

const RewardKind *reward_find(const char *name) {
    for (size_t i = 0; i < reward_kind_count(); i++)
        if (!strcmp(KINDS[i]->name, name)) return KINDS[i];
    return NULL;
}

static void list_names(char *buf, size_t size) {
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < reward_kind_count() && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? ", " : "", KINDS[i]->name);
}

int rewardset_parse(RewardSet *rs, const char *spec, Err *err) {
    memset(rs, 0, sizeof *rs);
    if (!spec || !*spec) return err_set(err, "reward spec is empty (expected name[:weight][,name...])");
    if (strlen(spec) > 1024) return err_set(err, "reward spec too long");
    char buf[1025];
    strcpy(buf, spec);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ') item++;
        char *colon = strchr(item, ':');
        double w = 1.0;
        if (colon) {
            *colon = 0;
            char *end;
            w = strtod(colon + 1, &end);
            if (end == colon + 1 || *end || w != w) {
                rewardset_free(rs);
                return err_set(err, "reward '%s': bad weight '%s'", item, colon + 1);
            }
        }
        const RewardKind *k = reward_find(item);
        if (!k) {
            char names[256];
            list_names(names, sizeof names);
            rewardset_free(rs);
            return err_set(err, "unknown reward '%s' (known: %s)", item, names);
        }
        for (int i = 0; i < rs->n; i++)
            if (rs->kind[i] == k) {
                rewardset_free(rs);
                return err_set(err, "reward '%s' listed twice", item);
            }
        if (rs->n >= REWARDSET_MAX) {
            rewardset_free(rs);
            return err_set(err, "too many rewards (max %d)", REWARDSET_MAX);
        }
        void *st = k->create(err);
        if (!st) {
            rewardset_free(rs);
            return -1;
        }
        rs->kind[rs->n] = k;
        rs->state[rs->n] = st;
        rs->weight[rs->n] = w;
        rs->n++;
    }
    if (rs->n == 0) return err_set(err, "reward spec '%s' names no reward", spec);
    return 0;
}

int rewardset_option(RewardSet *rs, const char *opt, Err *err) {
    const char *eq = strchr(opt, '=');
    if (!eq) return err_set(err, "option '%s': expected [reward.]key=value", opt);
    char key[128];
    size_t kl = (size_t)(eq - opt);
    if (kl == 0 || kl >= sizeof key) return err_set(err, "option '%s': bad key", opt);
    memcpy(key, opt, kl);
    key[kl] = 0;
    const char *value = eq + 1;
    char *dot = strchr(key, '.');
    int applied = 0;
    for (int i = 0; i < rs->n; i++) {
        const char *k = key;
        if (dot) {
            size_t nl = (size_t)(dot - key);
            if (strlen(rs->kind[i]->name) != nl || strncmp(rs->kind[i]->name, key, nl)) continue;
            k = dot + 1;
        }
        int r = rs->kind[i]->set_option(rs->state[i], k, value, err);
        if (r < 0) return err_prefix(err, "%s", rs->kind[i]->name);
        if (r == 0) applied++;
    }
    if (!applied) {
        if (dot) {
            *dot = 0;
            if (!reward_find(key)) return err_set(err, "option '%s': no reward named '%s'", opt, key);
            for (int i = 0; i < rs->n; i++)
                if (!strcmp(rs->kind[i]->name, key)) return err_set(err, "option '%s': reward '%s' has no option '%s'", opt, key, dot + 1);
            return err_set(err, "option '%s': reward '%s' is not in the set", opt, key);
        }
        return err_set(err, "option '%s': no reward in the set has it", opt);
    }
    return 0;
}

int rewardset_score(RewardSet *rs, const RewardInput *in, double *total, RewardScore *each, Err *err) {
    RewardInput clipped = *in;
    if (!clipped.completion) { clipped.completion = ""; clipped.completion_len = 0; }
    if (clipped.completion_len > REWARD_MAX_COMPLETION) clipped.completion_len = REWARD_MAX_COMPLETION;
    double sum = 0;
    for (int i = 0; i < rs->n; i++) {
        each[i].score = 0;
        each[i].reason[0] = 0;
        if (rs->kind[i]->score(rs->state[i], &clipped, &each[i], err) < 0) return err_prefix(err, "%s", rs->kind[i]->name);
        sum += rs->weight[i] * each[i].score;
    }
    *total = sum;
    return 0;
}

int rewardset_score_batch(RewardSet *rs, const RewardInput *in, int n, double *totals, RewardScore *each, Err *err) {
    if (n <= 0) return 0;
    RewardInput *clipped = malloc((size_t)n * sizeof *clipped);
    RewardScore *one = malloc((size_t)n * sizeof *one);
    if (!clipped || !one) {
        free(clipped), free(one);
        return err_set(err, "out of memory scoring %d completions", n);
    }
    for (int i = 0; i < n; i++) {
        clipped[i] = in[i];
        if (!clipped[i].completion) clipped[i].completion = "", clipped[i].completion_len = 0;
        if (clipped[i].completion_len > REWARD_MAX_COMPLETION) clipped[i].completion_len = REWARD_MAX_COMPLETION;
        totals[i] = 0;
    }
    int rc = 0;
    for (int k = 0; k < rs->n && !rc; k++) {
        for (int i = 0; i < n; i++) one[i].score = 0, one[i].reason[0] = 0;
        if (rs->kind[k]->score_batch) rc = rs->kind[k]->score_batch(rs->state[k], clipped, n, one, err);
        else
            for (int i = 0; i < n && !rc; i++) rc = rs->kind[k]->score(rs->state[k], &clipped[i], &one[i], err);
        if (rc) {
            rc = err_prefix(err, "%s", rs->kind[k]->name);
            break;
        }
        for (int i = 0; i < n; i++) {
            each[(size_t)i * rs->n + k] = one[i];
            totals[i] += rs->weight[k] * one[i].score;
        }
    }
    free(clipped), free(one);
    return rc;
}

void rewardset_free(RewardSet *rs) {
    for (int i = 0; i < rs->n; i++) rs->kind[i]->destroy(rs->state[i]);
    rs->n = 0;
}
