#include "runtime/kernels/cuda/backend.hpp"

#ifdef QUANTEVAL_HAVE_CUDA

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/base/check.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "runtime/kernels/cuda/cublas_library.hpp"
#include "runtime/kernels/cuda/device_probe.hpp"
#include "runtime/kernels/cuda/marlin_gemm.hpp"
#include "runtime/kernels/cuda/model_kernels.hpp"
#include "runtime/model/math.hpp"

namespace quanteval::runtime {

namespace {

using cuda::DeviceBuffer;
namespace kernels = cuda::kernels;

void check(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) throw std::runtime_error(fmt::format("CUDA: {}: {}", what, cudaGetErrorString(status)));
}

DeviceBuffer upload(const void* host, std::size_t bytes, const std::string& what) {
  DeviceBuffer buffer(std::max<std::size_t>(bytes, 16));
  if (bytes) check(cudaMemcpy(buffer.data(), host, bytes, cudaMemcpyHostToDevice), "upload of " + what);
  return buffer;
}

bool env_is(const char* name, const char* value) {
  const char* set = std::getenv(name);
  return set && std::strcmp(set, value) == 0;
}

float* f32(Tensor t) { return static_cast<float*>(t.data); }

class CudaVector final : public VectorWeight {
 public:
  explicit CudaVector(const std::vector<float>& values)
      : size_(static_cast<std::int64_t>(values.size())),
        data_(upload(values.data(), values.size() * sizeof(float), "a vector weight")) {}
  std::int64_t size() const override { return size_; }
  const float* data() const { return data_.as<float>(); }

 private:
  std::int64_t size_;
  DeviceBuffer data_;
};

const float* device_data(const VectorWeight* weight) {
  return weight ? dynamic_cast<const CudaVector&>(*weight).data() : nullptr;
}

kernels::Element element_of(DType dtype) {
  switch (dtype) {
    case DType::bf16: return kernels::Element::bf16;
    case DType::f16: return kernels::Element::f16;
    case DType::f32: return kernels::Element::f32;
    default: throw CheckpointError("the CUDA backend takes bf16, f16 or f32 weights");
  }
}
std::size_t element_bytes(kernels::Element e) { return e == kernels::Element::f32 ? 4 : 2; }

// A dense [rows, cols] table on the device in its stored type.
struct DenseDevice {
  std::shared_ptr<DeviceBuffer> data;
  kernels::Element type = kernels::Element::bf16;
};

DenseDevice upload_dense(const DenseSource& source, const std::string& what) {
  const kernels::Element type = element_of(source.dtype);
  std::vector<std::byte> host(static_cast<std::size_t>(source.rows * source.cols) * element_bytes(type));
  source.copy_to(host.data());
  return {std::make_shared<DeviceBuffer>(upload(host.data(), host.size(), what)), type};
}

class CudaTable final : public TableWeight {
 public:
  CudaTable(const DenseSource& source)
      : rows_(source.rows), cols_(source.cols), dense_(upload_dense(source, "the embedding")) {}
  std::int64_t rows() const override { return rows_; }
  std::int64_t cols() const override { return cols_; }
  std::uint64_t bytes() const override { return dense_.data->bytes(); }
  const DenseDevice& dense() const { return dense_; }

 private:
  std::int64_t rows_, cols_;
  DenseDevice dense_;
};

// A projection on the GPU: the Marlin kernel for GPTQ weights, or a dense 16-bit / fp32
// weight through cuBLAS (dense checkpoints, the lm_head, and GPTQ weights dequantized to
// BF16 in the reference mode or when their shape does not suit the kernel).
class CudaLinear final : public LinearWeight {
 public:
  std::int64_t in_features() const override { return in_; }
  std::int64_t out_features() const override { return out_; }
  bool quantized() const override { return quantized_; }
  std::uint64_t weight_bytes() const override {
    return marlin ? marlin->streamed_bytes() : static_cast<std::uint64_t>(in_ * out_) * element_bytes(dense.type);
  }

