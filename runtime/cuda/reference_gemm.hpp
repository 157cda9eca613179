#pragma once
// The plain GPU reference for C = A W^T with a GPTQ weight: what the CUDA tests and
// tools/bench_gemm_cuda.cu check the fast kernel against on shapes too large for the CPU.
// It reads the checkpoint's own tensors (qweight, qzeros, scales, g_idx: none of the
// Marlin layout), dequantizes exactly in FP64 and accumulates in FP64, so it shares no
// code path with the kernel it checks. It is itself checked against the CPU reference
// (dequantize_reference + an FP64 matmul) by test_marlin_gemm_cuda's "reference" group.
// C++17 (nvcc); every CUDA failure throws std::runtime_error.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace quanteval::runtime::cuda::reference {

// Device pointers to the raw GPTQ tensors of one [K, N] weight (runtime/gptq.hpp notation).
struct GptqDeviceView {
  int k = 0, n = 0;
  int group_size = 0;            // effective (K for channel-wise); used when g_idx is null
  bool v1_zeros = true;          // GPTQ v1: the real zero is the stored one + 1
  bool scales_bf16 = false;      // scales' raw encoding
  const int32_t* qweight = nullptr;  // [K/8, N]
  const int32_t* qzeros = nullptr;   // [G, N/8]
  const uint16_t* scales = nullptr;  // [G, N]
  const int32_t* g_idx = nullptr;    // [K] or null
};

// reference[r, n] = sum_k a[r, k] * W[n, k] and magnitude[r, n] = sqrt(sum_k (a[r, k] W[n, k])^2),
// both FP64 [m, N]. a: device [m, K] 16-bit (bf16 when a_bf16, else f16), original k order.
// The magnitude scales the per-element error bound (a sum of per-term roundings grows with it,
// not with the possibly cancelling sum). Synchronous.
void gemm_reference(const GptqDeviceView& weight, const uint16_t* a, bool a_bf16, int m, double* reference,
                    double* magnitude, cudaStream_t stream);

}  // namespace quanteval::runtime::cuda::reference
