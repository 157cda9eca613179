// The pool itself: configuration errors, retries after infrastructure
// failures, run_all, concurrency, and what it says about its protections.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/sandbox/sandbox_test_support.hpp"

using namespace quanteval::sandbox;
using namespace quanteval::sandbox::testing;

TEST_CASE("a Python that does not exist is a SandboxError at construction, naming the path") {
  Config config = test_config(1);
  config.python = "/nonexistent/python3";
  try {
    Pool pool(config);
    FAIL("Pool construction should have thrown");
  } catch (const SandboxError& error) {
    CHECK(std::string(error.what()).find("/nonexistent/python3") != std::string::npos);
  }
  config.python = "no-such-python-anywhere";
  CHECK_THROWS_AS(Pool{config}, SandboxError);
}

TEST_CASE("an interpreter that cannot run the worker is a SandboxError at construction") {
  Config config = test_config(1);
  config.python = "/bin/false";
  CHECK_THROWS_AS(Pool{config}, SandboxError);
}

TEST_CASE("invalid limits are refused") {
  Config config = test_config(1);
  config.workers = 0;
  CHECK_THROWS_AS(Pool{config}, SandboxError);
  Limits limits;
  limits.wall_seconds = 0;
  CHECK_THROWS_AS(shared_pool().run("pass\n", &limits), SandboxError);
}

TEST_CASE("the protections are reported, and on a root machine all of them are on") {
  const Protections& p = shared_pool().protections();
  const auto active = p.active();
  CHECK(std::find(active.begin(), active.end(), "rlimits") != active.end());
  if (geteuid() == 0) {
    CHECK(p.pid_namespace);
    CHECK(p.mount_namespace);
    CHECK(p.network_namespace);
    CHECK(p.ipc_namespace);
    CHECK(p.uts_namespace);
    CHECK(p.distinct_uid);
    CHECK(p.readonly_filesystem);
    CHECK(p.seccomp);
    CHECK_FALSE(p.user_namespace);
  } else {
    MESSAGE("not root: active protections = ", fmt::format("{}", fmt::join(active, ", ")));
    for (const auto& note : p.notes) MESSAGE("note: ", note);
  }
}

TEST_CASE("require_isolation starts when every namespace is available") {
  Config config = test_config(1);
  config.require_isolation = true;
  if (shared_pool().protections().pid_namespace && shared_pool().protections().network_namespace) {
    Pool pool(config);
    check_pool_still_works(pool);
  }
}

TEST_CASE("each worker runs as its own uid") {
  Pool& pool = shared_pool();
  if (!pool.protections().distinct_uid) return;
  std::set<std::string> uids;
  const auto results = pool.run_all(std::vector<std::string>(
      6, "import os, time\ntime.sleep(0.2)\nprint(os.getuid(), os.getgid(), os.getgroups())\n"));
  for (const auto& result : results) {
    REQUIRE(result.outcome == Outcome::completed);
    uids.insert(result.stdout_text);
  }
  CHECK(uids.size() == 2);
  for (const auto& line : uids) CHECK(line.find(" []") != std::string::npos);  // no supplementary groups
}

TEST_CASE("two pools side by side never share a worker uid") {
  if (!shared_pool().protections().distinct_uid) return;
  Pool second(test_config(2));
  auto uids_of = [](Pool& pool) {
    std::set<std::string> uids;
    for (const auto& r :
         pool.run_all(std::vector<std::string>(6, "import os, time\ntime.sleep(0.2)\nprint(os.getuid())\n")))
      uids.insert(r.stdout_text);
    return uids;
  };
  const auto first_uids = uids_of(shared_pool());
  const auto second_uids = uids_of(second);
  CHECK(first_uids.size() == 2);
  CHECK(second_uids.size() == 2);
  for (const auto& uid : second_uids) CHECK(first_uids.count(uid) == 0);
}

// Runs a 1 s program on `pool` (one worker) and kills that worker's zygote
// from outside 0.3 s in; returns the result and the killed zygote.
std::pair<Result, pid_t> run_killing_the_zygote(Pool& pool, const std::vector<pid_t>& others) {
  std::vector<pid_t> zygotes;
  for (pid_t pid : worker_processes()) {
    if (std::find(others.begin(), others.end(), pid) == others.end()) zygotes.push_back(pid);
  }
  REQUIRE(zygotes.size() == 1);
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill(zygotes.front(), SIGKILL);
  });
  const Result result = pool.run("import time\ntime.sleep(1.0)\nprint('done')\n");
  killer.join();
  return {result, zygotes.front()};
}

TEST_CASE("a worker killed from outside mid-program is replaced and the program retried") {
  Config config = test_config(1);
  const auto others = worker_processes();  // the shared pool's workers
  Pool pool(config);
  const auto [result, zygote] = run_killing_the_zygote(pool, others);
  CHECK_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text == "done\n");
  CHECK(result.attempts == 2);
  const auto now = worker_processes();
  CHECK(std::find(now.begin(), now.end(), zygote) == now.end());  // replaced
  check_pool_still_works(pool);
}

TEST_CASE("when every attempt fails the result is sandbox_error, never a program failure") {
  Config config = test_config(1);
  config.max_attempts = 1;
  const auto others = worker_processes();  // the shared pool's workers
  Pool pool(config);
  const auto [result, zygote] = run_killing_the_zygote(pool, others);
  CHECK(result.outcome == Outcome::sandbox_error);
  CHECK(result.attempts == 1);
  CHECK(result.detail.find("sandbox error") != std::string::npos);
  check_pool_still_works(pool);  // the next program gets a fresh worker
}

TEST_CASE("run_all returns results in input order and calls back once per program") {
  Pool& pool = shared_pool();
  std::vector<std::string> sources;
  for (int i = 0; i < 24; ++i)
    sources.push_back(fmt::format("import time\ntime.sleep({})\nprint({} * {})\n", (i % 3) * 0.02, i, i));
  std::vector<int> calls(sources.size(), 0);
  const auto results = pool.run_all(sources, [&](std::size_t index, const Result& result) {
    REQUIRE(index < calls.size());
    ++calls[index];
    CHECK(result.stdout_text == fmt::format("{}\n", index * index));
  });
  REQUIRE(results.size() == sources.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    CHECK(results[i].outcome == Outcome::completed);
    CHECK(results[i].stdout_text == fmt::format("{}\n", i * i));
    CHECK(calls[i] == 1);
  }
  CHECK(pool.run_all({}).empty());
}

TEST_CASE("run() is safe from several threads at once") {
  Pool& pool = shared_pool();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        const Result result = pool.run(fmt::format("print('{}-{}')\n", t, i));
        if (result.outcome != Outcome::completed || result.stdout_text != fmt::format("{}-{}\n", t, i)) ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(wrong == 0);
  CHECK(leftover_processes().empty());
}

TEST_CASE("the pool's workers go away with it") {
  const auto before = worker_processes().size();
  {
    Pool pool(test_config(2));
    CHECK(worker_processes().size() == before + 2);
  }
  CHECK(worker_processes().size() == before);
}
