#pragma once
// One projection y = x W^T + b of the model, either dense (BF16/FP16/FP32
// weights, DenseLinear) or GPTQ INT4 (Int4Linear), chosen by what the
// checkpoint stores under the prefix. The model code calls forward() and never
// asks which it is; the reference path asks for reference_weight() instead.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/kernels/cpu/linear.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "runtime/checkpoint/quant_config.hpp"

namespace quanteval::runtime {

class Linear {
 public:
  Linear() = default;

  // Builds the fast kernel for `tensors` (weights are copied/repacked; the
  // checkpoint may be closed afterwards). `quant` is the checkpoint's
  // quantization settings, required when `tensors` is quantized.
  static Linear from_checkpoint(const LinearTensors& tensors, const std::optional<QuantConfig>& quant);
  // Wraps kernels built elsewhere (synthetic models, tests).
  static Linear from_dense(DenseLinear dense, std::string name);
  static Linear from_int4(Int4Linear int4, std::string name);

  // x: [m, in_features], y: [m, out_features] (every element written).
  void forward(const float* x, int m, float* y, ThreadPool& pool) const;

  int in_features() const { return in_features_; }
  int out_features() const { return out_features_; }
  bool quantized() const { return std::holds_alternative<Int4Linear>(kernel_); }
  const std::string& name() const { return name_; }
  // Bytes one forward streams from memory (packed INT4 + headers, or the dense weights).
  std::uint64_t weight_bytes() const;

 private:
  std::string name_;
  int in_features_ = 0;
  int out_features_ = 0;
  std::variant<std::monostate, DenseLinear, Int4Linear> kernel_;
};

// Plain float weights of one projection, for the reference path and tests:
// W [N, K] row-major (bf16/fp16 widened exactly, GPTQ through
// dequantize_reference) and bias [N] (empty when there is none).
struct ReferenceLinearWeights {
  std::int64_t out_features = 0;  // N
  std::int64_t in_features = 0;   // K
  std::vector<float> weight;      // [N, K]
  std::vector<float> bias;        // [N] or empty
};
ReferenceLinearWeights reference_linear_weights(const LinearTensors& tensors, const std::optional<QuantConfig>& quant);

// The GPTQ tensors of `tensors` as a GptqWeight: typed spans straight into the
// checkpoint's mapping where the bytes are aligned for their type (the usual
// case), copies held by the returned object where not (safetensors does not
// promise alignment). Valid while the checkpoint is open. Throws
// CheckpointError when the dtypes or the tensors are inconsistent.
OwnedGptqWeight view_gptq_weight(const LinearTensors& tensors, const QuantConfig& quant);

}  // namespace quanteval::runtime
