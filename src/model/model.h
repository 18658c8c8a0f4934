/* A decoder-only transformer (Qwen2 / Llama 3 / Qwen3) written once against
 * the backend op table: parameter layout, HF checkpoint load/save,
 * training forward/backward with saved activations, and the incremental
 * (KV-cached) forward that generation uses.
 *
 * All parameters live in one allocation; a table maps each HF tensor name
 * to its place in it. Q, K and V rows sit next to each other (one GEMM),
 * as do gate and up. Gradients use the same layout in a second buffer. */
#ifndef R1C_MODEL_MODEL_H
#define R1C_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/err.h"
#include "io/hf_config.h"
#include "io/safetensors.h"

typedef struct ParamInfo {
    char name[96]; /* HF name, e.g. model.layers.3.self_attn.q_proj.weight */
    int ndim;
    int64_t shape[2];
    size_t offset; /* in floats, into the parameter buffer */
    size_t numel;
    int decay; /* weight decay applies (matrices, not norms or biases) */
} ParamInfo;

typedef struct LayerParams {
    float *attn_norm; /* (C) */
    float *wqkv;      /* (QD + 2*KD, C): q_proj, k_proj, v_proj rows */
    float *bqkv;      /* (QD + 2*KD) or NULL */
    float *q_norm;    /* (HD) or NULL (Qwen3) */
    float *k_norm;    /* (HD) or NULL */
    float *wo;        /* (C, QD) */
    float *mlp_norm;  /* (C) */
    float *w_gu;      /* (2*I, C): gate_proj, up_proj rows */
    float *w_down;    /* (C, I) */
} LayerParams;

typedef struct ModelParams {
    float *embed;      /* (V, C) */
    LayerParams *layers;
    float *final_norm; /* (C) */
    float *lm_head;    /* (V, C); == embed when tied */
} ModelParams;

typedef struct Model {
    ModelConfig cfg;
    const Backend *be;
    int QD, KD, QKVD; /* NH*HD, KVH*HD, QD+2*KD */
    ParamInfo *params;
    int n_params;
    size_t n_floats;
    float *param_mem;
    ModelParams w;
    float *grad_mem; /* NULL until model_alloc_grads */
    ModelParams g;
    float *rope_cos, *rope_sin; /* (rope_len, HD/2) */
    int rope_len;
    json_t *hf_json; /* config.json as loaded (kept verbatim on save), or NULL */
    /* After model_freeze: param_mem is NULL, the GEMM weights are the
     * backend's frozen copy (handle `frozen`), the rest in frozen_small. */
    const float *frozen;
    float *frozen_small;
} Model;

/* Shapes and parameter layout from cfg only (no backend, nothing
 * allocated but m->params; free it with free(m->params)): what memory
 * planning needs. */
void model_layout(Model *m, const ModelConfig *cfg);
/* Shapes and layout from cfg; parameters zeroed. */
int model_create(Model *m, const ModelConfig *cfg, const Backend *be, Err *err);
void model_free(Model *m);
/* Loads config.json + safetensors (sharded or not) from a directory. */
int model_load(Model *m, const char *dir, const Backend *be, Err *err);
/* Copies tensors from an open checkpoint; shapes must match exactly. */
int model_load_weights(Model *m, const StCheckpoint *ck, const char *what, Err *err);
/* Normal(0, std) matrices, norms at 1, biases 0 (seeded; generated on the
 * host and uploaded, so every backend gets the same weights). */
int model_init_random(Model *m, uint64_t seed, float std, Err *err);
/* Writes DIR/config.json and DIR/model.safetensors (F32 or BF16), each
 * atomically. Loads in transformers unchanged. */
int model_save(const Model *m, const char *dir, StDtype dtype, Err *err);
int model_alloc_grads(Model *m, Err *err);
/* For a model that will only run forward from now on (a frozen reference):
 * where the backend offers it (weights_freeze: CUDA in bf16), keeps the
 * layers' matrices and an untied LM head as the backend's bf16 copy only
 * and frees the fp32 buffer, 2 bytes per parameter instead of 4 + 2;
 * results are bit for bit unchanged. Elsewhere a no-op. Afterwards the
 * model can run model_forward (no backward, no save, no gradients). */
int model_freeze(Model *m, Err *err);
/* Parameter i is read only by GEMMs (the layers' matrices, an untied LM
 * head), not gathered like the embedding nor elementwise like norms and
 * biases: what model_freeze keeps in bf16 only. */
