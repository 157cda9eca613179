#include "reports/records/verdict_record.hpp"

#include <fmt/format.h>

#include <cmath>
#include <optional>

namespace quanteval::reports {

using nlohmann::json;
using nlohmann::ordered_json;

ordered_json to_json(const SampleVerdict& v) {
  ordered_json j;
  if (!v.mode.empty()) j["mode"] = v.mode;
  j["task_id"] = v.task_id;
  j["sample_index"] = v.sample_index;
  j["status"] = std::string(to_string(v.status));
  j["passed"] = v.status == Status::passed;
  j["duration_s"] = std::round(v.duration_seconds * 1e4) / 1e4;
  if (v.time_limit_seconds > 0) j["time_limit_s"] = std::round(v.time_limit_seconds * 1e3) / 1e3;
  j["detail"] = v.detail;
  if (v.attempts > 1) j["attempts"] = v.attempts;
  return j;
}

SampleVerdict verdict_from_json(const json& row, const std::string& where) {
  if (!row.is_object()) throw RunInputError(fmt::format("{}: expected a JSON object, got {}", where, row.type_name()));
  auto field = [&](const char* name) -> const json* {
    auto it = row.find(name);
    return it == row.end() || it->is_null() ? nullptr : &*it;
  };
  auto fail = [&](const char* name, const std::string& why) {
    return RunInputError(fmt::format("{}: field '{}': {}", where, name, why));
  };
  auto number = [&](const char* name) -> std::optional<double> {
    const json* value = field(name);
    if (!value) return std::nullopt;
    if (!value->is_number()) throw fail(name, "expected a number, got " + value->dump());
    return value->get<double>();
  };

  SampleVerdict verdict;
  const json* task_id = field("task_id");
  if (!task_id) throw fail("task_id", "missing");
  if (!task_id->is_string() || task_id->get<std::string>().empty())
    throw fail("task_id", "expected a non-empty string, got " + task_id->dump());
  verdict.task_id = task_id->get<std::string>();

  const json* status = field("status");
  if (!status) throw fail("status", "missing");
  if (!status->is_string()) throw fail("status", std::string("expected a string, got ") + status->type_name());
  const auto known = parse_status(status->get<std::string>());
  if (!known)
    throw fail("status", fmt::format("unknown status '{}' (expected passed, failed, error, timeout, oom, signal, "
                                     "no_code, truncated or sandbox_error)",
                                     status->get<std::string>()));
  verdict.status = *known;

  if (const json* passed = field("passed")) {
    if (!passed->is_boolean()) throw fail("passed", "expected true or false, got " + passed->dump());
    // A disagreement means the file was edited or written by something buggy;
    // guessing which field is right would silently change the score.
    if (passed->get<bool>() != (*known == Status::passed))
      throw fail("passed", fmt::format("{} contradicts status '{}'", passed->dump(), status->get<std::string>()));
  }
  verdict.sample_index = -1;
  if (const json* index = field("sample_index")) {
    if (!index->is_number_integer() || index->get<long long>() < 0)
      throw fail("sample_index", "expected a non-negative integer, got " + index->dump());
    verdict.sample_index = static_cast<int>(index->get<long long>());
  }
  if (const auto duration = number("duration_s")) verdict.duration_seconds = *duration;
  if (const auto limit = number("time_limit_s")) verdict.time_limit_seconds = *limit;
  if (const json* attempts = field("attempts")) {
    if (!attempts->is_number_integer() || attempts->get<long long>() < 1)
      throw fail("attempts", "expected a positive integer, got " + attempts->dump());
    verdict.attempts = static_cast<int>(attempts->get<long long>());
  }
  if (const json* detail = field("detail")) {
    if (!detail->is_string()) throw fail("detail", std::string("expected a string, got ") + detail->type_name());
    verdict.detail = detail->get<std::string>();
  }
  if (const json* mode = field("mode")) {
    if (!mode->is_string() || mode->get<std::string>().empty())
      throw fail("mode", "expected a non-empty string, got " + mode->dump());
    verdict.mode = mode->get<std::string>();
  }
  return verdict;
}

}  // namespace quanteval::reports
