#pragma once
// Shared by the CPU kernel tests: a printed random seed, random tensors, and the
// plain double-accumulation matmul every fast kernel is compared with.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <span>
#include <string>
#include <vector>

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
        const double product = static_cast<double>(x[static_cast<size_t>(i) * k + kk]) * w[static_cast<size_t>(j) * k + kk];
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

// Number of elements outside tolerance (NaN counts: the outputs are poisoned with
// NaN beforehand, so an element the kernel never wrote fails here). Reports the first few.
inline int count_mismatches(std::span<const float> got, const ReferenceProduct& expected, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double error = std::fabs(static_cast<double>(got[i]) - expected.y[i]);
    if (!(error <= expected.tolerance[i])) {
      if (++bad <= 3) {
        std::cerr << what << ": element " << i << " got " << got[i] << " expected " << expected.y[i]
                  << " (tolerance " << expected.tolerance[i] << ")\n";
      }
    }
  }
  return bad;
}

}  // namespace quanteval::test
