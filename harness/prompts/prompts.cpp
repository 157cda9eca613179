#include "harness/prompts/prompts.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "datasets/datasets.hpp"

namespace quanteval::harness {

const std::vector<std::string>& standard_stop_sequences() {
  static const std::vector<std::string> stops = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};
  return stops;
}

std::string thinking_user_message(std::string_view prompt) {
  const auto first = prompt.find_first_not_of(" \t\r\n");
  const auto last = prompt.find_last_not_of(" \t\r\n");
  const std::string_view body =
      first == std::string_view::npos ? std::string_view() : prompt.substr(first, last - first + 1);
  return "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
         "```python\n" +
         std::string(body) + "\n```";
}

bool prompt_opens_thinking(std::string_view prompt) {
  const auto open = prompt.rfind("<think>");
  if (open == std::string_view::npos) return false;
  const auto close = prompt.rfind("</think>");
  return close == std::string_view::npos || close < open;
}

std::string render_prompt(Mode mode, const datasets::Problem& problem, const runtime::ChatTemplate* chat) {
  if (mode == Mode::standard) return problem.prompt;
  if (!chat) throw std::invalid_argument("thinking mode needs the model's chat template");
  const nlohmann::ordered_json messages =
      nlohmann::ordered_json::array({{{"role", "user"}, {"content", thinking_user_message(problem.prompt)}}});
  runtime::ChatOptions options;
  options.enable_thinking = true;
  return chat->render_chat(messages, options);
}

PromptSet prepare_prompts(const std::vector<const datasets::Problem*>& tasks, const std::vector<Mode>& modes,
                          int samples_per_task, const runtime::Tokenizer& tokenizer,
                          const runtime::ChatTemplate* chat) {
  PromptSet set;
  set.modes = modes;
  for (const Mode mode : modes) {
    std::string all_prompts;
    for (const auto* problem : tasks) {
      std::string text = render_prompt(mode, *problem, chat);
      all_prompts += text;
      const std::vector<runtime::TokenId> ids = tokenizer.encode(text);
      for (int i = 0; i < samples_per_task; ++i) set.prompts.push_back({mode, problem, i, text, ids});
    }
    set.sha256_by_mode[mode] = datasets::sha256_hex(all_prompts);
  }
  return set;
}

}  // namespace quanteval::harness
