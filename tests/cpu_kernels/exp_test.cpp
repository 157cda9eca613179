// math::exp_float (the exp of softmax and SiLU) against the correctly rounded value, and its
// AVX2 / AVX-512 loops (softmax's exp_shifted, swiglu, the DeltaNet conv1d's SiLU) against the
// portable function bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/model/math.hpp"

using namespace quanteval::runtime;

namespace {

uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// Distance in units in the last place between two finite positive floats.
int64_t ulps(float a, float b) {
  return std::llabs(static_cast<int64_t>(bits_of(a)) - static_cast<int64_t>(bits_of(b)));
}

// How many of the SIMD loops this CPU (and the QUANTEVAL_CPU_ISA cap) lets a test compare with
// the portable ones: 0, 1 (AVX2) or 2 (AVX2 and AVX-512; index 1 = AVX-512).
int simd_loops_to_compare() {
  if (!cpu_supports(CpuIsa::avx2)) {
    MESSAGE("no AVX2 on this CPU (or capped): nothing to compare");
    return 0;
  }
  if (!cpu_supports(CpuIsa::avx512)) {
    MESSAGE("no AVX-512 on this CPU (or capped): only the AVX2 loops are compared");
    return 1;
  }
  return 2;
}

// Arguments that exercise every branch: the range edges, zeros, infinities, NaN,
// subnormals, and dense random values across the whole finite range of the result.
std::vector<float> arguments(std::mt19937_64& rng, size_t random_count) {
  std::vector<float> out = {0.0f,
                            -0.0f,
                            1.0f,
                            -1.0f,
                            88.37626266479492f,
                            std::nextafter(88.37626266479492f, 100.0f),
                            88.7f,
                            89.0f,
                            -87.33654022216797f,
                            std::nextafter(-87.33654022216797f, -100.0f),
                            -100.0f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::min(),
                            0.34657359f,
                            -0.34657359f,
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::max()};
  std::uniform_real_distribution<float> wide(-90.0f, 90.0f), narrow(-2.0f, 2.0f);
  for (size_t i = 0; i < random_count; ++i) out.push_back(i % 2 ? wide(rng) : narrow(rng));
  return out;
}

bool same_bits(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits_of(a) == bits_of(b); }

}  // namespace

