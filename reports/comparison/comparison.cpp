#include "reports/comparison/comparison.hpp"

#include "reports/summary/statistics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <stdexcept>

namespace quanteval::reports {

using nlohmann::ordered_json;

// ---------------------------------------------------------------- statistics

double mcnemar_exact_p_value(std::int64_t regressed, std::int64_t improved) {
  if (regressed < 0 || improved < 0)
    throw std::invalid_argument(fmt::format("mcnemar: counts must be >= 0 (b={}, c={})", regressed, improved));
  const std::int64_t n = regressed + improved;
  if (n == 0) return 1.0;
  const std::int64_t k = std::min(regressed, improved);
  // Terms C(n,i)/2^n in log space (2^-n underflows past n = 1074); they grow
  // with i up to n/2 >= k, so the largest is term k and the sum is taken
  // relative to it.
  const auto log_term = [n](std::int64_t i) {
    return std::lgamma(static_cast<double>(n + 1)) - std::lgamma(static_cast<double>(i + 1)) -
           std::lgamma(static_cast<double>(n - i + 1)) - static_cast<double>(n) * std::log(2.0);
  };
  const double largest = log_term(k);
  double relative_sum = 0.0;
  for (std::int64_t i = 0; i <= k; ++i) relative_sum += std::exp(log_term(i) - largest);
  return std::min(1.0, 2.0 * std::exp(largest) * relative_sum);
}

namespace {

double mean_of(const std::vector<double>& values) {
  double total = 0.0;
  for (double v : values) total += v;
  return total / static_cast<double>(values.size());
}

// Standard normal quantile by bisection on Phi(x) = erfc(-x/sqrt2)/2: slow but
// exact to double precision, and called a handful of times per report.
double normal_quantile(double probability) {
  if (!(probability > 0.0 && probability < 1.0))
    throw std::invalid_argument(fmt::format("normal quantile needs 0 < p < 1, got {}", probability));
  double low = -40.0, high = 40.0;
  for (int iteration = 0; iteration < 200; ++iteration) {
    const double middle = 0.5 * (low + high);
    (0.5 * std::erfc(-middle / std::sqrt(2.0)) < probability ? low : high) = middle;
  }
  return 0.5 * (low + high);
}

void require_differences(const std::vector<double>& differences, const char* what) {
  if (differences.empty()) throw std::invalid_argument(fmt::format("{}: no paired tasks", what));
}

}  // namespace

Interval paired_bootstrap_interval(const std::vector<double>& differences, int resamples, std::uint64_t seed,
                                   double confidence) {
  require_differences(differences, "paired bootstrap");
  if (resamples < 2)
    throw std::invalid_argument(fmt::format("paired bootstrap: need >= 2 resamples, got {}", resamples));
  std::mt19937_64 rng(seed);
  const std::size_t n = differences.size();
  std::vector<double> means(static_cast<std::size_t>(resamples));
  for (double& resample_mean : means) {
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) total += differences[uniform_index(rng, n)];
    resample_mean = total / static_cast<double>(n);
  }
  std::sort(means.begin(), means.end());
  const double tail = (1.0 - confidence) / 2.0;
  return {quantile_of_sorted(means, tail), quantile_of_sorted(means, 1.0 - tail)};
}

Interval paired_normal_interval(const std::vector<double>& differences, double z) {
  require_differences(differences, "paired normal interval");
  const double mean = mean_of(differences);
  double squares = 0.0;
  for (double d : differences) squares += (d - mean) * (d - mean);
  const double n = static_cast<double>(differences.size());
  const double standard_error = std::sqrt(squares / n / n);
  return {mean - z * standard_error, mean + z * standard_error};
}

Interval newcombe_difference_interval(std::int64_t successes_a, std::int64_t trials_a, std::int64_t successes_b,
                                      std::int64_t trials_b, double z) {
  if (trials_a <= 0 || trials_b <= 0) throw std::invalid_argument("newcombe interval: trials must be > 0");
  const double p_a = static_cast<double>(successes_a) / static_cast<double>(trials_a);
  const double p_b = static_cast<double>(successes_b) / static_cast<double>(trials_b);
  const Interval a = wilson_interval(successes_a, trials_a, z);
  const Interval b = wilson_interval(successes_b, trials_b, z);
  const double delta = p_a - p_b;
  return {delta - std::sqrt((p_a - a.low) * (p_a - a.low) + (b.high - p_b) * (b.high - p_b)),
          delta + std::sqrt((a.high - p_a) * (a.high - p_a) + (p_b - b.low) * (p_b - b.low))};
}

DetectableDelta minimum_detectable_delta(const std::vector<double>& differences, double alpha, double power) {
  require_differences(differences, "minimum detectable delta");
  DetectableDelta result;
  const double n = static_cast<double>(differences.size());
  double squares = 0.0;
  for (double d : differences) squares += d * d;
  result.discordance = squares / n;
  if (result.discordance == 0.0) {
    result.discordance = std::min(1.0, 3.0 / n);
    result.discordance_assumed = true;
  }
  const double z_sum = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power);
  result.delta = z_sum * std::sqrt(result.discordance / n);
  // The exact test's own floor: m flips all one way give p = 2 / 2^m.
  result.min_one_way_flips = 1;
  while (mcnemar_exact_p_value(result.min_one_way_flips, 0) >= alpha && result.min_one_way_flips < 64)
    ++result.min_one_way_flips;
  return result;
}

