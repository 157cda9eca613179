#!/usr/bin/env bash
# One command for a session with a GPU: build the CUDA targets for sm_90, run the
# cuda-labelled tests and the CPU layout test, then the INT4 GEMM benchmark.
# Logs go to $OUT (or build-gpu/gpu-check) ; the last thing printed is a short table.
#   tools/gpu_check.sh            # full benchmark (8 batch sizes x 5 shapes)
#   QUICK=1 tools/gpu_check.sh    # M in {1, 16, 128} only
#   BUILD_DIR=dir SKIP_BUILD=1 tools/gpu_check.sh   # binaries built elsewhere (carried in)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-gpu}
logs=${OUT:-$build/gpu-check}
mkdir -p "$logs"
jobs=$(nproc 2>/dev/null || echo 8)

echo "== device"; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "== configure + build (sm_90)"
  # CMAKE_CUDA_ARCHITECTURES is passed explicitly: CUDA 13's default (75) would otherwise win.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$logs/configure.log"
  cmake --build "$build" -j"$jobs" --target test_marlin_gemm_cuda test_marlin_layout bench_gemm_cuda \
    >"$logs/build.log" 2>&1 || { tail -40 "$logs/build.log"; exit 1; }
fi

echo "== tests"
test_status=0
"$build/tests/cuda/test_marlin_layout" >"$logs/test_marlin_layout.log" 2>&1 || test_status=$?
tail -2 "$logs/test_marlin_layout.log"
gemm_status=0
timeout 300 "$build/tests/cuda/test_marlin_gemm_cuda" >"$logs/test_marlin_gemm_cuda.log" 2>&1 || gemm_status=$?
grep -E "FAIL" "$logs/test_marlin_gemm_cuda.log" | head -20 || true
tail -1 "$logs/test_marlin_gemm_cuda.log"

echo "== benchmark"
bench_args=()
[[ "${QUICK:-0}" == 1 ]] && bench_args+=(--quick)
bench_status=0
timeout 300 "$build/tools/bench_gemm_cuda" "${bench_args[@]}" >"$logs/bench_gemm_cuda.log" 2>&1 || bench_status=$?

echo
echo "layout test rc=$test_status   gpu test rc=$gemm_status (0 pass, 77 no GPU)   bench rc=$bench_status"
cat "$logs/bench_gemm_cuda.log"
[[ $test_status == 0 && $gemm_status == 0 && $bench_status == 0 ]]
