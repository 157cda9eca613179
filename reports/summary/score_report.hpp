#pragma once
// The report of one scored samples file: what was run, how each sample ended,
// and what that adds up to (pass@k, status counts). Pure data + writers: it
// reads verdicts and metadata, never model or sandbox internals.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reports/records/verdict_record.hpp"
#include "reports/summary/status.hpp"

namespace quanteval::reports {

struct DatasetInfo {
  std::string name;  // "humaneval", "humaneval+" or "custom"
  std::string path;
  std::string sha256;
  bool verified = false;  // matched the manifest hash
  std::size_t problems = 0;
  std::vector<std::string> notes;  // known quirks from the manifest
};

struct SandboxInfo {
  std::string python;          // interpreter path
  std::string python_version;  // e.g. "3.11.2"
  int workers = 0;
  double timeout_seconds = 0;          // the default per-program limit (tasks may have their own)
  std::string time_limit_rule;         // how limits were chosen, e.g. "max(3.0 s, 4.0 x canonical ...)"
  nlohmann::ordered_json time_limits;  // the rule, per-task limits and their calibration (report.json)
  std::uint64_t memory_limit_bytes = 0;
  std::vector<std::string> protections;  // active isolation features
  std::vector<std::string> notes;        // what could not be enabled, and why
};

// "max(3.0 s, 4.0 x canonical ...) (3.0 to 44.1 s per program)" or "flat 3.0 s (openai/human-eval)".
std::string time_limit_text(const SandboxInfo& sandbox);

struct ScoreReport {
  std::string tool_version;
  std::string created_utc;  // ISO 8601
  std::string samples_file;
  DatasetInfo dataset;
  SandboxInfo sandbox;
  std::vector<SampleVerdict> verdicts;  // input order
  double wall_seconds = 0.0;
};

// 95% interval for a proportion (Wilson score interval: well-behaved at 0 and 1
// and for small n, unlike the normal approximation).
struct Interval {
  double low = 0.0, high = 0.0;
};
Interval wilson_interval(std::int64_t successes, std::int64_t trials, double z = 1.959963984540054);

struct TaskTally {
  std::int64_t samples = 0;  // sandbox_error samples excluded: they say nothing about the model
  std::int64_t passed = 0;
};

struct Summary {
  std::size_t samples = 0;                 // all verdicts
  std::size_t scored_samples = 0;          // excluding sandbox_error
  std::map<std::string, TaskTally> tasks;  // by task_id, only tasks with >= 1 scored sample
  std::int64_t min_samples_per_task = 0;
  std::map<int, double> pass_at_k;       // k in {1, 10, 100} with k <= min_samples_per_task
  Interval pass_at_1_interval;           // over tasks (one Bernoulli per task when n == 1)
  std::map<Status, std::size_t> counts;  // every status, zeros included
};

Summary summarize(const std::vector<SampleVerdict>& verdicts);

nlohmann::ordered_json to_json(const ScoreReport& report, const Summary& summary);
// The pieces every report shares: pass@k, its interval, sample and task counts
// and status counts; the dataset; the sandbox.
nlohmann::ordered_json summary_json(const Summary& summary);
nlohmann::ordered_json to_json(const DatasetInfo& dataset);
nlohmann::ordered_json to_json(const SandboxInfo& sandbox);
std::string to_markdown(const ScoreReport& report, const Summary& summary);

}  // namespace quanteval::reports
