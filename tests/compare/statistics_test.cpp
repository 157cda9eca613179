// The paired statistics against values computed by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "reports/comparison/comparison.hpp"

using namespace quanteval::reports;

namespace {

// n tasks: `regressed` with difference -1, `improved` with +1, the rest 0.
std::vector<double> binary_differences(int n, int regressed, int improved) {
  std::vector<double> d(static_cast<std::size_t>(n), 0.0);
  for (int i = 0; i < regressed; ++i) d[static_cast<std::size_t>(i)] = -1.0;
  for (int i = 0; i < improved; ++i) d[static_cast<std::size_t>(regressed + i)] = 1.0;
  return d;
}

double binomial(int n, int k) {
  double result = 1.0;
  for (int i = 1; i <= k; ++i) result = result * (n - k + i) / i;
  return result;
}

}  // namespace

TEST_CASE("McNemar exact p-value matches hand-computed binomial tails") {
  // b=10, c=2: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096.
  CHECK(mcnemar_exact_p_value(10, 2) == doctest::Approx(2.0 * (1 + 12 + 66) / 4096.0).epsilon(1e-12));
  CHECK(mcnemar_exact_p_value(10, 2) == doctest::Approx(0.038574).epsilon(1e-5));
  CHECK(mcnemar_exact_p_value(2, 10) == mcnemar_exact_p_value(10, 2));           // two-sided: symmetric
  CHECK(mcnemar_exact_p_value(5, 0) == doctest::Approx(0.0625).epsilon(1e-12));  // 2 / 2^5
  CHECK(mcnemar_exact_p_value(6, 0) == doctest::Approx(0.03125).epsilon(1e-12));
  CHECK(mcnemar_exact_p_value(7, 7) == 1.0);  // b = c
  CHECK(mcnemar_exact_p_value(0, 0) == 1.0);  // no discordant pair
  CHECK(mcnemar_exact_p_value(1, 0) == 1.0);  // 2 * 1/2, capped
  // Direct summation for every split of 30 discordant pairs.
  for (int b = 0; b <= 30; ++b) {
    const int c = 30 - b;
    double tail = 0.0;
    for (int i = 0; i <= std::min(b, c); ++i) tail += binomial(30, i);
    const double expected = std::min(1.0, 2.0 * tail / std::pow(2.0, 30));
    CHECK(mcnemar_exact_p_value(b, c) == doctest::Approx(expected).epsilon(1e-11));
  }
  // Far past where 2^-n underflows a double: still finite and tiny.
  const double huge = mcnemar_exact_p_value(1400, 1000);
  CHECK(huge > 0.0);
  CHECK(huge < 1e-10);
  CHECK_THROWS_AS(mcnemar_exact_p_value(-1, 3), std::invalid_argument);
}

TEST_CASE("Wilson interval closed forms at the edges") {
  // x = 0: [0, z^2 / (n + z^2)]; x = n: [n / (n + z^2), 1].
  const double z2 = kZ975 * kZ975;
  CHECK(wilson_interval(0, 10).low == 0.0);
  CHECK(wilson_interval(0, 10).high == doctest::Approx(z2 / (10 + z2)).epsilon(1e-12));
  CHECK(wilson_interval(10, 10).low == doctest::Approx(10 / (10 + z2)).epsilon(1e-12));
  // The model card's 129/164: centre (p + z^2/2n) / (1 + z^2/n).
  const double n = 164, p = 129 / n;
  const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half = kZ975 * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);
  CHECK(wilson_interval(129, 164).low == doctest::Approx(centre - half).epsilon(1e-12));
  CHECK(wilson_interval(129, 164).high == doctest::Approx(centre + half).epsilon(1e-12));
  CHECK(wilson_interval(129, 164).low == doctest::Approx(0.7177).epsilon(2e-4));
  CHECK(wilson_interval(129, 164).high == doctest::Approx(0.8424).epsilon(2e-4));
}

TEST_CASE("paired bootstrap: deterministic per seed, contains the observed delta") {
  const auto d = binary_differences(164, 20, 8);
  const Interval first = paired_bootstrap_interval(d, 10000, 42);
  const Interval again = paired_bootstrap_interval(d, 10000, 42);
  CHECK(first.low == again.low);
  CHECK(first.high == again.high);
  bool some_seed_differs = false;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const Interval other = paired_bootstrap_interval(d, 10000, seed);
    some_seed_differs = some_seed_differs || other.low != first.low || other.high != first.high;
  }
  CHECK(some_seed_differs);
  const double observed = -12.0 / 164.0;
  CHECK(first.low < observed);
  CHECK(observed < first.high);
  // No discordance: every resample has delta 0.
  const Interval none = paired_bootstrap_interval(binary_differences(50, 0, 0), 1000, 7);
  CHECK(none.low == 0.0);
  CHECK(none.high == 0.0);
  CHECK_THROWS_AS(paired_bootstrap_interval({}, 1000, 1), std::invalid_argument);
}

