#pragma once
// Shared by the CPU kernel tests: a printed random seed, random tensors, and the
// plain double-accumulation matmul every fast kernel is compared with.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "runtime/checkpoint/gptq.hpp"

namespace quanteval::test {

// Fresh per run unless QUANTEVAL_TEST_SEED is set; printed so a failure can be replayed.
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    if (const char* env = std::getenv("QUANTEVAL_TEST_SEED")) return static_cast<uint64_t>(std::stoull(env));
    const uint64_t fresh = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    std::cout << "cpu_kernels random seed: " << fresh << " (replay with QUANTEVAL_TEST_SEED=" << fresh << ")\n";
    return fresh;
  }();
  return seed;
}

inline std::vector<float> random_floats(std::mt19937_64& rng, size_t count, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(count);
  for (auto& v : values) v = dist(rng);
  return values;
}

// random_floats scaled over `binades` binades: value i times 2^(i % binades - binades / 2).
// Bit-equality tests use it: over many magnitudes, a reordered sum, or a fused multiply-add
// where the spec has separate ones (or the reverse), changes low bits somewhere.
inline std::vector<float> floats_over_binades(std::mt19937_64& rng, size_t count, int binades) {
  std::vector<float> values = random_floats(rng, count);
  for (size_t i = 0; i < count; ++i) values[i] = std::ldexp(values[i], static_cast<int>(i % binades) - binades / 2);
  return values;
}

// Y[m, n] = sum_k X[m, k] W[n, k] (+ bias[n]) in double, and alongside it the
// error bound for an fp32 kernel. Derivation: a dot product of K terms summed in
// fp32 in any order (FMA or multiply-then-add) commits at most K+1 roundings on
// the way to each partial sum, each of relative size <= u = 2^-24, so
// |fl(y) - y| <= (K+1) u sum_k |x_k w_k| (+ first-order terms); adding the bias is one
// more rounding of |acc| + |bias|. We use (K + 3) u (sum|x w| + |bias|), a
// worst-case bound (no randomness assumed) so the test never flakes, still
// ~1e-4 relative at K = 1000: far below any indexing or scaling bug (O(1)).
struct ReferenceProduct {
  std::vector<double> y;
  std::vector<double> tolerance;
};

inline ReferenceProduct reference_matmul(std::span<const float> x, std::span<const float> w, int m, int n, int k,
                                         std::span<const float> bias = {}) {
  ReferenceProduct out{std::vector<double>(static_cast<size_t>(m) * n),
                       std::vector<double>(static_cast<size_t>(m) * n)};
  const double unit_roundoff = std::ldexp(1.0, -24);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double sum = 0.0, magnitude = 0.0;
      for (int kk = 0; kk < k; ++kk) {
        const double product =
            static_cast<double>(x[static_cast<size_t>(i) * k + kk]) * w[static_cast<size_t>(j) * k + kk];
        sum += product;
        magnitude += std::fabs(product);
      }
      const double b = bias.empty() ? 0.0 : bias[j];
      out.y[static_cast<size_t>(i) * n + j] = sum + b;
      out.tolerance[static_cast<size_t>(i) * n + j] = (k + 3) * unit_roundoff * (magnitude + std::fabs(b));
    }
  }
  return out;
}