// ---------------------------------------------------------------- comparison

std::string_view to_string(Flip flip) {
  switch (flip) {
    case Flip::both_pass: return "both_pass";
    case Flip::both_fail: return "both_fail";
    case Flip::tied: return "tied";
    case Flip::regressed: return "regressed";
    case Flip::improved: return "improved";
  }
  return "unknown";
}

std::vector<std::string> ModeComparison::task_ids(Flip flip) const {
  std::vector<std::string> ids;
  for (const auto& task : tasks)
    if (task.flip == flip) ids.push_back(task.task_id);
  return ids;
}

namespace {

double task_rate(const TaskTally& tally) {
  return static_cast<double>(tally.passed) / static_cast<double>(tally.samples);
}

Flip classify(double rate_a, double rate_b) {
  if (rate_a < rate_b) return Flip::regressed;
  if (rate_a > rate_b) return Flip::improved;
  if (rate_a == 1.0) return Flip::both_pass;
  if (rate_a == 0.0) return Flip::both_fail;
  return Flip::tied;  // equal partial rates: only with several samples per task
}

// A task's scored samples in sample order (sandbox_error excluded, as in summarize).
std::map<std::string, std::vector<const SampleVerdict*>> samples_by_task(const ModeResults& mode) {
  std::map<std::string, std::vector<const SampleVerdict*>> out;
  for (const auto& v : mode.verdicts)
    if (v.status != Status::sandbox_error) out[v.task_id].push_back(&v);
  for (auto& [task, list] : out)
    std::sort(list.begin(), list.end(),
              [](const SampleVerdict* x, const SampleVerdict* y) { return x->sample_index < y->sample_index; });
  return out;
}

// The sample that speaks for one side of a flip: its first passing sample when
// the side won, its first failing one when it lost.
FlipSide flip_side(const std::vector<const SampleVerdict*>& samples, const ModeResults& mode, bool won) {
  FlipSide side;
  for (const SampleVerdict* v : samples)
    if ((v->status == Status::passed) == won) {
      side.status = v->status;
      side.sample_index = v->sample_index;
      side.detail = v->detail;
      if (auto it = mode.generations.find({v->task_id, v->sample_index}); it != mode.generations.end())
        side.generation = it->second;
      break;
    }
  return side;
}

std::int64_t rounded_successes(double rate, std::size_t tasks) {
  return static_cast<std::int64_t>(std::llround(rate * static_cast<double>(tasks)));
}

std::vector<BudgetPoint> budget_curve_of(const RunResults& run, const std::string& mode) {
  const auto it = run.modes.find(mode);
  const auto budget = run.max_new_tokens(mode);
  if (it == run.modes.end() || it->second.generations.empty() || !budget) return {};
  return budget_curve(it->second.verdicts, it->second.generations, *budget);
}

ModeComparison compare_mode(const std::string& mode, const ModeResults& a, const ModeResults& b,
                            const ComparisonOptions& options) {
  ModeComparison m;
  m.mode = mode;
  m.pass_at_1_a = a.pass_at_1();
  m.pass_at_1_b = b.pass_at_1();
  m.wilson_a = a.summary.pass_at_1_interval;
  m.tasks_a = a.summary.tasks.size();
  if (m.tasks_a == 0) throw RunInputError(fmt::format("mode {}: the quantized run has no scored task", mode));

  if (!b.has_verdicts()) {
    // Published baseline: its count is taken as round(p * n) of the same n
    // tasks, the only reading under which its interval can be stated at all.
    const std::int64_t successes_b = rounded_successes(m.pass_at_1_b, m.tasks_a);
    const auto n = static_cast<std::int64_t>(m.tasks_a);
    m.wilson_b = wilson_interval(successes_b, n);
    m.unpaired_ci = newcombe_difference_interval(rounded_successes(m.pass_at_1_a, m.tasks_a), n, successes_b, n);
    return m;
  }

  m.paired = true;
  m.wilson_b = b.summary.pass_at_1_interval;
  m.tasks_b = b.summary.tasks.size();
  for (const auto& [k, value] : a.summary.pass_at_k)
    if (auto it = b.summary.pass_at_k.find(k); k > 1 && it != b.summary.pass_at_k.end())
      m.pass_at_k[k] = {value, it->second};

  for (const auto& [task_id, tally_a] : a.summary.tasks) {
    auto it = b.summary.tasks.find(task_id);
    if (it == b.summary.tasks.end()) {
      m.only_in_a.push_back(task_id);
      continue;
    }
    TaskComparison task{task_id, task_rate(tally_a), task_rate(it->second), Flip::both_fail};
    task.flip = classify(task.rate_a, task.rate_b);
    m.tasks.push_back(std::move(task));
  }
  for (const auto& [task_id, tally_b] : b.summary.tasks)
    if (!a.summary.tasks.count(task_id)) m.only_in_b.push_back(task_id);
  if (m.tasks.empty())
    throw RunInputError(
        fmt::format("mode {}: the two runs have no task in common (A has {}, B has {})", mode, m.tasks_a, m.tasks_b));

  // Problem order everywhere a human reads the list.
  std::sort(m.tasks.begin(), m.tasks.end(),
            [](const TaskComparison& x, const TaskComparison& y) { return task_order_less(x.task_id, y.task_id); });
  std::sort(m.only_in_a.begin(), m.only_in_a.end(), task_order_less);
  std::sort(m.only_in_b.begin(), m.only_in_b.end(), task_order_less);
  std::vector<double> differences;
  for (const auto& task : m.tasks) {
    differences.push_back(task.rate_a - task.rate_b);
    switch (task.flip) {
      case Flip::both_pass: ++m.both_pass; break;
      case Flip::both_fail: ++m.both_fail; break;
      case Flip::tied: ++m.tied; break;
      case Flip::regressed: ++m.regressed; break;
      case Flip::improved: ++m.improved; break;
    }
  }
  const auto samples_a = samples_by_task(a), samples_b = samples_by_task(b);
  for (const auto& task : m.tasks) {
    if (task.flip != Flip::regressed && task.flip != Flip::improved) continue;
    const bool a_won = task.flip == Flip::improved;
    FlipDetail detail{task.task_id, task.flip, flip_side(samples_a.at(task.task_id), a, a_won),
                      flip_side(samples_b.at(task.task_id), b, !a_won)};
    if (a_won)
      ++m.improvements_by_cause[detail.b.status];
    else
      ++m.regressions_by_cause[detail.a.status];
    m.flips.push_back(std::move(detail));
  }
  m.paired_delta = mean_of(differences);
  m.mcnemar_p = mcnemar_exact_p_value(m.regressed, m.improved);
  m.bootstrap_ci = paired_bootstrap_interval(differences, options.bootstrap_resamples, options.seed);
  m.normal_ci = paired_normal_interval(differences);
  m.detectable = minimum_detectable_delta(differences);
  return m;
}

// `score` directories carry no mode name. When every run has exactly one mode
// and at most one real name appears among them, they all measure the same
// thing: give them that name so they pair up.
void align_single_modes(std::vector<RunResults>& runs, std::vector<std::string>& notes) {
  std::set<std::string> names;
  for (const auto& run : runs) {
    if (run.modes.size() != 1) return;
    names.insert(run.modes.begin()->first);
  }
  names.erase(std::string(kUnnamedMode));
  if (names.size() != 1) return;
  const std::string name = *names.begin();
  for (auto& run : runs) {
    auto node = run.modes.extract(run.modes.begin());
    if (node.key() == name) {
      run.modes.insert(std::move(node));
      continue;
    }
    notes.push_back(fmt::format("{}: its unnamed ({}) verdicts are compared as mode {}", run.label, node.key(), name));
    node.key() = name;
    run.modes.insert(std::move(node));
  }
}

std::string mode_list(const RunResults& run) {
  std::vector<std::string> names;
  for (const auto& [name, mode] : run.modes) names.push_back(name);
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

Comparison compare_runs(std::vector<RunResults> runs, const ComparisonOptions& options) {
  if (runs.size() < 2) throw std::invalid_argument("compare: need a quantized run and a baseline");
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (i != 1 && runs[i].published_only)
      throw std::invalid_argument(
          fmt::format("compare: only the baseline may be a published number ({})", runs[i].label));
  if (options.bootstrap_resamples < 100)
    throw std::invalid_argument(
        fmt::format("compare: bootstrap resamples must be >= 100, got {}", options.bootstrap_resamples));
  Comparison c;
  c.options = options;
  align_single_modes(runs, c.notes);
  c.runs = std::move(runs);
  const RunResults& quantized = c.runs[0];
  const RunResults& baseline = c.runs[1];

  if (options.modes.empty()) {
    for (const auto& [name, mode] : quantized.modes)
      if (baseline.modes.count(name)) c.modes.push_back(name);
    if (c.modes.empty())
      throw RunInputError(fmt::format("{} (modes: {}) and {} (modes: {}) share no mode", quantized.label,
                                      mode_list(quantized), baseline.label, mode_list(baseline)));
  } else {
    for (const auto& name : options.modes) {
      for (const RunResults* run : {&quantized, &baseline})
        if (!run->modes.count(name))
          throw RunInputError(
              fmt::format("--mode {}: {} has no such mode (it has: {})", name, run->label, mode_list(*run)));
      if (std::find(c.modes.begin(), c.modes.end(), name) == c.modes.end()) c.modes.push_back(name);
    }
    std::sort(c.modes.begin(), c.modes.end());
  }

  for (std::size_t i = 0; i < c.runs.size(); ++i) {
    for (const auto& warning : c.runs[i].warnings) c.notes.push_back(c.runs[i].label + ": " + warning);
    if (i == c.baseline_index) continue;
    Contender contender;
    contender.run_index = i;
    for (const auto& name : c.modes) {
      auto it = c.runs[i].modes.find(name);
      if (it == c.runs[i].modes.end()) {
        c.notes.push_back(fmt::format("{} has no mode {}; left out of that comparison", c.runs[i].label, name));
        continue;
      }
      contender.modes.push_back(compare_mode(name, it->second, baseline.modes.at(name), options));
      contender.modes.back().budget_a = budget_curve_of(c.runs[i], name);
      contender.modes.back().budget_b = budget_curve_of(baseline, name);
    }
    c.contenders.push_back(std::move(contender));
  }
  // Pairing is only meaningful under the same conditions: refuse what differs.
  std::vector<std::string> differing;
  for (auto& contender : c.contenders) {
    contender.guarantees = check_guarantees(c.runs[contender.run_index], baseline, c.modes);
    for (const auto& g : contender.guarantees)
      if (g.required && g.state == GuaranteeState::differs)
        differing.push_back(fmt::format("{}: {} ({})", c.runs[contender.run_index].label, g.field, g.detail));
  }
  if (!differing.empty() && !options.allow_mismatch)
    throw RunInputError(fmt::format(
        "the runs were not made under the same conditions, so their flips would not be quantization effects; "
        "differing fields against the baseline ({}): {}. Pass --allow-mismatch to compare them anyway",
        baseline.label, fmt::join(differing, "; ")));
  c.mismatches = std::move(differing);
  return c;
}

// ---------------------------------------------------------------- writers

namespace {

constexpr const char* kUnknown = "—";

std::string percent(double fraction) { return fmt::format("{:.2f}%", 100.0 * fraction); }
std::string points(double fraction) { return fmt::format("{:+.2f}", 100.0 * fraction); }
std::string interval_pp(const Interval& interval) {
  return fmt::format("[{:+.2f}, {:+.2f}] pp", 100.0 * interval.low, 100.0 * interval.high);
}
std::string p_value(double p) { return p >= 0.001 ? fmt::format("{:.4f}", p) : fmt::format("{:.2e}", p); }

std::string task_list(const std::vector<std::string>& ids) {
  return ids.empty() ? std::string("none") : fmt::format("{}", fmt::join(ids, ", "));
}

const ModeComparison* find_mode(const Contender& contender, const std::string& mode) {
  for (const auto& m : contender.modes)
    if (m.mode == mode) return &m;
  return nullptr;
}

std::string pass_cell(double value, const Interval& wilson) {
  return fmt::format("{} [{:.2f}, {:.2f}]", percent(value), 100.0 * wilson.low, 100.0 * wilson.high);
}

std::string run_role(const Comparison& c, std::size_t index) {
  if (index == c.baseline_index) return "baseline";
  return index == 0 ? "quantized" : "variant";
}

}  // namespace

Table model_card_table(const Comparison& c) {
  Table table;
  // Column order: the contenders, then the baseline, then one delta per contender.
  std::vector<std::size_t> order;
  for (const auto& contender : c.contenders) order.push_back(contender.run_index);
  table.header.push_back("Metric");
  for (std::size_t index : order) table.header.push_back(c.runs[index].label);
  table.header.push_back(c.baseline().label + (c.baseline().published_only ? " (published)" : ""));
  const bool several = c.contenders.size() > 1;
  for (std::size_t index : order)
    table.header.push_back(several ? fmt::format("Delta {} (pp)", c.runs[index].label) : "Delta (pp)");

  const RunResults& baseline = c.baseline();
  for (const auto& mode : c.modes) {
    std::vector<std::string> row{fmt::format("pass@1 {}", mode)};
    std::vector<std::string> deltas;
    const ModeComparison* first = nullptr;
    for (const auto& contender : c.contenders) {
      const ModeComparison* m = find_mode(contender, mode);
      row.push_back(m ? pass_cell(m->pass_at_1_a, m->wilson_a) : kUnknown);
      deltas.push_back(m ? points(m->pass_at_1_a - m->pass_at_1_b) : kUnknown);
      if (m && !first) first = m;
    }
    if (baseline.published_only)
      row.push_back(percent(baseline.modes.at(mode).pass_at_1()));
    else
      row.push_back(first ? pass_cell(first->pass_at_1_b, first->wilson_b) : kUnknown);
    row.insert(row.end(), deltas.begin(), deltas.end());
    table.rows.push_back(std::move(row));

    // pass@k (k >= 2) where the baseline and at least one contender have it.
    std::set<int> ks;
    for (const auto& contender : c.contenders)
      if (const ModeComparison* m = find_mode(contender, mode))
        for (const auto& [k, values] : m->pass_at_k) ks.insert(k);
    for (int k : ks) {
      std::vector<std::string> k_row{fmt::format("pass@{} {}", k, mode)};
      std::vector<std::string> k_deltas;
      std::string baseline_cell = kUnknown;
      for (const auto& contender : c.contenders) {
        const std::pair<double, double>* values = nullptr;
        if (const ModeComparison* m = find_mode(contender, mode))
          if (auto it = m->pass_at_k.find(k); it != m->pass_at_k.end()) values = &it->second;
        k_row.push_back(values ? percent(values->first) : kUnknown);
        k_deltas.push_back(values ? points(values->first - values->second) : kUnknown);
        if (values) baseline_cell = percent(values->second);
      }
      k_row.push_back(baseline_cell);
      k_row.insert(k_row.end(), k_deltas.begin(), k_deltas.end());
      table.rows.push_back(std::move(k_row));
    }
  }

  // Model facts, shown when any run knows them.
  auto fact_row = [&](const std::string& metric, auto value_of, auto format_cell) {
    bool any = false;
    for (const auto& run : c.runs) any = any || value_of(run).has_value();
    if (!any) return;
    std::vector<std::string> row{metric};
    for (std::size_t index : order) row.push_back(format_cell(value_of(c.runs[index]), value_of(baseline)));
    row.push_back(format_cell(value_of(baseline), std::optional<double>{}));
    for (std::size_t i = 0; i < order.size(); ++i) row.push_back(kUnknown);
    table.rows.push_back(std::move(row));
  };
  fact_row(
      "size (GB)", [](const RunResults& r) { return r.model.size_bytes; },
      [](std::optional<double> bytes, std::optional<double> baseline_bytes) -> std::string {
        if (!bytes) return kUnknown;
        if (baseline_bytes && *baseline_bytes > 0)
          return fmt::format("{:.2f} ({:+.1f}% vs baseline)", *bytes / 1e9, 100.0 * (*bytes / *baseline_bytes - 1.0));
        return fmt::format("{:.2f}", *bytes / 1e9);
      });
  fact_row(
      "bits per weight", [](const RunResults& r) { return r.model.bits_per_weight; },
      [](std::optional<double> bits, std::optional<double>) -> std::string {
        return bits ? fmt::format("{:.2f}", *bits) : kUnknown;
      });
  fact_row(
      "decode tok/s", [](const RunResults& r) { return r.speed.decode_tokens_per_second; },
      [](std::optional<double> speed, std::optional<double> baseline_speed) -> std::string {
        if (!speed) return kUnknown;
        if (baseline_speed && *baseline_speed > 0)
          return fmt::format("{:.1f} ({:.2f}x baseline)", *speed, *speed / *baseline_speed);
        return fmt::format("{:.1f}", *speed);
      });
  fact_row(
      "prefill tok/s", [](const RunResults& r) { return r.speed.prefill_tokens_per_second; },
      [](std::optional<double> speed, std::optional<double>) -> std::string {
        return speed ? fmt::format("{:.0f}", *speed) : kUnknown;
      });
  bool any_quantization = false;
  for (const auto& run : c.runs) any_quantization = any_quantization || !run.model.quantization.empty();
  if (any_quantization) {
    std::vector<std::string> row{"quantization"};
    for (std::size_t index : order)
      row.push_back(c.runs[index].model.quantization.empty() ? kUnknown : c.runs[index].model.quantization);
    row.push_back(baseline.model.quantization.empty() ? kUnknown : baseline.model.quantization);
    for (std::size_t i = 0; i < order.size(); ++i) row.push_back(kUnknown);
    table.rows.push_back(std::move(row));
  }
  return table;
}

std::string to_markdown(const Table& table) {
  auto escape = [](const std::string& text) {
    std::string out;
    for (char ch : text) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
    return out;
  };
  std::string md = "|";
  // Appends rather than `" " + cell + " |"`: GCC 12 warns falsely (-Wrestrict) on the latter.
  auto append_cell = [&](const std::string& cell) {
    md += ' ';
    md += escape(cell);
    md += " |";
  };
  for (const auto& cell : table.header) append_cell(cell);
  md += "\n|";
  for (std::size_t i = 0; i < table.header.size(); ++i) md += i == 0 ? " --- |" : " ---: |";
  md += "\n";
  for (const auto& row : table.rows) {
    md += "|";
    for (const auto& cell : row) append_cell(cell);
    md += "\n";
  }
  return md;
}

namespace {

std::string mode_statistics_markdown(const Comparison& c, const Contender& contender, const ModeComparison& m) {
  const std::string& a = c.runs[contender.run_index].label;
  const std::string& b = c.baseline().label;
  std::string md = fmt::format("### {}: {} vs {}\n\n", m.mode, a, b);
  if (!m.paired) {
    md += fmt::format(
        "- The baseline is a published number: no per-task pairing, no McNemar test.\n"
        "- Delta pass@1: {} pp; unpaired 95% CI {} (Newcombe hybrid score interval, taking the baseline as "
        "round(p·n) of the same n = {} tasks; a paired comparison would be narrower).\n\n",
        points(m.delta()), interval_pp(m.unpaired_ci), m.tasks_a);
    return md;
  }
  md +=
      fmt::format("- Tasks compared: {} (in both runs); only in {}: {}; only in {}: {}.\n", m.tasks.size(), a,
                  m.only_in_a.empty() ? "none" : fmt::format("{} ({})", m.only_in_a.size(), task_list(m.only_in_a)), b,
                  m.only_in_b.empty() ? "none" : fmt::format("{} ({})", m.only_in_b.size(), task_list(m.only_in_b)));
  md += fmt::format("- Outcomes: both pass {}, both fail {}, regressed {} (A fails, B passes), improved {}{}.\n",
                    m.both_pass, m.both_fail, m.regressed, m.improved,
                    m.tied ? fmt::format(", tied at equal partial rates {}", m.tied) : "");
  md += fmt::format(
      "- Delta pass@1 (A − B) over shared tasks: {} pp; paired bootstrap 95% CI {} ({} resamples of tasks, seed {}, "
      "percentile); paired normal approximation {}.\n",
      points(m.paired_delta), interval_pp(m.bootstrap_ci), c.options.bootstrap_resamples, c.options.seed,
      interval_pp(m.normal_ci));
  md += fmt::format(
      "- McNemar exact two-sided p = {} (b = {} regressed, c = {} improved; p = min(1, 2·Σ_{{i≤min(b,c)}} "
      "C(b+c, i)/2^(b+c))).\n",
      p_value(m.mcnemar_p), m.regressed, m.improved);
  md += fmt::format(
      "- Smallest detectable delta: {:.2f} pp (α = 0.05 two-sided, power 0.8: MDE = (z₀.₉₇₅ + z₀.₈)·√(D/n), D = {:.4f} "
      "{}, n = {}); the exact test cannot reach p < 0.05 with fewer than {} tasks flipping one way.\n",
      100.0 * m.detectable.delta, m.detectable.discordance,
      m.detectable.discordance_assumed ? "assumed (no discordant task observed: rule of three, 3/n)"
                                       : "observed mean squared per-task difference",
      m.tasks.size(), m.detectable.min_one_way_flips);
  md += fmt::format("- Regressed: {}\n", task_list(m.task_ids(Flip::regressed)));
  md += fmt::format("- Improved: {}\n\n", task_list(m.task_ids(Flip::improved)));
  if (!m.budget_a.empty() || !m.budget_b.empty())
    md +=
        "pass@1 by token budget (a sample not finished within the budget counts as failed; docs/compare.md, "
        "\"Thinking-budget curve\"):\n\n" +
        budget_table_markdown({{a, m.budget_a}, {b, m.budget_b}}) + "\n";
  if (!m.flips.empty()) {
    md += "Regressions by cause on each side:\n\n" + to_markdown(flip_cause_table(m)) + "\n";
    md += "Flipped tasks:\n\n" + to_markdown(flip_table(m, a, b)) + "\n";
  }
  return md;
}

}  // namespace

Table flip_cause_table(const ModeComparison& m) {
  Table table;
  table.header = {"cause (status of the failing side)", "regressed (A's sample)", "improved (baseline's sample)"};
  for (Status status : all_statuses) {
    const auto count = [&](const std::map<Status, std::int64_t>& by) {
      const auto it = by.find(status);
      return it == by.end() ? std::int64_t{0} : it->second;
    };
    const std::int64_t regressed = count(m.regressions_by_cause), improved = count(m.improvements_by_cause);
    if (regressed || improved)
      table.rows.push_back({std::string(to_string(status)), std::to_string(regressed), std::to_string(improved)});
  }
  table.rows.push_back({"total", std::to_string(m.regressed), std::to_string(m.improved)});
  return table;
}

namespace {

std::string rule_cell(const FlipSide& side) { return side.generation ? side.generation->extraction_rule : kUnknown; }
std::string tokens_cell(const FlipSide& side) {
  return side.generation ? fmt::format("{} ({})", side.generation->generated_tokens, side.generation->finish_reason)
                         : kUnknown;
}
std::string thinking_cell(const FlipSide& side) {
  if (!side.generation || !side.generation->thinking_closed) return kUnknown;
  return *side.generation->thinking_closed ? "closed" : "not closed";
}

}  // namespace

Table flip_table(const ModeComparison& m, const std::string& label_a, const std::string& label_b) {
  Table table;
  table.header = {"task", "outcome"};
  for (const std::string* label : {&label_a, &label_b})
    for (const char* what : {"status", "extraction", "tokens (finish)", "thinking"})
      table.header.push_back(fmt::format("{} {}", *label, what));
  for (const auto& flip : m.flips) {
    std::vector<std::string> row{flip.task_id, std::string(to_string(flip.flip))};
    for (const FlipSide* side : {&flip.a, &flip.b}) {
      row.push_back(std::string(to_string(side->status)));
      row.push_back(rule_cell(*side));
      row.push_back(tokens_cell(*side));
      row.push_back(thinking_cell(*side));
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

Table guarantees_table(const Contender& contender) {
  Table table;
  table.header = {"guarantee", "state", "field", "detail"};
  for (const auto& g : contender.guarantees)
    table.rows.push_back(
        {g.name, std::string(to_string(g.state)) + (g.required ? "" : " (informative)"), g.field, g.detail});
  return table;
}

std::string mismatch_warning(const Comparison& c) {
  if (c.mismatches.empty()) return {};
  return fmt::format(
      "MISMATCH ALLOWED (--allow-mismatch): these runs differ in conditions that pairing assumes, so flips may "
      "come from the difference rather than from quantization: {}.",
      fmt::join(c.mismatches, "; "));
}

namespace {

std::string guarantees_markdown(const Comparison& c) {
  std::string md = "## Guarantees\n\n";
  md +=
      "What lets a flip be read as a quantization effect, checked from both runs' report.json. A required one "
      "that differs refuses the comparison unless --allow-mismatch is given.\n\n";
  for (const auto& contender : c.contenders) {
    if (c.contenders.size() > 1)
      md += fmt::format("{} vs {}:\n\n", c.runs[contender.run_index].label, c.baseline().label);
    md += to_markdown(guarantees_table(contender)) + "\n";
  }
  return md;
}

}  // namespace

std::string to_markdown(const Comparison& c) {
  std::string md = fmt::format("# quanteval compare: {} vs {}\n\n", c.runs[0].label, c.baseline().label);
  if (const std::string warning = mismatch_warning(c); !warning.empty()) md += "> **" + warning + "**\n\n";
  md += to_markdown(model_card_table(c));
  md += "\npass@1 cells: value [Wilson 95% interval over tasks]. Delta: A − baseline in percentage points.\n\n";
  md += guarantees_markdown(c);
  md += "## Paired statistics\n\n";
  for (const auto& contender : c.contenders)
    for (const auto& m : contender.modes) md += mode_statistics_markdown(c, contender, m);
  if (!c.notes.empty()) {
    md += "## Notes\n\n";
    for (const auto& note : c.notes) md += "- " + note + "\n";
    md += "\n";
  }
  md +=
      "Greedy decoding makes each task's outcome one draw: the intervals describe the uncertainty from which "
      "problems were asked, not from sampling. See docs/compare.md.\n";
  return md;
}

namespace {

ordered_json interval_json(const Interval& interval) { return ordered_json::array({interval.low, interval.high}); }

template <typename T>
ordered_json optional_json(const std::optional<T>& value) {
  return value ? ordered_json(*value) : ordered_json(nullptr);
}

ordered_json run_json(const Comparison& c, std::size_t index) {
  const RunResults& run = c.runs[index];
  ordered_json j;
  j["label"] = run.label;
  j["role"] = run_role(c, index);
  j["directory"] = run.directory.string();
  j["published_only"] = run.published_only;
  j["model"] = {{"id", run.model.id},
                {"path", run.model.path},
                {"revision", run.model.revision},
                {"architecture", run.model.architecture},
                {"quantization", run.model.quantization},
                {"bits_per_weight", optional_json(run.model.bits_per_weight)},
                {"parameters", optional_json(run.model.parameters)},
                {"size_bytes", optional_json(run.model.size_bytes)}};
  j["speed"] = {{"prefill_tok_s", optional_json(run.speed.prefill_tokens_per_second)},
                {"decode_tok_s", optional_json(run.speed.decode_tokens_per_second)}};
  j["device"] = run.device;
  j["dataset"] = {{"name", run.dataset_name}, {"sha256", run.dataset_sha256}};
  ordered_json modes = ordered_json::object();
  for (const auto& [name, mode] : run.modes) {
    ordered_json m;
    m["pass@1"] = mode.pass_at_1();
    if (mode.has_verdicts()) {
      m["pass_at_1_ci95"] = interval_json(mode.summary.pass_at_1_interval);
      ordered_json pass;
      for (const auto& [k, value] : mode.summary.pass_at_k) pass[fmt::format("pass@{}", k)] = value;
      m["pass_at_k"] = pass;
      m["tasks"] = mode.summary.tasks.size();
      m["samples"] = mode.summary.samples;
      ordered_json counts;
      for (Status status : all_statuses) counts[std::string(to_string(status))] = mode.summary.counts.at(status);
      m["status_counts"] = counts;
    } else {
      m["published"] = true;
    }
    modes[name] = m;
  }
  j["modes"] = modes;
  j["warnings"] = run.warnings;
  return j;
}

ordered_json mode_json(const ModeComparison& m) {
  ordered_json j;
  j["paired"] = m.paired;
  j["pass@1_a"] = m.pass_at_1_a;
  j["pass@1_b"] = m.pass_at_1_b;
  j["wilson95_a"] = interval_json(m.wilson_a);
  j["wilson95_b"] = interval_json(m.wilson_b);
  j["tasks_a"] = m.tasks_a;
  j["tasks_b"] = m.tasks_b;
  ordered_json pass = ordered_json::object();
  for (const auto& [k, values] : m.pass_at_k) pass[fmt::format("pass@{}", k)] = {values.first, values.second};
  j["pass_at_k_a_b"] = pass;
  j["delta"] = m.delta();
  j["delta_ci95"] = interval_json(m.delta_ci());
  j["delta_ci95_method"] =
      m.paired ? "paired bootstrap percentile (tasks resampled)" : "Newcombe hybrid score (unpaired)";
  if (!m.paired) return j;
  j["shared_tasks"] = m.tasks.size();
  j["only_in_a"] = m.only_in_a;
  j["only_in_b"] = m.only_in_b;
  j["counts"] = {{"both_pass", m.both_pass},
                 {"both_fail", m.both_fail},
                 {"tied", m.tied},
                 {"regressed", m.regressed},
                 {"improved", m.improved}};
  j["regressed_tasks"] = m.task_ids(Flip::regressed);
  j["improved_tasks"] = m.task_ids(Flip::improved);
  j["mcnemar_exact_p"] = m.mcnemar_p;
  j["bootstrap_ci95"] = interval_json(m.bootstrap_ci);
  j["normal_ci95"] = interval_json(m.normal_ci);
  j["minimum_detectable_delta"] = {{"delta", m.detectable.delta},
                                   {"discordance", m.detectable.discordance},
                                   {"discordance_assumed", m.detectable.discordance_assumed},
                                   {"alpha", 0.05},
                                   {"power", 0.8},
                                   {"min_one_way_flips", m.detectable.min_one_way_flips},
                                   {"formula", "(z_{1-alpha/2} + z_{power}) * sqrt(D / n)"}};
  ordered_json tasks = ordered_json::array();
  for (const auto& task : m.tasks)
    tasks.push_back({{"task_id", task.task_id},
                     {"a", task.rate_a},
                     {"b", task.rate_b},
                     {"outcome", std::string(to_string(task.flip))}});
  j["tasks"] = tasks;
  auto causes = [](const std::map<Status, std::int64_t>& by) {
    ordered_json out = ordered_json::object();
    for (const auto& [status, n] : by) out[std::string(to_string(status))] = n;
    return out;
  };
  j["regressions_by_cause"] = causes(m.regressions_by_cause);
  j["improvements_by_cause"] = causes(m.improvements_by_cause);
  auto side_json = [](const FlipSide& side) {
    ordered_json s = {
        {"status", std::string(to_string(side.status))}, {"sample_index", side.sample_index}, {"detail", side.detail}};
    if (side.generation) {
      const SampleGeneration& g = *side.generation;
      s["generated_tokens"] = g.generated_tokens;
      s["finish_reason"] = g.finish_reason;
      s["extraction_rule"] = g.extraction_rule;
      s["thinking_closed"] = g.thinking_closed ? ordered_json(*g.thinking_closed) : ordered_json(nullptr);
      s["completion"] = g.completion;
    }
    return s;
  };
  ordered_json flips = ordered_json::array();
  for (const auto& flip : m.flips)
    flips.push_back({{"task_id", flip.task_id},
                     {"outcome", std::string(to_string(flip.flip))},
                     {"a", side_json(flip.a)},
                     {"b", side_json(flip.b)}});
  j["flips"] = flips;
  j["budget_curve_a"] = to_json(m.budget_a);
  j["budget_curve_b"] = to_json(m.budget_b);
  return j;
}

}  // namespace

ordered_json to_json(const Comparison& c) {
  ordered_json j;
  if (!c.mismatches.empty()) j["mismatch_allowed"] = {{"warning", mismatch_warning(c)}, {"fields", c.mismatches}};
  j["baseline"] = c.baseline().label;
  j["modes"] = c.modes;
  ordered_json runs = ordered_json::array();
  for (std::size_t i = 0; i < c.runs.size(); ++i) runs.push_back(run_json(c, i));
  j["runs"] = runs;
  ordered_json comparisons = ordered_json::array();
  for (const auto& contender : c.contenders) {
    ordered_json entry;
    entry["run"] = c.runs[contender.run_index].label;
    entry["baseline"] = c.baseline().label;
    ordered_json modes = ordered_json::object();
    ordered_json guarantees = ordered_json::array();
    for (const auto& g : contender.guarantees)
      guarantees.push_back({{"name", g.name},
                            {"field", g.field},
                            {"state", std::string(to_string(g.state))},
                            {"required", g.required},
                            {"detail", g.detail}});
    entry["guarantees"] = guarantees;
    for (const auto& m : contender.modes) modes[m.mode] = mode_json(m);
    entry["modes"] = modes;
    comparisons.push_back(entry);
  }
  j["comparisons"] = comparisons;
  j["options"] = {{"bootstrap_resamples", c.options.bootstrap_resamples}, {"seed", c.options.seed}};
  j["notes"] = c.notes;
  return j;
}

// ---------------------------------------------------------------- gate

GateDecision evaluate_gate(const Comparison& c, const GateOptions& options) {
  if (c.contenders.empty()) throw std::invalid_argument("gate: nothing to compare");
  const Contender& contender = c.contenders.front();
  GateDecision decision;
  std::vector<std::string> sentences;
  for (const auto& m : contender.modes) {
    const double drop_pp = -100.0 * m.delta();
    const bool exceeds = drop_pp > options.max_drop_pp;
    const bool significant = m.paired && m.mcnemar_p < options.alpha;
    const bool fails = exceeds && (!options.require_significant || significant);
    decision.failed = decision.failed || fails;
    std::string sentence =
        fmt::format("mode {}: pass@1 {} vs {}, drop {:.2f} pp {} the allowed {:.2f} pp", m.mode, percent(m.pass_at_1_a),
                    percent(m.pass_at_1_b), drop_pp, exceeds ? "exceeds" : "is within", options.max_drop_pp);
    if (m.paired) {
      sentence += fmt::format(
          " (over {} shared tasks; paired bootstrap 95% CI of the delta {}; McNemar exact p = {}{}; "
          "{} regressed: {}; {} improved)",
          m.tasks.size(), interval_pp(m.bootstrap_ci), p_value(m.mcnemar_p),
          significant ? fmt::format(" < α = {}", options.alpha) : fmt::format(" ≥ α = {}", options.alpha), m.regressed,
          task_list(m.task_ids(Flip::regressed)), m.improved);
    } else {
      sentence += fmt::format(" (published baseline: unpaired 95% CI {}, no significance test possible)",
                              interval_pp(m.unpaired_ci));
    }
    if (exceeds && !fails) sentence += ", but the drop is not significant and --require-significant was given";
    sentences.push_back(sentence + (fails ? " — FAILED" : " — ok"));
  }
  decision.paragraph = fmt::format("{}: {} vs baseline {}. {}.", decision.failed ? "GATE FAILED" : "GATE OK",
                                   c.runs[contender.run_index].label, c.baseline().label, fmt::join(sentences, ". "));
  return decision;
}

}  // namespace quanteval::reports
