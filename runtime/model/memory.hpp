#pragma once
// One memory for every kind of layer (llama.cpp's llama_memory_hybrid is the model):
// a sequence needs room in two places, and both come out of one byte budget with
// one admission rule.
//   paged K/V    for attention layers (full, sliding, Qwen3.5's gated attention):
//                blocks of `block_tokens` positions; a sequence owns blocks for its
//                whole life (prompt + max_new_tokens), reserved when it is admitted.
//   state slots  for recurrent layers (Qwen3.5's Gated DeltaNet): a fixed-size slot
//                per sequence holding every such layer's conv and delta-rule state.
// A sequence is admitted only when both its blocks and (if the model has
// recurrent layers) a slot are free; otherwise it waits, and a sequence that
// could never fit is refused at once. Nothing grows after admission, so a
// running sequence never runs out of memory and the budget is never exceeded.
//
// This file is the bookkeeping (which blocks and slots belong to whom); the
// storage itself is the backend's (CPU: host arrays, CUDA: device buffers),
// sized from the same MemoryPlan.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace quanteval::runtime {

struct MemoryShape {
  int block_tokens = 16;              // positions per K/V block
  int kv_layers = 0;                  // attention layers (each keeps K and V)
  int kv_heads = 0;                   // K/V heads per attention layer
  int head_dim = 0;                   // floats per K (or V) head vector
  int state_layers = 0;               // recurrent layers
  std::int64_t conv_floats = 0;       // per recurrent layer and sequence: [conv_kernel - 1, conv_dim]
  std::int64_t recurrent_floats = 0;  // per recurrent layer and sequence: [value heads, d_k, d_v]
  int bytes_per_float = 4;            // the backend's storage precision

  std::uint64_t kv_bytes_per_token() const;  // K and V of every attention layer
  std::uint64_t kv_bytes_per_block() const { return kv_bytes_per_token() * static_cast<std::uint64_t>(block_tokens); }
  std::uint64_t slot_bytes() const;  // one sequence's recurrent state, all layers
  std::int64_t blocks_for(std::int64_t tokens) const { return (tokens + block_tokens - 1) / block_tokens; }
  bool recurrent() const { return state_layers > 0; }
};

struct MemoryPlan {
  MemoryShape shape;
  std::int64_t blocks = 0;  // K/V blocks
  int slots = 0;            // state slots (0 for models without recurrent layers)
  std::uint64_t bytes() const;
  std::int64_t capacity_tokens() const { return blocks * shape.block_tokens; }
};

// Splits `budget_bytes` between state slots and K/V blocks: one slot for each of
// the `max_sequences` sequences that may run at once (fewer when the budget is
// small, never fewer than one), the rest in blocks. Throws std::invalid_argument
// naming the sizes when the budget cannot hold one slot and one block.
MemoryPlan plan_memory(const MemoryShape& shape, std::uint64_t budget_bytes, int max_sequences);

// The model memory's budget on a device (vLLM's --gpu-memory-utilization rule): the process
// may use `utilization` of the device's `total_bytes`; what is in use already (total - free,
// measured after the weights are loaded: weights, the CUDA context, other processes) and a
// `reserve` for one step's scratch are taken off, the rest is the budget. Throws
// std::invalid_argument naming the numbers when utilization is outside (0, 1] or nothing is left.
std::uint64_t device_memory_budget(std::uint64_t free_bytes, std::uint64_t total_bytes, double utilization,
                                   std::uint64_t reserve_bytes);

class HybridMemory;

// Everything the model remembers about one sequence between steps: its K/V
// block table and its state slot. Released (back to the memory) on destruction.
class SequenceState {
 public:
  ~SequenceState();
  SequenceState(const SequenceState&) = delete;
  SequenceState& operator=(const SequenceState&) = delete;

  std::int64_t length() const { return length_; }                      // positions already processed
  std::int64_t capacity() const { return capacity_; }                  // positions reserved
  const std::vector<std::int32_t>& blocks() const { return blocks_; }  // position p lives in blocks_[p / block_tokens]
  int slot() const { return slot_; }  // state slot, -1 when the model has no recurrent layers
  void advance(std::int64_t tokens) { length_ += tokens; }

 private:
  friend class HybridMemory;
  SequenceState() = default;
  HybridMemory* memory_ = nullptr;
  std::int64_t length_ = 0;
  std::int64_t capacity_ = 0;
  std::vector<std::int32_t> blocks_;
  int slot_ = -1;
};

class HybridMemory {
 public:
  explicit HybridMemory(MemoryPlan plan);

  const MemoryPlan& plan() const { return plan_; }
  std::int64_t capacity_tokens() const { return plan_.capacity_tokens(); }
  std::int64_t free_blocks() const;
  int free_slots() const;

  // Whether a sequence of `tokens` positions can ever be admitted (empty memory).
  bool fits(std::int64_t tokens) const;
  // A sequence with room for `tokens` positions, or null when not enough blocks
  // or no slot are free right now. Thread-safe. The caller checks fits() first.
  std::unique_ptr<SequenceState> try_admit(std::int64_t tokens);

 private:
  friend class SequenceState;
  void release(SequenceState& state);

  MemoryPlan plan_;
  mutable std::mutex mutex_;
  std::vector<std::int32_t> free_blocks_;  // blocks not owned by any sequence
  std::vector<int> free_slots_;
};

}  // namespace quanteval::runtime
