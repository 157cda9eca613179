#include "reports/divergence/association.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "reports/summary/statistics.hpp"

namespace quanteval::reports {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// Number of arrangements of m x's and n y's with U = u, for u in [0, m n]: the
// largest element is an x (beating all n y's: f(m-1, n) shifted by n) or a y
// (f(m, n-1)). Only additions of non-negative counts, so no cancellation even
// where the counts reach C(m+n, m) ~ 1e40; rows of m are rolled.
std::vector<double> u_distribution(std::size_t m, std::size_t n) {
  std::vector<std::vector<double>> previous(n + 1, std::vector<double>{1.0}), current(n + 1);  // f(0, n') = [1]
  for (std::size_t i = 1; i <= m; ++i) {
    current[0] = {1.0};  // f(i, 0)
    for (std::size_t j = 1; j <= n; ++j) {
      std::vector<double> f(i * j + 1, 0.0);
      for (std::size_t u = 0; u < previous[j].size(); ++u) f[u + j] += previous[j][u];
      for (std::size_t u = 0; u < current[j - 1].size(); ++u) f[u] += current[j - 1][u];
      current[j] = std::move(f);
    }
    std::swap(previous, current);
  }
  return previous[n];
}

double median_of(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return quantile_of_sorted(values, 0.5);
}

KlGroup group(const std::vector<std::string>& tasks, const std::map<std::string, double>& kl,
              std::vector<double>& values, std::vector<std::string>& missing) {
  KlGroup g;
  values.clear();
  for (const auto& t : tasks) {
    const auto it = kl.find(t);
    if (it == kl.end()) {
      missing.push_back(t);
      continue;
    }
    g.tasks.push_back(t);
    values.push_back(it->second);
  }
  double total = 0;
  for (const double v : values) total += v;
  g.mean = values.empty() ? 0 : total / static_cast<double>(values.size());
  g.median = median_of(values);
  return g;
}

}  // namespace

RankTest mann_whitney_u(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.empty() || y.empty())
    throw std::invalid_argument(
        fmt::format("Mann-Whitney U: need two non-empty samples ({} and {})", x.size(), y.size()));
  // Midranks of the pooled sample.
  std::vector<std::pair<double, bool>> pooled;  // value, from x
  for (const double v : x) pooled.emplace_back(v, true);
  for (const double v : y) pooled.emplace_back(v, false);
  std::sort(pooled.begin(), pooled.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  const auto n_all = static_cast<double>(pooled.size());
  double rank_sum_x = 0, tie_term = 0;
  bool ties = false;
  for (std::size_t i = 0; i < pooled.size();) {
    std::size_t j = i;
    while (j < pooled.size() && pooled[j].first == pooled[i].first) ++j;
    const double midrank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    const auto t = static_cast<double>(j - i);
    if (j - i > 1) ties = true;
    tie_term += t * t * t - t;
    for (std::size_t k = i; k < j; ++k)
      if (pooled[k].second) rank_sum_x += midrank;
    i = j;
  }
  const auto m = static_cast<double>(x.size()), n = static_cast<double>(y.size());
  RankTest r;
  r.u = rank_sum_x - m * (m + 1) / 2;
  r.superiority = r.u / (m * n);
  if (!ties && (m + 1) * (n + 1) * (m * n + 1) <= 5e7) {
    const std::vector<double> counts = u_distribution(x.size(), y.size());
    double total = 0, at_most = 0, at_least = 0;
    const auto u = static_cast<std::size_t>(std::llround(r.u));
    for (std::size_t k = 0; k < counts.size(); ++k) {
      total += counts[k];
      if (k <= u) at_most += counts[k];
      if (k >= u) at_least += counts[k];
    }
    r.exact = true;
    r.p_value = std::min(1.0, 2.0 * std::min(at_most, at_least) / total);
    return r;
  }
  const double variance = m * n / 12.0 * ((n_all + 1) - tie_term / (n_all * (n_all - 1)));
  if (variance <= 0) return r;  // every value equal: no evidence either way (p = 1)
  const double z = std::max(0.0, std::abs(r.u - m * n / 2) - 0.5) / std::sqrt(variance);
  r.p_value = std::min(1.0, std::erfc(z / std::sqrt(2.0)));
  return r;
}

std::map<std::string, double> task_mean_kl(const json& divergence, const std::string& source) {
  std::map<std::string, double> out;
  for (const auto& s : divergence.at("sources")) {
    if (s.at("source") != source) continue;
    for (const auto& t : s.at("tasks")) out[t.at("task_id").get<std::string>()] = t.at("mean_kl").get<double>();
  }
  return out;
}

