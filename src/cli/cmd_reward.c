/* r1c reward: scores completions from a JSONL file with a RewardSet and
 * writes one JSON line per input line, in order; statistics per reward go
 * to stderr. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/commands.h"
#include "reward/code.h"
#include "reward/reward.h"

#define MAX_OPTS 64
#define MAX_LINE (64u << 20)
#define BATCH 64

static void reward_usage(FILE *fp) {
    fprintf(fp,
            "usage: r1c reward --reward NAME[:W][,NAME[:W]...] --data FILE.jsonl [options]\n\n"
            "Scores each line's completion; writes {\"score\": x, \"reason\": \"...\"} per line (one reward)\n"
            "or {\"score\": total, \"rewards\": {NAME: {\"score\", \"reason\"}, ...}} (several).\n\n"
            "  --reward SPEC          rewards and weights, e.g. math,format:0.2\n"
            "  --data FILE            JSONL input ('-' for stdin)\n"
            "  --out FILE             output (default stdout)\n"
            "  --opt [NAME.]KEY=VAL   reward option, repeatable (e.g. format.mode=lenient)\n"
            "  --completion-field F   completion field (default completion)\n"
            "  --answer-field F       gold answer field for math (default answer)\n"
            "  --numbers-field F      countdown numbers field (default numbers)\n"
            "  --target-field F       countdown target field (default target)\n\n"
            "rewards:\n");
    for (size_t i = 0; i < reward_kind_count(); i++)
        fprintf(fp, "  %-10s %s\n", reward_kind_at(i)->name, reward_kind_at(i)->summary);
    fprintf(fp, "\nOptions and reasons: docs/rewards.md\n");
}

typedef struct Stats {
    double sum, min, max;
    long n, positive;
} Stats;

static void stats_add(Stats *s, double x) {
    if (s->n == 0) s->min = s->max = x;
    if (x < s->min) s->min = x;
    if (x > s->max) s->max = x;
    s->sum += x;
    s->n++;
    s->positive += x > 0;
}

static void stats_print(const char *name, const Stats *s) {
    if (s->n == 0) {
        fprintf(stderr, "  %-10s n=0\n", name);
        return;
    }
    fprintf(stderr, "  %-10s n=%ld mean=%.4f min=%.4f max=%.4f positive=%.1f%%\n", name, s->n, s->sum / (double)s->n,
            s->min, s->max, 100.0 * (double)s->positive / (double)s->n);
}

/* A field-renaming flag becomes an option on whichever rewards have it. */
static int apply_field(RewardSet *rs, const char *key, const char *value, Err *err) {
    char opt[256];
    snprintf(opt, sizeof opt, "%s=%s", key, value);
    Err tmp;
    if (rewardset_option(rs, opt, &tmp) < 0 && strstr(tmp.msg, "no reward in the set has it") == NULL) {
        *err = tmp;
        return -1;
    }
    return 0;
}

