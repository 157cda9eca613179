// INT4 GEMM on the GPU against the two numbers that bound it, measured in the same run:
//   * the bandwidth floor: bytes the kernel must stream (packed weights + scales) over the
//     device's measured copy bandwidth (a large cudaMemcpy D2D, read + write bytes counted);
//   * cuBLAS BF16 GEMM on the same shape (what the INT4 kernel must beat).
// Shapes: Qwen3.5-27B linear layers (K x N), batch M in 1..128. Timing: CUDA events around
// a batch of launches that rotates through enough weight copies to defeat the 50 MB L2,
// after a warm-up; the median of several batches is reported.
//
//   bench_gemm_cuda [--quick] [--act-order]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/kernels/cuda/marlin_gemm.hpp"
#include "runtime/kernels/cuda/marlin_layout.hpp"

namespace qc = quanteval::runtime::cuda;
namespace mk = quanteval::runtime::marlin;

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}
void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS: ") + what + ": status " + std::to_string(int(status)));
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

// Random device buffer of 16-bit values in [-1, 1) as bf16 (never zeros: zeros time faster).
qc::DeviceBuffer random_bf16(size_t count, std::mt19937_64& rng) {
  std::vector<__nv_bfloat16> host(count);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (auto& v : host) v = __float2bfloat16(uniform(rng));
  qc::DeviceBuffer buffer(count * 2);
  check(cudaMemcpy(buffer.data(), host.data(), count * 2, cudaMemcpyHostToDevice), "upload");
  return buffer;
}

double copy_bandwidth_gbs(Timer& timer) {
  const size_t bytes = size_t(1) << 30;
  qc::DeviceBuffer source(bytes), target(bytes);
  check(cudaMemset(source.data(), 1, bytes), "cudaMemset");
  const double us = timer.median_us(
      [&](int) { check(cudaMemcpyAsync(target.data(), source.data(), bytes, cudaMemcpyDeviceToDevice, timer.stream()),
                       "cudaMemcpyAsync D2D"); },
      3, 7);
  return 2.0 * bytes / (us * 1e3);  // read + write, GB/s
}

// A random symmetric INT4 weight prepared the way a checkpoint would be (random nibbles and
// fp16 scales around 0.01), optionally with an act-order row permutation.
struct RandomWeight {
  std::vector<int32_t> qweight;
  std::vector<uint16_t> scales;
  mk::PreparedWeight prepared;
};

RandomWeight random_weight(int k, int n, int group, bool act_order, std::mt19937_64& rng) {
  RandomWeight w;
  w.qweight.resize(size_t(k / 8) * n);
  for (auto& word : w.qweight) word = static_cast<int32_t>(rng());
  const int groups = k / group;
  w.scales.resize(size_t(groups) * n);
  for (auto& s : w.scales) s = static_cast<uint16_t>(0x2000 + (rng() % 0x400));  // fp16 ~0.008..0.016
  w.prepared.in_features = k;
  w.prepared.out_features = n;
  w.prepared.group_size = group;
  w.prepared.groups = groups;
  w.prepared.scales_bf16 = false;
  w.prepared.qweight = w.qweight.data();
  w.prepared.scales = w.scales.data();
  w.prepared.row_order.resize(k);
  std::iota(w.prepared.row_order.begin(), w.prepared.row_order.end(), 0);
  if (act_order) {
    // Rows shuffled within the whole K: what a desc_act checkpoint's sort produces.
    std::shuffle(w.prepared.row_order.begin(), w.prepared.row_order.end(), rng);
    w.prepared.gathers = true;
  }
  return w;
}

