#include "harness/execution/time_limits.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "datasets/datasets.hpp"
#include "harness/common/files.hpp"
#include "harness/common/progress.hpp"
#include "harness/execution/executor.hpp"
#include "harness/execution/scoring.hpp"
#include "harness/samples/samples.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// Calibration runs each canonical solution once with this much room: far above
// any HumanEval+ canonical time (the slowest takes ~11 s on a 2-core machine),
// so a loaded machine still measures instead of timing out.
double calibration_limit(const datasets::Manifest& manifest) {
  return std::max(120.0, 6 * manifest.default_timeout_seconds);
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.starts_with("model name")) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown CPU";
}

ordered_json cache_key(const datasets::Dataset& dataset, const std::string& python, const std::string& machine) {
  return {{"dataset_sha256", dataset.sha256}, {"python", python}, {"machine", machine}};
}

std::optional<TimeLimits::Calibration> read_cache(const fs::path& file, const ordered_json& key) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    const json cached = json::parse(in);
    if (cached.at("key") != json(key)) return std::nullopt;
    TimeLimits::Calibration c;
    c.cache_file = file;
    c.from_cache = true;
    c.measured_utc = cached.at("measured_utc").get<std::string>();
    c.canonical_seconds = cached.at("canonical_seconds").get<std::map<std::string, double>>();
    c.notes = cached.value("notes", std::vector<std::string>{});
    return c;
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged cache is measured again, never trusted
  }
}

TimeLimits::Calibration measure(const datasets::Dataset& dataset, sandbox::Pool& pool, bool progress) {
  TimeLimits::Calibration c;
  const auto start = std::chrono::steady_clock::now();
  std::vector<ProgramJob> jobs;
  for (const auto& problem : dataset.problems) {
    const Sample canonical{problem.task_id, problem.canonical_solution, false, 0, 0};
    jobs.push_back({problem.task_id, 0, check_program(problem, canonical), calibration_limit(*dataset.manifest)});
  }
  Progress bar("measuring canonical solution times", jobs.size(), progress);
  std::size_t done = 0, passed = 0;
  const auto verdicts = run_jobs(pool, jobs, [&](std::size_t, const reports::SampleVerdict& v) {
    ++done;
    if (v.status == reports::Status::passed) ++passed;
    bar.update(done, passed);
  });
  bar.finish();
  for (const auto& v : verdicts) {
    if (v.status == reports::Status::passed)
      c.canonical_seconds[v.task_id] = v.duration_seconds;
    else
      c.notes.push_back(fmt::format("{}: canonical solution {} ({}); the default limit applies", v.task_id,
                                    reports::to_string(v.status), v.detail));
  }
  c.measured_utc = utc_timestamp();
  c.measurement_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c;
}

}  // namespace

double TimeLimits::for_task(const std::string& task_id) const {
  const auto it = per_task.find(task_id);
  return it == per_task.end() ? default_seconds : it->second;
}

double TimeLimits::max_seconds() const {
  double longest = default_seconds;
  for (const auto& [task, seconds] : per_task) longest = std::max(longest, seconds);
  return longest;
}

ordered_json TimeLimits::to_json() const {
  ordered_json j;
  j["rule"] = rule;
  j["default_seconds"] = default_seconds;
  if (!per_task.empty()) {
    double shortest = default_seconds;
    for (const auto& [task, seconds] : per_task) shortest = std::min(shortest, seconds);
    j["min_seconds"] = shortest;
    j["max_seconds"] = max_seconds();
    ordered_json tasks = ordered_json::object();
    for (const auto& [task, seconds] : per_task) tasks[task] = std::round(seconds * 1000) / 1000;
    j["per_task_seconds"] = tasks;
  }
  if (calibration) {
    const Calibration& c = *calibration;
    j["calibration"] = {{"cache_file", c.cache_file.string()},
                        {"from_cache", c.from_cache},
                        {"measured_utc", c.measured_utc},
                        {"python", c.python},
                        {"machine", c.machine},
                        {"measurement_seconds", c.measurement_seconds},
                        {"notes", c.notes}};
  }
  return j;
}

std::string machine_identity() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return fmt::format("{} / {} / {} CPUs", host[0] ? host : "unknown host", cpu_model(),
                     std::max(1u, std::thread::hardware_concurrency()));
}

TimeLimits choose_time_limits(const datasets::Dataset& dataset, sandbox::Pool& pool, const TimeLimitRequest& request) {
  TimeLimits limits;
  const datasets::Manifest* manifest = dataset.manifest;
  if (request.timeout_override) {
    limits.rule = fmt::format("flat {:.1f} s (--timeout)", *request.timeout_override);
    limits.default_seconds = *request.timeout_override;
    return limits;
  }
  limits.default_seconds = manifest ? manifest->default_timeout_seconds : 3.0;
  if (!manifest || !manifest->time_limit.calibrated) {
    limits.rule = fmt::format("flat {:.1f} s (openai/human-eval)", limits.default_seconds);
    return limits;
  }
  const auto& rule = manifest->time_limit;
  limits.rule =
      fmt::format("max({:.1f} s, {:.1f} x canonical solution time on this machine)", rule.min_seconds, rule.factor);
  const std::string python = fmt::format("{} ({})", pool.config().python, python_version(pool.config().python));
  const std::string machine = machine_identity();
  const ordered_json key = cache_key(dataset, python, machine);
  const fs::path file = datasets::cache_dir() / "time-limits" /
                        fmt::format("{}-{}.json", dataset.name == "humaneval+" ? "humanevalplus" : dataset.name,
                                    datasets::sha256_hex(key.dump()).substr(0, 16));
  std::optional<TimeLimits::Calibration> calibration;
  if (!request.recalibrate) calibration = read_cache(file, key);
  if (!calibration) {
    calibration = measure(dataset, pool, request.progress);
    calibration->cache_file = file;
    ordered_json cached;
    cached["key"] = key;
    cached["measured_utc"] = calibration->measured_utc;
    cached["rule"] = limits.rule;
    cached["canonical_seconds"] = calibration->canonical_seconds;
    cached["notes"] = calibration->notes;
    try {
      fs::create_directories(file.parent_path());
      write_file_atomically(file, cached.dump(2) + "\n");
    } catch (const std::exception& e) {
      calibration->notes.push_back(fmt::format("could not cache the measurement in {}: {}", file.string(), e.what()));
    }
  }
  calibration->python = python;
  calibration->machine = machine;
  for (const auto& [task, seconds] : calibration->canonical_seconds)
    limits.per_task[task] = std::max(rule.min_seconds, rule.factor * seconds);
  limits.calibration = std::move(calibration);
  return limits;
}

}  // namespace quanteval::harness
