/* Memory planning (see memplan.h). The CUDA scratch sizes below follow
 * the backend's own sizing rules: keep them in step with
 * backend/cuda/cuda_lm_head.cu (2 GB logits chunks), cuda_attention_gemm.cu
 * (512 MB score blocks), cuda_flash.cu (which shapes it takes, its
 * bf16 copies), cuda_bf16.cu (per-GEMM operand rounding) and
 * backend_cuda.cu (grow-only buffers keep 1/8 slack). */
#include "train/memplan.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gen/generate.h"
#include "model/model.h"

#define LM_CHUNK_BYTES ((double)(2048u << 20))
#define ATT_BLOCK_BYTES ((double)(512u << 20))
#define SLACK 1.125 /* grow-only buffers allocate 1/8 more than asked */

static void add(MemPlan *p, char phase, double bytes, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add(MemPlan *p, char phase, double bytes, const char *fmt, ...) {
    if (p->n == MEMPLAN_MAX || bytes <= 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->item[p->n].what, sizeof p->item[p->n].what, fmt, ap);
    va_end(ap);
    p->item[p->n].bytes = bytes;
    p->item[p->n].phase = phase;
    p->n++;
}

static double dmax(double a, double b) { return a > b ? a : b; }
static double dmin(double a, double b) { return a < b ? a : b; }

/* bytes of the bf16 attention's scratch for a (B, T) batch, backward (the
 * larger of the two passes) */
static double attn_scratch(const ModelConfig *c, double B, double T) {
    double NH = c->n_heads, KVH = c->n_kv_heads, HD = c->head_dim;
    double nq = B * NH * T * HD, nkv = B * KVH * T * HD;
    double fixed = nq * 2 + 2 * nkv * 2 + nq * 2 + nq * 4 + 2 * nkv * 4 + B * NH * T * 4;
    double block = B * KVH * T * T * 12; /* S, dP fp32 + P, dS bf16 for all query rows */
    return fixed + (block < ATT_BLOCK_BYTES ? block : ATT_BLOCK_BYTES);
}

/* cuda_flash_takes: the shapes whose bf16 attention runs the flash kernels
 * (unless R1C_CUDA_FLASH=0), which need no score blocks and no decode
 * partials */
static int flash_takes(const ModelConfig *c) {
    const char *e = getenv("R1C_CUDA_FLASH");
    int hd = c->head_dim;
    return !(e && !strcmp(e, "0")) && (hd == 32 || hd == 64 || hd == 128) && c->n_kv_heads > 0 &&
           c->n_heads % c->n_kv_heads == 0 && c->n_heads / c->n_kv_heads <= 16;
}

/* bytes of the flash backward's scratch: bf16 q, dO, k, v and fp32 D */
static double flash_scratch(const ModelConfig *c, double B, double T) {
    double nq = B * T * c->n_heads * c->head_dim, nkv = B * T * c->n_kv_heads * c->head_dim;
    return (2 * nq + 2 * nkv) * 2 + B * c->n_heads * T * 4;
}

void memplan_compute(MemPlan *p, const MemPlanInput *in) {
    memset(p, 0, sizeof *p);
    Model m;
    model_layout(&m, in->cfg);
    const ModelConfig *c = in->cfg;
    double P = (double)m.n_floats, C = c->hidden, I = c->intermediate, V = c->vocab_size;
    double L = c->n_layers, KD = m.KD, QD = m.QD, QKVD = m.QKVD;
    add(p, 'p', P * 4, "policy weights (%.2fB parameters, fp32)", P / 1e9);
    add(p, 'p', P * 4, "gradients (fp32)");
    if (in->zero && in->world > 1)
        add(p, 'p', (double)((size_t)(P + in->world - 1) / (size_t)in->world) * 8,
            "AdamW moments (fp32, this rank's 1/%d slice)", in->world);
    else add(p, 'p', P * 8, "AdamW moments (fp32)");
    if (in->cuda && in->bf16) add(p, 'p', P * 2, "bf16 copy of the policy weights");
    if (in->has_ref) {
        if (in->cuda && in->bf16) {
            /* model_freeze: GEMM weights in bf16 only; the embedding,
             * norms and biases fp32 (+ a bf16 shadow when the embedding
             * is the LM head too) */
            double small = 0;
            for (int i = 0; i < m.n_params; i++)
                if (!model_param_gemm_only(&m, i)) small += (double)m.params[i].numel;
            add(p, 'p', (P - small) * 2, "reference model, frozen: GEMM weights (bf16)");
            add(p, 'p', small * (c->tie_embeddings ? 6 : 4), "reference embedding, norms, biases (fp32%s)",
                c->tie_embeddings ? " + bf16 LM head" : "");
        } else {
            add(p, 'p', P * 4, "reference model weights (fp32)");
        }
    }
    double N = (double)in->train_batch * in->train_len;
    if (N > 0) {
        add(p, 'p', (double)acts_bytes(&m, in->train_batch, in->train_len, in->recompute),
            "activations (micro-batch %d x %d tokens%s)", in->train_batch, in->train_len,
            in->recompute ? ", recomputed" : "");
        double logits = N * V * 4;
        if ((logits <= (double)(128u << 20) || in->keep_logits == 1) && !in->recompute)
            add(p, 'p', logits, "kept LM-head logits");
        if (in->cuda) {
            double rows = dmin(N, floor(LM_CHUNK_BYTES / 4 / V)); /* an LM-head chunk */
            double scr = rows * V * 4;
            if (in->bf16)
                scr = dmax(scr, flash_takes(c) && !in->pack ? flash_scratch(c, in->train_batch, in->train_len)
                                                             : attn_scratch(c, in->train_batch, in->train_len));
            add(p, 't', scr * SLACK, "GPU scratch (attention blocks, LM-head chunks)");
            if (in->bf16) {
                /* the largest GEMM's rounded operands: the gate/up weight
                 * gradient (dout N x 2I, input N x C); an LM-head chunk's
                 * GEMMs round only their x rows (the logit gradient is
                 * written in bf16) */
                double cvt = N * (2 * I + C) * 2;
                add(p, 't', cvt * SLACK, "bf16 GEMM operand buffer");
                /* cuda_act16_target: a norm/SwiGLU/attention output in bf16,
                 * SwiGLU's input gradient (N x 2I), the merged QKV
                 * gradient, or an LM-head chunk's logit gradient */
                add(p, 't', dmax(N * dmax(dmax(2 * I, QKVD), dmax(C, QD)), rows * V) * 2 * SLACK,
                    "bf16 copy of a GEMM input");
                /* swiglu_backward_gemm's second output: h recomputed for
                 * the down projection's weight gradient */
                add(p, 't', N * I * 2 * SLACK, "bf16 copy of SwiGLU's output (backward)");
            }
        }
    }
    if (in->gen_batch > 0 && in->gen_len > 0) {
        double S = in->gen_batch, len = in->gen_len, chunk = in->prefill_chunk > 0 ? in->prefill_chunk
                                                                                 : gen_prefill_chunk_default(in->cuda);
        /* bf16 elements on the GPU in bf16 precision (R1C_CUDA_KV_BF16=0
         * there doubles it), fp32 elsewhere */
        double kv_elem = in->cuda && in->bf16 ? 2 : 4;
        if (in->kv_block > 0) { /* a pool of whole blocks: what gen_run allocates */
            double B = in->kv_block, per_seq = ceil(len / B);
            double blocks = in->kv_tokens > 0 ? ceil((double)in->kv_tokens / B) : S * per_seq;
            add(p, 'g', 2 * L * blocks * B * KD * kv_elem, "KV cache, paged (%.0f blocks of %d positions)", blocks,
                in->kv_block);
        } else
            add(p, 'g', 2 * L * S * len * KD * kv_elem, "KV cache (%d sequences x %d tokens)", in->gen_batch,
                in->gen_len);
        double cap = S + chunk;
        double dec = cap * (4 * C + QKVD + 3 * QD + 3 * KD + 3 * I + 1 + c->n_heads) * 4 + cap * 16;
        add(p, 'g', dec + S * V * 4, "decode buffers and one step's logits");
        if (in->cuda && in->bf16) {
            add(p, 'g', cap * dmax(I, dmax(C, QD)) * 2 * SLACK, "bf16 copy of a decode GEMM input");
            /* cuda_decode_split.cu (shapes the flash kernel does not take):
             * per-split partials, at most 64 MB */
            double split = cap * ceil(len / 128.0) * (QD + 130.0 * c->n_heads) * 4; /* outputs, stats, scores */
            if (!flash_takes(c))
                add(p, 'g', dmin(split * SLACK, (double)(64u << 20) * SLACK), "decode attention partials");
        }
    }
    free(m.params);
    for (int i = 0; i < p->n; i++) {
        if (p->item[i].phase == 'p') p->persistent += p->item[i].bytes;
        else if (p->item[i].phase == 'g') p->gen += p->item[i].bytes;
        else p->train += p->item[i].bytes;
    }
    /* training scratch is grow-only: once there, it stays through later
     * generation phases */
    p->peak = p->persistent + p->train + p->gen;
    if (!in->cuda) p->peak = p->persistent + dmax(p->train, p->gen);
}

void memplan_print(const MemPlan *p, FILE *fp, const char *prefix) {
    for (int i = 0; i < p->n; i++)
        fprintf(fp, "%s%8.2f GB  %s\n", prefix, p->item[i].bytes / 1e9, p->item[i].what);
    fprintf(fp, "%s%8.2f GB  peak (plus the runtime's own ~0.5 GB on a GPU)\n", prefix, p->peak / 1e9);
}

int memplan_check(const MemPlan *p, const Backend *be, const char *hint, Err *err) {
    if (!be || !be->mem_info) return 0;
    size_t fr = 0, tot = 0;
    be->mem_info(&fr, &tot);
    if (tot == 0 || p->peak <= (double)fr) return 0;
    int big = 0;
    for (int i = 1; i < p->n; i++)
        if (p->item[i].bytes > p->item[big].bytes) big = i;
    return err_set(err,
                   "memory plan: this run needs %.1f GB on the %s backend but %.1f GB of %.1f GB are free "
                   "(largest: %s, %.1f GB)%s%s",
                   p->peak / 1e9, be->name, fr / 1e9, tot / 1e9, p->n ? p->item[big].what : "-",
                   p->n ? p->item[big].bytes / 1e9 : 0.0, hint && hint[0] ? ": " : "", hint ? hint : "");
}

/* The plan of a run of MODEL_DIR (its config.json) on a backend of the
 * given kind, and the start of its printed header. */
static int plan_model(const char *model_dir, int cuda, int bf16, MemPlanInput *in, MemPlan *p, Err *err) {
    char path[4096];
    ModelConfig cfg;
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    if (hf_config_load(&cfg, path, err) != 0) return -1;
    in->cfg = &cfg;
    in->cuda = cuda;
    in->bf16 = bf16;
    memplan_compute(p, in);
    in->cfg = NULL;
    return 0;
}

static void print_header(FILE *fp, const MemPlanInput *in) {
    int world = in->world > 1 ? in->world : 1;
    fprintf(fp, "memory per rank (%d rank%s, optim.zero %s)", world, world > 1 ? "s" : "",
            in->zero && world > 1 ? "on" : "off");
}

int memplan_run(const char *model_dir, const Backend *be, MemPlanInput *in, int print, const char *hint, FILE *fp,
                Err *err) {
    int gpu = be && be->mem_info;
    if (!gpu && !(print && fp)) return 0;
    MemPlan p;
    int planned = 0; /* p holds the plan of *in */
    if (in->keep_logits < 0) { /* keep them where they leave room to spare */
        in->keep_logits = 0;
        if (gpu && !in->recompute && in->train_batch > 0) {
            in->keep_logits = 1;
            if (plan_model(model_dir, gpu, be->weights_hint != NULL, in, &p, err) != 0) return -1;
            size_t fr = 0, tot = 0;
            be->mem_info(&fr, &tot);
            planned = p.peak <= (double)fr - 0.1 * (double)tot;
            if (!planned) in->keep_logits = 0;
        }
    }
    /* bf16: an upper bound in fp32, where no weight copy is made */
    if (!planned && plan_model(model_dir, gpu, gpu && be->weights_hint != NULL, in, &p, err) != 0) return -1;
    if (print && fp) {
        print_header(fp, in);
        if (gpu) {
            size_t fr = 0, tot = 0;
            be->mem_info(&fr, &tot);
            fprintf(fp, ", %s backend with %.1f GB free of %.1f GB", be->name, fr / 1e9, tot / 1e9);
        }
        fprintf(fp, ":\n");
        memplan_print(&p, fp, "  ");
    }
    return memplan_check(&p, be, hint, err);
}

int memplan_preview(const char *model_dir, const char *backend, MemPlanInput *in, FILE *fp, Err *err) {
    int cuda = backend && !strncmp(backend, "cuda", 4);
    MemPlan p;
    int keep = in->keep_logits;
    if (keep < 0) in->keep_logits = 0; /* decided on the device: shown as a note */
    if (plan_model(model_dir, cuda, cuda && strcmp(backend, "cuda-fp32") != 0, in, &p, err) != 0) return -1;
    print_header(fp, in);
    fprintf(fp, ", planned for the %s backend%s:\n", backend ? backend : "cpu", in->bf16 ? " (bf16 GEMMs)" : "");
    memplan_print(&p, fp, "  ");
    if (keep < 0 && cuda && !in->recompute && in->train_batch > 0) {
        MemPlan q;
        in->keep_logits = 1;
        if (plan_model(model_dir, cuda, cuda && strcmp(backend, "cuda-fp32") != 0, in, &q, err) != 0) return -1;
        if (q.peak > p.peak)
            fprintf(fp, "  + %.2f GB kept LM-head logits (peak %.2f GB) where that leaves a tenth of the GPU free: "
                        "the backward then does not recompute them\n",
                    (q.peak - p.peak) / 1e9, q.peak / 1e9);
    }
    in->keep_logits = keep;
    return 0;
}
