// Statistics and report writers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include "reports/summary/score_report.hpp"
#include "reports/summary/statistics.hpp"

namespace rp = quanteval::reports;

namespace {

// Exact binomial coefficient for small arguments (independent of the
// estimator's running-product form).
double choose(std::int64_t n, std::int64_t k) {
  if (k < 0 || k > n) return 0.0;
  double r = 1.0;
  for (std::int64_t i = 1; i <= k; ++i) r = r * static_cast<double>(n - k + i) / static_cast<double>(i);
  return r;
}

}  // namespace

TEST_CASE("pass@k equals 1 - C(n-c,k)/C(n,k) on a grid of small cases") {
  for (std::int64_t n = 1; n <= 30; ++n)
    for (std::int64_t c = 0; c <= n; ++c)
      for (std::int64_t k = 1; k <= n; ++k) {
        const double expected = 1.0 - choose(n - c, k) / choose(n, k);
        CHECK(rp::pass_at_k(n, c, k) == doctest::Approx(expected).epsilon(1e-12));
      }
}

TEST_CASE("pass@k edge cases and invalid input") {
  CHECK(rp::pass_at_k(1, 1, 1) == 1.0);
  CHECK(rp::pass_at_k(1, 0, 1) == 0.0);
  CHECK(rp::pass_at_k(200, 1, 1) == doctest::Approx(1.0 / 200));
  CHECK(rp::pass_at_k(200, 0, 100) == 0.0);
  CHECK(rp::pass_at_k(200, 101, 100) == 1.0);  // fewer than k failures: some k-subset always passes
  CHECK_THROWS_AS(rp::pass_at_k(5, 6, 1), std::invalid_argument);
  CHECK_THROWS_AS(rp::pass_at_k(5, 1, 6), std::invalid_argument);
  CHECK_THROWS_AS(rp::pass_at_k(0, 0, 1), std::invalid_argument);
}

TEST_CASE("Wilson interval matches textbook values") {
  // 0/10: upper bound z^2/(n+z^2) = 3.8415/13.8415.
  const auto zero = rp::wilson_interval(0, 10);
  CHECK(zero.low == doctest::Approx(0.0));
  CHECK(zero.high == doctest::Approx(3.841458820694124 / 13.841458820694124).epsilon(1e-9));
  // 5/10: symmetric around 0.5, known value 0.2366 - 0.7634.
  const auto half = rp::wilson_interval(5, 10);
  CHECK(half.low == doctest::Approx(0.2366).epsilon(1e-3));
  CHECK(half.high == doctest::Approx(0.7634).epsilon(1e-3));
  // 129/164 (the model card's thinking-mode count) lies inside its interval.
  const auto card = rp::wilson_interval(129, 164);
  CHECK(card.low < 129.0 / 164);
  CHECK(card.high > 129.0 / 164);
}

TEST_CASE("summary excludes sandbox errors and offers only k <= min samples") {
  std::vector<rp::SampleVerdict> v;
  auto add = [&](const char* task, int index, rp::Status s) { v.push_back({task, index, s, 0.1, "", 1}); };
  for (int i = 0; i < 10; ++i) add("A", i, i < 3 ? rp::Status::passed : rp::Status::failed);
  for (int i = 0; i < 10; ++i) add("B", i, rp::Status::timeout);
  add("B", 10, rp::Status::sandbox_error);
  const auto s = rp::summarize(v);
  CHECK(s.samples == 21);
  CHECK(s.scored_samples == 20);
  CHECK(s.tasks.at("B").samples == 10);
  CHECK(s.min_samples_per_task == 10);
  REQUIRE(s.pass_at_k.count(1) == 1);
  REQUIRE(s.pass_at_k.count(10) == 1);
  CHECK(s.pass_at_k.count(100) == 0);
  CHECK(s.pass_at_k.at(1) == doctest::Approx((0.3 + 0.0) / 2));
  CHECK(s.pass_at_k.at(10) == doctest::Approx((1.0 + 0.0) / 2));
  CHECK(s.counts.at(rp::Status::sandbox_error) == 1);
  CHECK(s.counts.at(rp::Status::timeout) == 10);
  CHECK(s.counts.at(rp::Status::oom) == 0);
}

TEST_CASE("report JSON and Markdown carry the numbers") {
  rp::ScoreReport r;
  r.tool_version = "9.9.9";
  r.samples_file = "s.jsonl";
  r.dataset = {"humaneval", "/d/HumanEval.jsonl.gz", "b796127e", true, 164, {"a note"}};
  r.sandbox.protections = {"pid-namespace"};
  r.verdicts = {{"HumanEval/0", 0, rp::Status::passed, 0.01, "check() returned", 1},
                {"HumanEval/1", 0, rp::Status::failed, 0.02, "AssertionError: x|y", 1}};
  r.wall_seconds = 2.0;
  const auto s = rp::summarize(r.verdicts);
  const auto j = rp::to_json(r, s);
  CHECK(j["pass_at_k"]["pass@1"].get<double>() == doctest::Approx(0.5));
  CHECK(j["status_counts"]["failed"].get<int>() == 1);
  CHECK(j["dataset"]["sha256"] == "b796127e");
  CHECK(j["sandbox"]["protections"][0] == "pid-namespace");
  CHECK(j["tool"]["version"] == "9.9.9");
  const auto line = rp::to_json(r.verdicts[1]);
  CHECK(line["passed"] == false);
  CHECK(line["status"] == "failed");
  const std::string md = rp::to_markdown(r, s);
  CHECK(md.find("| pass@1 | 50.00% |") != std::string::npos);
  CHECK(md.find("AssertionError: x\\|y") != std::string::npos);  // table cell escaped
  CHECK(md.find("a note") != std::string::npos);
}
