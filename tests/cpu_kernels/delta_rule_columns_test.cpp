// The recurrent delta rule's vector step (detail::delta_rule_columns_avx2) against
// math::delta_rule_column, the per-column spec the CPU and CUDA recurrences share: the same
// bits for every column of the state and every output, over odd sizes and strided rows.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/model/math.hpp"
#include "tests/cpu_kernels/test_helpers.hpp"

using namespace quanteval::runtime;

TEST_CASE("delta_rule_columns_avx2 gives math::delta_rule_column's bits") {
  if (!cpu_supports(CpuIsa::avx2)) {
    MESSAGE("no AVX2 on this CPU (or capped by QUANTEVAL_CPU_ISA): nothing to compare");
    return;
  }
  std::mt19937_64 rng(quanteval::test::test_seed() + 23);
  auto values = [&](size_t n) { return quanteval::test::floats_over_binades(rng, n, 11); };
  int compared = 0;
  for (int key_dim : {1, 7, 128})
    for (int value_dim : {8, 24, 32, 40, 128}) {
      CAPTURE(key_dim);
      CAPTURE(value_dim);
      const int64_t stride = value_dim + 5;  // rows apart, as a state row inside a larger buffer
      const auto q = values(key_dim), k = values(key_dim), v = values(value_dim);
      const auto start = values(static_cast<size_t>(key_dim) * stride);
      const float decay = 0.8125f, beta = 0.375f;
      std::vector<float> expected_state = start, expected_out(value_dim);
      for (int c = 0; c < value_dim; ++c)
        expected_out[c] =
            math::delta_rule_column(expected_state.data() + c, stride, q.data(), k.data(), key_dim, v[c], decay, beta);
      std::vector<float> state = start, out(value_dim, -1.0f);
      detail::delta_rule_columns_avx2(state.data(), stride, q.data(), k.data(), key_dim, v.data(), value_dim, decay,
                                      beta, out.data());
      CHECK(std::memcmp(out.data(), expected_out.data(), out.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(state.data(), expected_state.data(), state.size() * sizeof(float)) == 0);
      ++compared;
    }
  CHECK(compared == 15);
}
