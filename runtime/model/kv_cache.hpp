#pragma once
// Paged key/value cache for the attention layers, sized once from a byte
// budget. Memory is cut into blocks of `block_tokens` token positions; a
// sequence owns a list of blocks (its block table) reserved for its whole
// life (prompt + max_new_tokens) when it is admitted, so a running sequence can
// never run out of cache and admission is the only place that can say "no".
//
// Layout, per attention layer and separately for keys and values:
//   [num_blocks][block_tokens][kv_heads][head_dim] float32
// so the K (or V) vector of one head at one position is `head_dim` contiguous
// floats, and a block holds every head of `block_tokens` consecutive positions.
// fp32 rather than bf16: the cache is small next to the weights for the
// models this tool runs (Qwen2.5-0.5B: 24 KiB per token) and fp32 keeps the
// incremental path bit-comparable with the full-prompt path.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/platform/host_memory.hpp"

namespace quanteval::runtime {

struct KvCacheShape {
  int attention_layers = 0;  // layers that keep K/V (full or sliding attention)
  int kv_heads = 0;          // key/value heads per layer
  int head_dim = 0;          // floats per head vector
  int block_tokens = 16;     // positions per block

  std::uint64_t bytes_per_token() const;  // K and V, all attention layers
  std::uint64_t bytes_per_block() const { return bytes_per_token() * static_cast<std::uint64_t>(block_tokens); }
  std::int64_t blocks_for(std::int64_t tokens) const { return (tokens + block_tokens - 1) / block_tokens; }
};

class KvCache {
 public:
  // Allocates floor(budget_bytes / bytes_per_block) blocks (address space only:
  // pages are committed by the OS when first written). Throws std::invalid_argument
  // when the budget does not hold a single block.
  KvCache(KvCacheShape shape, std::uint64_t budget_bytes);

  const KvCacheShape& shape() const { return shape_; }
  std::int64_t total_blocks() const { return num_blocks_; }
  std::int64_t capacity_tokens() const { return num_blocks_ * shape_.block_tokens; }
  std::uint64_t allocated_bytes() const { return static_cast<std::uint64_t>(num_blocks_) * shape_.bytes_per_block(); }
  std::int64_t free_blocks() const;

  // Takes the blocks for `tokens` positions, or returns false (nothing taken)
  // when too few are free right now. Thread-safe.
  bool try_reserve(std::int64_t tokens, std::vector<std::int32_t>& blocks);
  void release(std::vector<std::int32_t>& blocks);  // gives them back and clears the list

  // Pointer to the head_dim floats of (layer slot, block, offset in block, kv head).
  float* key(int slot, std::int32_t block, int offset, int kv_head) const {
    return keys_[static_cast<std::size_t>(slot)].get() + element_offset(block, offset, kv_head);
  }
  float* value(int slot, std::int32_t block, int offset, int kv_head) const {
    return values_[static_cast<std::size_t>(slot)].get() + element_offset(block, offset, kv_head);
  }

 private:
  std::size_t element_offset(std::int32_t block, int offset, int kv_head) const {
    return ((static_cast<std::size_t>(block) * shape_.block_tokens + offset) * shape_.kv_heads + kv_head) *
           static_cast<std::size_t>(shape_.head_dim);
  }

  KvCacheShape shape_;
  std::int64_t num_blocks_ = 0;
  std::vector<std::unique_ptr<float[]>> keys_;    // [attention_layers] each [blocks, block_tokens, kv_heads, head_dim]
  std::vector<std::unique_ptr<float[]>> values_;  // same
  mutable std::mutex mutex_;
  std::vector<std::int32_t> free_list_;  // blocks not owned by any sequence
};


}  // namespace quanteval::runtime
