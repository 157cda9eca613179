// The delta rule's dense products and attention's value sum (detail::multiply_accumulate_*) against the plain triple
// loop they restate, bit for bit: every element of C takes its products in inner order, each
// one fused multiply-add (c + a b or c - a b, rounded once), whatever the tile, the vector
// width or the leading dimensions.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "tests/cpu_kernels/test_helpers.hpp"

using namespace quanteval::runtime;

TEST_CASE("multiply_accumulate (AVX2, AVX-512) gives the plain loop's bits over odd shapes") {
  if (!cpu_supports(CpuIsa::avx2)) {
    MESSAGE("no AVX2 on this CPU (or capped by QUANTEVAL_CPU_ISA): nothing to compare");
    return;
  }
  const bool avx512 = cpu_supports(CpuIsa::avx512);
  if (!avx512) MESSAGE("no AVX-512 on this CPU (or capped): only the AVX2 kernel is compared");
  std::mt19937_64 rng(quanteval::test::test_seed() + 11);
  auto values = [&](size_t n) { return quanteval::test::floats_over_binades(rng, n, 13); };
  int compared = 0;
  for (int rows : {1, 2, 3, 4, 5, 6, 7, 9})  // every remainder after the 4-row tiles
    for (int cols : {8, 16, 24, 64, 72, 128})
      for (int inner : {1, 7, 64})
        for (bool subtract : {false, true}) {
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(inner);
          CAPTURE(subtract);
          const int64_t lda = inner + 5, ldb = cols + 8, ldc = cols + 3;  // rows apart, as in the strided inputs
          const std::vector<float> a = values(static_cast<size_t>(rows) * lda),
                                   b = values(static_cast<size_t>(inner) * ldb),
                                   start = values(static_cast<size_t>(rows) * ldc);
          std::vector<float> expected = start;
          for (int i = 0; i < rows; ++i)
            for (int x = 0; x < inner; ++x)
              for (int c = 0; c < cols; ++c) {
                float& e = expected[i * ldc + c];
                const float scalar = a[i * lda + x];
                e = std::fma(subtract ? -scalar : scalar, b[x * ldb + c], e);
              }
          std::vector<float> got = start;
          detail::multiply_accumulate_avx2(got.data(), ldc, a.data(), lda, b.data(), ldb, rows, cols, inner, subtract);
          CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
          ++compared;
          if (avx512 && cols % 16 == 0) {
            got = start;
            detail::multiply_accumulate_avx512(got.data(), ldc, a.data(), lda, b.data(), ldb, rows, cols, inner,
                                               subtract);
            CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
          }
        }
  CHECK(compared == 8 * 6 * 3 * 2);
}
