// The gated delta rule and the causal conv1d on random inputs: the chunked
// (prefill) form against the plain token-by-token recurrence, and state carried
// across calls against a single call.
//
// Tolerance. Everything is fp32 with values of order 1 (unit-norm q and k,
// |v| <= 1, beta < 1, decays <= 1). The two forms sum the same terms in a
// different order: a chunk of L tokens goes through a triangular solve with
// L rows and dot products of length d_k, so the rounding differences grow
// like L * d_k * 2^-24 ~ 64 * 32 * 6e-8 ~ 1e-4 in the worst case and much
// less in practice (errors do not add up coherently). We require
// max |chunked - recurrent| <= 1e-4 (the measured difference is printed).
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/kernels/cpu/delta_rule.hpp"
#include "runtime/model/math.hpp"

namespace {

using namespace quanteval::runtime;

constexpr float kTolerance = 1e-4f;

struct RandomDeltaInputs {
  int tokens, heads, dk, dv;
  std::vector<float> q, k, v, g, beta;

  RandomDeltaInputs(int tokens_, int heads_, int dk_, int dv_, unsigned seed, float min_log_decay = -1.5f)
      : tokens(tokens_), heads(heads_), dk(dk_), dv(dv_) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f), open01(0.02f, 0.98f), log_decay(min_log_decay, 0.0f);
    auto normalized = [&](std::vector<float>& x, float scale) {
      x.resize(static_cast<size_t>(tokens) * heads * dk);
      for (size_t r = 0; r < x.size() / dk; ++r) {
        float sum = 0.0f;
        for (int i = 0; i < dk; ++i) sum += (x[r * dk + i] = unit(rng)) * x[r * dk + i];
        for (int i = 0; i < dk; ++i) x[r * dk + i] *= scale / std::sqrt(sum + 1e-6f);
      }
    };
    normalized(q, 1.0f / std::sqrt(static_cast<float>(dk)));
    normalized(k, 1.0f);
    v.resize(static_cast<size_t>(tokens) * heads * dv);
    for (auto& x : v) x = unit(rng);
    g.resize(static_cast<size_t>(tokens) * heads);
    beta.resize(g.size());
    for (auto& x : g) x = log_decay(rng);
    for (auto& x : beta) x = open01(rng);
  }

  // The slice [first, first + count) of the tokens.
  DeltaRuleInputs view(int first, int count) const {
    const size_t th = static_cast<size_t>(first) * heads;
    return DeltaRuleInputs{q.data() + th * dk,
                           k.data() + th * dk,
                           v.data() + th * dv,
                           g.data() + th,
                           beta.data() + th,
                           count,
                           heads,
                           dk,
                           dv};
  }
  DeltaRuleInputs all() const { return view(0, tokens); }
  size_t state_size() const { return static_cast<size_t>(heads) * dk * dv; }
  size_t out_size() const { return static_cast<size_t>(tokens) * heads * dv; }
};

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(std::isfinite(a[i]));
    REQUIRE(std::isfinite(b[i]));
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  return worst;
}

std::vector<float> random_state(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(-0.5f, 0.5f);
  std::vector<float> s(n);
  for (auto& x : s) x = unit(rng);
  return s;
}

}  // namespace

TEST_CASE("delta rule: chunked == recurrent for lengths around chunk boundaries") {
  for (int chunk : {64, 16}) {
    for (int length : {1, 2, 15, 16, 17, 63, 64, 65, 128, 130}) {
      CAPTURE(chunk);
      CAPTURE(length);
      const RandomDeltaInputs in(length, 3, 32, 24, 1000u + length * 7u + chunk);
      // Start from a non-zero state so the carried-state terms are exercised too.
      const std::vector<float> initial = random_state(in.state_size(), 99u + length);
      std::vector<float> state_rec = initial, state_chunk = initial;
      std::vector<float> out_rec(in.out_size()), out_chunk(in.out_size());
      gated_delta_rule_recurrent(in.all(), state_rec.data(), out_rec.data());
      gated_delta_rule_chunked(in.all(), state_chunk.data(), out_chunk.data(), chunk);
      const float out_diff = max_abs_diff(out_rec, out_chunk);
      const float state_diff = max_abs_diff(state_rec, state_chunk);
      MESSAGE("chunk " << chunk << " length " << length << ": max |out diff| " << out_diff << ", max |state diff| "
                       << state_diff);
      CHECK(out_diff <= kTolerance);
      CHECK(state_diff <= kTolerance);
    }
  }
}

