// The weights' allocator (runtime/platform/streamed_memory.hpp): small requests from
// operator new, large ones from their own 2 MiB-aligned mappings; both zeroed where a
// vector asks for it, writable to the last byte, and released without leaks or faults.
// And the arena a model's weights share: in order, in whole 2 MiB mappings, thread-safe.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/platform/streamed_memory.hpp"

using namespace quanteval::runtime;

TEST_CASE("large streamed buffers are 2 MiB aligned and usable to the last byte") {
  // Sizes around the threshold, and ones that are not multiples of a page.
  for (std::size_t bytes : {kStreamedMappingBytes - 1, kStreamedMappingBytes, kStreamedMappingBytes + 1,
                            3 * kStreamedMappingBytes + 4095, std::size_t{37} << 20}) {
    CAPTURE(bytes);
    void* p = allocate_streamed(bytes, 64);
    REQUIRE(p != nullptr);
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    CHECK(address % 64 == 0);
    if (bytes >= kStreamedMappingBytes) CHECK(address % kStreamedMappingBytes == 0);
    auto* bytes_view = static_cast<unsigned char*>(p);
    std::memset(bytes_view, 0xa5, bytes);
    CHECK(bytes_view[0] == 0xa5);
    CHECK(bytes_view[bytes - 1] == 0xa5);
    release_streamed(p, bytes, 64);
  }
}

TEST_CASE("StreamedVector behaves as a vector: value-initialized, copied, grown") {
  StreamedVector<std::uint16_t> big(3 << 20, 7);  // 6 MiB: a mapping
  CHECK(reinterpret_cast<std::uintptr_t>(big.data()) % kStreamedMappingBytes == 0);
  CHECK(big.front() == 7);
  CHECK(big.back() == 7);
  StreamedVector<std::uint16_t> copy(big);
  copy.back() = 9;
  CHECK(big.back() == 7);
  StreamedVector<std::uint16_t> small(5);
  CHECK(small[4] == 0);
  for (int i = 0; i < 100000; ++i) small.push_back(static_cast<std::uint16_t>(i));  // crosses the threshold
  CHECK(small.size() == 100005);
  CHECK(small.back() == static_cast<std::uint16_t>(99999));
}

TEST_CASE("StreamedMapping is whole 2 MiB pages, aligned, zeroed") {
  for (std::size_t bytes : {std::size_t{1}, kStreamedMappingBytes, kStreamedMappingBytes + 1}) {
    CAPTURE(bytes);
    StreamedMapping mapping(bytes);
    CHECK(mapping.bytes() % kStreamedMappingBytes == 0);
    CHECK(mapping.bytes() >= bytes);
    CHECK(mapping.bytes() < bytes + kStreamedMappingBytes);
    CHECK(reinterpret_cast<std::uintptr_t>(mapping.data()) % kStreamedMappingBytes == 0);
    const auto* view = static_cast<const unsigned char*>(mapping.data());
    CHECK(view[0] == 0);
    CHECK(view[mapping.bytes() - 1] == 0);
    StreamedMapping moved(std::move(mapping));
    CHECK(mapping.data() == nullptr);
    CHECK(moved.data() != nullptr);
  }
}

TEST_CASE("StreamedArena hands out small buffers in order from shared mappings") {
  const std::size_t chunk = std::size_t{8} << 20;
  StreamedArena arena(chunk);
  // Three projections under 2 MiB: one after another in the first mapping (256-byte steps).
  auto* a = static_cast<unsigned char*>(arena.allocate(1000));
  auto* b = static_cast<unsigned char*>(arena.allocate(600 << 10));
  auto* c = static_cast<unsigned char*>(arena.allocate(1 << 20));
  CHECK(reinterpret_cast<std::uintptr_t>(a) % kStreamedMappingBytes == 0);
  CHECK(b == a + 1024);
  CHECK(c == b + (600 << 10));
  CHECK(arena.reserved_bytes() == chunk);
  // Zeroed and writable to the last byte.
  CHECK(std::all_of(c, c + (1 << 20), [](unsigned char v) { return v == 0; }));
  std::memset(c, 0x5a, 1 << 20);
  CHECK(b[(600 << 10) - 1] == 0);
  // Larger than a chunk: a mapping of its own, rounded up to 2 MiB; the next small request
  // takes the rounding slack right after it.
  const std::size_t big = 3 * chunk + 4096;
  auto* d = static_cast<unsigned char*>(arena.allocate(big));
  CHECK(reinterpret_cast<std::uintptr_t>(d) % kStreamedMappingBytes == 0);
  d[big - 1] = 1;
  auto* e = static_cast<unsigned char*>(arena.allocate(4096));
  CHECK(e == d + big);
  CHECK(arena.reserved_bytes() ==
        chunk + (big + kStreamedMappingBytes - 1) / kStreamedMappingBytes * kStreamedMappingBytes);
}

TEST_CASE("StreamedArena: concurrent requests get disjoint buffers") {
  StreamedArena arena(std::size_t{4} << 20);
  std::mutex mutex;
  std::vector<std::pair<std::uintptr_t, std::size_t>> spans;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::size_t bytes = 1 + static_cast<std::size_t>((t * 7919 + i * 104729) % (300 << 10));
        auto* p = static_cast<unsigned char*>(arena.allocate(bytes));
        std::memset(p, t + 1, bytes);
        std::lock_guard lock(mutex);
        spans.emplace_back(reinterpret_cast<std::uintptr_t>(p), bytes);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::sort(spans.begin(), spans.end());
  for (std::size_t i = 1; i < spans.size(); ++i) CHECK(spans[i - 1].first + spans[i - 1].second <= spans[i].first);
}

TEST_CASE("StreamedVector from an arena: in it, copies too, and the arena lives while they do") {
  StreamedVector<std::uint16_t> kept;
  const unsigned char* first_byte = nullptr;
  {
    auto arena = std::make_shared<StreamedArena>();
    StreamedVector<std::uint16_t> small(1000, 3, StreamedAllocator<std::uint16_t>(arena));
    first_byte = reinterpret_cast<const unsigned char*>(small.data());
    CHECK(reinterpret_cast<std::uintptr_t>(first_byte) % kStreamedMappingBytes == 0);  // the arena's first buffer
    StreamedVector<std::uint16_t> copy(small);
    CHECK(copy.get_allocator() == small.get_allocator());
    CHECK(reinterpret_cast<const unsigned char*>(copy.data()) == first_byte + 2048);  // the next 256-byte slot
    kept = std::move(copy);  // takes the arena with it (propagate on move assignment)
    CHECK(kept.get_allocator().arena == arena);
  }
  // The arena and the first vector are gone; the one that kept a buffer still reads it.
  CHECK(kept.size() == 1000);
  CHECK(kept.back() == 3);
  const auto allocator = kept.get_allocator();
  CHECK(allocator.arena.use_count() == 2);  // held by `kept` and by this copy of its allocator only
}
