#!/usr/bin/env python3
"""Writes the tiny Hugging Face model fixtures under tests/fixtures/models/.

Each fixture directory holds what `save_pretrained(safe_serialization=True)`
writes (config.json, generation_config.json, model*.safetensors[, index]) plus
  input.json             {"input_ids": [[..]*T]*B, "loss_mask": [[0|1]*(T-1)]*B}
  expected.safetensors   f32: logits (B,T,V), token_logp (B,T-1), loss (1,),
                         and grad.<HF parameter name> for every parameter
                         (base fixtures only; see README.md)

The reference is computed by transformers itself (attn_implementation="eager")
with the model cast to float64.  transformers' modules down-cast a few things
to float32 internally (RMSNorm variance, softmax, RoPE cos/sin); for the
reference those three spots are patched to stay in float64 (see `fp64_exact`).
Everything is seeded: running the script twice yields identical bytes.

Usage: python3 tests/ref/make_model_fixtures.py [--out DIR] [--check-determinism]
"""
import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import types

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

B, T = 2, 11
VOCAB = 128
HIDDEN = 32
INTER = 48

COMMON = dict(hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
              rms_norm_eps=1e-6, max_position_embeddings=2048)

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 160}

BASE = {
    # name: (config class, model class, config kwargs, seed)
    "qwen2": (Qwen2Config, Qwen2ForCausalLM,
              dict(COMMON, rope_theta=1e6, tie_word_embeddings=False), 101),
    "qwen2_tied": (Qwen2Config, Qwen2ForCausalLM,
                   dict(COMMON, rope_theta=1e6, tie_word_embeddings=True), 102),
    "llama3": (LlamaConfig, LlamaForCausalLM,
               dict(COMMON, rope_theta=1e4, rope_scaling=dict(LLAMA3_ROPE),
                    tie_word_embeddings=False, attention_bias=False,
                    mlp_bias=False, bos_token_id=1, eos_token_id=2), 103),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM,
              dict(COMMON, head_dim=12, rope_theta=1e6, tie_word_embeddings=True,
                   attention_bias=False), 104),
}


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- float64 ref

def _rmsnorm_fwd64(self, x):
    var = x.pow(2).mean(-1, keepdim=True)
    return self.weight * (x * torch.rsqrt(var + self.variance_epsilon))


def _rotary_fwd64(self, x, position_ids):
    # inv_freq as transformers computed it (fp32 values), angles in float64.
    inv = self.inv_freq.to(torch.float64)
    freqs = position_ids[..., None].to(torch.float64) * inv
    emb = torch.cat((freqs, freqs), dim=-1)
    return ((emb.cos() * self.attention_scaling).to(x.dtype),
            (emb.sin() * self.attention_scaling).to(x.dtype))


@contextlib.contextmanager
def fp64_exact(model):
    """Keeps transformers' RMSNorm / softmax / RoPE in float64."""
    n_norm = n_rot = 0
    for mod in model.modules():
        cname = type(mod).__name__
        if cname.endswith("RMSNorm"):
            mod.forward = types.MethodType(_rmsnorm_fwd64, mod)
            n_norm += 1
        elif cname.endswith("RotaryEmbedding"):
            mod.forward = types.MethodType(_rotary_fwd64, mod)
            n_rot += 1
    assert n_norm > 0 and n_rot == 1, (n_norm, n_rot)
    orig_softmax = F.softmax

    def softmax64(inp, dim=None, _stacklevel=3, dtype=None):
        if inp.dtype == torch.float64 and dtype == torch.float32:
            dtype = None
        return orig_softmax(inp, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    F.softmax = softmax64
    try:
        yield
    finally:
        F.softmax = orig_softmax
        for mod in model.modules():
            mod.__dict__.pop("forward", None)


def reference(model, ids, mask, grads=True):
    """Returns dict of f32 tensors computed in float64 from `model`'s weights."""
    m = model.to(torch.float64)
    m.eval()  # dropout is 0 anyway
    m.zero_grad(set_to_none=True)
    with fp64_exact(m):
        logits = m(input_ids=ids, use_cache=False).logits
    lp = torch.log_softmax(logits[:, :-1], dim=-1)
    token_logp = lp.gather(-1, ids[:, 1:, None])[..., 0]
    maskd = mask.to(torch.float64)
    loss = -(token_logp * maskd).sum() / maskd.sum()
    out = {"logits": logits, "token_logp": token_logp, "loss": loss.reshape(1)}
    if grads:
        loss.backward()
        for name, p in m.named_parameters():
            out["grad." + name] = p.grad
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}


# ---------------------------------------------------------------- init

