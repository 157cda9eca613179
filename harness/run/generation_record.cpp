#include "harness/run/generation_record.hpp"

#include <fmt/format.h>

#include <fstream>
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

reports::SampleGeneration to_sample_generation(const GenerationRecord& r) {
  reports::SampleGeneration g;
  g.generated_tokens = r.generated_tokens;
  g.finish_reason = std::string(to_string(r.finish));
  g.extraction_rule = std::string(to_string(r.extraction_rule));
  if (r.mode == Mode::thinking) g.thinking_closed = r.thinking_closed;
  g.completion = r.completion;
  g.raw_output = r.raw_output;
  return g;
}

void attach_generations(reports::RunResults& run) {
  const auto file = run.directory / "samples.jsonl";
  if (run.directory.empty() || !std::filesystem::exists(file)) return;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw reports::RunInputError(fmt::format("{}: cannot be read", file.string()));
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", file.string(), number);
    GenerationRecord record;
    try {
      record = generation_record_from_json(json::parse(line), where);
    } catch (const json::parse_error& e) {
      throw reports::RunInputError(fmt::format("{}: not valid JSON ({})", where, e.what()));
    } catch (const std::runtime_error& e) {
      throw reports::RunInputError(e.what());
    }
    const auto mode = run.modes.find(std::string(to_string(record.mode)));
    if (mode == run.modes.end()) continue;
    mode->second.generations[{record.task_id, record.sample_index}] = to_sample_generation(record);
  }
}

}  // namespace quanteval::harness