  std::string name;
  std::int64_t in_ = 0, out_ = 0;
  bool quantized_ = false;
  std::optional<cuda::MarlinWeight> marlin;
  DenseDevice dense;                 // [N, K] when not Marlin
  std::optional<DeviceBuffer> bias;  // [N] fp32
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options) : options_(options) {
    const cuda::DeviceStatus status = cuda::device_status();
    if (!status.usable) throw std::runtime_error("no CUDA device: " + status.summary());
    check(cudaGetDevice(&device_), "cudaGetDevice");
    for (const auto& d : cuda::list_devices())
      if (d.index == device_) device_name_ = d.name, multiprocessors_ = d.multiprocessors;
    std::string error;
    cublas_ = cuda::CublasHandle::open(error);
    if (!cublas_) throw std::runtime_error("the CUDA backend needs cuBLAS for its dense projections: " + error);
    if (env_is("QE_CUDA_SYNC", "1")) options_.synchronize_each_op = true;
    if (env_is("QE_CUDA_GPTQ", "dequant")) options_.linears = LinearKernels::reference;
    workspace_.emplace();
  }

  // Not promised: Marlin's tile and stream-K split and cuBLAS's algorithm choice depend
  // on the number of rows, so a row's projections may round differently alone and in
  // a batch (attention and DeltaNet are per row with fixed 512-position splits).
  bool batch_invariant() const override { return false; }
  std::string name() const override {
    return fmt::format("cuda ({}{})", device_name_,
                       options_.linears == LinearKernels::reference ? ", GPTQ dequantized to BF16 + cuBLAS" : "");
  }

  std::unique_ptr<LinearWeight> linear(const LinearSource& source) override {
    auto linear = std::make_unique<CudaLinear>();
    linear->name = source.name;
    linear->in_ = source.in_features;
    linear->out_ = source.out_features;
    linear->quantized_ = source.gptq.has_value();
    if (source.gptq) {
      if (options_.linears == LinearKernels::fast) {
        try {
          linear->marlin = cuda::MarlinWeight::from_gptq(*source.gptq, cuda::ActivationType::bf16);
        } catch (const std::invalid_argument&) {
          // A shape the kernel does not take (K % 128, N % 64): served dense below.
          linear->marlin.reset();
        }
      }
      if (!linear->marlin) {
        const std::vector<float> weight = dequantize_reference(*source.gptq);
        std::vector<std::uint16_t> bits(weight.size());
        for (std::size_t i = 0; i < weight.size(); ++i) bits[i] = math::float_to_bf16(weight[i]);
        linear->dense = {std::make_shared<DeviceBuffer>(upload(bits.data(), bits.size() * 2, source.name)),
                         kernels::Element::bf16};
      }
    } else {
      QE_CHECK(source.dense.has_value(), "a linear source without weights");
      linear->dense = upload_dense(*source.dense, source.name);
    }
    if (!source.bias.empty())
      linear->bias.emplace(upload(source.bias.data(), source.bias.size() * sizeof(float), source.name + ".bias"));
    return linear;
  }

  std::unique_ptr<VectorWeight> vector(std::vector<float> values) override {
    return std::make_unique<CudaVector>(values);
  }
  std::unique_ptr<TableWeight> table(const DenseSource& source) override { return std::make_unique<CudaTable>(source); }
  std::unique_ptr<LinearWeight> linear_from_table(const TableWeight& table) override {
    const auto& t = dynamic_cast<const CudaTable&>(table);
    auto linear = std::make_unique<CudaLinear>();
    linear->name = "lm_head (tied to model.embed_tokens)";
    linear->in_ = t.cols();
    linear->out_ = t.rows();
    linear->dense = t.dense();  // shares the device table
    return linear;
  }

  std::optional<DeviceMemory> device_memory() const override {
    std::size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    return DeviceMemory{free, total};
  }

