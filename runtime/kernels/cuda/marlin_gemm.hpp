#pragma once
// INT4 (GPTQ, symmetric) x BF16/FP16 GEMM for Hopper, in the spirit of Marlin:
// C[m, N] = A[m, K] * W^T with W dequantized on the fly inside the tensor-core
// loop, FP32 accumulation, output in the activation type.
//
// Usage:
//   auto weight = MarlinWeight::from_gptq(gptq, ActivationType::bf16, stream);  // repacks on the GPU
//   MarlinWorkspace workspace;                       // one per stream: owns partial sums and locks
//   marlin_gemm(weight, d_a, d_c, m, workspace, stream);
//
// The packed layout and the work partition are described in runtime/marlin_layout.hpp
// (host code, CPU-tested); docs/cuda-gemm.md explains the kernel.
// Built only when nvcc exists (QUANTEVAL_HAVE_CUDA). Every CUDA failure throws
// std::runtime_error naming the call; unsupported shapes throw std::invalid_argument.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_runtime_api.h>

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
  T* as() const { return static_cast<T*>(data_); }

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

// Scratch memory for marlin_gemm on one stream: stream-K partial sums, the per-strip
// arrival counters (zero between calls: the last block of a strip resets its counter)
// and the gathered activations of act-order weights. Grows on demand (growing
// synchronizes the stream); call reserve() before capturing a CUDA graph.
// Not for two streams at once: the counters would race.
class MarlinWorkspace {
 public:
  MarlinWorkspace();  // on the current device

  void reserve(int max_m, int max_n, int max_k, cudaStream_t stream);

  int multiprocessors() const { return multiprocessors_; }
  int device() const { return device_; }

  // Internal to marlin_gemm: buffers of at least the given size.
  float* partials(size_t bytes, cudaStream_t stream);
  int* counters(size_t count, cudaStream_t stream);
  void* gathered(size_t bytes, cudaStream_t stream);
  // Resident blocks per SM for a kernel (cached; the kernel's shared-memory limit is raised once).
  int blocks_per_multiprocessor(const void* kernel, size_t shared_bytes, int threads);

 private:
  int device_ = 0, multiprocessors_ = 0;
  DeviceBuffer partials_, counters_, gathered_;
  std::vector<std::pair<const void*, int>> occupancy_;
};

// C = A * W^T. a: device [m, K], c: device [m, N], both of weight.activation_type(),
// row-major and contiguous; m >= 1. Asynchronous on `stream`. Every element of C is written.
void marlin_gemm(const MarlinWeight& weight, const void* a, void* c, int m, MarlinWorkspace& workspace,
                 cudaStream_t stream);

// True when a CUDA device is visible (never throws).
bool device_available();

}  // namespace quanteval::runtime::cuda
