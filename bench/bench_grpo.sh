#!/bin/sh
# One GRPO step at a named model shape with random weights: prints the time
# of each phase (generation, reward, training) and the step's tokens/s, as
# `r1c grpo` logs them in metrics.jsonl. Needs ../shared/data (a real
# tokenizer and GSM8K prompts); says so and exits 0 when it is absent.
# usage: bench/bench_grpo.sh [SHAPE] [BUILD_DIR]   (default qwen2.5-0.5b, build)
SHAPE=${1:-qwen2.5-0.5b}
BUILD=${2:-build}
TOK=../shared/data/tokenizers/qwen3/tokenizer.json
DATA=../shared/data/gsm8k/test.jsonl
if [ ! -f "$TOK" ] || [ ! -f "$DATA" ]; then
    echo "bench_grpo: not measured: $TOK or $DATA is absent"
    exit 0
fi
W=$(mktemp -d /tmp/r1c-bench-grpo-XXXXXX)
trap 'rm -rf "$W"' EXIT
"$BUILD/r1c" init --shape "$SHAPE" --vocab 151936 --out "$W/model" >/dev/null || exit 1
cp "$TOK" "$W/model/tokenizer.json"
G=4 P=2 C=64
"$BUILD/r1c" grpo model="$W/model" data.path="$DATA" data.limit=8 template=qwen2.5 \
    group_size=$G prompts_per_step=$P max_completion_len=$C max_prompt_len=256 micro_batch=4 steps=1 \
    save_every=0 save_at_end=false plot_every=0 samples_every=0 quiet=true run_dir="$W/run" rewards=math,format:0.5 || exit 1
python3 - "$W/run/metrics.jsonl" "$SHAPE" $G $P $C <<'PY' 2>/dev/null || grep '"step":1' "$W/run/metrics.jsonl"
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])][-1]
shape, G, P, C = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print("GRPO step, shape %s, %d prompts x G=%d, %d new tokens (mean %.0f), 1 optimizer step:" % (shape, P, G, C, m["completion_len/mean"]))
for k in ("time/generate", "time/reward", "time/train", "time/step"):
    print("  %-14s %8.2f s" % (k[5:], m[k]))
print("  %-14s %8.1f tokens/s (generated + trained tokens / step time)" % ("whole step", m["tokens_per_s"]))
PY
