#include "harness/execution/scoring.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <memory>

namespace quanteval::harness {

using reports::Status;

Status classify(const sandbox::Result& r) {
  switch (r.outcome) {
    case sandbox::Outcome::completed: return Status::passed;
    case sandbox::Outcome::exception:
      if (r.exception_type == "AssertionError") return Status::failed;
      if (r.exception_type == "MemoryError") return Status::oom;
      return Status::error;
    case sandbox::Outcome::timeout: return Status::timeout;
    case sandbox::Outcome::memory: return Status::oom;
    case sandbox::Outcome::signaled: return Status::signal;
    case sandbox::Outcome::exited: return Status::error;
    case sandbox::Outcome::sandbox_error: return Status::sandbox_error;
  }
  return Status::sandbox_error;
}

std::string describe(const sandbox::Result& r, const sandbox::Limits& limits) {
  // The sandbox's text fields are valid UTF-8; the cut backs up to the start of
  // a character so the line stays valid (results.jsonl is strict JSON).
  auto shorten = [](std::string text) {
    for (char& ch : text)
      if (ch == '\n' || ch == '\r') ch = ' ';
    if (text.size() > 200) {
      std::size_t end = 197;
      while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
      text = text.substr(0, end) + "...";
    }
    return text;
  };
  switch (r.outcome) {
    case sandbox::Outcome::completed: return "check() returned";
    case sandbox::Outcome::exception:
      return shorten(r.exception_message.empty() ? r.exception_type : r.exception_type + ": " + r.exception_message);
    case sandbox::Outcome::timeout:
      return fmt::format("time limit {:.1f} s exceeded; process tree killed", limits.wall_seconds);
    case sandbox::Outcome::memory:
      if (r.memory_cgroup_kills > 0) {
        return fmt::format("memory limit {} MiB exceeded by the program's processes together ({} killed)",
                           (limits.memory_bytes ? limits.memory_bytes : limits.address_space_bytes) >> 20,
                           r.memory_cgroup_kills);
      }
      return shorten(fmt::format("memory limit {} MiB exceeded{}", limits.address_space_bytes >> 20,
                                 r.exception_type.empty() ? "" : " (" + r.exception_type + ")"));
    case sandbox::Outcome::signaled: return fmt::format("killed by signal {}", r.signal);
    case sandbox::Outcome::exited: return fmt::format("exited with code {} before check() returned", r.exit_code);
    case sandbox::Outcome::sandbox_error: return shorten("sandbox failure: " + r.detail);
  }
  return {};
}

reports::SampleVerdict to_verdict(const std::string& task_id, int sample_index, const sandbox::Result& r,
                                  const sandbox::Limits& limits) {
  reports::SampleVerdict v;
  v.task_id = task_id;
  v.sample_index = sample_index;
  v.status = classify(r);
  v.duration_seconds = r.duration_seconds;
  v.time_limit_seconds = limits.wall_seconds;
  v.detail = describe(r, limits);
  v.attempts = r.attempts;
  return v;
}

std::string python_version(const std::string& python) {
  const std::string command = "'" + python + "' -I -c 'import platform; print(platform.python_version())' 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return "unknown";
  std::array<char, 64> buffer{};
  std::string out;
  while (std::fgets(buffer.data(), buffer.size(), pipe.get())) out += buffer.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.empty() ? "unknown" : out;
}

reports::SandboxInfo describe_sandbox(const sandbox::Pool& pool, const TimeLimits& limits,
                                      const std::vector<std::string>& notes) {
  reports::SandboxInfo info;
  info.python = pool.config().python;
  info.python_version = python_version(info.python);
  info.workers = pool.config().workers;
  info.timeout_seconds = limits.default_seconds;
  info.time_limit_rule = limits.rule;
  info.time_limits = limits.to_json();
  info.memory_limit_bytes = pool.config().limits.address_space_bytes;
  info.protections = pool.protections().active();
  info.notes = pool.protections().notes;
  info.notes.insert(info.notes.end(), notes.begin(), notes.end());
  return info;
}

reports::DatasetInfo describe_dataset(const datasets::Dataset& dataset) {
  reports::DatasetInfo info{dataset.name,     dataset.path.string(),   dataset.sha256,
                            dataset.verified, dataset.problems.size(), {}};
  if (dataset.manifest) info.notes = dataset.manifest->notes;
  return info;
}

}  // namespace quanteval::harness
