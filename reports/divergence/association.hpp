#pragma once
// Do the tasks a quantized checkpoint regressed on diverge more? `compare
// --divergence DIR` joins a comparison's flips with divergence.json's per-task
// mean KL and tests the association with a Mann-Whitney U rank test (no
// assumption on the shape of the KL distribution, which is heavy-tailed).
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reports/comparison/comparison.hpp"

namespace quanteval::reports {

struct RankTest {
  double u = 0;              // U of the first sample: pairs (x, y) with x > y, plus half the ties
  double p_value = 1;        // two-sided
  bool exact = false;        // the exact null distribution (no ties, small samples), else normal with tie correction
  double superiority = 0.5;  // U / (n_x n_y): P(X > Y) + P(X = Y) / 2
};

// Mann-Whitney U of x against y (both non-empty; throws std::invalid_argument
// otherwise). Exact two-sided p from the permutation distribution of U when
// there are no ties and (n_x + 1)(n_y + 1)(n_x n_y + 1) <= 5e7; otherwise the
// normal approximation with tie-corrected variance and continuity correction.
RankTest mann_whitney_u(const std::vector<double>& x, const std::vector<double>& y);

// Per-task mean KL of a source of divergence.json: {task_id: mean_kl}; empty when the source is absent.
std::map<std::string, double> task_mean_kl(const nlohmann::json& divergence, const std::string& source);

struct KlGroup {
  std::vector<std::string> tasks;  // with a divergence value
  double mean = 0, median = 0;     // of their mean KL (0 when empty)
};

struct DivergenceAssociation {
  std::string contender, mode;
  std::string source;                           // divergence source used: the mode's own samples, else canonical
  KlGroup regressed, unchanged, improved;       // unchanged = both pass, both fail or tied
  std::vector<std::string> without_divergence;  // shared tasks absent from the source
  bool tested = false;                          // both regressed and unchanged non-empty
  RankTest test;                                // regressed vs unchanged
};

// One entry per contender and paired mode whose source exists in `divergence`.
std::vector<DivergenceAssociation> associate_divergence(const Comparison& comparison, const nlohmann::json& divergence);

nlohmann::ordered_json to_json(const std::vector<DivergenceAssociation>& associations);
std::string divergence_association_markdown(const std::vector<DivergenceAssociation>& associations);

}  // namespace quanteval::reports
