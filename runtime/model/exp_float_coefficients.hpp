#pragma once
// The numbers of math::exp_float (runtime/model/math.hpp, where its derivation is), in one
// place for the scalar function and the AVX2 / AVX-512 loops that restate it op for op. Only
// constants here: the SIMD files include this and must not include inline functions (an
// inline function compiled with AVX-512 flags could be the copy the linker keeps).
namespace quanteval::runtime::math::exp_coefficients {

inline constexpr float kOverflowAbove = 88.37626266479492f;    // 127.5 ln 2: +inf above
inline constexpr float kUnderflowBelow = -87.33654022216797f;  // ln FLT_MIN: 0 below
inline constexpr float kLog2e = 1.44269502162933349609f;
inline constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding and removing it rounds to an integer
inline constexpr float kLn2High = 0.693145751953125f;  // 15 significant bits: n * kLn2High is exact
inline constexpr float kLn2Low = 1.42860676533018704e-06f;
// Taylor coefficients of e^r from 1/7! down to 1/0!, in Horner order.
inline constexpr float kC7 = 1.98412701138295233250e-04f;
inline constexpr float kC6 = 1.38888892251998186111e-03f;
inline constexpr float kC5 = 8.33333376795053482056e-03f;
inline constexpr float kC4 = 4.16666679084300994873e-02f;
inline constexpr float kC3 = 1.66666671633720397949e-01f;
inline constexpr float kC2 = 0.5f;
inline constexpr float kC1 = 1.0f;
inline constexpr float kC0 = 1.0f;

}  // namespace quanteval::runtime::math::exp_coefficients
