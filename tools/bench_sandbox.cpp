// Sandbox throughput: runs N programs through a Pool of W workers and prints
// workers, programs, pool start-up time, seconds and programs/s.
//
//   bench_sandbox [--python PATH] [--workers 1,2,4] [--programs 164] [--repeat 3]
//                 [--dataset HumanEval.jsonl.gz]
//
// Without --dataset it generates HumanEval-like programs (a function, a check()
// with asserts, the call); with it, it runs each problem's canonical solution
// exactly as the harness builds it: prompt + solution + "\n" + test + "\n" +
// "check(entry_point)".
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "datasets/datasets.hpp"
#include "sandbox/sandbox.hpp"

namespace {

using quanteval::sandbox::Outcome;

std::vector<std::string> synthetic_programs(int count) {
  std::vector<std::string> programs;
  for (int i = 0; i < count; ++i) {
    programs.push_back(
        fmt::format("from typing import List\n\n"
                    "def candidate_{0}(numbers: List[int]) -> List[int]:\n"
                    "    \"\"\"Running maximum plus {0}.\"\"\"\n"
                    "    result, best = [], None\n"
                    "    for n in numbers:\n"
                    "        best = n if best is None else max(best, n)\n"
                    "        result.append(best + {0})\n"
                    "    return result\n\n"
                    "METADATA = {{'author': 'bench'}}\n\n"
                    "def check(candidate):\n"
                    "    assert candidate([]) == []\n"
                    "    assert candidate([1, 2, 3]) == [1 + {0}, 2 + {0}, 3 + {0}]\n"
                    "    assert candidate([3, 1, 2]) == [3 + {0}] * 3\n"
                    "    assert sorted(set(range({1}))) == list(range({1}))\n\n"
                    "check(candidate_{0})\n",
                    i, 100 + i % 50));
  }
  return programs;
}

std::vector<std::string> canonical_programs(const std::string& path) {
  std::vector<std::string> programs;
  for (const auto& problem : quanteval::datasets::parse_problems(path)) {
    programs.push_back(problem.prompt + problem.canonical_solution + "\n" + problem.test + "\n" + "check(" +
                       problem.entry_point + ")");
  }
  return programs;
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) values.push_back(std::stoi(item));
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  std::string python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  std::vector<int> worker_counts = {1, 2};
  int program_count = 164;
  int repeat = 3;
  std::string dataset;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "missing value for " << flag << "\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--python")
      python = value();
    else if (flag == "--workers")
      worker_counts = parse_list(value());
    else if (flag == "--programs")
      program_count = std::stoi(value());
    else if (flag == "--repeat")
      repeat = std::stoi(value());
    else if (flag == "--dataset")
      dataset = value();
    else {
      std::cerr
          << "usage: bench_sandbox [--python PATH] [--workers 1,2] [--programs N] [--repeat R] [--dataset FILE]\n";
      return 2;
    }
  }
  const std::vector<std::string> programs =
      dataset.empty() ? synthetic_programs(program_count) : canonical_programs(dataset);
  fmt::print("programs: {} ({}), python: {}, best of {} rounds\n", programs.size(),
             dataset.empty() ? "synthetic HumanEval-like" : dataset, python, repeat);
  fmt::print("{:>7} {:>8} {:>10} {:>9} {:>11}  outcomes\n", "workers", "programs", "startup_s", "seconds",
             "programs/s");
  for (int workers : worker_counts) {
    quanteval::sandbox::Config config;
    config.python = python;
    config.workers = workers;
    const auto start = std::chrono::steady_clock::now();
    quanteval::sandbox::Pool pool(config);
    const double startup = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double best = 1e30;
    std::map<std::string, int> outcomes;
    for (int round = 0; round < repeat; ++round) {
      const auto begin = std::chrono::steady_clock::now();
      const auto results = pool.run_all(programs);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      if (seconds < best) {
        best = seconds;
        outcomes.clear();
        for (const auto& result : results) ++outcomes[quanteval::sandbox::to_string(result.outcome)];
      }
    }
    std::string summary;
    for (const auto& [name, count] : outcomes) summary += fmt::format("{}={} ", name, count);
    fmt::print("{:>7} {:>8} {:>10.3f} {:>9.3f} {:>11.1f}  {}\n", workers, programs.size(), startup, best,
               static_cast<double>(programs.size()) / best, summary);
  }
  return 0;
}
