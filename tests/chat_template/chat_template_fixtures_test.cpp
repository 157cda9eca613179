// Ground truth from transformers: the fixture render cases for Qwen3 and
// Qwen3.5, and the chat renders stored in the Qwen3 tokenizer reference.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "datasets/datasets.hpp"
#include "runtime/text/chat_template.hpp"
#include "tests/support/test_data.hpp"

using quanteval::runtime::ChatOptions;
using quanteval::runtime::ChatTemplate;
using quanteval::runtime::ChatTemplateError;
using ordered_json = nlohmann::ordered_json;

namespace {

ordered_json read_json(const std::filesystem::path& path) {
  return ordered_json::parse(quanteval::datasets::read_maybe_gzip(path));
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The `template` field names where the template lives: "<fixture path>" or
// "<fixture path>#<json key>".
std::string template_source(const std::string& reference) {
  const auto hash = reference.find('#');
  const auto path = quanteval::test::fixture(reference.substr(0, hash));
  if (hash == std::string::npos) return read_text(path);
  return read_json(path)[reference.substr(hash + 1)].get<std::string>();
}

// Python's str.strip() on ASCII text (the HumanEval prompts are ASCII).
std::string python_strip(const std::string& s) {
  const char* blanks = " \t\n\r\v\f";
  const auto begin = s.find_first_not_of(blanks);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(blanks) - begin + 1);
}

void run_case_file(const std::string& fixture) {
  const ordered_json cases = read_json(quanteval::test::fixture(fixture));
  const ChatTemplate chat(template_source(cases["template"].get<std::string>()));
  int passed = 0;
  for (const auto& c : cases["cases"]) {
    const std::string label = fmt::format("{} / {} (enable_thinking={})", fixture, c["name"].get<std::string>(),
                                          c.value("enable_thinking", ordered_json()).dump());
    CAPTURE(label);
    ChatOptions options;
    options.add_generation_prompt = c.value("add_generation_prompt", false);
    if (c.contains("enable_thinking") && c["enable_thinking"].is_boolean()) {
      options.enable_thinking = c["enable_thinking"].get<bool>();
    }
    options.tools = c.value("tools", ordered_json());
    if (c.contains("error") && !c["error"].is_null()) {
      const std::string expected_error = c["error"].get<std::string>();
      try {
        chat.render_chat(c["messages"], options);
        FAIL_CHECK("expected an error containing: ", expected_error);
      } catch (const ChatTemplateError& error) {
        CHECK_MESSAGE(std::string(error.what()).find(expected_error) != std::string::npos, error.what());
        ++passed;
      }
      continue;
    }
    const std::string rendered = chat.render_chat(c["messages"], options);
    CHECK(rendered == c["expected"].get<std::string>());
    if (rendered == c["expected"].get<std::string>()) ++passed;
  }
  MESSAGE(fmt::format("{}: {}/{} cases byte-identical", fixture, passed, cases["cases"].size()));
  CHECK(passed == static_cast<int>(cases["cases"].size()));
}

}  // namespace

TEST_CASE("Qwen3 fixture cases render as transformers does") { run_case_file("chat-templates/qwen3-cases.json"); }

TEST_CASE("Qwen3.5 fixture cases render as transformers does") { run_case_file("chat-templates/qwen3_5-cases.json"); }

TEST_CASE("Qwen3 HumanEval chat renders match the tokenizer reference") {
  const auto chat = ChatTemplate::from_model_dir(quanteval::test::qwen3_tokenizer_dir());
  const ordered_json reference =
      read_json(quanteval::test::fixture("tokenizer-reference/qwen3-humaneval-tokref.json.gz"));
  const auto problems = quanteval::datasets::parse_problems(quanteval::test::dataset_file("humaneval"));
  const std::string instruction = reference["instruction_template"].get<std::string>();
  const std::string placeholder = "{prompt}";
  REQUIRE(instruction.find(placeholder) != std::string::npos);

  int compared = 0, matched = 0;
  for (const auto& entry : reference["humaneval"]) {
    const std::string task_id = entry["task_id"].get<std::string>();
    CAPTURE(task_id);
    const auto problem =
        std::find_if(problems.begin(), problems.end(), [&](const auto& p) { return p.task_id == task_id; });
    REQUIRE(problem != problems.end());
    std::string user = instruction;
    user.replace(user.find(placeholder), placeholder.size(), python_strip(problem->prompt));
    const ordered_json messages = ordered_json::array({{{"role", "user"}, {"content", user}}});
    for (const bool thinking : {true, false}) {
      ChatOptions options;
      options.add_generation_prompt = true;
      options.enable_thinking = thinking;
      const std::string rendered = chat.render_chat(messages, options);
      const std::string expected = entry[thinking ? "chat_thinking" : "chat_nothinking"].get<std::string>();
      ++compared;
      if (rendered == expected) ++matched;
      CHECK(rendered == expected);
    }
  }
  MESSAGE(fmt::format("humaneval chat renders: {}/{} byte-identical", matched, compared));
  CHECK(compared == 2 * 164);
}

TEST_CASE("Qwen3 multi-turn render matches the tokenizer reference") {
  const auto chat = ChatTemplate::from_model_dir(quanteval::test::qwen3_tokenizer_dir());
  const ordered_json reference =
      read_json(quanteval::test::fixture("tokenizer-reference/qwen3-humaneval-tokref.json.gz"));
  const auto& multi_turn = reference["multi_turn"];
  ChatOptions options;
  options.enable_thinking = true;
  CHECK(chat.render_chat(multi_turn["messages"], options) == multi_turn["thinking"].get<std::string>());
  options.enable_thinking = false;
  CHECK(chat.render_chat(multi_turn["messages"], options) == multi_turn["nothinking"].get<std::string>());
}
