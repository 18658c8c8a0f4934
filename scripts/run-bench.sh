#!/bin/sh
# Runs every benchmark binary in BUILD/bench from the repository root.
BUILD=${1:-build}
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    case "$b" in *.d) continue;; esac
    echo "== $(basename "$b")"
    "$b" || echo "$(basename "$b") failed"
done
