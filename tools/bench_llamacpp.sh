#!/usr/bin/env bash
# Peer benchmark: quanteval against llama.cpp on the same Qwen2.5-Coder-0.5B-shaped
# random model, both runtimes timed alternately in one run on this machine.
#
#   tools/bench_llamacpp.sh [--runs N] [--threads T] [--isa native|avx2] [--quants q4_0,q4_k]
#                           [--decode-tokens N] [--batch B] [--prefill 128,512] [--build DIR]
#
# llama.cpp: the prebuilt CPU build inside the npm package node-llama-cpp@3.21.1, installed
# (a benchmark tool, not a build dependency) into ${QUANTEVAL_BENCH_CACHE:-~/.cache/quanteval/bench};
# driven through its API by tools/llamacpp/bench_llamacpp.mjs. --isa avx2 makes both sides
# run their AVX2 code on an AVX-512 machine: quanteval through QUANTEVAL_CPU_ISA=avx2, llama.cpp
# by a copy of the package whose only CPU backend is its AVX2 "haswell" build (ggml otherwise
# loads the best-scoring variant for the CPU, e.g. zen4 / icelake with AVX-512).
# Models: tools/llamacpp/write_gguf.py (GGUF, Q4_0 and Q4_K where the rows allow) and
# tools/synthetic_checkpoint (quanteval GPTQ g128), same shapes, random weights.
# Measurements (the same in both, see bench_llamacpp.mjs and tools/bench_decode.cpp): prefill of
# P tokens in one batch, decode at batch 1 (median per token), batched decode of B sequences
# (median step, aggregate tok/s). Each run measures quanteval and then llama.cpp (even runs the
# other way round); the summary gives per-run ratios quanteval / llama.cpp, min / median / max.
# Needs: a build with bench_decode and synthetic_checkpoint, node + npm (Debian: nodejs npm),
# /usr/bin/python3 with numpy (python3-numpy).
set -euo pipefail

runs=6 threads=2 isa=native quants=q4_0 decode_tokens=32 batch=16 prefill=128,512
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --isa) isa="$2"; shift 2 ;;
    --quants) quants="$2"; shift 2 ;;
    --decode-tokens) decode_tokens="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --prefill) prefill="$2"; shift 2 ;;
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    *) echo "bench_llamacpp.sh: unknown argument '$1' (see the comment at the top of the script)" >&2; exit 2 ;;
  esac
done
case "$isa" in native | avx2) ;; *) echo "bench_llamacpp.sh: --isa native|avx2" >&2; exit 2 ;; esac

python=/usr/bin/python3
for tool in node npm "$python"; do
  command -v "$tool" > /dev/null || { echo "bench_llamacpp.sh: needs $tool (Debian: nodejs npm python3-numpy)" >&2; exit 2; }
done
for target in bench_decode synthetic_checkpoint; do
  [ -x "$build/tools/$target" ] || {
    echo "bench_llamacpp.sh: $build/tools/$target missing; build it: cmake --build build --target bench_decode synthetic_checkpoint" >&2
    exit 2
  }
done

version=3.21.1
cache="${QUANTEVAL_BENCH_CACHE:-$HOME/.cache/quanteval/bench}"
npm_dir="$cache/node-llama-cpp"
package="$npm_dir/node_modules/node-llama-cpp/package.json"
if ! grep -q "\"version\": \"$version\"" "$package" 2> /dev/null; then
  echo "installing node-llama-cpp@$version into $npm_dir" >&2
  mkdir -p "$npm_dir"
  # --ignore-scripts: only the prebuilt binaries are used, nothing is compiled.
  npm install --prefix "$npm_dir" --no-audit --no-fund --ignore-scripts "node-llama-cpp@$version" >&2
fi
bins="$npm_dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
[ -d "$bins" ] || { echo "bench_llamacpp.sh: no prebuilt linux-x64 CPU binaries in $bins" >&2; exit 2; }

