// Every fast kernel against dequantize_reference + a double-accumulation matmul,
// at every SIMD level this CPU has, over odd shapes; the repacked layout unpacked
// and compared with the original; thread-count independence; invalid input.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "runtime/base/numeric.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/kernels/cpu/linear.hpp"
#include "tests/cpu_kernels/test_helpers.hpp"

using namespace quanteval::runtime;
using quanteval::test::count_mismatches;
using quanteval::test::int16_activation_blocks;
using quanteval::test::random_floats;
using quanteval::test::reference_matmul;
using quanteval::test::reference_matmul_int16;

namespace {

constexpr CpuIsa kAllIsas[] = {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512};
constexpr int kBatchSizes[] = {1, 3, 7, 16, 17, 70};  // 70: three activation row chunks (32 + 32 + 6)

// The levels this CPU can run; says which are skipped and why.
std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : kAllIsas) {
    if (cpu_supports(isa)) {
      out.push_back(isa);
    } else {
      static bool told[3] = {};
      if (!told[static_cast<int>(isa)]) {
        MESSAGE("skipping the " << to_string(isa) << " kernels: this CPU (or build) lacks them");
        told[static_cast<int>(isa)] = true;
      }
    }
  }
  return out;
}

std::vector<float> poisoned(size_t count) { return std::vector<float>(count, std::numeric_limits<float>::quiet_NaN()); }

struct Int4Case {
  int k, n, group_size;
};

// K and N at multiple-of-8 edges (8, 16-column blocks with an 8-column tail),
// each group size, and a K larger than one cache-friendly block.
constexpr Int4Case kInt4Cases[] = {
    {8, 8, -1},      {32, 8, 32},  {64, 24, 32},  {128, 40, 64},   {64, 16, 64},
    {384, 136, 128}, {256, 8, -1}, {520, 24, -1}, {1024, 72, 128}, {96, 56, 32},
};

std::string describe(const Int4Case& c, const QuantizeOptions& o) {
  return fmt::format("K={} N={} group={} act_order={} sym={} {} scales={}", c.k, c.n, c.group_size, o.act_order, o.sym,
                     o.format == GptqFormat::v1 ? "v1" : "v2", o.scale_format == ScaleFormat::f16 ? "f16" : "bf16");
}

constexpr Int4Activations kBothActivations[] = {Int4Activations::fp32, Int4Activations::int16};

const char* to_string(Int4Activations a) { return a == Int4Activations::int16 ? "int16" : "fp32"; }

}  // namespace

TEST_CASE("Int4Linear: repacked layout unpacks to exactly the reference weights") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 10);
  for (const auto& shape : kInt4Cases) {
    for (bool act_order : {false, true}) {
      for (GptqFormat format : {GptqFormat::v1, GptqFormat::v2}) {
        QuantizeOptions options{
            shape.group_size, act_order, act_order, format, act_order ? ScaleFormat::f16 : ScaleFormat::bf16, rng()};
        const auto dense = random_floats(rng, static_cast<size_t>(shape.n) * shape.k);
        const auto owned = quantize_reference(dense, shape.n, shape.k, options);
        const auto linear = Int4Linear::from_gptq(owned.weight);
        CAPTURE(describe(shape, options));
        const bool several_groups = shape.group_size != -1 && shape.k > shape.group_size;
        CHECK(linear.gathers_activations() == (act_order && several_groups));  // one group: nothing to reorder
        CHECK(linear.dequantize() == dequantize_reference(owned.weight));
      }
    }
  }
}

