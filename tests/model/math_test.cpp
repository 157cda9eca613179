// The per-element math of model/math.hpp -- the one definition the CPU backend
// and the CUDA kernels both call -- against independent statements of the same
// formulas (double precision, written out here) and against the CPU ops that use it.
// A bug in a shared function would otherwise be invisible to the GPU checks, which
// compare the GPU with the CPU: both would carry it.
//
// Tolerances: fp32 results of O(1) values, compared with double evaluations of the
// same formula; each bound is a few ulps (2^-24 ~ 6e-8) times the number of rounded
// operations in the chain, stated per check.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "runtime/base/numeric.hpp"
#include "runtime/kernels/cpu/delta_rule.hpp"
#include "runtime/model/math.hpp"

namespace {

using namespace quanteval::runtime;

std::vector<float> random_vector(std::size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

bool same_bits(float a, float b) { return math::float_bits(a) == math::float_bits(b); }

TEST_CASE("16-bit conversions equal base/numeric.hpp on every 16-bit pattern and on random floats") {
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const auto b = static_cast<std::uint16_t>(bits);
    REQUIRE(same_bits(math::bf16_to_float(b), bf16_to_float(b)));
    REQUIRE(same_bits(math::f16_to_float(b), f16_to_float(b)));
    // Round trips of every representable value are exact.
    if (!std::isnan(bf16_to_float(b))) REQUIRE(math::float_to_bf16(math::bf16_to_float(b)) == b);
    if (!std::isnan(f16_to_float(b))) REQUIRE(math::float_to_f16(math::f16_to_float(b)) == b);
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> any;
  for (int i = 0; i < 2'000'000; ++i) {
    const float x = math::float_from_bits(any(rng));
    REQUIRE(math::float_to_bf16(x) == float_to_bf16(x));
    REQUIRE(math::float_to_f16(x) == float_to_f16(x));
  }
  // Ties and the overflow edge.
  for (const float x : {65504.0f, 65519.99f, 65520.0f, 1.0f + 0x1p-8f, 1.0f + 0x1p-11f, 0x1p-25f, 0x1.8p-25f}) {
    CHECK(math::float_to_bf16(x) == float_to_bf16(x));
    CHECK(math::float_to_f16(x) == float_to_f16(x));
  }
}

TEST_CASE("rms_norm_row equals x / sqrt(mean(x^2) + eps) * w in double; aliasing allowed") {
  std::mt19937 rng(1);
  for (const int width : {1, 7, 64, 255, 5120}) {
    const auto x = random_vector(width, rng, -3.0f, 3.0f), w = random_vector(width, rng, 0.5f, 1.5f);
    std::vector<float> y(width);
    math::rms_norm_row(x.data(), w.data(), width, 1e-6f, y.data());
    double sum = 0;
    for (float v : x) sum += static_cast<double>(v) * v;
    const double inv = 1.0 / std::sqrt(sum / width + 1e-6);
    for (int i = 0; i < width; ++i) {
      const double expected = x[i] * inv * w[i];
      // three roundings (inverse, two products): 3 ulps of the result
      REQUIRE(std::abs(y[i] - expected) <= 4 * 0x1p-24 * std::abs(expected) + 1e-30);
    }
    std::vector<float> in_place = x;
    math::rms_norm_row(in_place.data(), w.data(), width, 1e-6f, in_place.data());
    REQUIRE(std::equal(in_place.begin(), in_place.end(), y.begin(), same_bits));
    // The element function a GPU thread uses gives the same bits as the row loop.
    const float inv_f = math::inverse_rms(math::sum_of_squares(x.data(), width), width, 1e-6f);
    for (int i = 0; i < width; ++i) REQUIRE(same_bits(math::rms_scaled(x[i], inv_f, w[i]), y[i]));
  }
}

TEST_CASE("the double sum of squares gives the same float scale in any summation order") {
  // What lets a GPU block reduce a row in a tree and still match the CPU's loop.
  std::mt19937 rng(2);
  for (int trial = 0; trial < 200; ++trial) {
    const auto x = random_vector(4096, rng, -10.0f, 10.0f);
    const float serial = math::inverse_rms(math::sum_of_squares(x.data(), 4096), 4096, 1e-6f);
    // A 256-thread block: strided partial sums, then a pairwise tree.
    std::vector<double> partial(256, 0.0);
    for (int i = 0; i < 4096; ++i) partial[i % 256] += static_cast<double>(x[i]) * x[i];
    for (int stride = 128; stride > 0; stride /= 2)
      for (int t = 0; t < stride; ++t) partial[t] += partial[t + stride];
    REQUIRE(same_bits(math::inverse_rms(partial[0], 4096, 1e-6f), serial));
  }
}

TEST_CASE("RoPE: rotate_head rotates each pair by position * inv_freq, partial rotary leaves the tail") {
  std::mt19937 rng(3);
  const int head_dim = 64;
  for (const int rotary_dim : {64, 16}) {
    std::vector<float> inv_freq(rotary_dim / 2);
    for (int i = 0; i < rotary_dim / 2; ++i) inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / rotary_dim));
    for (const long long position : {0LL, 1LL, 17LL, 4095LL, 131071LL}) {
      const auto head = random_vector(head_dim, rng);
      std::vector<float> rotated = head;
      math::rotate_head(rotated.data(), rotary_dim, position, inv_freq.data());
      const int half = rotary_dim / 2;
      for (int i = 0; i < half; ++i) {
        const double angle = static_cast<float>(position) * inv_freq[i];  // the fp32 angle, as transformers
        const double c = std::cos(angle), s = std::sin(angle);
        const double x1 = head[i] * c - head[i + half] * s, x2 = head[i + half] * c + head[i] * s;
        REQUIRE(std::abs(rotated[i] - x1) <= 1e-6);
        REQUIRE(std::abs(rotated[i + half] - x2) <= 1e-6);
        // A rotation keeps the pair's length.
        const double before = std::hypot(head[i], head[i + half]), after = std::hypot(rotated[i], rotated[i + half]);
        REQUIRE(std::abs(before - after) <= 1e-6);
      }
      for (int i = rotary_dim; i < head_dim; ++i) REQUIRE(same_bits(rotated[i], head[i]));
      // The row-shared form (angles computed once for all heads) gives the same bits.
      std::vector<math::RotaryAngle> angles(half);
      for (int i = 0; i < half; ++i) angles[i] = math::rotary_angle(position, inv_freq[i]);
      std::vector<float> shared = head;
      math::rotate_head(shared.data(), rotary_dim, angles.data());
      for (int i = 0; i < head_dim; ++i) REQUIRE(same_bits(shared[i], rotated[i]));
    }
  }
}

