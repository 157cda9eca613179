// CPU GEMM micro-benchmark: the INT4 GPTQ kernel (default int16-activation path, and
// the exact fp32 path) against two baselines measured in the same run on the same
// shape: memcpy of a buffer the size of the packed INT4 stream and the dense BF16
// kernel (all hot in cache), plus at M = 1 the DRAM-resident case: the GEMV over a
// rotation of copies of the weight totalling >= 256 MB (far beyond the LLC), compared
// with the memory floor (measure_read_bandwidth); a cold GEMV above the floor is
// flagged and the program exits with 1.
//
//   bench_cpu_gemm [--threads N] [--isa scalar|avx2|avx512|amx] [--quick] [--cpu-time]
//
// --isa caps the kernels exactly as QUANTEVAL_CPU_ISA does (it sets it for this process):
// avx2 is what a plain AVX2 CPU runs (no AVX-VNNI, no AVX-512), avx512 is AVX-512 without
// AMX tiles.
// --quick: the first shape only, with M up to 512 (prefill); --cpu-time (with --threads 1):
// kernel rows timed in thread CPU time instead of wall time (see thread_cpu_seconds).
//
// Weights are random GPTQ v1 words with act-order g_idx and group 64 (the
// target checkpoint's settings); values do not affect speed. Times are the
// minimum over repetitions (robust to other load on a shared machine).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "runtime/base/numeric.hpp"
#include "runtime/kernels/cpu/bandwidth.hpp"
#include "runtime/kernels/cpu/linear.hpp"

using namespace quanteval::runtime;

