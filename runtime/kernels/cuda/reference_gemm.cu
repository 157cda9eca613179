#include "runtime/kernels/cuda/reference_gemm.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace quanteval::runtime::cuda::reference {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

__device__ double decode(uint16_t bits, bool bf16) {
  return bf16 ? double(__bfloat162float(__ushort_as_bfloat16(bits))) : double(__half2float(__ushort_as_half(bits)));
}

constexpr int kColumns = 128;  // threads per block, one output column each
constexpr int kRows = 16;      // batch rows per block: each dequantized weight is used 16 times
constexpr int kChunk = 64;     // k values staged in shared memory at a time

// One thread per column n, kRows rows per block (blockIdx.y); the rows' activations are staged
// in shared memory kChunk at a time and W[n, k] is dequantized once per k. The sum is FP64 (one
// DFMA per term: exact products, 53-bit accumulation); the magnitude only scales an error
// bound, so it is summed in FP32 from FP32 copies (no FP64 -> FP32 conversion per term, which
// would run at a quarter of the DFMA rate).
__global__ void reference_kernel(GptqDeviceView w, const uint16_t* a, bool a_bf16, int m, double* reference,
                                 double* magnitude) {
  __shared__ double staged[kRows][kChunk];
  __shared__ float staged32[kRows][kChunk];
  const int n = blockIdx.x * kColumns + threadIdx.x;
  const int row0 = blockIdx.y * kRows;
  double sum[kRows];
  float squares[kRows];
  for (int r = 0; r < kRows; ++r) {
    sum[r] = 0.0;
    squares[r] = 0.0f;
  }
  for (int k0 = 0; k0 < w.k; k0 += kChunk) {
    __syncthreads();
    for (int i = threadIdx.x; i < kRows * kChunk; i += kColumns) {
      const int r = i / kChunk, kk = i % kChunk;
      const bool inside = row0 + r < m && k0 + kk < w.k;
      const double value = inside ? decode(a[int64_t(row0 + r) * w.k + k0 + kk], a_bf16) : 0.0;
      staged[r][kk] = value;
      staged32[r][kk] = static_cast<float>(value);  // exact: a 16-bit float
    }
    __syncthreads();
    if (n >= w.n) continue;
    const int k_end = min(kChunk, w.k - k0);
    for (int kk = 0; kk < k_end; ++kk) {
      const int k = k0 + kk;
      const int g = w.g_idx ? w.g_idx[k] : k / w.group_size;
      const uint32_t word = static_cast<uint32_t>(w.qweight[int64_t(k / 8) * w.n + n]);
      const int q = static_cast<int>((word >> (4 * (k % 8))) & 0xfu);
      const uint32_t zero_word = static_cast<uint32_t>(w.qzeros[int64_t(g) * (w.n / 8) + n / 8]);
      const int zero = static_cast<int>((zero_word >> (4 * (n % 8))) & 0xfu) + (w.v1_zeros ? 1 : 0);
      // Exact in both: (q - zero) has 5 bits, the scale at most 11.
      const double weight = double(q - zero) * decode(w.scales[int64_t(g) * w.n + n], w.scales_bf16);
      const float weight32 = static_cast<float>(weight);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        sum[r] = fma(staged[r][kk], weight, sum[r]);
        const float term32 = staged32[r][kk] * weight32;
        squares[r] = fmaf(term32, term32, squares[r]);
      }
    }
  }
  if (n >= w.n) return;
  for (int r = 0; r < kRows && row0 + r < m; ++r) {
    reference[int64_t(row0 + r) * w.n + n] = sum[r];
    magnitude[int64_t(row0 + r) * w.n + n] = sqrt(double(squares[r]));
  }
}

}  // namespace

void gemm_reference(const GptqDeviceView& weight, const uint16_t* a, bool a_bf16, int m, double* reference,
                    double* magnitude, cudaStream_t stream) {
  if (weight.k % 8 != 0 || weight.n % 8 != 0 || m < 1)
    throw std::invalid_argument("gemm_reference: K and N must be multiples of 8 and m >= 1");
  const dim3 grid((weight.n + kColumns - 1) / kColumns, (m + kRows - 1) / kRows);
  reference_kernel<<<grid, kColumns, 0, stream>>>(weight, a, a_bf16, m, reference, magnitude);
  check(cudaGetLastError(), "launch reference_kernel");
  check(cudaStreamSynchronize(stream), "reference_kernel");
}

std::string ReferenceComparison::summary() const {
  char text[200];
  std::snprintf(text, sizeof text, "rel L2 %.2e (bound %.2e), worst element %.2f u in row %d (bound %.0f)%s",
                relative_l2, l2_bound, worst_element, worst_row, kElementBound,
                not_finite ? (", " + std::to_string(not_finite) + " NaN/unwritten").c_str() : "");
  return text;
}

ReferenceComparison compare_with_reference(const uint16_t* out, const double* reference, const double* magnitude, int m,
                                           int n, bool bf16) {
  const double u = bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  ReferenceComparison c;
  c.l2_bound = 2.5 * u;
  double error2 = 0.0, reference2 = 0.0;
  for (int row = 0; row < m; ++row) {
    for (int col = 0; col < n; ++col) {
      const size_t i = size_t(row) * n + col;
      const double got = bf16 ? double(__bfloat162float(__ushort_as_bfloat16(out[i])))
                              : double(__half2float(__ushort_as_half(out[i])));
      if (!std::isfinite(got)) {
        ++c.not_finite;
        continue;
      }
      const double e = got - reference[i];
      error2 += e * e;
      reference2 += reference[i] * reference[i];
      const double scaled = std::fabs(e) / (u * (2.0 * std::fabs(reference[i]) + magnitude[i]) + 1e-300);
      if (scaled > c.worst_element) {
        c.worst_element = scaled;
        c.worst_row = row;
      }
    }
  }
  c.relative_l2 = std::sqrt(error2 / std::max(reference2, 1e-300));
  return c;
}

}  // namespace quanteval::runtime::cuda::reference