TEST_CASE("Int4Linear: every SIMD level matches the reference over odd shapes") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 20);
  ThreadPool pool(2);
  const auto isas = runnable_isas();
  int configurations = 0;
  for (const auto& shape : kInt4Cases) {
    for (bool act_order : {false, true}) {
      for (GptqFormat format : {GptqFormat::v1, GptqFormat::v2}) {
        for (ScaleFormat scale_format : {ScaleFormat::f16, ScaleFormat::bf16}) {
          const bool sym = (rng() & 1) != 0;  // both kinds of zeros across the sweep
          QuantizeOptions options{shape.group_size, act_order, sym, format, scale_format, rng()};
          const auto dense = random_floats(rng, static_cast<size_t>(shape.n) * shape.k);
          const auto owned = quantize_reference(dense, shape.n, shape.k, options);
          const auto weights = dequantize_reference(owned.weight);
          const bool with_bias = (rng() & 1) != 0;
          const auto bias = with_bias ? random_floats(rng, shape.n) : std::vector<float>{};
          const auto linear = Int4Linear::from_gptq(owned.weight, bias);
          int blocks = 0;
          const auto block_of = int16_activation_blocks(owned.weight, blocks);
          for (int m : kBatchSizes) {
            const auto x = random_floats(rng, static_cast<size_t>(m) * shape.k);
            const auto expected = reference_matmul(x, weights, m, shape.n, shape.k, bias);
            const auto expected_int16 = reference_matmul_int16(x, weights, m, shape.n, shape.k, block_of, blocks, bias);
            for (CpuIsa isa : isas) {
              for (Int4Activations activations : kBothActivations) {
                auto y = poisoned(static_cast<size_t>(m) * shape.n);
                linear.forward(x.data(), m, y.data(), pool, isa, activations);
                const std::string what = fmt::format("{} M={} bias={} isa={} activations={}", describe(shape, options),
                                                     m, with_bias, to_string(isa), to_string(activations));
                CAPTURE(what);
                CHECK(count_mismatches(y, activations == Int4Activations::fp32 ? expected : expected_int16, what) == 0);
                ++configurations;
              }
            }
          }
        }
      }
    }
  }
  MESSAGE(configurations << " INT4 kernel configurations checked");
}

TEST_CASE("Int4Linear: arbitrary g_idx with uneven groups (padded rows) matches the reference") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 30);
  ThreadPool pool(2);
  const int k = 200, n = 40, group_size = 20;  // 10 groups; random g_idx makes sizes uneven and not multiples of 8
  const auto dense = random_floats(rng, static_cast<size_t>(n) * k);
  auto owned = quantize_reference(dense, n, k,
                                  QuantizeOptions{group_size, true, false, GptqFormat::v1, ScaleFormat::f16, rng()});
  std::uniform_int_distribution<int> group(0, 8);  // group 9 left empty on purpose
  for (auto& g : owned.g_idx) g = group(rng);
  owned.refresh_views();
  const auto weights = dequantize_reference(owned.weight);
  const auto linear = Int4Linear::from_gptq(owned.weight);
  CHECK(linear.gathers_activations());
  CHECK(linear.dequantize() == weights);
  int blocks = 0;
  const auto block_of = int16_activation_blocks(owned.weight, blocks);
  for (int m : kBatchSizes) {
    const auto x = random_floats(rng, static_cast<size_t>(m) * k);
    const auto expected = reference_matmul(x, weights, m, n, k);
    const auto expected_int16 = reference_matmul_int16(x, weights, m, n, k, block_of, blocks);
    for (CpuIsa isa : runnable_isas()) {
      for (Int4Activations activations : kBothActivations) {
        auto y = poisoned(static_cast<size_t>(m) * n);
        linear.forward(x.data(), m, y.data(), pool, isa, activations);
        CHECK(count_mismatches(y, activations == Int4Activations::fp32 ? expected : expected_int16,
                               fmt::format("uneven groups M={} isa={} activations={}", m, to_string(isa),
                                           to_string(activations))) == 0);
      }
    }
  }
}

