#!/usr/bin/env bash
# One command: install dependencies, build, and run the main job: the sandbox
# selftest on HumanEval and a `score` of the example samples file.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
dataset="${QUANTEVAL_DATASET:-humaneval}"   # downloaded once into ~/.cache/quanteval when missing
[ -z "${QUANTEVAL_DATASET:-}" ] && [ -f ../shared/datasets/HumanEval.jsonl.gz ] && dataset=../shared/datasets/HumanEval.jsonl.gz
build/harness/quanteval selftest --dataset "$dataset"
build/harness/quanteval score --samples docs/examples/samples.jsonl --dataset "$dataset" --out build/example-score
cat build/example-score/report.md
