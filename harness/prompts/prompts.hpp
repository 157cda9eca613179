#pragma once
// Step 1 of a run: the prompt of every sample, rendered and tokenized once, up
// front. The run's configuration hash covers them (run.json), and every
// generation backend receives these token ids, so no server-side template or
// tokenizer can change what the model sees.
//   standard  the raw HumanEval prompt;
//   thinking  the model's chat template with enable_thinking and one user turn:
//             thinking_user_message(prompt).
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/datasets.hpp"
#include "harness/prompts/mode.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {

// lm-evaluation-harness humaneval stop sequences (standard mode).
const std::vector<std::string>& standard_stop_sequences();

// The user turn for thinking mode: the instruction with the prompt (stripped of
// surrounding whitespace) in a ```python fence.
std::string thinking_user_message(std::string_view prompt);

// True when a rendered chat prompt leaves the assistant turn inside an open
// <think> block (the last <think> comes after the last </think>): Qwen3.5's
// template with enable_thinking does this.
bool prompt_opens_thinking(std::string_view rendered_prompt);

// The prompt text of one problem in one mode. `chat` is needed for thinking mode.
std::string render_prompt(Mode mode, const datasets::Problem& problem, const runtime::ChatTemplate* chat);

// One sample to generate: a problem's prompt in one mode, and which of its
// samples this is (samples of one prompt differ only by their seed).
struct PreparedPrompt {
  Mode mode = Mode::standard;
  const datasets::Problem* problem = nullptr;
  int sample_index = 0;
  std::string text;                   // the rendered prompt, exactly what was tokenized
  std::vector<runtime::TokenId> ids;  // tokenizer.encode(text)
};

struct PromptSet {
  std::vector<Mode> modes;                     // as asked for
  std::vector<PreparedPrompt> prompts;         // by mode, then task order, then sample index
  std::map<Mode, std::string> sha256_by_mode;  // over the prompt texts of a mode, concatenated in task order
};

// Every prompt of `tasks` x `modes` x `samples_per_task`. Throws
// std::invalid_argument when thinking mode is asked for without a chat template.
PromptSet prepare_prompts(const std::vector<const datasets::Problem*>& tasks, const std::vector<Mode>& modes,
                          int samples_per_task, const runtime::Tokenizer& tokenizer, const runtime::ChatTemplate* chat);

}  // namespace quanteval::harness