TEST_CASE("DenseLinear: bf16 / f16 / f32 at every SIMD level match the reference") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 40);
  ThreadPool pool(2);
  const auto isas = runnable_isas();
  for (int k : {1, 5, 8, 15, 16, 17, 31, 32, 33, 100, 257}) {
    for (int n : {1, 7, 33}) {
      for (int type = 0; type < 3; ++type) {
        const auto source = random_floats(rng, static_cast<size_t>(n) * k);
        std::vector<uint16_t> bits(source.size());
        std::vector<float> weights(source.size());  // what the kernel must see: the rounded values
        for (size_t i = 0; i < source.size(); ++i) {
          if (type == 0) bits[i] = float_to_bf16(source[i]), weights[i] = bf16_to_float(bits[i]);
          if (type == 1) bits[i] = float_to_f16(source[i]), weights[i] = f16_to_float(bits[i]);
          if (type == 2) weights[i] = source[i];
        }
        const auto bias = (rng() & 1) ? random_floats(rng, n) : std::vector<float>{};
        const auto linear = type == 0   ? DenseLinear::from_bf16(bits.data(), n, k, bias)
                            : type == 1 ? DenseLinear::from_f16(bits.data(), n, k, bias)
                                        : DenseLinear::from_f32(weights.data(), n, k, bias);
        for (int m : kBatchSizes) {
          const auto x = random_floats(rng, static_cast<size_t>(m) * k);
          const auto expected = reference_matmul(x, weights, m, n, k, bias);
          for (CpuIsa isa : isas) {
            auto y = poisoned(static_cast<size_t>(m) * n);
            linear.forward(x.data(), m, y.data(), pool, isa);
            const std::string what = fmt::format("dense {} K={} N={} M={} isa={}",
                                                 type == 0   ? "bf16"
                                                 : type == 1 ? "f16"
                                                             : "f32",
                                                 k, n, m, to_string(isa));
            CAPTURE(what);
            CHECK(count_mismatches(y, expected, what) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("batch invariance: a row's output does not depend on the other rows in the call (bitwise)") {
  // Batched decode runs 16 sequences' rows in one call; a sequence must get the same bits
  // as when it runs alone (batch 1), or sampling could differ with the batch size.
  std::mt19937_64 rng(quanteval::test::test_seed() + 45);
  ThreadPool pool(2);
  for (int k : {17, 64, 896}) {
    const int n = 40;
    const auto dense = random_floats(rng, static_cast<size_t>(n) * k);
    std::vector<uint16_t> bf16_bits(dense.size()), f16_bits(dense.size());
    for (size_t i = 0; i < dense.size(); ++i)
      bf16_bits[i] = float_to_bf16(dense[i]), f16_bits[i] = float_to_f16(dense[i]);
    const auto bias = random_floats(rng, n);
    const DenseLinear linears[] = {DenseLinear::from_bf16(bf16_bits.data(), n, k, bias),
                                   DenseLinear::from_f16(f16_bits.data(), n, k),
                                   DenseLinear::from_f32(dense.data(), n, k)};
    const int k8 = (k + 7) / 8 * 8;
    const auto dense8 = random_floats(rng, static_cast<size_t>(n) * k8);
    const auto owned =
        quantize_reference(dense8, n, k8, QuantizeOptions{-1, false, true, GptqFormat::v1, ScaleFormat::f16, rng()});
    const auto int4 = Int4Linear::from_gptq(owned.weight);
    for (int m : {2, 3, 5, 16, 17, 70}) {
      const auto x = random_floats(rng, static_cast<size_t>(m) * k8);
      for (CpuIsa isa : runnable_isas()) {
        CAPTURE(to_string(isa));
        CAPTURE(k);
        CAPTURE(m);
        for (int type = 0; type < 3; ++type) {
          CAPTURE(type);
          std::vector<float> xk(static_cast<size_t>(m) * k);  // rows of K values
          for (int i = 0; i < m; ++i) std::copy_n(x.begin() + i * k8, k, xk.begin() + i * k);
          auto all = poisoned(static_cast<size_t>(m) * n);
          linears[type].forward(xk.data(), m, all.data(), pool, isa);
          for (int i = 0; i < m; ++i) {
            auto one = poisoned(n);
            linears[type].forward(xk.data() + i * k, 1, one.data(), pool, isa);
            CHECK(std::memcmp(one.data(), all.data() + i * n, n * sizeof(float)) == 0);
          }
        }
        // The int16 path (the default) only: its sums are exact integers and its float steps
        // per block are the same for every tile. The exact fp32 path picks its number of
        // accumulator chains by tile size (docs/cpu-kernels.md), so it is not batch invariant.
        for (Int4Activations activations : {Int4Activations::int16}) {
          auto all = poisoned(static_cast<size_t>(m) * n);
          int4.forward(x.data(), m, all.data(), pool, isa, activations);
          for (int i = 0; i < m; ++i) {
            auto one = poisoned(n);
            int4.forward(x.data() + i * k8, 1, one.data(), pool, isa, activations);
            CHECK(std::memcmp(one.data(), all.data() + i * n, n * sizeof(float)) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("thread count does not change results (bitwise)") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 50);
  ThreadPool one(1), two(2), five(5);
  const int k = 512, n = 200, m = 5;
  const auto dense = random_floats(rng, static_cast<size_t>(n) * k);
  const auto owned =
      quantize_reference(dense, n, k, QuantizeOptions{64, true, true, GptqFormat::v1, ScaleFormat::f16, rng()});
  const auto int4 = Int4Linear::from_gptq(owned.weight);
  std::vector<uint16_t> bits(dense.size());
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = float_to_bf16(dense[i]);
  const auto bf16 = DenseLinear::from_bf16(bits.data(), n, k);
  const auto x = random_floats(rng, static_cast<size_t>(m) * k);
  for (CpuIsa isa : runnable_isas()) {
    CAPTURE(to_string(isa));
    auto a = poisoned(m * n), b = poisoned(m * n), c = poisoned(m * n);
    for (Int4Activations activations : kBothActivations) {
      int4.forward(x.data(), m, a.data(), one, isa, activations);
      int4.forward(x.data(), m, b.data(), two, isa, activations);
      int4.forward(x.data(), m, c.data(), five, isa, activations);
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0);
    }
    bf16.forward(x.data(), m, a.data(), one, isa);
    bf16.forward(x.data(), m, b.data(), two, isa);
    bf16.forward(x.data(), m, c.data(), five, isa);
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0);
  }
  // One 8-column block and five threads: most threads get nothing and nothing breaks.
  const auto small = quantize_reference(random_floats(rng, 8 * 16), 8, 16, QuantizeOptions{-1});
  const auto small_linear = Int4Linear::from_gptq(small.weight);
  auto y1 = poisoned(8), y5 = poisoned(8);
  small_linear.forward(x.data(), 1, y1.data(), one);
  small_linear.forward(x.data(), 1, y5.data(), five);
  CHECK(std::memcmp(y1.data(), y5.data(), sizeof(float) * 8) == 0);
}

TEST_CASE("Int4Linear int16 activations: bitwise identical on every ISA; outliers, zeros, NaN") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 60);
  ThreadPool pool(2);
  const auto isas = runnable_isas();
  MESSAGE("the AVX-512 int16 product at M >= 16 runs on "
          << std::string(amx_enabled() ? "AMX tiles" : "the AVX-512 kernels (no AMX here, or capped)"));
  for (const auto& shape : kInt4Cases) {
    for (bool act_order : {false, true}) {
      QuantizeOptions options{shape.group_size,
                              act_order,
                              !act_order,
                              GptqFormat::v1,
                              act_order ? ScaleFormat::bf16 : ScaleFormat::f16,
                              rng()};
      const auto owned =
          quantize_reference(random_floats(rng, static_cast<size_t>(shape.n) * shape.k), shape.n, shape.k, options);
      const auto weights = dequantize_reference(owned.weight);
      const auto linear = Int4Linear::from_gptq(owned.weight);
      int blocks = 0;
      const auto block_of = int16_activation_blocks(owned.weight, blocks);
      for (int m : kBatchSizes) {
        // Activations over many magnitudes with rare large outliers (as in real MLP inputs),
        // plus an all-zero row: the per-block scale must follow them.
        auto x = random_floats(rng, static_cast<size_t>(m) * shape.k);
        std::uniform_int_distribution<int> exponent(-20, 4);
        for (auto& v : x) v = std::ldexp(v, exponent(rng)) * ((rng() % 97) == 0 ? 300.0f : 1.0f);
        if (m > 2) std::fill(x.begin() + shape.k, x.begin() + 2 * shape.k, 0.0f);
        const auto expected = reference_matmul_int16(x, weights, m, shape.n, shape.k, block_of, blocks);
        std::vector<float> first;
        for (CpuIsa isa : isas) {
          auto y = poisoned(static_cast<size_t>(m) * shape.n);
          linear.forward(x.data(), m, y.data(), pool, isa, Int4Activations::int16);
          const std::string what = fmt::format("{} M={} isa={}", describe(shape, options), m, to_string(isa));
          CAPTURE(what);
          CHECK(count_mismatches(y, expected, what) == 0);
          if (first.empty())
            first = y;
          else
            CHECK(std::memcmp(first.data(), y.data(), y.size() * sizeof(float)) == 0);
        }
      }
    }
  }
  // A NaN or inf activation makes every output of its row non-finite (never a finite
  // wrong number); the other rows are unaffected.
  const int k = 256, n = 24;
  const auto owned = quantize_reference(random_floats(rng, static_cast<size_t>(n) * k), n, k, QuantizeOptions{64});
  const auto linear = Int4Linear::from_gptq(owned.weight);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    auto x = random_floats(rng, 2 * static_cast<size_t>(k));
    x[k + 100] = bad;
    for (CpuIsa isa : isas) {
      auto y = poisoned(2 * static_cast<size_t>(n));
      linear.forward(x.data(), 2, y.data(), pool, isa, Int4Activations::int16);
      for (int j = 0; j < n; ++j) {
        CHECK(std::isfinite(y[j]));
        CHECK(!std::isfinite(y[n + j]));
      }
    }
  }
}

TEST_CASE("int16 activation quantization: scalar, AVX2 and AVX-512 give identical bits, and the documented values") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 70);
  const float specials[] = {0.0f,
                            -0.0f,
                            1.0f,
                            -1.0f,
                            0.5f,
                            1e-40f,
                            -3e-45f,
                            65504.0f,
                            3.4e38f,
                            -3.4e38f,
                            std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
  for (int trial = 0; trial < 3000; ++trial) {
    const int rows = 8 * (1 + static_cast<int>(rng() % 16));
    std::vector<float> values = random_floats(rng, static_cast<size_t>(rows));
    const int mode = trial % 4;
    std::uniform_int_distribution<int> exponent(-140, 120);
    for (auto& v : values) {
      if (mode == 1) v = std::ldexp(v, exponent(rng));                      // any magnitude
      if (mode == 2) v = std::round(v * 64.0f) / 64.0f * 32767.0f / 64.0f;  // many exact ties
      if (mode == 3 && rng() % 16 == 0) v = specials[rng() % std::size(specials)];
    }
    if (trial % 97 == 0) std::fill(values.begin(), values.end(), 0.0f);
    const int64_t stride = 8 * (1 + static_cast<int64_t>(rng() % 3));
    std::vector<int16_t> a(static_cast<size_t>(rows / 8 * stride), 0x5555), b = a;
    detail::QuantBlockScale block_a{}, block_b{};
    detail::quantize_block_scalar(values.data(), rows, a.data(), stride, &block_a);
    // The documented values, from the scalar version.
    float amax = 0.0f;
    bool finite = true;
    for (float v : values) finite = finite && std::isfinite(v), amax = std::max(amax, std::fabs(v));
    if (!finite) {
      CHECK(std::isnan(block_a.scale));
    } else {
      CHECK(block_a.scale == amax / 32767.0f);
      int32_t sum = 0;
      for (int j = 0; j < rows; ++j) {
        const double exact = block_a.scale > 0.0f ? values[j] / static_cast<double>(block_a.scale) : 0.0;
        const int16_t q = a[static_cast<size_t>(j / 8 * stride + (j % 8 < 4 ? 2 * (j % 8) : 2 * (j % 8 - 4) + 1))];
        CHECK(std::fabs(q - exact) <= 0.5 + 1e-9);
        CHECK(std::abs(static_cast<int>(q)) <= 32767);
        sum += q;
      }
      CHECK(block_a.sum == sum);
    }
    if (cpu_supports(CpuIsa::avx2)) {
      std::vector<int16_t> c(a.size(), 0x5555);
      detail::QuantBlockScale block_c{};
      detail::quantize_block_avx2(values.data(), rows, c.data(), stride, &block_c);
      CHECK(a == c);
      CHECK(std::memcmp(&block_a, &block_c, sizeof block_a) == 0);
    }
    if (!cpu_supports(CpuIsa::avx512)) continue;
    detail::quantize_block_avx512(values.data(), rows, b.data(), stride, &block_b);
    CHECK(a == b);
    CHECK(std::memcmp(&block_a, &block_b, sizeof block_a) == 0);
  }
}

TEST_CASE("ThreadPool: covers the range once, propagates exceptions, refuses reentry") {
  ThreadPool pool(3);
  CHECK(pool.size() == 3);
  std::vector<int> hits(1000, 0);
  pool.parallel_for(1000, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) ++hits[i];
  });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
  CHECK_THROWS_WITH_AS(pool.parallel_for(10,
                                         [](int64_t begin, int64_t) {
                                           if (begin > 0) throw std::runtime_error("worker failed");
                                         }),
                       "worker failed", std::runtime_error);
  CHECK_THROWS_AS(pool.parallel_for(10, [&](int64_t, int64_t) { pool.parallel_for(2, [](int64_t, int64_t) {}); }),
                  std::logic_error);
  // Still usable afterwards.
  int64_t total = 0;
  std::mutex mutex;
  pool.parallel_for(7, [&](int64_t begin, int64_t end) {
    std::lock_guard lock(mutex);
    total += end - begin;
  });
  CHECK(total == 7);
}

TEST_CASE("ThreadPool: parallel_for ranges are the even split; parallel_chunks covers once in grain runs") {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    CAPTURE(threads);
    // parallel_for: exactly the size() even ranges, whoever runs them.
    std::mutex mutex;
    std::vector<std::pair<int64_t, int64_t>> ranges;
    pool.parallel_for(23, [&](int64_t begin, int64_t end) {
      std::lock_guard lock(mutex);
      ranges.emplace_back(begin, end);
    });
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<int64_t, int64_t>> expected;
    for (int i = 0; i < threads; ++i) {
      if (23 * i / threads < 23 * (i + 1) / threads) expected.emplace_back(23 * i / threads, 23 * (i + 1) / threads);
    }
    CHECK(ranges == expected);
    // parallel_chunks: every item once, runs of `grain` (the last shorter), many calls in a
    // row (the spinning hand-off between calls), and errors still propagate.
    for (int64_t grain : {1, 3, 7, 100}) {
      for (int call = 0; call < 200; ++call) {
        std::vector<std::atomic<int>> hits(101);
        std::atomic<int> bad_run{0};
        pool.parallel_chunks(101, grain, [&](int64_t begin, int64_t end) {
          if (begin % grain != 0 || (end - begin != grain && end != 101)) ++bad_run;
          for (int64_t i = begin; i < end; ++i) ++hits[static_cast<size_t>(i)];
        });
        CHECK(bad_run == 0);
        CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h == 1; }));
      }
    }
    CHECK_THROWS_WITH_AS(pool.parallel_chunks(50, 5,
                                              [](int64_t begin, int64_t) {
                                                if (begin == 45) throw std::runtime_error("chunk failed");
                                              }),
                         "chunk failed", std::runtime_error);
    CHECK_THROWS_AS(pool.parallel_chunks(5, 0, [](int64_t, int64_t) {}), std::invalid_argument);
  }
}

