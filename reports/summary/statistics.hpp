#pragma once
// Statistics the reports rest on.
#include <cstdint>
#include <random>
#include <vector>

namespace quanteval::reports {

// Unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k),
// computed as a running product so large n never overflows.
// Requires 0 <= c <= n and 1 <= k <= n; throws std::invalid_argument otherwise.
double pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k);

// Mean of pass_at_k over tasks; samples[i] = n_i, correct[i] = c_i.
double mean_pass_at_k(const std::vector<std::int64_t>& samples, const std::vector<std::int64_t>& correct,
                      std::int64_t k);

// Uniform integer in [0, n) by rejection: unbiased, and unlike
// std::uniform_int_distribution the same on every standard library, so a seed
// reproduces a bootstrap interval anywhere. Requires n >= 1.
std::uint64_t uniform_index(std::mt19937_64& rng, std::uint64_t n);

// Quantile q in [0, 1] of ascending `sorted` (non-empty) by linear
// interpolation between order statistics (Hyndman & Fan type 7, numpy's default).
double quantile_of_sorted(const std::vector<double>& sorted, double q);

}  // namespace quanteval::reports
