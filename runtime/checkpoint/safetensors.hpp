#pragma once
// Reading safetensors files: a memory-mapped, read-only view of every tensor.
//
// File layout (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header][data region]
// The header maps tensor name -> {dtype, shape, data_offsets [begin, end)}
// relative to the data region, plus an optional "__metadata__" string map.
//
// Every file is untrusted. Parsing checks, and names file and tensor when it
// refuses: the header length fits the file and a 100 MB cap; the header is a
// JSON object of well-formed entries; each dtype is a known safetensors dtype;
// shape x element size equals end - begin (overflow-checked); tensors lie in
// the data region, do not overlap and cover it completely (the spec requires
// the buffer to be fully indexed, so a gap is an error too).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace quanteval::runtime {

// Every problem with a checkpoint (files, configs, tensors) is reported as one
// of these, with the file and, where there is one, the tensor or field named.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// All dtypes of the safetensors format with a whole-byte element size. The
// runtime computes with BF16, F16, F32 and I32 only; the others are accepted
// so that a checkpoint carrying e.g. an I64 buffer still opens and can be
// described, but converting or validating such a tensor as a weight fails.
enum class DType { boolean, u8, i8, f8_e4m3, f8_e5m2, i16, u16, f16, bf16, i32, u32, f32, i64, u64, f64 };

std::size_t dtype_size(DType dtype);       // bytes per element
std::string_view dtype_name(DType dtype);  // spelling in the header, e.g. "BF16"
bool is_floating_point(DType dtype);       // F16, BF16, F32, F64 (and F8 variants)

// One tensor inside a mapped file. Data is little-endian and not necessarily
// aligned to the element size (safetensors does not promise alignment), so
// read through the copy helpers below or memcpy, never a reinterpret_cast.
struct TensorView {
  std::string name;  // as spelled in the file (before any name normalization)
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;  // row-major; empty for a scalar
  const std::byte* data = nullptr;  // points into the read-only mapping; valid while the file is open
  std::size_t bytes = 0;            // == element_count() * dtype_size(dtype)
  std::filesystem::path file;       // the file the bytes come from, for messages

  std::int64_t element_count() const;
  std::string describe() const;  // e.g. "model.norm.weight BF16 [256] in /x/model.safetensors"
};

// A header entry before it is tied to a mapping: offsets are relative to the
// start of the data region.
struct TensorRecord {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // first byte, relative to the data region
  std::uint64_t end = 0;    // one past the last byte
};

struct SafetensorsHeader {
  std::uint64_t header_bytes = 0;               // N, the JSON length
  std::uint64_t data_offset = 0;                // 8 + N: where the data region starts in the file
  std::vector<TensorRecord> tensors;            // in the order of their data offsets
  std::map<std::string, std::string> metadata;  // "__metadata__" (string values only, as the spec says)
};

// The upper bound on N; real headers are well below 1 MB even for 100k tensors.
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100ull * 1024 * 1024;

// Parses and checks a complete file image (header and data region). Pure: no
// I/O, so the fuzzer and the malformed-file tests drive it directly.
// `source` names the file in error messages.
SafetensorsHeader parse_safetensors(std::span<const std::byte> file_bytes, std::string_view source);

// A read-only memory mapping of a whole file (RAII; move-only).
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws CheckpointError naming the path
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release() noexcept;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// An open safetensors file: the mapping plus its checked tensor table.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return mapping_.path(); }
  std::uint64_t file_size() const { return mapping_.bytes().size(); }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  std::vector<std::string> tensor_names() const;  // sorted by data offset
  bool contains(std::string_view name) const;
  // The tensor called `name`; throws CheckpointError naming file and tensor when absent.
  TensorView tensor(std::string_view name) const;
  std::vector<TensorView> tensors() const;  // every tensor, in data-offset order

 private:
  TensorView view_of(const TensorRecord& record) const;
  MappedFile mapping_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t, std::less<>> index_;  // name -> position in header_.tensors
};

// Drops the pages of `tensor` from this process's resident set once its bytes
// have been copied or repacked: they stay in the kernel's page cache and are
// read back if touched again, so this is always safe on the read-only mapping.
// Loading calls it tensor by tensor, so the peak memory of a load is the
// runtime's own copy of the weights plus one tensor, not that plus the whole
// file (a 27B checkpoint would otherwise need twice its size in RAM).
void release_resident_pages(const TensorView& tensor) noexcept;

// Copies the tensor's bytes to `destination` (tensor.bytes long) piece by piece,
// releasing each piece's pages as soon as it is copied: a 2.5 GB embedding is
// then never resident twice.
void copy_and_release(const TensorView& tensor, void* destination) noexcept;

// Conversions for reference paths and tests (scalar bf16/f16 helpers are in
// runtime/numeric.hpp). They check the dtype and throw
// CheckpointError naming the tensor when it does not fit.
std::vector<float> to_float(const TensorView& tensor);         // BF16, F16 or F32
std::vector<std::int32_t> to_int32(const TensorView& tensor);  // I32 only

}  // namespace quanteval::runtime
