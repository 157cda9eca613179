// read_stream (the loads behind the benchmarks' memory floor) reads every byte once at
// every SIMD level; the ISA cap (QUANTEVAL_CPU_ISA) bounds what cpu_supports reports.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

#include "runtime/kernels/cpu/bandwidth.hpp"
#include "runtime/kernels/cpu/isa.hpp"
#include "tests/cpu_kernels/test_helpers.hpp"

using namespace quanteval::runtime;

TEST_CASE("read_stream XORs every word once at every ISA, at odd sizes and offsets") {
  std::mt19937_64 rng(quanteval::test::test_seed());
  std::vector<std::uint64_t> words(5000);
  for (auto& w : words) w = rng();
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(words.data());
  for (std::size_t count : {0, 1, 3, 15, 16, 31, 32, 33, 63, 64, 65, 127, 1000, 4999}) {
    for (std::size_t offset_words : {0, 1, 3}) {
      if (offset_words + count > words.size()) continue;
      std::uint64_t expected = 0;
      for (std::size_t i = 0; i < count; ++i) expected ^= words[offset_words + i];
      for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512}) {
        if (!cpu_supports(isa)) continue;
        CAPTURE(count);
        CAPTURE(offset_words);
        CAPTURE(to_string(isa));
        CHECK(read_stream(bytes + 8 * offset_words, 8 * count, isa) == expected);
        CHECK(read_stream(bytes + 8 * offset_words, 8 * count, isa, 2048) == expected);
      }
    }
  }
  CHECK_THROWS_AS(read_stream(bytes, 12, CpuIsa::scalar), std::invalid_argument);
}

TEST_CASE("measure_read_bandwidth reports its setup and a positive rate") {
  ThreadPool pool(2);
  const ReadBandwidth bw = measure_read_bandwidth(pool, std::size_t{1} << 20, 2);
  CHECK(bw.gb_per_s > 0);
  CHECK(bw.worst_gb_per_s <= bw.gb_per_s);
  CHECK(bw.threads == 2);
  CHECK(bw.bytes == std::size_t{1} << 20);
  // The best configuration's loads: a SIMD width the CPU has (scalar only without SIMD).
  CHECK(cpu_supports(bw.isa));
  if (best_cpu_isa() != CpuIsa::scalar) CHECK(bw.isa != CpuIsa::scalar);
  const int widths = cpu_supports(CpuIsa::avx512) ? 2 : cpu_supports(CpuIsa::avx2) ? 1 : 0;
  CHECK(bw.configurations == (widths == 0 ? 1 : 4 * widths));
  CHECK(
      (bw.prefetch_bytes == 0 || bw.prefetch_bytes == 2048 || bw.prefetch_bytes == 4096 || bw.prefetch_bytes == 8192));
  CHECK(!cpu_model_name().empty());
}

TEST_CASE("ReadPass reads its whole buffer, rounded up to 4 KiB, once per pass") {
  ThreadPool pool(2);
  ReadPass pass(pool, 300000);    // not a page multiple
  CHECK(pass.bytes() == 303104);  // 74 pages
  for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512}) {
    if (!cpu_supports(isa)) continue;
    CAPTURE(to_string(isa));
    const double gbs = pass.gb_per_s(isa, isa == CpuIsa::scalar ? 0 : 2048);  // throws on a bad checksum
    CHECK(gbs > 0);
    CHECK(std::isfinite(gbs));
  }
}

TEST_CASE("QUANTEVAL_CPU_ISA caps the levels cpu_supports reports") {
  const char* env = std::getenv("QUANTEVAL_CPU_ISA");
  const std::string_view cap = env ? env : "";
  MESSAGE("QUANTEVAL_CPU_ISA=" << cap << ", running " << describe_cpu_isa());
  if (cap == "avx2") {
    CHECK(isa_cap() == CpuIsa::avx2);
    CHECK_FALSE(cpu_supports(CpuIsa::avx512));
    CHECK(best_cpu_isa() != CpuIsa::avx512);
    CHECK_FALSE(amx_enabled());
  } else if (cap == "scalar") {
    CHECK(isa_cap() == CpuIsa::scalar);
    CHECK(best_cpu_isa() == CpuIsa::scalar);
    CHECK_FALSE(amx_enabled());
  } else if (cap == "avx512") {
    CHECK(isa_cap() == CpuIsa::avx512);
    CHECK_FALSE(amx_enabled());
    const std::string running = describe_cpu_isa();
    CHECK(running.substr(0, running.find(' ')).find("+amx") == std::string::npos);
  } else {
    CHECK(isa_cap() == CpuIsa::avx512);
    // No cap (or amx): the tiles are used wherever the hardware has them.
    if (amx_enabled()) CHECK(describe_cpu_isa().find("+amx") != std::string::npos);
  }
  CHECK(cpu_supports(CpuIsa::scalar));
}

TEST_CASE("QUANTEVAL_CPU_DENSE_PREFETCH picks the bf16 kernel's prefetch scheme") {
  const char* env = std::getenv("QUANTEVAL_CPU_DENSE_PREFETCH");
  const std::string_view scheme = env ? env : "";
  MESSAGE("QUANTEVAL_CPU_DENSE_PREFETCH=" << scheme << ", running " << describe_cpu_isa());
  if (scheme == "rows") {
    CHECK(dense_row_prefetch());
  } else if (scheme == "linear") {
    CHECK_FALSE(dense_row_prefetch());
  } else {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    CHECK(dense_row_prefetch() == (__builtin_cpu_is("intel") != 0));
#else
    CHECK_FALSE(dense_row_prefetch());
#endif
  }
  const bool named = describe_cpu_isa().find("bf16 row prefetch") != std::string::npos;
  CHECK(named == (best_cpu_isa() == CpuIsa::avx512 && dense_row_prefetch()));
}

TEST_CASE("QUANTEVAL_CPU_INT4_PREFETCH picks the INT4 kernels' software prefetch") {
  const char* env = std::getenv("QUANTEVAL_CPU_INT4_PREFETCH");
  const std::string_view scheme = env ? env : "";
  MESSAGE("QUANTEVAL_CPU_INT4_PREFETCH=" << scheme << ", running " << describe_cpu_isa());
  if (scheme == "hinted") {
    CHECK(int4_software_prefetch());
  } else if (scheme == "hardware") {
    CHECK_FALSE(int4_software_prefetch());
  } else {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    const bool zen4 = __builtin_cpu_is("amdfam19h") && __builtin_cpu_supports("avx512f");
    CHECK(int4_software_prefetch() == !zen4);
#else
    CHECK(int4_software_prefetch());
#endif
  }
  const bool named = describe_cpu_isa().find("int4 hardware prefetch") != std::string::npos;
  CHECK(named == (best_cpu_isa() != CpuIsa::scalar && !int4_software_prefetch()));
}
