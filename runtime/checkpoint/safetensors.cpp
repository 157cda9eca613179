#include "runtime/checkpoint/safetensors.hpp"
#include "runtime/base/check.hpp"
#include "runtime/base/numeric.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "runtime/checkpoint/model_config.hpp"

namespace quanteval::runtime {
namespace fs = std::filesystem;
using nlohmann::json;

// The file format is little-endian; so is every machine this runtime targets.
static_assert(std::endian::native == std::endian::little, "safetensors reading assumes a little-endian host");

namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::boolean, "BOOL", 1},    {DType::u8, "U8", 1},   {DType::i8, "I8", 1},   {DType::f8_e4m3, "F8_E4M3", 1},
    {DType::f8_e5m2, "F8_E5M2", 1}, {DType::i16, "I16", 2}, {DType::u16, "U16", 2}, {DType::f16, "F16", 2},
    {DType::bf16, "BF16", 2},       {DType::i32, "I32", 4}, {DType::u32, "U32", 4}, {DType::f32, "F32", 4},
    {DType::i64, "I64", 8},         {DType::u64, "U64", 8}, {DType::f64, "F64", 8},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes)
    if (entry.dtype == dtype) return entry;
  QE_FAIL("unknown DType enumerator");
}

// Reads a shape dimension or offset: JSON integers only, never floats, never negative.
bool as_unsigned(const json& value, std::uint64_t& out) {
  if (value.is_number_unsigned()) {
    out = value.get<std::uint64_t>();
    return true;
  }
  if (value.is_number_integer()) {  // a signed integer that nlohmann did not classify as unsigned is negative
    const auto v = value.get<std::int64_t>();
    if (v < 0) return false;
    out = static_cast<std::uint64_t>(v);
    return true;
  }
  return false;
}

TensorRecord parse_entry(const std::string& name, const json& entry, std::uint64_t data_region_bytes,
                         std::string_view source) {
  auto fail = [&](const std::string& why) {
    return CheckpointError(fmt::format("{}: tensor '{}': {}", source, name, why));
  };
  if (name.empty()) throw fail("empty tensor name");
  if (!entry.is_object()) throw fail("header entry is not a JSON object");
  for (const auto& [key, _] : entry.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw fail(fmt::format("unexpected field '{}'", key));

  TensorRecord record;
  record.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) throw fail("missing or non-string 'dtype'");
  const auto& dtype_text = dtype_it->get_ref<const std::string&>();
  const auto known =
      std::find_if(std::begin(kDTypes), std::end(kDTypes), [&](const DTypeInfo& d) { return d.name == dtype_text; });
  if (known == std::end(kDTypes)) throw fail(fmt::format("unknown or unsupported dtype '{}'", dtype_text));
  record.dtype = known->dtype;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) throw fail("missing or non-array 'shape'");
  std::uint64_t expected_bytes = known->size;
  for (const auto& dim : *shape_it) {
    std::uint64_t extent = 0;
    if (!as_unsigned(dim, extent) || extent > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw fail(fmt::format("shape {} has a dimension that is not a non-negative 64-bit integer", shape_it->dump()));
    if (__builtin_mul_overflow(expected_bytes, extent, &expected_bytes))
      throw fail(fmt::format("shape {} x {} bytes overflows 64 bits", shape_it->dump(), known->size));
    record.shape.push_back(static_cast<std::int64_t>(extent));
  }

  const auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !as_unsigned((*offsets_it)[0], record.begin) || !as_unsigned((*offsets_it)[1], record.end))
    throw fail("'data_offsets' must be two non-negative integers [begin, end]");
  if (record.begin > record.end)
    throw fail(fmt::format("data_offsets [{}, {}] end before begin", record.begin, record.end));
  if (record.end > data_region_bytes)
    throw fail(fmt::format("data_offsets [{}, {}] reach past the data region of {} bytes (file truncated?)",
                           record.begin, record.end, data_region_bytes));
  if (record.end - record.begin != expected_bytes)
    throw fail(fmt::format("{} shape {} needs {} bytes but data_offsets [{}, {}] span {}", known->name,
                           shape_it->dump(), expected_bytes, record.begin, record.end, record.end - record.begin));
  return record;
}

}  // namespace

