#include <filesystem>
#include <thread>

#include "harness/commands.hpp"

namespace quanteval::harness {

std::string tool_version() { return QUANTEVAL_VERSION; }

void add_dataset_option(Args& args) {
  args.option("dataset", "PATH|humaneval|humaneval+",
              "dataset file or name; a named dataset is read from the cache and downloaded once when missing "
              "(default: $QUANTEVAL_DATASET, else humaneval)",
              "");
}

void add_sandbox_options(Args& args) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  args.option("python", "PATH", "Python interpreter for the sandbox (default: $QUANTEVAL_PYTHON, else python3 on PATH)", "")
      .option("workers", "N", "programs executed in parallel", std::to_string(cores))
      .option("timeout", "SECONDS",
              "wall-clock limit per program (default: the dataset's: 3.0 for humaneval as in openai/human-eval, "
              "20 for humaneval+)",
              "")
      .option("memory-mb", "MIB",
              "memory limit per program: each process's address space and, where the host offers a memory "
              "cgroup, all of the program's processes together",
              "4096");
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

}  // namespace quanteval::harness
