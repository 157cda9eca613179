// The divergence statistics (reports/divergence): per-position KL, top-1 and Δp
// on cases with closed forms, numerical stability, and the aggregates (region
// split, per-task rows, the task bootstrap). Agreement with KL computed in
// Python from transformers logits is tests/harness/divergence_fixture_test.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "reports/divergence/divergence.hpp"

using namespace quanteval::reports;

namespace {

PositionDivergence at(const std::vector<float>& a, const std::vector<float>& b, std::int64_t next) {
  return position_divergence(a, b, next);
}

}  // namespace

TEST_CASE("KL of identical distributions is zero, with the same top-1 and no change in p") {
  const std::vector<float> row = {0.3f, -1.5f, 2.0f, 0.0f, 7.25f, -3.0f};
  for (std::int64_t next = 0; next < 6; ++next) {
    const PositionDivergence d = at(row, row, next);
    CHECK(d.kl == 0.0);
    CHECK(d.same_top1);
    CHECK(d.delta_p == 0.0);
  }
}

TEST_CASE("KL, top-1 and delta p on two-token distributions with closed forms") {
  // A = (1/2, 1/2), B = (3/4, 1/4): KL(B||A) = 3/4 ln(3/2) + 1/4 ln(1/2).
  const std::vector<float> a = {0.0f, 0.0f};
  const std::vector<float> b = {static_cast<float>(std::log(3.0)), 0.0f};
  const double p_b0 = 3.0 / (3.0 + 1.0);  // from the float logit: exp(float(ln 3)) / (exp(float(ln 3)) + 1)
  const double exact = 0.75 * std::log(1.5) + 0.25 * std::log(0.5);
  const PositionDivergence d0 = at(a, b, 0);
  CHECK(d0.kl == doctest::Approx(exact).epsilon(1e-6));  // float(ln 3) is ln 3 to 6e-8 relative
  CHECK(d0.delta_p == doctest::Approx(0.5 - p_b0).epsilon(1e-6));
  CHECK(at(a, b, 1).delta_p == doctest::Approx(0.5 - 0.25).epsilon(1e-6));
  CHECK(d0.same_top1);  // ties pick the lowest index: argmax A = 0 = argmax B

  // The direction matters: KL(A||B) = 1/2 ln(2/3) + 1/2 ln 2 differs.
  const double reverse = 0.5 * std::log(0.5 / 0.75) + 0.5 * std::log(0.5 / 0.25);
  CHECK(at(b, a, 0).kl == doctest::Approx(reverse).epsilon(1e-6));
  CHECK(reverse != doctest::Approx(exact));

  // Different argmax.
  const std::vector<float> c = {0.0f, 1.0f};
  CHECK_FALSE(at(b, c, 0).same_top1);
  CHECK(at(b, c, 0).top1_a == 0);
  CHECK(at(b, c, 0).top1_b == 1);
}

TEST_CASE("KL is computed stably: shifted and extreme logits") {
  // Adding a constant to a row leaves its distribution unchanged; naive float
  // exp(1000) would overflow.
  const std::vector<float> a = {1.0f, 2.0f, 3.0f}, b = {3.0f, 1.0f, 0.5f};
  std::vector<float> a_shift = a, b_shift = b;
  for (float& v : a_shift) v += 1000.0f;
  for (float& v : b_shift) v -= 500.0f;
  const double kl = at(a, b, 2).kl;
  CHECK(kl > 0.1);
  CHECK(at(a_shift, b_shift, 2).kl == doctest::Approx(kl).epsilon(1e-5));  // float(1000 + x) rounds x to 6e-5

  // A token B believes in that A gives exp(-1e4): KL ~ 1e4 * p_B, finite.
  const std::vector<float> sure = {0.0f, -1e4f}, doubtful = {0.0f, 0.0f};
  const PositionDivergence d = at(sure, doubtful, 1);
  CHECK(std::isfinite(d.kl));
  CHECK(d.kl == doctest::Approx(0.5 * 1e4 + 0.5 * std::log(0.5) + 0.5 * std::log(0.5)).epsilon(1e-6));
  CHECK(d.delta_p == doctest::Approx(-0.5));
}

