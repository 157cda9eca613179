#pragma once
// A small safetensors reader/writer for the tests, written independently of
// runtime/safetensors.cpp (plain nlohmann + byte copies) so the tests do not
// check the runtime's reader with itself.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace quanteval::test {

struct RawTensor {
  std::string name;
  std::string dtype;  // as in the header, e.g. "BF16"
  std::vector<std::int64_t> shape;
  std::string data;  // raw little-endian bytes
};

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// 8-byte little-endian length + header text + data region.
inline std::string assemble(const std::string& header_text, const std::string& data_region) {
  std::string file(8, '\0');
  const std::uint64_t length = header_text.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return file + header_text + data_region;
}

// Tensors laid out back to back in the given order.
inline std::string serialize(const std::vector<RawTensor>& tensors, bool with_metadata = true) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (with_metadata) header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& tensor : tensors) {
    header[tensor.name] = {{"dtype", tensor.dtype},
                           {"shape", tensor.shape},
                           {"data_offsets", {data.size(), data.size() + tensor.data.size()}}};
    data += tensor.data;
  }
  return assemble(header.dump(), data);
}

// Every tensor of a file, in data-offset order, read with nothing but nlohmann.
inline std::vector<RawTensor> read_tensors(const std::filesystem::path& path) {
  const std::string file = read_bytes(path);
  std::uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= static_cast<std::uint64_t>(static_cast<unsigned char>(file[i])) << (8 * i);
  const auto header = nlohmann::json::parse(file.substr(8, length));
  std::vector<std::pair<std::uint64_t, RawTensor>> ordered;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const auto begin = entry["data_offsets"][0].get<std::uint64_t>();
    const auto end = entry["data_offsets"][1].get<std::uint64_t>();
    ordered.push_back({begin,
                       {name, entry["dtype"].get<std::string>(), entry["shape"].get<std::vector<std::int64_t>>(),
                        file.substr(8 + length + begin, end - begin)}});
  }
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RawTensor> tensors;
  for (auto& [_, tensor] : ordered) tensors.push_back(std::move(tensor));
  return tensors;
}

// A BF16 tensor filled with a recognisable pattern.
inline RawTensor bf16_tensor(std::string name, std::vector<std::int64_t> shape) {
  std::int64_t count = 1;
  for (auto extent : shape) count *= extent;
  RawTensor tensor{std::move(name), "BF16", std::move(shape), std::string(static_cast<std::size_t>(count) * 2, '\0')};
  for (std::int64_t i = 0; i < count; ++i) tensor.data[2 * i + 1] = 0x3f;  // 0x3f00 = 0.5
  return tensor;
}

}  // namespace quanteval::test