// parallel_streams' run rule, restated: half of what a share has left, rounded up to whole
// min_run, at most grain, at most what is left.
namespace {
int64_t stream_run_length(int64_t left, int64_t grain, int64_t min_run) {
  return std::min({left, grain, ((left + 1) / 2 + min_run - 1) / min_run * min_run});
}
}  // namespace

TEST_CASE("ThreadPool: parallel_streams covers once in runs that shrink toward a share's end") {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    CAPTURE(threads);
    for (int64_t count : {1, 2, 101, 1000}) {
      for (int64_t grain : {1, 3, 7, 100}) {
        for (int64_t min_run : {int64_t{1}, grain / 2 + 1}) {
          CAPTURE(count);
          CAPTURE(grain);
          CAPTURE(min_run);
          for (int call = 0; call < 50; ++call) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
            std::atomic<int> bad_run{0};
            std::mutex mutex;
            std::vector<std::pair<int64_t, int64_t>> runs;
            pool.parallel_streams(
                count, grain,
                [&](int64_t begin, int64_t end) {
                  if (end - begin > grain || end <= begin) ++bad_run;
                  for (int64_t i = begin; i < end; ++i) ++hits[static_cast<size_t>(i)];
                  std::lock_guard lock(mutex);
                  runs.emplace_back(begin, end);
                },
                min_run);
            CHECK(bad_run == 0);
            CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h == 1; }));
            if (threads == 1) {  // one stream: consecutive runs from the front, by the rule
              int64_t begin = 0;
              for (const auto& run : runs) {
                CHECK(run == std::make_pair(begin, begin + stream_run_length(count - begin, grain, min_run)));
                begin = run.second;
              }
              CHECK(begin == count);
            }
          }
        }
      }
    }
    CHECK_THROWS_WITH_AS(pool.parallel_streams(50, 5,
                                               [](int64_t begin, int64_t) {
                                                 if (begin == 45) throw std::runtime_error("run failed");
                                               }),
                         "run failed", std::runtime_error);
    CHECK_THROWS_AS(pool.parallel_streams(5, 0, [](int64_t, int64_t) {}), std::invalid_argument);
    CHECK_THROWS_AS(pool.parallel_streams(5, 2, [](int64_t, int64_t) {}, 0), std::invalid_argument);
    CHECK_THROWS_AS(pool.parallel_streams(5, 2, [](int64_t, int64_t) {}, 3), std::invalid_argument);
    CHECK_THROWS_AS(pool.parallel_streams(int64_t{1} << 31, 1, [](int64_t, int64_t) {}), std::invalid_argument);
  }
  // A share whose thread is held up is taken over: the worker blocks in its first run until
  // everything else is done (at most 10 s), so the caller runs its own share front to back
  // and then the rest of the worker's from the back, in shrinking runs.
  ThreadPool pool(2);
  const auto caller = std::this_thread::get_id();
  std::vector<std::atomic<int>> hits(64);
  std::atomic<int> done{0};
  std::vector<std::pair<int64_t, int64_t>> caller_runs;  // only the caller appends
  pool.parallel_streams(64, 4, [&](int64_t begin, int64_t end) {
    const int items = static_cast<int>(end - begin);
    if (std::this_thread::get_id() != caller) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (done.load() < 64 - items && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    } else {
      caller_runs.emplace_back(begin, end);
    }
    for (int64_t i = begin; i < end; ++i) ++hits[static_cast<size_t>(i)];
    done += items;
  });
  CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h == 1; }));
  int64_t by_caller = 0;
  for (const auto& run : caller_runs) by_caller += run.second - run.first;
  CHECK(by_caller >= 60);
  // Its own share [0, 32): seven runs of 4, then 2, 1, 1 as the share runs out.
  const std::vector<std::pair<int64_t, int64_t>> own = {{0, 4},   {4, 8},   {8, 12},  {12, 16}, {16, 20},
                                                         {20, 24}, {24, 28}, {28, 30}, {30, 31}, {31, 32}};
  REQUIRE(caller_runs.size() >= own.size());
  for (size_t r = 0; r < own.size(); ++r) CHECK(caller_runs[r] == own[r]);
  // Then the worker's share from its back end: each run ends where the previous one began.
  REQUIRE(caller_runs.size() > own.size());
  CHECK(caller_runs[own.size()].second == 64);
  for (size_t r = own.size() + 1; r < caller_runs.size(); ++r) CHECK(caller_runs[r].second == caller_runs[r - 1].first);
}

