#!/bin/sh
# Data-parallel GRPO throughput: the same global batch (prompts x G) on one
# rank and on N ranks, the mean step time of each (the first step, warm-up,
# left out), the ratio, the time spent generating and training, the loss
# per step and the peak memory per GPU; the baseline is the 1-rank run of
# the same invocation. Ideal: N on N devices. (bench/bench_scale.sh over
# the list "1 N", GRPO only, with smaller default steps.)
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
#              (default 8 prompts x G=4, 64 new tokens, micro-batch 8; demo: G=8, 24 tokens)
#   --beta B   KL coefficient (default 0: no reference model)
#   --zero     shard AdamW over the ranks (optim.zero)
# Environment: TOK, DATA override the tokenizer and the prompts of a --shape run.
N=2 MODE=--nproc SHAPE= STEPS=4 P=8 G= C= MB=8 EXTRA= BUILD=build
while [ $# -gt 0 ]; do
    case "$1" in
    --gpus) MODE=--gpus N=$2; shift 2;;
    --nproc) N=$2; shift 2;;
    --shape) SHAPE=$2; shift 2;;
    --steps) STEPS=$2; shift 2;;
    --prompts) P=$2; shift 2;;
    --group) G=$2; shift 2;;
    --completion) C=$2; shift 2;;
    --micro-batch) MB=$2; shift 2;;
    --beta) EXTRA="$EXTRA --beta $2"; shift 2;;
    --zero) EXTRA="$EXTRA --zero"; shift;;
    -h|--help) sed -n '2,22p' "$0"; exit 0;;
    *) BUILD=$1; shift;;
    esac
done
[ -n "$SHAPE" ] || { [ $MODE = --gpus ] && SHAPE=qwen2.5-0.5b || SHAPE=demo; }
if [ "$SHAPE" = demo ]; then G=${G:-8} C=${C:-24}; else G=${G:-4} C=${C:-64}; fi
# shellcheck disable=SC2086
exec sh "$(dirname "$0")/bench_scale.sh" $MODE "1 $N" --shape "$SHAPE" --steps "$STEPS" --prompts "$P" --group "$G" \
    --completion "$C" --micro-batch "$MB" --no-sft $EXTRA "$BUILD"
