#include "runtime/kernels/cpu/bandwidth.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/platform/streamed_memory.hpp"

namespace quanteval::runtime {

std::uint64_t read_stream(const void* data, std::size_t bytes, CpuIsa isa, std::size_t prefetch_bytes) {
  if (bytes % 8 != 0) throw std::invalid_argument(fmt::format("read_stream: {} bytes is not a multiple of 8", bytes));
  if (!cpu_supports(isa))
    throw std::runtime_error(fmt::format("read_stream: this CPU or build cannot run the {} kernels", to_string(isa)));
  if (isa == CpuIsa::avx512) return detail::read_stream_avx512(data, bytes, prefetch_bytes);
  if (isa == CpuIsa::avx2) return detail::read_stream_avx2(data, bytes, prefetch_bytes);
  const char* p = static_cast<const char*>(data);
  std::uint64_t out = 0;
  for (std::size_t i = 0; i < bytes; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, p + i, sizeof word);
    out ^= word;
  }
  return out;
}

namespace {
constexpr std::size_t kPage = 4096;
}  // namespace

ReadPass::ReadPass(ThreadPool& pool, std::size_t bytes)
    : pool_(pool), bytes_((std::max<std::size_t>(bytes, kPage) + kPage - 1) / kPage * kPage) {
  // The same pages as the weights (huge pages where the OS gives them): a floor read from
  // 4 KiB pages would sit below what a GEMV over 2 MiB pages streams.
  base_ = static_cast<unsigned char*>(allocate_streamed(bytes_, kPage));
  const std::int64_t pages = static_cast<std::int64_t>(bytes_ / kPage);
  // Touch every page (from the threads that will read it) so no pass pays page faults.
  pool_.parallel_for(pages, [&](std::int64_t begin, std::int64_t end) {
    std::memset(base_ + begin * kPage, 0x5a, static_cast<std::size_t>(end - begin) * kPage);
  });
}

ReadPass::~ReadPass() { release_streamed(base_, bytes_, kPage); }

double ReadPass::gb_per_s(CpuIsa isa, std::size_t prefetch_bytes) {
  const std::int64_t pages = static_cast<std::int64_t>(bytes_ / kPage);
  std::vector<std::uint64_t> sinks(static_cast<std::size_t>(pool_.size()) + 1, 0);
  const auto start = std::chrono::steady_clock::now();
  // Whole pages per thread: each thread streams one contiguous share.
  pool_.parallel_for(pages, [&](std::int64_t begin, std::int64_t end) {
    const std::uint64_t x =
        read_stream(base_ + begin * kPage, static_cast<std::size_t>(end - begin) * kPage, isa, prefetch_bytes);
    sinks[static_cast<std::size_t>(begin * pool_.size() / pages)] ^= x;
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Every page (512 equal words) XORs to 0; reading the sinks keeps the loads observable.
  std::uint64_t all = 0;
  for (std::uint64_t sink : sinks) all ^= sink;
  if (all != 0) throw std::logic_error(fmt::format("ReadPass: checksum {:#x} is impossible", all));
  return static_cast<double>(bytes_) / s / 1e9;
}

ReadBandwidth measure_read_bandwidth(ThreadPool& pool, std::size_t bytes, int passes) {
  passes = std::max(passes, 1);
  ReadPass buffer(pool, bytes);
  // Every load width the CPU has (up to the ISA cap) x these prefetch distances, interleaved
  // pass by pass so a noisy neighbour hits them alike; the best counts. Neither the widest
  // loads nor no prefetch is always best: on an Intel Xeon VM 4 ymm per step streamed
  // 36 GB/s where 4 zmm managed 29, and a GEMV with zmm loads and its own prefetch beat the
  // zmm-only floor by 9-13%.
  std::vector<CpuIsa> widths;
  for (CpuIsa isa : {CpuIsa::avx512, CpuIsa::avx2})
    if (cpu_supports(isa)) widths.push_back(isa);
  if (widths.empty()) widths.push_back(CpuIsa::scalar);
  constexpr std::size_t kPrefetchDistances[] = {0, 2048, 4096, 8192};
  struct Config {
    CpuIsa isa;
    std::size_t prefetch_bytes;
    double best = 0, worst = 1e300;
  };
  std::vector<Config> configs;
  for (CpuIsa isa : widths)
    for (std::size_t distance : kPrefetchDistances) {
      configs.push_back({isa, distance});
      if (isa == CpuIsa::scalar) break;  // the scalar loop does not prefetch
    }
  for (int pass = 0; pass < passes; ++pass) {
    for (Config& config : configs) {
      const double gbs = buffer.gb_per_s(config.isa, config.prefetch_bytes);
      config.best = std::max(config.best, gbs);
      config.worst = std::min(config.worst, gbs);
    }
  }
  const Config& best = *std::max_element(configs.begin(), configs.end(),
                                         [](const Config& a, const Config& b) { return a.best < b.best; });
  ReadBandwidth out;
  out.gb_per_s = best.best;
  out.worst_gb_per_s = best.worst;
  out.isa = best.isa;
  out.prefetch_bytes = best.prefetch_bytes;
  out.threads = pool.size();
  out.bytes = buffer.bytes();
  out.passes = passes;
  out.configurations = static_cast<int>(configs.size());
  return out;
}

std::string cpu_model_name() {
  // The first processor's fields; "cpu family" / "model" tell CPUs apart whose
  // model name a VM shortens (e.g. "AMD EPYC").
  std::ifstream in("/proc/cpuinfo");
  std::string line, name, family, model;
  auto value = [&line] {
    const auto colon = line.find(':');
    const auto first = colon == std::string::npos ? colon : line.find_first_not_of(" \t", colon + 1);
    return first == std::string::npos ? std::string() : line.substr(first);
  };
  while (std::getline(in, line) && !line.empty()) {
    if (line.rfind("model name", 0) == 0)
      name = value();
    else if (line.rfind("cpu family", 0) == 0)
      family = value();
    else if (line.rfind("model", 0) == 0 && line.find("model\t") == 0)
      model = value();
  }
  if (name.empty()) return "unknown CPU";
  return family.empty() ? name : fmt::format("{} (family {}, model {})", name, family, model);
}

}  // namespace quanteval::runtime