TEST_CASE("a last position without a next token has KL and top-1 but no delta p") {
  const std::vector<float> a = {0.0f, 0.0f}, b = {static_cast<float>(std::log(3.0)), 0.0f};
  const PositionDivergence d = at(a, b, kNoNextToken);
  CHECK_FALSE(d.has_next);
  CHECK(d.kl == doctest::Approx(at(a, b, 0).kl));
  CHECK(d.delta_p == 0.0);
  CHECK(at(a, b, 1).has_next);
  // Statistics: Δp over the positions that have a next token only.
  const std::vector<PositionDivergence> p = {{0.1, true, -0.5}, {0.3, true, 0.5}, d};
  const std::vector<std::size_t> task = {0, 0, 0};
  const DivergenceStats s = divergence_stats(p, task, {});
  CHECK(s.positions == 3);
  CHECK(s.mean_delta_p == doctest::Approx(0.0));
  CHECK(s.delta_p_quantiles.front() == doctest::Approx(-0.49));  // p1 of {-0.5, 0.5}
  const DivergenceStats none = divergence_stats(std::vector<PositionDivergence>{d}, std::vector<std::size_t>{0}, {});
  CHECK(none.delta_p_quantiles.empty());
  ScoredSequence only_last;
  only_last.source = "ids";
  only_last.task_id = "x";
  only_last.positions = {d};
  only_last.regions = {Region::prompt};
  CHECK(to_markdown(summarize_divergence({only_last}, {})).find("| —") != std::string::npos);
  CHECK(positions_json(only_last).at("delta_p")[0].is_null());
}

TEST_CASE("position divergence refuses malformed input") {
  const std::vector<float> a = {0.0f, 1.0f}, b3 = {0.0f, 1.0f, 2.0f}, nan = {0.0f, NAN};
  CHECK_THROWS_AS(at(a, b3, 0), std::invalid_argument);
  CHECK_THROWS_AS(at(a, a, 2), std::invalid_argument);
  CHECK_THROWS_AS(at(a, a, -2), std::invalid_argument);
  CHECK_THROWS_AS(at(a, nan, 0), std::invalid_argument);
  std::vector<PositionDivergence> out;
  const std::vector<std::int64_t> next = {0, 1};
  CHECK_THROWS_AS(append_position_divergences(a, a, 2, next, out), std::invalid_argument);  // 1 row, 2 ids
}

TEST_CASE("chunk rows are scored like single rows") {
  const std::vector<float> a = {0.0f, 1.0f, 2.0f, 5.0f, 0.0f, -1.0f}, b = {1.0f, 1.0f, 0.0f, 4.0f, 1.0f, -2.0f};
  const std::vector<std::int64_t> next = {2, 0};
  std::vector<PositionDivergence> out;
  append_position_divergences(a, b, 3, next, out);
  REQUIRE(out.size() == 2);
  for (std::size_t r = 0; r < 2; ++r) {
    const std::vector<float> ra(a.begin() + 3 * r, a.begin() + 3 * r + 3), rb(b.begin() + 3 * r, b.begin() + 3 * r + 3);
    const PositionDivergence d = at(ra, rb, next[r]);
    CHECK(out[r].kl == d.kl);
    CHECK(out[r].delta_p == d.delta_p);
    CHECK(out[r].same_top1 == d.same_top1);
  }
}

namespace {

PositionDivergence pos(double kl, bool same = true, double delta_p = 0.0) { return {kl, same, delta_p}; }

}  // namespace

