#pragma once
// Fixture access shared by the model tests: the transformers reference
// (reference.json and reference_logits.safetensors) of each tiny checkpoint.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/safetensors.hpp"
#include "runtime/text/tokenizer.hpp"
#include "tests/support/test_data.hpp"

namespace quanteval::test {

// The Qwen2/Qwen3 fixtures (pure attention models).
inline const std::vector<std::string>& model_fixture_names() {
  static const std::vector<std::string> names = {"qwen2-tiny-bf16", "qwen2-tiny-gptq-g64-actorder-fp16",
                                                 "qwen3-tiny-bf16", "qwen3-tiny-gptq-g64-actorder"};
  return names;
}

// Every fixture the Model serves: the above and the Qwen3.5 hybrids (whose
// layer-level tests live in tests/qwen3_5).
inline const std::vector<std::string>& all_model_fixture_names() {
  static const std::vector<std::string> names = {"qwen2-tiny-bf16",   "qwen2-tiny-gptq-g64-actorder-fp16",
                                                 "qwen3-tiny-bf16",   "qwen3-tiny-gptq-g64-actorder",
                                                 "qwen3_5-tiny-bf16", "qwen3_5-tiny-gptq-g64-actorder"};
  return names;
}

inline bool is_qwen3_5_fixture(const std::string& name) { return name.starts_with("qwen3_5"); }

struct ModelReference {
  std::filesystem::path dir;
  std::vector<runtime::TokenId> input_ids;
  std::vector<runtime::TokenId> argmax_per_position;
  std::vector<runtime::TokenId> greedy_new_tokens;
  std::int64_t tokens = 0, vocab = 0, hidden = 0, hidden_entries = 0;
  std::vector<float> logits;         // [T, vocab]
  std::vector<float> hidden_states;  // [layers + 1, T, hidden]
};

inline ModelReference load_model_reference(const std::string& name) {
  ModelReference ref;
  ref.dir = fixture("models/" + name);
  std::ifstream in(ref.dir / "reference.json");
  const nlohmann::json json = nlohmann::json::parse(in);
  ref.input_ids = json.at("input_ids").get<std::vector<runtime::TokenId>>();
  ref.argmax_per_position = json.at("argmax_per_position").get<std::vector<runtime::TokenId>>();
  ref.greedy_new_tokens = json.at("greedy_new_tokens").get<std::vector<runtime::TokenId>>();
  const runtime::SafetensorsFile file(ref.dir / "reference_logits.safetensors");
  const runtime::TensorView logits = file.tensor("logits");
  const runtime::TensorView hidden = file.tensor("hidden_states");
  ref.tokens = logits.shape.at(0);
  ref.vocab = logits.shape.at(1);
  ref.hidden_entries = hidden.shape.at(0);
  ref.hidden = hidden.shape.at(2);
  ref.logits = runtime::to_float(logits);
  ref.hidden_states = runtime::to_float(hidden);
  return ref;
}

// ||a - b|| / ||b|| over n floats.
inline double relative_l2(const float* a, const float* b, std::int64_t n) {
  double diff = 0, norm = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

inline runtime::TokenId argmax(const float* row, std::int64_t n) {
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return static_cast<runtime::TokenId>(best);
}

}  // namespace quanteval::test
