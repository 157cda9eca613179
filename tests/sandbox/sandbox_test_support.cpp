#include "tests/sandbox/sandbox_test_support.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <doctest/doctest.h>

#include "tests/support/test_data.hpp"

namespace quanteval::sandbox::testing {
namespace fs = std::filesystem;

namespace {

struct ProcessInfo {
  pid_t pid = 0;
  pid_t parent = 0;
  uid_t uid = 0;
};

std::vector<ProcessInfo> host_processes() {
  std::vector<ProcessInfo> processes;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    if (!status) continue;
    ProcessInfo info;
    info.pid = std::stoi(name);
    bool complete = false;
    std::string line;
    while (std::getline(status, line)) {
      std::istringstream fields(line);
      std::string key;
      fields >> key;
      if (key == "PPid:") fields >> info.parent;
      if (key == "Uid:") {
        fields >> info.uid;
        complete = true;
      }
    }
    if (complete) processes.push_back(info);
  }
  return processes;
}

}  // namespace

Config test_config(int workers) {
  Config config;
  config.python = quanteval::test::python();
  config.workers = workers;
  return config;
}

Pool& shared_pool() {
  static Pool pool(test_config());
  return pool;
}

Limits quick_limits(double wall_seconds) {
  Limits limits;
  limits.wall_seconds = wall_seconds;
  return limits;
}

std::vector<pid_t> worker_processes() {
  std::vector<pid_t> workers;
  for (const auto& process : host_processes()) {
    if (process.parent == getpid()) workers.push_back(process.pid);
  }
  return workers;
}

std::vector<pid_t> leftover_processes() {
  const auto processes = host_processes();
  std::map<pid_t, pid_t> parent_of;
  for (const auto& process : processes) parent_of[process.pid] = process.parent;
  std::vector<pid_t> leftovers;
  for (const auto& process : processes) {
    if (process.parent == getpid()) continue;  // a zygote
    // Walk up: does the chain reach one of our zygotes?
    pid_t current = process.parent;
    for (int depth = 0; depth < 64 && current > 1; ++depth) {
      auto up = parent_of.find(current);
      if (up == parent_of.end()) break;
      if (up->second == getpid()) {
        leftovers.push_back(process.pid);
        break;
      }
      current = up->second;
    }
  }
  return leftovers;
}

std::vector<pid_t> processes_with_uid(uid_t uid) {
  std::vector<pid_t> found;
  for (const auto& process : host_processes()) {
    if (process.uid == uid) found.push_back(process.pid);
  }
  return found;
}

void check_pool_still_works(Pool& pool) {
  const Result result = pool.run("print(sum(range(10)))\n");
  CHECK_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text == "45\n");
  CHECK(result.attempts == 1);
  CHECK(leftover_processes().empty());
}

}  // namespace quanteval::sandbox::testing
