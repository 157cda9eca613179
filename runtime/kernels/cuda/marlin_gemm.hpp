#pragma once
// INT4 (GPTQ, symmetric) x BF16/FP16 GEMM for Hopper, in the spirit of Marlin:
// C[m, N] = A[m, K] * W^T with W dequantized on the fly inside the tensor-core
// loop, FP32 accumulation, output in the activation type.
//
// Usage (what a model forward does once per linear layer and call):
//   auto weight = MarlinWeight::from_gptq(gptq, ActivationType::bf16, stream);  // once, at load: repacks on the GPU
//   MarlinWorkspace workspace;                       // one per stream: partial sums, counters, scratch
//   workspace.reserve(max_m, max_n, max_k, stream);  // optional; needed before capturing a CUDA graph
//   marlin_gemm(weight, d_a, d_c, m, workspace, stream);           // every call, any m >= 1
//
// Paths inside marlin_gemm, chosen per call from m (MarlinGemmOptions):
//   * m < dense_handover_m: the INT4 tensor-core kernel, in chunks of 16, 32 or 64 batch rows;
//   * m >= dense_handover_m (prefill): the weight is dequantized into workspace scratch and
//     multiplied by cuBLAS (BF16/FP16 inputs, FP32 accumulation). cuBLAS is loaded at run time
//     (cublas_library.hpp), so nothing here needs libcublas to start; without it the INT4
//     kernel serves every m.
// Both paths compute the same dequantized weights ((q - 8) * scale rounded once to the
// activation type), so their results differ only in FP32 summation order.
//
// The packed layout and the work partition are described in runtime/kernels/cuda/marlin_layout.hpp
// (host code, CPU-tested); docs/cuda-gemm.md explains the kernel.
// Built only when nvcc exists (QUANTEVAL_HAVE_CUDA). Every CUDA failure throws
// std::runtime_error naming the call; unsupported shapes and arguments throw std::invalid_argument.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "runtime/kernels/cuda/device_probe.hpp"   // device_status(): is a GPU usable, and if not, why
#include "runtime/kernels/cuda/marlin_layout.hpp"  // C++17-clean; GptqWeight is only forward-declared

namespace quanteval::runtime::cuda {

enum class ActivationType { bf16, f16 };

// One cudaMalloc'd allocation, freed on destruction. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// A GPTQ weight repacked for the kernel, resident on the current device.
class MarlinWeight {
 public:
  // Validates the shape (std::invalid_argument naming the tensor and shape; see
  // marlin::validate_for_kernel), uploads the raw tensors and repacks them with GPU
  // kernels that implement marlin::packed_slot / marlin::scale_slot. Act-order rows are
  // sorted by group; the activation columns are gathered with the same order at run time.
  // (Inline so this header stays C++17 for nvcc: the GptqWeight work happens in
  // marlin::prepare_for_kernel, compiled as C++20 in quanteval_runtime.)
  static MarlinWeight from_gptq(const GptqWeight& weight, ActivationType type, cudaStream_t stream = nullptr) {
    return from_prepared(marlin::prepare_for_kernel(weight), type, stream);
  }
  static MarlinWeight from_prepared(const marlin::PreparedWeight& prepared, ActivationType type,
                                    cudaStream_t stream = nullptr);

  int in_features() const { return in_features_; }
  int out_features() const { return out_features_; }
  int group_size() const { return group_size_; }  // effective (K for channel-wise)
  ActivationType activation_type() const { return type_; }
  bool gathers_activations() const { return gathers_; }

  const uint32_t* packed() const { return packed_.as<uint32_t>(); }
  const uint16_t* scales() const { return scales_.as<uint16_t>(); }
  const int32_t* row_order() const { return gathers_ ? row_order_.as<int32_t>() : nullptr; }
  size_t packed_bytes() const { return packed_.bytes(); }
  size_t scale_bytes() const { return scales_.bytes(); }
  // Bytes one forward pass must stream from device memory (the bandwidth floor's numerator).
  size_t streamed_bytes() const { return packed_bytes() + scale_bytes(); }

  // Copies of the device buffers (tests compare them with the host repack byte for byte).
  std::vector<uint32_t> download_packed() const;
  std::vector<uint16_t> download_scales() const;

 private:
  int in_features_ = 0, out_features_ = 0, group_size_ = 0;
  ActivationType type_ = ActivationType::bf16;
  bool gathers_ = false;
  DeviceBuffer packed_;     // uint32 [(K/16) * (N/64) * 128]
  DeviceBuffer scales_;     // uint16 [G * N], permuted, activation type
  DeviceBuffer row_order_;  // int32 [K]: original row of each packed row (act-order only)
};

class CublasHandle;  // cublas_library.hpp

// Scratch memory for marlin_gemm on one stream: stream-K partial sums, the per-strip
// arrival counters (zero between calls: the last block of a strip resets its counter),
// the gathered activations of act-order weights, and for the dense hand-over the
// dequantized weight and a cuBLAS handle. Grows on demand (growing synchronizes the
// stream); call reserve() before capturing a CUDA graph.
// Not for two streams at once: the counters would race.
class MarlinWorkspace {
 public:
  MarlinWorkspace();  // on the current device
  ~MarlinWorkspace();
  MarlinWorkspace(MarlinWorkspace&&) noexcept;
  MarlinWorkspace& operator=(MarlinWorkspace&&) noexcept;

