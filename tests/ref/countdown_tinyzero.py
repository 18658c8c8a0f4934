#!/usr/bin/env python3
"""Writes tests/fixtures/rewards/countdown_tinyzero.jsonl: countdown inputs
scored by a re-implementation of TinyZero's reward
(verl/utils/reward_score/countdown.py at TinyZero 95df88f), written from its
published behaviour: text after the first "Assistant:" (or
"<|im_start|>assistant", else score 0), its last line, the last
<answer>(.*?)</answer> there, numbers by \\d+ as a sorted multiset, the
character whitelist [\\d+\\-*/().\\s], Python eval, abs(result-target) < 1e-5.
Scores: 0 no equation, 0.1 (format_score) invalid/wrong, 1.0 right.
Run: python3 tests/ref/countdown_tinyzero.py  (no dependencies)."""
import json, re, os

def extract_solution(s):
    if "Assistant:" in s:
        s = s.split("Assistant:", 1)[1]
    elif "<|im_start|>assistant" in s:
        s = s.split("<|im_start|>assistant", 1)[1]
    else:
        return None
    s = s.split("\n")[-1]
    m = list(re.finditer(r"<answer>(.*?)</answer>", s))
    return m[-1].group(1).strip() if m else None

def validate_equation(eq, nums):
    try:
        used = sorted(int(n) for n in re.findall(r"\d+", eq))
        return used == sorted(nums)
    except Exception:
        return False

def evaluate_equation(eq):
    try:
        if not re.match(r"^[\d+\-*/().\s]+$", eq):
            raise ValueError("Invalid characters in equation.")
        return eval(eq, {"__builtins__": None}, {})
    except Exception:
        return None

def compute_score(solution_str, ground_truth, format_score=0.1, score=1.0):
    target, numbers = ground_truth["target"], ground_truth["numbers"]
    eq = extract_solution(solution_str)
    if eq is None:
        return 0
    if not validate_equation(eq, numbers):
        return format_score
    try:
        r = evaluate_equation(eq)
        if r is None:
            return format_score
        return score if abs(r - target) < 1e-5 else format_score
    except Exception:
        return format_score

P = "User: Using the numbers [...], create an equation.\nAssistant: Let me solve this step by step.\n<think> try things </think>\n"
cases = []
def add(body, nums, target, prefix=P):
    cases.append({"completion": prefix + body, "numbers": nums, "target": target})

nums, t = [44, 19, 35], 98
for body in ["<answer>44 + 19 + 35</answer>", "<answer> (44 + 19) + 35 </answer>", "<answer>44+19+35</answer>",
             "<answer>44 + 19 + 35 = 98</answer>", "<answer>44 + 19 + 36</answer>", "<answer>44 + 19</answer>",
             "<answer>44 + 19 + 35 + 35</answer>", "<answer>44 * 19 - 35</answer>", "<answer>44 + 19 + 35.0</answer>",
             "<answer>44 + 19 + 35</answer> trailing", "<answer>1</answer> <answer>44 + 19 + 35</answer>",
             "<answer>44 + 19 + 35</answer> <answer>1</answer>", "no answer tag", "<answer>44 + 19 + 35</answer>\n",
             "<answer>44 + 19 + 35</answer>\nmore text", "<answer>\n44 + 19 + 35\n</answer>", "<answer></answer>",
             "<answer>44 + 19 + x35</answer>", "<answer>(44 + 19 + 35</answer>", "<answer>44 + 19 + 35)</answer>",
             "<answer>44 ** 1 + 19 + 35</answer>", "<answer>[44 + 19] + 35</answer>", "<answer>44 + 19 + 35/0</answer>",
             "<answer>044 + 19 + 35</answer>", "<answer>44 + 19 + 35 </answer >", "<answer>44 + 19 + 35</ answer>",
             "<answer>44 // 1 + 19 + 35</answer>", "<answer>+44 + 19 + 35</answer>", "<answer>--44 + 19 + 35</answer>",
             "<answer>44 + 19 +35 </answer><answer>", "<answer>4 4 + 19 + 35</answer>", "<answer>(44)(19)+35</answer>"]:
    add(body, nums, t)
add("<answer>44 + 19 + 35</answer>", nums, t, prefix="no marker here\n")
add("<answer>44 + 19 + 35</answer>", nums, t, prefix="<|im_start|>assistant\n")
add("<answer>44 + 19 + 35</answer>", nums, t, prefix="")
for n3, tg, body in [([3, 4, 6], 18, "(6 / 4) * 3 * 4"[0:0] + "6 / (4 / 3) * 4"), ([3, 4, 6], 18, "6 * 3 * (4 / 4)"),
                     ([2, 3, 7], 14, "7 * (3 - 2) * 2"), ([2, 3, 7], 14, "7 * 2 * 3 / 3"), ([2, 3, 7], 14, "7 / 3 * 2 * 3"),
                     ([1, 2, 3], 0, "1 + 2 - 3"), ([1, 2, 3], -4, "1 - 2 - 3"), ([1, 3, 9], 3, "9 / 3 * 1"),
                     ([5, 5, 2], 1, "(5 + 5) / 2 - 4"), ([5, 5, 2], 5, "5 * 5 / 5"), ([5, 5, 2], 5, "(5 + 5) / 2"),
                     ([5, 5, 2], 0, "(5 - 5) / 2"), ([5, 5, 2], 0, "2 / (5 - 5)"), ([10, 3, 3], 1, "10 / 3 - 3"),
                     ([10, 3, 3], 10, "10 * 3 / 3"), ([7, 2, 4], 14, "7 * 2 ** 1"), ([1, 2, 3, 4], 24, "1 * 2 * 3 * 4"),
                     ([1, 2, 3, 4], 24, "(1 + 2 + 3) * 4"), ([1, 2, 3, 4], 10, "1 + 2 + 3 + 4"), ([1, 2, 3, 4], 10, "4 + 3 + 2 + 1 + 0"),
                     ([1, 2, 3, 4], 2, "4 / 2 * 1 + 3 - 3"), ([25, 50, 75], 150, "25 + 50 + 75"), ([25, 50, 75], 3, "75 / 25 * 50 / 50"),
                     ([6, 1, 7], 1, "7 - 6 * 1"), ([6, 1, 7], 1, "(7 - 6) ** 1"), ([6, 1, 7], 42, "6 * 7 * 1."),
                     ([8, 2, 3], 4, "8 / 2 / 3 * 3"[0:0] + "(8 / 2) * (3 / 3)"), ([8, 2, 3], 12, "8 * 3 / 2"),
                     ([8, 2, 3], 1, "8 / (2 * 3) - 1/3"), ([1, 1, 1], 3, "1 + 1 + 1"), ([1, 1, 1], 1, "1 * 1 * 1")]:
    add(f"<answer>{body}</answer>", n3, tg)
for c in cases:
    c["tinyzero_score"] = compute_score(c["completion"], {"target": c["target"], "numbers": c["numbers"]})
out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "rewards", "countdown_tinyzero.jsonl")
with open(out, "w") as f:
    for c in cases:
        f.write(json.dumps(c) + "\n")
print(len(cases), "cases ->", out)