TEST_CASE("Int4Linear::forward_shared_input gives each layer forward()'s bits") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 80);
  ThreadPool pool(2);
  const int k = 384;
  // Different N (some not a multiple of the 16-column block), act-order and not, with bias.
  // Layers that quantize x alike share one quantized copy: 200 and 24 (one act-order
  // permutation), 40 and 56 (no act-order); 72 has a permutation of its own.
  struct Layer {
    int n;
    bool act_order;
    uint64_t permutation_seed;
  };
  const uint64_t shared_seed = rng();
  std::vector<OwnedGptqWeight> owned;
  std::vector<Int4Linear> layers;
  std::vector<std::vector<float>> biases;
  for (const Layer& layer : {Layer{200, true, shared_seed}, Layer{40, false, 0}, Layer{24, true, shared_seed},
                             Layer{56, false, 0}, Layer{72, true, shared_seed + 1}}) {
    const int n = layer.n;
    owned.push_back(quantize_reference(
        random_floats(rng, static_cast<size_t>(n) * k), n, k,
        QuantizeOptions{128, layer.act_order, !layer.act_order, GptqFormat::v1,
                        layer.act_order ? ScaleFormat::bf16 : ScaleFormat::f16, layer.permutation_seed}));
    biases.push_back(random_floats(rng, static_cast<size_t>(n)));
    layers.push_back(Int4Linear::from_gptq(owned.back().weight, biases.back()));
  }
  CHECK(layers[2].quantizes_like(layers[0]));
  CHECK(layers[3].quantizes_like(layers[1]));
  CHECK_FALSE(layers[1].quantizes_like(layers[0]));
  CHECK_FALSE(layers[4].quantizes_like(layers[0]));
  std::vector<const Int4Linear*> pointers;
  for (const auto& layer : layers) pointers.push_back(&layer);
  for (int m : {1, 3, 16, 40}) {  // 16: the AMX rows where the CPU has them; 40: more than one row chunk
    CAPTURE(m);
    const auto x = random_floats(rng, static_cast<size_t>(m) * k);
    std::vector<std::vector<float>> shared, alone;
    std::vector<float*> outputs;
    for (const auto& layer : layers) {
      shared.push_back(poisoned(static_cast<size_t>(m) * layer.out_features()));
      alone.push_back(poisoned(static_cast<size_t>(m) * layer.out_features()));
      outputs.push_back(shared.back().data());
      layer.forward(x.data(), m, alone.back().data(), pool);
    }
    Int4Linear::forward_shared_input(pointers, x.data(), m, outputs, pool);
    for (size_t i = 0; i < layers.size(); ++i) {
      CAPTURE(i);
      CHECK(std::memcmp(shared[i].data(), alone[i].data(), shared[i].size() * sizeof(float)) == 0);
    }
  }
  // Mismatched inputs are refused.
  const auto other = quantize_reference(random_floats(rng, 16 * 256), 16, 256, QuantizeOptions{128});
  const auto other_layer = Int4Linear::from_gptq(other.weight);
  std::vector<const Int4Linear*> mixed{&layers[0], &other_layer};
  std::vector<float> x(k), y0(200), y1(16);
  std::vector<float*> mixed_out{y0.data(), y1.data()};
  CHECK_THROWS_AS(Int4Linear::forward_shared_input(mixed, x.data(), 1, mixed_out, pool), std::invalid_argument);
  std::vector<float*> one_out{y0.data()};
  CHECK_THROWS_AS(Int4Linear::forward_shared_input(pointers, x.data(), 1, one_out, pool), std::invalid_argument);
}

