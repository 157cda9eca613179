#!/usr/bin/env bash
# Peer benchmark: quanteval against llama.cpp on the same random-weight model shape, both
# runtimes timed alternately in one run on this machine.
#
#   tools/bench_llamacpp.sh [--help] [--shape qwen2.5-0.5b|qwen3.5-0.8b] [--runs N] [--threads T]
#                           [--isa native|avx2|avx512] [--quants q4_0,q4_k] [--decode-tokens N]
#                           [--batch B] [--prefill 128,512] [--build DIR]
#
# Shapes (--shape, default qwen2.5-0.5b; the synthetic shapes of runtime/checkpoint/synthetic.hpp):
#   qwen2.5-0.5b  Qwen2.5-Coder-0.5B: hidden 896, 24 layers, 14/2 heads of 64, q/k/v bias,
#                 intermediate 4864, vocab 151936, tied; llama.cpp arch qwen2.
#   qwen3.5-0.8b  Qwen3.5-0.8B, hybrid: hidden 1024, 24 layers (18 Gated DeltaNet linear
#                 attention + 6 gated full attention, every 4th), 8/2 heads of 256 (partial
#                 rotary, 64 channels), 16/16 linear heads of 128, conv kernel 4, intermediate
#                 3584, vocab 248320, tied; llama.cpp arch qwen35. Caveats: the GGUF holds the
#                 depthwise conv kernel, norms, A and dt bias in F32 (llama.cpp's CPU conv takes
#                 only F32; quanteval's checkpoint has BF16, widened to F32 at load), and
#                 in_proj_a / in_proj_b (llama.cpp's ssm_alpha / ssm_beta) in F16 (quanteval:
#                 BF16); llama.cpp ropes through its interleaved M-RoPE sections [11, 11, 10],
#                 the same rotation as quanteval's partial RoPE for text positions. See
#                 tools/llamacpp/write_gguf.py.
#
# llama.cpp: the prebuilt CPU build inside the npm package node-llama-cpp@3.21.1, installed
# (a benchmark tool, not a build dependency) into ${QUANTEVAL_BENCH_CACHE:-~/.cache/quanteval/bench};
# driven through its API by tools/llamacpp/bench_llamacpp.mjs. --isa avx2 makes both sides
# run their AVX2 code on an AVX-512 machine: quanteval through QUANTEVAL_CPU_ISA=avx2, llama.cpp
# by a copy of the package whose only CPU backend is its AVX2 "haswell" build (ggml otherwise
# loads the best-scoring variant for the CPU, e.g. zen4 / icelake with AVX-512). --isa avx512
# pins both to AVX-512 without AMX tiles (QUANTEVAL_CPU_ISA=avx512; llama.cpp without its
# sapphirerapids backend): what an Ice Lake or Zen 4 runs, measured on a CPU with AMX.
# Models: tools/llamacpp/write_gguf.py (GGUF, Q4_0 and Q4_K where the rows allow: for
# qwen2.5-0.5b only ffn_down, for qwen3.5-0.8b every quantized matrix) and
# tools/synthetic_checkpoint (quanteval GPTQ g128), same shapes, random weights; the same
# matrices are 4-bit on both sides (quanteval's 16-bit ones -- the tied embedding / lm_head,
# Qwen3.5's in_proj_a / in_proj_b -- are F16 in the GGUF).
# Measurements (the same in both, see bench_llamacpp.mjs and tools/bench_decode.cpp): prefill of
# P tokens in one batch, decode at batch 1 (median per token), batched decode of B sequences
# (median step, aggregate tok/s). Each run measures quanteval and then llama.cpp (even runs the
# other way round); the summary gives per-run ratios quanteval / llama.cpp, min / median / max.
# Needs: a build with bench_decode and synthetic_checkpoint, node + npm (Debian: nodejs npm),
# /usr/bin/python3 with numpy (python3-numpy).
set -euo pipefail

shape=qwen2.5-0.5b runs=6 threads=2 isa=native quants=q4_0 decode_tokens=32 batch=16 prefill=128,512
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --shape) shape="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --isa) isa="$2"; shift 2 ;;
    --quants) quants="$2"; shift 2 ;;
    --decode-tokens) decode_tokens="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --prefill) prefill="$2"; shift 2 ;;
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "bench_llamacpp.sh: unknown argument '$1' (see the comment at the top of the script)" >&2; exit 2 ;;
  esac
done
case "$isa" in native | avx2 | avx512) ;; *) echo "bench_llamacpp.sh: --isa native|avx2|avx512" >&2; exit 2 ;; esac
case "$shape" in
  qwen2.5-0.5b) vocab=151936 ;;
  qwen3.5-0.8b) vocab=248320 ;;
  *) echo "bench_llamacpp.sh: --shape qwen2.5-0.5b|qwen3.5-0.8b" >&2; exit 2 ;;
