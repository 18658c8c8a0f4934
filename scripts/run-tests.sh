#!/bin/sh
# Runs every test binary in BUILD/tests from the repository root and
# prints one line per test; exits non-zero if any failed.
BUILD=${1:-build}
# Tests are not benchmarks: idle OpenMP threads sleep instead of spinning,
# which keeps a loaded machine (or a CI runner) from crawling.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# Tests that drive the CLI run the binary of the same build (ASan too).
export R1C_BIN="$BUILD/r1c"
pass=0; fail=0; failed=""
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue;; esac
    name=$(basename "$t")
    start=$(date +%s)
    if "$t" > "$BUILD/tests/$name.log" 2>&1; then
        pass=$((pass + 1)); status=ok
    else
        fail=$((fail + 1)); status=FAIL; failed="$failed $name"
    fi
    secs=$(( $(date +%s) - start ))
    skips=$(grep -c '^SKIP' "$BUILD/tests/$name.log")
    printf '%-34s %-4s %3ss  (%s skipped)\n' "$name" "$status" "$secs" "$skips"
    grep '^SKIP' "$BUILD/tests/$name.log" | sed 's/^/    /'
    [ $status = FAIL ] && sed 's/^/    | /' "$BUILD/tests/$name.log" | tail -30
done
echo "tests: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
