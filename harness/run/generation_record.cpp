#include "harness/run/generation_record.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace quanteval::harness {

using nlohmann::json;
using nlohmann::ordered_json;

SampleKey GenerationRecord::key() const { return {std::string(to_string(mode)), task_id, sample_index}; }

ordered_json to_json(const GenerationRecord& r) {
  ordered_json j;
  j["mode"] = to_string(r.mode);
  j["task_id"] = r.task_id;
  j["sample_index"] = r.sample_index;
  j["prompt_tokens"] = r.prompt_tokens;
  j["generated_tokens"] = r.generated_tokens;
  j["finish_reason"] = to_string(r.finish);
  j["raw_output"] = r.raw_output;
  j["completion"] = r.completion;
  j["extraction_rule"] = to_string(r.extraction_rule);
  if (r.mode == Mode::thinking) j["thinking_closed"] = r.thinking_closed;
  return j;
}

GenerationRecord generation_record_from_json(const json& line, const std::string& where) {
  auto fail = [&](const char* name, const std::string& why) {
    return std::runtime_error(fmt::format("{}: field '{}': {}", where, name, why));
  };
  auto field = [&](const char* name) -> const json& {
    const auto it = line.find(name);
    if (it == line.end()) throw fail(name, "missing");
    return *it;
  };
  auto text = [&](const char* name) {
    const json& value = field(name);
    if (!value.is_string()) throw fail(name, "expected a string, got " + value.dump());
    return value.get<std::string>();
  };
  auto count = [&](const char* name) {
    const json& value = field(name);
    if (!value.is_number_integer() || value.get<long long>() < 0 || value.get<long long>() > (1ll << 31) - 1)
      throw fail(name, "expected a non-negative integer, got " + value.dump());
    return static_cast<int>(value.get<long long>());
  };
  if (!line.is_object()) throw std::runtime_error(fmt::format("{}: expected a JSON object", where));

  // A field holding one of an enum's names.
  auto named = [&](const char* name, auto parse, const char* kind) {
    const std::string value = text(name);
    const auto parsed = parse(value);
    if (!parsed) throw fail(name, fmt::format("unknown {} '{}'", kind, value));
    return *parsed;
  };

  GenerationRecord r;
  r.mode = named("mode", parse_mode, "mode");
  r.task_id = text("task_id");
  r.sample_index = count("sample_index");
  r.prompt_tokens = count("prompt_tokens");
  r.generated_tokens = count("generated_tokens");
  r.finish = named("finish_reason", parse_finish_reason, "finish reason");
  r.raw_output = text("raw_output");
  r.completion = text("completion");
  r.extraction_rule = named("extraction_rule", parse_extraction_rule, "extraction rule");
  if (const auto it = line.find("thinking_closed"); it != line.end()) {
    if (!it->is_boolean()) throw fail("thinking_closed", "expected true or false, got " + it->dump());
    r.thinking_closed = it->get<bool>();
  }
  return r;
}

}  // namespace quanteval::harness
