/* SFT loss masking against the HF reference: the fixture's masked mean NLL
 * and its gradients (tests/fixtures/models, made by PyTorch) equal
 * sft_eval_loss and the gradient of one sft_train step over examples whose
 * target mask is the fixture's loss_mask. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/rng.h"
#include "check.h"
#include "model/model.h"
#include "train/sft.h"

#define FIX "tests/fixtures/models/qwen2"

int main(void) {
    Err err = {{0}};
    Model m;
    if (model_load(&m, FIX, backend_cpu(), &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    json_t *in = json_load_path(FIX "/input.json", &err);
    CHECK(in != NULL);
    json_t *ids = json_object_get(in, "input_ids"), *lm = json_object_get(in, "loss_mask");
    int B = (int)json_array_size(ids), T = (int)json_array_size(json_array_get(ids, 0));
    SftExample ex[4];
    for (int b = 0; b < B; b++) {
        ex[b].n = T;
        ex[b].prompt_len = 0;
        ex[b].ids = malloc(T * sizeof(int32_t));
        ex[b].mask = calloc(T, 1);
        for (int t = 0; t < T; t++) ex[b].ids[t] = (int32_t)json_integer_value(json_array_get(json_array_get(ids, b), t));
        /* loss_mask[t] = 1: the prediction of token t+1 counts */
        for (int t = 0; t + 1 < T; t++)
            ex[b].mask[t + 1] = (uint8_t)json_integer_value(json_array_get(json_array_get(lm, b), t));
    }
    StFile exp;
    CHECK(st_open(&exp, FIX "/expected.safetensors", &err) == 0);
    float want = *(const float *)st_find(&exp, "loss")->data;
    double loss;
    CHECK(sft_eval_loss(&m, ex, B, B, &loss, &err) == 0);
    CHECKF(fabs(loss - want) <= 1e-5, "masked loss %.7f vs HF %.7f", loss, (double)want);
    /* one step with lr 0 leaves the gradient of that loss in grad_mem */
    SftConfig sc = {.epochs = 1, .batch = B, .lr = {.lr = 0}, .grad_clip = 0, .seed = 1, .quiet = 1};
    SftResult res;
    CHECK(sft_train(&m, ex, B, &sc, &res, &err) == 0);
    CHECK(res.steps == 1);
    CHECKF(fabs(res.first_loss - want) <= 1e-5, "train loss %.7f vs %.7f", res.first_loss, (double)want);
    double worst = 0;
    for (int i = 0; i < m.n_params; i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", m.params[i].name);
        const StTensor *t = st_find(&exp, name);
        CHECK(t != NULL);
        if (!t) continue;
        const float *g = (const float *)t->data, *mine = m.grad_mem + m.params[i].offset;
        double num = 0, den = 0;
        for (size_t k = 0; k < m.params[i].numel; k++) num += (mine[k] - g[k]) * (double)(mine[k] - g[k]), den += (double)g[k] * g[k];
        double rel = sqrt(num) / (sqrt(den) + 1e-30);
        if (rel > worst) worst = rel;
    }
    CHECKF(worst <= 1e-3, "worst gradient relative error %g", worst);
    printf("masked SFT loss vs HF: %.2e; worst gradient rel err %.2e\n", fabs(loss - want), worst);
    /* the same targets given as prompt_len (no mask) where they are a suffix */
    SftExample s = {ex[0].ids, T, 5, NULL}, s2 = ex[0];
    s2.mask = calloc(T, 1);
    for (int t = 5; t < T; t++) s2.mask[t] = 1;
    double l1, l2;
    CHECK(sft_eval_loss(&m, &s, 1, 1, &l1, &err) == 0 && sft_eval_loss(&m, &s2, 1, 1, &l2, &err) == 0);
    CHECK(l1 == l2);
    free(s2.mask);
    st_close(&exp);
    /* packing: the same batch packed into rows of 24 tokens (first fit) gives
     * the unpacked batch's loss and gradients */
    enum { NE = 6 };
    SftExample pe[NE];
    const int lens[NE] = {9, 5, 13, 7, 11, 4};
    Rng rr;
    rng_seed(&rr, 5);
    for (int i = 0; i < NE; i++) {
        pe[i].n = lens[i];
        pe[i].prompt_len = 0;
        pe[i].ids = malloc(lens[i] * sizeof(int32_t));
        pe[i].mask = calloc(lens[i], 1);
        for (int t = 0; t < lens[i]; t++) {
            pe[i].ids[t] = (int32_t)(rng_u64(&rr) % m.cfg.vocab_size);
            pe[i].mask[t] = t >= 2 && (t % 3 != 0);
        }
    }
    float *g_unpacked = malloc(m.n_floats * sizeof(float));
    SftConfig pc = {.epochs = 1, .batch = NE, .lr = {.lr = 0}, .grad_clip = 0, .seed = 2, .quiet = 1};
    SftResult r1, r2;
    CHECK(sft_train(&m, pe, NE, &pc, &r1, &err) == 0);
    memcpy(g_unpacked, m.grad_mem, m.n_floats * sizeof(float));
    pc.pack = 1;
    pc.pack_len = 24;
    CHECK(sft_train(&m, pe, NE, &pc, &r2, &err) == 0);
    CHECKF(fabs(r1.first_loss - r2.first_loss) <= 1e-6, "packed loss %.8f vs unpacked %.8f", r2.first_loss, r1.first_loss);
    double num = 0, den = 0;
    for (size_t i = 0; i < m.n_floats; i++)
        num += (m.grad_mem[i] - g_unpacked[i]) * (double)(m.grad_mem[i] - g_unpacked[i]), den += (double)g_unpacked[i] * g_unpacked[i];
    CHECKF(sqrt(num / den) <= 1e-5, "packed vs unpacked gradients: rel %g", sqrt(num / den));
    printf("packed vs unpacked: loss diff %.2e, gradient rel diff %.2e\n", fabs(r1.first_loss - r2.first_loss),
           sqrt(num / den));
    /* malformed segment starts are refused */
    Acts pa;
    CHECK(acts_create(&pa, &m, 1, 6, 0, &err) == 0);
    int32_t pids[6] = {1, 2, 3, 4, 5, 6}, badseg[6] = {0, 0, 1, 1, 1, 1};
    CHECK(model_forward_packed(&m, &pa, pids, badseg, 1, 6, 1.0f, &err) != 0);
    CHECKF(strstr(err.msg, "segment start") != NULL, "%s", err.msg);
    acts_free(&pa, &m);
    for (int i = 0; i < NE; i++) free(pe[i].ids), free(pe[i].mask);
    free(g_unpacked);
    for (int b = 0; b < B; b++) free(ex[b].ids), free(ex[b].mask);
    json_decref(in);
    model_free(&m);
    return check_summary("test_sft");
}
