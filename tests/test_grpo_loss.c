/* GRPO losses and advantages against the PyTorch reference in
 * tests/fixtures/grpo/cases.json (tests/ref/make_grpo_fixtures.py), and
 * micro-batch splits adding up to the full batch. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "check.h"
#include "train/grpo_loss.h"

static float *floats(json_t *a, int *n) {
    *n = (int)json_array_size(a);
    float *f = malloc(*n * sizeof(float));
    for (int i = 0; i < *n; i++) f[i] = (float)json_number_value(json_array_get(a, i));
    return f;
}

int main(void) {
    Err err = {{0}};
    json_t *root = json_load_path("tests/fixtures/grpo/cases.json", &err);
    if (!root) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int S = (int)json_integer_value(json_object_get(root, "S")), G = (int)json_integer_value(json_object_get(root, "G")),
        T = (int)json_integer_value(json_object_get(root, "T")), n;
    float *logp = floats(json_object_get(root, "logp"), &n), *old = floats(json_object_get(root, "old"), &n),
          *ref = floats(json_object_get(root, "ref"), &n), *mask = floats(json_object_get(root, "mask"), &n),
          *rew = floats(json_object_get(root, "rewards"), &n);
    float *adv = malloc(S * sizeof(float)), *dl = malloc(S * T * sizeof(float)), *dl2 = malloc(S * T * sizeof(float));
    double tokens = 0;
    for (int i = 0; i < S * T; i++) tokens += mask[i];
    size_t ci;
    json_t *c;
    double worst_loss = 0, worst_grad = 0;
    json_array_foreach(json_object_get(root, "cases"), ci, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *kl = json_string_value(json_object_get(c, "kl"));
        const char *scale = json_string_value(json_object_get(c, "scale"));
        GrpoLossConfig cfg = {
            .type = !strcmp(type, "grpo") ? GRPO_LOSS_GRPO : !strcmp(type, "dapo") ? GRPO_LOSS_DAPO : GRPO_LOSS_DR_GRPO,
            .eps_low = (float)json_number_value(json_object_get(c, "eps_low")),
            .eps_high = (float)json_number_value(json_object_get(c, "eps_high")),
            .beta = (float)json_number_value(json_object_get(c, "beta")),
            .kl = !strcmp(kl, "k1") ? KL_ESTIMATOR_K1 : !strcmp(kl, "k2") ? KL_ESTIMATOR_K2 : KL_ESTIMATOR_K3,
            .max_completion_len = (int)json_integer_value(json_object_get(c, "max_len")),
        };
        AdvScale as = !strcmp(scale, "group") ? ADV_SCALE_GROUP : !strcmp(scale, "batch") ? ADV_SCALE_BATCH : ADV_SCALE_NONE;
        grpo_advantages(rew, S / G, G, as, adv);
        float *eadv = floats(json_object_get(c, "adv"), &n);
        for (int i = 0; i < S; i++) CHECK_NEAR(adv[i], eadv[i], 1e-5 * (1 + fabs(eadv[i])));
        int mu1 = json_is_true(json_object_get(c, "mu1"));
        const float *o = mu1 ? logp : old;
        GrpoLossStats st = {0};
        double loss = grpo_loss(&cfg, S, T, logp, o, ref, mask, adv, S, tokens, dl, &st);
        double el = json_number_value(json_object_get(c, "loss"));
        double rl = fabs(loss - el) / (fabs(el) + 1e-6);
        if (rl > worst_loss) worst_loss = rl;
        CHECKF(rl <= 1e-5, "case %zu (%s %s beta %g %s mu1 %d): loss %.9g vs %.9g", ci, type, kl, cfg.beta, scale, mu1,
               loss, el);
        float *eg = floats(json_object_get(c, "grad"), &n);
        double num = 0, den = 0;
        for (int i = 0; i < S * T; i++) {
            num += (dl[i] - eg[i]) * (double)(dl[i] - eg[i]);
            den += (double)eg[i] * eg[i];
        }
        double rg = sqrt(num) / (sqrt(den) + 1e-12);
        if (rg > worst_grad) worst_grad = rg;
        CHECKF(rg <= 1e-5, "case %zu (%s %s): grad rel err %g", ci, type, kl, rg);
        /* two micro-batches (sequences 0-2 and 3-5) with global normalisers */
        double l_a = grpo_loss(&cfg, 3, T, logp, o, ref, mask, adv, S, tokens, dl2, NULL);
        double l_b = grpo_loss(&cfg, 3, T, logp + 3 * T, o + 3 * T, ref + 3 * T, mask + 3 * T, adv + 3, S, tokens,
                               dl2 + 3 * T, NULL);
        CHECK_NEAR(l_a + l_b, loss, 1e-9);
        CHECK(!memcmp(dl, dl2, S * T * sizeof(float)));
        if (cfg.beta == 0) CHECK(st.kl_sum == 0);
        if (mu1) CHECK(st.clip_low == 0 && st.clip_high == 0);
        free(eadv);
        free(eg);
    }
    printf("%zu cases: worst loss rel err %.2e, worst grad rel err %.2e\n", json_array_size(json_object_get(root, "cases")),
           worst_loss, worst_grad);
    /* hand-computed: one group (1, 0): mean .5, std .7071 -> +-0.70701 */
    float r2[2] = {1, 0}, a2[2];
    grpo_advantages(r2, 1, 2, ADV_SCALE_GROUP, a2);
    CHECK_NEAR(a2[0], 0.5 / (sqrt(0.5) + 1e-4), 1e-6);
    CHECK_NEAR(a2[1], -0.5 / (sqrt(0.5) + 1e-4), 1e-6);
    /* zero-variance group: zero advantages */
    float r3[3] = {1, 1, 1}, a3[3];
    grpo_advantages(r3, 1, 3, ADV_SCALE_GROUP, a3);
    CHECK(a3[0] == 0 && a3[1] == 0 && a3[2] == 0);
    free(logp), free(old), free(ref), free(mask), free(rew), free(adv), free(dl), free(dl2);
    json_decref(root);
    return check_summary("test_grpo_loss");
}
