// INT4 GEMM on the GPU against the two numbers that bound it, measured in the same run:
//   * the bandwidth floor: bytes the kernel must stream (packed weights + scales) over the
//     device's measured copy bandwidth (a large cudaMemcpy D2D, read + write bytes counted);
//   * cuBLAS BF16 GEMM on the same shape (what the INT4 kernel must beat), loaded at run time.
// Every (shape, M, variant) result is checked against the FP64 GPU reference (rows 0 and M-1,
// runtime/kernels/cuda/reference_gemm.hpp) before it is timed; a failed check is printed in the row
// and makes the exit status 1.
//
// Variants (MarlinGemmOptions), each timed in the same run:
//   legacy    the kernel as first written (64-bit division per k-block, serial stream-K
//             reduction, grid filling every SM): MarlinGemmOptions::legacy()
//   current   the defaults, INT4 kernel at every M (hand-over disabled)
//   actorder  current on an act-order weight (activations gathered first; the seed checkpoint
//             is desc_act)
//   dense     the hand-over path: dequantize into scratch + cuBLAS (M >= 64 only)
//   fill / div / serial   current with one change undone (min_kblocks 1 / division indexing /
//             serial reduction), at M = 1 and 16: what each change is worth on its own
// Shapes: Qwen3.5-27B's quantized layers. Timing: CUDA events around a batch of launches that
// rotates through enough weight copies that each launch misses the L2, after a warm-up; the
// median of several batches.
//
//   bench_gemm_cuda [--quick] [--no-handover] [--tsv FILE]
// Exit: 0 ok, 1 a check failed or an error, 2 usage, 77 no usable GPU (the reason is printed).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/kernels/cuda/cublas_library.hpp"
#include "runtime/kernels/cuda/marlin_gemm.hpp"
#include "runtime/kernels/cuda/marlin_layout.hpp"
#include "runtime/kernels/cuda/reference_gemm.hpp"

namespace qc = quanteval::runtime::cuda;
namespace mk = quanteval::runtime::marlin;
namespace ref = quanteval::runtime::cuda::reference;
using qc::MarlinGemmOptions;

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

