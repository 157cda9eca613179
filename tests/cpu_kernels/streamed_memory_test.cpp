// The weights' allocator (runtime/platform/streamed_memory.hpp): small requests from
// operator new, large ones from their own 2 MiB-aligned mappings; both zeroed where a
// vector asks for it, writable to the last byte, and released without leaks or faults.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>

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
