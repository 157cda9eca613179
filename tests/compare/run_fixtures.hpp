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
  nlohmann::json report = nlohmann::json::object();
};

inline std::string task_name(int task) { return "HumanEval/" + std::to_string(task); }

inline void write_run(const std::filesystem::path& directory, const SyntheticRun& run) {
  std::filesystem::create_directories(directory);
  std::ofstream results(directory / "results.jsonl");
  for (const auto& mode : run.modes)
    for (int task = 0; task < run.tasks; ++task) {
      bool skipped = false;
      for (int s : run.skip_tasks) skipped = skipped || s == task;
      if (skipped) continue;
      for (int sample = 0; sample < run.samples_per_task; ++sample) {
        const bool passed = run.passes(mode, task, sample);
        nlohmann::json line = {
            {"task_id", task_name(task)}, {"sample_index", sample}, {"status", passed ? "passed" : "failed"},
            {"passed", passed},           {"duration_s", 0.25},     {"detail", passed ? "" : "AssertionError"}};
        if (!mode.empty()) line["mode"] = mode;
        results << line.dump() << "\n";
      }
    }
  std::ofstream(directory / "report.json") << run.report.dump(2) << "\n";
}

}  // namespace quanteval::test
