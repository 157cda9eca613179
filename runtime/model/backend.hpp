#pragma once
// What a compute backend provides to the one decoder stack (model.hpp). The
// stack -- embed, norms, token mixers, MLP, lm_head, for every architecture -- is
// written once against these ops; a backend (kernels/cpu/backend.hpp, kernels/cuda/
// backend.hpp) implements the ops, never a copy of an architecture. Every op
// of a new backend is checked against the CPU backend on the same inputs.
//
// Tensors are the backend's own buffers, passed around by the stack as opaque
// [rows, cols] handles; only the backend reads or writes their data. Weights are
// built once, through the backend, from a WeightSource (checkpoint or synthetic)
// and are the backend's objects too (CPU: repacked INT4 / 16-bit tables; CUDA:
// Marlin layout in device memory).
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/base/check.hpp"
#include "runtime/base/chunk_arena.hpp"
#include "runtime/checkpoint/weight_source.hpp"
#include "runtime/model/memory.hpp"
#include "runtime/text/tokenizer.hpp"  // TokenId

namespace quanteval::runtime {

// A [rows, cols] row-major matrix in a backend's memory.
struct Tensor {
  void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
};

// The rows of one forward step. Row r is token tokens[r] at absolute position
// positions[r]; the rows of one sequence are contiguous and in position order.
struct StepBatch {
  struct Sequence {
    SequenceState* state = nullptr;
    std::int64_t first_row = 0;  // its rows are [first_row, first_row + rows)
    std::int64_t rows = 0;
    std::int64_t first_position = 0;  // = the state's length before this step
  };
  std::vector<TokenId> tokens;          // [M]
  std::vector<std::int64_t> positions;  // [M]
  std::vector<int> row_sequence;        // [M] index into sequences
  std::vector<Sequence> sequences;

  std::int64_t rows() const { return static_cast<std::int64_t>(tokens.size()); }
  bool one_row_each() const;  // a pure decode step
};

// A projection y = x W^T (+ b), built by a backend from a LinearSource.
class LinearWeight {
 public:
  virtual ~LinearWeight() = default;
  virtual std::int64_t in_features() const = 0;
  virtual std::int64_t out_features() const = 0;
  virtual bool quantized() const = 0;
  virtual std::uint64_t weight_bytes() const = 0;  // bytes one forward streams from memory
};

// A small fp32 vector (norm weights, conv taps, DeltaNet decay parameters).
class VectorWeight {
 public:
  virtual ~VectorWeight() = default;
  virtual std::int64_t size() const = 0;
};

// The token embedding table [vocab, hidden].
class TableWeight {
 public:
  virtual ~TableWeight() = default;
  virtual std::int64_t rows() const = 0;
  virtual std::int64_t cols() const = 0;
  virtual std::uint64_t bytes() const = 0;
};

// Softmax attention over the paged K/V: full or sliding window, GQA, optional
// per-head q/k RMSNorm (Qwen3, Qwen3.5), partial RoPE and a sigmoid output gate
// (Qwen3.5: q_proj emits per head [query | gate]).
struct AttentionSpec {
  int heads = 0;
  int kv_heads = 0;  // divides heads; query head h reads kv head h / (heads / kv_heads)
  int head_dim = 0;
  int rotary_dim = 0;       // leading dims of each head RoPE rotates (even, <= head_dim)
  std::int64_t window = 0;  // sliding window in positions; 0 = full attention
  bool gated = false;
  float norm_eps = 1e-6f;
  int kv_layer = 0;             // which K/V layer of the memory this layer writes
  std::vector<float> inv_freq;  // [rotary_dim / 2] RoPE frequencies
};
struct AttentionWeights {
  const VectorWeight* q_norm = nullptr;  // [head_dim] or null (no q/k norm)
  const VectorWeight* k_norm = nullptr;  // [head_dim] or null
};

// Qwen3.5 Gated DeltaNet between its projections (see qwen3_5/delta_rule.hpp).
struct DeltaNetSpec {
  int key_heads = 0;
  int value_heads = 0;     // a multiple of key_heads
  int key_head_dim = 0;    // d_k
  int value_head_dim = 0;  // d_v
  int conv_kernel = 0;
  float norm_eps = 1e-6f;
  int state_layer = 0;  // which recurrent layer of the memory slots this layer uses
  int key_dim() const { return key_heads * key_head_dim; }
  int value_dim() const { return value_heads * value_head_dim; }
  int conv_dim() const { return 2 * key_dim() + value_dim(); }
};
struct DeltaNetWeights {
  const VectorWeight* conv_weight = nullptr;  // [conv_dim, conv_kernel]
  const VectorWeight* conv_bias = nullptr;    // [conv_dim] or null
  const VectorWeight* A_log = nullptr;        // [value_heads]
  const VectorWeight* dt_bias = nullptr;      // [value_heads]
  const VectorWeight* norm = nullptr;         // [d_v] gated RMSNorm weight, used as stored
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu (2 threads)", "cuda (NVIDIA H200)"
  // True when a sequence's logits are the same bits whatever else shares its
  // forward step and whatever the thread count (tests/model/batch_invariance_test):
  // then `run` gives the same samples at any --max-batch and --threads, and a
  // report can say so (docs/compare.md, "Noise floor").
  virtual bool batch_invariant() const = 0;

