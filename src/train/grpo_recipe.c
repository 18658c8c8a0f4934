/* The GRPO recipe schema: every key `r1c grpo` accepts, its default and
 * its range. recipe.yaml in the run directory is this, resolved. */
#include <stddef.h>

#include "train/grpo.h"

static const char *const SCHEDULES[] = {"constant", "cosine", "linear", NULL};
static const char *const KL[] = {"k1", "k2", "k3", NULL};
static const char *const LOSSES[] = {"grpo", "dapo", "dr_grpo", NULL};
static const char *const SCALES[] = {"group", "batch", "none", NULL};

#define F(k, t, m, d, h, ...) {k, t, offsetof(GrpoConfig, m), d, .help = h, __VA_ARGS__}
const RecipeField GRPO_FIELDS[] = {
    F("model", RECIPE_STRING, model, "", "policy checkpoint directory (HF format)"),
    F("ref_model", RECIPE_STRING, ref_model, "", "frozen reference for the KL term (default: model); unused when beta = 0"),
    F("tokenizer", RECIPE_STRING, tokenizer, "", "tokenizer.json (default: MODEL/tokenizer.json)"),
    F("run_dir", RECIPE_STRING, run_dir, "runs/grpo", "where metrics, samples, plots and checkpoints go"),
    F("data.path", RECIPE_STRING, data, "", "training prompts (JSON lines)"),
    F("data.format", RECIPE_STRING, data_format, "auto", "auto | jsonl | gsm8k | math | countdown | humaneval | mbpp"),
    F("data.prompt_field", RECIPE_STRING, prompt_field, "", "JSONL prompt field (default prompt/question/problem)"),
    F("data.answer_field", RECIPE_STRING, answer_field, "answer", "JSONL gold-answer field"),
    F("data.prompt_suffix", RECIPE_STRING, prompt_suffix, "", "text appended to every prompt"),
    F("data.limit", RECIPE_INT, data_limit, "0", "use the first N examples (0 = all)", .has_min = 1, .min = 0),
    F("eval.path", RECIPE_STRING, eval_data, "", "held-out prompts (same format as data)"),
    F("eval.limit", RECIPE_INT, eval_limit, "0", "first N held-out prompts (0 = all)", .has_min = 1, .min = 0),
    F("eval.every", RECIPE_INT, eval_every, "0", "evaluate every N steps, and before and after (0 = never)", .has_min = 1, .min = 0),
    F("eval.samples", RECIPE_INT, eval_samples, "4", "samples per held-out prompt (pass@1 averages them)", .has_min = 1, .min = 1, .has_max = 1, .max = 1024),
    F("template", RECIPE_STRING, template_name, "auto", "chat template: auto | r1-zero | qwen2.5 | qwen3 | r1-distill | llama3 | FILE"),
    F("system_prompt", RECIPE_STRING, system_prompt, "", "system message (templates that have one)"),
    F("stop", RECIPE_STRLIST, stop, "", "stop strings (kept in the completion), besides EOS"),
    F("rewards", RECIPE_STRING, rewards, "math,format:0.5", "reward set: NAME[:WEIGHT],..."),
    F("reward_options", RECIPE_STRLIST, reward_options, "", "reward options: NAME.KEY=VALUE,..."),
    F("group_size", RECIPE_INT, group_size, "8", "G: completions per prompt", .has_min = 1, .min = 2, .has_max = 1, .max = 4096),
    F("prompts_per_step", RECIPE_INT, prompts_per_step, "8", "prompts (groups) per step", .has_min = 1, .min = 1, .has_max = 1, .max = 1 << 20),
    F("max_prompt_len", RECIPE_INT, max_prompt_len, "512", "longest prompt in tokens (longer ones are an error)", .has_min = 1, .min = 1, .has_max = 1, .max = 1 << 20),
    F("max_completion_len", RECIPE_INT, max_completion_len, "256", "new tokens per completion", .has_min = 1, .min = 1, .has_max = 1, .max = 1 << 20),
    F("sampling.temperature", RECIPE_FLOAT, temperature, "1.0", "sampling temperature (also applied to training log-probs)", .has_min = 1, .min = 0.01, .has_max = 1, .max = 10),
    F("sampling.top_p", RECIPE_FLOAT, top_p, "1.0", "nucleus sampling", .has_min = 1, .min = 0.01, .has_max = 1, .max = 1),
    F("sampling.top_k", RECIPE_INT, top_k, "0", "top-k sampling (0 = off)", .has_min = 1, .min = 0),
    F("sampling.min_p", RECIPE_FLOAT, min_p, "0", "min-p sampling (0 = off)", .has_min = 1, .min = 0, .has_max = 1, .max = 1),
    F("optim.lr", RECIPE_FLOAT, lr, "1e-6", "peak learning rate", .has_min = 1, .min = 0, .has_max = 1, .max = 1),
    F("optim.schedule", RECIPE_ENUM, lr_schedule, "constant", "learning-rate schedule after warmup", .choices = SCHEDULES),
    F("optim.warmup_steps", RECIPE_INT, warmup_steps, "0", "linear warmup (optimizer steps)", .has_min = 1, .min = 0),
    F("optim.min_lr_ratio", RECIPE_FLOAT, min_lr_ratio, "0", "decay floor as a fraction of lr", .has_min = 1, .min = 0, .has_max = 1, .max = 1),
    F("optim.beta1", RECIPE_FLOAT, beta1, "0.9", "AdamW beta1", .has_min = 1, .min = 0, .has_max = 1, .max = 0.99999),
    F("optim.beta2", RECIPE_FLOAT, beta2, "0.999", "AdamW beta2", .has_min = 1, .min = 0, .has_max = 1, .max = 0.9999999),
    F("optim.eps", RECIPE_FLOAT, adam_eps, "1e-8", "AdamW epsilon", .has_min = 1, .min = 0),
    F("optim.weight_decay", RECIPE_FLOAT, weight_decay, "0", "decoupled weight decay (matrices only)", .has_min = 1, .min = 0),
    F("optim.grad_clip", RECIPE_FLOAT, grad_clip, "1.0", "clip the global gradient norm (0 = off)", .has_min = 1, .min = 0),
    F("optim.zero", RECIPE_BOOL, zero, "false", "data parallel: shard AdamW moments over the ranks (ZeRO-1, 1/N of them each)"),
    F("steps", RECIPE_INT, steps, "100", "GRPO steps (each: generate, score, mu optimizer steps)", .has_min = 1, .min = 1),
    F("mu", RECIPE_INT, mu, "1", "optimizer steps per batch of rollouts (old-policy ratio when > 1)", .has_min = 1, .min = 1, .has_max = 1, .max = 64),
    F("micro_batch", RECIPE_INT, micro_batch, "8", "sequences per forward/backward (gradient accumulation)", .has_min = 1, .min = 1, .has_max = 1, .max = 4096),
    F("gen_batch", RECIPE_INT, gen_batch, "64", "sequences decoded together", .has_min = 1, .min = 1, .has_max = 1, .max = 65536),
    F("loss.type", RECIPE_ENUM, loss_type, "grpo", "grpo (per-sequence mean) | dapo (token mean over the batch) | dr_grpo", .choices = LOSSES),
    F("loss.epsilon", RECIPE_FLOAT, epsilon, "0.2", "clip ratio below 1", .has_min = 1, .min = 0, .has_max = 1, .max = 1),
    F("loss.epsilon_high", RECIPE_FLOAT, epsilon_high, "0.2", "clip ratio above 1 (DAPO clip-higher: 0.28)", .has_min = 1, .min = 0, .has_max = 1, .max = 10),
    F("loss.beta", RECIPE_FLOAT, beta, "0", "KL coefficient (0: no reference model is loaded)", .has_min = 1, .min = 0, .has_max = 1, .max = 100),
    F("loss.kl_estimator", RECIPE_ENUM, kl_estimator, "k3", "KL estimator", .choices = KL),
    F("loss.scale_rewards", RECIPE_ENUM, scale_rewards, "group", "advantage scaling: group std | batch std | none", .choices = SCALES),
    F("loss.mask_truncated", RECIPE_BOOL, mask_truncated, "false", "completions cut at max_completion_len get no loss"),
    F("dynamic_sampling", RECIPE_BOOL, dynamic_sampling, "false", "drop groups whose rewards are all equal and sample more"),
    F("max_resample", RECIPE_INT, max_resample, "3", "extra generation rounds per step for dynamic sampling", .has_min = 1, .min = 0, .has_max = 1, .max = 100),
    F("recompute", RECIPE_BOOL, recompute, "false", "recompute activations in backward (less memory, ~1.3x compute)"),
    F("seed", RECIPE_INT, seed, "0", "seed of every random stream", .has_min = 1, .min = 0),
    F("save_every", RECIPE_INT, save_every, "50", "checkpoint every N steps (and at the end; 0 = end only)", .has_min = 1, .min = 0),
    F("save_at_end", RECIPE_BOOL, save_at_end, "true", "checkpoint after the last step"),
    F("keep_checkpoints", RECIPE_INT, keep_checkpoints, "2", "newest checkpoints kept (0 = all)", .has_min = 1, .min = 0),
    F("samples_every", RECIPE_INT, samples_every, "10", "write one group to samples.jsonl every N steps (0 = never)", .has_min = 1, .min = 0),
    F("plot_every", RECIPE_INT, plot_every, "10", "redraw plots every N steps (and at the end)", .has_min = 1, .min = 0),
    F("quiet", RECIPE_BOOL, quiet, "false", "no progress line"),
    F("backend", RECIPE_STRING, backend, "cpu", "cpu | cuda (bf16 GEMMs) | cuda-fp32 (exact reference arithmetic)"),
    {NULL, 0, 0, NULL, .help = NULL},
};
