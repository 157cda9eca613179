#pragma once
// Synthetic run directories with known per-task outcomes, written by the tests
// themselves (the sandbox is not needed to test a comparison).
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace quanteval::test {

struct SyntheticRun {
  std::vector<std::string> modes = {"standard", "thinking"};  // empty string: no `mode` field (a score directory)
  int tasks = 164;
  int samples_per_task = 1;
  // passes(mode, task, sample) -> did that sample pass
  std::function<bool(const std::string&, int, int)> passes{};
  std::vector<int> skip_tasks{};  // tasks absent from the run
  // status(mode, task, sample) -> a status name; overrides `passes` when set.
  std::function<std::string(const std::string&, int, int)> status{};
  // sample(mode, task, sample) -> the samples.jsonl fields of that sample (mode,
  // task_id and sample_index are added); no samples.jsonl when unset.
  std::function<nlohmann::json(const std::string&, int, int)> sample{};
  nlohmann::json report = nlohmann::json::object();
};

inline std::string task_name(int task) { return "HumanEval/" + std::to_string(task); }

inline void write_run(const std::filesystem::path& directory, const SyntheticRun& run) {
  std::filesystem::create_directories(directory);
  std::ofstream results(directory / "results.jsonl");
  std::ofstream samples;
  if (run.sample) samples.open(directory / "samples.jsonl");
  for (const auto& mode : run.modes)
    for (int task = 0; task < run.tasks; ++task) {
      bool skipped = false;
      for (int s : run.skip_tasks) skipped = skipped || s == task;
      if (skipped) continue;
      for (int sample = 0; sample < run.samples_per_task; ++sample) {
        const std::string status =
            run.status ? run.status(mode, task, sample) : (run.passes(mode, task, sample) ? "passed" : "failed");
        const bool passed = status == "passed";
        nlohmann::json line = {{"task_id", task_name(task)}, {"sample_index", sample},
                               {"status", status},           {"passed", passed},
                               {"duration_s", 0.25},         {"detail", passed ? "" : "AssertionError"}};
        if (!mode.empty()) line["mode"] = mode;
        results << line.dump() << "\n";
        if (run.sample) {
          nlohmann::json s = run.sample(mode, task, sample);
          s["mode"] = mode;
          s["task_id"] = task_name(task);
          s["sample_index"] = sample;
          samples << s.dump() << "\n";
        }
      }
    }
  std::ofstream(directory / "report.json") << run.report.dump(2) << "\n";
}

}  // namespace quanteval::test