TEST_CASE("invalid shapes and arguments are rejected with a message") {
  ThreadPool pool(1);
  std::mt19937_64 rng(quanteval::test::test_seed() + 60);
  const auto owned = quantize_reference(random_floats(rng, 16 * 32), 16, 32, QuantizeOptions{32});
  auto bad = owned.weight;
  bad.in_features = 36;
  CHECK_THROWS_AS(Int4Linear::from_gptq(bad), std::invalid_argument);
  const std::vector<float> wrong_bias(15);
  CHECK_THROWS_AS(Int4Linear::from_gptq(owned.weight, wrong_bias), std::invalid_argument);
  const auto linear = Int4Linear::from_gptq(owned.weight);
  std::vector<float> x(32), y(16);
  CHECK_THROWS_AS(linear.forward(x.data(), 0, y.data(), pool), std::invalid_argument);
  CHECK_THROWS_AS(linear.forward(nullptr, 1, y.data(), pool), std::invalid_argument);
  for (CpuIsa isa : kAllIsas) {
    if (!cpu_supports(isa)) CHECK_THROWS_AS(linear.forward(x.data(), 1, y.data(), pool, isa), std::runtime_error);
  }
  CHECK_THROWS_AS(DenseLinear::from_f32(x.data(), 0, 32), std::invalid_argument);
  CHECK_THROWS_AS(DenseLinear::from_f32(x.data(), 1, 32, wrong_bias), std::invalid_argument);
  CHECK_THROWS_AS(quantize_reference(x, 1, 32, QuantizeOptions{32}), std::invalid_argument);
}

