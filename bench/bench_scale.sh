#!/bin/sh
# Data-parallel scaling table at one model shape, for each rank count in a
# list: GRPO step time, tokens/s, speed-up and scaling efficiency against
# the first count in the list (normally 1); SFT tokens/s, efficiency and MFU;
# peak memory per GPU (nvidia-smi). The same global batch at every count.
#
# usage: bench/bench_scale.sh [--gpus "1 2 4 8" | --nproc "1 2"] [--shape SHAPE]
#          [--prompts P] [--group G] [--completion C] [--micro-batch MB]
#          [--beta B] [--zero] [--recompute] [--steps S]
#          [--sft-batch B] [--sft-len L] [--no-sft] [BUILD_DIR]
#   --gpus LIST   backend cuda, one GPU per rank, nccl (a GPU machine)
#   --nproc LIST  backend cpu, tcp ranks sharing this machine's cores
#   --shape       a shape of `r1c init` (random weights, the Qwen3 tokenizer,
#                 GSM8K prompts: ../shared/data or TOK=, DATA=), or `demo`
#                 (the tiny model `r1c demo --quick` trains; no data needed)
#   GRPO defaults: 64 prompts x G=8, 512 new tokens, micro-batch 16, beta 0;
#   SFT defaults: 64 examples per step of up to 512 tokens (GSM8K question ->
#   answer), S steps; the first step of each run is left out as warm-up.
# Environment: PEAK_TFLOPS, one device's dense bf16 peak for MFU (default
# 989, H100/H200 SXM; CPU runs print MFU only when it is set). MFU counts
# 6 x parameters x tokens per second (attention FLOPs left out).
set -e
LIST= GPUS=0 SHAPE= STEPS=4 P=64 G=8 C=512 MB=16 BETA=0 ZERO=false RECOMP=false SB=64 SL=512 SFT=1 BUILD=build
while [ $# -gt 0 ]; do
    case "$1" in
    --gpus) GPUS=1 LIST=$2; shift 2;;
    --nproc) LIST=$2; shift 2;;
    --shape) SHAPE=$2; shift 2;;
    --prompts) P=$2; shift 2;;
    --group) G=$2; shift 2;;
    --completion) C=$2; shift 2;;
    --micro-batch) MB=$2; shift 2;;
    --beta) BETA=$2; shift 2;;
    --zero) ZERO=true; shift;;
    --recompute) RECOMP=true; shift;;
    --steps) STEPS=$2; shift 2;;
    --sft-batch) SB=$2; shift 2;;
    --sft-len) SL=$2; shift 2;;
    --no-sft) SFT=0; shift;;
    -h|--help) sed -n '2,22p' "$0"; exit 0;;
    *) BUILD=$1; shift;;
    esac
done
[ -n "$LIST" ] || LIST="1 2"
[ -n "$SHAPE" ] || { [ $GPUS = 1 ] && SHAPE=qwen2.5-0.5b || SHAPE=demo; }
R1C=$(cd "$(dirname "$BUILD/r1c")" && pwd)/r1c
W=$(mktemp -d /tmp/r1c-bench-scale-XXXXXX)
trap 'rm -rf "$W"' EXIT
if [ "$SHAPE" = demo ]; then
    "$R1C" demo --quick --sft-epochs 1 --base-only --run-dir "$W/demo" >/dev/null 2>&1
    MODEL="$W/demo/base-model" DATA="$W/demo/data/train.jsonl" SFTDATA="$W/demo/data/sft.jsonl" TEMPLATE=r1-zero
    PF=prompt CF=completion
else
    TOK=${TOK:-../shared/data/tokenizers/qwen3/tokenizer.json} DATA=${DATA:-../shared/data/gsm8k/train.jsonl}
    if [ ! -f "$TOK" ] || [ ! -f "$DATA" ]; then
        echo "bench_scale: not measured: $TOK or $DATA is absent (try --shape demo)"
        exit 0
    fi
    "$R1C" init --shape "$SHAPE" --tokenizer "$TOK" --dtype bf16 --out "$W/model" >"$W/init.txt"
    MODEL="$W/model" SFTDATA=$DATA TEMPLATE=qwen2.5 PF=question CF=answer
