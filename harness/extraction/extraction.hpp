#pragma once
// Code from model output, per mode (BRIEF "Modes").
//  standard: the completion continues the prompt and is cut at the first
//            lm-evaluation-harness stop sequence.
//  thinking: the answer is what follows the last </think>; the code is the
//            last fenced Python block, else a generic or unclosed fence, else a
//            sanitizer's pick; the program adds the prompt's imports it lacks.
#include <optional>
#include <string>
#include <string_view>

#include "harness/prompts/prompts.hpp"  // standard_stop_sequences, prompt_opens_thinking

namespace quanteval::harness {

// The completion up to (not including) the earliest standard stop sequence.
std::string cut_at_stop_sequence(std::string_view completion);

enum class ExtractionRule {
  fenced_python,        // last ```python / ```py block
  fenced_generic,       // last ``` block without a language (or another one that parses as Python-ish)
  unclosed_fence,       // a ```python block that was never closed (output ended inside it)
  sanitizer,            // no fence: the span from the first def/import/class line, prose trimmed
  none,                 // nothing extractable
  prompt_continuation,  // standard mode: the output continues the prompt, cut at a stop sequence
};
const char* to_string(ExtractionRule rule);
std::optional<ExtractionRule> parse_extraction_rule(std::string_view name);

struct Extraction {
  std::string code;
  ExtractionRule rule = ExtractionRule::none;
  bool thinking_closed = true;  // false when <think> was opened and never closed
  std::string answer;           // the text after the last </think> (whole text when none)
};

// Applies the thinking-mode rules to raw model output. `prompt_opens_thinking`:
// the rendered prompt already ends inside <think> (Qwen3.5's template with
// enable_thinking does this), so output without </think> never left it.
Extraction extract_thinking_answer(std::string_view raw_output, bool prompt_opens_thinking = false);

// The import lines of a prompt (`import x`, `from x import y`) that `code`
// does not already contain, joined with newlines (empty when none).
std::string missing_prompt_imports(std::string_view prompt, std::string_view code);

}  // namespace quanteval::harness
