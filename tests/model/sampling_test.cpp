// Sampling filters on hand-made distributions whose answers are worked out by
// hand in the comments.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <vector>

#include "runtime/generate/sampling.hpp"

using namespace quanteval::runtime;

namespace {

// Logits whose softmax (temperature 1) is exactly `probabilities`.
std::vector<float> logits_of(const std::vector<double>& probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

std::map<TokenId, float> as_map(const std::vector<Candidate>& candidates) {
  std::map<TokenId, float> out;
  for (const auto& c : candidates) out[c.id] = c.probability;
  return out;
}

const std::vector<double> kProbabilities = {0.05, 0.4, 0.1, 0.3, 0.15};  // ids 0..4; order 1, 3, 4, 2, 0

}  // namespace

TEST_CASE("greedy is the argmax, first index on ties") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  SamplingRng rng(1);
  CHECK(argmax_token(logits) == 1);
  CHECK(sample_token(logits, {}, rng) == 1);
}

TEST_CASE("temperature 1 without filters keeps the softmax") {
  const auto d = as_map(sampling_distribution(logits_of(kProbabilities), {.temperature = 1}));
  REQUIRE(d.size() == 5);
  for (TokenId i = 0; i < 5; ++i)
    CHECK(d.at(i) == doctest::Approx(kProbabilities[static_cast<std::size_t>(i)]).epsilon(1e-6));
}

TEST_CASE("temperature 2 flattens: p_i proportional to sqrt(p_i)") {
  const auto d = as_map(sampling_distribution(logits_of(kProbabilities), {.temperature = 2}));
  double total = 0;
  for (double p : kProbabilities) total += std::sqrt(p);
  for (TokenId i = 0; i < 5; ++i)
    CHECK(d.at(i) == doctest::Approx(std::sqrt(kProbabilities[static_cast<std::size_t>(i)]) / total).epsilon(1e-5));
}

TEST_CASE("top-k keeps the k most likely, renormalized") {
  const auto d = as_map(sampling_distribution(logits_of(kProbabilities), {.temperature = 1, .top_k = 2}));
  REQUIRE(d.size() == 2);
  CHECK(d.at(1) == doctest::Approx(0.4 / 0.7).epsilon(1e-6));
  CHECK(d.at(3) == doctest::Approx(0.3 / 0.7).epsilon(1e-6));
}

TEST_CASE("top-p keeps the smallest head reaching p") {
  // Sorted: 0.4, 0.3, 0.15, 0.1, 0.05; cumulative 0.4, 0.7, 0.85, 0.95, 1.0.
  SUBCASE("p = 0.7 stops exactly at the second token") {
    const auto d = as_map(sampling_distribution(logits_of(kProbabilities), {.temperature = 1, .top_p = 0.69f}));
    CHECK(d.size() == 2);
  }
  SUBCASE("p = 0.8 needs a third token") {
    const auto d = as_map(sampling_distribution(logits_of(kProbabilities), {.temperature = 1, .top_p = 0.8f}));
    REQUIRE(d.size() == 3);
    CHECK(d.at(4) == doctest::Approx(0.15 / 0.85).epsilon(1e-5));
  }
  SUBCASE("a tiny p keeps the single most likely token") {
    const auto d = as_map(sampling_distribution(logits_of(kProbabilities), {.temperature = 1, .top_p = 0.01f}));
    REQUIRE(d.size() == 1);
    CHECK(d.count(1) == 1);
  }
  SUBCASE("a large vocabulary with a long tail: the threshold shortcut gives the exact nucleus") {
    // 2 tokens at 0.3 and 200000 sharing 0.4: p = 0.9 needs 0.3 of the tail = 150000 tail tokens.
    std::vector<double> probabilities(200002, 0.4 / 200000);
    probabilities[7] = 0.3;
    probabilities[100] = 0.3;
    const auto d = sampling_distribution(logits_of(probabilities), {.temperature = 1, .top_p = 0.9f});
    CHECK(std::abs(static_cast<double>(d.size()) - 150002.0) <= 2.0);  // float rounding of the cumulative sum
    CHECK(((d[0].id == 7 && d[1].id == 100)));
  }
}

TEST_CASE("min-p drops tokens below min_p x the top probability") {
  // Top is 0.4; min_p 0.3 -> threshold 0.12: keeps 0.4, 0.3, 0.15.
  const auto d = as_map(sampling_distribution(logits_of(kProbabilities), {.temperature = 1, .min_p = 0.3f}));
  REQUIRE(d.size() == 3);
  CHECK(d.at(4) == doctest::Approx(0.15 / 0.85).epsilon(1e-5));
  CHECK(d.count(2) == 0);
}

TEST_CASE("filters compose in order top-k, top-p, min-p") {
  // top_k 4 -> {0.4, 0.3, 0.15, 0.1}/0.95; top_p 0.9 -> cumulative .421 .737 .895 .999: keeps 4;
  // min_p 0.5 -> threshold 0.5 x 0.421: keeps 0.4 and 0.3 only.
  const auto d = as_map(
      sampling_distribution(logits_of(kProbabilities), {.temperature = 1, .top_k = 4, .top_p = 0.9f, .min_p = 0.5f}));
  REQUIRE(d.size() == 2);
  CHECK(d.at(1) == doctest::Approx(0.4 / 0.7).epsilon(1e-5));
}

TEST_CASE("draws follow the distribution and a seed fixes them") {
  const std::vector<float> logits = logits_of(kProbabilities);
  const SamplingParams params{.temperature = 1, .seed = 3};
  SamplingRng a(3), b(3), c(4);
  std::vector<TokenId> first, second, third;
  std::map<TokenId, int> counts;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    first.push_back(sample_token(logits, params, a));
    second.push_back(sample_token(logits, params, b));
    third.push_back(sample_token(logits, params, c));
    ++counts[first.back()];
  }
  CHECK(first == second);
  CHECK(first != third);
  // Each frequency is binomial: standard deviation sqrt(p (1 - p) / draws); allow 5 of them.
  for (TokenId i = 0; i < 5; ++i) {
    const double p = kProbabilities[static_cast<std::size_t>(i)];
    CHECK(std::abs(static_cast<double>(counts[i]) / draws - p) <= 5 * std::sqrt(p * (1 - p) / draws));
  }
}

TEST_CASE("invalid parameters are refused naming the field") {
  const std::vector<float> logits = {1, 2};
  CHECK_THROWS_WITH_AS(sampling_distribution(logits, {.temperature = -1}), doctest::Contains("temperature"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sampling_distribution(logits, {.temperature = 1, .top_k = -2}), doctest::Contains("top_k"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sampling_distribution(logits, {.temperature = 1, .top_p = 1.5f}), doctest::Contains("top_p"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sampling_distribution(logits, {.temperature = 1, .min_p = -0.1f}), doctest::Contains("min_p"),
                       std::invalid_argument);
}