fi
BACKEND=cpu
[ $GPUS = 1 ] && BACKEND=cuda
cat > "$W/grpo.yaml" <<EOF
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
recompute: $RECOMP
loss: {beta: $BETA}
optim: {lr: 1.0e-6, zero: $ZERO}
steps: $STEPS
save_every: 0
save_at_end: false
plot_every: 0
samples_every: 0
quiet: true
backend: $BACKEND
EOF
# SFT runs STEPS steps: the data cut to STEPS batches
head -n $((SB * STEPS)) "$SFTDATA" > "$W/sft.jsonl"
cat > "$W/sft.yaml" <<EOF
model: $MODEL
data: {path: $W/sft.jsonl, prompt_field: $PF, completion_field: $CF}
template: $TEMPLATE
max_len: $SL
batch: $SB
epochs: 1
optim: {lr: 1.0e-6, zero: $ZERO}
save_every: 0
quiet: true
backend: $BACKEND
EOF
# the parameter count (millions), for MFU
PARAMS=$(sed -n 's/.*, \([0-9.]*\)M parameters.*/\1/p' "$W/init.txt" 2>/dev/null || true)
NCPU=$(nproc)
# run KIND N: one run of grpo or sft on N ranks into $W/KIND-N
run() {
    kind=$1 n=$2 rc=
    args="--recipe $W/$kind.yaml run_dir=$W/$kind-$n"
    if [ $GPUS = 1 ]; then
        nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 100 >"$W/$kind-$n.mem" 2>/dev/null &
        smi=$!
        # shellcheck disable=SC2086
        if [ "$n" = 1 ]; then CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0} "$R1C" "$kind" $args
        else "$R1C" launch --gpus "$n" -- "$kind" $args; fi >"$W/$kind-$n.log" 2>&1 || rc=$?
        kill $smi 2>/dev/null || true
    else
        # shellcheck disable=SC2086
        if [ "$n" = 1 ]; then OMP_NUM_THREADS=$NCPU "$R1C" "$kind" $args
        else "$R1C" launch --nproc "$n" --backend tcp -- "$kind" $args; fi >"$W/$kind-$n.log" 2>&1 || rc=$?
    fi
    if [ -n "$rc" ]; then
        echo "bench_scale: $kind on $n ranks failed:"; tail -15 "$W/$kind-$n.log"; exit 1
    fi
}
for n in $LIST; do
    run grpo "$n"
    [ $SFT = 1 ] && run sft "$n"
done
python3 - "$W" "$LIST" "$SHAPE" "$BACKEND" "$P" "$G" "$C" "$SB" "$SL" "$SFT" "${PARAMS:-0}" "${PEAK_TFLOPS:-}" <<'PY'
import json, os, sys
W, ns, shape, be, P, G, C, SB, SL, sft, params, peak = sys.argv[1:13]
ns = [int(x) for x in ns.split()]
params = float(params) * 1e6
peak = float(peak) * 1e12 if peak else (989e12 if be == "cuda" else 0)
def load(kind, n):
    rows = [json.loads(l) for l in open("%s/%s-%d/metrics.jsonl" % (W, kind, n)) if '"time/step"' in l]
    rows = rows[1:] if len(rows) > 1 else rows  # warm-up
    mean = lambda k: sum(r.get(k, 0) for r in rows) / len(rows)
    return mean("time/step"), mean("tokens_per_s"), mean("time/generate"), mean("time/train"), [r["loss"] for r in rows]
def peakmem(kind, n):
    f = "%s/%s-%d.mem" % (W, kind, n)
    if not os.path.exists(f) or not os.path.getsize(f): return "-"
    m = {}
    for line in open(f):
        p = [x.strip() for x in line.split(",")]
        if len(p) == 2 and p[0].isdigit() and p[1].isdigit(): m[int(p[0])] = max(m.get(int(p[0]), 0), int(p[1]))
    return "%.1f GB" % (max(m.values()) / 1024 * 1.048576) if m else "-"
dev = "GPUs" if be == "cuda" else "ranks"
print("GRPO, shape %s, backend %s: %s prompts x G=%s, up to %s new tokens per step" % (shape, be, P, G, C))
print("%6s %10s %12s %9s %11s %9s %9s %14s" % (dev, "s/step", "tokens/s", "speed-up", "efficiency", "generate",
                                               "train", "peak per GPU"))
base, losses = None, []
for n in ns:
    t, k, tg, tt, loss = load("grpo", n)
    base = base or (t, k, n)
    sp = base[0] / t
    print("%6d %10.3f %12.1f %8.2fx %10.0f%% %8.2fs %8.2fs %14s" % (n, t, k, sp, 100 * sp * base[2] / n, tg, tt,
                                                                   peakmem("grpo", n)))
    losses.append("loss per step, %d %s: %s" % (n, dev, " ".join("%.6g" % x for x in loss)))
print("\n".join(losses))
if sft == "1":
    print("SFT, shape %s, backend %s: %s examples of up to %s tokens per step" % (shape, be, SB, SL))
    print("%6s %10s %12s %9s %11s %6s %14s" % (dev, "s/step", "tokens/s", "speed-up", "efficiency", "MFU", "peak per GPU"))
    base = None
    for n in ns:
        t, k = load("sft", n)[:2]
        base = base or (t, k, n)
        sp = base[0] / t
        mfu = "%5.1f%%" % (100 * 6 * params * k / (n * peak)) if peak and params else "     -"
        print("%6d %10.3f %12.1f %8.2fx %10.0f%% %s %14s" % (n, t, k, sp, 100 * sp * base[2] / n, mfu, peakmem("sft", n)))
PY