// Batch invariance: a row's output is the same bits whether it is computed
// alone (m = 1, decode at --max-batch 1) or as row i of a batch of m rows
// (decode at --max-batch 16, or prefill). This is what lets `quanteval run`
// give identical samples at any batch size (docs/cpu-kernels.md). Checked for
// every path the runtime uses; the INT4 fp32-activation path (tests and
// benchmarks only) picks its accumulator chains by tile size and is not
// batch-invariant, as documented.
TEST_CASE("a row's output does not depend on the other rows of the batch (bitwise)") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 70);
  ThreadPool pool(2);
  const int k = 320, n = 152, max_m = 19;
  const auto dense = random_floats(rng, static_cast<size_t>(n) * k);
  const auto owned =
      quantize_reference(dense, n, k, QuantizeOptions{64, true, true, GptqFormat::v1, ScaleFormat::f16, rng()});
  const auto int4 = Int4Linear::from_gptq(owned.weight);
  std::vector<uint16_t> bf16_bits(dense.size()), f16_bits(dense.size());
  for (size_t i = 0; i < dense.size(); ++i) {
    bf16_bits[i] = float_to_bf16(dense[i]);
    f16_bits[i] = float_to_f16(dense[i]);
  }
  const auto bf16 = DenseLinear::from_bf16(bf16_bits.data(), n, k);
  const auto f16 = DenseLinear::from_f16(f16_bits.data(), n, k);
  const auto f32 = DenseLinear::from_f32(dense.data(), n, k);
  const auto x = random_floats(rng, static_cast<size_t>(max_m) * k);

  using Forward = std::function<void(const float*, int, float*)>;
  auto check_invariant = [&](const std::string& what, const Forward& forward) {
    CAPTURE(what);
    std::vector<float> alone(static_cast<size_t>(max_m) * n);
    for (int row = 0; row < max_m; ++row) {
      auto y = poisoned(n);
      forward(x.data() + static_cast<size_t>(row) * k, 1, y.data());
      std::copy(y.begin(), y.end(), alone.begin() + static_cast<std::ptrdiff_t>(row) * n);
    }
    int differing = 0;
    for (int m = 2; m <= max_m; ++m) {
      auto y = poisoned(static_cast<size_t>(m) * n);
      forward(x.data(), m, y.data());
      if (std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)) != 0) ++differing;
    }
    CHECK_MESSAGE(differing == 0, differing << " of " << max_m - 1 << " batch sizes differ from rows computed alone");
  };
  for (CpuIsa isa : runnable_isas()) {
    const std::string level(to_string(isa));
    check_invariant("int4 int16 " + level,
                    [&](const float* a, int m, float* y) { int4.forward(a, m, y, pool, isa, Int4Activations::int16); });
    check_invariant("bf16 " + level, [&](const float* a, int m, float* y) { bf16.forward(a, m, y, pool, isa); });
    check_invariant("f16 " + level, [&](const float* a, int m, float* y) { f16.forward(a, m, y, pool, isa); });
    check_invariant("f32 " + level, [&](const float* a, int m, float* y) { f32.forward(a, m, y, pool, isa); });
  }
}