TEST_CASE("statistics of positions: mean, order statistics, same top-1, delta p quantiles") {
  std::vector<PositionDivergence> p;
  std::vector<std::size_t> task;
  for (int i = 0; i <= 100; ++i) {  // KL 0, 0.01, ..., 1.00; delta p -0.5 .. 0.5
    p.push_back(pos(i / 100.0, i % 4 != 0, (i - 50) / 100.0));
    task.push_back(static_cast<std::size_t>(i % 10));
  }
  const DivergenceStats s = divergence_stats(p, task, {});
  CHECK(s.positions == 101);
  CHECK(s.tasks == 10);
  CHECK(s.mean_kl == doctest::Approx(0.5));
  CHECK(s.median_kl == doctest::Approx(0.5));
  CHECK(s.p90_kl == doctest::Approx(0.9));
  CHECK(s.p99_kl == doctest::Approx(0.99));
  CHECK(s.max_kl == doctest::Approx(1.0));
  CHECK(s.same_top1 == doctest::Approx(75.0 / 101.0));  // i % 4 == 0 for 26 of 0..100
  REQUIRE(s.delta_p_quantiles.size() == std::size(kDeltaPQuantiles));
  CHECK(s.delta_p_quantiles[0] == doctest::Approx(-0.49));  // p1
  CHECK(s.delta_p_quantiles[3] == doctest::Approx(0.0));    // median
  CHECK(s.delta_p_quantiles[6] == doctest::Approx(0.49));   // p99
  CHECK(s.mean_kl_ci.low <= s.mean_kl);
  CHECK(s.mean_kl_ci.high >= s.mean_kl);
  CHECK(s.mean_kl_ci.low < s.mean_kl_ci.high);
  CHECK_THROWS_AS(divergence_stats({}, {}, {}), std::invalid_argument);
}

TEST_CASE("the bootstrap resamples tasks: seeded, contains the mean, collapses to the mean for one task") {
  // Ten tasks whose mean KL differs a lot (task t: 30 positions of KL t), so the
  // interval is wide; tokens within a task are identical, so resampling tokens
  // would give a much narrower interval than resampling tasks.
  std::vector<PositionDivergence> p;
  std::vector<std::size_t> task;
  for (std::size_t t = 0; t < 10; ++t)
    for (int i = 0; i < 30; ++i) {
      p.push_back(pos(static_cast<double>(t)));
      task.push_back(t);
    }
  const DivergenceStats s = divergence_stats(p, task, {.bootstrap_resamples = 2000, .seed = 7});
  CHECK(s.mean_kl == doctest::Approx(4.5));
  CHECK(s.mean_kl_ci.low < 4.5);
  CHECK(s.mean_kl_ci.high > 4.5);
  // Standard error of a mean of 10 task means with sd 2.87: 0.91; the 95%
  // interval is ~±1.8 wide, far from a token bootstrap's ±0.33.
  CHECK(s.mean_kl_ci.high - s.mean_kl_ci.low > 2.5);
  CHECK(s.mean_kl_ci.high - s.mean_kl_ci.low < 4.5);
  const DivergenceStats again = divergence_stats(p, task, {.bootstrap_resamples = 2000, .seed = 7});
  CHECK(again.mean_kl_ci.low == s.mean_kl_ci.low);
  CHECK(again.mean_kl_ci.high == s.mean_kl_ci.high);
  const DivergenceStats other = divergence_stats(p, task, {.bootstrap_resamples = 2000, .seed = 8});
  CHECK(other.mean_kl_ci.low != s.mean_kl_ci.low);

  const std::vector<std::size_t> one_task(p.size(), 0);
  const DivergenceStats single = divergence_stats(p, one_task, {});
  CHECK(single.mean_kl_ci.low == single.mean_kl);
  CHECK(single.mean_kl_ci.high == single.mean_kl);
}