int model_param_gemm_only(const Model *m, int i);
void model_zero_grads(Model *m);
const ParamInfo *model_find_param(const Model *m, const char *name);
/* Makes sure the RoPE tables cover positions [0, len). */
int model_rope_reserve(Model *m, int len, Err *err);

/* ---- training forward/backward ---- */

typedef struct LayerActs {
    float *x;        /* (N,C) residual stream entering the layer */
    float *ln1;      /* (N,C) */
    float *rstd1;    /* (N) */
    float *qkv;      /* (N,QKVD) projection output */
    float *q_pre;    /* (N,QD) before q_norm (Qwen3) */
    float *k_pre;    /* (N,KD) */
    float *rstd_q;   /* (N*NH) */
    float *rstd_k;   /* (N*KVH) */
    float *q, *k, *v; /* (N,QD) (N,KD) (N,KD) after norm + RoPE */
    float *att;      /* (N,QD) attention output */
    float *lse;      /* (B,NH,T) */
    float *x_mid;    /* (N,C) after the attention residual */
    float *ln2;      /* (N,C) */
    float *rstd2;    /* (N) */
    float *gu;       /* (N,2I) */
    float *h;        /* (N,I) */
} LayerActs;

typedef struct Acts {
    int B, T, N; /* current batch, N = B*T (set by model_forward) */
    int cap_N;   /* tokens the buffers hold: any B x T with B*T <= cap_N fits */
    int recompute; /* keep only layer inputs; redo each layer in backward */
    LayerActs *layers; /* L entries (or 1 when recompute: shared scratch) */
    float **layer_x;   /* L+1 residual inputs (layer_x[L] = final) */
    float *lnf, *rstdf;
    /* Host memory, for callers: the batch's ids / targets / positions and
     * the forward's results (downloaded after each forward). */
    int32_t *ids, *target, *pos; /* (N) */
    float *logp, *ent; /* (N): row b*T+t predicts ids[b][t+1]; last column 0 */
    /* Backend memory, what the ops read and write: mirrors of the above
     * (ints uploaded each forward) and backward's dlogp (uploaded). */
    int32_t *ids_be, *target_be, *pos_be;
    int32_t *seg, *seg_be; /* (N) packed rows: where each token's sequence starts */
    int packed;
    float *logp_be, *ent_be, *dlogp_be;
    float *logits_cache; /* (cap_N, V) when small enough: backward reuses the
                          * forward's logits instead of recomputing them */
    float *logits_out_be; /* backend logits for a caller's logits_out when
                           * there is no logits_cache (allocated on demand) */
    size_t logits_out_cap; /* floats in logits_out_be */
    const float *logits_kept; /* backend logits of the last forward, or NULL */
    float temp;
    /* backward scratch */
    float *dres, *dln, *dqkv, *dq, *dk, *dv, *dq_pre, *dk_pre, *datt, *dgu, *dh, *tmp;
    size_t bytes;
} Acts;

/* Bytes acts_create would allocate for (B, T). */
size_t acts_bytes(const Model *m, int B, int T, int recompute);
int acts_create(Acts *a, const Model *m, int B, int T, int recompute, Err *err);
/* Keeps the forward's LM-head logits for the backward whatever their size
 * (acts_create keeps them up to 128 MB): (cap_N, V) floats more, and the
 * backward's recomputation of the logits (a GEMM as large as the LM
 * head's forward) goes away, with the same results. No-op with recompute.
 * The trainers call it when the memory plan leaves room
 * (MemPlanInput.keep_logits). */
int acts_keep_logits(Acts *a, const Model *m, Err *err);
void acts_free(Acts *a, const Model *m);

/* ids (B,T) with B*T <= a->cap_N, right-padded rows (pads only after real tokens, so causal
 * attention never sees them from real positions). Computes a->logp and
 * a->ent (host copies) with logits / temp; logits_out (B,T,V) optional,
 * HOST memory: the raw logits are downloaded into it. Host inputs and
 * outputs on every backend; only the model's own buffers live in backend
 * memory. */
int model_forward(Model *m, Acts *a, const int32_t *ids, int B, int T, float temp, float *logits_out, Err *err);
/* Packed rows: several sequences per row; seg_start (B*T) is the row
 * position where each token's sequence starts (equal to its own position
 * for a sequence's first token). Positions restart at each sequence,
 * attention never crosses into another, and the last token of a sequence
 * has no target (logp 0). Equivalent to running the sequences unpacked. */