// The bootstrap percentile interval estimates the same quantiles as the
// paired-normal interval mean ± 1.96·se, se = sqrt(plug-in variance / n)
// (the bootstrap distribution's variance is exactly that). They differ by
//  (1) Monte Carlo error: the q-quantile of N draws has SD ≈ sqrt(q(1-q)/N) / f(x_q),
//      f(x_q) = φ(1.96)/se = 0.0584/se, so SD ≈ 0.0267·se at N = 10000; allow 4 SD = 0.107·se;
//  (2) skewness the normal ignores: Cornish–Fisher moves the quantile by
//      se·(z²−1)·γ/(6√n) = 0.474·|γ|/√n·se, γ the skewness of one difference;
//  (3) the lattice: a resampled mean is a multiple of 1/n (or of 1/(n·samples)),
//      and interpolation between order statistics moves at most one step: 1/n.
// Tolerance per endpoint: se·(0.107 + 0.474·|γ|/√n) + 1/n.
TEST_CASE("paired bootstrap agrees with the analytic paired-normal interval within the derived tolerance") {
  auto check_agreement = [](const std::vector<double>& d, double lattice_step) {
    const double n = static_cast<double>(d.size());
    double mean = 0, m2 = 0, m3 = 0;
    for (double x : d) mean += x / n;
    for (double x : d) {
      m2 += (x - mean) * (x - mean) / n;
      m3 += (x - mean) * (x - mean) * (x - mean) / n;
    }
    const double se = std::sqrt(m2 / n);
    const double skewness = m3 / std::pow(m2, 1.5);
    const double tolerance = se * (0.107 + 0.474 * std::fabs(skewness) / std::sqrt(n)) + lattice_step;
    const Interval boot = paired_bootstrap_interval(d, 10000, 2024);
    const Interval normal = paired_normal_interval(d);
    CHECK(normal.low == doctest::Approx(mean - kZ975 * se).epsilon(1e-12));
    INFO("bootstrap [", boot.low, ", ", boot.high, "] normal [", normal.low, ", ", normal.high, "] tolerance ",
         tolerance);
    CHECK(std::fabs(boot.low - normal.low) <= tolerance);
    CHECK(std::fabs(boot.high - normal.high) <= tolerance);
  };
  check_agreement(binary_differences(164, 20, 8), 1.0 / 164);
  check_agreement(binary_differences(164, 31, 2), 1.0 / 164);
  // Several samples per task: per-task rate differences in steps of 1/10.
  std::vector<double> rates;
  for (int task = 0; task < 164; ++task) rates.push_back(((task * 7) % 11 - 5) / 10.0 - (task % 4 == 0 ? 0.1 : 0.0));
  check_agreement(rates, 1.0 / (164 * 10));
}

TEST_CASE("Newcombe's hybrid score interval reproduces the published example") {
  // Newcombe (1998), Stat Med 17:873, example (b): 56/70 vs 48/80, method 10: 0.0524 to 0.3339.
  const Interval interval = newcombe_difference_interval(56, 70, 48, 80);
  CHECK(interval.low == doctest::Approx(0.0524).epsilon(1e-3));
  CHECK(interval.high == doctest::Approx(0.3339).epsilon(1e-3));
}

TEST_CASE("minimum detectable delta: formula, assumed discordance, exact-test floor") {
  const double z_sum = kZ975 + kZ80;
  const auto observed = minimum_detectable_delta(binary_differences(164, 20, 8));
  CHECK_FALSE(observed.discordance_assumed);
  CHECK(observed.discordance == doctest::Approx(28.0 / 164));
  CHECK(observed.delta == doctest::Approx(z_sum * std::sqrt(28.0 / 164 / 164)).epsilon(1e-9));
  CHECK(observed.min_one_way_flips == 6);  // 2/2^5 = 0.0625 >= 0.05 > 2/2^6
  const auto assumed = minimum_detectable_delta(binary_differences(164, 0, 0));
  CHECK(assumed.discordance_assumed);
  CHECK(assumed.discordance == doctest::Approx(3.0 / 164));
  CHECK(assumed.delta == doctest::Approx(z_sum * std::sqrt(3.0 / 164 / 164)).epsilon(1e-9));
}
