// Writes the fuzzers' seed corpus from the model fixtures (run by ctest before
// the fuzz tests, so no binary seeds are committed):
//   <seeds>/safetensors/  each fixture's header with an empty data region, and a
//                         small valid file built from its smallest tensors
//   <seeds>/config/       each fixture's config.json and quantize_config.json
// and creates the empty working corpus folders libFuzzer writes new inputs to.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "tests/checkpoint/safetensors_writer.hpp"
#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
namespace qt = quanteval::test;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: checkpoint_fuzz_seeds SEED_DIR CORPUS_DIR\n";
    return 2;
  }
  const fs::path seeds = argv[1], corpus = argv[2];
  for (const char* kind : {"safetensors", "config"}) {
    fs::create_directories(seeds / kind);
    fs::create_directories(corpus / kind);
  }
  int written = 0;
  for (const auto& entry : fs::directory_iterator(qt::fixture("models"))) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    for (const char* file : {"model.safetensors", "reference_logits.safetensors"}) {
      const std::string bytes = qt::read_bytes(entry.path() / file);
      std::uint64_t header_length = 0;
      std::memcpy(&header_length, bytes.data(), 8);
      qt::write_bytes(seeds / "safetensors" / fmt::format("{}-{}-header", name, file),
                      bytes.substr(0, 8 + header_length));
      ++written;
    }
    std::vector<qt::RawTensor> tensors = qt::read_tensors(entry.path() / "model.safetensors");
    std::erase_if(tensors, [](const qt::RawTensor& t) { return t.data.size() > 2048; });
    if (tensors.size() > 12) tensors.resize(12);
    qt::write_bytes(seeds / "safetensors" / fmt::format("{}-small", name), qt::serialize(tensors));
    ++written;
    for (const char* file : {"config.json", "quantize_config.json"}) {
      if (!fs::exists(entry.path() / file)) continue;
      fs::copy_file(entry.path() / file, seeds / "config" / fmt::format("{}-{}", name, file),
                    fs::copy_options::overwrite_existing);
      ++written;
    }
  }
  std::cout << "wrote " << written << " seeds to " << seeds << "\n";
  return written > 0 ? 0 : 1;
}