TEST_CASE("delta rule: strong decay stays finite and equal in both forms") {
  // Log decays down to -40 per token: cumulative sums reach -2500 inside a
  // chunk; only differences are exponentiated, so nothing overflows.
  const RandomDeltaInputs in(130, 2, 16, 16, 4242u, -40.0f);
  std::vector<float> state_rec(in.state_size(), 0.25f), state_chunk = state_rec;
  std::vector<float> out_rec(in.out_size()), out_chunk(in.out_size());
  gated_delta_rule_recurrent(in.all(), state_rec.data(), out_rec.data());
  gated_delta_rule_chunked(in.all(), state_chunk.data(), out_chunk.data(), 64);
  CHECK(max_abs_diff(out_rec, out_chunk) <= kTolerance);
  CHECK(max_abs_diff(state_rec, state_chunk) <= kTolerance);
}

TEST_CASE("delta rule: one token by hand (d_k = d_v = 1)") {
  // S = 0.5; decay e^-0.5; kv = S' k; delta = beta (v - kv); S'' = S' + k delta; o = S'' q.
  const float q = 0.3f, k = 1.0f, v = 2.0f, g = -0.5f, beta = 0.25f;
  float state = 0.5f, out = 0.0f;
  gated_delta_rule_recurrent(DeltaRuleInputs{&q, &k, &v, &g, &beta, 1, 1, 1, 1}, &state, &out);
  const float decayed = 0.5f * std::exp(-0.5f);
  const float expected_state = decayed + 1.0f * 0.25f * (2.0f - decayed);
  CHECK(state == doctest::Approx(expected_state).epsilon(1e-6));
  CHECK(out == doctest::Approx(expected_state * 0.3f).epsilon(1e-6));
}

TEST_CASE("delta rule: state carried across calls") {
  const RandomDeltaInputs in(130, 4, 32, 32, 777u);
  std::vector<float> state_one(in.state_size(), 0.0f), out_one(in.out_size());
  gated_delta_rule_chunked(in.all(), state_one.data(), out_one.data(), 64);

  SUBCASE("prefill in two pieces == one piece") {
    for (int split : {1, 40, 64, 100}) {
      CAPTURE(split);
      std::vector<float> state(in.state_size(), 0.0f), out(in.out_size());
      gated_delta_rule_chunked(in.view(0, split), state.data(), out.data(), 64);
      gated_delta_rule_chunked(in.view(split, in.tokens - split), state.data(),
                               out.data() + static_cast<size_t>(split) * in.heads * in.dv, 64);
      CHECK(max_abs_diff(out, out_one) <= kTolerance);
      CHECK(max_abs_diff(state, state_one) <= kTolerance);
    }
  }
  SUBCASE("prefill then decode steps == one long prefill") {
    const int prefix = 70;
    std::vector<float> state(in.state_size(), 0.0f), out(in.out_size());
    gated_delta_rule_chunked(in.view(0, prefix), state.data(), out.data(), 64);
    for (int t = prefix; t < in.tokens; ++t) {
      gated_delta_rule_recurrent(in.view(t, 1), state.data(), out.data() + static_cast<size_t>(t) * in.heads * in.dv);
    }
    const float diff = max_abs_diff(out, out_one);
    MESSAGE("prefill 70 + 60 decode steps vs prefill 130: max |out diff| " << diff);
    CHECK(diff <= kTolerance);
    CHECK(max_abs_diff(state, state_one) <= kTolerance);
  }
}