int cmd_reward(int argc, char **argv) {
    const char *spec = NULL, *data = NULL, *out_path = NULL;
    const char *completion_field = "completion", *answer_field = NULL, *numbers_field = NULL, *target_field = NULL;
    const char *opts[MAX_OPTS];
    int nopts = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { reward_usage(stdout); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "r1c reward: %s needs a value (r1c reward --help)\n", a); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--reward")) spec = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--opt")) {
            if (nopts >= MAX_OPTS) { fprintf(stderr, "r1c reward: too many --opt\n"); return 2; }
            opts[nopts++] = v;
        } else if (!strcmp(a, "--completion-field")) completion_field = v;
        else if (!strcmp(a, "--answer-field")) answer_field = v;
        else if (!strcmp(a, "--numbers-field")) numbers_field = v;
        else if (!strcmp(a, "--target-field")) target_field = v;
        else { fprintf(stderr, "r1c reward: unknown option '%s' (r1c reward --help)\n", a); return 2; }
    }
    if (!spec || !data) { fprintf(stderr, "r1c reward: --reward and --data are required (r1c reward --help)\n"); return 2; }
    Err err = {{0}};
    RewardSet rs;
    if (rewardset_parse(&rs, spec, &err) < 0) { fprintf(stderr, "r1c reward: %s\n", err.msg); return 2; }
    if ((answer_field && apply_field(&rs, "answer_field", answer_field, &err) < 0) ||
        (numbers_field && apply_field(&rs, "numbers_field", numbers_field, &err) < 0) ||
        (target_field && apply_field(&rs, "target_field", target_field, &err) < 0)) {
        fprintf(stderr, "r1c reward: %s\n", err.msg);
        rewardset_free(&rs);
        return 2;
    }
    for (int i = 0; i < nopts; i++)
        if (rewardset_option(&rs, opts[i], &err) < 0) {
            fprintf(stderr, "r1c reward: %s\n", err.msg);
            rewardset_free(&rs);
            return 2;
        }
    FILE *in = !strcmp(data, "-") ? stdin : fopen(data, "rb");
    if (!in) { perror(data); rewardset_free(&rs); return 1; }
    FILE *out = out_path ? fopen(out_path, "wb") : stdout;
    if (!out) { perror(out_path); if (in != stdin) fclose(in); rewardset_free(&rs); return 1; }

    for (int k = 0; k < rs.n; k++)
        if (!strcmp(rs.kind[k]->name, "code")) fprintf(stderr, "r1c reward: code sandbox: %s\n", code_reward_protections(rs.state[k]));

    Stats stats[REWARDSET_MAX + 1];
    memset(stats, 0, sizeof stats);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0, scored = 0;
    int rc = 0, nb = 0, eof = 0;
    /* lines are scored in batches, so rewards that run programs (code) run
     * a batch in parallel; output stays in input order */
    json_t *batch[BATCH];
    long batch_line[BATCH];
    while (!rc && !eof) {
        n = getline(&line, &cap, in);
        if (n < 0) eof = 1;
        else {
            lineno++;
            if ((size_t)n > MAX_LINE) { fprintf(stderr, "r1c reward: %s:%ld: line longer than %u bytes\n", data, lineno, MAX_LINE); rc = 1; break; }
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
            int blank = 1;
            for (ssize_t k = 0; k < n; k++)
                if (line[k] != ' ' && line[k] != '\t') { blank = 0; break; }
            if (blank) continue;
            char where[600];
            snprintf(where, sizeof where, "%s:%ld", data, lineno);
            json_t *rec = json_load_buf(line, (size_t)n, where, &err);
            if (!rec) { fprintf(stderr, "r1c reward: %s\n", err.msg); rc = 1; break; }
            json_t *c = json_is_object(rec) ? json_object_get(rec, completion_field) : NULL;
            if (!json_is_object(rec)) fprintf(stderr, "r1c reward: %s: expected a JSON object\n", where), rc = 1;
            else if (!json_is_string(c))
                fprintf(stderr, "r1c reward: %s: field '%s' %s\n", where, completion_field, c ? "is not a string" : "is missing"), rc = 1;
            if (rc) { json_decref(rec); break; }
            batch[nb] = rec;
            batch_line[nb++] = lineno;
            if (nb < BATCH) continue;
        }
        if (nb == 0) continue;
        RewardInput ri[BATCH];
        double total[BATCH];
        RewardScore each[BATCH * REWARDSET_MAX];
        for (int b = 0; b < nb; b++) {
            json_t *c = json_object_get(batch[b], completion_field);
            ri[b] = (RewardInput){.record = batch[b], .completion = json_string_value(c), .completion_len = json_string_length(c)};
        }
        if (rewardset_score_batch(&rs, ri, nb, total, each, &err) < 0) {
            fprintf(stderr, "r1c reward: %s:%ld-%ld: %s\n", data, batch_line[0], batch_line[nb - 1], err.msg);
            rc = 1;
        }
        for (int b = 0; b < nb && !rc; b++) {
            const RewardScore *e = each + (size_t)b * rs.n;
            json_t *o = json_object();
            json_object_set_new(o, "score", json_real(total[b]));
            if (rs.n == 1) json_object_set_new(o, "reason", json_string(e[0].reason));
            else {
                json_t *per = json_object();
                for (int k = 0; k < rs.n; k++) {
                    json_t *r = json_object();
                    json_object_set_new(r, "score", json_real(e[k].score));
                    json_object_set_new(r, "reason", json_string(e[k].reason));
                    json_object_set_new(per, rs.kind[k]->name, r);
                }
                json_object_set_new(o, "rewards", per);
            }
            char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
            json_decref(o);
            if (!s) s = strdup("{\"score\": 0, \"reason\": \"unencodable reason\"}");
            fprintf(out, "%s\n", s);
            free(s);
            for (int k = 0; k < rs.n; k++) stats_add(&stats[k], e[k].score);
            stats_add(&stats[rs.n], total[b]);
            scored++;
        }
        for (int b = 0; b < nb; b++) json_decref(batch[b]);
        nb = 0;
    }
    for (int b = 0; b < nb; b++) json_decref(batch[b]);
    free(line);
    if (in != stdin) fclose(in);
    if (out != stdout && fclose(out) != 0) { perror(out_path); rc = 1; }
    else if (out == stdout) fflush(stdout);
    fprintf(stderr, "r1c reward: %ld completions scored\n", scored);
    for (int k = 0; k < rs.n; k++) stats_print(rs.kind[k]->name, &stats[k]);
    if (rs.n > 1) stats_print("total", &stats[rs.n]);
    rewardset_free(&rs);
    return rc;
}