// Owns a stream and two events; times `launches` calls of `body(i)` and returns µs per call.
class Timer {
 public:
  Timer() {
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    check(cudaEventCreate(&start_), "cudaEventCreate");
    check(cudaEventCreate(&stop_), "cudaEventCreate");
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
    cudaStreamDestroy(stream_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  cudaStream_t stream() const { return stream_; }

  template <typename Body>
  double median_us(Body&& body, int launches, int samples) {
    for (int i = 0; i < launches; ++i) body(i);  // warm-up (module load, workspace growth, clocks)
    check(cudaStreamSynchronize(stream_), "warm-up");
    std::vector<double> times;
    for (int s = 0; s < samples; ++s) {
      check(cudaEventRecord(start_, stream_), "cudaEventRecord");
      for (int i = 0; i < launches; ++i) body(i);
      check(cudaEventRecord(stop_, stream_), "cudaEventRecord");
      check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
      times.push_back(1000.0 * ms / launches);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

 private:
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Random device buffer of bf16 values in [-1, 1) (never zeros: zeros time faster).
qc::DeviceBuffer random_bf16(size_t count, std::mt19937_64& rng) {
  std::vector<__nv_bfloat16> host(count);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (auto& v : host) v = __float2bfloat16(uniform(rng));
  qc::DeviceBuffer buffer(count * 2);
  check(cudaMemcpy(buffer.data(), host.data(), count * 2, cudaMemcpyHostToDevice), "upload");
  return buffer;
}

template <typename T>
qc::DeviceBuffer upload(const std::vector<T>& host) {
  qc::DeviceBuffer buffer(host.size() * sizeof(T));
  if (!host.empty()) check(cudaMemcpy(buffer.data(), host.data(), buffer.bytes(), cudaMemcpyHostToDevice), "upload");
  return buffer;
}

double copy_bandwidth_gbs(Timer& timer) {
  const size_t bytes = size_t(1) << 30;
  qc::DeviceBuffer source(bytes), target(bytes);
  check(cudaMemset(source.data(), 1, bytes), "cudaMemset");
  const double us = timer.median_us(
      [&](int) {
        check(cudaMemcpyAsync(target.data(), source.data(), bytes, cudaMemcpyDeviceToDevice, timer.stream()),
              "cudaMemcpyAsync D2D");
      },
      3, 7);
  return 2.0 * bytes / (us * 1e3);  // read + write, GB/s
}

// A random symmetric INT4 weight in checkpoint form (random nibbles, fp16 scales around 0.01,
// GPTQ v2 zeros), optionally with act-order (exactly `group` random rows per group).
struct RandomWeight {
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;
  mk::PreparedWeight prepared;
  qc::DeviceBuffer d_qweight, d_qzeros, d_scales, d_g_idx;  // for the reference
  ref::GptqDeviceView view;
};

std::unique_ptr<RandomWeight> random_weight(int k, int n, int group, bool act_order, std::mt19937_64& rng) {
  auto w = std::make_unique<RandomWeight>();
  w->qweight.resize(size_t(k / 8) * n);
  for (auto& word : w->qweight) word = static_cast<int32_t>(rng());
  const int groups = k / group;
  w->qzeros.assign(size_t(groups) * (n / 8), static_cast<int32_t>(0x88888888u));
  w->scales.resize(size_t(groups) * n);
  for (auto& s : w->scales) s = static_cast<uint16_t>(0x2000 + (rng() % 0x400));  // fp16 ~0.008..0.016
  mk::PreparedWeight& p = w->prepared;
  p.in_features = k;
  p.out_features = n;
  p.group_size = group;
  p.groups = groups;
  p.scales_bf16 = false;
  p.qweight = w->qweight.data();
  p.scales = w->scales.data();
  p.row_order.resize(k);
  std::iota(p.row_order.begin(), p.row_order.end(), 0);
  if (act_order) {
    w->g_idx.resize(k);
    for (int row = 0; row < k; ++row) w->g_idx[row] = row / group;
    std::shuffle(w->g_idx.begin(), w->g_idx.end(), rng);
    // What marlin::group_sorted_rows does: rows stably sorted by group.
    std::stable_sort(p.row_order.begin(), p.row_order.end(),
                     [&](int32_t a, int32_t b) { return w->g_idx[a] < w->g_idx[b]; });
    p.gathers = true;
  }
  w->d_qweight = upload(w->qweight);
  w->d_qzeros = upload(w->qzeros);
  w->d_scales = upload(w->scales);
  w->d_g_idx = upload(w->g_idx);
  w->view = ref::GptqDeviceView{k,
                                n,
                                group,
                                false,
                                false,
                                w->d_qweight.as<int32_t>(),
                                w->d_qzeros.as<int32_t>(),
                                w->d_scales.as<uint16_t>(),
                                act_order ? w->d_g_idx.as<int32_t>() : nullptr};
  return w;
}

struct Shape {
  const char* name;
  int k, n;
};

// Rows 0 and m-1 of a result against the FP64 reference; "ok" or what failed.
std::string check_rows(const RandomWeight& w, const qc::DeviceBuffer& activations, const qc::DeviceBuffer& output,
                       int m, cudaStream_t stream) {
  check(cudaStreamSynchronize(stream), "before check");
  std::string verdict = "ok";
  for (int row : {0, m - 1}) {
    if (row == m - 1 && m == 1) break;
    const int n = w.prepared.out_features, k = w.prepared.in_features;
    qc::DeviceBuffer d_ref(size_t(n) * 8), d_mag(size_t(n) * 8);
    ref::gemm_reference(w.view, activations.as<uint16_t>() + size_t(row) * k, true, 1, d_ref.as<double>(),
                        d_mag.as<double>(), stream);
    std::vector<double> reference(n), magnitude(n);
    std::vector<uint16_t> got(n);
    check(cudaMemcpy(reference.data(), d_ref.data(), d_ref.bytes(), cudaMemcpyDeviceToHost), "download reference");
    check(cudaMemcpy(magnitude.data(), d_mag.data(), d_mag.bytes(), cudaMemcpyDeviceToHost), "download magnitude");
    check(cudaMemcpy(got.data(), output.as<uint16_t>() + size_t(row) * n, size_t(n) * 2, cudaMemcpyDeviceToHost),
          "download output");
    const ref::ReferenceComparison c =
        ref::compare_with_reference(got.data(), reference.data(), magnitude.data(), 1, n, true);
    if (!c.passed()) verdict = "FAIL row " + std::to_string(row) + ": " + c.summary();
  }
  return verdict;
}

struct Row {
  std::string shape;
  int k = 0, n = 0, m = 0;
  std::map<std::string, double> us;  // variant -> µs
  std::string check = "ok";
  double floor_us = 0, streamed_bytes = 0;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, handover = true;
  std::string tsv_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (std::strcmp(argv[i], "--no-handover") == 0)
      handover = false;
    else if (std::strcmp(argv[i], "--tsv") == 0 && i + 1 < argc)
      tsv_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_gemm_cuda [--quick] [--no-handover] [--tsv FILE]\n");
      return 2;
    }
  }
  const qc::DeviceStatus status = qc::device_status();
  if (!status.usable) {
    std::fprintf(stderr, "bench_gemm_cuda: no GPU: %s\n", status.summary().c_str());
    return 77;
  }
  int failures = 0;
  try {
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    const size_t l2_bytes = size_t(prop.l2CacheSize);
    std::mt19937_64 rng(12345);
    Timer timer;
    const double bandwidth = copy_bandwidth_gbs(timer);
    std::printf("device %s, %d SMs, L2 %zu MB; %s\n", prop.name, prop.multiProcessorCount, l2_bytes >> 20,
                status.summary().c_str());
    std::printf("copy bandwidth %.0f GB/s (1 GiB D2D, read + write)\n", bandwidth);
    std::string cublas_error;
    std::unique_ptr<qc::CublasHandle> cublas = qc::CublasHandle::open(cublas_error);
    if (cublas)
      std::printf("cuBLAS: %s\n", cublas->library().c_str());
    else
      std::printf("cuBLAS: not available (%s): no BF16 baseline, no dense variant\n", cublas_error.c_str());
    std::fflush(stdout);

    qc::MarlinWorkspace workspace;
    MarlinGemmOptions current;
    current.dense_handover_m = 0;
    MarlinGemmOptions dense;
    dense.dense_handover_m = 1;
    MarlinGemmOptions fill = current, div = current, serial = current;
    fill.min_kblocks_per_block = 1;
    div.indexing = MarlinGemmOptions::Indexing::division;
    serial.reduction = MarlinGemmOptions::Reduction::serial;
    const MarlinGemmOptions legacy = MarlinGemmOptions::legacy();

    const std::vector<Shape> shapes = {
        {"q_proj", 5120, 12288}, {"kv_proj", 5120, 1024},  {"o_proj", 6144, 5120},   {"in_qkv", 5120, 10240},
        {"in_z", 5120, 6144},    {"gate/up", 5120, 17408}, {"gate_up", 5120, 34816}, {"down", 17408, 5120},
    };
    const std::vector<int> batches =
        quick ? std::vector<int>{1, 16, 64, 256} : std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128, 256};
    const std::vector<int> handover_batches = {128, 256, 512, 1024, 2048};
    const int launches = quick ? 10 : 20, samples = quick ? 5 : 7;
    std::vector<Row> rows, handover_rows;

    for (const Shape& shape : shapes) {
      const bool measure_handover = handover && cublas &&
                                    (std::strcmp(shape.name, "q_proj") == 0 ||
                                     std::strcmp(shape.name, "gate_up") == 0 || std::strcmp(shape.name, "down") == 0);
      const int max_m = measure_handover ? handover_batches.back() : batches.back();
      workspace.reserve(max_m, shape.n, shape.k, timer.stream(), cublas != nullptr);
      // Enough weight copies that one rotation streams > 2x L2 (each launch misses L2).
      const auto plain = random_weight(shape.k, shape.n, 128, false, rng);
      const auto ordered = random_weight(shape.k, shape.n, 128, true, rng);
      std::vector<qc::MarlinWeight> weights, ordered_weights;
      weights.push_back(qc::MarlinWeight::from_prepared(plain->prepared, qc::ActivationType::bf16, timer.stream()));
      const size_t int4_bytes = weights[0].streamed_bytes();
      const int copies = int(std::max<size_t>(1, (2 * l2_bytes) / int4_bytes + 1));
      for (int i = 1; i < copies; ++i)
        weights.push_back(qc::MarlinWeight::from_prepared(plain->prepared, qc::ActivationType::bf16, timer.stream()));
      for (int i = 0; i < copies; ++i)
        ordered_weights.push_back(
            qc::MarlinWeight::from_prepared(ordered->prepared, qc::ActivationType::bf16, timer.stream()));
      std::vector<qc::DeviceBuffer> dense_weights;
      if (cublas) {
        const size_t dense_bytes = size_t(shape.k) * shape.n * 2;
        const int dense_copies = int(std::max<size_t>(1, (2 * l2_bytes) / dense_bytes + 1));
        for (int i = 0; i < dense_copies; ++i) dense_weights.push_back(random_bf16(size_t(shape.k) * shape.n, rng));
      }
      const qc::DeviceBuffer activations = random_bf16(size_t(max_m) * shape.k, rng);
      const qc::DeviceBuffer output(size_t(max_m) * shape.n * 2);
      const double floor_us = int4_bytes / (bandwidth * 1e3);

      // Checks one variant's result (rows 0 and m-1), then times it.
      auto measure = [&](Row& row, const std::string& variant, const std::vector<qc::MarlinWeight>& set,
                         const RandomWeight& host, const MarlinGemmOptions& options) {
        check(cudaMemsetAsync(output.data(), 0xff, size_t(row.m) * shape.n * 2, timer.stream()), "poison");
        qc::marlin_gemm(set[0], activations.data(), output.data(), row.m, workspace, timer.stream(), options);
        const std::string verdict = check_rows(host, activations, output, row.m, timer.stream());
        if (verdict != "ok") {
          row.check = variant + ": " + verdict;
          ++failures;
          std::printf("CHECK FAILED %s M=%d %s\n", shape.name, row.m, row.check.c_str());
        }
        row.us[variant] = timer.median_us(
            [&](int i) {
              qc::marlin_gemm(set[i % set.size()], activations.data(), output.data(), row.m, workspace, timer.stream(),
                              options);
            },
            launches, samples);
      };
      auto measure_cublas = [&](Row& row) {
        if (!cublas) return;
        row.us["cublas"] = timer.median_us(
            [&](int i) {
              cublas->gemm_row_major(true, row.m, shape.n, shape.k, activations.data(), shape.k,
                                     dense_weights[i % dense_weights.size()].data(), shape.k, output.data(), shape.n,
                                     timer.stream());
            },
            launches, samples);
      };

      for (int m : batches) {
        Row row;
        row.shape = shape.name;
        row.k = shape.k;
        row.n = shape.n;
        row.m = m;
        row.floor_us = floor_us;
        row.streamed_bytes = double(int4_bytes);
        std::printf("measuring %s K=%d N=%d M=%d\n", shape.name, shape.k, shape.n, m);
        std::fflush(stdout);
        measure(row, "legacy", weights, *plain, legacy);
        measure(row, "current", weights, *plain, current);
        measure(row, "actorder", ordered_weights, *ordered, current);
        if (cublas && m >= 64) measure(row, "dense", weights, *plain, dense);
        if (m == 1 || m == 16) {
          measure(row, "fill", weights, *plain, fill);
          measure(row, "div", weights, *plain, div);
          measure(row, "serial", weights, *plain, serial);
        }
        measure_cublas(row);
        rows.push_back(row);
      }
      if (measure_handover) {
        for (int m : handover_batches) {
          Row row;
          row.shape = shape.name;
          row.k = shape.k;
          row.n = shape.n;
          row.m = m;
          std::printf("measuring hand-over %s K=%d N=%d M=%d\n", shape.name, shape.k, shape.n, m);
          std::fflush(stdout);
          measure(row, "current", weights, *plain, current);
          measure(row, "dense", weights, *plain, dense);
          measure_cublas(row);
          handover_rows.push_back(row);
        }
      }
    }
    check(cudaGetLastError(), "after benchmark");

    auto us = [](const Row& r, const char* v) {
      auto it = r.us.find(v);
      return it == r.us.end() ? 0.0 : it->second;
    };
    auto cell = [](double value, const char* format) {
      char text[32];
      if (value <= 0) return std::string("-");
      std::snprintf(text, sizeof text, format, value);
      return std::string(text);
    };
    if (!tsv_path.empty()) {
      if (FILE* tsv = std::fopen(tsv_path.c_str(), "w")) {
        std::fprintf(tsv, "table\tshape\tK\tN\tM\tvariant\tus\tfloor_us\tcheck\n");
        for (const auto* table : {&rows, &handover_rows})
          for (const Row& r : *table)
            for (const auto& [variant, value] : r.us)
              std::fprintf(tsv, "%s\t%s\t%d\t%d\t%d\t%s\t%.2f\t%.2f\t%s\n", table == &rows ? "main" : "handover",
                           r.shape.c_str(), r.k, r.n, r.m, variant.c_str(), value, r.floor_us, r.check.c_str());
        std::fclose(tsv);
      }
    }

    std::printf("\nEach change alone (M = 1, 16): current with one change undone, us\n");
    std::printf("%-8s %5s %8s %8s %8s %8s\n", "shape", "M", "current", "fill", "div", "serial");
    for (const Row& r : rows)
      if (r.m == 1 || r.m == 16)
        std::printf("%-8s %5d %8.1f %8.1f %8.1f %8.1f\n", r.shape.c_str(), r.m, us(r, "current"), us(r, "fill"),
                    us(r, "div"), us(r, "serial"));
    if (!handover_rows.empty()) {
      std::printf("\nHand-over (large M), us; x = cuBLAS BF16 time / ours (> 1: faster than BF16)\n");
      std::printf("%-8s %5s %9s %9s %9s %7s %7s\n", "shape", "M", "int4", "dense", "cublas", "x_int4", "x_dense");
      for (const Row& r : handover_rows) {
        const double c = us(r, "cublas");
        std::printf("%-8s %5d %9.1f %9.1f %9.1f %7s %7s\n", r.shape.c_str(), r.m, us(r, "current"), us(r, "dense"), c,
                    cell(c / us(r, "current"), "%.2f").c_str(), cell(c / us(r, "dense"), "%.2f").c_str());
      }
    }
    std::printf(
        "\nINT4 GEMM, us (copy %.0f GB/s). GB/s and %%floor: packed weight + scale bytes over the time and\n"
        "over the copy bandwidth; x_bf16 = cuBLAS BF16 time / current (> 1: faster than BF16)\n",
        bandwidth);
    std::printf("%-8s %5s %5s %4s %8s %8s %8s %8s %8s %6s %6s %6s %s\n", "shape", "K", "N", "M", "legacy", "current",
                "actord", "dense", "cublas", "GB/s", "%floor", "x_bf16", "check");
    for (const Row& r : rows) {
      const double cur = us(r, "current"), c = us(r, "cublas");
      std::printf("%-8s %5d %5d %4d %8.1f %8.1f %8.1f %8s %8s %6.0f %6.0f %6s %s\n", r.shape.c_str(), r.k, r.n, r.m,
                  us(r, "legacy"), cur, us(r, "actorder"), cell(us(r, "dense"), "%.1f").c_str(),
                  cell(c, "%.1f").c_str(), r.streamed_bytes / (cur * 1e3), 100.0 * r.floor_us / cur,
                  cell(c / cur, "%.2f").c_str(), r.check.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gemm_cuda: %s\n", e.what());
    return 1;
  }
  if (failures) std::printf("bench_gemm_cuda: %d result checks FAILED\n", failures);
  return failures ? 1 : 0;
}
