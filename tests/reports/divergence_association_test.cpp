// The Mann-Whitney U test against brute-force permutation distributions, and
// the join of a comparison's flips with divergence.json (reports/divergence/association).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

#include "reports/divergence/association.hpp"

using namespace quanteval::reports;

namespace {

// U of x against y by definition: pairs with x > y, plus half the ties.
double u_by_pairs(const std::vector<double>& x, const std::vector<double>& y) {
  double u = 0;
  for (const double a : x)
    for (const double b : y) u += a > b ? 1.0 : a == b ? 0.5 : 0.0;
  return u;
}

// Two-sided permutation p of U: every way of choosing which |x| of the pooled
// values are "x", counted exactly (what the exact test claims to compute, and,
// with ties, what the normal approximation approximates).
struct Permutation {
  double p = 1;         // two-sided
  double max_atom = 0;  // largest probability of one value of U
};
Permutation permutation_test(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<double> pooled = x;
  pooled.insert(pooled.end(), y.begin(), y.end());
  const double observed = u_by_pairs(x, y);
  std::vector<bool> pick(pooled.size(), false);
  std::fill(pick.begin(), pick.begin() + static_cast<std::ptrdiff_t>(x.size()), true);
  double total = 0, at_most = 0, at_least = 0;
  std::map<double, double> atoms;
  do {
    std::vector<double> a, b;
    for (std::size_t i = 0; i < pooled.size(); ++i) (pick[i] ? a : b).push_back(pooled[i]);
    const double u = u_by_pairs(a, b);
    ++total;
    ++atoms[u];
    if (u <= observed + 1e-9) ++at_most;
    if (u >= observed - 1e-9) ++at_least;
  } while (std::prev_permutation(pick.begin(), pick.end()));
  Permutation r;
  r.p = std::min(1.0, 2 * std::min(at_most, at_least) / total);
  for (const auto& [u, count] : atoms) r.max_atom = std::max(r.max_atom, count / total);
  return r;
}

double permutation_p(const std::vector<double>& x, const std::vector<double>& y) { return permutation_test(x, y).p; }

}  // namespace

TEST_CASE("Mann-Whitney U: complete separation of 3 and 3 has exact p = 2 / C(6,3) = 0.1") {
  const RankTest low = mann_whitney_u({1, 2, 3}, {4, 5, 6});
  CHECK(low.exact);
  CHECK(low.u == 0.0);
  CHECK(low.p_value == doctest::Approx(0.1));
  CHECK(low.superiority == 0.0);
  const RankTest high = mann_whitney_u({4, 5, 6}, {1, 2, 3});
  CHECK(high.u == 9.0);
  CHECK(high.p_value == doctest::Approx(0.1));
  CHECK(high.superiority == 1.0);
  CHECK_THROWS_AS(mann_whitney_u({}, {1.0}), std::invalid_argument);
}

TEST_CASE("Mann-Whitney U: exact p equals the brute-force permutation distribution") {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  for (const auto& [m, n] : std::vector<std::pair<int, int>>{{4, 5}, {1, 7}, {6, 6}, {3, 9}}) {
    CAPTURE(m);
    CAPTURE(n);
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<double> x, y;
      for (int i = 0; i < m; ++i) x.push_back(normal(rng) + 0.3 * trial);
      for (int i = 0; i < n; ++i) y.push_back(normal(rng));
      const RankTest r = mann_whitney_u(x, y);
      CHECK(r.exact);
      CHECK(r.u == u_by_pairs(x, y));
      CHECK(r.p_value == doctest::Approx(permutation_p(x, y)).epsilon(1e-12));
    }
  }
}

TEST_CASE("Mann-Whitney U with ties: the normal approximation tracks the permutation p") {
  // Values on a coarse grid, so ties are everywhere; 9 + 9 gives 48620 permutations.
  // The permutation distribution of U is discrete; a two-sided p doubles a tail
  // that includes the observed value's own atom, which a continuous
  // approximation cannot resolve: the tolerance is twice the largest atom
  // (measured by the brute force) plus 0.01 for the approximation itself.
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> grid(0, 5);
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<double> x, y;
    for (int i = 0; i < 9; ++i) x.push_back(grid(rng) + (trial % 3 == 0 ? 1 : 0));
    for (int i = 0; i < 9; ++i) y.push_back(grid(rng));
    const RankTest r = mann_whitney_u(x, y);
    CHECK_FALSE(r.exact);
    CHECK(r.u == u_by_pairs(x, y));
    const Permutation truth = permutation_test(x, y);
    CHECK(std::abs(r.p_value - truth.p) <= 2 * truth.max_atom + 0.01);
  }
  const RankTest all_equal = mann_whitney_u({1, 1, 1}, {1, 1});
  CHECK(all_equal.p_value == 1.0);
  CHECK(all_equal.superiority == 0.5);
}