def init_weights(model, seed):
    """Large-ish random init so that logits are far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name:                       # RMSNorm / q_norm / k_norm
                p.copy_(1.0 + 0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)
            elif "embed_tokens" in name:
                p.copy_(0.5 * r)
            else:                                    # linear weights (out, in)
                p.copy_(r * (1.0 / math.sqrt(p.shape[1])))


def make_input(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T - 1, dtype=torch.int64)
    mask[0, :3] = 0          # "prompt" positions
    mask[1, 5] = 0           # a hole
    mask[1, -2:] = 0         # "padding" at the end
    return ids, mask


def write_input(d, ids, mask):
    with open(os.path.join(d, "input.json"), "w") as f:
        json.dump({"input_ids": ids.tolist(), "loss_mask": mask.tolist()}, f)
        f.write("\n")


def write_expected(d, tensors):
    save_file(dict(sorted(tensors.items())), os.path.join(d, "expected.safetensors"),
              metadata={"format": "pt"})


def load_dir(d, dtype):
    return AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="eager")


# ---------------------------------------------------------------- config layouts

def to_legacy_layout(d):
    """Rewrites config.json from the `rope_parameters` layout that this
    transformers writes into the pre-4.56 layout of real Hub checkpoints:
    top-level rope_theta, rope_scaling (null or dict without rope_theta),
    torch_dtype instead of dtype; for qwen2 also no layer_types and an
    (unused) sliding_window number."""
    p = os.path.join(d, "config.json")
    with open(p) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = None if rp.get("rope_type") == "default" else rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    if c.get("model_type") == "qwen2":
        # as in Qwen2.5 / R1-Distill-Qwen config.json: no layer_types, a
        # sliding_window value that is unused because use_sliding_window=false
        c.pop("layer_types", None)
        assert c["use_sliding_window"] is False
        c["sliding_window"] = 4096
    with open(p, "w") as f:
        f.write(json.dumps(c, indent=2, sort_keys=True) + "\n")
    return c


def rope_layout(d):
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    if "rope_parameters" in c:
        return "rope_parameters=" + json.dumps(c["rope_parameters"], sort_keys=True)
    return ("legacy rope_theta=%r rope_scaling=%s" %
            (c["rope_theta"], json.dumps(c["rope_scaling"], sort_keys=True)))


# ---------------------------------------------------------------- checks

def max_abs(a, b):
    return (a.double() - b.double()).abs().max().item()


def check_dir(d, exp, ids, mask, dtype=torch.float32):
    """Reload with from_pretrained; fp32 forward must match expected logits."""
    m = load_dir(d, dtype)
    m.eval()
    lg = m(input_ids=ids, use_cache=False).logits.float()
    err = max_abs(lg, exp["logits"])
    assert err < 2e-5, (d, err)
    # plain fp32 transformers gradients vs the float64 reference
    tlp = torch.log_softmax(lg[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
    mk = mask.float()
    (-(tlp * mk).sum() / mk.sum()).backward()
    grel = 0.0
    for name, p in m.named_parameters():
        g = exp.get("grad." + name)
        if g is not None:
            grel = max(grel, ((p.grad - g).norm() / g.norm()).item())
    assert grel < 1e-4, (d, grel)
    return err, grel


def llama3_rope_report(model):
    """Shows that llama3 scaling changes the inverse frequencies at this head_dim."""
    cfg = model.config
    rp = cfg.rope_parameters
    hd = cfg.head_dim
    base = rp["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    scaled = model.model.rotary_emb.inv_freq.double()
    lo_wl = rp["original_max_position_embeddings"] / rp["low_freq_factor"]
    hi_wl = rp["original_max_position_embeddings"] / rp["high_freq_factor"]
    rows = []
    for f0, f1 in zip(inv.tolist(), scaled.tolist()):
        wl = 2 * math.pi / f0
        regime = "kept" if wl < hi_wl else ("/factor" if wl > lo_wl else "smooth")
        rows.append("    inv_freq %.6e -> %.6e  wavelen %8.1f  %s" % (f0, f1, wl, regime))
    regimes = {r.split()[-1] for r in rows}
    assert regimes == {"kept", "/factor", "smooth"}, regimes
    return rows


# ---------------------------------------------------------------- main

def build(out):
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    summary = []
    models = {}
    exps = {}
    ids, mask = make_input(7)

    def record(name, d, exp, errs):
        fp32_err, grel = errs
        lg = exp["logits"]
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        summary.append((name, lg.std().item(), lg.abs().max().item(),
                        exp["loss"].item(), fp32_err, grel, size, rope_layout(d)))

    for name, (ccls, mcls, kw, seed) in BASE.items():
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        kw = dict(kw)
        cfg = ccls(**kw)
        torch.manual_seed(seed)
        model = mcls(cfg)
        init_weights(model, seed)
        model.save_pretrained(d, safe_serialization=True)
        models[name] = model
        write_input(d, ids, mask)
        exp = reference(load_dir(d, torch.float32), ids, mask)
        # grad names must be the checkpoint's tensor names
        from safetensors import safe_open
        with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
            keys = set(f.keys())
        gnames = {k[5:] for k in exp if k.startswith("grad.")}
        assert gnames == keys, (name, gnames ^ keys)
        write_expected(d, exp)
        exps[name] = exp
        record(name, d, exp, check_dir(d, exp, ids, mask))

    # qwen3: q_norm/k_norm are applied per head, before RoPE (checked in source)
    # llama3: show the effect of the scaling
    rows = llama3_rope_report(load_dir(os.path.join(out, "llama3"), torch.float32))
    cfg_plain = LlamaConfig(**dict(BASE["llama3"][2], rope_scaling=None))
    plain = LlamaForCausalLM(cfg_plain)
    plain.load_state_dict(models["llama3"].state_dict())
    plain_exp = reference(plain, ids, mask, grads=False)
    rope_delta = max_abs(plain_exp["logits"], exps["llama3"]["logits"])
    assert rope_delta > 1e-2, rope_delta

    # legacy config layout variants: same weights, config rewritten by hand
    for base in ("qwen2", "llama3"):
        name = base + "_legacy"
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.join(out, base), d)
        os.remove(os.path.join(d, "expected.safetensors"))
        to_legacy_layout(d)
        exp = reference(load_dir(d, torch.float32), ids, mask, grads=False)
        for k in exp:
            assert torch.equal(exp[k], exps[base][k]), (name, k)
        write_expected(d, exp)
        record(name, d, exp, check_dir(d, exp, ids, mask))

    # bf16 checkpoint of the qwen2 weights
    d = os.path.join(out, "qwen2_bf16")
    shutil.rmtree(d, ignore_errors=True)
    mb = Qwen2ForCausalLM(Qwen2Config(**BASE["qwen2"][2]))
    mb.load_state_dict(models["qwen2"].state_dict())
    mb.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
    write_input(d, ids, mask)
    exp = reference(load_dir(d, torch.bfloat16), ids, mask, grads=False)
    write_expected(d, exp)
    record("qwen2_bf16", d, exp, check_dir(d, exp, ids, mask))
    bf16_delta = max_abs(exp["logits"], exps["qwen2"]["logits"])

    # sharded qwen2 (same weights -> same expected)
    d = os.path.join(out, "qwen2_sharded")
    shutil.rmtree(d, ignore_errors=True)
    models["qwen2"].to(torch.float32).save_pretrained(d, safe_serialization=True,
                                                      max_shard_size="60KB")
    nshard = len([f for f in os.listdir(d) if f.endswith(".safetensors")])
    assert 2 <= nshard <= 3 and os.path.exists(
        os.path.join(d, "model.safetensors.index.json")), nshard
    write_input(d, ids, mask)
    exp = reference(load_dir(d, torch.float32), ids, mask, grads=False)
    for k in exp:
        assert torch.equal(exp[k], exps["qwen2"][k]), ("qwen2_sharded", k)
    write_expected(d, exp)
    record("qwen2_sharded", d, exp, check_dir(d, exp, ids, mask))

    log("torch %s, transformers %s, safetensors %s" %
        (torch.__version__, transformers.__version__,
         __import__("safetensors").__version__))
    log("fp32_err: max|logits| error of plain fp32 transformers vs the float64 reference;")
    log("grad32: max over tensors of ||g32-g_ref||/||g_ref|| (base fixtures only)")
    log("%-14s %9s %9s %8s %9s %9s %8s  %s" % ("fixture", "logit_std", "logit_max",
        "loss", "fp32_err", "grad32", "bytes", "config layout"))
    total = 0
    for n, sd, mx, loss, err, grel, size, lay in summary:
        total += size
        log("%-14s %9.4f %9.4f %8.4f %9.2e %9s %8d  %s" % (n, sd, mx, loss, err,
            "%.2e" % grel if grel else "-", size, lay))
    log("total bytes: %d" % total)
    log("llama3 rope (head_dim %d):" % BASE["llama3"][0](**BASE["llama3"][2]).head_dim)
    for r in rows:
        log(r)
    log("llama3 logits max |llama3-rope - default-rope| = %.4f" % rope_delta)
    log("qwen2_bf16 logits max |bf16 - fp32 weights|    = %.4f" % bf16_delta)
    log("qwen2_sharded: %d shards" % nshard)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "models"))
    ap.add_argument("--check-determinism", action="store_true",
                    help="also build into a temp dir and compare bytes")
    a = ap.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    build(a.out)
    if a.check_determinism:
        with tempfile.TemporaryDirectory() as t:
            import io
            with contextlib.redirect_stdout(io.StringIO()):
                build(t)
            ok = True
            for dp, _, fns in os.walk(t):
                for fn in fns:
                    p2 = os.path.join(dp, fn)
                    p1 = os.path.join(a.out, os.path.relpath(p2, t))
                    if open(p1, "rb").read() != open(p2, "rb").read():
                        ok = False
                        log("DIFFERS:", os.path.relpath(p2, t))
            log("determinism:", "identical bytes" if ok else "MISMATCH")
            if not ok:
                sys.exit(1)


if __name__ == "__main__":
    main()
