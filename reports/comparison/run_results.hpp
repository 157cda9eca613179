#pragma once
// Reading a finished run back: the per-sample verdicts of a run directory
// (results.jsonl) and the metadata beside them (report.json), from either
// `quanteval score` (one unnamed mode) or `quanteval run` (per-sample `mode`:
// "standard", "thinking"). Also a "published" run built from reported numbers
// alone, for baselines nobody can rerun.
//
// results.jsonl is the source of truth for every statistic; report.json only
// adds what the verdicts cannot say (model, size, speed, dataset). Where
// report.json states a pass@1 that the verdicts do not reproduce, a warning is
// kept rather than an error: the numbers compared are the recomputed ones.
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reports/records/sample_generation.hpp"
#include "reports/records/verdict_record.hpp"  // SampleVerdict, RunInputError
#include "reports/summary/score_report.hpp"

namespace quanteval::reports {

// The mode name given to `score` verdicts, which carry no `mode` field.
inline constexpr std::string_view kUnnamedMode = "score";

struct ModelInfo {
  std::string id, path, revision, architecture;
  std::string quantization;  // e.g. "gptq 4-bit g64 sym act-order" or "bf16"
  std::optional<double> bits_per_weight;
  std::optional<double> parameters;
  std::optional<double> size_bytes;
};

struct SpeedInfo {
  std::optional<double> prefill_tokens_per_second;
  std::optional<double> decode_tokens_per_second;
};

struct ModeResults {
  std::vector<SampleVerdict> verdicts;  // this mode's lines, file order
  Summary summary;                      // summarize(verdicts)
  // Only for a published run: the reported pass@1 as a fraction; it has no verdicts.
  std::optional<double> published_pass_at_1;
  std::string prompt_sha256;  // report.json modes.M.prompt_sha256 ("" when not recorded)
  // samples.jsonl's lines of this mode, filled by the harness (empty without that file).
  Generations generations;

  bool has_verdicts() const { return !verdicts.empty(); }
  double pass_at_1() const;  // recomputed from verdicts, else the published value
};

struct RunResults {
  std::string label;                // what tables call this run
  std::filesystem::path directory;  // empty for a published run
  bool published_only = false;
  ModelInfo model;
  SpeedInfo speed;
  std::string device;
  std::string dataset_name, dataset_sha256;
  // What decides whether two runs may be paired (report.json of `quanteval run`):
  std::optional<std::string> chat_template_sha256;  // "" = recorded as unused; absent = not recorded
  std::optional<nlohmann::json> decoding;           // the "decoding" object
  std::optional<bool> batch_invariant;              // generation.batch_invariant
  std::map<std::string, ModeResults> modes;
  std::vector<std::string> warnings;  // inconsistencies worth a line in the report

  // decoding.max_new_tokens_<mode> from report.json, when recorded.
  std::optional<int> max_new_tokens(const std::string& mode) const;
};

// Loads DIR/results.jsonl (required) and DIR/report.json (optional: without it
// only the verdicts are known, and a warning says so). Throws RunInputError.
RunResults load_run(const std::filesystem::path& directory);

// A run known only from published pass@1 values in percent, per mode.
RunResults published_run(std::string label, const std::map<std::string, double>& pass_at_1_percent);

// Parses "thinking=97.56,standard=55.0" (percent per mode). Throws
// std::invalid_argument naming the offending item.
std::map<std::string, double> parse_mode_values(std::string_view text);

// HumanEval task ids in problem order ("HumanEval/2" before "HumanEval/10"):
// the common prefix compares as text, a numeric suffix as a number.
bool task_order_less(const std::string& a, const std::string& b);

}  // namespace quanteval::reports
