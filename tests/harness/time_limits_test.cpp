// Per-program time limits: openai/human-eval's flat limit, evalplus's rule derived
// from the canonical solutions' times on this machine (measured once, cached), and
// --timeout overriding both.
#include <doctest/doctest.h>

#include <cstdlib>

#include "datasets/datasets.hpp"
#include "harness/execution/time_limits.hpp"
#include "tests/harness/sandbox_pool.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval;
using harness::choose_time_limits;
using harness::TimeLimitRequest;

namespace {

// Two tasks: a canonical solution that takes ~0.4 s, and one that fails.
datasets::Dataset tiny_dataset(const datasets::Manifest& manifest) {
  datasets::Dataset d;
  d.name = "tiny";
  d.sha256 = "tiny-test-dataset";
  d.manifest = &manifest;
  d.problems.push_back({"Tiny/0", "def slow():\n", "    import time\n    time.sleep(0.4)\n    return 1\n",
                        "def check(f):\n    assert f() == 1\n", "slow"});
  d.problems.push_back(
      {"Tiny/1", "def broken():\n", "    return 2\n", "def check(f):\n    assert f() == 1\n", "broken"});
  return d;
}

}  // namespace

TEST_CASE("calibrated limits come from the canonical times, are cached, and --timeout overrides them") {
  test::TempDir cache;
  ::setenv("QUANTEVAL_CACHE_DIR", cache.path().c_str(), 1);
  datasets::Manifest manifest;
  manifest.name = "tiny";
  manifest.default_timeout_seconds = 20.0;
  manifest.time_limit = {true, 4.0, 0.5};
  const auto dataset = tiny_dataset(manifest);
  sandbox::Pool pool(test::test_pool_config());
  TimeLimitRequest request;
  request.progress = false;

  const auto measured = choose_time_limits(dataset, pool, request);
  REQUIRE(measured.calibration);
  CHECK_FALSE(measured.calibration->from_cache);
  REQUIRE(measured.calibration->canonical_seconds.count("Tiny/0") == 1);
  const double canonical = measured.calibration->canonical_seconds.at("Tiny/0");
  CHECK(canonical >= 0.4);
  // 4 x the measured time (>= 1.6 s), above the 0.5 s minimum.
  CHECK(measured.for_task("Tiny/0") == doctest::Approx(4.0 * canonical));
  // The failing canonical solution says nothing about a correct program's time: default limit, with a note.
  CHECK(measured.for_task("Tiny/1") == 20.0);
  REQUIRE(measured.calibration->notes.size() == 1);
  CHECK(measured.calibration->notes[0].find("Tiny/1") != std::string::npos);
  CHECK(measured.to_json()["per_task_seconds"]["Tiny/0"].get<double>() > 1.5);

  const auto cached = choose_time_limits(dataset, pool, request);
  REQUIRE(cached.calibration);
  CHECK(cached.calibration->from_cache);
  CHECK(cached.for_task("Tiny/0") == measured.for_task("Tiny/0"));

  request.recalibrate = true;
  CHECK_FALSE(choose_time_limits(dataset, pool, request).calibration->from_cache);

  request.timeout_override = 7.5;
  const auto flat = choose_time_limits(dataset, pool, request);
  CHECK_FALSE(flat.calibration);
  CHECK(flat.for_task("Tiny/0") == 7.5);
  CHECK(flat.rule.find("--timeout") != std::string::npos);
  ::unsetenv("QUANTEVAL_CACHE_DIR");
}

TEST_CASE("HumanEval keeps openai/human-eval's flat 3 s limit") {
  const auto humaneval = datasets::load(test::dataset_file("humaneval").string());
  sandbox::Pool pool(test::test_pool_config());
  const auto limits = choose_time_limits(humaneval, pool, {});
  CHECK_FALSE(limits.calibration);
  CHECK(limits.for_task("HumanEval/0") == 3.0);
  CHECK(limits.per_task.empty());
}