// softmax(scores) . values in double, two passes.
std::vector<double> two_pass_attention(const std::vector<float>& scores, const std::vector<float>& values, int dim) {
  double max = -INFINITY;
  for (float s : scores) max = std::max<double>(max, s);
  double total = 0;
  std::vector<double> out(dim, 0.0);
  for (std::size_t p = 0; p < scores.size(); ++p) {
    const double w = std::exp(scores[p] - max);
    total += w;
    for (int d = 0; d < dim; ++d) out[d] += w * values[p * dim + d];
  }
  for (auto& v : out) v /= total;
  return out;
}

TEST_CASE("OnlineSoftmax: one pass, and split ranges merged, equal the two-pass softmax") {
  std::mt19937 rng(4);
  const int dim = 8;
  for (const int positions : {1, 2, 5, 64, 1000, 4097}) {
    const auto scores = random_vector(positions, rng, -20.0f, 20.0f);
    const auto values = random_vector(static_cast<std::size_t>(positions) * dim, rng);
    const auto expected = two_pass_attention(scores, values, dim);
    // The state of positions [begin, end) with its accumulated values.
    auto run = [&](int begin, int end, math::OnlineSoftmax& state, std::vector<float>& acc) {
      acc.assign(dim, 0.0f);
      for (int p = begin; p < end; ++p) {
        float weight = 0;
        const float rescale = state.add(scores[p], &weight);
        for (int d = 0; d < dim; ++d)
          acc[d] = acc[d] * rescale + weight * values[static_cast<std::size_t>(p) * dim + d];
      }
    };
    // Weights stay in [0, 1] and the sum in [1, positions]: the result is a convex
    // combination with O(positions) roundings, each relative 2^-24.
    const double bound = 4 * 0x1p-24 * (8 + std::sqrt(static_cast<double>(positions)) * 4);
    math::OnlineSoftmax whole;
    std::vector<float> acc;
    run(0, positions, whole, acc);
    for (int d = 0; d < dim; ++d) REQUIRE(std::abs(acc[d] * whole.normalizer() - expected[d]) <= bound);
    for (const int splits : {2, 3, 7}) {
      if (splits > positions) continue;
      math::OnlineSoftmax merged;
      std::vector<float> total(dim, 0.0f);
      for (int s = 0; s < splits; ++s) {
        math::OnlineSoftmax part;
        std::vector<float> part_acc;
        run(positions * s / splits, positions * (s + 1) / splits, part, part_acc);
        float self_factor = 0, other_factor = 0;
        merged.merge(part, &self_factor, &other_factor);
        for (int d = 0; d < dim; ++d) total[d] = total[d] * self_factor + part_acc[d] * other_factor;
      }
      for (int d = 0; d < dim; ++d) REQUIRE(std::abs(total[d] * merged.normalizer() - expected[d]) <= bound);
    }
  }
  // A masked (-inf) score adds nothing; an empty part merges as nothing.
  math::OnlineSoftmax state;
  float weight = 0;
  state.add(1.0f, &weight);
  state.add(-INFINITY, &weight);
  CHECK(weight == 0.0f);
  CHECK(state.sum == doctest::Approx(1.0f));
  float a = 0, b = 0;
  state.merge(math::OnlineSoftmax{}, &a, &b);
  CHECK(a == 1.0f);
  CHECK(b == 0.0f);
  CHECK(math::attention_first_position(10, 0) == 0);
  CHECK(math::attention_first_position(10, 4) == 7);
  CHECK(math::attention_first_position(2, 4) == 0);
}

