#!/usr/bin/env python3
"""Mechanically mutated HumanEval completions, for verdict-agreement tests.

Takes each canonical solution and applies small deterministic source mutations
(operator swaps, off-by-one constants, dropped lines, flipped booleans, early
returns, injected infinite loops and exceptions), writing an openai/human-eval
samples file with `task_id` and `completion`. Mutants are a mix of passing and
failing programs; the checker under test must agree with the reference on each.
Standard library only. Usage:
  mutate_samples.py --problems HumanEval.jsonl.gz --out S.jsonl [--per-task 3] [--seed 1]
"""
import argparse
import gzip
import json
import random
import re

SWAPS = [("<=", "<"), ("<", "<="), (">=", ">"), (">", ">="), ("==", "!="), ("!=", "=="), (" + ", " - "),
         (" - ", " + "), (" * ", " + "), ("True", "False"), ("False", "True"), (" and ", " or "),
         (" or ", " and "), ("[1:]", "[2:]"), ("[:-1]", "[:-2]"), ("range(1,", "range(0,"), ("0", "1"),
         ("1", "2"), ("reverse=True", "reverse=False"), ("min(", "max("), ("max(", "min(")]


def mutants(solution, rng):
    lines = solution.split("\n")
    out = []
    # operator / constant swaps, one occurrence at a time
    for old, new in SWAPS:
        positions = [m.start() for m in re.finditer(re.escape(old), solution)]
        if positions:
            at = rng.choice(positions)
            out.append(("swap " + old.strip() + "->" + new.strip(), solution[:at] + new + solution[at + len(old):]))
    # drop one non-empty body line (keeps indentation valid most of the time)
    body = [i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith(("def ", "return"))]
    if body:
        i = rng.choice(body)
        out.append(("drop line", "\n".join(lines[:i] + lines[i + 1:])))
    out.append(("return None", "    return None\n"))
    out.append(("raise", "    raise RuntimeError('mutant')\n"))
    out.append(("print noise", "    print('noise' * 100)\n" + solution))
    out.append(("unchanged", solution))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-task", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with gzip.open(args.problems, "rt", encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    written = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for problem in problems:
            candidates = mutants(problem["canonical_solution"], rng)
            chosen = rng.sample(candidates, min(args.per_task, len(candidates)))
            # A few non-terminating mutants: enough to cover timeouts without
            # letting the 3 s limit dominate the run time.
            if int(problem["task_id"].split("/")[1]) % 40 == 0:
                chosen[-1] = ("loop forever", "    while True:\n        pass\n")
            for index, (kind, completion) in enumerate(chosen):
                out.write(json.dumps({"task_id": problem["task_id"], "completion": completion,
                                      "sample_index": index, "mutation": kind}) + "\n")
                written += 1
    print(written)


if __name__ == "__main__":
    main()