int model_forward_packed(Model *m, Acts *a, const int32_t *ids, const int32_t *seg_start, int B, int T, float temp,
                         Err *err);
/* dlogp (N, host memory): gradient of the loss w.r.t. each a->logp entry
 * (uploaded). Accumulates parameter gradients into m->grad_mem (backend
 * memory: read it with be->download). */
void model_backward(Model *m, Acts *a, const float *dlogp);

/* ---- incremental forward for generation ---- */

typedef struct KVCache {
    int n_slots, max_len;
    size_t stride;  /* elements per slot per layer: max_len * KD (contiguous caches) */
    size_t elem;    /* bytes per element: 4, or 2 where the backend keeps bf16 (kv_elem_bytes) */
    float **k, **v; /* L entries, each (n_slots, max_len, KD) elements, or (n_blocks, block, KD)
                       when paged: backend memory, opaque */
    /* Paged (block > 0): slots own blocks of `block` positions from a
     * shared pool, taken as they grow (kv_slot_reserve) and returned when
     * they end (kv_slot_release), so the pool holds the positions in use,
     * not n_slots x max_len. */
    int block, n_blocks, max_blocks; /* max_blocks: table entries per slot */
    int32_t *table;                  /* host (n_slots, max_blocks): slot s's i-th block, -1: none */
    int *nblk;                       /* blocks each slot holds */
    int *free_blk, n_free;           /* the pool's free blocks (a stack) */
    int *ref;                        /* slots holding each block (shared prompt blocks: several) */
    int32_t *table_be;               /* backend copy of table, uploaded by model_decode when changed */
    int table_dirty;
} KVCache;

int kv_cache_create(KVCache *kv, const Model *m, int n_slots, int max_len, Err *err);
/* A paged cache of n_blocks blocks of `block` positions for n_slots
 * sequences of up to max_len positions; needs the backend's
 * attention_decode_paged. */
int kv_cache_create_paged(KVCache *kv, const Model *m, int n_slots, int max_len, int block, int n_blocks, Err *err);
void kv_cache_free(KVCache *kv, const Model *m);
/* Paged: slot `slot` gets blocks for positions [0, n_pos). 0, or -1 when
 * the pool has too few free blocks (then it takes none). */
int kv_slot_reserve(KVCache *kv, int slot, int n_pos);
/* Paged: slot `slot`'s blocks go back to the pool (a shared block when
 * its last holder lets go). */
void kv_slot_release(KVCache *kv, int slot);
/* Paged: slot `to` (holding no blocks) takes positions [0, n_pos) of slot
 * `from`: its full blocks by reference, and for a part-full last block a
 * fresh one (1 free block needed), whose first n_pos % block positions
 * the caller copies. Full blocks below a sequence's length are never
 * written again, so sharing them is safe. 0, or -1: `to` holds blocks or
 * the pool has no free block for the copy. */
int kv_slot_share(KVCache *kv, int from, int to, int n_pos);

typedef struct DecodeScratch {
    int cap; /* max tokens per call */
    float *x, *ln, *qkv, *q, *k, *v, *q_pre, *k_pre, *rstd, *rstd_h, *att, *tmp, *gu, *h;
    int32_t *ints_h;  /* (6, cap) host: tokens, slot, pos, len (pos + 1), and for a paged cache each
                         token's block and position in it; staged for one upload */
    int32_t *ints_be; /* (6, cap) backend: the same, uploaded */
    float *xsel; /* rows selected for logits */
    float *logits_be; /* (logits_cap / V, V) backend logits, grown on demand */
    size_t logits_cap;
} DecodeScratch;

int decode_scratch_create(DecodeScratch *s, const Model *m, int cap, Err *err);
void decode_scratch_free(DecodeScratch *s, const Model *m);

/* Runs n tokens (any mix of prefill and decode, any slots): token i is at
 * position pos[i] of slot slot[i]; tokens of one slot must come in position
 * order. Writes the KV cache. For the n_out rows listed in out_rows, writes
 * raw logits (n_out, V). tokens, slot, pos, out_rows and logits are HOST
 * memory on every backend (uploaded / downloaded here). */
int model_decode(Model *m, KVCache *kv, DecodeScratch *s, const int32_t *tokens, const int32_t *slot,
                 const int32_t *pos, int n, const int *out_rows, int n_out, float *logits, Err *err);

#endif
