#pragma once
// The per-element math of the model's ops, written once for every backend: the
// CPU backend calls these inside its loops, the CUDA kernels inside theirs
// (they are __host__ __device__ under nvcc, and this header stays C++17 for it),
// and the CPU test suite checks them against the plain reference path. A backend
// adds only indexing, memory and launch around them.
//
// Accumulation rules (the same on every backend, so results do not depend on
// the batch, the thread count or the backend beyond fp32 rounding of the parts):
//   RMSNorm      sum of squares in double over the row, then one float scale:
//                double makes the sum independent of the summation order at
//                float precision, so any reduction tree gives the same result.
//   RoPE         angle = float(position) * inv_freq in fp32 (as transformers forms
//                it), cos and sin of that angle in double, rotation in fp32.
//   attention    q.k dot products in fp32 in dimension order; softmax in fp32 with
//                the row maximum subtracted; values accumulated in position order.
//   delta rule   fp32 throughout (see qwen3_5/delta_rule.hpp).
#include <cmath>

#include "runtime/base/host_device.hpp"

namespace quanteval::runtime::math {

QE_HOST_DEVICE inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

QE_HOST_DEVICE inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// torch.nn.functional.softplus with its default threshold: linear above 20,
// where log1p(exp(x)) equals x to float precision anyway.
QE_HOST_DEVICE inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// 1 / sqrt(mean(x^2) + eps) from the row's sum of squares (accumulated in double).
QE_HOST_DEVICE inline float inverse_rms(double sum_of_squares, int width, float eps) {
  return static_cast<float>(1.0 / std::sqrt(sum_of_squares / static_cast<double>(width) + static_cast<double>(eps)));
}

// One NeoX ("rotate half") RoPE pair: dims i and i + rotary_dim / 2 of a head.
QE_HOST_DEVICE inline void rotate_pair(float& x1, float& x2, long long position, float inv_freq) {
  const float angle = static_cast<float>(position) * inv_freq;
  const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
  const float s = static_cast<float>(std::sin(static_cast<double>(angle)));
  const float a = x1, b = x2;
  x1 = a * c - b * s;
  x2 = b * c + a * s;
}

// Gated DeltaNet gates of one (token, value head): the log decay g <= 0 and the
// write strength beta in (0, 1), from the in_proj_a / in_proj_b outputs.
QE_HOST_DEVICE inline float deltanet_log_decay(float a, float A_log, float dt_bias) {
  return -std::exp(A_log) * softplus(a + dt_bias);
}
QE_HOST_DEVICE inline float deltanet_beta(float b) { return sigmoid(b); }

}  // namespace quanteval::runtime::math
