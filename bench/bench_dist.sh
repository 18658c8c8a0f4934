#!/bin/sh
# Data-parallel GRPO throughput: the same global batch (prompts x G) on one
# rank and on N ranks, the mean step time of each (the first step, warm-up,
# left out) and the ratio, the baseline being the 1-rank run of the same
# invocation. Ideal: N on N devices.
#
# usage: bench/bench_dist.sh [--gpus N | --nproc N] [--shape SHAPE] [--steps S] [--prompts P] [BUILD_DIR]
#   --gpus N   backend cuda, one GPU per rank, the nccl communicator (a GPU machine)
#   --nproc N  backend cpu, tcp (default: --nproc 2). The ranks share this
#              machine's cores (OMP_NUM_THREADS is split between them), so on one
#              machine the CPU ratio measures what data parallelism costs, not a
#              speed-up; across machines it is the speed-up.
#   --shape    a shape of `r1c init` with the Qwen3 tokenizer and GSM8K prompts from
#              ../shared/data (default for --gpus: qwen2.5-0.5b), or `demo` (default
#              for --nproc: the tiny model `r1c demo --quick` trains, no data needed)
#   --prompts P, --group G, --completion C, --micro-batch MB: the step's shape
#              (default 8 prompts x G=4, 64 new tokens, micro-batch 8)
#   --beta B   KL coefficient (default 0: no reference model)
#   --zero     shard AdamW over the ranks (optim.zero)
# Environment: TOK, DATA override the tokenizer and the prompts of a --shape run.
set -e
N=2 GPUS=0 SHAPE= STEPS=4 P=8 G= C= MB=8 BETA=0 ZERO=false BUILD=build
while [ $# -gt 0 ]; do
    case "$1" in
    --gpus) GPUS=1 N=$2; shift 2;;
    --nproc) N=$2; shift 2;;
    --shape) SHAPE=$2; shift 2;;
    --steps) STEPS=$2; shift 2;;
    --prompts) P=$2; shift 2;;
    --group) G=$2; shift 2;;
    --completion) C=$2; shift 2;;
    --micro-batch) MB=$2; shift 2;;
    --beta) BETA=$2; shift 2;;
    --zero) ZERO=true; shift;;
    -h|--help) sed -n '2,22p' "$0"; exit 0;;
    *) BUILD=$1; shift;;
    esac
done
[ -n "$SHAPE" ] || { [ $GPUS = 1 ] && SHAPE=qwen2.5-0.5b || SHAPE=demo; }
R1C=$(cd "$(dirname "$BUILD/r1c")" && pwd)/r1c
W=$(mktemp -d /tmp/r1c-bench-dist-XXXXXX)
trap 'rm -rf "$W"' EXIT
if [ "$SHAPE" = demo ]; then
    "$R1C" demo --quick --sft-epochs 1 --base-only --run-dir "$W/demo" >/dev/null 2>&1
    MODEL="$W/demo/base-model" DATA="$W/demo/data/train.jsonl" TEMPLATE=r1-zero C=${C:-24} G=${G:-8}
else
    TOK=${TOK:-../shared/data/tokenizers/qwen3/tokenizer.json} DATA=${DATA:-../shared/data/gsm8k/train.jsonl}
    C=${C:-64} G=${G:-4}
    if [ ! -f "$TOK" ] || [ ! -f "$DATA" ]; then
        echo "bench_dist: not measured: $TOK or $DATA is absent (try --shape demo)"
        exit 0
    fi
    "$R1C" init --shape "$SHAPE" --tokenizer "$TOK" --out "$W/model" >/dev/null
    MODEL="$W/model" TEMPLATE=qwen2.5
