#pragma once
// Paired comparison of runs on the same problems: a quantized run (A) against
// its baseline (B), task by task. The unit of analysis is the task (problem),
// not the sample: HumanEval's 164 problems are the population sampled, and the
// two runs' outcomes on one problem are correlated, which is what pairing uses.
//
// The statistics (formulas and their sources are in docs/compare.md):
//   - pass@1 per run with its Wilson 95% interval (score_report.hpp);
//   - exact McNemar test on the discordant tasks (a sign test on per-task pass
//     rates when there are several samples per task);
//   - paired-bootstrap percentile interval of the delta, resampling tasks;
//   - the analytic paired-normal interval, as a cross-check;
//   - the minimum detectable delta for this many tasks;
//   - for a published baseline (no verdicts), Newcombe's unpaired interval.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reports/comparison/guarantees.hpp"
#include "reports/comparison/run_results.hpp"
#include "reports/summary/budget_curve.hpp"
#include "reports/summary/score_report.hpp"

namespace quanteval::reports {

// ---------------------------------------------------------------- statistics

inline constexpr double kZ975 = 1.959963984540054;  // standard normal quantile at 0.975
inline constexpr double kZ80 = 0.8416212335729143;  // standard normal quantile at 0.80

// Exact two-sided McNemar p-value from the discordant counts b (A fails, B
// passes) and c (A passes, B fails): under H0 each discordant task is a fair
// coin, so p = min(1, 2 * sum_{i <= min(b,c)} C(b+c, i) / 2^(b+c)); 1 when b+c = 0.
double mcnemar_exact_p_value(std::int64_t regressed, std::int64_t improved);

// Percentile interval of the mean of `differences` (one per task) from
// `resamples` bootstrap resamples of tasks with replacement; deterministic for
// a given seed on every platform (mt19937_64 is fully specified and index
// draws use our own unbiased rejection, not a library distribution).
Interval paired_bootstrap_interval(const std::vector<double>& differences, int resamples, std::uint64_t seed,
                                   double confidence = 0.95);

// mean ± z * sqrt(plug-in variance / n): the normal approximation to the same
// bootstrap distribution (whose variance is exactly the plug-in variance / n).
Interval paired_normal_interval(const std::vector<double>& differences, double z = kZ975);

// Newcombe (1998) hybrid score interval for p_a - p_b from two independent
// proportions, built from their Wilson intervals. Used when B is only a number.
Interval newcombe_difference_interval(std::int64_t successes_a, std::int64_t trials_a, std::int64_t successes_b,
                                      std::int64_t trials_b, double z = kZ975);

struct DetectableDelta {
  double delta = 0.0;                // smallest |pass@1 delta| detectable (fraction)
  double discordance = 0.0;          // mean squared per-task difference used (= discordant share when n = 1)
  bool discordance_assumed = false;  // true when none was observed and 3/n (rule of three) was used
  int min_one_way_flips = 0;         // flips all in one direction the exact test needs to reach p < alpha
};

// MDE ≈ (z_{1-α/2} + z_{power}) * sqrt(D / n), D = mean of d_i² (the discordance
// rate for binary outcomes): the paired z-test's standard error under H0 is
// sqrt(D / n) (Connor 1987). With no discordance observed, D = 3/n: the upper 95%
// bound on a rate seen 0 times in n (rule of three).
DetectableDelta minimum_detectable_delta(const std::vector<double>& differences, double alpha = 0.05,
                                         double power = 0.80);

// ---------------------------------------------------------------- comparison

enum class Flip { both_pass, both_fail, tied, regressed, improved };
std::string_view to_string(Flip flip);

struct TaskComparison {
  std::string task_id;
  double rate_a = 0.0, rate_b = 0.0;  // per-task pass rate (0 or 1 with one sample)
  Flip flip = Flip::both_fail;
};

// One side of a flipped task: the sample that decided it (the first failing
// sample on the side that lost, the first passing one on the side that won;
// with one sample per task, the sample) and what samples.jsonl says about it.
struct FlipSide {
  Status status = Status::failed;  // the cause on the losing side: failed, error, timeout, no_code, truncated, ...
  int sample_index = 0;
  std::string detail;                          // the verdict's one line
  std::optional<SampleGeneration> generation;  // absent without samples.jsonl
};

struct FlipDetail {
  std::string task_id;
  Flip flip = Flip::regressed;  // regressed or improved
  FlipSide a, b;
};

struct ModeComparison {
  std::string mode;
  double pass_at_1_a = 0.0, pass_at_1_b = 0.0;  // each over its own tasks
  Interval wilson_a, wilson_b;
  std::size_t tasks_a = 0, tasks_b = 0;
  std::map<int, std::pair<double, double>> pass_at_k;  // k >= 2 where both runs have it