std::size_t dtype_size(DType dtype) { return info(dtype).size; }
std::string_view dtype_name(DType dtype) { return info(dtype).name; }
bool is_floating_point(DType dtype) {
  switch (dtype) {
    case DType::f16:
    case DType::bf16:
    case DType::f32:
    case DType::f64:
    case DType::f8_e4m3:
    case DType::f8_e5m2: return true;
    default: return false;
  }
}

std::int64_t TensorView::element_count() const {
  // Cannot overflow: the header check bounded shape product x element size by 2^64,
  // and the bytes exist in a mapping.
  return static_cast<std::int64_t>(bytes / dtype_size(dtype));
}

std::string TensorView::describe() const {
  return fmt::format("{} {} [{}] in {}", name, dtype_name(dtype), fmt::join(shape, ", "), file.string());
}

SafetensorsHeader parse_safetensors(std::span<const std::byte> file_bytes, std::string_view source) {
  if (file_bytes.size() < 8)
    throw CheckpointError(
        fmt::format("{}: file is {} bytes, too short for the 8-byte header length", source, file_bytes.size()));
  SafetensorsHeader header;
  std::memcpy(&header.header_bytes, file_bytes.data(), 8);
  const std::uint64_t after_length = file_bytes.size() - 8;
  if (header.header_bytes > kMaxSafetensorsHeaderBytes)
    throw CheckpointError(fmt::format("{}: header length {} exceeds the {} byte limit", source, header.header_bytes,
                                      kMaxSafetensorsHeaderBytes));
  if (header.header_bytes > after_length)
    throw CheckpointError(fmt::format("{}: header length {} reaches past the end of the file ({} bytes)", source,
                                      header.header_bytes, file_bytes.size()));
  header.data_offset = 8 + header.header_bytes;
  const std::uint64_t data_region_bytes = file_bytes.size() - header.data_offset;

  const auto* text_begin = reinterpret_cast<const char*>(file_bytes.data() + 8);
  const std::string_view text(text_begin, header.header_bytes);
  if (text.empty() || text.front() != '{')
    throw CheckpointError(fmt::format("{}: header does not start with '{{'", source));
  const json root = parse_untrusted_json(text, source, "safetensors header");
  if (!root.is_object()) throw CheckpointError(fmt::format("{}: header is not a JSON object", source));

  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw CheckpointError(fmt::format("{}: __metadata__ is not a JSON object", source));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw CheckpointError(fmt::format("{}: __metadata__ field '{}' is not a string", source, key));
        header.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    header.tensors.push_back(parse_entry(name, entry, data_region_bytes, source));
  }

  // Non-overlapping and fully indexed: after sorting, each tensor starts where
  // the previous one ended, the first at 0 and the last ends at the region's end.
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorRecord& a, const TensorRecord& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  std::uint64_t covered_until = 0;
  const TensorRecord* previous = nullptr;
  for (const auto& record : header.tensors) {
    if (record.begin < covered_until)
      throw CheckpointError(fmt::format("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", source,
                                        record.name, record.begin, record.end, previous->name, previous->begin,
                                        previous->end));
    if (record.begin > covered_until)
      throw CheckpointError(fmt::format("{}: tensor '{}': {} unindexed bytes before its data_offsets [{}, {}]", source,
                                        record.name, record.begin - covered_until, record.begin, record.end));
    covered_until = record.end;
    previous = &record;
  }
  if (covered_until != data_region_bytes)
    throw CheckpointError(fmt::format("{}: {} bytes after the last tensor are not indexed by the header", source,
                                      data_region_bytes - covered_until));
  return header;
}