  // Allocates everything calls up to these sizes need on the INT4 path (and, when
  // with_dense_handover, the dequantized-weight scratch of the dense path).
  void reserve(int max_m, int max_n, int max_k, cudaStream_t stream, bool with_dense_handover = false);

  int multiprocessors() const { return multiprocessors_; }
  int device() const { return device_; }

  // Internal to marlin_gemm: buffers of at least the given size.
  float* partials(size_t bytes, cudaStream_t stream);
  int* counters(size_t count, cudaStream_t stream);
  void* gathered(size_t bytes, cudaStream_t stream);
  void* dense_weight(size_t bytes, cudaStream_t stream);
  // The cuBLAS handle of this workspace, created on first use; nullptr when cuBLAS cannot
  // be loaded (cublas_unavailable_reason() says why).
  CublasHandle* cublas();
  const std::string& cublas_unavailable_reason() const { return cublas_error_; }
  // Resident blocks per SM for a kernel (cached; the kernel's shared-memory limit is raised once).
  int blocks_per_multiprocessor(const void* kernel, size_t shared_bytes, int threads);

 private:
  int device_ = 0, multiprocessors_ = 0;
  DeviceBuffer partials_, counters_, gathered_, dense_;
  std::vector<std::pair<const void*, int>> occupancy_;
  std::unique_ptr<CublasHandle> cublas_;
  bool cublas_tried_ = false;
  std::string cublas_error_;
};

// Variant knobs of marlin_gemm. The defaults are the production choice; tests use the
// grid cap to reach code paths the real shapes only reach on a full GPU, and
// tools/bench_gemm_cuda.cu times the "before" (legacy()) and "after" variants of each
// change side by side. Checked by marlin::check_gemm_arguments (std::invalid_argument).
struct MarlinGemmOptions {
  // Index arithmetic and loop shape. division: the first version (64-bit division to find the
  // strip and k-block of every iteration, a run-time division by the group size for every k16
  // step, the strip-segment end tested and run inside the k-block loop: the 64-row tile
  // spills). incremental: 32-bit cursors advanced by one per k-block, a shift for the group,
  // one k-block loop per strip segment (no spills). Both give bit-identical results.
  enum class Indexing { division, incremental };
  // How the last block of a stream-K strip adds the other blocks' partial sums. serial: one
  // source block at a time (one L2 round trip each). batched: the loads of several source
  // blocks in flight at once. Same addition order, so bit-identical results.
  enum class Reduction { serial, batched };

  Indexing indexing = Indexing::incremental;
  Reduction reduction = Reduction::batched;
  // Stream-K grid: min(SMs x resident blocks, iterations / min_kblocks_per_block, max_blocks).
  // min_kblocks_per_block = 1 fills every SM even for a small layer (the first version); a
  // larger value keeps small layers from splitting every strip over dozens of blocks that
  // each stream one k-block and then queue for the reduction.
  int min_kblocks_per_block = 4;
  // Test-only grid cap (0 = none): a small cap makes every block run many k-blocks and span
  // several strips (ring wrap, multi-stage accumulation, both stream-K slots) on small shapes.
  int max_blocks = 0;
  // Batch rows from which the dequantize + cuBLAS path takes over (0 = never). Ignored (the
  // INT4 kernel runs) when cuBLAS cannot be loaded. The crossover awaits a GPU measurement:
  // docs/perf.md.
  int dense_handover_m = 256;

  // The kernel as first written: every knob at its old value, no hand-over. (The stream-K
  // bookkeeping at segment ends uses the division-free partition arithmetic in both.)
  static MarlinGemmOptions legacy() {
    MarlinGemmOptions o;
    o.indexing = Indexing::division;
    o.reduction = Reduction::serial;
    o.min_kblocks_per_block = 1;
    o.dense_handover_m = 0;
    return o;
  }
};

// C = A * W^T. a: device [m, K], c: device [m, N], both of weight.activation_type(),
// row-major and contiguous; m >= 1. Asynchronous on `stream`. Every element of C is written.
// Throws std::invalid_argument for m < 1, null pointers or invalid options (before any work
// is queued), std::runtime_error for CUDA/cuBLAS failures.
void marlin_gemm(const MarlinWeight& weight, const void* a, void* c, int m, MarlinWorkspace& workspace,
                 cudaStream_t stream, const MarlinGemmOptions& options = MarlinGemmOptions());

// Which path marlin_gemm takes for m rows with these options and this workspace
// (true: dequantize + cuBLAS). Loads cuBLAS on first use.
bool uses_dense_handover(int m, MarlinWorkspace& workspace, const MarlinGemmOptions& options);

// True when a CUDA device is usable (never throws). device_status() says why not.
bool device_available();

}  // namespace quanteval::runtime::cuda
