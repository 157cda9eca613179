#include "reports/divergence/divergence.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include "reports/summary/statistics.hpp"

namespace quanteval::reports {

using nlohmann::ordered_json;

std::string_view to_string(Region region) {
  switch (region) {
    case Region::prompt: return "prompt";
    case Region::thinking: return "thinking";
    case Region::answer: return "answer";
  }
  throw std::logic_error("unknown region");
}

namespace {

// log-softmax of one row in double: logits - (max + log sum exp(logits - max)).
// Shifting by the max keeps every exp() in (0, 1], so nothing overflows, and
// the largest term is exactly 1, so the sum is never 0.
void log_softmax(std::span<const float> logits, std::vector<double>& out) {
  double max = -INFINITY;
  for (const float v : logits) {
    if (!std::isfinite(v)) throw std::invalid_argument(fmt::format("divergence: non-finite logit {}", v));
    max = std::max(max, static_cast<double>(v));
  }
  double sum = 0;
  for (const float v : logits) sum += std::exp(static_cast<double>(v) - max);
  const double log_normalizer = max + std::log(sum);
  out.resize(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - log_normalizer;
}

std::size_t argmax(std::span<const float> row) {
  return static_cast<std::size_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

double mean(double total, std::int64_t count) { return count == 0 ? 0.0 : total / static_cast<double>(count); }

}  // namespace

namespace {

// One position with caller-owned scratch for the two log-softmax rows, so a
// chunk reuses two vocab-sized buffers instead of allocating per position.
PositionDivergence score_row(std::span<const float> logits_a, std::span<const float> logits_b, std::int64_t next,
                             std::vector<double>& log_a, std::vector<double>& log_b) {
  if (logits_a.empty() || logits_a.size() != logits_b.size())
    throw std::invalid_argument(fmt::format("divergence: logit rows of {} and {} values (need equal, non-empty)",
                                            logits_a.size(), logits_b.size()));
  if ((next < 0 && next != kNoNextToken) || next >= static_cast<std::int64_t>(logits_a.size()))
    throw std::invalid_argument(fmt::format("divergence: next token {} outside [0, {})", next, logits_a.size()));
  log_softmax(logits_a, log_a);
  log_softmax(logits_b, log_b);
  double kl = 0;
  for (std::size_t i = 0; i < log_b.size(); ++i) {
    const double p = std::exp(log_b[i]);
    if (p > 0) kl += p * (log_b[i] - log_a[i]);  // p log p -> 0 as p -> 0; log_a is finite (finite logits)
  }
  PositionDivergence d;
  // KL >= 0 (Gibbs); rounding of near-identical rows can leave -1e-17.
  d.kl = std::max(0.0, kl);
  d.top1_a = static_cast<std::int64_t>(argmax(logits_a));
  d.top1_b = static_cast<std::int64_t>(argmax(logits_b));
  d.same_top1 = d.top1_a == d.top1_b;
  d.has_next = next != kNoNextToken;
  if (d.has_next) {
    const auto at = static_cast<std::size_t>(next);
    d.delta_p = std::exp(log_a[at]) - std::exp(log_b[at]);
  }
  return d;
}

}  // namespace

PositionDivergence position_divergence(std::span<const float> logits_a, std::span<const float> logits_b,
                                       std::int64_t next) {
  std::vector<double> log_a, log_b;
  return score_row(logits_a, logits_b, next, log_a, log_b);
}

void append_position_divergences(std::span<const float> logits_a, std::span<const float> logits_b, std::int64_t vocab,
                                 std::span<const std::int64_t> next, std::vector<PositionDivergence>& out) {
  const auto width = static_cast<std::size_t>(vocab);
  if (vocab < 1 || logits_a.size() != logits_b.size() || logits_a.size() != next.size() * width)
    throw std::invalid_argument(fmt::format("divergence: chunks of {} and {} logits for {} rows of {}", logits_a.size(),
                                            logits_b.size(), next.size(), vocab));
  std::vector<double> log_a, log_b;
  for (std::size_t r = 0; r < next.size(); ++r)
    out.push_back(
        score_row(logits_a.subspan(r * width, width), logits_b.subspan(r * width, width), next[r], log_a, log_b));
}

DivergenceStats divergence_stats(std::span<const PositionDivergence> positions, std::span<const std::size_t> task_of,
                                 const DivergenceOptions& options) {
  if (positions.empty() || positions.size() != task_of.size())
    throw std::invalid_argument(fmt::format("divergence stats: {} positions with {} task labels (need equal, >= 1)",
                                            positions.size(), task_of.size()));
  if (options.bootstrap_resamples < 2)
    throw std::invalid_argument(
        fmt::format("divergence: need >= 2 bootstrap resamples, got {}", options.bootstrap_resamples));
  DivergenceStats s;
  s.positions = static_cast<std::int64_t>(positions.size());
  // Per task: KL sum and token count, the units the bootstrap resamples.
  std::map<std::size_t, std::pair<double, std::int64_t>> per_task;
  std::vector<double> kl, delta_p;
  kl.reserve(positions.size());
  delta_p.reserve(positions.size());
  double kl_total = 0, delta_p_total = 0;
  std::int64_t same = 0;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    const PositionDivergence& p = positions[i];
    kl.push_back(p.kl);
    if (p.has_next) delta_p.push_back(p.delta_p);
    kl_total += p.kl;
    delta_p_total += p.delta_p;  // 0 without a next token
    same += p.same_top1 ? 1 : 0;
    auto& [task_kl, task_count] = per_task[task_of[i]];
    task_kl += p.kl;
    ++task_count;
  }
  s.tasks = static_cast<std::int64_t>(per_task.size());
  s.mean_kl = mean(kl_total, s.positions);
  s.same_top1 = mean(static_cast<double>(same), s.positions);
  s.mean_delta_p = mean(delta_p_total, static_cast<std::int64_t>(delta_p.size()));
  std::sort(kl.begin(), kl.end());
  std::sort(delta_p.begin(), delta_p.end());
  s.median_kl = quantile_of_sorted(kl, 0.5);
  s.p90_kl = quantile_of_sorted(kl, 0.9);
  s.p99_kl = quantile_of_sorted(kl, 0.99);
  s.max_kl = kl.back();
  if (!delta_p.empty())
    for (const double q : kDeltaPQuantiles) s.delta_p_quantiles.push_back(quantile_of_sorted(delta_p, q));

  std::vector<std::pair<double, std::int64_t>> units;
  for (const auto& [task, unit] : per_task) units.push_back(unit);
  if (units.size() == 1) {
    s.mean_kl_ci = {s.mean_kl, s.mean_kl};
    return s;
  }
  std::mt19937_64 rng(options.seed);
  std::vector<double> means(static_cast<std::size_t>(options.bootstrap_resamples));
  for (double& resample : means) {
    double total = 0;
    std::int64_t count = 0;
    for (std::size_t i = 0; i < units.size(); ++i) {
      const auto& [task_kl, task_count] = units[uniform_index(rng, units.size())];
      total += task_kl;
      count += task_count;
    }
    resample = mean(total, count);  // every unit has >= 1 position, so count >= units.size()
  }
  std::sort(means.begin(), means.end());
  s.mean_kl_ci = {quantile_of_sorted(means, 0.025), quantile_of_sorted(means, 0.975)};
  return s;
}

DivergenceReport summarize_divergence(const std::vector<ScoredSequence>& sequences, const DivergenceOptions& options) {
  DivergenceReport report;
  report.options = options;
  std::vector<std::string> source_order;
  std::map<std::string, std::vector<std::size_t>> by_source;  // indices into sequences
  for (std::size_t index = 0; index < sequences.size(); ++index) {
    const ScoredSequence& s = sequences[index];
    if (s.positions.size() != s.regions.size())
      throw std::invalid_argument(fmt::format("divergence: {} {} #{}: {} positions but {} region labels", s.source,
                                              s.task_id, s.sample_index, s.positions.size(), s.regions.size()));
    if (!by_source.count(s.source)) source_order.push_back(s.source);
    by_source[s.source].push_back(index);
  }
  for (const auto& name : source_order) {
    SourceDivergence source;
    source.source = name;
    std::vector<std::string> task_order;
    std::map<std::string, std::size_t> task_index;
    std::vector<PositionDivergence> all;
    std::vector<std::size_t> all_task;
    std::map<Region, std::vector<PositionDivergence>> region_positions;
    std::map<Region, std::vector<std::size_t>> region_task;
    std::vector<WorstPosition> worst;
    for (const std::size_t index : by_source.at(name)) {
      const ScoredSequence* s = &sequences[index];
      ++source.sequences;
      for (std::size_t i = 0; i < s->positions.size(); ++i)
        worst.push_back({index,
                         s->task_id,
                         s->sample_index,
                         static_cast<std::int64_t>(i),
                         s->regions[i],
                         s->positions[i],
                         {},
                         {},
                         {},
                         {}});
      const auto [it, inserted] = task_index.emplace(s->task_id, task_order.size());
      if (inserted) task_order.push_back(s->task_id);
      for (std::size_t i = 0; i < s->positions.size(); ++i) {
        all.push_back(s->positions[i]);
        all_task.push_back(it->second);
        region_positions[s->regions[i]].push_back(s->positions[i]);
        region_task[s->regions[i]].push_back(it->second);
      }
    }
    if (all.empty()) continue;
    source.all = divergence_stats(all, all_task, options);
    for (const auto& [region, positions] : region_positions)
      source.by_region[region] = divergence_stats(positions, region_task.at(region), options);

    // Per task: sums over every sample of the task in this source.
    struct Tally {
      std::int64_t n = 0, same = 0, with_next = 0;
      double kl = 0, max_kl = 0, delta_p = 0;
      std::map<Region, std::pair<double, std::int64_t>> region;
    };
    std::vector<Tally> tallies(task_order.size());
    const auto keep = std::min(worst.size(), static_cast<std::size_t>(std::max(0, options.worst_positions)));
    std::partial_sort(worst.begin(), worst.begin() + static_cast<std::ptrdiff_t>(keep), worst.end(),
                      [](const WorstPosition& a, const WorstPosition& b) { return a.divergence.kl > b.divergence.kl; });
    worst.resize(keep);
    source.worst = std::move(worst);
    for (const std::size_t index : by_source.at(name)) {
      const ScoredSequence* s = &sequences[index];
      Tally& t = tallies[task_index.at(s->task_id)];
      for (std::size_t i = 0; i < s->positions.size(); ++i) {
        const PositionDivergence& p = s->positions[i];
        ++t.n;
        t.same += p.same_top1 ? 1 : 0;
        t.kl += p.kl;
        t.max_kl = std::max(t.max_kl, p.kl);
        t.delta_p += p.delta_p;
        t.with_next += p.has_next ? 1 : 0;
        auto& [region_kl, region_n] = t.region[s->regions[i]];
        region_kl += p.kl;
        ++region_n;
      }
    }
    for (std::size_t i = 0; i < task_order.size(); ++i) {
      const Tally& t = tallies[i];
      TaskDivergence task;
      task.task_id = task_order[i];
      task.positions = t.n;
      task.mean_kl = mean(t.kl, t.n);
      task.max_kl = t.max_kl;
      task.same_top1 = mean(static_cast<double>(t.same), t.n);
      task.mean_delta_p = mean(t.delta_p, t.with_next);
      for (const auto& [region, unit] : t.region) task.mean_kl_by_region[region] = mean(unit.first, unit.second);
      source.tasks.push_back(std::move(task));
    }
    report.sources.push_back(std::move(source));
  }
  return report;
}

namespace {

ordered_json stats_json(const DivergenceStats& s) {
  ordered_json j;
  j["positions"] = s.positions;
  j["tasks"] = s.tasks;
  j["mean_kl"] = s.mean_kl;
  j["mean_kl_ci95"] = {s.mean_kl_ci.low, s.mean_kl_ci.high};
  j["median_kl"] = s.median_kl;
  j["p90_kl"] = s.p90_kl;
  j["p99_kl"] = s.p99_kl;
  j["max_kl"] = s.max_kl;
  j["same_top1"] = s.same_top1;
  j["mean_delta_p"] = s.mean_delta_p;
  ordered_json q = ordered_json::object();
  for (std::size_t i = 0; i < s.delta_p_quantiles.size(); ++i)
    q[fmt::format("p{}", static_cast<int>(std::lround(kDeltaPQuantiles[i] * 100)))] = s.delta_p_quantiles[i];
  j["delta_p_quantiles"] = q;
  return j;
}

}  // namespace

ordered_json to_json(const DivergenceReport& report) {
  ordered_json j;
  j["model"] = report.model;
  j["baseline"] = report.baseline;
  j["measure"] =
      "per position: KL(P_baseline || P_model) in nats from both full distributions (double, log-softmax); "
      "same_top1 = argmaxes agree; delta_p = p_model(next) - p_baseline(next)";
  j["info"] = report.info;
  j["bootstrap"] = {{"resamples", report.options.bootstrap_resamples},
                    {"seed", report.options.seed},
                    {"unit", "task"},
                    {"interval", "percentile 95%"}};
  ordered_json sources = ordered_json::array();
  for (const auto& s : report.sources) {
    ordered_json o;
    o["source"] = s.source;
    o["sequences"] = s.sequences;
    o["all"] = stats_json(s.all);
    ordered_json regions = ordered_json::object();
    for (const auto& [region, stats] : s.by_region) regions[std::string(to_string(region))] = stats_json(stats);
    o["regions"] = regions;
    ordered_json tasks = ordered_json::array();
    for (const auto& t : s.tasks) {
      ordered_json r;
      r["task_id"] = t.task_id;
      r["positions"] = t.positions;
      r["mean_kl"] = t.mean_kl;
      r["max_kl"] = t.max_kl;
      r["same_top1"] = t.same_top1;
      r["mean_delta_p"] = t.mean_delta_p;
      ordered_json by_region = ordered_json::object();
      for (const auto& [region, value] : t.mean_kl_by_region) by_region[std::string(to_string(region))] = value;
      r["mean_kl_by_region"] = by_region;
      tasks.push_back(r);
    }
    o["tasks"] = tasks;
    ordered_json worst = ordered_json::array();
    for (const auto& w : s.worst) {
      worst.push_back({{"task_id", w.task_id},
                       {"sample_index", w.sample_index},
                       {"position", w.position},
                       {"region", std::string(to_string(w.region))},
                       {"kl", w.divergence.kl},
                       {"delta_p", w.divergence.delta_p},
                       {"top1_a_id", w.divergence.top1_a},
                       {"top1_b_id", w.divergence.top1_b},
                       {"context", w.context},
                       {"next", w.next},
                       {"top1_a", w.top1_a},
                       {"top1_b", w.top1_b}});
    }
    o["worst_positions"] = worst;
    sources.push_back(o);
  }
  j["sources"] = sources;
  return j;
}

ordered_json positions_json(const ScoredSequence& sequence) {
  ordered_json j;
  j["source"] = sequence.source;
  j["task_id"] = sequence.task_id;
  j["sample_index"] = sequence.sample_index;
  ordered_json region = ordered_json::array(), kl = ordered_json::array(), same = ordered_json::array(),
               delta_p = ordered_json::array(), top1_a = ordered_json::array(), top1_b = ordered_json::array();
  for (std::size_t i = 0; i < sequence.positions.size(); ++i) {
    const PositionDivergence& p = sequence.positions[i];
    region.push_back(std::string(to_string(sequence.regions[i])));
    kl.push_back(p.kl);
    same.push_back(p.same_top1);
    delta_p.push_back(p.has_next ? ordered_json(p.delta_p) : ordered_json(nullptr));
    top1_a.push_back(p.top1_a);
    top1_b.push_back(p.top1_b);
  }
  j["region"] = region;
  j["kl"] = kl;
  j["same_top1"] = same;
  j["delta_p"] = delta_p;
  j["top1_a"] = top1_a;
  j["top1_b"] = top1_b;
  return j;
}

namespace {

// Token text in a Markdown table cell: JSON-quoted (newlines and tabs visible as
// \n, \t; the string is valid UTF-8, decoded by the tokenizer) with pipes escaped.
std::string table_text(const std::string& text) {
  std::string quoted = nlohmann::json(text).dump();
  std::string out;
  for (const char c : quoted) {
    if (c == '|') out += '\\';
    out += c;
  }
  return "`` " + out + " ``";  // a double-backtick span may contain single backticks
}

std::string stats_row(std::string_view label, const DivergenceStats& s) {
  // Δp p1 / p50 / p99: the tails say whether A loses the true token's mass.
  const std::string dp = s.delta_p_quantiles.empty()
                             ? std::string("—")
                             : fmt::format("{:+.4f} / {:+.4f} / {:+.4f}", s.delta_p_quantiles.at(0),
                                           s.delta_p_quantiles.at(3), s.delta_p_quantiles.at(6));
  return fmt::format("| {} | {} | {} | {:.5f} [{:.5f}, {:.5f}] | {:.5f} | {:.5f} | {:.5f} | {:.4f} | {:.2f}% | {} |\n",
                     label, s.positions, s.tasks, s.mean_kl, s.mean_kl_ci.low, s.mean_kl_ci.high, s.median_kl, s.p90_kl,
                     s.p99_kl, s.max_kl, 100 * s.same_top1, dp);
}

}  // namespace

std::string to_markdown(const DivergenceReport& report) {
  std::string md = "# Token-level divergence\n\n";
  md += fmt::format("- model (A): `{}`\n- baseline (B): `{}`\n", report.model, report.baseline);
  md += fmt::format(
      "- per position, teacher-forced: KL(P_B ‖ P_A) in nats from both full distributions; same top-1; "
      "Δp = p_A(next) − p_B(next)\n- mean KL 95% CI: percentile bootstrap over tasks ({} resamples, seed {})\n",
      report.options.bootstrap_resamples, report.options.seed);
  for (const auto& s : report.sources) {
    md += fmt::format("\n## {} ({} sequences)\n\n", s.source, s.sequences);
    md +=
        "| region | positions | tasks | mean KL [95% CI] | median | p90 | p99 | max | same top-1 | Δp p1 / p50 / p99 "
        "|\n| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
    md += stats_row("all", s.all);
    for (const auto& [region, stats] : s.by_region) md += stats_row(to_string(region), stats);
    if (!s.worst.empty()) {
      md += fmt::format(
          "\nLargest divergences (of {} positions): the text before the position, the true next token and each "
          "model's top-1.\n\n| task | region | position | KL | Δp | context | next | top-1 A | top-1 B |\n"
          "| --- | --- | ---: | ---: | ---: | --- | --- | --- | --- |\n",
          s.all.positions);
      for (const auto& w : s.worst)
        md += fmt::format("| {} #{} | {} | {} | {:.4f} | {:+.4f} | {} | {} | {} | {} |\n", w.task_id, w.sample_index,
                          to_string(w.region), w.position, w.divergence.kl, w.divergence.delta_p, table_text(w.context),
                          table_text(w.next), table_text(w.top1_a), table_text(w.top1_b));
    }
    md +=
        "\n| task | positions | mean KL | max KL | same top-1 | mean Δp |\n| --- | ---: | ---: | ---: | ---: | ---: "
        "|\n";
    for (const auto& t : s.tasks)
      md += fmt::format("| {} | {} | {:.5f} | {:.4f} | {:.2f}% | {:+.5f} |\n", t.task_id, t.positions, t.mean_kl,
                        t.max_kl, 100 * t.same_top1, t.mean_delta_p);
  }
  return md;
}

}  // namespace quanteval::reports