fi
BACKEND=cpu
[ $GPUS = 1 ] && BACKEND=cuda
cat > "$W/recipe.yaml" <<EOF
model: $MODEL
data: {path: $DATA}
template: $TEMPLATE
system_prompt: "The Assistant thinks inside <think> </think> and then answers inside <answer> </answer>."
stop: ["</answer>"]
rewards: math,format:0.5
group_size: $G
prompts_per_step: $P
max_prompt_len: 256
max_completion_len: $C
micro_batch: $MB
gen_batch: $((P * G))
loss: {beta: $BETA}
optim: {lr: 1.0e-4, zero: $ZERO}
steps: $STEPS
save_every: 0
save_at_end: false
plot_every: 0
samples_every: 0
quiet: true
backend: $BACKEND
EOF
ARGS="--recipe $W/recipe.yaml"
NCPU=$(nproc)
# shellcheck disable=SC2086
if [ $GPUS = 1 ]; then
    # peak memory per GPU of the N-rank run (nvidia-smi every 100 ms)
    CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0} "$R1C" grpo $ARGS run_dir="$W/r1" >"$W/r1.log" 2>&1 &&
    { nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 100 >"$W/mem.txt" 2>/dev/null &
      SMI=$!
      "$R1C" launch --gpus "$N" -- grpo $ARGS run_dir="$W/rN" >"$W/rN.log" 2>&1; rc=$?
      kill $SMI 2>/dev/null; [ $rc = 0 ]; }
else
    OMP_NUM_THREADS=$NCPU "$R1C" grpo $ARGS run_dir="$W/r1" >"$W/r1.log" 2>&1
    "$R1C" launch --nproc "$N" --backend tcp -- grpo $ARGS run_dir="$W/rN" >"$W/rN.log" 2>&1
fi || { tail -20 "$W/r1.log" "$W/rN.log"; exit 1; }
python3 - "$W/r1/metrics.jsonl" "$W/rN/metrics.jsonl" "$N" "$SHAPE" "$BACKEND" "$P" "$G" "$C" "$W/mem.txt" <<'PY'
import json, os, sys
def load(p):
    rows = [json.loads(l) for l in open(p) if '"time/step"' in l]
    rows = rows[1:] if len(rows) > 1 else rows  # the first step warms up
    t = sum(r["time/step"] for r in rows) / len(rows)
    tps = sum(r["tokens_per_s"] for r in rows) / len(rows)
    ph = [sum(r.get(k, 0) for r in rows) / len(rows) for k in ("time/generate", "time/train")]
    return t, tps, [r["loss"] for r in rows], ph
(t1, k1, l1, p1), (tn, kn, ln, pn) = load(sys.argv[1]), load(sys.argv[2])
n, shape, be, P, G, C = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
comm = "nccl" if be == "cuda" else "tcp"
print("data-parallel GRPO, shape %s, backend %s, %s prompts x G=%s, up to %s new tokens per step" % (shape, be, P, G, C))
print("%-22s %10s %12s %8s %10s %10s" % ("", "s/step", "tokens/s", "ratio", "generate", "train"))
print("%-22s %10.3f %12.1f %8s %9.2fs %9.2fs" % ("1 rank (baseline)", t1, k1, "1.00x", p1[0], p1[1]))
print("%-22s %10.3f %12.1f %7.2fx %9.2fs %9.2fs" % ("%s ranks (%s)" % (n, comm), tn, kn, t1 / tn, pn[0], pn[1]))
print("loss, 1 rank:  %s" % " ".join("%.6g" % x for x in l1))
print("loss, %s ranks: %s" % (n, " ".join("%.6g" % x for x in ln)))
mem = sys.argv[9]
if os.path.exists(mem) and os.path.getsize(mem):
    peak = {}
    for line in open(mem):
        f = [x.strip() for x in line.split(",")]
        if len(f) == 2 and f[0].isdigit() and f[1].isdigit():
            peak[int(f[0])] = max(peak.get(int(f[0]), 0), int(f[1]))
    print("peak memory per GPU, %s ranks (nvidia-smi): %s" % (n, ", ".join("GPU%d %.1f GB" % (g, peak[g] / 1024) for g in sorted(peak))))
PY
