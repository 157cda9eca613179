#pragma once
// The plain GPU reference for C = A W^T with a GPTQ weight: what the CUDA tests and
// tools/bench_gemm_cuda.cu check the fast kernel against on shapes too large for the CPU.
// It reads the checkpoint's own tensors (qweight, qzeros, scales, g_idx: none of the
// Marlin layout), dequantizes exactly in FP64 and accumulates in FP64, so it shares no
// code path with the kernel it checks. It is itself checked against the CPU reference
// (dequantize_reference + an FP64 matmul) by test_marlin_gemm_cuda's "reference" group.
// C++17 (nvcc); every CUDA failure throws std::runtime_error.
#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

namespace quanteval::runtime::cuda::reference {

// Device pointers to the raw GPTQ tensors of one [K, N] weight (runtime/gptq.hpp notation).
struct GptqDeviceView {
  int k = 0, n = 0;
  int group_size = 0;                // effective (K for channel-wise); used when g_idx is null
  bool v1_zeros = true;              // GPTQ v1: the real zero is the stored one + 1
  bool scales_bf16 = false;          // scales' raw encoding
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

// How a 16-bit result compares with the FP64 reference. Bounds, with u the activation type's
// unit roundoff (2^-8 BF16, 2^-11 FP16): the fast kernel rounds each scale to the activation
// type (exact for FP16 scales and FP16 activations), each product (q - 8) * scale once, and the
// output once, and accumulates in FP32 (~sqrt(K) 2^-24 relative: < 1e-5 at K = 17408). Per
// element, with R the exact sum and M = sqrt(sum_k (a_k w_k)^2):
//   output rounding             <= u |R|
//   scale rounding              one group: <= u |R|; small groups: random-signed, std ~ 0.58 u M
//   product rounding            random-signed, std ~ u / sqrt(3) M = 0.58 u M
// so |C - R| <= u (2 |R| + z 0.82 M), z the Gaussian tail over <= 10^7 elements (~5.5). The
// element check is |C - R| <= u (2 |R| + 8 M): ~10 sigma, no false alarms, while one wrong k16
// step out of K = 5120 already gives |C - R| ~ sqrt(16 / 5120) M = 14 u M in BF16. The relative
// L2 error is expected at ~u (the terms in quadrature); its bound is 2.5 u (1e-2 BF16,
// 1.25e-3 FP16). A layout error gives ~1 in both; an unwritten (NaN-poisoned) element fails.
struct ReferenceComparison {
  static constexpr double kElementBound = 8.0;  // in units of u (2 |R| + M)
  double relative_l2 = 0.0, l2_bound = 0.0;
  double worst_element = 0.0;  // max |C - R| / (u (2 |R| + M))
  int worst_row = -1;
  size_t not_finite = 0;

  bool passed() const { return not_finite == 0 && relative_l2 <= l2_bound && worst_element <= kElementBound; }
  // "rel L2 3.1e-03 (bound 1.0e-02), worst element 2.3 u in row 7 (bound 8)" (+ ", 12 NaN/unwritten")
  std::string summary() const;
};

// out: host [m, n] 16-bit results (bf16 when bf16, else f16); reference, magnitude: host [m, n]
// as gemm_reference wrote them.
ReferenceComparison compare_with_reference(const uint16_t* out, const double* reference, const double* magnitude, int m,
                                           int n, bool bf16);

}  // namespace quanteval::runtime::cuda::reference
