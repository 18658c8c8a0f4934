#!/bin/sh
# r1c against PyTorch + HF transformers on the same GPU, in one call: for
# each shape, bench_cuda_model (r1c, bf16 GEMMs) and torch_cuda_baseline.py
# run the same training and generation workloads; prints both and the
# ratios (PyTorch's generation: the best of 3 calls, its rate varies with
# the host from call to call). Needs a GPU, and python3 with torch + transformers for the
# baseline (without them r1c's numbers are printed alone).
# usage: bench/cuda/bench_cuda.sh [BUILD_DIR] [SHAPE...]
#   (default: build, qwen2.5-0.5b r1-distill-qwen-1.5b)
BUILD=${1:-build}
[ $# -gt 0 ] && shift
SHAPES=${*:-"qwen2.5-0.5b r1-distill-qwen-1.5b"}
BIN="$BUILD/bench-cuda/bench_cuda_model"
[ -x "$BIN" ] || { echo "bench_cuda: $BIN not built (make CUDA=1)"; exit 1; }
field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" "$2" | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
W=$(mktemp -d /tmp/r1c-bench-cuda-XXXXXX)
trap 'rm -rf "$W"' EXIT
for s in $SHAPES; do
    echo "== $s"
    "$BIN" --shape "$s" | tee "$W/r1c.txt" || exit 1
    if python3 -c "import torch, transformers" 2>/dev/null; then
        python3 "$(dirname "$0")/torch_cuda_baseline.py" --shape "$s" | tee "$W/torch.txt"
    else
        echo "pytorch baseline: not measured (python3 with torch + transformers not found)" > "$W/torch.txt"
        cat "$W/torch.txt"
    fi
    rg=$(field gen_tok_s "$W/r1c.txt"); rt=$(field train_tok_s "$W/r1c.txt")
    tg=$(field gen_tok_s "$W/torch.txt"); tt=$(field train_tok_s "$W/torch.txt")
    tb=$(field train_bf16_tok_s "$W/torch.txt")
    runs=$(sed -n 's/.*"gen_tok_s_runs": \[\([^]]*\)\].*/\1/p' "$W/torch.txt" | tail -1)
    [ -n "$runs" ] && echo "pytorch generate, tokens/s of each call: $runs (the best is compared)"
    printf '%-44s %12s %12s %8s\n' "$s tokens/s" r1c pytorch ratio
    printf '%-44s %12.0f %12.0f %8s\n' "generate (256 seqs, 128 + 256 tokens)" "$rg" "${tg:-0}" "$(ratio "$rg" "${tg:-0}")"
    printf '%-44s %12.0f %12.0f %8s\n' "train 16x1024 (autocast bf16, fp32 master)" "$rt" "${tt:-0}" "$(ratio "$rt" "${tt:-0}")"
    printf '%-44s %12.0f %12.0f %8s\n' "train 16x1024 (pytorch pure bf16)" "$rt" "${tb:-0}" "$(ratio "$rt" "${tb:-0}")"
done
