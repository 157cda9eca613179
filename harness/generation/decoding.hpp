#pragma once
// How a run decodes: the preset, the sampling parameters, how many samples per
// task and the token budget per mode. The same for every backend; each sample
// draws its own seed from the run's (sample_seed), so its tokens depend neither
// on batching nor on which server generated it.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "harness/prompts/mode.hpp"
#include "runtime/runtime.hpp"  // SamplingParams

namespace quanteval::harness {

struct Decoding {
  std::string preset = "greedy";     // "greedy" | "qwen-thinking"
  runtime::SamplingParams sampling;  // the run's; sampling.seed is the run seed
  int n_samples = 1;                 // samples per task (pass@k)
  int max_new_tokens_standard = 1024;
  int max_new_tokens_thinking = 4096;

  int max_new_tokens(Mode mode) const;
  // Standard mode stops at lm-evaluation-harness's stop sequences; thinking mode runs to eos or the budget.
  std::vector<std::string> stop_strings(Mode mode) const;
};

// A preset's decoding: "greedy" (temperature 0) or "qwen-thinking" (T 0.6,
// top-p 0.95, top-k 20, the Qwen3 model cards' thinking settings). Throws
// std::invalid_argument for any other name.
Decoding decoding_preset(std::string_view name);

// The "decoding" object of run.json and report.json.
nlohmann::ordered_json to_json(const Decoding& decoding);

// The seed of one sample: from the run's seed and the sample's identity
// ("thinking HumanEval/3 #0"), through SHA-256, so it is stable across
// machines and library versions (unlike std::hash).
std::uint64_t sample_seed(std::uint64_t run_seed, std::string_view sample_identity);

}  // namespace quanteval::harness
