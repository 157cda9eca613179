#include "runtime/model/kv_cache.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <stdexcept>

namespace quanteval::runtime {

std::uint64_t KvCacheShape::bytes_per_token() const {
  return 2ull * static_cast<std::uint64_t>(attention_layers) * static_cast<std::uint64_t>(kv_heads) *
         static_cast<std::uint64_t>(head_dim) * sizeof(float);
}

KvCache::KvCache(KvCacheShape shape, std::uint64_t budget_bytes) : shape_(shape) {
  if (shape_.block_tokens <= 0 || shape_.kv_heads < 0 || shape_.head_dim < 0 || shape_.attention_layers < 0)
    throw std::invalid_argument("KvCache: invalid shape");
  if (shape_.attention_layers == 0) {
    // A model without attention layers keeps no K/V; blocks only count positions
    // (2^16 blocks: a million tokens of bookkeeping, 256 KiB of free list).
    num_blocks_ = 1 << 16;
  } else {
    num_blocks_ = static_cast<std::int64_t>(budget_bytes / shape_.bytes_per_block());
    if (num_blocks_ == 0)
      throw std::invalid_argument(fmt::format("KV cache budget of {} bytes is smaller than one block of {} tokens ({} bytes)",
                                              budget_bytes, shape_.block_tokens, shape_.bytes_per_block()));
    const std::size_t floats_per_layer = static_cast<std::size_t>(num_blocks_) * shape_.block_tokens *
                                         static_cast<std::size_t>(shape_.kv_heads) * shape_.head_dim;
    for (int slot = 0; slot < shape_.attention_layers; ++slot) {
      // new float[] without value-initialization: untouched pages cost no RAM.
      keys_.emplace_back(new float[floats_per_layer]);
      values_.emplace_back(new float[floats_per_layer]);
    }
  }
  free_list_.reserve(static_cast<std::size_t>(num_blocks_));
  // Highest first so that pop_back hands out low block numbers first (easier to read in a debugger).
  for (std::int64_t b = num_blocks_ - 1; b >= 0; --b) free_list_.push_back(static_cast<std::int32_t>(b));
}

std::int64_t KvCache::free_blocks() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::int64_t>(free_list_.size());
}

bool KvCache::try_reserve(std::int64_t tokens, std::vector<std::int32_t>& blocks) {
  const std::int64_t needed = shape_.blocks_for(tokens);
  std::lock_guard lock(mutex_);
  if (needed > static_cast<std::int64_t>(free_list_.size())) return false;
  for (std::int64_t i = 0; i < needed; ++i) {
    blocks.push_back(free_list_.back());
    free_list_.pop_back();
  }
  return true;
}

void KvCache::release(std::vector<std::int32_t>& blocks) {
  std::lock_guard lock(mutex_);
  free_list_.insert(free_list_.end(), blocks.begin(), blocks.end());
  blocks.clear();
}

}  // namespace quanteval::runtime