namespace {

struct Shape {
  const char* label;
  int k;
  int n;
};

// Seconds of the calling thread's CPU time (--cpu-time, with --threads 1): on a machine
// shared with other jobs a call longer than a scheduler slice cannot dodge them, so its
// wall time measures the load; its thread CPU time does not (cache sharing aside).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Seconds for the fastest of `reps` calls, after one warm-up call.
template <typename F>
double min_seconds(int reps, F&& f, bool cpu_time = false) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    if (cpu_time) {
      const double start = thread_cpu_seconds();
      f();
      best = std::min(best, thread_cpu_seconds() - start);
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// Repetitions so one measurement is ~0.3 s of work at most.
int reps_for(size_t bytes) {
  return static_cast<int>(std::clamp<size_t>(300'000'000 / std::max<size_t>(bytes, 1) / 10, 3, 200));
}

OwnedGptqWeight random_gptq(int k, int n, int group_size, std::mt19937_64& rng) {
  OwnedGptqWeight owned;
  GptqWeight& w = owned.weight;
  w.name = "bench";
  w.in_features = k;
  w.out_features = n;
  w.group_size = group_size;
  const int groups = k / group_size;
  owned.qweight.resize(static_cast<size_t>(k / 8) * n);
  for (auto& word : owned.qweight) word = static_cast<int32_t>(rng());
  owned.qzeros.assign(static_cast<size_t>(groups) * (n / 8), 0x77777777);  // symmetric: stored 7
  owned.scales.resize(static_cast<size_t>(groups) * n);
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  for (auto& s : owned.scales) s = float_to_f16(scale(rng));
  std::vector<int32_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  owned.g_idx.resize(k);
  for (int i = 0; i < k; ++i) owned.g_idx[order[i]] = i / group_size;
  owned.refresh_views();
  return owned;
}

}  // namespace

int main(int argc, char** argv) try {
  int threads = 0;
  std::string isa_name;
  bool quick = false;
  bool cpu_time = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) {
      threads = std::stoi(argv[++i]);
    } else if (arg == "--isa" && i + 1 < argc) {
      isa_name = argv[++i];
    } else if (arg == "--quick") {
      quick = true;
    } else if (arg == "--cpu-time") {
      cpu_time = true;
    } else {
      throw std::invalid_argument(
          fmt::format("unknown argument '{}' (usage: bench_cpu_gemm [--threads N] "
                      "[--isa scalar|avx2|avx512|amx] [--quick] [--cpu-time])",
                      arg));
    }
  }
  if (!isa_name.empty()) {
    // Before anything reads the cap (it is read once per process). Forcing only the kernel
    // entry point left the cap's other choices (AVX-VNNI in the AVX2 kernels, AMX) as the
    // hardware has them, so "--isa avx2" measured an AVX-VNNI machine, not an AVX2 one.
    const char* set = std::getenv("QUANTEVAL_CPU_ISA");
    if (set != nullptr && *set != '\0' && isa_name != set)
      throw std::invalid_argument(fmt::format("--isa {} contradicts QUANTEVAL_CPU_ISA={}", isa_name, set));
    ::setenv("QUANTEVAL_CPU_ISA", isa_name.c_str(), 1);
    isa_cap();  // an unknown name throws here, naming it
  }
  const CpuIsa isa = best_cpu_isa();
  if (!isa_name.empty() && std::string_view(to_string(isa)) != isa_name && !(isa_name == "amx" && amx_enabled()))
    throw std::runtime_error(fmt::format("--isa {}: not supported on this CPU (it runs {})", isa_name, to_string(isa)));
  ThreadPool pool(threads);
  if (cpu_time && pool.size() != 1)
    throw std::invalid_argument("--cpu-time needs --threads 1 (it times the calling thread)");
  std::vector<Shape> shapes = {
      {"qwen2.5-0.5b mlp up/gate", 896, 4864},
      {"qwen2.5-0.5b mlp down", 4864, 896},
      {"qwen2.5-0.5b qkv", 896, 1152},
      {"27b mlp up, 1/4 of rows", 5120, 8704},
      {"27b mlp down, 1/4 of rows", 17408, 1280},
  };
  if (quick) shapes.resize(1);
  const std::vector<int> batch_sizes = quick ? std::vector<int>{1, 4, 16, 128, 512} : std::vector<int>{1, 4, 16, 128};
  constexpr int kGroupSize = 64;

  // The floor is measured before and after the rows (a shared machine's load changes);
  // the better of the two counts.
  ReadBandwidth floor_bw = measure_read_bandwidth(pool, std::size_t{1} << 30, 5);
  fmt::print("CPU: {}; ISA: {}; threads {}\n", cpu_model_name(), describe_cpu_isa(), pool.size());
  fmt::print(
      "bench_cpu_gemm: group_size={} act-order; int4 = int16 activations (the default), "
      "fp32 = the exact fp32 path; times = {}\n",
      kGroupSize, cpu_time ? "thread CPU time" : "wall time");
  struct ColdRow {
    const char* label;
    int k, n;
    double gbs;
  };
  std::vector<ColdRow> cold_rows;
  fmt::print(
      "| shape | K | N | M | int4 ms | int4 GB/s | int4 fp32 ms | fp32 / int16 time | memcpy ms | int4 vs memcpy | "
      "bf16 ms | bf16 GB/s | int4 speed-up vs bf16 |\n");
  fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  std::mt19937_64 rng(1234);
  for (const Shape& shape : shapes) {
    const auto owned = random_gptq(shape.k, shape.n, kGroupSize, rng);
    // From an arena as a model's weights are (CpuBackend): huge pages even under 2 MiB; the
    // DRAM rotation's copies below come from it too.
    const auto int4 = Int4Linear::from_gptq(owned.weight, {}, std::make_shared<StreamedArena>());
    std::vector<uint16_t> bf16_bits(static_cast<size_t>(shape.n) * shape.k);
    for (auto& b : bf16_bits) b = float_to_bf16(static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-4f);
    const auto bf16 = DenseLinear::from_bf16(bf16_bits.data(), shape.n, shape.k);
    bf16_bits = {};

    const size_t int4_bytes = int4.packed_bytes();
    std::vector<char> copy_src(int4_bytes, 1), copy_dst(int4_bytes);
    const double copy_s = min_seconds(reps_for(int4_bytes), [&] {
      std::memcpy(copy_dst.data(), copy_src.data(), int4_bytes);
      asm volatile("" : : "r"(copy_dst.data()) : "memory");  // keep the copy
    });
    {
      // DRAM-resident GEMV: enough copies that each call finds its weight out of cache.
      const int copies = static_cast<int>(std::max<size_t>(2, (size_t{256} << 20) / int4_bytes + 1));
      std::vector<Int4Linear> rotation(static_cast<size_t>(copies), int4);
      std::vector<float> x(static_cast<size_t>(shape.k), 0.5f), y(static_cast<size_t>(shape.n));
      for (auto& copy : rotation) copy.forward(x.data(), 1, y.data(), pool, isa, Int4Activations::int16);
      double best = 1e30;
      for (int pass = 0; pass < 3; ++pass) {
        const auto start = std::chrono::steady_clock::now();
        for (auto& copy : rotation) copy.forward(x.data(), 1, y.data(), pool, isa, Int4Activations::int16);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      cold_rows.push_back({shape.label, shape.k, shape.n, static_cast<double>(int4_bytes) * copies / best / 1e9});
    }
    for (int m : batch_sizes) {
      std::vector<float> x(static_cast<size_t>(m) * shape.k), y(static_cast<size_t>(m) * shape.n);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      for (auto& v : x) v = dist(rng);
      const double int4_s = min_seconds(
          reps_for(int4_bytes), [&] { int4.forward(x.data(), m, y.data(), pool, isa, Int4Activations::int16); },
          cpu_time);
      const double fp32_s = min_seconds(
          reps_for(int4_bytes), [&] { int4.forward(x.data(), m, y.data(), pool, isa, Int4Activations::fp32); },
          cpu_time);
      const double bf16_s = min_seconds(
          reps_for(bf16.weight_bytes()), [&] { bf16.forward(x.data(), m, y.data(), pool, isa); }, cpu_time);
      fmt::print(
          "| {} | {} | {} | {} | {:.3f} | {:.1f} | {:.3f} | {:.2f}x | {:.3f} | {:.2f} | {:.3f} | {:.1f} | {:.2f}x |\n",
          shape.label, shape.k, shape.n, m, int4_s * 1e3, int4_bytes / int4_s / 1e9, fp32_s * 1e3, fp32_s / int4_s,
          copy_s * 1e3, copy_s / int4_s, bf16_s * 1e3, bf16.weight_bytes() / bf16_s / 1e9, bf16_s / int4_s);
      std::fflush(stdout);
    }
  }
  fmt::print(
      "int4 GB/s = packed INT4 stream (nibbles + 16-bit scale/zero headers) / time; memcpy copies a buffer of\n"
      "that size (reads and writes it); 'int4 vs memcpy' = memcpy time / int4 time.\n");
  const ReadBandwidth again = measure_read_bandwidth(pool, std::size_t{1} << 30, 5);
  if (again.gb_per_s > floor_bw.gb_per_s) floor_bw = again;
  fmt::print(
      "\nread floor: {:.1f} GB/s ({} loads, prefetch {} B, {} threads, 1 GiB; best of 2 x {} passes x {} load "
      "widths / prefetch distances)\n",
      floor_bw.gb_per_s, to_string(floor_bw.isa), floor_bw.prefetch_bytes, floor_bw.threads, floor_bw.passes,
      floor_bw.configurations);
  fmt::print("DRAM-resident INT4 GEMV, M = 1 (rotation of copies >= 256 MB), vs that floor:\n");
  fmt::print("| shape | K | N | GB/s | of floor |\n| --- | ---: | ---: | ---: | ---: |\n");
  int over_floor = 0;
  for (const auto& row : cold_rows) {
    const bool over = row.gbs > floor_bw.gb_per_s;
    over_floor += over;
    fmt::print("| {} | {} | {} | {:.1f} | {:.0f}%{} |\n", row.label, row.k, row.n, row.gbs,
               100 * row.gbs / floor_bw.gb_per_s, over ? " **ABOVE THE FLOOR**" : "");
  }
  if (over_floor > 0) {
    std::fprintf(stderr, "bench_cpu_gemm: %d GEMV(s) read faster than the measured floor\n", over_floor);
    return 1;
  }
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "bench_cpu_gemm: %s\n", error.what());
  return 2;
}
