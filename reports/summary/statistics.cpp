#include "reports/summary/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace quanteval::reports {

double pass_at_k(std::int64_t n, std::int64_t c, std::int64_t k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw std::invalid_argument("pass_at_k: need 0 <= c <= n and 1 <= k <= n (n=" + std::to_string(n) +
                                ", c=" + std::to_string(c) + ", k=" + std::to_string(k) + ")");
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
  double fail_all = 1.0;
  for (std::int64_t i = n - c + 1; i <= n; ++i) fail_all *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail_all;
}

double mean_pass_at_k(const std::vector<std::int64_t>& samples, const std::vector<std::int64_t>& correct,
                      std::int64_t k) {
  if (samples.size() != correct.size() || samples.empty())
    throw std::invalid_argument("mean_pass_at_k: need one (n, c) pair per task and at least one task");
  double total = 0.0;
  for (std::size_t i = 0; i < samples.size(); ++i) total += pass_at_k(samples[i], correct[i], k);
  return total / static_cast<double>(samples.size());
}

std::uint64_t uniform_index(std::mt19937_64& rng, std::uint64_t n) {
  if (n == 0) throw std::invalid_argument("uniform_index: empty range");
  const std::uint64_t bucket = std::numeric_limits<std::uint64_t>::max() / n;
  const std::uint64_t accept_below = bucket * n;
  std::uint64_t draw;
  do draw = rng();
  while (draw >= accept_below);
  return draw / bucket;
}

double quantile_of_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) throw std::invalid_argument("quantile_of_sorted: no values");
  const double h = (static_cast<double>(sorted.size()) - 1.0) * q;
  const auto below = static_cast<std::size_t>(std::floor(h));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (h - static_cast<double>(below)) * (sorted[above] - sorted[below]);
}

}  // namespace quanteval::reports
