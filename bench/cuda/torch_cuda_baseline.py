#!/usr/bin/env python3
"""PyTorch + HF transformers on one GPU: the baseline bench_cuda.sh compares
r1c against (random weights, eager mode, sdpa attention).

  python3 bench/cuda/torch_cuda_baseline.py --shape qwen2.5-0.5b|r1-distill-qwen-1.5b

Measures
  train_tok_s     B*T / median step time; one step = forward + backward of the
                  mean next-token NLL over B x T + AdamW step (fused=False,
                  torch's default foreach), fp32 master weights under
                  torch.autocast(bfloat16): the arithmetic r1c's bf16 mode uses
  train_bf16_tok_s  the same with the whole model and AdamW state in bf16
                  (faster, less exact; reported for reference)
  gen_tok_s       S*M / time of model.generate(do_sample=True, temperature=1,
                  top_p=1, top_k=0, min_new_tokens=M, max_new_tokens=M) on S
                  random P-token prompts, bf16 weights, one warm-up call; the
                  best of --gen-runs calls (default 3: HF generate's rate
                  varies from call to call with the host, and the best is
                  the conservative baseline); every call's rate is in
                  gen_tok_s_runs
Prints one JSON line.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM, Qwen2Config

SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                         tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6,
                         max_position_embeddings=32768),
    "r1-distill-qwen-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                                 num_key_value_heads=2, intermediate_size=8960, vocab_size=151936,
                                 tie_word_embeddings=False, rope_theta=1e4, rms_norm_eps=1e-6,
                                 max_position_embeddings=131072),
}


def train(model, V, B, T, steps, autocast):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    ids = torch.randint(0, V, (B, T), device="cuda")
    times = []
    for i in range(steps + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=ids, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t0)
        del logits, loss
    del opt
    return B * T / statistics.median(times)


def generate(model, V, S, P, M, runs):
    model.eval()
    ids = torch.randint(0, V, (S, P), device="cuda")
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
              top_p=1.0, top_k=0, max_new_tokens=M, min_new_tokens=M, use_cache=True, pad_token_id=0)
    rates = []
    with torch.no_grad():
        model.generate(**dict(kw, max_new_tokens=4, min_new_tokens=4))
        for _ in range(runs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            seq = model.generate(**kw)
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            assert seq.shape == (S, P + M), seq.shape
            rates.append(S * M / dt)
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    ap.add_argument("-B", type=int, default=16)
    ap.add_argument("-T", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("-S", type=int, default=256)
    ap.add_argument("-P", type=int, default=128)
    ap.add_argument("-M", type=int, default=256)
    ap.add_argument("--gen-runs", type=int, default=3)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--no-gen", action="store_true")
    a = ap.parse_args()
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = Qwen2Config(**SHAPES[a.shape])
    cfg._attn_implementation = "sdpa"
    res = {"shape": a.shape, "torch": torch.__version__, "transformers": transformers.__version__,
           "gpu": torch.cuda.get_device_name(0)}
    V = cfg.vocab_size
    if not a.no_gen:
        with torch.device("cuda"):  # initialise on the GPU: minutes faster at 1.5B
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        rates = generate(model, V, a.S, a.P, a.M, max(1, a.gen_runs))
        res["gen_tok_s"] = max(rates)
        res["gen_tok_s_runs"] = [round(r, 1) for r in rates]
        del model
        torch.cuda.empty_cache()
    if not a.no_train:
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        torch.cuda.reset_peak_memory_stats()
        res["train_tok_s"] = train(model, V, a.B, a.T, a.steps, True)
        res["train_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
        del model
        torch.cuda.empty_cache()
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        res["train_bf16_tok_s"] = train(model, V, a.B, a.T, a.steps, False)
        del model
    print(json.dumps(res))


if __name__ == "__main__":
    main()
