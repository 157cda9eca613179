#pragma once
// Memory for the weights a kernel streams once per token (packed INT4 lines, 16-bit
// dense and lm_head rows): large buffers come from their own 2 MiB-aligned anonymous
// mappings that the kernel is asked (madvise MADV_HUGEPAGE) to back with transparent
// huge pages.
//
// Why: a GEMV at batch 1 is a pure stream, and the CPU's hardware prefetchers stop at
// every 4 KiB page boundary (and each new page costs a TLB walk). On the 2-core Zen 3
// CI machine the BF16 lm_head GEMV streamed ~20 GB/s from 4 KiB pages and ~26 GB/s from
// 2 MiB pages (docs/perf.md, issue 18). Best effort: where THP is off ("never") the
// mapping simply stays in 4 KiB pages. Small buffers (< 2 MiB) use operator new.
#include <cstddef>
#include <new>
#include <vector>

namespace quanteval::runtime {

// bytes of zeroed memory (nullptr never; throws std::bad_alloc), aligned to 2 MiB when
// bytes >= kStreamedMappingBytes, else to alignof(std::max_align_t) or `alignment`.
inline constexpr std::size_t kStreamedMappingBytes = std::size_t{2} << 20;
void* allocate_streamed(std::size_t bytes, std::size_t alignment);
void release_streamed(void* p, std::size_t bytes, std::size_t alignment) noexcept;

template <typename T>
struct StreamedAllocator {
  using value_type = T;
  StreamedAllocator() = default;
  template <typename U>
  StreamedAllocator(const StreamedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(allocate_streamed(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { release_streamed(p, n * sizeof(T), alignof(T)); }
  template <typename U>
  bool operator==(const StreamedAllocator<U>&) const noexcept {
    return true;
  }
};

template <typename T>
using StreamedVector = std::vector<T, StreamedAllocator<T>>;

}  // namespace quanteval::runtime
