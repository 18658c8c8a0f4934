#!/usr/bin/env python3
"""PyTorch-on-CPU baseline for `make bench` (random fp32 weights).

  python3 bench/torch_baseline.py --shape tiny|qwen2.5-0.5b [--threads N]
  python3 bench/torch_baseline.py --config path/to/config.json [--threads N]

Measures
  train_tok_s      B*T / median step time, one step = forward + backward of the
                   mean next-token NLL over B x T + AdamW step (1 warm-up step)
  sample_tok_s_bK  K*M / time of HF generate(do_sample=True, temperature=1,
                   top_p=1, top_k=0, min_new_tokens=M, max_new_tokens=M,
                   use_cache=True) on K random prompts of length P (K = 1, 16;
                   1 warm-up call each, median of --sample-reps calls)
Prints one JSON line.  Attention uses transformers' default ("sdpa") kernel.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config

SHAPES = {
    # Qwen2-shaped toy model
    "tiny": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=2, intermediate_size=768, vocab_size=4096,
                 tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6,
                 max_position_embeddings=4096),
    # Qwen/Qwen2.5-0.5B config.json
    "qwen2.5-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                         tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6,
                         max_position_embeddings=32768, bos_token_id=151643,
                         eos_token_id=151643),
}
# shape -> (B, T, train steps, M new tokens)
DEFAULTS = {"tiny": (4, 256, 5, 64), "qwen2.5-0.5b": (1, 256, 3, 16)}


def load_config(a):
    if a.config:
        path = a.config
        if os.path.isdir(path):
            return AutoConfig.from_pretrained(path), os.path.basename(os.path.normpath(path))
        with open(path) as f:
            d = json.load(f)
        mt = d.pop("model_type")
        for k in ("architectures", "transformers_version", "torch_dtype", "dtype",
                  "quantization_config"):
            d.pop(k, None)
        return AutoConfig.for_model(mt, **d), path
    return Qwen2Config(**SHAPES[a.shape]), a.shape


def bench_train(model, V, B, T, steps, g):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    ids = torch.randint(0, V, (B, T), generator=g)
    times = []
    for i in range(steps + 1):  # first step is warm-up
        t0 = time.perf_counter()
        logits = model(input_ids=ids, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                               ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        del logits, loss
        if i > 0:
            times.append(dt)
    del opt
    model.zero_grad(set_to_none=True)
    return B * T / statistics.median(times)


def bench_sample(model, V, Bs, P, M, reps, g):
    model.eval()
    out = {}
    for b in Bs:
        ids = torch.randint(0, V, (b, P), generator=g)
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                  temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=M,
                  min_new_tokens=M, use_cache=True, pad_token_id=0)
        times = []
        with torch.no_grad():
            for i in range(reps + 1):
                t0 = time.perf_counter()
                seq = model.generate(**kw)
                dt = time.perf_counter() - t0
                assert seq.shape == (b, P + M), seq.shape
                if i > 0:
                    times.append(dt)
        out[b] = b * M / statistics.median(times)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--config", help="HF config.json (or model dir)")
    src.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch default)")
    ap.add_argument("--batch", "-B", type=int, help="training batch B")
    ap.add_argument("--seq", "-T", type=int, help="training sequence length T")
    ap.add_argument("--steps", type=int, help="timed training steps (median)")
    ap.add_argument("--prompt", "-P", type=int, default=32, help="sampling prompt length")
    ap.add_argument("--new", "-M", type=int, help="sampling new tokens")
    ap.add_argument("--sample-reps", type=int, default=1, help="timed generate calls per batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--no-sample", action="store_true")
    a = ap.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)

    cfg, name = load_config(a)
    dB, dT, dsteps, dM = DEFAULTS.get(name, DEFAULTS["qwen2.5-0.5b"] if cfg.vocab_size > 50000
                                      else DEFAULTS["tiny"])
    B, T = a.batch or dB, a.seq or dT
    steps, M = a.steps or dsteps, a.new or dM

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    init_s = time.perf_counter() - t0
    V = cfg.vocab_size
    nparams = sum(p.numel() for p in model.parameters())

    res = {"shape": name, "threads": torch.get_num_threads()}
    res["train_tok_s"] = None if a.no_train else round(bench_train(model, V, B, T, steps, g), 2)
    s = {} if a.no_sample else bench_sample(model, V, (1, 16), a.prompt, M, a.sample_reps, g)
    res["sample_tok_s_b1"] = round(s[1], 2) if s else None
    res["sample_tok_s_b16"] = round(s[16], 2) if s else None
    res.update({"torch": torch.__version__, "transformers": transformers.__version__,
                "params": nparams, "B": B, "T": T, "train_steps": steps, "P": a.prompt,
                "M": M, "init_s": round(init_s, 2)})
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
