#include "reports/summary/score_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "reports/summary/statistics.hpp"

namespace quanteval::reports {

using nlohmann::ordered_json;

Interval wilson_interval(std::int64_t successes, std::int64_t trials, double z) {
  if (trials <= 0) return {0.0, 1.0};
  const double n = static_cast<double>(trials);
  const double p = static_cast<double>(successes) / n;
  const double z2 = z * z;
  const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half = z * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

Summary summarize(const std::vector<SampleVerdict>& verdicts) {
  Summary s;
  for (Status status : all_statuses) s.counts[status] = 0;
  s.samples = verdicts.size();
  for (const auto& v : verdicts) {
    ++s.counts[v.status];
    if (v.status == Status::sandbox_error) continue;
    ++s.scored_samples;
    auto& tally = s.tasks[v.task_id];
    ++tally.samples;
    if (v.status == Status::passed) ++tally.passed;
  }
  if (s.tasks.empty()) return s;
  s.min_samples_per_task = s.tasks.begin()->second.samples;
  for (const auto& [id, tally] : s.tasks) s.min_samples_per_task = std::min(s.min_samples_per_task, tally.samples);
  std::vector<std::int64_t> n, c;
  for (const auto& [id, tally] : s.tasks) {
    n.push_back(tally.samples);
    c.push_back(tally.passed);
  }
  for (int k : {1, 10, 100})
    if (k <= s.min_samples_per_task) s.pass_at_k[k] = mean_pass_at_k(n, c, k);
  // The interval treats each task's pass@1 as one Bernoulli outcome; with n > 1
  // samples per task this is conservative (the per-task estimate has less variance).
  const double tasks = static_cast<double>(s.tasks.size());
  const auto successes = static_cast<std::int64_t>(std::llround(s.pass_at_k[1] * tasks));
  s.pass_at_1_interval = wilson_interval(successes, static_cast<std::int64_t>(s.tasks.size()));
  return s;
}

ordered_json summary_json(const Summary& s) {
  ordered_json j;
  ordered_json pass = ordered_json::object();
  for (const auto& [k, value] : s.pass_at_k) pass[fmt::format("pass@{}", k)] = value;
  j["pass_at_k"] = pass;
  j["pass_at_1_ci95"] = {s.pass_at_1_interval.low, s.pass_at_1_interval.high};
  j["samples"] = s.samples;
  j["scored_samples"] = s.scored_samples;
  j["tasks"] = s.tasks.size();
  j["min_samples_per_task"] = s.min_samples_per_task;
  ordered_json counts;
  for (Status status : all_statuses) counts[std::string(to_string(status))] = s.counts.at(status);
  j["status_counts"] = counts;
  return j;
}

ordered_json to_json(const DatasetInfo& d) {
  return {{"name", d.name},         {"path", d.path},         {"sha256", d.sha256},
          {"verified", d.verified}, {"problems", d.problems}, {"notes", d.notes}};
}

std::string time_limit_text(const SandboxInfo& s) {
  const auto& limits = s.time_limits;
  if (limits.is_object() && limits.contains("per_task_seconds"))
    return fmt::format("{} ({:.1f} to {:.1f} s per program)", s.time_limit_rule, limits["min_seconds"].get<double>(),
                       limits["max_seconds"].get<double>());
  return s.time_limit_rule.empty() ? fmt::format("{:.1f} s per program", s.timeout_seconds) : s.time_limit_rule;
}

ordered_json to_json(const SandboxInfo& s) {
  return {{"python", s.python},
          {"python_version", s.python_version},
          {"workers", s.workers},
          {"timeout_s", s.timeout_seconds},
          {"time_limits", s.time_limits.is_null() ? ordered_json({{"rule", s.time_limit_rule}}) : s.time_limits},
          {"memory_limit_bytes", s.memory_limit_bytes},
          {"protections", s.protections},
          {"notes", s.notes}};
}

ordered_json to_json(const ScoreReport& r, const Summary& s) {
  ordered_json j;
  j["tool"] = {{"name", "quanteval"}, {"version", r.tool_version}};
  j["created_utc"] = r.created_utc;
  j["samples_file"] = r.samples_file;
  j["dataset"] = to_json(r.dataset);
  j.update(summary_json(s));
  j["sandbox"] = to_json(r.sandbox);
  j["wall_s"] = std::round(r.wall_seconds * 1000) / 1000;
  j["samples_per_s"] = r.wall_seconds > 0 ? std::round(static_cast<double>(s.samples) / r.wall_seconds * 10) / 10 : 0.0;
  return j;
}

namespace {

std::string percent(double fraction) { return fmt::format("{:.2f}%", 100.0 * fraction); }

std::string escape_cell(std::string text) {
  std::string out;
  for (char ch : text) {
    if (ch == '|')
      out += "\\|";
    else if (ch == '\n' || ch == '\r')
      out += ' ';
    else
      out += ch;
  }
  if (out.size() > 120) out = out.substr(0, 117) + "...";
  return out;
}

}  // namespace

std::string to_markdown(const ScoreReport& r, const Summary& s) {
  std::string md;
  md += fmt::format("# quanteval score: {}\n\n", r.samples_file);
  md += fmt::format("Dataset **{}** ({} problems, SHA-256 `{}`{}), {} samples over {} tasks, scored in {:.1f} s.\n\n",
                    r.dataset.name, r.dataset.problems, r.dataset.sha256.substr(0, 16),
                    r.dataset.verified ? ", verified" : ", not a known release", s.samples, s.tasks.size(),
                    r.wall_seconds);
  md += "| metric | value |\n| --- | --- |\n";
  for (const auto& [k, value] : s.pass_at_k) md += fmt::format("| pass@{} | {} |\n", k, percent(value));
  if (s.pass_at_k.count(1))
    md += fmt::format("| pass@1 95% CI (Wilson, over tasks) | {} – {} |\n", percent(s.pass_at_1_interval.low),
                      percent(s.pass_at_1_interval.high));
  md += fmt::format("| tasks | {} of {} |\n", s.tasks.size(), r.dataset.problems);
  md += fmt::format("| samples per task (min) | {} |\n\n", s.min_samples_per_task);

  md += "| status | samples |\n| --- | --- |\n";
  for (Status status : all_statuses) md += fmt::format("| {} | {} |\n", to_string(status), s.counts.at(status));

  std::vector<const SampleVerdict*> not_passed;
  for (const auto& v : r.verdicts)
    if (v.status != Status::passed) not_passed.push_back(&v);
  if (!not_passed.empty()) {
    md += "\n## Samples not passed\n\n| task | sample | status | detail |\n| --- | --- | --- | --- |\n";
    for (const auto* v : not_passed)
      md += fmt::format("| {} | {} | {} | {} |\n", v->task_id, v->sample_index, to_string(v->status),
                        escape_cell(v->detail));
  }
  md += fmt::format("\n## Sandbox\n\nPython {} (`{}`), {} workers, time limit {}, {} MiB address space.\n",
                    r.sandbox.python_version, r.sandbox.python, r.sandbox.workers, time_limit_text(r.sandbox),
                    r.sandbox.memory_limit_bytes >> 20);
  md += "Protections: " +
        (r.sandbox.protections.empty() ? std::string("none")
                                       : fmt::format("{}", fmt::join(r.sandbox.protections, ", "))) +
        ".\n";
  for (const auto& note : r.sandbox.notes) md += "- " + note + "\n";
  if (!r.dataset.notes.empty()) {
    md += "\n## Dataset notes\n\n";
    for (const auto& note : r.dataset.notes) md += "- " + note + "\n";
  }
  md += fmt::format("\nquanteval {} · {}\n", r.tool_version, r.created_utc);
  return md;
}

}  // namespace quanteval::reports
