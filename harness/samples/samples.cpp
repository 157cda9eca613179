#include "harness/samples/samples.hpp"

#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

namespace quanteval::harness {

using nlohmann::json;

std::vector<Sample> read_samples(const std::filesystem::path& file, const datasets::Dataset& dataset) {
  if (!std::filesystem::is_regular_file(file))
    throw InputError(fmt::format("{}: samples file not found", file.string()));
  std::string text;
  try {
    text = datasets::read_maybe_gzip(file);
  } catch (const std::exception& e) {
    throw InputError(e.what());
  }
  std::vector<Sample> samples;
  std::map<std::string, int> next_index;
  // (task, code, explicit index) -> first line, to find duplicates.
  std::map<std::tuple<std::string, std::string, std::string>, std::size_t> seen;
  std::istringstream lines(text);
  std::string line;
  std::size_t number = 0;
  const std::string where = file.string();
  while (std::getline(lines, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json row;
    try {
      row = json::parse(line);
    } catch (const json::parse_error& e) {
      throw InputError(fmt::format("{}:{}: invalid JSON ({})", where, number, e.what()));
    }
    if (!row.is_object())
      throw InputError(fmt::format("{}:{}: expected a JSON object, got {}", where, number, row.type_name()));
    auto string_field = [&](const char* name) -> const json* {
      auto it = row.find(name);
      if (it == row.end()) return nullptr;
      if (!it->is_string())
        throw InputError(fmt::format("{}:{}: field '{}' must be a string, got {}", where, number, name,
                                     it->is_null() ? "null" : it->type_name()));
      return &*it;
    };
    const json* task = string_field("task_id");
    if (!task) throw InputError(fmt::format("{}:{}: field 'task_id' is missing", where, number));
    Sample s;
    s.task_id = task->get<std::string>();
    s.line = number;
    if (!dataset.find(s.task_id))
      throw InputError(fmt::format("{}:{}: field 'task_id': '{}' is not a task of dataset {}", where, number, s.task_id,
                                   dataset.name));
    const json* completion = string_field("completion");
    const json* solution = string_field("solution");
    if (completion && solution)
      throw InputError(fmt::format("{}:{}: give either 'completion' or 'solution', not both", where, number));
    if (!completion && !solution)
      throw InputError(fmt::format("{}:{}: field 'completion' (or 'solution') is missing", where, number));
    s.whole_program = solution != nullptr;
    s.code = (solution ? solution : completion)->get<std::string>();

    std::string explicit_index;
    for (const char* name : {"sample_index", "completion_id"})
      if (auto it = row.find(name); it != row.end()) explicit_index = it->dump();
    const auto key = std::make_tuple(s.task_id, (s.whole_program ? "S:" : "C:") + s.code, explicit_index);
    if (auto it = seen.find(key); it != seen.end())
      throw InputError(
          fmt::format("{}:{}: duplicate sample: same task_id and {} as line {} (give repeated samples distinct "
                      "'sample_index' values)",
                      where, number, s.whole_program ? "solution" : "completion", it->second));
    seen.emplace(key, number);
    s.sample_index = next_index[s.task_id]++;
    samples.push_back(std::move(s));
  }
  if (samples.empty()) throw InputError(fmt::format("{}: no samples (the file is empty)", where));
  return samples;
}

std::string check_program(const datasets::Problem& problem, const Sample& sample) {
  const std::string body = sample.whole_program ? sample.code : problem.prompt + sample.code;
  return body + "\n" + problem.test + "\n" + "check(" + problem.entry_point + ")";
}

}  // namespace quanteval::harness