  void allocate_memory(const MemoryPlan& plan) override {
    plan_ = plan;
    keys_.clear();
    values_.clear();
    states_.clear();
    const MemoryShape& s = plan.shape;
    if (s.kv_bytes_per_token() > 0) {
      const std::size_t bytes = static_cast<std::size_t>(plan.blocks) * s.block_tokens * s.kv_heads * s.head_dim * 4;
      for (int layer = 0; layer < s.kv_layers; ++layer) {
        keys_.emplace_back(bytes);
        values_.emplace_back(bytes);
      }
    }
    for (int layer = 0; layer < s.state_layers; ++layer) {
      states_.emplace_back(static_cast<std::size_t>(slot_floats()) * plan.slots * 4);
      check(cudaMemset(states_.back().data(), 0, states_.back().bytes()), "clearing the state slots");
    }
  }
  void clear_slot(int slot) override {
    QE_CHECK(slot >= 0 && slot < plan_.slots, "state slot out of range");
    for (int layer = 0; layer < plan_.shape.state_layers; ++layer)
      check(cudaMemset(slot_base(layer, slot), 0, static_cast<std::size_t>(slot_floats()) * 4), "clear_slot");
  }

  Tensor scratch(std::int64_t rows, std::int64_t cols) override {
    QE_CHECK(rows >= 0 && cols >= 0, "negative tensor shape");
    return {arena_.allocate(static_cast<std::size_t>(rows * cols) * sizeof(float)), rows, cols};
  }
  void end_step() override {
    arena_.reset();
    uploaded_for_ = sequences_for_ = splits_for_ = nullptr;
  }

  void embed(const TableWeight& table, std::span<const TokenId> tokens, Tensor out) override {
    const auto& t = dynamic_cast<const CudaTable&>(table);
    QE_CHECK(out.rows == static_cast<std::int64_t>(tokens.size()) && out.cols == t.cols(), "embed shapes");
    static_assert(sizeof(TokenId) == sizeof(std::int32_t));
    auto* ids = static_cast<std::int32_t*>(to_device(tokens.data(), tokens.size_bytes()));
    kernels::embed(t.dense().data->data(), t.dense().type, ids, static_cast<int>(out.rows), static_cast<int>(out.cols),
                   f32(out), stream_);
    after("embed");
  }
  void rms_norm(Tensor x, const VectorWeight& weight, float eps, Tensor out) override {
    QE_CHECK(x.cols == weight.size() && out.cols == x.cols && out.rows == x.rows, "rms_norm shapes");
    kernels::rms_norm(f32(x), device_data(&weight), static_cast<int>(x.rows), static_cast<int>(x.cols), eps, f32(out),
                      stream_);
    after("rms_norm");
  }
  void add_rms_norm(Tensor residual, Tensor addend, const VectorWeight& weight, float eps, Tensor normed) override {
    QE_CHECK(residual.rows == addend.rows && residual.cols == addend.cols && residual.cols == weight.size() &&
                 normed.rows == residual.rows && normed.cols == residual.cols,
             "add_rms_norm shapes");
    kernels::add_rms_norm(f32(residual), f32(addend), device_data(&weight), static_cast<int>(residual.rows),
                          static_cast<int>(residual.cols), eps, f32(normed), stream_);
    after("add_rms_norm");
  }
  void add(Tensor residual, Tensor addend) override {
    QE_CHECK(residual.rows == addend.rows && residual.cols == addend.cols, "add shapes");
    kernels::add(f32(residual), f32(addend), residual.rows * residual.cols, stream_);
    after("add");
  }
  void matmul(const LinearWeight& weight, Tensor x, Tensor y) override {
    const auto& linear = dynamic_cast<const CudaLinear&>(weight);
    QE_CHECK(x.cols == linear.in_features() && y.cols == linear.out_features() && x.rows == y.rows,
             fmt::format("matmul shapes for {}: x [{}, {}], y [{}, {}], weight [{}, {}]", linear.name, x.rows, x.cols,
                         y.rows, y.cols, linear.out_features(), linear.in_features()));
    if (x.rows == 0) return;
    const int m = static_cast<int>(x.rows), n = static_cast<int>(y.cols), k = static_cast<int>(x.cols);
    const float* bias = linear.bias ? linear.bias->as<float>() : nullptr;
    if (linear.marlin) {
      void* a16 = arena_.allocate(static_cast<std::size_t>(m) * k * 2);
      void* c16 = arena_.allocate(static_cast<std::size_t>(m) * n * 2);
      kernels::to_16bit(f32(x), x.rows * x.cols, kernels::Element::bf16, a16, stream_);
      cuda::marlin_gemm(*linear.marlin, a16, c16, m, *workspace_, stream_);
      kernels::from_16bit(c16, kernels::Element::bf16, bias, m, n, f32(y), stream_);
    } else {
      using Type = cuda::CublasHandle::Type;
      const void* a = x.data;
      Type type = Type::f32;
      if (linear.dense.type != kernels::Element::f32) {
        type = linear.dense.type == kernels::Element::bf16 ? Type::bf16 : Type::f16;
        void* a16 = arena_.allocate(static_cast<std::size_t>(m) * k * 2);
        kernels::to_16bit(f32(x), x.rows * x.cols, linear.dense.type, a16, stream_);
        a = a16;
      }
      cublas_->gemm_row_major(type, Type::f32, m, n, k, a, k, linear.dense.data->data(), k, y.data, n, stream_);
      if (bias) kernels::add_bias(f32(y), bias, m, n, stream_);
    }
    after("matmul " + linear.name);
  }
  void swiglu(Tensor gate, Tensor up, Tensor out) override {
    QE_CHECK(gate.rows == up.rows && gate.cols == up.cols && out.rows == gate.rows && out.cols == gate.cols,
             "swiglu shapes");
    kernels::swiglu(f32(gate), f32(up), f32(out), gate.rows * gate.cols, stream_);
    after("swiglu");
  }

