#include "runtime/linear.hpp"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

namespace quanteval::runtime {

namespace {

template <typename T>
std::vector<T> copy_elements(const TensorView& view) {
  std::vector<T> out(view.bytes / sizeof(T));
  if (view.bytes) std::memcpy(out.data(), view.data, view.bytes);
  return out;
}

std::vector<float> bias_of(const LinearTensors& tensors) {
  if (!tensors.bias) return {};
  std::vector<float> bias = to_float(*tensors.bias);
  if (static_cast<std::int64_t>(bias.size()) != tensors.out_features)
    throw CheckpointError(fmt::format("{}: bias has {} elements, expected {}", tensors.prefix, bias.size(),
                                      tensors.out_features));
  return bias;
}

}  // namespace

OwnedGptqWeight copy_gptq_weight(const LinearTensors& tensors, const QuantConfig& quant) {
  if (tensors.qweight->dtype != DType::i32 || tensors.qzeros->dtype != DType::i32)
    throw CheckpointError(fmt::format("{}: qweight and qzeros must be I32", tensors.prefix));
  OwnedGptqWeight owned;
  owned.qweight = copy_elements<std::int32_t>(*tensors.qweight);
  owned.qzeros = copy_elements<std::int32_t>(*tensors.qzeros);
  if (tensors.scales->dtype != DType::f16 && tensors.scales->dtype != DType::bf16)
    throw CheckpointError(fmt::format("{}: scales must be F16 or BF16", tensors.prefix));
  owned.scales = copy_elements<std::uint16_t>(*tensors.scales);
  if (tensors.g_idx) {
    if (tensors.g_idx->dtype != DType::i32) throw CheckpointError(fmt::format("{}: g_idx must be I32", tensors.prefix));
    owned.g_idx = copy_elements<std::int32_t>(*tensors.g_idx);
  }
  GptqWeight& w = owned.weight;
  w.name = tensors.prefix;
  w.in_features = static_cast<int>(tensors.in_features);
  w.out_features = static_cast<int>(tensors.out_features);
  w.bits = quant.bits;
  w.group_size = static_cast<int>(quant.group_size);
  w.format = quant.format;
  w.sym = quant.sym;
  w.scale_format = tensors.scales->dtype == DType::bf16 ? ScaleFormat::bf16 : ScaleFormat::f16;
  owned.refresh_views();
  try {
    w.validate();
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(e.what());
  }
  return owned;
}

Linear Linear::from_checkpoint(const LinearTensors& tensors, const std::optional<QuantConfig>& quant) {
  Linear linear;
  linear.name_ = tensors.prefix;
  linear.in_features_ = static_cast<int>(tensors.in_features);
  linear.out_features_ = static_cast<int>(tensors.out_features);
  const std::vector<float> bias = bias_of(tensors);
  if (tensors.quantized) {
    if (!quant) throw CheckpointError(fmt::format("{}: GPTQ tensors but no quantization config", tensors.prefix));
    const OwnedGptqWeight owned = copy_gptq_weight(tensors, *quant);
    linear.kernel_ = Int4Linear::from_gptq(owned.weight, bias);
    return linear;
  }
  const TensorView& w = *tensors.weight;
  const int n = linear.out_features_, k = linear.in_features_;
  switch (w.dtype) {
    case DType::bf16: linear.kernel_ = DenseLinear::from_bf16(copy_elements<std::uint16_t>(w).data(), n, k, bias); break;
    case DType::f16: linear.kernel_ = DenseLinear::from_f16(copy_elements<std::uint16_t>(w).data(), n, k, bias); break;
    case DType::f32: linear.kernel_ = DenseLinear::from_f32(copy_elements<float>(w).data(), n, k, bias); break;
    default: throw CheckpointError(fmt::format("{}: weight dtype {} is not supported", w.describe(), dtype_name(w.dtype)));
  }
  return linear;
}

Linear Linear::from_dense(DenseLinear dense, std::string name) {
  Linear linear;
  linear.name_ = std::move(name);
  linear.in_features_ = dense.in_features();
  linear.out_features_ = dense.out_features();
  linear.kernel_ = std::move(dense);
  return linear;
}

Linear Linear::from_int4(Int4Linear int4, std::string name) {
  Linear linear;
  linear.name_ = std::move(name);
  linear.in_features_ = int4.in_features();
  linear.out_features_ = int4.out_features();
  linear.kernel_ = std::move(int4);
  return linear;
}

void Linear::forward(const float* x, int m, float* y, ThreadPool& pool) const {
  if (const auto* dense = std::get_if<DenseLinear>(&kernel_)) return dense->forward(x, m, y, pool);
  if (const auto* int4 = std::get_if<Int4Linear>(&kernel_)) return int4->forward(x, m, y, pool);
  throw std::logic_error("Linear::forward on an empty linear layer");
}

std::uint64_t Linear::weight_bytes() const {
  if (const auto* dense = std::get_if<DenseLinear>(&kernel_)) return dense->weight_bytes();
  if (const auto* int4 = std::get_if<Int4Linear>(&kernel_)) return int4->packed_bytes();
  return 0;
}

ReferenceLinearWeights reference_linear_weights(const LinearTensors& tensors, const std::optional<QuantConfig>& quant) {
  ReferenceLinearWeights out;
  out.out_features = tensors.out_features;
  out.in_features = tensors.in_features;
  out.bias = bias_of(tensors);
  if (tensors.quantized) {
    if (!quant) throw CheckpointError(fmt::format("{}: GPTQ tensors but no quantization config", tensors.prefix));
    out.weight = dequantize_reference(copy_gptq_weight(tensors, *quant).weight);
  } else {
    out.weight = to_float(*tensors.weight);
  }
  return out;
}

}  // namespace quanteval::runtime
