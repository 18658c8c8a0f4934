#!/bin/sh
# One GRPO step at a named model shape with random weights: prints the time
# of each phase (generation, reward, training) and the step's tokens/s, as
# `r1c grpo` logs them in metrics.jsonl. Needs a real tokenizer and GSM8K
# prompts (../shared/data, or TOK= and DATA=); says so and exits 0 when
# they are absent.
# usage: bench/bench_grpo.sh [SHAPE] [BUILD_DIR]   (default qwen2.5-0.5b, build)
# Settings through the environment (defaults: a small CPU step):
#   BACKEND=cpu|cuda  G=4  P=2 (prompts)  C=64 (completion tokens)
#   BETA=0 (KL coefficient; > 0 runs the reference model too)  MB=4 (micro batch)
# On the GPU, peak device memory (nvidia-smi, every 100 ms) is printed too.
SHAPE=${1:-qwen2.5-0.5b}
BUILD=${2:-build}
TOK=${TOK:-../shared/data/tokenizers/qwen3/tokenizer.json}
DATA=${DATA:-../shared/data/gsm8k/test.jsonl}
BACKEND=${BACKEND:-cpu} G=${G:-4} P=${P:-2} C=${C:-64} BETA=${BETA:-0} MB=${MB:-4}
if [ ! -f "$TOK" ] || [ ! -f "$DATA" ]; then
    echo "bench_grpo: not measured: $TOK or $DATA is absent"
    exit 0
fi
W=$(mktemp -d /tmp/r1c-bench-grpo-XXXXXX)
trap 'kill $SMI 2>/dev/null; rm -rf "$W"' EXIT
"$BUILD/r1c" init --shape "$SHAPE" --vocab 151936 --out "$W/model" >/dev/null || exit 1
cp "$TOK" "$W/model/tokenizer.json"
SMI=
if [ "$BACKEND" != cpu ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$W/mem.txt" 2>/dev/null &
    SMI=$!
fi
"$BUILD/r1c" grpo model="$W/model" data.path="$DATA" data.limit=$((P * 2)) template=qwen2.5 backend="$BACKEND" \
    group_size=$G prompts_per_step=$P max_completion_len=$C max_prompt_len=512 micro_batch=$MB gen_batch=$((G * P)) \
    loss.beta=$BETA steps=1 save_every=0 save_at_end=false plot_every=0 samples_every=0 quiet=true \
    run_dir="$W/run" rewards=math,format:0.5 || exit 1
[ -n "$SMI" ] && kill $SMI 2>/dev/null
python3 - "$W/run/metrics.jsonl" "$SHAPE" $G $P $C "$BACKEND" "$BETA" "$W/mem.txt" <<'PY' 2>/dev/null || grep '"step":1' "$W/run/metrics.jsonl"
import json, os, sys
m = [json.loads(l) for l in open(sys.argv[1])][-1]
shape, G, P, C, be, beta, mem = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
print("GRPO step on %s, shape %s, %d prompts x G=%d, %d new tokens max (mean %.0f), beta %s, 1 optimizer step:"
      % (be, shape, P, G, C, m["completion_len/mean"], beta))
for k in ("time/generate", "time/reward", "time/train", "time/step"):
    print("  %-14s %8.2f s" % (k[5:], m[k]))
print("  %-14s %8.1f tokens/s (generated + trained tokens / step time)" % ("whole step", m["tokens_per_s"]))
if "logp_diff/max" in m:
    print("  %-14s max %.2e, mean %.2e (sampler vs trainer log-prob)" % ("log-prob gap", m["logp_diff/max"], m.get("logp_diff/mean", float("nan"))))
if os.path.exists(mem) and os.path.getsize(mem):
    print("  %-14s %8.1f GB (nvidia-smi, whole device)" % ("peak memory", max(int(x) for x in open(mem) if x.strip()) / 1024))
PY
