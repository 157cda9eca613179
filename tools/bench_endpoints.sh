#!/usr/bin/env bash
# `quanteval run --endpoint` against 1, 2 and 4 local `quanteval serve`
# processes that share the same CPU cores (all pinned to the same --cores set;
# each server gets cores/servers runtime threads, at least 1), rounds
# alternating so that load from other processes hits every configuration alike.
# Prints aggregate generated tokens/s (from report.json's backend object), the
# ratio to one server measured in the same round, and the client's own time per
# request (building the JSON body and checking the answer).
#   tools/bench_endpoints.sh [--model DIR] [--cores 0-1] [--tasks N] [--tokens N] [--rounds N]
# Without --model a tiny random-weight Qwen3 with the real tokenizer is built
# (tests/run/make_tiny_model.py; its 151936-row lm_head dominates the cost).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
binary="${QUANTEVAL_BINARY:-$root/build/harness/quanteval}"
dataset="${QUANTEVAL_DATASET:-$root/../shared/datasets/HumanEval.jsonl.gz}"
tokenizer="${QUANTEVAL_TOKENIZER:-$root/../shared/fixtures/qwen3-tokenizer}"
model="" cores="0-1" tasks=32 tokens=64 rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --cores) cores=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "$model" ]; then
  python3 "$root/tests/run/make_tiny_model.py" --tokenizer "$tokenizer" --out "$work/tiny" >/dev/null
  model="$work/tiny"
fi
ncores=$(taskset -c "$cores" nproc)

# Starts $1 servers on the core set; their URLs in $urls.
start_servers() {
  local n=$1 threads=$(( ncores / $1 ))
  [ "$threads" -lt 1 ] && threads=1
  urls=() pids=()
  for i in $(seq "$n"); do
    taskset -c "$cores" "$binary" serve --model "$model" --port 0 --threads "$threads" --max-batch 16 \
      >"$work/serve$i.out" 2>"$work/serve$i.err" &
    pids+=($!)
  done
  for i in $(seq "$n"); do
    until [ -s "$work/serve$i.out" ]; do sleep 0.1; done
    urls+=("--endpoint" "http://127.0.0.1:$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["port"])' "$work/serve$i.out")")
  done
}
stop_servers() {
  for p in "${pids[@]}"; do kill "$p"; wait "$p" || true; done
  pids=()
}

printf "%-5s %-7s %-14s %12s %9s %14s %8s\n" round servers threads/server gen_tok/s ratio client_ms/req wall_s
for r in $(seq "$rounds"); do
  base=""
  for n in 1 2 4; do
    start_servers "$n"
    threads=$(( ncores / n )); [ "$threads" -lt 1 ] && threads=1
    out="$work/run-$r-$n"
    # The same total requests in flight whatever the number of servers.
    "$binary" run --model "$model" --out "$out" --mode standard --limit "$tasks" --max-new-tokens "$tokens" \
      --dataset "$dataset" --workers 1 --quiet "${urls[@]}" --concurrency $(( 16 / n )) >/dev/null
    stop_servers
    read -r tok_s client_ms wall < <(python3 - "$out/report.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))["backend"]
print(f'{b["generated_tokens_per_second"]:.1f} {b["client_ms_per_request"]:.3f} {b["wall_seconds"]:.2f}')
PY
)
    [ -z "$base" ] && base=$tok_s
    printf "%-5s %-7s %-14s %12s %9s %14s %8s\n" "$r" "$n" "$threads" "$tok_s" \
      "$(awk "BEGIN { printf \"%.2f\", $tok_s / $base }")" "$client_ms" "$wall"
  done
done