struct Shape {
  const char* name;
  int k, n;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, act_order = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else if (std::strcmp(argv[i], "--act-order") == 0) act_order = true;
    else {
      std::fprintf(stderr, "usage: bench_gemm_cuda [--quick] [--act-order]\n");
      return 2;
    }
  }
  if (!qc::device_available()) {
    std::fprintf(stderr, "bench_gemm_cuda: no CUDA device visible\n");
    return 77;
  }
  try {
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    const size_t l2_bytes = size_t(prop.l2CacheSize);
    std::mt19937_64 rng(12345);
    Timer timer;
    const double bandwidth = copy_bandwidth_gbs(timer);
    std::printf("device %s, %d SMs, L2 %zu MB; copy bandwidth %.0f GB/s (D2D, read+write)\n", prop.name,
                prop.multiProcessorCount, l2_bytes >> 20, bandwidth);
    std::printf("weights: random symmetric INT4, group 64%s\n", act_order ? ", act-order (activations gathered)" : "");

    cublasHandle_t cublas = nullptr;
    check(cublasCreate(&cublas), "cublasCreate");
    check(cublasSetStream(cublas, timer.stream()), "cublasSetStream");
    qc::MarlinWorkspace workspace;

    const std::vector<Shape> shapes = {{"gate_up", 5120, 34816}, {"down", 17408, 5120}, {"la_qkv", 5120, 10240},
                                       {"o_proj", 6144, 5120},  {"q_proj", 5120, 12288}};
    const std::vector<int> batches = quick ? std::vector<int>{1, 16, 128} : std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128};
    const int launches = quick ? 10 : 20, samples = quick ? 5 : 9;
    std::printf("\n%-8s %6s %6s %4s %10s %10s %8s %10s\n", "shape", "K", "N", "M", "int4_us", "cublas_us", "speedup",
                "%floor");
    for (const Shape& shape : shapes) {
      const int max_m = batches.back();
      workspace.reserve(max_m, shape.n, shape.k, timer.stream());
      // Enough weight copies that one rotation streams > 2x L2 (each launch misses L2).
      RandomWeight host = random_weight(shape.k, shape.n, 64, act_order, rng);
      std::vector<qc::MarlinWeight> weights;
      weights.push_back(qc::MarlinWeight::from_prepared(host.prepared, qc::ActivationType::bf16, timer.stream()));
      const size_t int4_bytes = weights[0].streamed_bytes();
      const int int4_copies = int(std::max<size_t>(1, (2 * l2_bytes) / int4_bytes + 1));
      for (int i = 1; i < int4_copies; ++i)
        weights.push_back(qc::MarlinWeight::from_prepared(host.prepared, qc::ActivationType::bf16, timer.stream()));
      const size_t dense_bytes = size_t(shape.k) * shape.n * 2;
      const int dense_copies = int(std::max<size_t>(1, (2 * l2_bytes) / dense_bytes + 1));
      std::vector<qc::DeviceBuffer> dense;
      for (int i = 0; i < dense_copies; ++i) dense.push_back(random_bf16(size_t(shape.k) * shape.n, rng));
      qc::DeviceBuffer activations = random_bf16(size_t(max_m) * shape.k, rng);
      qc::DeviceBuffer output(size_t(max_m) * shape.n * 2);
      const double floor_us = int4_bytes / (bandwidth * 1e3);

      for (int m : batches) {
        const double int4_us = timer.median_us(
            [&](int i) {
              qc::marlin_gemm(weights[i % weights.size()], activations.data(), output.data(), m, workspace,
                              timer.stream());
            },
            launches, samples);
        const float alpha = 1.0f, beta = 0.0f;
        // Row-major C[m, N] = A[m, K] W^T is column-major C^T[N, m] = W^T(op T of [K, N]) x A^T.
        const double cublas_us = timer.median_us(
            [&](int i) {
              check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, shape.n, m, shape.k, &alpha,
                                 dense[i % dense.size()].data(), CUDA_R_16BF, shape.k, activations.data(), CUDA_R_16BF,
                                 shape.k, &beta, output.data(), CUDA_R_16BF, shape.n, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx");
            },
            launches, samples);
        std::printf("%-8s %6d %6d %4d %10.1f %10.1f %7.2fx %9.0f%%\n", shape.name, shape.k, shape.n, m, int4_us,
                    cublas_us, cublas_us / int4_us, 100.0 * floor_us / int4_us);
        std::fflush(stdout);
      }
    }
    check(cudaGetLastError(), "after benchmark");
    cublasDestroy(cublas);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gemm_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