TEST_CASE("summaries split by source, region and task") {
  ScoredSequence canonical;
  canonical.source = "canonical";
  canonical.task_id = "HumanEval/0";
  canonical.positions = {pos(0.1), pos(0.3), pos(1.0, false, -0.2), pos(2.0, false, -0.4)};
  canonical.regions = {Region::prompt, Region::prompt, Region::answer, Region::answer};
  ScoredSequence canonical2;
  canonical2.source = "canonical";
  canonical2.task_id = "HumanEval/1";
  canonical2.positions = {pos(0.0), pos(0.5, true, 0.1)};
  canonical2.regions = {Region::prompt, Region::answer};
  ScoredSequence thinking;
  thinking.source = "thinking";
  thinking.task_id = "HumanEval/0";
  thinking.positions = {pos(0.2), pos(0.4), pos(0.6), pos(0.8)};
  thinking.regions = {Region::prompt, Region::thinking, Region::thinking, Region::answer};

  const DivergenceReport r = summarize_divergence({canonical, thinking, canonical2}, {});
  REQUIRE(r.sources.size() == 2);
  const SourceDivergence& c = r.sources[0];
  CHECK(c.source == "canonical");
  CHECK(c.sequences == 2);
  CHECK(c.all.positions == 6);
  CHECK(c.all.tasks == 2);
  CHECK(c.all.mean_kl == doctest::Approx((0.1 + 0.3 + 1.0 + 2.0 + 0.0 + 0.5) / 6));
  CHECK(c.by_region.count(Region::thinking) == 0);
  CHECK(c.by_region.at(Region::prompt).positions == 3);
  CHECK(c.by_region.at(Region::prompt).mean_kl == doctest::Approx(0.4 / 3));
  CHECK(c.by_region.at(Region::answer).positions == 3);
  CHECK(c.by_region.at(Region::answer).mean_kl == doctest::Approx(3.5 / 3));
  CHECK(c.by_region.at(Region::answer).same_top1 == doctest::Approx(1.0 / 3));
  REQUIRE(c.tasks.size() == 2);
  CHECK(c.tasks[0].task_id == "HumanEval/0");
  CHECK(c.tasks[0].positions == 4);
  CHECK(c.tasks[0].mean_kl == doctest::Approx(3.4 / 4));
  CHECK(c.tasks[0].max_kl == doctest::Approx(2.0));
  CHECK(c.tasks[0].same_top1 == doctest::Approx(0.5));
  CHECK(c.tasks[0].mean_delta_p == doctest::Approx(-0.15));
  CHECK(c.tasks[0].mean_kl_by_region.at(Region::answer) == doctest::Approx(1.5));
  const SourceDivergence& t = r.sources[1];
  CHECK(t.source == "thinking");
  CHECK(t.by_region.at(Region::thinking).positions == 2);
  CHECK(t.by_region.at(Region::thinking).mean_kl == doctest::Approx(0.5));

  // Largest divergences: every position of the source when there are fewer than 20, largest first.
  REQUIRE(c.worst.size() == 6);
  CHECK(c.worst[0].divergence.kl == 2.0);
  CHECK(c.worst[0].task_id == "HumanEval/0");
  CHECK(c.worst[0].position == 3);
  CHECK(c.worst[0].region == Region::answer);
  CHECK(c.worst[0].sequence == 0);
  CHECK(c.worst[1].divergence.kl == 1.0);
  CHECK(c.worst[2].task_id == "HumanEval/1");  // 0.5, from the third input sequence
  CHECK(c.worst[2].sequence == 2);
  for (std::size_t i = 1; i < c.worst.size(); ++i) CHECK(c.worst[i - 1].divergence.kl >= c.worst[i].divergence.kl);
  DivergenceOptions two;
  two.worst_positions = 2;
  CHECK(summarize_divergence({canonical, thinking, canonical2}, two).sources[0].worst.size() == 2);

  const auto json = to_json(r);
  CHECK(json.at("sources")[0].at("worst_positions")[0].at("kl") == 2.0);
  CHECK(json.at("sources").size() == 2);
  CHECK(json.at("sources")[0].at("regions").at("answer").at("positions") == 3);
  CHECK(json.at("sources")[0].at("tasks")[1].at("task_id") == "HumanEval/1");
  const std::string md = to_markdown(r);
  CHECK(md.find("## canonical (2 sequences)") != std::string::npos);
  CHECK(md.find("| thinking | 2 |") != std::string::npos);

  ScoredSequence broken = canonical;
  broken.regions.pop_back();
  CHECK_THROWS_AS(summarize_divergence({broken}, {}), std::invalid_argument);
}
