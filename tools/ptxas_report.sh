#!/usr/bin/env bash
# The compiler's resource report for the CUDA INT4 GEMM kernels (CPU only, no GPU needed):
# registers, stack frame and spill bytes per kernel, as ptxas -v prints them, one line each.
#   tools/ptxas_report.sh [file.cu]     # default runtime/kernels/cuda/marlin_gemm.cu
# docs/cuda-gemm.md records these numbers before and after each change.
set -euo pipefail
cd "$(dirname "$0")/.."
source=${1:-runtime/kernels/cuda/marlin_gemm.cu}
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
"$nvcc" -O3 -std=c++17 -arch=sm_90 -I. -Xptxas -v -c "$source" -o /dev/null 2>&1 | awk '
  /Compiling entry function/ {
    name = $0; sub(/.*function .(_Z)?/, "", name); sub(/. for .*/, "", name)
    label = name
    # marlin_gemm_kernel<TileConfig<MBlocks, WarpsN, WarpsK, KSub, Stages, MinBlocks>, bf16, division>
    if (match(name, /TileConfigILi[0-9]ELi[0-9]ELi[0-9]ELi[0-9]ELi[0-9]ELi[0-9]EEELb[01]ELb[01]/)) {
      split(substr(name, RSTART, RLENGTH), f, /[^0-9]+/)
      label = sprintf("marlin_gemm rows=%d warps=%dx%d %s %s", 16 * f[2], f[3], f[4],
                      f[8] ? "bf16" : "f16 ", f[9] ? "division" : "incremental")
    } else if (match(name, /[a-z_]+_kernel/)) label = substr(name, RSTART, RLENGTH)
    next
  }
  /bytes stack frame/ { stack = $1; stores = $5; loads = $9 }
  /Used [0-9]+ registers/ {
    match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
    printf "%-50s %4s registers, %4s B stack, %4s B spill stores, %4s B spill loads\n", label, regs, stack, stores, loads
  }' | sort -u
