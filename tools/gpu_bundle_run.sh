#!/usr/bin/env bash
# run.sh -- the one command of the quanteval GPU bundle (built by tools/gpu_bundle.sh, which
# copies this file to build/gpu-bundle/run.sh). Runs everything that needs the GPU, in about
# 3-4 minutes on an H200 and never more than RUN_BUDGET seconds (default 290):
#
#   probe      is a GPU usable? If not: CUDA's reason, then exit 77 (nothing else runs)
#   layout     test_marlin_layout (CPU: the packed layout and the stream-K plan)
#   quanteval  quanteval --version (the main binary loads here)
#   backend:*  test_cuda_backend (the model's CUDA backend against the CPU path):
#              ops (every op, prefill + decode), fixtures (every fixture model: layers,
#              logits vs transformers, greedy tokens, batch invariance; table printed last)
#   generate   quanteval generate on two fixtures with --device cuda and --device cpu: same tokens
#   bmemcheck  compute-sanitizer memcheck over test_cuda_backend's "sanitize" group
#   bracecheck compute-sanitizer racecheck over the same group
#   tests:*    test_marlin_gemm_cuda, one process per group (a crash ends only its group),
#              each case printed before it launches
#   memcheck   compute-sanitizer --tool memcheck over the small "sanitize" group
#   racecheck  compute-sanitizer --tool racecheck over the same group
#   bench      bench_gemm_cuda (results checked, then timed; cuBLAS BF16 in the same run)
#   initcheck  compute-sanitizer --tool initcheck over the "sanitize" group, if time is left
#   decode:*   bench_decode --device cuda (the model on the GPU vs its floor): the Qwen2.5-Coder-0.5B
#              shape, then the Qwen3.5-27B shape (batches 1..164, contexts 1k/4k), if time is left
#
# Each step has its own timeout and a crash or failure in one does not stop the others. Logs
# go to $OUT (default: ./out beside this script), one file per step plus bench.tsv and
# summary.txt; the summary table is printed last (step status, test groups, then the
# benchmark tables).
#   bash run.sh            # everything
#   QUICK=1 bash run.sh    # the benchmark on M in {1, 16, 64, 256} only, no hand-over table
#   BACKEND_ONLY=1 bash run.sh   # probe, layout, the backend steps only (no GEMM groups, no bench)
# Exit: 0 all steps passed, 1 a step failed, 77 no usable GPU.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/bin
out=${OUT:-$here/out}
mkdir -p "$out"
budget=${RUN_BUDGET:-290}
start=$SECONDS

# cuBLAS is loaded at run time (never carried): the usual CUDA folders, then a pip-installed
# nvidia-cublas next to whatever python3 is here.
cuda_dirs=()
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
           /usr/local/cuda-*/targets/x86_64-linux/lib; do
  [[ -d "$dir" ]] && cuda_dirs+=("$dir")
done
for python in python3 /opt/torch/.venv/bin/python3; do
  command -v "$python" >/dev/null 2>&1 || continue
  site_dir=$("$python" -c 'import importlib.util as u; s = u.find_spec("nvidia.cublas"); print(list(s.submodule_search_locations)[0] if s else "")' 2>/dev/null) || site_dir=
  [[ -n "$site_dir" && -d "$site_dir/lib" ]] && cuda_dirs+=("$site_dir/lib")
