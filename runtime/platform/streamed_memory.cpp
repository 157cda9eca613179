#include "runtime/platform/streamed_memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace quanteval::runtime {
namespace {

constexpr std::size_t kSmallPage = 4096;

std::size_t mapped_length(std::size_t bytes) { return (bytes + kSmallPage - 1) / kSmallPage * kSmallPage; }

}  // namespace

void* allocate_streamed(std::size_t bytes, std::size_t alignment) {
  if (bytes < kStreamedMappingBytes) return ::operator new (bytes == 0 ? 1 : bytes, std::align_val_t{alignment});
  // Map 2 MiB more than needed, keep the 2 MiB-aligned part, return the rest: only whole
  // aligned 2 MiB ranges can become huge pages.
  const std::size_t length = mapped_length(bytes);
  void* raw =
      ::mmap(nullptr, length + kStreamedMappingBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto raw_begin = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t begin = (raw_begin + kStreamedMappingBytes - 1) / kStreamedMappingBytes * kStreamedMappingBytes;
  const std::uintptr_t raw_end = raw_begin + length + kStreamedMappingBytes;
  if (begin > raw_begin) ::munmap(raw, begin - raw_begin);
  if (raw_end > begin + length) ::munmap(reinterpret_cast<void*>(begin + length), raw_end - (begin + length));
  void* out = reinterpret_cast<void*>(begin);
  ::madvise(out, length, MADV_HUGEPAGE);  // advice only: EINVAL where THP is not built in
  return out;
}

void release_streamed(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  if (p == nullptr) return;
  if (bytes < kStreamedMappingBytes) return ::operator delete (p, std::align_val_t{alignment});
  ::munmap(p, mapped_length(bytes));
}

StreamedMapping::StreamedMapping(std::size_t bytes)
    : bytes_((std::max<std::size_t>(bytes, 1) + kStreamedMappingBytes - 1) / kStreamedMappingBytes *
             kStreamedMappingBytes) {
  data_ = allocate_streamed(bytes_, kStreamedMappingBytes);
}

StreamedMapping::~StreamedMapping() {
  if (data_) release_streamed(data_, bytes_, kStreamedMappingBytes);
}

StreamedMapping::StreamedMapping(StreamedMapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

void* StreamedArena::allocate(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  return chunks_.allocate(bytes);
}

std::size_t StreamedArena::reserved_bytes() const {
  std::lock_guard lock(mutex_);
  return chunks_.reserved_bytes();
}

}  // namespace quanteval::runtime
