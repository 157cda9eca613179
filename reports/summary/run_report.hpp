#pragma once
// The report of one `quanteval run`: which checkpoint, how it was decoded,
// what each mode scored (pass@1 with a Wilson interval, pass@k, status counts),
// how fast generation went, and on what. Written as report.json (machine
// readable; `compare` reads it), report.md and a self-contained report.html.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reports/records/sample_generation.hpp"
#include "reports/summary/score_report.hpp"

namespace quanteval::reports {

struct RunModelInfo {
  std::string id;        // as given to --model (path or hub id)
  std::string path;      // local folder used
  std::string revision;  // hub revision and resolved commit, when from the hub
  std::string commit;
  std::string architecture;  // "qwen3", ...
  std::string quantization;  // e.g. "GPTQ 4-bit, group 64, sym, desc_act, format gptq (v1)" or "bf16"
  double bits_per_weight = 0;
  std::int64_t parameters = 0;
  std::uint64_t size_bytes = 0;  // safetensors bytes on disk
};

struct ModeReport {
  std::string name;                     // "standard" | "thinking"
  std::vector<SampleVerdict> verdicts;  // every sample of the mode, task order
  std::uint64_t prompt_tokens = 0;      // summed over samples
  std::uint64_t generated_tokens = 0;
  std::map<std::string, std::size_t> extraction_rules;  // thinking: how the code was found, counted
  std::string prompt_hash;                              // SHA-256 over every prompt text of the mode
  Generations generations;                              // every sample's generation (budget curve)
  int max_new_tokens = 0;                               // the mode's token budget
};

struct RunReport {
  std::string tool_version;
  std::string created_utc;
  std::string config_hash;  // the run configuration --resume checks
  RunModelInfo model;
  nlohmann::ordered_json decoding;  // preset, temperature, top-k/p, min-p, seed, n, budgets, stops
  std::string chat_template_hash;   // SHA-256 of the template source ("" when unused)
  DatasetInfo dataset;
  SandboxInfo sandbox;
  std::vector<ModeReport> modes;
  double prefill_tokens_per_second = 0;
  double decode_tokens_per_second = 0;
  double wall_seconds = 0;
  std::string device;  // "cpu (2 threads)", "cuda:0 NVIDIA H100 ..."
  // Where this session generated: {"kind": "embedded"} or, for OpenAI-compatible
  // servers, their URLs, served model, versions, retries, failures, warnings and
  // throughput (harness/generation/openai_backend.hpp). Null when nothing was generated.
  nlohmann::ordered_json backend;
  // The generator's promise that a sample does not depend on the batch it ran in
  // or the thread count (GenerationBackend's BackendInfo); absent when nothing was
  // generated this session (a resume that only scored).
  std::optional<bool> batch_invariant;
  bool resumed = false;
};

nlohmann::ordered_json to_json(const RunReport& report);
std::string to_markdown(const RunReport& report);
std::string to_html(const RunReport& report);

}  // namespace quanteval::reports
