#include "runtime/kernels/cpu/backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "runtime/base/check.hpp"
#include "runtime/base/numeric.hpp"
#include "runtime/kernels/cpu/attention.hpp"
#include "runtime/kernels/cpu/delta_rule.hpp"
#include "runtime/model/math.hpp"
#include "runtime/platform/float_modes.hpp"
#include "runtime/platform/streamed_memory.hpp"

namespace quanteval::runtime {

namespace {

class CpuVector final : public VectorWeight {
 public:
  explicit CpuVector(std::vector<float> values) : values_(std::move(values)) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(values_.size()); }
  const float* data() const { return values_.data(); }

 private:
  std::vector<float> values_;
};

// The embedding table in its stored 16-bit format (or fp32).
class CpuTable final : public TableWeight {
 public:
  std::int64_t rows() const override { return rows_; }
  std::int64_t cols() const override { return cols_; }
  std::uint64_t bytes() const override { return bits16_ ? bits16_->size() * 2 : floats_.size() * sizeof(float); }

  static std::unique_ptr<CpuTable> build(const DenseSource& source, const std::shared_ptr<StreamedArena>& arena) {
    auto table = std::make_unique<CpuTable>();
    table->rows_ = source.rows;
    table->cols_ = source.cols;
    const auto count = static_cast<std::size_t>(source.rows * source.cols);
    if (source.dtype == DType::bf16 || source.dtype == DType::f16) {
      table->bf16_ = source.dtype == DType::bf16;
      auto bits = std::make_shared<Bits16>(count, StreamedAllocator<std::uint16_t>(arena));
      source.copy_to(bits->data());
      table->bits16_ = std::move(bits);
    } else {
      QE_CHECK(source.dtype == DType::f32, "embedding dtype");
      table->floats_.resize(count);
      source.copy_to(table->floats_.data());
    }
    return table;
  }

  void row(TokenId id, float* out) const {
    const auto offset = static_cast<std::size_t>(id) * static_cast<std::size_t>(cols_);
    if (bits16_) {
      const std::uint16_t* src = bits16_->data() + offset;
      if (bf16_)
        for (std::int64_t i = 0; i < cols_; ++i) out[i] = bf16_to_float(src[i]);
      else
        for (std::int64_t i = 0; i < cols_; ++i) out[i] = f16_to_float(src[i]);
    } else {
      std::memcpy(out, floats_.data() + offset, static_cast<std::size_t>(cols_) * sizeof(float));
    }
  }

  const std::shared_ptr<const Bits16>& bits16() const { return bits16_; }
  bool bf16() const { return bf16_; }

