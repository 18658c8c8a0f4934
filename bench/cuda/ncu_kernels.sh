#!/bin/sh
# Device time per kernel from Nsight Compute, summed over its launches:
# the per-kernel tables in docs/cuda.md and bench/RESULTS.md come from it.
# usage: bench/cuda/ncu_kernels.sh [-n TOP] LOG
#          LOG: the output of `ncu --metrics gpu__time_duration.sum
#          --print-summary per-kernel ...`
#        bench/cuda/ncu_kernels.sh [-n TOP] -- COMMAND...
#          runs ncu on COMMAND first (clocks left alone, profiler window
#          from the program: bench_cuda_model --ncu-train or --ncu-steps A:B;
#          NCU_ARGS="--graph-profiling node" times the kernels inside the
#          decode step's CUDA graphs one by one)
# Kernels are named without their template arguments; cuBLAS's nvjet
# kernels keep their tile configuration and grid.
TOP=40
if [ "$1" = "-n" ]; then TOP=$2; shift 2; fi
if [ "$1" = "--" ]; then
    shift
    NCU=${NCU:-ncu}
    command -v "$NCU" >/dev/null || NCU=/usr/local/cuda/bin/ncu
    LOG=$(mktemp /tmp/r1c-ncu-XXXXXX)
    trap 'rm -f "$LOG"' EXIT
    # shellcheck disable=SC2086 # NCU_ARGS: extra ncu options, split on spaces
    "$NCU" --clock-control none --profile-from-start off --metrics gpu__time_duration.sum \
        --print-summary per-kernel $NCU_ARGS "$@" > "$LOG" 2>&1 || { tail -5 "$LOG"; exit 1; }
else
    LOG=$1
fi
[ -f "$LOG" ] || { echo "usage: $0 [-n TOP] LOG | [-n TOP] -- COMMAND..." >&2; exit 2; }
awk '
/, Device [0-9]+, CC [0-9.]+, Invocations [0-9]+ *$/ {
    line = $0
    sub(/^ +/, "", line)
    inv = line
    sub(/.*Invocations /, "", inv)
    name = line
    sub(/ *\(.*/, "", name)
    sub(/^void /, "", name)
    sub(/<.*/, "", name)
    if (name ~ /^nvjet/) {
        grid = line
        sub(/^[^(]*\(/, "", grid)
        sub(/\)x\(.*/, "", grid)
        name = name " grid (" grid ")"
    }
    pending = 1
    next
}
pending && $1 == "gpu__time_duration.sum" {
    f = $2 == "ns" ? 0.001 : $2 == "ms" ? 1000 : $2 == "s" ? 1e6 : 1
    us = $NF * f * inv
    t[name] += us
    c[name] += inv
    total += us
    pending = 0
}
END {
    if (!total) { print "ncu_kernels: no per-kernel summary found"; exit 1 }
    printf "total %.0f us of kernel time\n", total
    for (k in t) printf "%12.0f us %6d calls %10.2f us avg %5.1f%%  %s\n", t[k], c[k], t[k] / c[k], 100 * t[k] / total, k
}' "$LOG" | { read -r head; echo "$head"; sort -rn | head -n "$TOP"; }
