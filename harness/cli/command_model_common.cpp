#include "harness/cli/command_model_common.hpp"

#include <fmt/format.h>

#include <charconv>
#include <limits>

namespace quanteval::harness {

std::vector<runtime::TokenId> parse_token_ids(const std::string& text, const char* option) {
  std::vector<runtime::TokenId> ids;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    long long value = 0;
    const auto [ptr, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || error != std::errc() || ptr != item.data() + item.size() || value < 0 ||
        value > std::numeric_limits<runtime::TokenId>::max())
      throw UsageError(
          fmt::format("--{}: '{}' (element {}) is not a token id (expected e.g. 1,2,3)", option, item, ids.size()));
    ids.push_back(static_cast<runtime::TokenId>(value));
    start = end + 1;
  }
  return ids;
}

void add_model_options(Args& args) {
  args.option("model", "DIR", "model directory (config.json, *.safetensors; tokenizer.json for text)")
      .option("device", "cpu|cuda|auto",
              "compute device (auto = cpu until the CUDA backend has run on a GPU: docs/cuda-backend.md)", "auto")
      .option("threads", "N", "CPU threads (0 = all cores)", "0")
      .option("kv-cache-mb", "MB",
              "model memory in MiB: K/V blocks and recurrent state slots together (0 = 25% of RAM, at most 4 GiB)", "0")
      .option("gpu-memory-utilization", "F",
              "with --device cuda and --kv-cache-mb 0: fraction of the GPU's memory to use (weights, model "
              "memory, scratch)",
              "0.9");
}

runtime::Device device_from_args(const Args& args) {
  // `auto` means cpu until the CUDA backend has passed its first GPU run (docs/cuda-backend.md);
  // `cuda` goes through select_device, so a build or machine without CUDA says which is missing.
  const std::string requested = args.get("device");
  return requested == "auto" ? runtime::Device::cpu : runtime::select_device(requested);
}

std::unique_ptr<runtime::Model> load_model_from_args(const Args& args) {
  const runtime::Device device = device_from_args(args);
  runtime::LoadOptions options;
  options.device = device;
  options.threads = args.get_int("threads", 0, 1024);
  options.kv_cache_bytes = static_cast<std::uint64_t>(args.get_int("kv-cache-mb", 0, 1 << 20)) << 20;
  options.gpu_memory_utilization = args.get_double("gpu-memory-utilization", 0.01, 1.0);
  return runtime::Model::load(args.get("model"), options);
}

}  // namespace quanteval::harness
