#!/usr/bin/env python3
"""HF `tokenizers` encode throughput on the same text bench_tokenizer.c
uses (GSM8K train question + "\\n\\n" + answer, one encode call per line,
single thread). Prints one line per tokenizer: `hf_mbps NAME VALUE`."""
import json
import os
import sys
import time

from tokenizers import Tokenizer

shared = os.path.join("..", "shared", "data")
texts = []
with open(os.path.join(shared, "gsm8k", "train.jsonl"), encoding="utf-8") as f:
    for line in f:
        if line.strip():
            o = json.loads(line)
            texts.append(o["question"] + "\n\n" + o["answer"])
nbytes = sum(len(t.encode("utf-8")) for t in texts)
for name in sys.argv[1:] or ["qwen3", "llama3"]:
    path = os.path.join(shared, "tokenizers", name, "tokenizer.json")
    if not os.path.exists(path):
        continue
    tk = Tokenizer.from_file(path)
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        for t in texts:
            tk.encode(t, add_special_tokens=False)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print("hf_mbps %s %.2f" % (name, nbytes / best / 1e6))