  void attention(const AttentionSpec& spec, const AttentionWeights& weights, const StepBatch& batch, Tensor q, Tensor k,
                 Tensor v, Tensor out) override {
    const kernels::StepRows rows = step_rows(batch);
    kernels::AttentionLayer layer;
    layer.heads = spec.heads;
    layer.kv_heads = spec.kv_heads;
    layer.head_dim = spec.head_dim;
    layer.rotary_dim = static_cast<int>(spec.inv_freq.size()) * 2;
    layer.window = spec.window;
    layer.gated = spec.gated;
    layer.norm_eps = spec.norm_eps;
    layer.q_norm = device_data(weights.q_norm);
    layer.k_norm = device_data(weights.k_norm);
    layer.inv_freq = inverse_frequencies(spec);
    layer.keys = keys_.at(static_cast<std::size_t>(spec.kv_layer)).as<float>();
    layer.values = values_.at(static_cast<std::size_t>(spec.kv_layer)).as<float>();
    layer.block_tokens = plan_.shape.block_tokens;
    QE_CHECK(q.rows == batch.rows() && q.cols == spec.heads * spec.head_dim * (spec.gated ? 2 : 1) &&
                 k.cols == spec.kv_heads * spec.head_dim && v.cols == k.cols && out.cols == spec.heads * spec.head_dim,
             "attention shapes");
    const Splits splits = step_splits(batch, spec.window);
    auto* query = static_cast<float*>(arena_.allocate(static_cast<std::size_t>(q.rows) * out.cols * sizeof(float)));
    auto* partial = static_cast<float*>(arena_.allocate(
        static_cast<std::size_t>(kernels::attention_partial_floats(splits.total, spec.heads, spec.head_dim)) *
        sizeof(float)));
    kernels::attention(layer, rows, f32(q), f32(k), f32(v), query, splits.offsets, splits.max, partial, f32(out),
                       stream_);
    after("attention");
  }

