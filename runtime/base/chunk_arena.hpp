#pragma once
// Scratch memory handed out in order from a few large chunks that are kept and reused: once
// the chunks have grown to the largest step, a step's tensors cost no allocation. On the
// host that matters more than it looks: a 512-token prefill of Qwen3.5-0.8B asked for ~1 GB
// of fresh tensors per step, and every page of a fresh mapping is faulted in and zeroed by
// the kernel (~17% of that prefill's time, docs/perf.md).
//
// Chunk: a buffer type constructible from a byte count, with data() and bytes() (a device
// buffer, a host mapping). Allocations are 256-byte aligned within a chunk.
#include <algorithm>
#include <cstddef>
#include <vector>

namespace quanteval::runtime {

// A position in an arena: what was allocated after it can be given back with rewind().
struct ArenaMark {
  std::size_t chunk = 0, offset = 0;
};

template <class Chunk>
class ChunkArena {
 public:
  explicit ChunkArena(std::size_t min_chunk_bytes) : min_chunk_bytes_(min_chunk_bytes) {}

  void* allocate(std::size_t bytes) {
    bytes = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
    while (chunk_ < chunks_.size()) {
      if (offset_ + bytes <= chunks_[chunk_].bytes()) {
        void* p = static_cast<char*>(chunks_[chunk_].data()) + offset_;
        offset_ += bytes;
        return p;
      }
      ++chunk_;
      offset_ = 0;
    }
    chunks_.emplace_back(std::max(bytes, min_chunk_bytes_));
    chunk_ = chunks_.size() - 1;
    offset_ = bytes;
    return chunks_.back().data();
  }

  // Everything allocated after `mark` may be handed out again (the caller no longer uses it).
  ArenaMark mark() const { return {chunk_, offset_}; }
  void rewind(ArenaMark mark) { chunk_ = mark.chunk, offset_ = mark.offset; }
  void reset() { rewind({}); }

  std::size_t reserved_bytes() const {
    std::size_t total = 0;
    for (const auto& c : chunks_) total += c.bytes();
    return total;
  }

 private:
  static constexpr std::size_t kAlignment = 256;
  std::size_t min_chunk_bytes_;
  std::vector<Chunk> chunks_;
  std::size_t chunk_ = 0, offset_ = 0;
};

}  // namespace quanteval::runtime