 private:
  std::int64_t rows_ = 0, cols_ = 0;
  bool bf16_ = true;
  std::shared_ptr<const Bits16> bits16_;  // [rows, cols] raw bf16/fp16, or null
  std::vector<float> floats_;             // [rows, cols] when stored as fp32
};

float* f32(Tensor t) { return static_cast<float*>(t.data); }

std::vector<float> widen(const DenseSource& source) {
  const auto count = static_cast<std::size_t>(source.rows * source.cols);
  std::vector<float> out(count);
  if (source.dtype == DType::f32) {
    source.copy_to(out.data());
    return out;
  }
  std::vector<std::uint16_t> bits(count);
  source.copy_to(bits.data());
  for (std::size_t i = 0; i < count; ++i)
    out[i] = source.dtype == DType::bf16 ? bf16_to_float(bits[i]) : f16_to_float(bits[i]);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Linear

std::unique_ptr<CpuLinear> CpuLinear::build(const LinearSource& source, LinearKernels kernels,
                                            const std::shared_ptr<StreamedArena>& arena) {
  auto linear = std::make_unique<CpuLinear>();
  linear->name_ = source.name;
  linear->in_features_ = source.in_features;
  linear->out_features_ = source.out_features;
  linear->quantized_ = source.gptq.has_value();
  const int n = static_cast<int>(source.out_features), k = static_cast<int>(source.in_features);
  if (kernels == LinearKernels::reference) {
    Reference reference;
    reference.weight = source.gptq ? dequantize_reference(*source.gptq) : widen(*source.dense);
    reference.bias = source.bias;
    linear->kernel_ = std::move(reference);
  } else if (source.gptq) {
    try {
      linear->kernel_ = Int4Linear::from_gptq(*source.gptq, source.bias, arena);
    } catch (const std::invalid_argument& e) {
      throw CheckpointError(fmt::format("{}: {}", source.name, e.what()));
    }
  } else {
    // One copy, straight from the source into the kernel's storage (a checkpoint
    // releases its mapped pages as it goes: the lm_head of a 27B model is 2.5 GB).
    const DenseSource& dense = *source.dense;
    if (dense.dtype == DType::f32) {
      std::vector<float> weight(static_cast<std::size_t>(n) * k);
      dense.copy_to(weight.data());
      linear->kernel_ = DenseLinear::from_f32(weight.data(), n, k, source.bias);
    } else {
      auto bits = std::make_shared<Bits16>(static_cast<std::size_t>(n) * k, StreamedAllocator<std::uint16_t>(arena));
      dense.copy_to(bits->data());
      linear->kernel_ = DenseLinear::from_shared_16bit(std::move(bits), dense.dtype == DType::bf16, n, k, source.bias);
    }
  }
  return linear;
}

std::unique_ptr<CpuLinear> CpuLinear::share_table(std::shared_ptr<const Bits16> bits, bool bf16, std::int64_t rows,
                                                  std::int64_t cols, std::string name) {
  auto linear = std::make_unique<CpuLinear>();
  linear->name_ = std::move(name);
  linear->in_features_ = cols;
  linear->out_features_ = rows;
  linear->kernel_ =
      DenseLinear::from_shared_16bit(std::move(bits), bf16, static_cast<int>(rows), static_cast<int>(cols));
  return linear;
}

void CpuLinear::forward(const float* x, int m, float* y, ThreadPool& pool) const {
  if (const auto* dense = std::get_if<DenseLinear>(&kernel_)) return dense->forward(x, m, y, pool);
  if (const auto* int4 = std::get_if<Int4Linear>(&kernel_)) return int4->forward(x, m, y, pool);
  const auto* reference = std::get_if<Reference>(&kernel_);
  QE_CHECK(reference, "CpuLinear::forward on an empty linear layer");
  const std::int64_t n_count = out_features_, k_count = in_features_;
  for (int r = 0; r < m; ++r) {
    const float* xr = x + static_cast<std::size_t>(r) * k_count;
    float* yr = y + static_cast<std::size_t>(r) * n_count;
    for (std::int64_t n = 0; n < n_count; ++n) {
      const float* wn = reference->weight.data() + static_cast<std::size_t>(n) * k_count;
      float acc = 0.0f;
      for (std::int64_t k = 0; k < k_count; ++k) acc += xr[k] * wn[k];
      yr[n] = acc + (reference->bias.empty() ? 0.0f : reference->bias[static_cast<std::size_t>(n)]);
    }
  }
}

std::span<const std::byte> CpuLinear::weight_memory() const {
  if (const auto* dense = std::get_if<DenseLinear>(&kernel_)) return dense->weight_memory();
  if (const auto* int4 = std::get_if<Int4Linear>(&kernel_)) return int4->packed_memory();
  return {};
}

std::uint64_t CpuLinear::weight_bytes() const {
  if (const auto* dense = std::get_if<DenseLinear>(&kernel_)) return dense->weight_bytes();
  if (const auto* int4 = std::get_if<Int4Linear>(&kernel_)) return int4->packed_bytes();
  if (const auto* reference = std::get_if<Reference>(&kernel_)) return reference->weight.size() * sizeof(float);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Memory

void CpuMemory::allocate(const MemoryPlan& plan) {
  plan_ = plan;
  keys_.clear();
  values_.clear();
  states_.clear();
  const MemoryShape& s = plan.shape;
  if (s.kv_bytes_per_token() > 0) {
    const std::size_t floats_per_layer =
        static_cast<std::size_t>(plan.blocks) * s.block_tokens * static_cast<std::size_t>(s.kv_heads) * s.head_dim;
    for (int layer = 0; layer < s.kv_layers; ++layer) {
      // new float[] without value-initialization: untouched pages cost no RAM.
      keys_.emplace_back(new float[floats_per_layer]);
      values_.emplace_back(new float[floats_per_layer]);
    }
  }
  const std::size_t slot_floats = static_cast<std::size_t>(s.conv_floats + s.recurrent_floats);
  for (int layer = 0; layer < s.state_layers; ++layer)
    states_.emplace_back(new float[slot_floats * static_cast<std::size_t>(plan.slots)]);
}

void CpuMemory::clear_slot(int slot) {
  QE_CHECK(slot >= 0 && slot < plan_.slots, "state slot out of range");
  const std::size_t slot_floats = static_cast<std::size_t>(plan_.shape.conv_floats + plan_.shape.recurrent_floats);
  for (int layer = 0; layer < plan_.shape.state_layers; ++layer) std::fill_n(slot_base(layer, slot), slot_floats, 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Backend

// Scratch in chunks of huge-page mappings (fewer faults the first time a chunk is written).
// 64 MiB holds a decode step and one layer of a 512-token prefill of the small models; a
// larger request gets a chunk of its own size.
constexpr std::size_t kScratchChunkBytes = std::size_t{64} << 20;

CpuBackend::CpuBackend(int threads, LinearKernels kernels)
    : pool_(threads),
      kernels_(kernels),
      weight_memory_(std::make_shared<StreamedArena>()),
      scratch_(kScratchChunkBytes) {
  check_cpu_settings();  // a bad QUANTEVAL_CPU_* value is reported here, not inside a worker
}
CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const { return fmt::format("cpu ({} threads)", pool_.size()); }

std::unique_ptr<LinearWeight> CpuBackend::linear(const LinearSource& source) {
  return CpuLinear::build(source, kernels_, weight_memory_);
}

std::unique_ptr<VectorWeight> CpuBackend::vector(std::vector<float> values) {
  return std::make_unique<CpuVector>(std::move(values));
}

std::unique_ptr<TableWeight> CpuBackend::table(const DenseSource& source) {
  return CpuTable::build(source, weight_memory_);
}

std::unique_ptr<LinearWeight> CpuBackend::linear_from_table(const TableWeight& table) {
  const auto& cpu = dynamic_cast<const CpuTable&>(table);
  if (!cpu.bits16() || kernels_ == LinearKernels::reference) {
    // fp32 tables and the reference kernels read a widened copy.
    std::vector<float> values(static_cast<std::size_t>(cpu.rows() * cpu.cols()));
    for (std::int64_t r = 0; r < cpu.rows(); ++r) cpu.row(static_cast<TokenId>(r), values.data() + r * cpu.cols());
    LinearSource source;
    source.name = "lm_head (tied to model.embed_tokens)";
    source.out_features = cpu.rows();
    source.in_features = cpu.cols();
    DenseSource dense;
    dense.dtype = DType::f32;
    dense.rows = cpu.rows();
    dense.cols = cpu.cols();
    dense.copy_to = [&values](void* destination) {
      std::memcpy(destination, values.data(), values.size() * sizeof(float));
    };
    source.dense = dense;
    return CpuLinear::build(source, kernels_, weight_memory_);
  }
  return CpuLinear::share_table(cpu.bits16(), cpu.bf16(), cpu.rows(), cpu.cols(),
                                "lm_head (tied to model.embed_tokens)");
}

void CpuBackend::allocate_memory(const MemoryPlan& plan) { memory_.allocate(plan); }
void CpuBackend::clear_slot(int slot) { memory_.clear_slot(slot); }

namespace {
// The calling thread's share of a step in the pool workers' mode (runtime/platform/float_modes.hpp):
// an op's serial parts and its pool calls then compute the same bits.
class FlushingStepScope final : public Backend::StepScope {
  FlushSubnormals flush_;
};
}  // namespace

std::unique_ptr<Backend::StepScope> CpuBackend::begin_step() { return std::make_unique<FlushingStepScope>(); }

Tensor CpuBackend::scratch(std::int64_t rows, std::int64_t cols) {
  QE_CHECK(rows >= 0 && cols >= 0, "negative tensor shape");
  // Not cleared: every op writes all of its output.
  return {scratch_.allocate(static_cast<std::size_t>(rows * cols) * sizeof(float)), rows, cols};
}

void CpuBackend::end_step() { scratch_.reset(); }

void CpuBackend::embed(const TableWeight& table, std::span<const TokenId> tokens, Tensor out) {
  const auto& cpu = dynamic_cast<const CpuTable&>(table);
  QE_CHECK(out.rows == static_cast<std::int64_t>(tokens.size()) && out.cols == cpu.cols(), "embed shapes");
  for (std::size_t r = 0; r < tokens.size(); ++r)
    cpu.row(tokens[r], f32(out) + static_cast<std::int64_t>(r) * out.cols);
}

void CpuBackend::rms_norm(Tensor x, const VectorWeight& weight, float eps, Tensor out) {
  const auto& w = dynamic_cast<const CpuVector&>(weight);
  QE_CHECK(x.cols == w.size() && out.cols == x.cols && out.rows == x.rows, "rms_norm shapes");
  for (std::int64_t r = 0; r < x.rows; ++r)
    math::rms_norm_row(f32(x) + r * x.cols, w.data(), x.cols, eps, f32(out) + r * x.cols);
}

void CpuBackend::add_rms_norm(Tensor residual, Tensor addend, const VectorWeight& weight, float eps, Tensor normed) {
  add(residual, addend);
  rms_norm(residual, weight, eps, normed);
}

void CpuBackend::add(Tensor residual, Tensor addend) {
  QE_CHECK(residual.rows == addend.rows && residual.cols == addend.cols, "add shapes");
  float* r = f32(residual);
  const float* a = f32(addend);
  const std::int64_t n = residual.rows * residual.cols;
  for (std::int64_t i = 0; i < n; ++i) r[i] += a[i];
}

namespace {

const CpuLinear& checked_linear(const LinearWeight& weight, Tensor x, Tensor y) {
  const auto& linear = dynamic_cast<const CpuLinear&>(weight);
  QE_CHECK(x.cols == linear.in_features() && y.cols == linear.out_features() && x.rows == y.rows,
           fmt::format("matmul shapes for {}: x [{}, {}], y [{}, {}], weight [{}, {}]", linear.name(), x.rows, x.cols,
                       y.rows, y.cols, linear.out_features(), linear.in_features()));
  return linear;
}

}  // namespace

void CpuBackend::matmul(const LinearWeight& weight, Tensor x, Tensor y) {
  const CpuLinear& linear = checked_linear(weight, x, y);
  if (x.rows == 0) return;
  linear.forward(f32(x), static_cast<int>(x.rows), f32(y), pool_);
}

void CpuBackend::matmul_shared_input(std::span<const LinearWeight* const> weights, Tensor x,
                                     std::span<const Tensor> ys) {
  QE_CHECK(weights.size() == ys.size(), "matmul_shared_input: as many outputs as weights");
  std::vector<const Int4Linear*> int4;
  std::vector<float*> outputs;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const CpuLinear& linear = checked_linear(*weights[i], x, ys[i]);
    int4.push_back(linear.int4());
    outputs.push_back(f32(ys[i]));
  }
  if (x.rows == 0) return;
  if (std::find(int4.begin(), int4.end(), nullptr) != int4.end()) {
    for (std::size_t i = 0; i < weights.size(); ++i) matmul(*weights[i], x, ys[i]);
    return;
  }
  Int4Linear::forward_shared_input(int4, f32(x), static_cast<int>(x.rows), outputs, pool_);
}

void CpuBackend::swiglu(Tensor gate, Tensor up, Tensor out) {
  QE_CHECK(gate.rows == up.rows && gate.cols == up.cols && out.rows == gate.rows && out.cols == gate.cols,
           "swiglu shapes");
  const std::int64_t n = gate.rows * gate.cols;
  const float *g = f32(gate), *u = f32(up);
  float* o = f32(out);
  auto apply = [&](std::int64_t begin, std::int64_t end) {
    detail::swiglu(g + begin, u + begin, o + begin, static_cast<size_t>(end - begin));
  };
  // One exp per element: a prefill of 512 rows x 4864 spent ~6% of its time here on the
  // calling thread alone. A decode step's few thousand elements are not worth a hand-off.
  constexpr std::int64_t kElementsWorthThreads = 1 << 15;
  if (n < kElementsWorthThreads)
    apply(0, n);
  else
    pool_.parallel_for(n, apply);
}

void CpuBackend::attention(const AttentionSpec& spec, const AttentionWeights& weights, const StepBatch& batch, Tensor q,
                           Tensor k, Tensor v, Tensor out) {
  const auto* q_norm = weights.q_norm ? &dynamic_cast<const CpuVector&>(*weights.q_norm) : nullptr;
  const auto* k_norm = weights.k_norm ? &dynamic_cast<const CpuVector&>(*weights.k_norm) : nullptr;
  const Tensor workspace = scratch(1, attention_workspace_floats(spec, batch.rows()));
  attention_cpu(spec, q_norm ? q_norm->data() : nullptr, k_norm ? k_norm->data() : nullptr, batch, f32(q), f32(k),
                f32(v), f32(out), memory_, pool_, f32(workspace));
}

void CpuBackend::gated_deltanet(const DeltaNetSpec& spec, const DeltaNetWeights& weights, const StepBatch& batch,
                                Tensor qkv, Tensor z, Tensor b, Tensor a, Tensor out) {
  auto data = [](const VectorWeight* w) { return w ? dynamic_cast<const CpuVector&>(*w).data() : nullptr; };
  const DeltaNetCpuWeights cpu{data(weights.conv_weight), data(weights.conv_bias), data(weights.A_log),
                               data(weights.dt_bias), data(weights.norm)};
  std::vector<DeltaNetRun> runs;
  for (const auto& s : batch.sequences)
    runs.push_back({s.first_row, s.rows, memory_.conv_state(spec.state_layer, s.state->slot()),
                    memory_.recurrent_state(spec.state_layer, s.state->slot())});
  // One-row runs (decode) take the recurrence, longer ones the chunked form (same result
  // within rounding), each by its own length: a sequence's bits do not depend on its batch.
  const Tensor workspace = scratch(1, gated_deltanet_workspace_floats(spec, batch.rows()));
  gated_deltanet_cpu(spec, cpu, runs, f32(qkv), f32(z), f32(b), f32(a), f32(out), kDeltaNetChunk, &pool_,
                     f32(workspace));
}

void CpuBackend::gather_rows(Tensor x, std::span<const std::int64_t> rows, Tensor out) {
  QE_CHECK(out.rows == static_cast<std::int64_t>(rows.size()) && out.cols == x.cols, "gather_rows shapes");
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::memcpy(f32(out) + static_cast<std::int64_t>(i) * x.cols, f32(x) + rows[i] * x.cols,
                sizeof(float) * static_cast<std::size_t>(x.cols));
}

void CpuBackend::read(Tensor x, float* host) {
  std::memcpy(host, x.data, sizeof(float) * static_cast<std::size_t>(x.rows * x.cols));
}

void CpuBackend::write(Tensor x, const float* host) {
  std::memcpy(x.data, host, sizeof(float) * static_cast<std::size_t>(x.rows * x.cols));
}

}  // namespace quanteval::runtime
