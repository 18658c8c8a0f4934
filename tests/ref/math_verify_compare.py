#!/usr/bin/env python3
"""Compares r1c's expected verdicts (tests/fixtures/rewards/math_cases.tsv,
all of which r1c passes: test_reward_math) with math_verify's on the same
(gold, prediction) pairs, and writes the disagreements to
tests/ref/math_verify_disagreements.txt.
Needs: pip install math-verify (uses sympy). Run from the repository root:
  python3 tests/ref/math_verify_compare.py"""
import collections, os, sys
from math_verify import parse, verify

def mv_parse(s):
    # math_verify extracts LaTeX from text: give it a math environment
    p = parse("$" + s + "$")
    return p if p else parse(s)

def main():
    path = "tests/fixtures/rewards/math_cases.tsv"
    rows = [l.rstrip("\n").split("\t") for l in open(path, encoding="utf-8") if l.strip() and not l.startswith("#")]
    dis = []
    per_group = collections.Counter()
    total = collections.Counter()
    for exp, gold, pred, group in rows:
        total[group] += 1
        try:
            got = 1 if verify(mv_parse(gold), mv_parse(pred)) else 0
        except Exception as e:  # math_verify raising is a disagreement too
            got = "error: %s" % type(e).__name__
        if got != int(exp):
            dis.append((group, exp, got, gold, pred))
            per_group[group] += 1
    out = os.path.join("tests", "ref", "math_verify_disagreements.txt")
    with open(out, "w", encoding="utf-8") as f:
        f.write("# r1c expected (passes) vs math_verify on math_cases.tsv: %d cases, %d disagreements\n" % (len(rows), len(dis)))
        f.write("# group: " + ", ".join("%s %d/%d" % (g, per_group[g], total[g]) for g in sorted(total)) + "\n")
        f.write("# group\tr1c\tmath_verify\tgold\tprediction\n")
        for d in dis:
            f.write("\t".join(str(x) for x in d) + "\n")
    print("%d cases, %d disagreements -> %s" % (len(rows), len(dis), out))
    for g in sorted(total):
        print("  %-12s %3d / %3d" % (g, per_group[g], total[g]))

if __name__ == "__main__":
    sys.exit(main())
