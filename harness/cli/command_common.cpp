#include <fmt/format.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "harness/cli/commands.hpp"

namespace quanteval::harness {

void add_dataset_option(Args& args) {
  args.option("dataset", "PATH|humaneval|humaneval+",
              "dataset file or name; a named dataset is read from the cache and downloaded once when missing "
              "(default: $QUANTEVAL_DATASET, else humaneval)",
              "");
}

void add_sandbox_options(Args& args) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  args.option("python", "PATH", "Python interpreter for the sandbox (default: $QUANTEVAL_PYTHON, else python3 on PATH)",
              "")
      .option("workers", "N", "programs executed in parallel", std::to_string(cores))
      .option("timeout", "SECONDS",
              "one wall-clock limit for every program (default: the dataset's rule: 3.0 s for humaneval as in "
              "openai/human-eval; for humaneval+ max(3 s, 4 x the task's canonical solution time on this machine), "
              "measured once and cached)",
              "")
      .option("memory-mb", "MIB",
              "memory limit per program: each process's address space and, where the host offers a memory "
              "cgroup, all of the program's processes together",
              "4096")
      .flag("recalibrate", "measure the canonical solution times again instead of using the cached measurement");
}

TimeLimits time_limits_from_args(const Args& args, const datasets::Dataset& dataset, sandbox::Pool& pool) {
  TimeLimitRequest request;
  if (!args.get("timeout").empty()) request.timeout_override = args.get_double("timeout", 0.05, 3600);
  request.recalibrate = args.is_set("recalibrate");
  request.progress = !args.is_set("quiet");  // every verb with sandbox options has --quiet
  return choose_time_limits(dataset, pool, request);
}

sandbox::Config sandbox_config(const Args& args, const datasets::Dataset& dataset, PythonChoice& python) {
  python = resolve_python(args.get("python"));
  sandbox::Config config;
  config.python = python.executable;
  config.workers = args.get_int("workers", 1, 256);
  config.limits.wall_seconds = args.get("timeout").empty()
                                   ? (dataset.manifest ? dataset.manifest->default_timeout_seconds : 3.0)
                                   : args.get_double("timeout", 0.05, 3600);
  config.limits.address_space_bytes = static_cast<std::uint64_t>(args.get_int("memory-mb", 64, 1 << 20)) << 20;
  // The dataset holds the canonical solutions: never visible to a program.
  if (!dataset.path.empty()) {
    config.hidden_paths.push_back(std::filesystem::absolute(dataset.path).parent_path().string());
  }
  return config;
}

Args& add_task_options(Args& args) {
  return args.option("limit", "N", "only the first N tasks")
      .option("tasks", "LIST", "only these tasks: ids or numbers, comma-separated (e.g. 0,5,HumanEval/7)");
}

std::vector<const datasets::Problem*> select_tasks(const datasets::Dataset& dataset, const Args& args) {
  std::vector<const datasets::Problem*> tasks;
  if (auto list = args.maybe("tasks")) {
    std::stringstream items(*list);
    std::string item;
    while (std::getline(items, item, ',')) {
      // "3" means HumanEval/3; a full id is taken as is.
      const std::string id = item.find('/') == std::string::npos ? "HumanEval/" + item : item;
      const auto* p = dataset.find(id);
      if (!p) throw UsageError(fmt::format("--tasks: '{}' is not a task of dataset {}", item, dataset.name));
      tasks.push_back(p);
    }
  } else {
    for (const auto& p : dataset.problems) tasks.push_back(&p);
  }
  if (args.maybe("limit")) {
    const auto n = static_cast<std::size_t>(args.get_int("limit", 1, 1 << 20));
    if (tasks.size() > n) tasks.resize(n);
  }
  return tasks;
}

}  // namespace quanteval::harness
