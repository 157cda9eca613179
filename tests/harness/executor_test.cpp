// The one executor of check programs: a fixed list (score, selftest) and a
// stream fed while other jobs run (run), per-job time limits, one callback at a
// time, and a failure that stops it.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>

#include "harness/execution/executor.hpp"
#include "tests/harness/sandbox_pool.hpp"

using namespace quanteval::harness;
using quanteval::reports::SampleVerdict;
using quanteval::reports::Status;

namespace {

// The pool's default limit is long; the jobs below that need a short one set their own.
quanteval::sandbox::Config pool_config(int workers = 2) {
  quanteval::sandbox::Config config = quanteval::test::test_pool_config(workers);
  config.limits.wall_seconds = 20;
  return config;
}

}  // namespace

TEST_CASE("run_jobs: verdicts in input order, each job under its own time limit") {
  quanteval::sandbox::Pool pool(pool_config());
  const std::vector<ProgramJob> jobs = {
      {"T/0", 0, "assert 1 + 1 == 2\n", 20},
      // An endless loop under a short limit of its own; under the pool's 20 s it would still be running.
      {"T/1", 0, "while True:\n    pass\n", 0.5},
      {"T/2", 3, "assert False, 'wrong'\n", 20},
      {"T/3", 0, "raise ValueError('boom')\n", 0},  // 0: the pool's limit
  };
  std::vector<std::size_t> delivered;
  const auto verdicts =
      run_jobs(pool, jobs, [&](std::size_t index, const SampleVerdict&) { delivered.push_back(index); });
  REQUIRE(verdicts.size() == 4);
  CHECK(verdicts[0].status == Status::passed);
  CHECK(verdicts[1].status == Status::timeout);
  CHECK(verdicts[1].time_limit_seconds == doctest::Approx(0.5));
  CHECK(verdicts[2].status == Status::failed);
  CHECK(verdicts[2].task_id == "T/2");
  CHECK(verdicts[2].sample_index == 3);
  CHECK(verdicts[3].status == Status::error);
  CHECK(verdicts[3].time_limit_seconds == doctest::Approx(20));
  CHECK(std::set<std::size_t>(delivered.begin(), delivered.end()) == std::set<std::size_t>{0, 1, 2, 3});
  CHECK(delivered.size() == 4);
}

TEST_CASE("Executor: jobs submitted from another thread while others run, each delivered once, one at a time") {
  quanteval::sandbox::Pool pool(pool_config());
  std::atomic<int> in_callback{0}, most_in_callback{0};
  std::multiset<std::size_t> seen;
  std::vector<SampleVerdict> verdicts(12);
  {
    Executor executor(pool, [&](std::size_t index, const SampleVerdict& verdict) {
      const int now = ++in_callback;
      most_in_callback = std::max(most_in_callback.load(), now);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // widen the window two callbacks could overlap in
      seen.insert(index);
      verdicts[index] = verdict;
      --in_callback;
    });
    executor.submit({"S/0", 0, "pass\n", 20, "standard"});
    std::thread producer([&] {
      for (int i = 1; i < 12; ++i)
        executor.submit({"S/" + std::to_string(i), 0, i % 2 ? "pass\n" : "assert False\n", 20, "thinking"});
    });
    producer.join();
    executor.finish();
  }
  CHECK(seen.size() == 12);
  CHECK(std::set<std::size_t>(seen.begin(), seen.end()).size() == 12);
  CHECK(most_in_callback.load() == 1);
  CHECK(verdicts[0].mode == "standard");
  CHECK(verdicts[0].status == Status::passed);
  CHECK(verdicts[3].mode == "thinking");
  CHECK(verdicts[3].status == Status::passed);
  CHECK(verdicts[4].task_id == "S/4");
  CHECK(verdicts[4].status == Status::failed);
}

TEST_CASE("Executor: after a failure no new job starts, submit and finish rethrow it") {
  // One worker: the jobs queued behind the failing one cannot start before its failure is recorded.
  quanteval::sandbox::Pool pool(pool_config(1));
  std::atomic<int> delivered{0};
  Executor executor(pool, [&](std::size_t, const SampleVerdict&) {
    ++delivered;
    throw std::runtime_error("results.jsonl: disk full");
  });
  executor.submit({"F/0", 0, "pass\n", 20});
  executor.submit({"F/1", 0, "pass\n", 20});
  executor.submit({"F/2", 0, "pass\n", 20});
  // Once the worker has recorded the failure, submit refuses with it (no time limit of our own: ctest's applies).
  bool refused = false;
  while (!refused) {
    try {
      executor.submit({"F/more", 0, "pass\n", 20});
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("disk full") != std::string::npos);
      refused = true;
    }
  }
  CHECK_THROWS_WITH_AS(executor.finish(), doctest::Contains("disk full"), std::runtime_error);
  // F/1, F/2 and the later ones were dropped, never run.
  CHECK(delivered.load() == 1);
}