  // --- weights, built once ---
  virtual std::unique_ptr<LinearWeight> linear(const LinearSource& source) = 0;
  virtual std::unique_ptr<VectorWeight> vector(std::vector<float> values) = 0;
  virtual std::unique_ptr<TableWeight> table(const DenseSource& source) = 0;
  // A projection that reads `table` as its weight (tied lm_head): no second copy.
  virtual std::unique_ptr<LinearWeight> linear_from_table(const TableWeight& table) = 0;

  // --- memory: storage for the plan's K/V blocks and state slots ---
  // A device with its own memory reports it (free, total bytes) so the model memory can be
  // sized from it (device_memory_budget); host backends return nothing.
  struct DeviceMemory {
    std::uint64_t free_bytes = 0, total_bytes = 0;
  };
  virtual std::optional<DeviceMemory> device_memory() const { return std::nullopt; }
  virtual void allocate_memory(const MemoryPlan& plan) = 0;
  // Zeroes the recurrent state of a slot (a newly admitted sequence).
  virtual void clear_slot(int slot) = 0;

  // --- one step ---
  // Held by the model while one step's ops run (Model::forward, layer_for): a backend may set
  // per-thread numeric modes for its host work, restored when the object is destroyed. The
  // CPU backend flushes subnormals to zero (runtime/platform/float_modes.hpp).
  class StepScope {
   public:
    virtual ~StepScope() = default;
  };
  virtual std::unique_ptr<StepScope> begin_step() { return nullptr; }
  // Scratch tensors live until end_step(), or until release_scratch(mark) for those taken
  // after scratch_mark() returned `mark`: the model gives back each layer's tensors when the
  // layer ends, so a host backend holds one layer's activations at a time, not all of them.
  // A backend may ignore the marks and keep everything to the end of the step.
  virtual Tensor scratch(std::int64_t rows, std::int64_t cols) = 0;
  virtual ArenaMark scratch_mark() { return {}; }
  virtual void release_scratch(ArenaMark /*mark*/) {}
  virtual void end_step() = 0;
  virtual void embed(const TableWeight& table, std::span<const TokenId> tokens, Tensor out) = 0;
  // out = rmsnorm(x) * weight, per row.
  virtual void rms_norm(Tensor x, const VectorWeight& weight, float eps, Tensor out) = 0;
  // residual += addend, then normed = rmsnorm(residual) * weight (one pass where the backend can).
  virtual void add_rms_norm(Tensor residual, Tensor addend, const VectorWeight& weight, float eps, Tensor normed) = 0;
  virtual void add(Tensor residual, Tensor addend) = 0;
  virtual void matmul(const LinearWeight& weight, Tensor x, Tensor y) = 0;  // y = x W^T + b
  // ys[i] = x W_i^T + b_i for each weight: one input through several projections (a layer's
  // q/k/v, gate/up), matmul's bits for each. A backend may run them as one pass (the CPU
  // does: at decode a small GEMV's start-up costs about what its weights take to stream).
  virtual void matmul_shared_input(std::span<const LinearWeight* const> weights, Tensor x, std::span<const Tensor> ys) {
    QE_CHECK(weights.size() == ys.size(), "matmul_shared_input: as many outputs as weights");
    for (std::size_t i = 0; i < weights.size(); ++i) matmul(*weights[i], x, ys[i]);
  }
  virtual void swiglu(Tensor gate, Tensor up, Tensor out) = 0;              // out = silu(gate) * up
  // q: [M, heads * head_dim] (gated: [M, heads * 2 * head_dim], per head [query | gate]);
  // k, v: [M, kv_heads * head_dim]; out: [M, heads * head_dim]. Normalizes and rotates
  // q and k, stores k and v of every row in the memory, then attends causally.
  virtual void attention(const AttentionSpec& spec, const AttentionWeights& weights, const StepBatch& batch, Tensor q,
                         Tensor k, Tensor v, Tensor out) = 0;
  // qkv: [M, conv_dim] (in_proj_qkv), z: [M, value_dim], b, a: [M, value_heads];
  // out: [M, value_dim] the gated-normed delta-rule output (before out_proj).
  // Continues and updates each sequence's conv and recurrent state.
  virtual void gated_deltanet(const DeltaNetSpec& spec, const DeltaNetWeights& weights, const StepBatch& batch,
                              Tensor qkv, Tensor z, Tensor b, Tensor a, Tensor out) = 0;
  // out[i] = x[rows[i]].
  virtual void gather_rows(Tensor x, std::span<const std::int64_t> rows, Tensor out) = 0;
  // x as fp32 on the host, rows * cols values.
  virtual void read(Tensor x, float* host) = 0;
  // Loads host fp32 values [rows, cols] into x (debugging: feed a layer chosen inputs).
  virtual void write(Tensor x, const float* host) = 0;
};

}  // namespace quanteval::runtime
