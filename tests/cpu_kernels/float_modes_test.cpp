// Subnormals flushed to zero (runtime/platform/float_modes.hpp): set and restored by the
// scope, on every pool thread during a call and on the CPU backend's step, so no piece of
// work computes in a different mode from another (the bits would then depend on the split).
#include <doctest/doctest.h>

#include <atomic>
#include <cfloat>
#include <cmath>

#include "runtime/kernels/cpu/backend.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/platform/float_modes.hpp"

using namespace quanteval::runtime;

namespace {
// A subnormal times one, through memory so the compiler cannot fold it: 0 when flushed.
float subnormal_product() {
  volatile float tiny = FLT_MIN / 4.0f, one = 1.0f;
  return tiny * one;
}
}  // namespace

#if defined(__x86_64__) || defined(__i386__)
TEST_CASE("FlushSubnormals sets FTZ and DAZ while it lives and restores the mode after") {
  REQUIRE_FALSE(subnormals_flushed_on_this_thread());  // the test thread's default mode
  CHECK(subnormal_product() == FLT_MIN / 4.0f);
  {
    const FlushSubnormals flush;
    CHECK(subnormals_flushed_on_this_thread());
    CHECK(subnormal_product() == 0.0f);
    {
      const FlushSubnormals nested;
      CHECK(subnormals_flushed_on_this_thread());
    }
    CHECK(subnormals_flushed_on_this_thread());  // the inner scope restored the outer mode
  }
  CHECK_FALSE(subnormals_flushed_on_this_thread());
  CHECK(subnormal_product() == FLT_MIN / 4.0f);
}

TEST_CASE("every thread of a pool call flushes subnormals, the caller only during the call") {
  ThreadPool pool(3);
  std::atomic<int> pieces{0}, flushed{0}, zero_products{0};
  pool.parallel_chunks(64, 1, [&](int64_t, int64_t) {
    ++pieces;
    if (subnormals_flushed_on_this_thread()) ++flushed;
    if (subnormal_product() == 0.0f) ++zero_products;
  });
  CHECK(pieces == 64);
  CHECK(flushed == 64);
  CHECK(zero_products == 64);
  CHECK_FALSE(subnormals_flushed_on_this_thread());
}

TEST_CASE("the CPU backend's step scope flushes subnormals on the model's thread") {
  CpuBackend backend(2, LinearKernels::fast);
  {
    const auto step = backend.begin_step();
    REQUIRE(step != nullptr);
    CHECK(subnormals_flushed_on_this_thread());
  }
  CHECK_FALSE(subnormals_flushed_on_this_thread());
}
#endif