TEST_CASE("attention splits cover a row's causal range once, in fixed 512-position pieces") {
  for (const long long window : {0LL, 300LL, 512LL, 1500LL}) {
    for (const long long position : {0LL, 1LL, 299LL, 300LL, 511LL, 512LL, 513LL, 1099LL, 4095LL, 100000LL}) {
      const long long splits = math::attention_split_count(position, window);
      REQUIRE(splits >= 1);
      long long expected = math::attention_first_position(position, window);
      for (long long s = 0; s < splits; ++s) {
        const long long begin = math::attention_split_begin(position, window, s);
        const long long end = math::attention_split_end(position, window, s);
        REQUIRE(begin == expected);  // contiguous, no gap, no overlap
        REQUIRE(end > begin);
        REQUIRE(end - begin <= math::kAttentionSplitPositions);
        if (s + 1 < splits) REQUIRE(end - begin == math::kAttentionSplitPositions);
        expected = end;
      }
      REQUIRE(expected == position + 1);  // ends at the row's own position
    }
  }
  CHECK(math::attention_split_count(1099, 0) == 3);
  CHECK(math::attention_split_count(4095, 0) == 8);
  CHECK(math::attention_split_count(100000, 300) == 1);
}

TEST_CASE("attention_score is the fp32 dot (8 interleaved lanes) times the scale") {
  std::mt19937 rng(5);
  const auto q = random_vector(256, rng), k = random_vector(256, rng);
  double dot = 0;
  for (int d = 0; d < 256; ++d) dot += static_cast<double>(q[d]) * k[d];
  CHECK(std::abs(math::attention_score(q.data(), k.data(), 256, 0.0625f) - dot * 0.0625) <= 256 * 0x1p-24);
}

