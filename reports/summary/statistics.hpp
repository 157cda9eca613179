#pragma once
// Statistics the reports rest on.
#include <cstdint>
#include <vector>

namespace quanteval::reports {

// Unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k),
// computed as a running product so large n never overflows.
// Requires 0 <= c <= n and 1 <= k <= n; throws std::invalid_argument otherwise.
double pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k);

// Mean of pass_at_k over tasks; samples[i] = n_i, correct[i] = c_i.
double mean_pass_at_k(const std::vector<std::int64_t>& samples, const std::vector<std::int64_t>& correct,
                      std::int64_t k);

}  // namespace quanteval::reports
