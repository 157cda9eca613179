// bench_decode --device cuda: decode speed of a random-weight model on the GPU against its
// floor, measured in the same run (docs/cuda-backend.md, docs/perf.md):
//   copy bandwidth   a 1 GiB device-to-device copy (read + write counted), median of 7
//   floor            bytes one decode step streams (Model::weight_bytes) / copy bandwidth
//   decode           median step time of `--decode-tokens` steps at each batch in --batches and each
//                    context in --contexts; tokens/s = sequences / step time
//   164 x 4096       a synthetic "164 problems x 4096 new tokens" run estimated from the 164-sequence
//                    steps at the measured contexts (step time linear in the context)
// The context is reached by one real prompt token per sequence and then advancing the sequence
// over positions whose K/V are never written (their memory holds whatever it held): the
// kernels read every position as a real run would, which is what the timing needs.
//   bench_decode --device cuda [--shape qwen3.5-27b] [--batches 1,16,64,164] [--contexts 1024,4096]
//                [--decode-tokens N] [--gpu-memory-utilization F] [--group-size G] [--no-act-order]
#include "tools/bench_decode_cuda.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/checkpoint/synthetic.hpp"
#include "runtime/model/model.hpp"
#include "runtime/platform/device.hpp"
#include "tools/options.hpp"

#ifdef QUANTEVAL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace quanteval::tools {

using namespace quanteval::runtime;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

#ifdef QUANTEVAL_HAVE_CUDA
void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(fmt::format("CUDA: {}: {}", what, cudaGetErrorString(status)));
}

// GB/s of a device-to-device copy, read and write bytes both counted.
double copy_bandwidth_gbs() {
  const std::size_t bytes = std::size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "cudaMalloc");
  check(cudaMalloc(&b, bytes), "cudaMalloc");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  check(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice), "warm-up copy");
  std::vector<double> times;
  for (int i = 0; i < 7; ++i) {
    check(cudaEventRecord(start), "cudaEventRecord");
    check(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice), "copy");
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(ms * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * static_cast<double>(bytes) / median(times) / 1e9;
}
#endif

}  // namespace