  void gated_deltanet(const DeltaNetSpec& spec, const DeltaNetWeights& weights, const StepBatch& batch, Tensor qkv,
                      Tensor z, Tensor b, Tensor a, Tensor out) override {
    kernels::DeltaNetLayer layer;
    layer.key_heads = spec.key_heads;
    layer.value_heads = spec.value_heads;
    layer.key_head_dim = spec.key_head_dim;
    layer.value_head_dim = spec.value_head_dim;
    layer.conv_kernel = spec.conv_kernel;
    layer.norm_eps = spec.norm_eps;
    layer.conv_weight = device_data(weights.conv_weight);
    layer.conv_bias = device_data(weights.conv_bias);
    layer.A_log = device_data(weights.A_log);
    layer.dt_bias = device_data(weights.dt_bias);
    layer.norm = device_data(weights.norm);
    QE_CHECK(qkv.cols == spec.conv_dim() && z.cols == spec.value_dim() && b.cols == spec.value_heads &&
                 a.cols == spec.value_heads && out.cols == spec.value_dim(),
             "gated_deltanet shapes");
    layer.states = states_.at(static_cast<std::size_t>(spec.state_layer)).as<float>();
    layer.slot_floats = slot_floats();
    layer.conv_floats = plan_.shape.conv_floats;
    const kernels::DeltaNetSequence* device_sequences = step_sequences(batch);
    const int m = static_cast<int>(batch.rows());
    auto* scratch =
        static_cast<float*>(arena_.allocate(static_cast<std::size_t>(kernels::deltanet_scratch_floats(layer, m)) * 4));
    kernels::gated_deltanet(layer, device_sequences, static_cast<int>(batch.sequences.size()), m, f32(qkv), f32(z),
                            f32(b), f32(a), scratch, f32(out), stream_);
    after("gated_deltanet");
  }

  void gather_rows(Tensor x, std::span<const std::int64_t> rows, Tensor out) override {
    QE_CHECK(out.rows == static_cast<std::int64_t>(rows.size()) && out.cols == x.cols, "gather_rows shapes");
    auto* device_rows = static_cast<std::int64_t*>(to_device(rows.data(), rows.size_bytes()));
    kernels::gather_rows(f32(x), device_rows, static_cast<int>(rows.size()), static_cast<int>(x.cols), f32(out),
                         stream_);
    after("gather_rows");
  }
  void read(Tensor x, float* host) override {
    check(cudaMemcpy(host, x.data, static_cast<std::size_t>(x.rows * x.cols) * sizeof(float), cudaMemcpyDeviceToHost),
          "read");
  }
  void write(Tensor x, const float* host) override {
    check(cudaMemcpy(x.data, host, static_cast<std::size_t>(x.rows * x.cols) * sizeof(float), cudaMemcpyHostToDevice),
          "write");
  }

 private:
  std::int64_t slot_floats() const { return plan_.shape.conv_floats + plan_.shape.recurrent_floats; }
  float* slot_base(int layer, int slot) const {
    QE_CHECK(slot >= 0 && slot < plan_.slots, "state slot out of range");
    return states_.at(static_cast<std::size_t>(layer)).as<float>() + static_cast<std::size_t>(slot) * slot_floats();
  }