TEST_CASE("delta_rule_column: the columns of a state, one call each, equal the matrix form in double") {
  std::mt19937 rng(6);
  const int dk = 32, dv = 24, tokens = 40;
  std::vector<float> state = random_vector(static_cast<std::size_t>(dk) * dv, rng, -0.5f, 0.5f);
  std::vector<double> S(state.begin(), state.end());
  for (int t = 0; t < tokens; ++t) {
    auto q = random_vector(dk, rng), k = random_vector(dk, rng), v = random_vector(dv, rng);
    const float kn = math::inverse_l2(k.data(), dk, 1e-6f);
    for (auto& x : k) x *= kn;
    const float decay = std::exp(-std::uniform_real_distribution<float>(0.0f, 1.5f)(rng));
    const float beta = std::uniform_real_distribution<float>(0.02f, 0.98f)(rng);
    std::vector<float> out(dv);
    for (int c = 0; c < dv; ++c)
      out[c] = math::delta_rule_column(state.data() + c, dv, q.data(), k.data(), dk, v[c], decay, beta);
    // The matrix form, in double: S *= decay; delta = beta (v - S^T k); S += k delta^T; o = S^T q.
    for (auto& s : S) s *= decay;
    std::vector<double> delta(dv, 0.0), o(dv, 0.0);
    for (int c = 0; c < dv; ++c) {
      for (int a = 0; a < dk; ++a) delta[c] += S[a * dv + c] * k[a];
      delta[c] = beta * (v[c] - delta[c]);
    }
    for (int a = 0; a < dk; ++a)
      for (int c = 0; c < dv; ++c) S[a * dv + c] += k[a] * delta[c];
    for (int c = 0; c < dv; ++c)
      for (int a = 0; a < dk; ++a) o[c] += S[a * dv + c] * q[a];
    for (int c = 0; c < dv; ++c) REQUIRE(std::abs(out[c] - o[c]) <= 2e-5);
  }
  for (int i = 0; i < dk * dv; ++i) REQUIRE(std::abs(state[i] - S[i]) <= 2e-5);
}

TEST_CASE("delta_rule_column drives the CPU recurrence; the chunked form agrees with it") {
  // The CPU's token-by-token rule is now the column function in a loop: check it
  // against the chunked (WY) form, which shares no code with it.
  std::mt19937 rng(8);
  const int tokens = 70, heads = 2, dk = 16, dv = 16;
  auto q = random_vector(static_cast<std::size_t>(tokens) * heads * dk, rng);
  auto k = random_vector(q.size(), rng);
  for (std::size_t r = 0; r < q.size() / dk; ++r) {
    const float inv = math::inverse_l2(k.data() + r * dk, dk, 1e-6f);
    for (int i = 0; i < dk; ++i) k[r * dk + i] *= inv;
  }
  const auto v = random_vector(static_cast<std::size_t>(tokens) * heads * dv, rng);
  const auto g = random_vector(static_cast<std::size_t>(tokens) * heads, rng, -1.0f, 0.0f);
  const auto beta = random_vector(g.size(), rng, 0.05f, 0.95f);
  const DeltaRuleInputs in{q.data(), k.data(), v.data(), g.data(), beta.data(), tokens, heads, dk, dv};
  std::vector<float> s1(static_cast<std::size_t>(heads) * dk * dv, 0.0f), s2 = s1;
  std::vector<float> o1(static_cast<std::size_t>(tokens) * heads * dv), o2 = o1;
  gated_delta_rule_recurrent(in, s1.data(), o1.data());
  gated_delta_rule_chunked(in, s2.data(), o2.data(), 32);
  for (std::size_t i = 0; i < o1.size(); ++i) REQUIRE(std::abs(o1[i] - o2[i]) <= 1e-4);
  for (std::size_t i = 0; i < s1.size(); ++i) REQUIRE(std::abs(s1[i] - s2[i]) <= 1e-4);
}

