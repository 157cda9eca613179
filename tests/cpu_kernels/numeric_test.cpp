// bf16 / f16 conversions on edge values and, where cheap, every bit pattern.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "runtime/base/numeric.hpp"
#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/linear.hpp"

using namespace quanteval::runtime;

namespace {
float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }
}  // namespace

TEST_CASE("bf16: round to nearest even, NaN, infinity, denormals") {
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(from_bits(0x3f808000)) == 0x3f80);  // tie, 0x3f80 even: down
  CHECK(float_to_bf16(from_bits(0x3f818000)) == 0x3f82);  // tie, 0x3f81 odd: up
  CHECK(float_to_bf16(from_bits(0x3f808001)) == 0x3f81);  // just above the tie: up
  CHECK(float_to_bf16(from_bits(0x3f807fff)) == 0x3f80);  // just below: down
  CHECK(float_to_bf16(-0.0f) == 0x8000);
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(float_to_bf16(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // past the largest bf16: overflows
  CHECK(float_to_bf16(from_bits(0x7f7f7fff)) == 0x7f7f);              // largest bf16 stays finite
  CHECK(float_to_bf16(from_bits(0x00000001)) == 0x0000);              // float denormals
  CHECK(float_to_bf16(from_bits(0x00008000)) == 0x0000);              // tie to even (0)
  CHECK(float_to_bf16(from_bits(0x00018000)) == 0x0002);              // tie to even (2)
  CHECK(float_to_bf16(from_bits(0x00010000)) == 0x0001);              // exact bf16 denormal
  // A NaN whose payload lives only in the low half must not become infinity.
  const uint16_t nan_bits = float_to_bf16(from_bits(0x7f800001));
  CHECK(std::isnan(bf16_to_float(nan_bits)));
  CHECK(float_to_bf16(from_bits(0xffc00000)) == 0xffc0);
  // Every bf16 survives bf16 -> float -> bf16.
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float value = bf16_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(value)) {
      CHECK(std::isnan(bf16_to_float(float_to_bf16(value))));
    } else if (float_to_bf16(value) != bits) {
      FAIL_CHECK("bf16 round trip failed for 0x" << std::hex << bits);
    }
  }
}

TEST_CASE("f16: decode every bit pattern exactly and round trip") {
  CHECK(f16_to_float(0x3c00) == 1.0f);
  CHECK(f16_to_float(0x0001) == 0x1p-24f);  // smallest subnormal
  CHECK(f16_to_float(0x03ff) == 1023 * 0x1p-24f);
  CHECK(f16_to_float(0x0400) == 0x1p-14f);  // smallest normal
  CHECK(f16_to_float(0x7bff) == 65504.0f);
  CHECK(f16_to_float(0x8000) == 0.0f);
  CHECK(std::signbit(f16_to_float(0x8000)));
  CHECK(f16_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(f16_to_float(0x7e00)));
  CHECK(std::isnan(f16_to_float(0x7c01)));  // signalling NaN stays NaN
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float value = f16_to_float(static_cast<uint16_t>(bits));
    // Independent decode: sign * mantissa * 2^exponent with std::ldexp.
    const int exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
    if (exponent != 0x1f) {
      const double expected = (bits & 0x8000 ? -1.0 : 1.0) *
                              (exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25));
      if (static_cast<double>(value) != expected) FAIL_CHECK("f16 decode wrong for 0x" << std::hex << bits);
      if (float_to_f16(value) != bits) FAIL_CHECK("f16 round trip failed for 0x" << std::hex << bits);
    } else if (mantissa != 0) {
      CHECK(std::isnan(value));
      CHECK(std::isnan(f16_to_float(float_to_f16(value))));
    }
  }
}

TEST_CASE("f16: float -> f16 is round-to-nearest-even everywhere") {
  CHECK(float_to_f16(65504.0f) == 0x7bff);
  CHECK(float_to_f16(65519.99f) == 0x7bff);
  CHECK(float_to_f16(65520.0f) == 0x7c00);  // tie between 65504 (odd) and 65536 (inf): rounds to inf
  CHECK(float_to_f16(1e10f) == 0x7c00);
  CHECK(float_to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(float_to_f16(0x1p-25f) == 0x0000);               // tie between 0 and the smallest subnormal
  CHECK(float_to_f16(from_bits(0x33000001)) == 0x0001);  // just above 2^-25
  CHECK(float_to_f16(0x1p-24f * 1.5f) == 0x0002);        // tie 1.5 -> 2
  CHECK(float_to_f16(0x1p-24f * 2.5f) == 0x0002);        // tie 2.5 -> 2
  CHECK(float_to_f16(from_bits(0x387fe000)) == 0x0400);  // largest subnormal tie rounds up into the normals
  CHECK(float_to_f16(1.0f + 0x1p-11f) == 0x3c00);        // tie, even: down
  CHECK(float_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);    // tie, odd: up
  CHECK(float_to_f16(from_bits(0x00000001)) == 0x0000);
  CHECK(float_to_f16(-0.0f) == 0x8000);
  CHECK(std::isnan(f16_to_float(float_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(f16_to_float(float_to_f16(from_bits(0x7f800001)))));  // low-payload NaN stays NaN

  // Sampled sweep over all float bit patterns: the result is a nearest f16 and, on a tie, the even one.
  for (uint64_t raw = 0; raw <= 0xffffffffull; raw += 4093) {
    const float value = from_bits(static_cast<uint32_t>(raw));
    if (std::isnan(value) || std::isinf(value)) continue;
    const uint16_t got = float_to_f16(value);
    const double magnitude = std::fabs(static_cast<double>(value));
    if (magnitude >= 65520.0) {
      if ((got & 0x7fff) != 0x7c00) FAIL_CHECK("expected infinity for " << value);
      continue;
    }
    const double result = std::fabs(static_cast<double>(f16_to_float(got)));
    const uint16_t magnitude_bits = got & 0x7fff;
    const double below = magnitude_bits == 0 ? 0.0 : f16_to_float(static_cast<uint16_t>(magnitude_bits - 1));
    const double above = f16_to_float(static_cast<uint16_t>(magnitude_bits + 1));
    const double error = std::fabs(result - magnitude);
    const bool nearest = error <= std::fabs(below - magnitude) && error <= std::fabs(above - magnitude);
    const bool tie = error == std::fabs(below - magnitude) || error == std::fabs(above - magnitude);
    if (!nearest || (tie && error > 0 && (magnitude_bits & 1))) {
      FAIL_CHECK("float_to_f16(" << value << ") = 0x" << std::hex << got << " is not round-to-nearest-even");
    }
  }
}

TEST_CASE("f16: bulk conversion (F16C where present) matches the software decode on all patterns") {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> converted(all.size());
  f16_to_float(all, converted);
  const std::string path = cpu_supports(CpuIsa::avx2) ? "F16C" : "software";
  MESSAGE("bulk f16 path: " << path);
  for (uint32_t i = 0; i < all.size(); ++i) {
    const float expected = f16_to_float(all[i]);
    const bool same = std::isnan(expected) ? std::isnan(converted[i])
                                           : std::bit_cast<uint32_t>(expected) == std::bit_cast<uint32_t>(converted[i]);
    if (!same) FAIL_CHECK("bulk f16 conversion differs at 0x" << std::hex << i);
  }
}
