#pragma once
// The CPU backend: the decoder stack's ops (model/backend.hpp) on the host, fp32
// activations, projections through the SIMD kernels of linear.hpp (INT4 GPTQ
// repacked at load, 16-bit dense) or, for checking them, through plain fp32
// loops (LinearKernels::reference), all work split over one ThreadPool. Every
// op gives bit-identical results for any thread count.
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "runtime/kernels/cpu/linear.hpp"
#include "runtime/kernels/cpu/memory.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/model/backend.hpp"
#include "runtime/model/model.hpp"  // LinearKernels
#include "runtime/platform/streamed_memory.hpp"

namespace quanteval::runtime {

// A projection on the CPU: one of the kernels, chosen by the weights and the backend's mode.
class CpuLinear final : public LinearWeight {
 public:
  std::int64_t in_features() const override { return in_features_; }
  std::int64_t out_features() const override { return out_features_; }
  bool quantized() const override { return quantized_; }
  std::uint64_t weight_bytes() const override;
  const std::string& name() const { return name_; }

  // x: [m, in_features], y: [m, out_features].
  void forward(const float* x, int m, float* y, ThreadPool& pool) const;
  // The INT4 kernel, when that is what this is (benchmarks pick ISA and activation mode).
  const Int4Linear* int4() const { return std::get_if<Int4Linear>(&kernel_); }
  // The bytes a forward streams (empty for the reference kernels), for benchmarks that flush
  // them from the caches.
  std::span<const std::byte> weight_memory() const;

  // The kernels' weights come from `arena` (null: a mapping each).
  static std::unique_ptr<CpuLinear> build(const LinearSource& source, LinearKernels kernels,
                                          const std::shared_ptr<StreamedArena>& arena);
  static std::unique_ptr<CpuLinear> share_table(std::shared_ptr<const Bits16> bits, bool bf16, std::int64_t rows,
                                                std::int64_t cols, std::string name);

 private:
  // fp32 weights and plain loops (LinearKernels::reference).
  struct Reference {
    std::vector<float> weight;  // [N, K]
    std::vector<float> bias;    // [N] or empty
  };
  std::string name_;
  std::int64_t in_features_ = 0, out_features_ = 0;
  bool quantized_ = false;
  std::variant<std::monostate, DenseLinear, Int4Linear, Reference> kernel_;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, LinearKernels kernels);
  ~CpuBackend() override;

  std::string name() const override;
  // Every op computes a row from that row alone, in an order fixed by the shapes
  // (docs/cpu-kernels.md, "Batch invariance").
  bool batch_invariant() const override { return true; }
  ThreadPool& pool() { return pool_; }

  std::unique_ptr<LinearWeight> linear(const LinearSource& source) override;
  std::unique_ptr<VectorWeight> vector(std::vector<float> values) override;
  std::unique_ptr<TableWeight> table(const DenseSource& source) override;
  std::unique_ptr<LinearWeight> linear_from_table(const TableWeight& table) override;

  void allocate_memory(const MemoryPlan& plan) override;
  void clear_slot(int slot) override;

  std::unique_ptr<StepScope> begin_step() override;  // subnormals flushed to zero on this thread
  Tensor scratch(std::int64_t rows, std::int64_t cols) override;
  ArenaMark scratch_mark() override { return scratch_.mark(); }
  void release_scratch(ArenaMark mark) override { scratch_.rewind(mark); }
  void end_step() override;
  void embed(const TableWeight& table, std::span<const TokenId> tokens, Tensor out) override;
  void rms_norm(Tensor x, const VectorWeight& weight, float eps, Tensor out) override;
  void add_rms_norm(Tensor residual, Tensor addend, const VectorWeight& weight, float eps, Tensor normed) override;
  void add(Tensor residual, Tensor addend) override;
  void matmul(const LinearWeight& weight, Tensor x, Tensor y) override;
  // INT4 projections of one input in one pass (Int4Linear::forward_shared_input).
  void matmul_shared_input(std::span<const LinearWeight* const> weights, Tensor x, std::span<const Tensor> ys) override;
  void swiglu(Tensor gate, Tensor up, Tensor out) override;
  void attention(const AttentionSpec& spec, const AttentionWeights& weights, const StepBatch& batch, Tensor q, Tensor k,
                 Tensor v, Tensor out) override;
  void gated_deltanet(const DeltaNetSpec& spec, const DeltaNetWeights& weights, const StepBatch& batch, Tensor qkv,
                      Tensor z, Tensor b, Tensor a, Tensor out) override;
  void gather_rows(Tensor x, std::span<const std::int64_t> rows, Tensor out) override;
  void read(Tensor x, float* host) override;
  void write(Tensor x, const float* host) override;

  const CpuMemory& memory() const { return memory_; }

 private:
  ThreadPool pool_;
  LinearKernels kernels_;
  CpuMemory memory_;
  // Every weight the kernels stream, in load order (see StreamedArena); shared with the
  // weights' own storage, so it lives as long as the last of them.
  std::shared_ptr<StreamedArena> weight_memory_;
  ChunkArena<StreamedMapping> scratch_;  // this step's tensors, kept from step to step
};

}  // namespace quanteval::runtime