TEST_CASE("conv1d_silu and the DeltaNet gates against their formulas") {
  std::mt19937 rng(9);
  const int kernel = 4;
  const auto taps = random_vector(kernel, rng), window = random_vector(kernel, rng);
  double acc = 0.25;
  for (int j = 0; j < kernel; ++j) acc += static_cast<double>(taps[j]) * window[j];
  const double expected = acc / (1.0 + std::exp(-acc));
  CHECK(std::abs(math::conv1d_silu(taps.data(), kernel, 0.25f, [&](int j) { return window[j]; }) - expected) <= 1e-6);
  // Through the CPU conv (which calls it): a state of zeros and one input row.
  std::vector<float> state((kernel - 1) * 1, 0.0f), out(1);
  const float x = 0.75f;
  causal_conv1d_silu(&x, 1, 1, taps, kernel, {}, state, out.data());
  const double last = static_cast<double>(taps[kernel - 1]) * x;
  CHECK(std::abs(out[0] - last / (1.0 + std::exp(-last))) <= 1e-6);
  CHECK(state.back() == x);

  for (const float a : {-30.0f, -1.0f, 0.0f, 2.0f, 19.0f, 25.0f}) {
    const double sp = a + 0.5 > 20 ? a + 0.5 : std::log1p(std::exp(a + 0.5));
    CHECK(std::abs(math::deltanet_log_decay(a, 0.3f, 0.5f) - (-std::exp(0.3) * sp)) <= 1e-5 * (1 + std::abs(sp)));
    CHECK(math::deltanet_log_decay(a, 0.3f, 0.5f) <= 0.0f);
    CHECK(std::abs(math::deltanet_beta(a) - 1.0 / (1.0 + std::exp(-static_cast<double>(a)))) <= 1e-7);
  }
  for (const float z : {-5.0f, -0.5f, 0.0f, 3.0f}) {
    const double silu_z = z / (1.0 + std::exp(-static_cast<double>(z)));
    CHECK(std::abs(math::gated_rms_scaled(2.0f, 0.5f, 1.5f, z) - 1.5 * silu_z) <= 1e-6);
    CHECK(std::abs(math::swiglu(z, 2.0f) - 2.0 * silu_z) <= 1e-6);
    CHECK(std::abs(math::gated_output(2.0f, z) - 2.0 / (1.0 + std::exp(-static_cast<double>(z)))) <= 1e-6);
  }
  const float v[3] = {3.0f, 4.0f, 0.0f};
  CHECK(math::inverse_l2(v, 3, 0.0f) == doctest::Approx(0.2f));
}

TEST_CASE("sampling decisions: order, min-p boundary, argmax ties") {
  CHECK(math::more_likely(0.5f, 9, 0.4f, 1));
  CHECK(math::more_likely(0.5f, 1, 0.5f, 2));
  CHECK_FALSE(math::more_likely(0.5f, 2, 0.5f, 1));
  CHECK(math::min_p_keeps(0.1f, 1.0f, 0.1f));  // exactly at the threshold: kept (drop only below)
  CHECK_FALSE(math::min_p_keeps(0.0999f, 1.0f, 0.1f));
  CHECK(math::argmax_prefers(1.0f, 5, 1.0f, 7));
  CHECK_FALSE(math::argmax_prefers(1.0f, 7, 1.0f, 5));
  CHECK_FALSE(math::argmax_prefers(-INFINITY, 0, 0.0f, 3));
  CHECK(std::abs(math::tempered_weight(1.0f, 3.0f, 0.5f) - std::exp(-4.0)) <= 1e-7);
}

}  // namespace
