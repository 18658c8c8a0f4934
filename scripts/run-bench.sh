#!/bin/sh
# `make bench`: every benchmark, with its baseline measured in the same run.
# The model benchmark runs the small shape, and the real Qwen2.5-0.5B shape
# unless R1C_BENCH_QUICK=1.
BUILD=${1:-build}
echo "== bench_model (tiny)"
"$BUILD/bench/bench_model" --shape tiny
if [ "${R1C_BENCH_QUICK:-0}" != 1 ]; then
    echo "== bench_model (qwen2.5-0.5b)"
    "$BUILD/bench/bench_model" --shape qwen2.5-0.5b
fi
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    case "$b" in *.d|*/bench_model) continue;; esac
    echo "== $(basename "$b")"
    "$b" || echo "$(basename "$b") failed"
done
echo "== bench_grpo (tiny)"
./bench/bench_grpo.sh tiny "$BUILD"
if [ "${R1C_BENCH_QUICK:-0}" != 1 ]; then
    echo "== bench_grpo (qwen2.5-0.5b)"
    ./bench/bench_grpo.sh qwen2.5-0.5b "$BUILD"
fi
echo "== bench_dist (tiny demo model, 1 vs 2 CPU ranks over tcp)"
./bench/bench_dist.sh --nproc 2 "$BUILD"