int bench_decode_cuda(int argc, char** argv) {
#ifndef QUANTEVAL_HAVE_CUDA
  (void)argc, (void)argv;
  fmt::print(stderr, "bench_decode --device cuda: this build has no CUDA backend\n");
  return 2;
#else
  std::string shape;
  std::vector<int> batches, contexts;
  int decode_tokens = 0;
  SyntheticShapeOptions shape_options;
  LoadOptions load;
  try {
    const ToolOptions options(
        argc, argv, {"device", "shape", "batches", "contexts", "decode-tokens", "group-size", "gpu-memory-utilization"},
        {"no-act-order"});
    shape = options.text("shape", "qwen3.5-27b");
    for (long long b : options.integers("batches", "1,16,64,164")) batches.push_back(static_cast<int>(b));
    for (long long c : options.integers("contexts", "1024,4096")) contexts.push_back(static_cast<int>(c));
    decode_tokens = static_cast<int>(options.integer("decode-tokens", 16));
    shape_options.group_size = static_cast<int>(options.integer("group-size", 64));
    shape_options.act_order = !options.flag("no-act-order");
    load.gpu_memory_utilization = options.number("gpu-memory-utilization", 0.9);
    if (decode_tokens < 1 || *std::min_element(batches.begin(), batches.end()) < 1 ||
        *std::min_element(contexts.begin(), contexts.end()) < 1)
      throw ToolOptions::Error("--batches, --contexts and --decode-tokens must be >= 1");
  } catch (const ToolOptions::Error& e) {
    fmt::print(stderr, "bench_decode --device cuda: {} (bench_decode --help lists the options)\n", e.what());
    return 2;
  }
  if (!cuda_available()) {
    fmt::print("bench_decode --device cuda: no GPU: {} -- not run\n", cuda_unavailable_reason());
    return 77;
  }
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const int max_context = *std::max_element(contexts.begin(), contexts.end());

  const double bandwidth = copy_bandwidth_gbs();
  fmt::print("copy bandwidth {:.0f} GB/s (1 GiB device-to-device, read + write)\n", bandwidth);

  const auto build_start = Clock::now();
  const SyntheticWeights weights = SyntheticWeights::from_config_json(synthetic_config_json(shape, shape_options));
  load.device = Device::cuda;
  load.max_sequences = max_batch;
  auto model = Model::build(weights, load);
  const double token_bytes = static_cast<double>(model->weight_bytes());
  const double floor_s = token_bytes / (bandwidth * 1e9);
  const MemoryPlan& plan = model->memory().plan();
  fmt::print(
      "built {} (GPTQ group {}{}) in {:.1f} s on {}: {:.2f} GB streamed per step, floor {:.2f} ms/step "
      "= {:.0f} tok/s at batch 1; model memory {:.1f} GiB ({} K/V tokens, {} state slots)\n",
      shape, shape_options.group_size, shape_options.act_order ? " act-order" : "",
      std::chrono::duration<double>(Clock::now() - build_start).count(), model->backend().name(), token_bytes / 1e9,
      floor_s * 1e3, 1 / floor_s, static_cast<double>(plan.bytes()) / (1 << 30), plan.capacity_tokens(), plan.slots);
  std::fflush(stdout);

  std::map<std::pair<int, int>, double> step_seconds;  // (batch, context) -> median step
  fmt::print(
      "\n| sequences | context | ms/step | tok/s | % of floor (batch 1) |\n| ---: | ---: | ---: | ---: | ---: |\n");
  for (const int context : contexts) {
    for (const int batch : batches) {
      std::vector<std::unique_ptr<SequenceState> > states;
      for (int s = 0; s < batch; ++s) {
        auto state = model->try_open_sequence(context + decode_tokens + 2);
        if (!state) break;
        states.push_back(std::move(state));
      }
      if (static_cast<int>(states.size()) < batch) {
        fmt::print("| {} | {} | does not fit the model memory ({} K/V tokens, {} slots) | | |\n", batch, context,
                   plan.capacity_tokens(), plan.slots);
        continue;
      }
      std::vector<TokenId> tokens(static_cast<std::size_t>(batch), 17);
      std::vector<Model::Step> steps;
      for (int s = 0; s < batch; ++s)
        steps.push_back({states[static_cast<std::size_t>(s)].get(),
                         std::span<const TokenId>(&tokens[static_cast<std::size_t>(s)], 1), false});
      model->forward(steps);  // one real token each, then jump to the context
      for (auto& state : states) state->advance(context - 1);
      model->forward(steps);  // warm-up
      std::vector<double> times;
      for (int t = 0; t < decode_tokens; ++t) {
        const auto start = Clock::now();
        model->forward(steps);
        times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      }
      const double step = median(times);
      step_seconds[{batch, context}] = step;
      fmt::print("| {} | {} | {:.2f} | {:.0f} | {} |\n", batch, context, step * 1e3, batch / step,
                 batch == 1 ? fmt::format("{:.0f}%", 100 * floor_s / step) : std::string());
      std::fflush(stdout);
    }
  }
  const auto low = step_seconds.find({164, 1024}), high = step_seconds.find({164, 4096});
  if (low != step_seconds.end() && high != step_seconds.end()) {
    // 4096 steps whose context grows from ~0 to 4096: the mean step is the step at 2048.
    const double slope = (high->second - low->second) / 3072.0;
    const double mean_step = low->second + slope * (2048 - 1024);
    fmt::print("\n164 problems x 4096 new tokens (estimated from the 164-sequence steps at 1k and 4k): {:.0f} s\n",
               4096 * mean_step);
  } else {
    fmt::print("\n164 x 4096 estimate: needs both 164-sequence rows (1024 and 4096)\n");
  }
  (void)max_context;
  return 0;
#endif
}

}  // namespace quanteval::tools
