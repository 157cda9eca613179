// The scratch arena (runtime/base/chunk_arena.hpp): aligned, non-overlapping allocations;
// a rewound mark hands the same memory out again; chunks are kept across reset() so a
// repeated step allocates nothing new; a request larger than a chunk gets its own.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "runtime/base/chunk_arena.hpp"

using namespace quanteval::runtime;

namespace {
// A host chunk that counts how many were made, so the test sees when the arena grows.
class CountedChunk {
 public:
  explicit CountedChunk(std::size_t bytes) : data_(new unsigned char[bytes + 255]), bytes_(bytes) { ++made_total; }
  void* data() const {
    // 256-aligned start, as device and mmap'd chunks are.
    const auto address = reinterpret_cast<std::uintptr_t>(data_.get());
    return data_.get() + ((256 - address % 256) % 256);
  }
  std::size_t bytes() const { return bytes_; }
  static inline int made_total = 0;

 private:
  std::unique_ptr<unsigned char[]> data_;
  std::size_t bytes_;
};

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
}  // namespace

TEST_CASE("ChunkArena hands out aligned, disjoint blocks and reuses them after rewind and reset") {
  CountedChunk::made_total = 0;
  ChunkArena<CountedChunk> arena(4096);

  void* a = arena.allocate(1);
  void* b = arena.allocate(300);
  CHECK(address(a) % 256 == 0);
  CHECK(address(b) % 256 == 0);
  CHECK(address(b) - address(a) == 256);  // 1 byte rounds up to one 256-byte slot
  std::memset(a, 1, 256);
  std::memset(b, 2, 300);
  CHECK(static_cast<unsigned char*>(a)[255] == 1);

  const ArenaMark mark = arena.mark();
  void* c = arena.allocate(1000);
  CHECK(address(c) == address(b) + 512);  // 300 bytes take two slots
  arena.rewind(mark);
  CHECK(arena.allocate(1000) == c);  // what came after the mark is handed out again
  CHECK(static_cast<unsigned char*>(b)[299] == 2);  // what came before it is untouched

  // Past the first chunk: a new chunk of the minimum size, then one of a large request's own size.
  void* d = arena.allocate(4096);
  CHECK(CountedChunk::made_total == 2);
  void* big = arena.allocate(10000);
  CHECK(CountedChunk::made_total == 3);
  CHECK(arena.reserved_bytes() == 4096 + 4096 + 10240);
  std::memset(big, 3, 10000);
  CHECK(address(d) % 256 == 0);

  // A second step of the same shape reuses every chunk.
  arena.reset();
  CHECK(arena.allocate(1) == a);
  arena.allocate(300);
  arena.allocate(1000);
  CHECK(arena.allocate(4096) == d);
  CHECK(arena.allocate(10000) == big);
  CHECK(CountedChunk::made_total == 3);

  // Rewinding into an earlier chunk reuses the later ones without growing.
  arena.reset();
  const ArenaMark start = arena.mark();
  arena.allocate(4000);
  arena.allocate(4000);  // does not fit beside the first: the second chunk
  arena.rewind(start);
  CHECK(arena.allocate(4000) == a);
  CHECK(arena.allocate(4000) == d);
  CHECK(CountedChunk::made_total == 3);
}