  bool paired = false;  // false when B is a published number
  // Paired (tasks in both runs only):
  std::vector<TaskComparison> tasks;  // problem order
  std::vector<std::string> only_in_a, only_in_b;
  std::int64_t both_pass = 0, both_fail = 0, tied = 0, regressed = 0, improved = 0;
  double paired_delta = 0.0;  // mean over shared tasks of rate_a - rate_b
  // Every regressed and improved task, problem order, with both sides' causes;
  // and the counts: regressions by A's status, improvements by the baseline's.
  std::vector<FlipDetail> flips;
  std::map<Status, std::int64_t> regressions_by_cause, improvements_by_cause;
  // pass@1 by token budget of each side (budget_curve.hpp); empty when a side has
  // no samples.jsonl or no recorded budget for the mode.
  std::vector<BudgetPoint> budget_a, budget_b;
  double mcnemar_p = 1.0;
  Interval bootstrap_ci, normal_ci;
  DetectableDelta detectable;
  // Unpaired (published baseline): Newcombe interval, B taken as round(p_b * tasks_a) of tasks_a.
  Interval unpaired_ci;

  double delta() const { return paired ? paired_delta : pass_at_1_a - pass_at_1_b; }
  Interval delta_ci() const { return paired ? bootstrap_ci : unpaired_ci; }
  std::vector<std::string> task_ids(Flip flip) const;
};

struct ComparisonOptions {
  std::vector<std::string> modes;  // empty: every mode both runs have
  int bootstrap_resamples = 10000;
  std::uint64_t seed = 1;
  // Compare runs whose prompts, chat template, decoding or dataset differ
  // (otherwise refused); every output then says so at the top.
  bool allow_mismatch = false;
};

// One non-baseline run against the baseline.
struct Contender {
  std::size_t run_index = 0;
  std::vector<ModeComparison> modes;
  std::vector<Guarantee> guarantees;  // against the baseline (guarantees.hpp)
};

struct Comparison {
  std::vector<RunResults> runs;  // [0] the quantized run under test, [1] the baseline, [2..] more variants
  std::size_t baseline_index = 1;
  std::vector<std::string> modes;     // compared modes, sorted
  std::vector<Contender> contenders;  // runs other than the baseline, in input order
  ComparisonOptions options;
  std::vector<std::string> notes;  // alignments made, warnings from the runs
  // With --allow-mismatch: one line per required guarantee that differs
  // ("<run>: decoding differs (decoding.temperature: 0.6 vs 0)"); empty otherwise.
  std::vector<std::string> mismatches;

  const RunResults& baseline() const { return runs[baseline_index]; }
};

// runs[1] is the baseline; needs at least two runs. Throws RunInputError when
// the runs share no mode, a requested mode is missing, a mode has no shared task,
// or (unless options.allow_mismatch) a run's prompts, chat template, decoding or
// dataset differ from the baseline's, naming every differing field.
Comparison compare_runs(std::vector<RunResults> runs, const ComparisonOptions& options);

// The model-card table as rows (shared by the Markdown and HTML writers).
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};
Table model_card_table(const Comparison& comparison);
std::string to_markdown(const Table& table);

// A mode's flips as rows: "regressions by cause on each side" (status, regressions
// by A's status, improvements by the baseline's) and one row per flipped task
// (both sides' status, extraction rule, generated tokens / finish, thinking closed).
Table flip_cause_table(const ModeComparison& mode);
Table flip_table(const ModeComparison& mode, const std::string& label_a, const std::string& label_b);

// The guarantees of one contender as rows: guarantee, state, field, detail.
Table guarantees_table(const Contender& contender);

// The sentence every output starts with when --allow-mismatch let differing runs
// through (naming the fields); "" when nothing differs.
std::string mismatch_warning(const Comparison& comparison);

std::string to_markdown(const Comparison& comparison);  // table + paired statistics + notes
nlohmann::ordered_json to_json(const Comparison& comparison);

// ---------------------------------------------------------------- gate

struct GateOptions {
  double max_drop_pp = 0.0;  // allowed drop B - A in percentage points
  double alpha = 0.05;
  bool require_significant = false;  // fail only when McNemar p < alpha as well
};

struct GateDecision {
  bool failed = false;
  std::string paragraph;  // the reason, with the numbers
};

// Decides on contender 0 (run A) over every compared mode; fails if any mode fails.
GateDecision evaluate_gate(const Comparison& comparison, const GateOptions& options);

}  // namespace quanteval::reports