TEST_CASE("Mann-Whitney U: exact and normal agree on large untied samples") {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  std::vector<double> x, y;
  for (int i = 0; i < 30; ++i) x.push_back(normal(rng) + 0.5);
  for (int i = 0; i < 120; ++i) y.push_back(normal(rng));
  const RankTest exact = mann_whitney_u(x, y);
  CHECK(exact.exact);
  // The same data with one tie forced (one value duplicated across groups) takes the normal path.
  std::vector<double> y_tied = y;
  y_tied[0] = x[0];
  const RankTest approx = mann_whitney_u(x, y_tied);
  CHECK_FALSE(approx.exact);
  CHECK(exact.p_value < 0.05);
  CHECK(std::abs(std::log(approx.p_value) - std::log(exact.p_value)) < 0.3);  // within ~35% relative
}

TEST_CASE("regressed vs unchanged tasks: groups from the flips, KL from divergence.json") {
  Comparison c;
  c.runs.resize(2);
  c.runs[0].label = "int4";
  c.runs[1].label = "bf16";
  Contender contender;
  contender.run_index = 0;
  ModeComparison thinking;
  thinking.mode = "thinking";
  thinking.paired = true;
  ModeComparison standard = thinking;
  standard.mode = "standard";
  const std::vector<std::pair<std::string, Flip>> flips = {
      {"HumanEval/0", Flip::regressed}, {"HumanEval/1", Flip::regressed}, {"HumanEval/2", Flip::both_pass},
      {"HumanEval/3", Flip::both_fail}, {"HumanEval/4", Flip::improved},  {"HumanEval/5", Flip::both_pass},
      {"HumanEval/6", Flip::regressed}, {"HumanEval/7", Flip::both_pass}};
  for (const auto& [id, flip] : flips) {
    thinking.tasks.push_back({id, 0, 0, flip});
    standard.tasks.push_back({id, 0, 0, flip});
  }
  contender.modes = {standard, thinking};
  c.contenders.push_back(contender);

  const std::vector<double> kl = {0.9, 0.8, 0.1, 0.2, 0.5, 0.15, 0.7, 0.05};
  nlohmann::json tasks = nlohmann::json::array();
  for (std::size_t i = 0; i + 1 < flips.size(); ++i)  // HumanEval/7 has no divergence data
    tasks.push_back({{"task_id", flips[i].first}, {"mean_kl", kl[i]}});
  const nlohmann::json divergence = {{"sources", {{{"source", "thinking"}, {"tasks", tasks}}}}};

  // The standard mode has neither its own samples nor canonical solutions in
  // divergence.json: it is left out rather than borrowing the thinking samples.
  const auto associations = associate_divergence(c, divergence);
  REQUIRE(associations.size() == 1);
  const DivergenceAssociation& a = associations[0];
  CHECK(a.contender == "int4");
  CHECK(a.mode == "thinking");
  CHECK(a.source == "thinking");
  CHECK(a.regressed.tasks == std::vector<std::string>{"HumanEval/0", "HumanEval/1", "HumanEval/6"});
  CHECK(a.regressed.mean == doctest::Approx(0.8));
  CHECK(a.regressed.median == doctest::Approx(0.8));
  CHECK(a.unchanged.tasks.size() == 3);  // 2 and 5 (both pass), 3 (both fail); 7 has no data
  CHECK(a.unchanged.mean == doctest::Approx(0.15));
  CHECK(a.improved.tasks == std::vector<std::string>{"HumanEval/4"});
  CHECK(a.without_divergence == std::vector<std::string>{"HumanEval/7"});
  REQUIRE(a.tested);
  CHECK(a.test.u == 9.0);  // every regressed task above every unchanged one
  CHECK(a.test.superiority == 1.0);
  CHECK(a.test.p_value == doctest::Approx(0.1));  // 2 / C(6, 3)
  const std::string md = divergence_association_markdown(associations);
  CHECK(md.find("| int4 | thinking | thinking | 3, 0.80000, 0.80000 | 3, 0.15000, 0.15000 | 1, 0.50000 |") !=
        std::string::npos);
  const auto json = to_json(associations);
  CHECK(json[0].at("mann_whitney").at("exact") == true);
  CHECK(json[0].at("without_divergence")[0] == "HumanEval/7");

  // With canonical solutions the standard mode is tested on them.
  nlohmann::json with_canonical = divergence;
  with_canonical["sources"].push_back({{"source", "canonical"}, {"tasks", tasks}});
  const auto both = associate_divergence(c, with_canonical);
  REQUIRE(both.size() == 2);
  CHECK(both[0].mode == "standard");
  CHECK(both[0].source == "canonical");
}