esac

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
# A variant is the same packages (symlinks) but a real copy of @node-llama-cpp/linux-x64 whose
# bins hold a subset of the CPU backends; --preserve-symlinks makes node resolve from that tree.
#   haswell  (--isa avx2) the AVX2 CPU backend only.
#   no-amx   (--isa avx512: AVX-512 without AMX tiles on both sides, as on Ice Lake or Zen 4;
#            and qwen3.5-0.8b on a CPU with AMX) every backend but sapphirerapids, the only one
#            with AMX. For qwen3.5 because its AMX matmul (ggml_backend_amx_mul_mat) takes the batch offsets of a
#            3-D product in bytes as float elements and does not broadcast a 2-D weight, and
#            qwen35's ssm_out multiplies a [value_dim, tokens, sequences] tensor: it reads past
#            the weights with several sequences and segfaults at 16 sequences of 16 prompt
#            tokens. ggml then loads the best remaining variant (zen4 on Sapphire Rapids: the
#            same AVX-512 kernels without AMX). qwen2.5-0.5b has no 3-D matmul and keeps AMX.
run_dir="$npm_dir"
node_flags=()
variant=""
if [ "$isa" = avx2 ]; then
  variant=haswell
elif [ "$isa" = avx512 ]; then
  variant=no-amx
elif [ "$shape" = qwen3.5-0.8b ] && grep -qw amx_int8 /proc/cpuinfo; then
  variant=no-amx
  echo "bench_llamacpp.sh: llama.cpp without its AMX backend for $shape (see the comment in this script)" >&2
fi
if [ -n "$variant" ]; then
  run_dir="$npm_dir/variant-$variant"
  pkg="node_modules/@node-llama-cpp/linux-x64"
  if [ ! -f "$run_dir/$pkg/bins/linux-x64/.variant-complete" ]; then
    rm -rf "$run_dir"
    mkdir -p "$run_dir/$pkg/bins/linux-x64"
    for entry in "$npm_dir"/node_modules/* "$npm_dir"/node_modules/.bin; do
      [ "$(basename "$entry")" = "@node-llama-cpp" ] || ln -s "$entry" "$run_dir/node_modules/$(basename "$entry")"
    done
    cp -r "$npm_dir/$pkg/dist" "$npm_dir/$pkg/package.json" "$run_dir/$pkg/"
    for file in "$bins"/*; do
      case "$variant:$(basename "$file")" in
        haswell:libggml-cpu-haswell.so) ;;
        haswell:libggml-cpu-*) continue ;;
        no-amx:libggml-cpu-sapphirerapids.so) continue ;;
      esac
      cp "$file" "$run_dir/$pkg/bins/linux-x64/"
    done
    touch "$run_dir/$pkg/bins/linux-x64/.variant-complete"
  fi
  node_flags=(--preserve-symlinks)
fi
cp "$root/tools/llamacpp/bench_llamacpp.mjs" "$run_dir/bench_llamacpp.mjs"

# Models, rebuilt when the writer changes.
models="$cache/models"
mkdir -p "$models"
writer_hash="$(sha256sum "$root/tools/llamacpp/write_gguf.py" | cut -c1-16)"
for quant in ${quants//,/ }; do
  gguf="$models/$shape-$quant-$writer_hash.gguf"
  [ -f "$gguf" ] || {
    echo "writing $gguf" >&2
    "$python" "$root/tools/llamacpp/write_gguf.py" --shape "$shape" --quant "$quant" --out "$gguf.tmp" && mv "$gguf.tmp" "$gguf"
  }
done
checkpoint="$models/$shape-gptq-g128"
[ -f "$checkpoint/model.safetensors" ] || "$build/tools/synthetic_checkpoint" --shape "$shape" --out "$checkpoint" >&2

out="$(mktemp -d "${TMPDIR:-/tmp}/bench_llamacpp.XXXXXX")"
qe_env=()
[ "$isa" != native ] && qe_env=(QUANTEVAL_CPU_ISA="$isa")
run_quanteval() {
  env "${qe_env[@]}" "$build/tools/bench_decode" --checkpoint "$checkpoint" --peer --threads "$threads" \
    --prompt-tokens "$prefill" --decode-tokens "$decode_tokens" --batch "$batch" > "$out/quanteval-$1.txt"
}
run_llama() {
  (cd "$run_dir" && node "${node_flags[@]}" bench_llamacpp.mjs "$models/$shape-$2-$writer_hash.gguf" \
    --threads "$threads" --prefill "$prefill" --decode-tokens "$decode_tokens" --batch "$batch" --vocab "$vocab") \
    > "$out/llama-$2-$1.json"
}
echo "shape $shape; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); isa $isa; $threads threads; $runs runs; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
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

"$python" - "$out" "$runs" "$quants" "$prefill" "$batch" "$isa" "$threads" "$shape" << 'PY'
import json, re, statistics, sys
out, runs, quants, prefill, batch, isa, threads, shape = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4].split(","), sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
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
print(f"shape {shape}; {threads} threads, {runs} alternating runs; medians; ratio = quanteval / llama.cpp per run (min / median / max)\n")
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
