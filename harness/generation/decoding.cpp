#include "harness/generation/decoding.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "datasets/datasets.hpp"
#include "harness/prompts/prompts.hpp"

namespace quanteval::harness {

int Decoding::max_new_tokens(Mode mode) const {
  return mode == Mode::standard ? max_new_tokens_standard : max_new_tokens_thinking;
}

std::vector<std::string> Decoding::stop_strings(Mode mode) const {
  return mode == Mode::standard ? standard_stop_sequences() : std::vector<std::string>{};
}

Decoding decoding_preset(std::string_view name) {
  Decoding d;
  d.preset = std::string(name);
  if (name == "qwen-thinking") {
    d.sampling.temperature = 0.6f;
    d.sampling.top_p = 0.95f;
    d.sampling.top_k = 20;
  } else if (name != "greedy") {
    throw std::invalid_argument(fmt::format("expected greedy or qwen-thinking, got '{}'", name));
  }
  return d;
}

nlohmann::ordered_json to_json(const Decoding& d) {
  return {{"preset", d.preset},
          {"temperature", d.sampling.temperature},
          {"top_k", d.sampling.top_k},
          {"top_p", d.sampling.top_p},
          {"min_p", d.sampling.min_p},
          {"seed", d.sampling.seed},
          {"n_samples", d.n_samples},
          {"max_new_tokens_standard", d.max_new_tokens_standard},
          {"max_new_tokens_thinking", d.max_new_tokens_thinking},
          {"standard_stop", standard_stop_sequences()}};
}

std::uint64_t sample_seed(std::uint64_t run_seed, std::string_view sample_identity) {
  return std::stoull(datasets::sha256_hex(fmt::format("{}:{}", run_seed, sample_identity)).substr(0, 16), nullptr, 16);
}

}  // namespace quanteval::harness
