// libFuzzer target: arbitrary bytes as a whole safetensors file image.
// The only acceptable outcomes are a parsed header whose tensors all lie inside
// the input, or a CheckpointError; anything else (another exception, a crash,
// a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "runtime/checkpoint/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace quanteval::runtime;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const SafetensorsHeader header = parse_safetensors(bytes, "fuzz-input");
    for (const TensorRecord& tensor : header.tensors) {
      // The promises the reader's callers rely on.
      if (tensor.end < tensor.begin || header.data_offset + tensor.end > size) std::abort();
      std::uint64_t elements = 1;
      for (const std::int64_t extent : tensor.shape) {
        if (extent < 0) std::abort();
        elements *= static_cast<std::uint64_t>(extent);
      }
      if (elements * dtype_size(tensor.dtype) != tensor.end - tensor.begin) std::abort();
    }
  } catch (const CheckpointError&) {
  }
  return 0;
}
