#!/usr/bin/env python3
"""Checks that a model directory saved by r1c loads in unmodified transformers
and reproduces r1c's logits.

Usage: check_saved_model.py DIR INPUT.json R1C_OUT.safetensors [--tol 1e-4]

  DIR                  what r1c saved (config.json + model*.safetensors)
  INPUT.json           {"input_ids": [[...], ...]} (B rows of equal length)
  R1C_OUT.safetensors  must hold `logits` (B,T,V), any float dtype

Loads DIR with AutoModelForCausalLM.from_pretrained (fp32 compute, eager
attention), runs input_ids, prints the max abs logits error, and exits 1 when
it exceeds --tol, when loading reports missing/unexpected/mismatched tensors,
or when shapes differ.  Exit 2: usage / missing python packages.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("input_json")
    ap.add_argument("r1c_out")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    try:
        import torch
        import transformers
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print("check_saved_model: missing python package: %s" % e, file=sys.stderr)
        sys.exit(2)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)

    with open(a.input_json) as f:
        ids = torch.tensor(json.load(f)["input_ids"], dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    ref = load_file(a.r1c_out)
    if "logits" not in ref:
        print("FAIL: %s has no `logits` tensor (has %s)" % (a.r1c_out, sorted(ref)))
        sys.exit(1)
    r1c = ref["logits"].to(torch.float64)

    model, info = AutoModelForCausalLM.from_pretrained(
        a.dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    # transformers may list tied lm_head.weight as missing for tied models
    if model.config.tie_word_embeddings and "missing_keys" in bad:
        rest = {k for k in bad["missing_keys"] if k != "lm_head.weight"}
        if rest:
            bad["missing_keys"] = rest
        else:
            del bad["missing_keys"]
    if bad:
        print("FAIL: loading %s reported %s" % (a.dir, bad))
        sys.exit(1)
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=False).logits.to(torch.float64)
    if r1c.dim() == 2 and out.shape[0] == 1:
        r1c = r1c[None]
    if tuple(out.shape) != tuple(r1c.shape):
        print("FAIL: logits shape transformers %s vs r1c %s" % (tuple(out.shape), tuple(r1c.shape)))
        sys.exit(1)
    err = (out - r1c).abs().max().item()
    ok = err <= a.tol and err == err
    print("%s: %s max_abs_err=%.3e tol=%.1e (model_type=%s, transformers %s, torch %s)" %
          ("OK" if ok else "FAIL", a.dir, err, a.tol, model.config.model_type,
           transformers.__version__, torch.__version__))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