std::vector<DivergenceAssociation> associate_divergence(const Comparison& comparison, const json& divergence) {
  std::vector<DivergenceAssociation> out;
  for (const auto& contender : comparison.contenders)
    for (const auto& m : contender.modes) {
      if (!m.paired) continue;
      DivergenceAssociation a;
      a.contender = comparison.runs[contender.run_index].label;
      a.mode = m.mode;
      a.source = m.mode;
      std::map<std::string, double> kl = task_mean_kl(divergence, a.source);
      if (kl.empty()) {
        a.source = "canonical";
        kl = task_mean_kl(divergence, a.source);
      }
      if (kl.empty()) continue;
      std::vector<std::string> unchanged = m.task_ids(Flip::both_pass), both_fail = m.task_ids(Flip::both_fail),
                               tied = m.task_ids(Flip::tied);
      unchanged.insert(unchanged.end(), both_fail.begin(), both_fail.end());
      unchanged.insert(unchanged.end(), tied.begin(), tied.end());
      std::vector<double> regressed_kl, unchanged_kl, improved_kl;
      a.regressed = group(m.task_ids(Flip::regressed), kl, regressed_kl, a.without_divergence);
      a.unchanged = group(unchanged, kl, unchanged_kl, a.without_divergence);
      a.improved = group(m.task_ids(Flip::improved), kl, improved_kl, a.without_divergence);
      if (!regressed_kl.empty() && !unchanged_kl.empty()) {
        a.tested = true;
        a.test = mann_whitney_u(regressed_kl, unchanged_kl);
      }
      out.push_back(std::move(a));
    }
  return out;
}

ordered_json to_json(const std::vector<DivergenceAssociation>& associations) {
  ordered_json list = ordered_json::array();
  const auto group_json = [](const KlGroup& g) {
    return ordered_json{{"tasks", g.tasks.size()}, {"mean_kl", g.mean}, {"median_kl", g.median}, {"task_ids", g.tasks}};
  };
  for (const auto& a : associations) {
    ordered_json j;
    j["contender"] = a.contender;
    j["mode"] = a.mode;
    j["divergence_source"] = a.source;
    j["regressed"] = group_json(a.regressed);
    j["unchanged"] = group_json(a.unchanged);
    j["improved"] = group_json(a.improved);
    j["without_divergence"] = a.without_divergence;
    if (a.tested)
      j["mann_whitney"] = {{"u", a.test.u},
                           {"p_value_two_sided", a.test.p_value},
                           {"exact", a.test.exact},
                           {"p_regressed_kl_higher", a.test.superiority}};
    else
      j["mann_whitney"] = nullptr;
    list.push_back(j);
  }
  return list;
}

std::string divergence_association_markdown(const std::vector<DivergenceAssociation>& associations) {
  std::string md = "# Divergence of regressed vs unchanged tasks\n\n";
  md +=
      "Per-task mean KL(P_baseline ‖ P_model) from divergence.json, grouped by the task's flip. The Mann-Whitney U "
      "test asks whether regressed tasks have higher (or lower) KL than unchanged ones (both pass, both fail or "
      "tied); P(KL_r > KL_u) is U / (n_r n_u), 0.5 when unrelated.\n\n";
  if (associations.empty()) return md + "No paired mode has divergence data.\n";
  md +=
      "| run | mode | KL source | regressed: n, mean, median | unchanged: n, mean, median | improved: n, mean | "
      "P(KL_r > KL_u) | U | p (two-sided) |\n| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: |\n";
  for (const auto& a : associations) {
    const auto cell = [](const KlGroup& g) {
      return g.tasks.empty() ? std::string("0") : fmt::format("{}, {:.5f}, {:.5f}", g.tasks.size(), g.mean, g.median);
    };
    const std::string improved =
        a.improved.tasks.empty() ? "0" : fmt::format("{}, {:.5f}", a.improved.tasks.size(), a.improved.mean);
    if (a.tested)
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {:.3f} | {:.1f} | {:.4g}{} |\n", a.contender, a.mode, a.source,
                        cell(a.regressed), cell(a.unchanged), improved, a.test.superiority, a.test.u, a.test.p_value,
                        a.test.exact ? " (exact)" : "");
    else
      md += fmt::format("| {} | {} | {} | {} | {} | {} | — | — | no test (a group is empty) |\n", a.contender, a.mode,
                        a.source, cell(a.regressed), cell(a.unchanged), improved);
  }
  for (const auto& a : associations)
    if (!a.without_divergence.empty())
      md += fmt::format("\n{} {}: {} shared tasks have no divergence data (not counted).\n", a.contender, a.mode,
                        a.without_divergence.size());
  return md;
}

}  // namespace quanteval::reports