TEST_CASE("exp_float: within 2 ulp of the correctly rounded exp over its range; edges as documented") {
  // Every 97th float bit pattern in [-87.33, 88.37] (~10^7 values): the double exp rounded to
  // float is the correctly rounded value except in astronomically rare ties.
  int64_t worst = 0;
  float worst_at = 0.0f;
  size_t checked = 0;
  for (uint32_t b = 0; b < 0x7f800000u; b += 97) {
    for (float sign : {1.0f, -1.0f}) {
      float x;
      std::memcpy(&x, &b, sizeof x);
      x *= sign;
      if (x > 88.37626266479492f || x < -87.33654022216797f) continue;
      const float want = static_cast<float>(std::exp(static_cast<double>(x)));
      const int64_t d = ulps(math::exp_float(x), want);
      if (d > worst) {
        worst = d;
        worst_at = x;
      }
      ++checked;
    }
  }
  MESSAGE("exp_float: " << checked << " arguments, worst " << worst << " ulp at x = " << worst_at);
  CHECK(checked > 10000000);
  CHECK(worst <= 2);
  CHECK(math::exp_float(0.0f) == 1.0f);
  CHECK(math::exp_float(-0.0f) == 1.0f);
  CHECK(std::isinf(math::exp_float(std::nextafter(88.37626266479492f, 100.0f))));
  CHECK(std::isinf(math::exp_float(std::numeric_limits<float>::infinity())));
  CHECK(math::exp_float(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(math::exp_float(std::nextafter(-87.33654022216797f, -100.0f)) == 0.0f);
  CHECK(math::exp_float(-87.33654022216797f) > 0.0f);
  CHECK(std::isnan(math::exp_float(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("exp_shifted and swiglu: the AVX2 and AVX-512 loops give the portable bits, every tail length") {
  const int simd_loops = simd_loops_to_compare();
  if (simd_loops == 0) return;
  std::mt19937_64 rng(7);
  const std::vector<float> x = arguments(rng, 4000);
  std::vector<float> up(x.size());
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  for (auto& u : up) u = dist(rng);
  for (float shift : {0.0f, 1.5f, -80.0f, 10.0f}) {
    std::vector<float> want(x.size()), want_swiglu(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      want[i] = math::exp_float(x[i] - shift);
      want_swiglu[i] = math::swiglu(x[i] - shift, up[i]);
    }
    std::vector<float> gate(x.size());
    for (size_t i = 0; i < x.size(); ++i) gate[i] = x[i] - shift;
    // Lengths 0..40 from several offsets (every tail), then the whole array.
    for (size_t offset : {size_t{0}, size_t{3}, size_t{17}}) {
      for (size_t count = 0; count <= 40; ++count) {
        for (int isa = 0; isa < simd_loops; ++isa) {
          std::vector<float> got(x.begin(), x.end());
          std::vector<float> got_swiglu(x.size(), -7.0f);
          if (isa == 0) {
            detail::exp_shifted_avx2(got.data() + offset, count, shift);
            detail::swiglu_avx2(gate.data() + offset, up.data() + offset, got_swiglu.data() + offset, count);
          } else {
            detail::exp_shifted_avx512(got.data() + offset, count, shift);
            detail::swiglu_avx512(gate.data() + offset, up.data() + offset, got_swiglu.data() + offset, count);
          }
          int wrong = 0;
          for (size_t i = 0; i < x.size(); ++i) {
            const bool inside = i >= offset && i < offset + count;
            wrong += !same_bits(got[i], inside ? want[i] : x[i]);  // outside the range: untouched
            wrong += !same_bits(got_swiglu[i], inside ? want_swiglu[i] : -7.0f);
          }
          CAPTURE(offset);
          CAPTURE(count);
          CAPTURE(isa);
          CHECK(wrong == 0);
        }
      }
    }
    std::vector<float> whole(x.begin(), x.end()), whole_swiglu(x.size());
    detail::exp_shifted(whole.data(), whole.size(), shift);
    detail::swiglu(gate.data(), up.data(), whole_swiglu.data(), gate.size());
    int wrong = 0;
    for (size_t i = 0; i < x.size(); ++i)
      wrong += !same_bits(whole[i], want[i]) + !same_bits(whole_swiglu[i], want_swiglu[i]);
    CHECK(wrong == 0);
  }
}

TEST_CASE("conv1d_silu_row: the AVX2 and AVX-512 loops give math::conv1d_silu's bits, every tail") {
  const int simd_loops = simd_loops_to_compare();
  if (simd_loops == 0) return;
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  constexpr int kStride = 48;
  for (int kernel : {1, 3, 4}) {
    // Window values over several binades, so the SiLU sees saturated, linear and tiny arguments.
    std::vector<std::vector<float>> rows(static_cast<size_t>(kernel), std::vector<float>(kStride));
    for (auto& row : rows)
      for (auto& v : row) v = unit(rng) * std::exp2(static_cast<float>(static_cast<int>(rng() % 16) - 8));
    std::vector<float> taps(static_cast<size_t>(kernel) * kStride), bias(kStride);
    for (auto& t : taps) t = unit(rng) * 4.0f;
    for (auto& b : bias) b = unit(rng);
    std::vector<const float*> window;
    for (const auto& row : rows) window.push_back(row.data());
    for (bool with_bias : {false, true}) {
      std::vector<float> want(kStride);
      for (int i = 0; i < kStride; ++i) {
        std::vector<float> tap(static_cast<size_t>(kernel));
        for (int j = 0; j < kernel; ++j) tap[static_cast<size_t>(j)] = taps[static_cast<size_t>(j) * kStride + i];
        want[static_cast<size_t>(i)] =
            math::conv1d_silu(tap.data(), kernel, with_bias ? bias[static_cast<size_t>(i)] : 0.0f,
                              [&](int j) { return rows[static_cast<size_t>(j)][static_cast<size_t>(i)]; });
      }
      for (int count = 0; count <= kStride; ++count) {
        for (int isa = 0; isa < simd_loops; ++isa) {
          std::vector<float> got(kStride, -7.0f);
          auto* run = isa == 0 ? &detail::conv1d_silu_row_avx2 : &detail::conv1d_silu_row_avx512;
          run(window.data(), kernel, taps.data(), kStride, with_bias ? bias.data() : nullptr, count, got.data());
          int wrong = 0;
          for (int i = 0; i < kStride; ++i)
            wrong += !same_bits(got[static_cast<size_t>(i)], i < count ? want[static_cast<size_t>(i)] : -7.0f);
          CAPTURE(kernel);
          CAPTURE(count);
          CAPTURE(isa);
          CHECK(wrong == 0);
        }
      }
    }
  }
}

TEST_CASE("gated_rms_row: the AVX2 and AVX-512 loops give math::gated_rms_scaled's bits, every tail") {
  const int simd_loops = simd_loops_to_compare();
  if (simd_loops == 0) return;
  std::mt19937_64 rng(19);
  const std::vector<float> z = arguments(rng, 40);  // the SiLU's argument over its whole range
  std::uniform_real_distribution<float> unit(-2.0f, 2.0f);
  std::vector<float> o(z.size()), weight(z.size());
  for (auto& v : o) v = unit(rng);
  for (auto& v : weight) v = unit(rng);
  const float inverse_rms = 0.37f;
  for (int count = 0; count <= static_cast<int>(z.size()); ++count) {
    for (int isa = 0; isa < simd_loops; ++isa) {
      std::vector<float> got(o);
      (isa == 0 ? &detail::gated_rms_row_avx2 : &detail::gated_rms_row_avx512)(got.data(), inverse_rms, weight.data(),
                                                                               z.data(), count);
      int wrong = 0;
      for (int i = 0; i < static_cast<int>(z.size()); ++i) {
        const auto at = static_cast<size_t>(i);
        wrong += !same_bits(got[at], i < count ? math::gated_rms_scaled(o[at], inverse_rms, weight[at], z[at]) : o[at]);
      }
      CAPTURE(count);
      CAPTURE(isa);
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("softmax: the max and the division on AVX2 / AVX-512 give the plain loop's bits, every tail length") {
  std::mt19937_64 rng(11);
  // Attention scores: finite, with repeated maxima and signed zeros among them.
  std::uniform_real_distribution<float> dist(-30.0f, 30.0f);
  std::vector<float> scores(300);
  for (auto& s : scores) s = dist(rng);
  scores[5] = scores[77] = scores[250] = 31.0f;
  scores[9] = -0.0f;
  scores[10] = 0.0f;
  const int simd_loops = simd_loops_to_compare();
  for (size_t offset : {size_t{0}, size_t{5}, size_t{11}, size_t{251}}) {
    for (size_t count = 1; offset + count + 3 <= scores.size() && count <= 49; ++count) {
      CAPTURE(offset);
      CAPTURE(count);
      const float* row = scores.data() + offset;
      // The arithmetic attention had before detail::softmax: the first maximum, the
      // portable exp, math::lane_sum, a division per value.
      float max = row[0];
      for (size_t i = 1; i < count; ++i) max = max < row[i] ? row[i] : max;
      std::vector<float> want(row, row + count);
      for (auto& w : want) w = math::exp_float(w - max);
      const float total = math::lane_sum(want.data(), static_cast<int>(count));
      for (auto& w : want) w /= total;
      std::vector<float> got(row, row + count + 3);  // 3 past the end: must stay untouched
      detail::softmax(got.data(), count);
      int wrong = 0;
      for (size_t i = 0; i < count; ++i) wrong += !same_bits(got[i], want[i]);
      for (size_t i = count; i < count + 3; ++i) wrong += !same_bits(got[i], row[i]);
      CHECK(wrong == 0);
      for (int isa = 0; isa < simd_loops; ++isa) {
        CAPTURE(isa);
        CHECK(same_bits(isa == 0 ? detail::max_value_avx2(row, count) : detail::max_value_avx512(row, count), max));
        std::vector<float> divided(row, row + count + 3);
        if (isa == 0)
          detail::divide_avx2(divided.data(), count, 3.0f);
        else
          detail::divide_avx512(divided.data(), count, 3.0f);
        int wrong_division = 0;
        for (size_t i = 0; i < count + 3; ++i)
          wrong_division += !same_bits(divided[i], i < count ? row[i] / 3.0f : row[i]);
        CHECK(wrong_division == 0);
      }
    }
  }
}