// ---------------------------------------------------------------------------------------------
MappedFile::MappedFile(const fs::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw CheckpointError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw CheckpointError(fmt::format("{}: not a regular file", path.string()));
  }
  size_ = static_cast<std::size_t>(info.st_size);
  if (size_ > 0) {  // mmap rejects length 0; an empty file simply has no bytes
    void* address = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int mmap_errno = errno;
    ::close(fd);
    if (address == MAP_FAILED)
      throw CheckpointError(fmt::format("{}: mmap failed: {}", path.string(), std::strerror(mmap_errno)));
    data_ = static_cast<const std::byte*>(address);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

namespace {

void release_pages(const std::byte* data, std::size_t bytes) noexcept {
  if (!data || bytes == 0) return;
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(data) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes + page - 1) / page * page;
  // MADV_DONTNEED on a private read-only file mapping only unmaps the pages; a
  // later access faults them back in from the page cache. Failure costs memory, not correctness.
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

void release_resident_pages(const TensorView& tensor) noexcept { release_pages(tensor.data, tensor.bytes); }

void copy_and_release(const TensorView& tensor, void* destination) noexcept {
  constexpr std::size_t kPiece = 64ull << 20;
  auto* out = static_cast<std::byte*>(destination);
  for (std::size_t done = 0; done < tensor.bytes; done += kPiece) {
    const std::size_t n = std::min(kPiece, tensor.bytes - done);
    std::memcpy(out + done, tensor.data + done, n);
    release_pages(tensor.data + done, n);
  }
}

void MappedFile::release() noexcept {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

// ---------------------------------------------------------------------------------------------
SafetensorsFile::SafetensorsFile(const fs::path& path)
    : mapping_(path), header_(parse_safetensors(mapping_.bytes(), path.string())) {
  for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

std::vector<std::string> SafetensorsFile::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(header_.tensors.size());
  for (const auto& record : header_.tensors) names.push_back(record.name);
  return names;
}

bool SafetensorsFile::contains(std::string_view name) const { return index_.find(name) != index_.end(); }

TensorView SafetensorsFile::tensor(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end())
    throw CheckpointError(fmt::format("{}: tensor '{}' is not in this file", path().string(), name));
  return view_of(header_.tensors[it->second]);
}

std::vector<TensorView> SafetensorsFile::tensors() const {
  std::vector<TensorView> views;
  views.reserve(header_.tensors.size());
  for (const auto& record : header_.tensors) views.push_back(view_of(record));
  return views;
}

TensorView SafetensorsFile::view_of(const TensorRecord& record) const {
  TensorView view;
  view.name = record.name;
  view.dtype = record.dtype;
  view.shape = record.shape;
  view.data = mapping_.bytes().data() + header_.data_offset + record.begin;
  view.bytes = static_cast<std::size_t>(record.end - record.begin);
  view.file = path();
  return view;
}

// ---------------------------------------------------------------------------------------------

std::vector<float> to_float(const TensorView& tensor) {
  const std::size_t count = static_cast<std::size_t>(tensor.element_count());
  std::vector<float> values(count);
  switch (tensor.dtype) {
    case DType::f32: std::memcpy(values.data(), tensor.data, count * sizeof(float)); break;
    case DType::bf16:
    case DType::f16: {
      const bool is_bf16 = tensor.dtype == DType::bf16;
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t bits = 0;
        std::memcpy(&bits, tensor.data + 2 * i, 2);
        values[i] = is_bf16 ? bf16_to_float(bits) : f16_to_float(bits);
      }
      break;
    }
    default:
      throw CheckpointError(fmt::format("{}: tensor '{}' has dtype {}; only BF16, F16 and F32 convert to float",
                                        tensor.file.string(), tensor.name, dtype_name(tensor.dtype)));
  }
  return values;
}

std::vector<std::int32_t> to_int32(const TensorView& tensor) {
  if (tensor.dtype != DType::i32)
    throw CheckpointError(fmt::format("{}: tensor '{}' has dtype {}, expected I32", tensor.file.string(), tensor.name,
                                      dtype_name(tensor.dtype)));
  std::vector<std::int32_t> values(static_cast<std::size_t>(tensor.element_count()));
  std::memcpy(values.data(), tensor.data, values.size() * sizeof(std::int32_t));
  return values;
}

}  // namespace quanteval::runtime