  // Host bytes copied into this step's scratch (ordered after the work already queued:
  // the copy is on the same legacy default stream).
  void* to_device(const void* host, std::size_t bytes) {
    void* p = arena_.allocate(bytes);
    if (bytes) check(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice), "step upload");
    return p;
  }

  // The step's row positions and block tables on the device, uploaded once per step.
  kernels::StepRows step_rows(const StepBatch& batch) {
    if (uploaded_for_ == &batch) return step_rows_;
    const std::int64_t m = batch.rows();
    std::vector<std::int64_t> meta(static_cast<std::size_t>(2 * m));  // positions | row_blocks
    std::vector<std::int32_t> blocks;
    std::vector<std::int64_t> offsets;
    for (const auto& s : batch.sequences) {
      offsets.push_back(static_cast<std::int64_t>(blocks.size()));
      blocks.insert(blocks.end(), s.state->blocks().begin(), s.state->blocks().end());
    }
    for (std::int64_t r = 0; r < m; ++r) {
      meta[static_cast<std::size_t>(r)] = batch.positions[static_cast<std::size_t>(r)];
      meta[static_cast<std::size_t>(m + r)] =
          offsets[static_cast<std::size_t>(batch.row_sequence[static_cast<std::size_t>(r)])];
    }
    auto* device_meta = static_cast<std::int64_t*>(to_device(meta.data(), meta.size() * sizeof(std::int64_t)));
    auto* device_blocks = static_cast<std::int32_t*>(to_device(blocks.data(), blocks.size() * sizeof(std::int32_t)));
    step_rows_ = {static_cast<int>(m), device_meta, device_meta + m, device_blocks};
    uploaded_for_ = &batch;
    return step_rows_;
  }

  // The step's sequences (rows and state slots) on the device, uploaded once per step.
  const kernels::DeltaNetSequence* step_sequences(const StepBatch& batch) {
    if (sequences_for_ == &batch) return step_sequences_;
    std::vector<kernels::DeltaNetSequence> sequences;
    for (const auto& s : batch.sequences) sequences.push_back({s.first_row, s.rows, s.state->slot()});
    step_sequences_ = static_cast<kernels::DeltaNetSequence*>(
        to_device(sequences.data(), sequences.size() * sizeof(kernels::DeltaNetSequence)));
    sequences_for_ = &batch;
    return step_sequences_;
  }

  // Each row's first attention split for a window (0 = full), uploaded once per step and window.
  struct Splits {
    const std::int64_t* offsets = nullptr;  // device [M]
    std::int64_t total = 0;
    int max = 1;
  };
  Splits step_splits(const StepBatch& batch, std::int64_t window) {
    if (splits_for_ != &batch) {
      splits_.clear();
      splits_for_ = &batch;
    }
    if (const auto found = splits_.find(window); found != splits_.end()) return found->second;
    std::vector<std::int64_t> offsets(static_cast<std::size_t>(batch.rows()));
    Splits splits;
    splits.total = kernels::attention_split_offsets(batch.positions.data(), static_cast<int>(batch.rows()), window,
                                                    offsets.data(), &splits.max);
    splits.offsets = static_cast<std::int64_t*>(to_device(offsets.data(), offsets.size() * sizeof(std::int64_t)));
    return splits_[window] = splits;
  }

  const float* inverse_frequencies(const AttentionSpec& spec) {
    auto found = inv_freq_.find(&spec);
    if (found == inv_freq_.end())
      found =
          inv_freq_
              .emplace(&spec, upload(spec.inv_freq.data(), spec.inv_freq.size() * sizeof(float), "RoPE frequencies"))
              .first;
    return found->second.as<float>();
  }

  void after(const std::string& op) {
    if (!options_.synchronize_each_op) return;
    check(cudaDeviceSynchronize(), "after " + op);
  }

  CudaBackendOptions options_;
  int device_ = 0, multiprocessors_ = 1;
  std::string device_name_ = "unknown GPU";
  cudaStream_t stream_ = nullptr;  // the legacy default stream: host copies order with the kernels
  std::unique_ptr<cuda::CublasHandle> cublas_;
  std::optional<cuda::MarlinWorkspace> workspace_;
  MemoryPlan plan_;
  std::vector<DeviceBuffer> keys_, values_;  // [kv_layers] of [blocks][block_tokens][kv_heads][head_dim] fp32
  std::vector<DeviceBuffer> states_;         // [state_layers] of [slots][conv | recurrent] fp32
  // Scratch of one step, reused after end_step(). The layer marks are not used: batch
  // metadata uploaded once a step (uploaded_for_) lives in this arena across layers.
  ChunkArena<DeviceBuffer> arena_{std::size_t{64} << 20};
  const StepBatch* uploaded_for_ = nullptr;
  kernels::StepRows step_rows_;
  const StepBatch* sequences_for_ = nullptr;
  const kernels::DeltaNetSequence* step_sequences_ = nullptr;
  const StepBatch* splits_for_ = nullptr;
  std::map<std::int64_t, Splits> splits_;
  std::map<const AttentionSpec*, DeviceBuffer> inv_freq_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

}  // namespace quanteval::runtime

#else  // no CUDA in this build

#include <stdexcept>

namespace quanteval::runtime {
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions&) {
  throw std::runtime_error("no CUDA device: this build has no CUDA backend (nvcc was not found at build time)");
}
}  // namespace quanteval::runtime

#endif