# The directory node runs in: its node_modules resolves node-llama-cpp and the binaries.
run_dir="$npm_dir"
node_flags=()
if [ "$isa" = avx2 ]; then
  # Same packages (symlinks), but a real copy of @node-llama-cpp/linux-x64 whose bins hold
  # the AVX2 CPU backend only; --preserve-symlinks makes node resolve from this tree.
  run_dir="$npm_dir/variant-haswell"
  pkg="node_modules/@node-llama-cpp/linux-x64"
  if [ ! -f "$run_dir/$pkg/bins/linux-x64/libggml-cpu-haswell.so" ]; then
    rm -rf "$run_dir"
    mkdir -p "$run_dir/$pkg/bins/linux-x64"
    for entry in "$npm_dir"/node_modules/* "$npm_dir"/node_modules/.bin; do
      [ "$(basename "$entry")" = "@node-llama-cpp" ] || ln -s "$entry" "$run_dir/node_modules/$(basename "$entry")"
    done
    cp -r "$npm_dir/$pkg/dist" "$npm_dir/$pkg/package.json" "$run_dir/$pkg/"
    for file in "$bins"/*; do
      case "$(basename "$file")" in
        libggml-cpu-haswell.so) ;;
        libggml-cpu-*) continue ;;
      esac
      cp "$file" "$run_dir/$pkg/bins/linux-x64/"
    done
  fi
  node_flags=(--preserve-symlinks)
fi
cp "$root/tools/llamacpp/bench_llamacpp.mjs" "$run_dir/bench_llamacpp.mjs"

# Models, rebuilt when the writer changes.
models="$cache/models"
mkdir -p "$models"
writer_hash="$(sha256sum "$root/tools/llamacpp/write_gguf.py" | cut -c1-16)"
for quant in ${quants//,/ }; do
  gguf="$models/qwen2.5-0.5b-$quant-$writer_hash.gguf"
  [ -f "$gguf" ] || { echo "writing $gguf" >&2; "$python" "$root/tools/llamacpp/write_gguf.py" --quant "$quant" --out "$gguf.tmp" && mv "$gguf.tmp" "$gguf"; }
done
checkpoint="$models/qwen2.5-0.5b-gptq-g128"
[ -f "$checkpoint/model.safetensors" ] || "$build/tools/synthetic_checkpoint" --shape qwen2.5-0.5b --out "$checkpoint" >&2

out="$(mktemp -d "${TMPDIR:-/tmp}/bench_llamacpp.XXXXXX")"
qe_env=()
[ "$isa" = avx2 ] && qe_env=(QUANTEVAL_CPU_ISA=avx2)
run_quanteval() {
  env "${qe_env[@]}" "$build/tools/bench_decode" --checkpoint "$checkpoint" --peer --threads "$threads" \
    --prompt-tokens "$prefill" --decode-tokens "$decode_tokens" --batch "$batch" > "$out/quanteval-$1.txt"
}
run_llama() {
  (cd "$run_dir" && node "${node_flags[@]}" bench_llamacpp.mjs "$models/qwen2.5-0.5b-$2-$writer_hash.gguf" \
    --threads "$threads" --prefill "$prefill" --decode-tokens "$decode_tokens" --batch "$batch") > "$out/llama-$2-$1.json"
}
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); isa $isa; $threads threads; $runs runs; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for run in $(seq 1 "$runs"); do
  if [ $((run % 2)) -eq 1 ]; then
    run_quanteval "$run"
    for quant in ${quants//,/ }; do run_llama "$run" "$quant"; done
  else
    for quant in ${quants//,/ }; do run_llama "$run" "$quant"; done
    run_quanteval "$run"
  fi
  echo "run $run/$runs done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done

"$python" - "$out" "$runs" "$quants" "$prefill" "$batch" "$isa" "$threads" << 'PY'
import json, re, statistics, sys
out, runs, quants, prefill, batch, isa, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4].split(","), sys.argv[5], sys.argv[6], sys.argv[7]
metrics = [(f"prefill_{p}", f"prefill {p} tok/s") for p in prefill] + [("decode_1", "decode batch 1 tok/s"), (f"decode_{batch}", f"decode {batch} sequences, aggregate tok/s")]
def quanteval(run):
    text = open(f"{out}/quanteval-{run}.txt").read()
    values = {f"prefill_{m}": float(v) for m, v in re.findall(r"\| prefill, (\d+) tokens \| ([\d.]+) tok/s", text)}
    values["decode_1"] = float(re.search(r"\| decode, 1 sequence \| ([\d.]+) tok/s", text).group(1))
    values[f"decode_{batch}"] = float(re.search(r"\| decode, \d+ sequences batched \| ([\d.]+) tok/s", text).group(1))
    isa_line = re.search(r"ISA: ([^;]+);", text)
    return values, isa_line.group(1) if isa_line else "?"
qe = [quanteval(r) for r in range(1, runs + 1)]
llama = {q: [json.load(open(f"{out}/llama-{q}-{r}.json")) for r in range(1, runs + 1)] for q in quants}
print(f"\nquanteval ISA: {qe[0][1]}; llama.cpp CPU backend: {llama[quants[0]][0].get('cpu_features')}")
print(f"{threads} threads, {runs} alternating runs; medians; ratio = quanteval / llama.cpp per run (min / median / max)\n")
head = "| measurement | quanteval GPTQ g128 |" + "".join(f" llama.cpp {q.upper()} | ratio vs {q.upper()} |" for q in quants)
print(head)
print("| --- | ---: |" + " ---: | ---: |" * len(quants))
for key, label in metrics:
    ours = [v[key] for v, _ in qe]
    row = f"| {label} | {statistics.median(ours):.1f} |"
    for q in quants:
        theirs = [r[key] for r in llama[q]]
        ratios = sorted(a / b for a, b in zip(ours, theirs))
        row += f" {statistics.median(theirs):.1f} | {ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f} |"
    print(row)
print(f"\nraw outputs: {out}")
PY