// The same product for the int16-activation INT4 path (Int4Activations::int16), with
// its own bound. `block_of[k]` = index of the activation block original row k falls
// in (see int16_activation_blocks), `blocks` = how many per row.
//
// Derivation. Per X row, block b (<= 128 rows of one weight group) has the scale
// sigma_b = fl(max_{k in b} |x_k| / 32767) and x_q,k = round(x_k / sigma_b) clamped to
// +-32767, so |x_k - sigma_b x_q,k| <= sigma_b (1/2 + 2^-36) (the quotient is computed
// in double; the clamp only removes that slack) -- plus, if sigma_b is subnormal, at
// most 32767 * 2^-150 more, covered by the 2^-130 |w| term. The kernel forms
// t_b = sum_{k in b} (q_k - z) x_q,k exactly in int32, so T_b = s sigma_b t_b =
// sum_{k in b} w_k sigma_b x_q,k exactly (w_k = s (q_k - z) is the exact reference
// weight). Hence
//   |sum_b T_b - sum_k w_k x_k| <= sum_k |w_k| (sigma_b (1/2 + 2^-36) + 2^-130).  (quantization)
// The fp32 part: acc = fma(float(t_b), fl(s sigma_b), acc) over the B blocks, then
// + bias: each T_b meets <= B + 3 roundings (int -> float, the scale product, <= B
// accumulations, the bias add), so |y - (sum_b T_b + bias)| <= (B + 4) u (sum_b |T_b|
// + |bias|), u = 2^-24, with sum_b |T_b| <= sum_k |w_k| (|x_k| + sigma_b). The sum of
// both is the tolerance: ~1e-5 of sum|w x| for uniform activations at these K (the
// quantization term ~ sum|w| max|x| / 65534 dominates), while an indexing, zero-point
// or scale bug is O(1) of the result.
inline ReferenceProduct reference_matmul_int16(std::span<const float> x, std::span<const float> w, int m, int n, int k,
                                               std::span<const int> block_of, int blocks,
                                               std::span<const float> bias = {}) {
  ReferenceProduct out{std::vector<double>(static_cast<size_t>(m) * n),
                       std::vector<double>(static_cast<size_t>(m) * n)};
  const double u = std::ldexp(1.0, -24);
  std::vector<float> sigma(static_cast<size_t>(blocks));
  for (int i = 0; i < m; ++i) {
    const float* row = x.data() + static_cast<size_t>(i) * k;
    std::vector<float> amax(static_cast<size_t>(blocks), 0.0f);
    for (int kk = 0; kk < k; ++kk) amax[block_of[kk]] = std::max(amax[block_of[kk]], std::fabs(row[kk]));
    for (int b = 0; b < blocks; ++b) sigma[b] = amax[b] / 32767.0f;
    for (int j = 0; j < n; ++j) {
      double sum = 0.0, quantization = 0.0, magnitude = 0.0;
      for (int kk = 0; kk < k; ++kk) {
        const double wk = w[static_cast<size_t>(j) * k + kk], s = sigma[block_of[kk]];
        sum += wk * row[kk];
        quantization += std::fabs(wk) * (s * (0.5 + std::ldexp(1.0, -36)) + std::ldexp(1.0, -130));
        magnitude += std::fabs(wk) * (std::fabs(row[kk]) + s);
      }
      const double b = bias.empty() ? 0.0 : bias[j];
      out.y[static_cast<size_t>(i) * n + j] = sum + b;
      out.tolerance[static_cast<size_t>(i) * n + j] = quantization + (blocks + 4) * u * (magnitude + std::fabs(b));
    }
  }
  return out;
}

// The int16 path's activation blocks, from their documented definition (not from the
// implementation): groups in ascending id, each group's rows in ascending k, cut into
// runs of 128 rows. Returns the block of each original row k; `blocks` gets the count.
inline std::vector<int> int16_activation_blocks(const runtime::GptqWeight& weight, int& blocks) {
  std::vector<std::vector<int>> members(static_cast<size_t>(weight.num_groups()));
  for (int k = 0; k < weight.in_features; ++k) members[static_cast<size_t>(weight.group_of(k))].push_back(k);
  std::vector<int> block_of(static_cast<size_t>(weight.in_features));
  blocks = 0;
  for (const auto& rows : members) {
    for (size_t r = 0; r < rows.size(); ++r) block_of[static_cast<size_t>(rows[r])] = blocks + static_cast<int>(r / 128);
    blocks += static_cast<int>((rows.size() + 127) / 128);
  }
  return block_of;
}

// Number of elements outside tolerance (NaN counts: the outputs are poisoned with
// NaN beforehand, so an element the kernel never wrote fails here). Reports the first few.
inline int count_mismatches(std::span<const float> got, const ReferenceProduct& expected, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double error = std::fabs(static_cast<double>(got[i]) - expected.y[i]);
    if (!(error <= expected.tolerance[i])) {
      if (++bad <= 3) {
        std::cerr << what << ": element " << i << " got " << got[i] << " expected " << expected.y[i] << " (tolerance "
                  << expected.tolerance[i] << ")\n";
      }
    }
  }
  return bad;
}

}  // namespace quanteval::test
