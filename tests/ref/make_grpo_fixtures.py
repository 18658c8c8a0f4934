#!/usr/bin/env python3
"""PyTorch reference for r1c's GRPO losses (src/train/grpo_loss.c).

Writes tests/fixtures/grpo/cases.json: random per-token log-probs, masks and
rewards, and for each configuration (loss type x KL estimator x clipping x
beta x advantage scaling, mu > 1 through old != new log-probs) the loss and
d loss / d logp computed by autograd on the formulas as TRL's GRPOTrainer
writes them (min of clipped/unclipped surrogate, k1/k2/k3 KL, grpo / dapo /
dr_grpo aggregation), in float64.

Usage: python3 tests/ref/make_grpo_fixtures.py
"""
import json
import os

import torch

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

S, G, T = 6, 3, 7  # 6 sequences = 2 groups of 3, 7 completion positions


def advantages(rewards, G, scale):
    r = rewards.view(-1, G)
    mean = r.mean(dim=1, keepdim=True)
    if scale == "group":
        std = r.std(dim=1, keepdim=True)
    elif scale == "batch":
        std = rewards.std().expand_as(mean)
    else:
        std = None
    a = r - mean
    if std is not None:
        a = a / (std + 1e-4)
    return a.view(-1)


def loss_fn(logp, old, ref, mask, adv, cfg, max_len):
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 1 - cfg["eps_low"], 1 + cfg["eps_high"])
    l1 = ratio * adv[:, None]
    l2 = clipped * adv[:, None]
    per_tok = -torch.min(l1, l2)
    if cfg["beta"] != 0:
        d = ref - logp
        if cfg["kl"] == "k1":
            kl = -d
        elif cfg["kl"] == "k2":
            kl = 0.5 * d * d
        else:
            kl = torch.exp(d) - d - 1
        per_tok = per_tok + cfg["beta"] * kl
    if cfg["type"] == "grpo":
        return ((per_tok * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    if cfg["type"] == "dapo":
        return (per_tok * mask).sum() / mask.sum().clamp(min=1)
    return (per_tok * mask).sum() / (logp.shape[0] * max_len)


def main():
    logp = -torch.rand(S, T) * 3
    # old and ref differ by up to +-0.4 so some ratios leave [0.8, 1.28]
    old = logp + (torch.rand(S, T) - 0.5) * 0.8
    ref = logp + (torch.rand(S, T) - 0.5) * 0.6
    mask = (torch.rand(S, T) > 0.25).double()
    mask[2, :] = 0
    mask[2, 0] = 1  # a one-token sequence
    rewards = torch.tensor([1.0, 0.0, 0.5, 1.0, 1.0, 0.0])
    cases = []
    for typ in ["grpo", "dapo", "dr_grpo"]:
        for kl in ["k1", "k2", "k3"]:
            for beta in [0.0, 0.04]:
                if beta == 0 and kl != "k3":
                    continue
                for scale in ["group", "batch", "none"]:
                    for same_old in [True, False]:
                        cfg = dict(type=typ, kl=kl, beta=beta, eps_low=0.2, eps_high=0.28, scale=scale,
                                   max_len=T + 3)
                        adv = advantages(rewards, G, scale)
                        lp = logp.clone().requires_grad_(True)
                        o = logp.clone() if same_old else old
                        loss = loss_fn(lp, o, ref, mask, adv, cfg, cfg["max_len"])
                        loss.backward()
                        cfg.update(mu1=same_old, loss=loss.item(), grad=lp.grad.flatten().tolist(),
                                   adv=adv.tolist())
                        cases.append(cfg)
    out = dict(S=S, G=G, T=T, logp=logp.flatten().tolist(), old=old.flatten().tolist(),
               ref=ref.flatten().tolist(), mask=mask.flatten().tolist(), rewards=rewards.tolist(), cases=cases)
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "grpo", "cases.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote %s: %d cases" % (path, len(cases)))


if __name__ == "__main__":
    main()
