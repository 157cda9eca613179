#pragma once
// Host storage for a MemoryPlan (model/memory.hpp): fp32 K/V blocks per
// attention layer and fp32 state slots per recurrent layer.
//   K (and V) of one attention layer: [kv_heads][blocks][block_tokens][head_dim]
//     so one head's vectors at consecutive positions are contiguous within a block, and
//     across blocks whose ids follow each other (a sequence's blocks usually do). A thread
//     attends over one head's positions in order: with the heads interleaved per position
//     ([blocks][block_tokens][kv_heads], until 2026-12-04) it read head_dim floats of every
//     kv_heads * head_dim, and with them per block ([blocks][kv_heads][block_tokens]) runs
//     of 4 KB between gaps; either way the hardware prefetchers did not keep up. Decode
//     after a 4096-token prompt, 2 threads each over its K/V head's 7 query heads, DRAM-
//     resident (Zen 4): 410 us a layer interleaved, 430 per block, 235 head-major (a plain
//     read of the same bytes: 150; docs/perf.md).
//   one recurrent layer: [slots][conv (kernel-1) x conv_dim | delta-rule state H x d_k x d_v]
// fp32 rather than bf16: the memory is small next to the weights for the models
// the CPU runs, and fp32 keeps the incremental path bit-comparable with the
// full-prompt path. Pages are committed by the OS only when first written.
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/model/memory.hpp"

namespace quanteval::runtime {

class CpuMemory {
 public:
  void allocate(const MemoryPlan& plan);
  const MemoryPlan& plan() const { return plan_; }

  float* key(int layer, std::int32_t block, int offset, int kv_head) const {
    return keys_[static_cast<std::size_t>(layer)].get() + kv_offset(block, offset, kv_head);
  }
  float* value(int layer, std::int32_t block, int offset, int kv_head) const {
    return values_[static_cast<std::size_t>(layer)].get() + kv_offset(block, offset, kv_head);
  }
  float* conv_state(int layer, int slot) const { return slot_base(layer, slot); }  // [kernel-1, conv_dim]
  float* recurrent_state(int layer, int slot) const {                              // [H, d_k, d_v]
    return slot_base(layer, slot) + plan_.shape.conv_floats;
  }
  void clear_slot(int slot);

 private:
  std::size_t kv_offset(std::int32_t block, int offset, int kv_head) const {
    return ((static_cast<std::size_t>(kv_head) * static_cast<std::size_t>(plan_.blocks) +
             static_cast<std::size_t>(block)) *
                plan_.shape.block_tokens +
            offset) *
           static_cast<std::size_t>(plan_.shape.head_dim);
  }
  float* slot_base(int layer, int slot) const {
    return states_[static_cast<std::size_t>(layer)].get() +
           static_cast<std::size_t>(slot) *
               static_cast<std::size_t>(plan_.shape.conv_floats + plan_.shape.recurrent_floats);
  }

  MemoryPlan plan_;
  std::vector<std::unique_ptr<float[]>> keys_, values_;  // [kv_layers]
  std::vector<std::unique_ptr<float[]>> states_;         // [state_layers]
};

}  // namespace quanteval::runtime
