#include "runtime/model/linear.hpp"
#include "runtime/base/check.hpp"

#include <fmt/format.h>

#include <cstdint>
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

// The elements of `view` as a typed span: straight into the mapping when its
// bytes are aligned for T (what safetensors writers produce), else through a
// copy kept in `storage`. Loading thus never holds a second copy of a tensor
// in the common case.
template <typename T>
std::span<const T> elements_of(const TensorView& view, std::vector<T>& storage) {
  const std::size_t count = view.bytes / sizeof(T);
  if (reinterpret_cast<std::uintptr_t>(view.data) % alignof(T) == 0)
    return {reinterpret_cast<const T*>(view.data), count};
  storage = copy_elements<T>(view);
  return storage;
}

void release_linear_pages(const LinearTensors& tensors) {
  for (const TensorView* view : {tensors.weight, tensors.qweight, tensors.qzeros, tensors.scales, tensors.g_idx,
                                 tensors.bias})
    if (view) release_resident_pages(*view);
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

OwnedGptqWeight view_gptq_weight(const LinearTensors& tensors, const QuantConfig& quant) {
  if (tensors.qweight->dtype != DType::i32 || tensors.qzeros->dtype != DType::i32)
    throw CheckpointError(fmt::format("{}: qweight and qzeros must be I32", tensors.prefix));
  if (tensors.scales->dtype != DType::f16 && tensors.scales->dtype != DType::bf16)
    throw CheckpointError(fmt::format("{}: scales must be F16 or BF16", tensors.prefix));
  if (tensors.g_idx && tensors.g_idx->dtype != DType::i32)
    throw CheckpointError(fmt::format("{}: g_idx must be I32", tensors.prefix));
  OwnedGptqWeight owned;
  GptqWeight& w = owned.weight;
  w.qweight = elements_of(*tensors.qweight, owned.qweight);
  w.qzeros = elements_of(*tensors.qzeros, owned.qzeros);
  w.scales = elements_of(*tensors.scales, owned.scales);
  if (tensors.g_idx) w.g_idx = elements_of(*tensors.g_idx, owned.g_idx);
  w.name = tensors.prefix;
  w.in_features = static_cast<int>(tensors.in_features);
  w.out_features = static_cast<int>(tensors.out_features);
  w.bits = quant.bits;
  w.group_size = static_cast<int>(quant.group_size);
  w.format = quant.format;
  w.sym = quant.sym;
  w.scale_format = tensors.scales->dtype == DType::bf16 ? ScaleFormat::bf16 : ScaleFormat::f16;
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
    const OwnedGptqWeight view = view_gptq_weight(tensors, *quant);
    linear.kernel_ = Int4Linear::from_gptq(view.weight, bias);
    release_linear_pages(tensors);
    return linear;
  }
  const TensorView& w = *tensors.weight;
  const int n = linear.out_features_, k = linear.in_features_;
  // One copy, straight from the mapping into the kernel's storage, releasing the
  // mapped pages as it goes (the lm_head of a 27B model is 2.5 GB).
  switch (w.dtype) {
    case DType::bf16:
    case DType::f16: {
      auto bits = std::make_shared<std::vector<std::uint16_t>>(w.bytes / 2);
      copy_and_release(w, bits->data());
      linear.kernel_ = DenseLinear::from_shared_16bit(std::move(bits), w.dtype == DType::bf16, n, k, bias);
      break;
    }
    case DType::f32: {
      std::vector<float> unaligned;
      linear.kernel_ = DenseLinear::from_f32(elements_of(w, unaligned).data(), n, k, bias);
      break;
    }
    default: throw CheckpointError(fmt::format("{}: weight dtype {} is not supported", w.describe(), dtype_name(w.dtype)));
  }
  release_linear_pages(tensors);
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
  QE_FAIL("Linear::forward on an empty linear layer");
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
    out.weight = dequantize_reference(view_gptq_weight(tensors, *quant).weight);
  } else {
    out.weight = to_float(*tensors.weight);
  }
  return out;
}

}  // namespace quanteval::runtime
