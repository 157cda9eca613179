#pragma once
// Prompts and code extraction for the two evaluation modes (BRIEF "Modes").
//  standard: the raw HumanEval prompt; the completion is cut at the first
//            lm-evaluation-harness stop sequence; program = prompt + completion.
//  thinking: the model's chat template with a user turn asking for a
//            self-contained script; the answer is what follows the last
//            </think>; the code is the last fenced Python block, else a
//            sanitizer's pick; program = code (+ the prompt's imports it lacks).
#include <string>
#include <string_view>
#include <vector>

namespace quanteval::harness {

// lm-evaluation-harness humaneval stop sequences.
const std::vector<std::string>& standard_stop_sequences();

// The completion up to (not including) the earliest stop sequence.
std::string cut_at_stop_sequence(std::string_view completion);

// The user turn for thinking mode: the instruction with the prompt (stripped of
// surrounding whitespace) in a ```python fence.
std::string thinking_user_message(std::string_view prompt);

enum class ExtractionRule {
  fenced_python,    // last ```python / ```py block
  fenced_generic,   // last ``` block without a language (or another one that parses as Python-ish)
  unclosed_fence,   // a ```python block that was never closed (output ended inside it)
  sanitizer,        // no fence: the span from the first def/import/class line, prose trimmed
  none,             // nothing extractable
};
const char* to_string(ExtractionRule rule);

struct Extraction {
  std::string code;
  ExtractionRule rule = ExtractionRule::none;
  bool thinking_closed = true;   // false when <think> was opened and never closed
  std::string answer;            // the text after the last </think> (whole text when none)
};

// Applies the thinking-mode rules to raw model output. `prompt_opens_thinking`:
// the rendered prompt already ends inside <think> (Qwen3.5's template with
// enable_thinking does this), so output without </think> never left it.
Extraction extract_thinking_answer(std::string_view raw_output, bool prompt_opens_thinking = false);

// True when a rendered chat prompt leaves the assistant turn inside an open
// <think> block (the last <think> comes after the last </think>).
bool prompt_opens_thinking(std::string_view rendered_prompt);

// The import lines of a prompt (`import x`, `from x import y`) that `code`
// does not already contain, joined with newlines (empty when none).
std::string missing_prompt_imports(std::string_view prompt, std::string_view code);

}  // namespace quanteval::harness