TEST_CASE("causal conv1d: matches the zero-padded definition and carries state across calls") {
  const int channels = 5, kernel = 4, rows = 11;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows) * channels), w(static_cast<size_t>(channels) * kernel), bias(channels);
  for (auto& e : x) e = unit(rng);
  for (auto& e : w) e = unit(rng);
  for (auto& e : bias) e = unit(rng);

  for (bool with_bias : {false, true}) {
    CAPTURE(with_bias);
    const std::span<const float> b = with_bias ? std::span<const float>(bias) : std::span<const float>();
    // The definition: out[t, c] = silu(b[c] + sum_j w[c, j] x[t - 3 + j, c]), x = 0 before the start.
    std::vector<float> expected(x.size());
    for (int t = 0; t < rows; ++t)
      for (int c = 0; c < channels; ++c) {
        double acc = with_bias ? bias[c] : 0.0;
        for (int j = 0; j < kernel; ++j) {
          const int s = t - (kernel - 1) + j;
          if (s >= 0) acc += static_cast<double>(w[c * kernel + j]) * x[s * channels + c];
        }
        expected[t * channels + c] = static_cast<float>(acc / (1.0 + std::exp(-acc)));
      }

    std::vector<float> state_one((kernel - 1) * channels, 0.0f), out_one(x.size());
    causal_conv1d_silu(x.data(), rows, channels, w, kernel, b, state_one, out_one.data());
    CHECK(max_abs_diff(out_one, expected) <= 1e-6f);

    // Pieces of 2, 1, 1, 7 rows: the 1-row calls read history from the state only.
    std::vector<float> state((kernel - 1) * channels, 0.0f), out(x.size());
    int first = 0;
    for (int piece : {2, 1, 1, 7}) {
      causal_conv1d_silu(x.data() + first * channels, piece, channels, w, kernel, b, state,
                         out.data() + first * channels);
      first += piece;
    }
    CHECK(out == out_one);  // same arithmetic in the same order: bit-identical
    CHECK(state == state_one);
    // The state holds the last kernel-1 inputs, oldest first.
    CHECK(std::equal(state.begin(), state.end(), x.end() - (kernel - 1) * channels));
  }
}

TEST_CASE("causal conv1d: math::conv1d_silu's bits for every channel, across channel blocks and SIMD tails") {
  // 200 channels = three 64-channel blocks and a short one; a state that is not zero; the
  // SiLU's argument over several binades (large |x| saturates, small ones keep the ratio).
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int kernel : {2, 4}) {
    const int channels = 200, rows = 9, history = kernel - 1;
    std::vector<float> x(static_cast<size_t>(rows) * channels), w(static_cast<size_t>(channels) * kernel);
    std::vector<float> bias(channels), state(static_cast<size_t>(history) * channels);
    for (auto& e : x) e = unit(rng) * std::exp2(static_cast<float>(static_cast<int>(rng() % 12) - 6));
    for (auto& e : w) e = unit(rng) * 3.0f;
    for (auto& e : bias) e = unit(rng);
    for (auto& e : state) e = unit(rng);
    const std::vector<float> state_before = state;
    std::vector<float> out(x.size());
    causal_conv1d_silu(x.data(), rows, channels, w, kernel, bias, state, out.data());
    int wrong = 0;
    for (int t = 0; t < rows; ++t)
      for (int c = 0; c < channels; ++c) {
        const float want = math::conv1d_silu(w.data() + static_cast<size_t>(c) * kernel, kernel, bias[c], [&](int j) {
          const int s = t + j - history;  // < 0: the state's row history + s
          return s < 0 ? state_before[static_cast<size_t>(history + s) * channels + c]
                       : x[static_cast<size_t>(s) * channels + c];
        });
        wrong += std::bit_cast<std::uint32_t>(want) !=
                 std::bit_cast<std::uint32_t>(out[static_cast<size_t>(t) * channels + c]);
      }
    CAPTURE(kernel);
    CHECK(wrong == 0);
    CHECK(std::equal(state.begin(), state.end(), x.end() - static_cast<std::ptrdiff_t>(history) * channels));
  }
}

TEST_CASE("delta rule: argument checks") {
  std::vector<float> state(4), out(4);
  CHECK_THROWS_AS(gated_delta_rule_chunked(DeltaRuleInputs{nullptr, nullptr, nullptr, nullptr, nullptr, 3, 1, 2, 2},
                                           state.data(), out.data()),
                  std::invalid_argument);
  const RandomDeltaInputs in(4, 1, 2, 2, 1u);
  CHECK_THROWS_AS(gated_delta_rule_chunked(in.all(), state.data(), out.data(), 0), std::invalid_argument);
  std::vector<float> conv_state(2);  // kernel 4 with 1 channel needs 3
  CHECK_THROWS_AS(causal_conv1d_silu(in.v.data(), 1, 1, std::vector<float>(4), 4, {}, conv_state, out.data()),
                  std::invalid_argument);
}
