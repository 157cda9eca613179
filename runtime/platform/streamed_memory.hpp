#pragma once
// Memory for the weights a kernel streams once per token (packed INT4 lines, 16-bit
// dense and lm_head rows): 2 MiB-aligned anonymous mappings that the kernel is asked
// (madvise MADV_HUGEPAGE) to back with transparent huge pages.
//
// Why: a GEMV at batch 1 is a pure stream, and the CPU's hardware prefetchers stop at
// every 4 KiB page boundary (and each new page costs a TLB walk). On the 2-core Zen 3
// CI machine the BF16 lm_head GEMV streamed ~20 GB/s from 4 KiB pages and ~26 GB/s from
// 2 MiB pages (docs/perf.md, issue 18). Best effort: where THP is off ("never") the
// mapping simply stays in 4 KiB pages.
//
// Three ways to get it:
//  * allocate_streamed: one buffer, its own mapping (small ones from operator new);
//  * StreamedMapping: an owned mapping rounded up to whole 2 MiB, all of it huge pages;
//  * StreamedArena: many buffers carved in order out of shared StreamedMappings. A model's
//    weights come from one arena (CpuBackend): a projection under 2 MiB (Qwen2.5-0.5B's
//    q/k/v/o, every Qwen3.5-0.8B MLP matrix) or the last partial 2 MiB of a larger one would
//    otherwise sit in 4 KiB pages, and the weights lie in load order, layer after layer.
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <vector>

#include "runtime/base/chunk_arena.hpp"

namespace quanteval::runtime {

// bytes of zeroed memory (nullptr never; throws std::bad_alloc), aligned to 2 MiB when
// bytes >= kStreamedMappingBytes, else to alignof(std::max_align_t) or `alignment`.
inline constexpr std::size_t kStreamedMappingBytes = std::size_t{2} << 20;
void* allocate_streamed(std::size_t bytes, std::size_t alignment);
void release_streamed(void* p, std::size_t bytes, std::size_t alignment) noexcept;

// One mapping of at least `bytes` (rounded up to whole 2 MiB, so no 4 KiB-page tail),
// zeroed, 2 MiB-aligned; unmapped when destroyed. A ChunkArena chunk.
class StreamedMapping {
 public:
  explicit StreamedMapping(std::size_t bytes);
  ~StreamedMapping();
  StreamedMapping(StreamedMapping&& other) noexcept;
  StreamedMapping& operator=(StreamedMapping&&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* data_;
  std::size_t bytes_;
};

// Buffers for data that is written once and then kept (weights), handed out in order from
// StreamedMappings of at least `chunk_bytes`; a larger request gets a mapping of its own
// size, whose rounding slack the next small requests use. Zeroed, 256-byte aligned; nothing
// is given back before the arena goes (a buffer freed early just stays mapped). Thread-safe.
class StreamedArena {
 public:
  explicit StreamedArena(std::size_t chunk_bytes = std::size_t{32} << 20) : chunks_(chunk_bytes) {}
  void* allocate(std::size_t bytes);
  std::size_t reserved_bytes() const;

 private:
  mutable std::mutex mutex_;
  ChunkArena<StreamedMapping> chunks_;
};

// From `arena` when it has one (which it keeps alive: a vector may outlive its creator),
// else each buffer from allocate_streamed. Meant for buffers sized once: with an arena,
// a reallocation's old buffer is not reused.
template <typename T>
struct StreamedAllocator {
  using value_type = T;
  // The memory goes with the buffer: a vector assigned or swapped takes the other's arena.
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  StreamedAllocator() = default;
  explicit StreamedAllocator(std::shared_ptr<StreamedArena> arena) noexcept : arena(std::move(arena)) {}
  template <typename U>
  StreamedAllocator(const StreamedAllocator<U>& other) noexcept : arena(other.arena) {}
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    static_assert(alignof(T) <= 256, "StreamedArena aligns to 256 bytes");
    if (arena) return static_cast<T*>(arena->allocate(n * sizeof(T)));
    return static_cast<T*>(allocate_streamed(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (!arena) release_streamed(p, n * sizeof(T), alignof(T));
  }
  template <typename U>
  bool operator==(const StreamedAllocator<U>& other) const noexcept {
    return arena == other.arena;
  }

  std::shared_ptr<StreamedArena> arena;  // null: one allocation each
};

template <typename T>
using StreamedVector = std::vector<T, StreamedAllocator<T>>;

}  // namespace quanteval::runtime