done
if ((${#cuda_dirs[@]})); then
  LD_LIBRARY_PATH=$(IFS=:; echo "${cuda_dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LD_LIBRARY_PATH
fi
sanitizer=$(command -v compute-sanitizer 2>/dev/null || true)
for candidate in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
                 /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer; do
  [[ -z "$sanitizer" && -x "$candidate" ]] && sanitizer=$candidate
done

declare -a names statuses times details
# step NAME TIMEOUT LOG COMMAND...: runs with a timeout (capped by what is left of the budget),
# records status/time; the detail is filled in by the caller from the log.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((budget - (SECONDS - start)))
  ((limit > left)) && limit=$left
  local began=$SECONDS rc
  if ((limit < 5)); then
    echo "skipped: the ${budget}s budget is spent" >>"$log"
    rc=125
  else
    echo "== $name: $* (timeout ${limit}s)" | tee -a "$out/summary.txt"
    timeout --kill-after=5 "$limit" "$@" >>"$log" 2>&1
    rc=$?
  fi
  names+=("$name")
  times+=("$((SECONDS - began))s")
  case $rc in
    0) statuses+=("pass") ;;
    77) statuses+=("no-gpu") ;;
    124 | 137) statuses+=("TIMEOUT") ;;
    125) statuses+=("SKIPPED(budget)") ;;
    *) if ((rc > 128)); then statuses+=("CRASH(signal $((rc - 128)))"); else statuses+=("FAIL(rc $rc)"); fi ;;
  esac
  details+=("")
  return $rc
}
set_detail() { details[${#details[@]} - 1]=$1; }

print_summary() {
  {
    echo
    echo "== quanteval GPU bundle: summary ($(sed -n 2p "$here/MANIFEST.txt" 2>/dev/null)); logs in $out"
    printf '%-16s %-18s %6s  %s\n' step status time detail
    for i in "${!names[@]}"; do
      printf '%-16s %-18s %6s  %s\n' "${names[$i]}" "${statuses[$i]}" "${times[$i]}" "${details[$i]}"
    done
    if grep -q '^fixture  *mode  *logits' "$out/tests.log" 2>/dev/null; then
      echo
      echo "CUDA backend, fixtures (test_cuda_backend --groups fixtures):"
      sed -n '/^fixture  *mode  *logits/,/^$/p' "$out/tests.log"
    fi
    if grep -q '^| sequences | context' "$out/bench.log" 2>/dev/null; then
      echo
      echo "bench_decode --device cuda:"
      grep -E '^(copy bandwidth|built |\| |164 )' "$out/bench.log"
    fi
    if [[ -f "$out/bench.log" ]] && grep -q '^Each change alone' "$out/bench.log"; then
      echo
      sed -n '/^Each change alone/,$p' "$out/bench.log"
    fi
  } | tee -a "$out/summary.txt"
}

# At most 8 files come back from the device tool's $OUT: setup.log (probe, layout, quanteval),
# tests.log, memcheck.log, racecheck.log, bench.log, bench.tsv, initcheck.log, summary.txt.
for file in setup.log tests.log memcheck.log racecheck.log bench.log bench.tsv initcheck.log summary.txt; do
  : >"$out/$file"
done
echo "quanteval GPU bundle at $here; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" | tee -a "$out/summary.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
  --format=csv,noheader 2>&1 | sed 's/^/nvidia-smi: /' | tee -a "$out/summary.txt"

# probe: without a usable GPU nothing else can run; say why and stop with 77.
step probe 30 "$out/setup.log" "$bin/test_marlin_gemm_cuda" --probe
probe_rc=$?
set_detail "$(tail -1 "$out/setup.log")"
if ((probe_rc == 77)); then
  print_summary
  echo "no GPU: $(tail -1 "$out/setup.log" | sed 's/^.*no GPU: //; s/ -- not run$//')"
  exit 77
elif ((probe_rc != 0)); then
  print_summary
  echo "the probe failed (exit $probe_rc) -- the bundle does not run here:"
  tail -5 "$out/setup.log"
  exit 1
fi

step layout 60 "$out/setup.log" "$bin/test_marlin_layout"
set_detail "$(grep 'test cases:' "$out/setup.log" | tail -1 | sed 's/\[doctest\] //')"
step quanteval 20 "$out/setup.log" "$bin/quanteval" --version
set_detail "$(tail -1 "$out/setup.log")"

# The model's CUDA backend first: it is what the next GPU window has to verify.
# QE_CUDA_SYNC=1: each op synchronizes, so a failing kernel is named at its op.
for group in ops fixtures; do
  echo "######## test_cuda_backend group $group" >>"$out/tests.log"
  step "backend:$group" 120 "$out/tests.log" env QE_CUDA_SYNC=1 "$bin/test_cuda_backend" --groups "$group" \
    --fixtures "$here/fixtures/models"
  line=$(grep '^test_cuda_backend: ' "$out/tests.log" | tail -1)
  set_detail "${line#test_cuda_backend: }"
done
# The CLI on the GPU: the same greedy tokens as on the CPU (prompt ids of the fixture).
generate_check() {
  local model ids cpu gpu status=0
  for model in qwen3-tiny-gptq-g64-actorder qwen3_5-tiny-bf16; do
    ids=$(tr -d ' \n' <"$here/fixtures/models/$model/reference.json" | sed 's/.*"input_ids":\[\([0-9,]*\)\].*/\1/')
    cpu=$("$bin/quanteval" generate --model "$here/fixtures/models/$model" --ids "$ids" --max-new-tokens 16 --kv-cache-mb 256 --device cpu) || return 1
    gpu=$("$bin/quanteval" generate --model "$here/fixtures/models/$model" --ids "$ids" --max-new-tokens 16 --kv-cache-mb 256 --device cuda) || return 1
    echo "$model cpu: ${cpu%%\"text\"*}"
    echo "$model gpu: ${gpu%%\"text\"*}"
    [[ "${cpu%%\"text\"*}" == "${gpu%%\"text\"*}" ]] || { echo "$model: DIFFERENT tokens"; status=1; }
  done
  return $status
}
export -f generate_check
export here bin
step generate 60 "$out/setup.log" bash -c generate_check
set_detail "$(grep -c 'DIFFERENT' "$out/setup.log") fixtures with different tokens"
backend_sanitize() {
  local tool=$1 name=$2 log=$3
  if [[ -z "$sanitizer" ]]; then
    names+=("$name"); statuses+=("not run"); times+=("0s"); details+=("compute-sanitizer not found")
    return
  fi
  step "$name" 90 "$log" "$sanitizer" --tool "$tool" --error-exitcode 3 \
    "$bin/test_cuda_backend" --groups sanitize --fixtures "$here/fixtures/models"
  set_detail "$(grep 'ERROR SUMMARY\|RACECHECK SUMMARY' "$log" | tail -1 | sed 's/^========= //')"
}
backend_sanitize memcheck bmemcheck "$out/memcheck.log"
backend_sanitize racecheck bracecheck "$out/racecheck.log"
if [[ "${BACKEND_ONLY:-0}" == 1 ]]; then
  print_summary
  for status in "${statuses[@]}"; do [[ "$status" == pass ]] || exit 1; done
  exit 0
fi

# One process per test group: a crash or hang in one group still lets the others run and report.
groups=$("$bin/test_marlin_gemm_cuda" --list 2>/dev/null | awk '$1 != "sanitize" {print $1}')
for group in $groups; do
  echo "######## group $group" >>"$out/tests.log"
  step "tests:$group" 60 "$out/tests.log" "$bin/test_marlin_gemm_cuda" --groups "$group"
  line=$(grep "^GROUP $group " "$out/tests.log" | tail -1)
  if [[ -n "$line" ]]; then set_detail "$(echo "$line" | awk '{$1 = ""; $2 = ""; sub(/^ +/, ""); print}')"
  else set_detail "stopped in: $(grep '^CASE ' "$out/tests.log" | tail -1)"; fi
done

sanitize() {
  local tool=$1
  if [[ -z "$sanitizer" ]]; then
    names+=("$tool"); statuses+=("not run"); times+=("0s"); details+=("compute-sanitizer not found")
    return
  fi
  step "$tool" 60 "$out/$tool.log" "$sanitizer" --tool "$tool" --error-exitcode 3 \
    "$bin/test_marlin_gemm_cuda" --groups sanitize
  summary_line=$(grep 'ERROR SUMMARY\|RACECHECK SUMMARY' "$out/$tool.log" | tail -1)  # the backend's run came first
  cases=$(grep '^test_marlin_gemm_cuda: [0-9]* passed' "$out/$tool.log" | tail -1 | cut -d' ' -f2-)
  set_detail "${summary_line#========= } ${cases:+; $cases}"
}
sanitize memcheck
sanitize racecheck

bench_args=(--tsv "$out/bench.tsv")
[[ "${QUICK:-0}" == 1 ]] && bench_args+=(--quick --no-handover)
step bench 150 "$out/bench.log" "$bin/bench_gemm_cuda" "${bench_args[@]}"
if grep -q 'FAILED' "$out/bench.log"; then set_detail "$(grep 'FAILED' "$out/bench.log" | tail -1)"
elif ! grep -q '^Each change alone' "$out/bench.log"; then set_detail "stopped in: $(grep '^measuring' "$out/bench.log" | tail -1)"
else set_detail "$(grep -m1 '^copy bandwidth' "$out/bench.log")"; fi

# Last, with what is left of the budget: reads of device memory that nothing wrote.
sanitize initcheck

# The model's decode speed on the GPU against its floor (docs/cuda-backend.md).
step decode:0.5b 60 "$out/bench.log" "$bin/bench_decode" --device cuda --shape qwen2.5-0.5b --batches 1,16,64 \
  --contexts 1024 --group-size 128 --no-act-order
set_detail "$(grep -m1 '^| 1 | 1024' "$out/bench.log")"
step decode:27b 200 "$out/bench.log" "$bin/bench_decode" --device cuda --shape qwen3.5-27b
set_detail "$(grep '^| 1 | ' "$out/bench.log" | tail -1)"

print_summary
for status in "${statuses[@]}"; do [[ "$status" == pass ]] || exit 1; done
exit 0
