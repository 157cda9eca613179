#pragma once
// 16-bit floating-point formats as raw bits, converted exactly in software.
// These are the scalar ground truth; the SIMD kernels convert in bulk with
// F16C/AVX-512 instructions and are tested against these on every bit pattern.
//   bf16: 1 sign, 8 exponent, 7 mantissa bits (the top half of an fp32)
//   f16 : 1 sign, 5 exponent, 10 mantissa bits (IEEE 754 binary16)
#include <bit>
#include <cstdint>

namespace quanteval::runtime {

// bf16 -> float is exact: the bf16 bits are the high half of the float.
inline float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

// float -> bf16 with round-to-nearest-even. NaN stays NaN (quieted, sign and
// top payload bits kept); values past the largest bf16 round to infinity.
inline uint16_t float_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    // Truncating a NaN could leave only zero payload bits (= infinity); set the quiet bit.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  const uint32_t lowest_kept_bit = (bits >> 16) & 1u;
  bits += 0x7fffu + lowest_kept_bit;  // ties go to the even neighbour
  return static_cast<uint16_t>(bits >> 16);
}

// f16 -> float is exact (every f16, subnormals included, is a normal float).
inline float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) {  // infinity or NaN (payload moved to the top of the float mantissa)
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  // Normal: rebias the exponent from 15 to 127.
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// float -> f16 with round-to-nearest-even, including into the subnormal range.
inline uint16_t float_to_f16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: keep the top payload bits, force quiet
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  if (magnitude >= 0x477ff000u) {  // >= 65520 (halfway past 65504, tie to even) and inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (magnitude >= 0x38800000u) {  // >= 2^-14: normal f16
    const uint32_t lowest_kept_bit = (magnitude >> 13) & 1u;
    magnitude += 0xfffu + lowest_kept_bit;  // a carry into the exponent is the correct result
    return static_cast<uint16_t>(sign | ((magnitude - 0x38000000u) >> 13));
  }
  // Subnormal f16 (or zero): result = round(value * 2^24) as an integer mantissa.
  const uint32_t exponent = magnitude >> 23;
  if (exponent < 101) return sign;  // below 2^-25 (half the smallest subnormal): rounds to zero
  const uint32_t full_mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14..25
  uint32_t result = full_mantissa >> shift;
  const uint32_t remainder = full_mantissa & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (remainder > half || (remainder == half && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);  // 0x400 here is the smallest normal: still correct
}

}  // namespace quanteval::runtime
