// End-to-end CPU generation benchmark on a random-weight GPTQ model with the
// shapes of Qwen2.5-Coder-0.5B (hidden 896, 24 layers, 14/2 heads, head_dim 64,
// intermediate 4864, vocab 151936, group 128, tied BF16 lm_head):
//
//   bench_decode [options]   (--help lists them; a typo or a malformed value is exit 2)
//
// --decode-context N: the decode rows start after an N-token prompt (default 16), so a
// long thinking context's attention is in the decode time (the floor counts weights only).
// --checkpoint loads a checkpoint directory instead of building the synthetic shape
// (tools/bench_llamacpp.sh times the one tools/synthetic_checkpoint wrote); --peer
// prints only the prefill and decode rows (no floor, no kernel rows).
//   bench_decode --device cuda ...   the GPU benchmark (tools/bench_decode_cuda.cpp)
//
// qwen3.5-0.8b: the hybrid Qwen3.5 shape (24 layers: 18 Gated DeltaNet + 6
// gated full attention, hidden 1024, intermediate 3584, 8/2 heads of 256,
// 16 key and 16 value linear heads of 128, vocab 248320, group 128). Either is
// built from SyntheticWeights by the same builder that loads a checkpoint.
//
// Everything is measured in the same run so ratios are meaningful on a noisy
// shared machine: the memory floor (measure_read_bandwidth: every SIMD load width, all
// threads, 1 GiB, best of 5; a DRAM row above it is flagged, exit 1), the INT4
// GEMV stream of all MLP projections at M = 1 and the BF16 lm_head (each call with its
// weights flushed from the caches first), prefill, single
// sequence decode and batched decode. Decode is compared with its floor: the
// bytes one token must read (every weight once) over the measured read bandwidth, and
// step by step with a 256 MB read pass run right after each step (ReadPass): on a VM
// whose bandwidth swings from minute to minute, the best pass of the run is another
// moment's floor.
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/checkpoint/synthetic.hpp"
#include "runtime/kernels/cpu/backend.hpp"
#include "runtime/kernels/cpu/bandwidth.hpp"
#include "runtime/model/model.hpp"
#include "tools/bench_decode_cuda.hpp"
#include "tools/options.hpp"

using namespace quanteval::runtime;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

template <typename F, typename Before>
double min_seconds(int reps, F&& f, Before&& before) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    before();
    const auto start = Clock::now();
    f();
    best = std::min(best, seconds(start));
  }
  return best;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

constexpr const char* kUsage =
    R"(usage: bench_decode [options]          prefill / decode tokens/s on the CPU vs the memory floor
  --shape qwen2.5-0.5b|qwen3.5-0.8b   the random-weight model's shape (default qwen2.5-0.5b)
  --checkpoint DIR                    load a checkpoint directory instead
  --bf16                              16-bit weights instead of GPTQ INT4 (group 128)
  --threads N                         threads, the calling one included (default 2)
  --prompt-tokens N[,N...]            prefill lengths, each timed once (default 128; at least 16)
  --decode-tokens N                   decode steps per decode row (default 32)
  --decode-context N                  the decode rows start after an N-token prompt (default 16)
  --batch N                           sequences of the batched decode row (default 16)
  --peer                              only the prefill and decode rows (tools/bench_llamacpp.sh)
The kernels follow QUANTEVAL_CPU_ISA (avx2 runs the AVX2 kernels on an AVX-512 machine).
       bench_decode --device cuda [options]   the GPU benchmark
  --shape qwen3.5-27b|...             (default qwen3.5-27b)   --group-size N (default 64)
  --batches 1,16,64,164   --contexts 1024,4096   --decode-tokens N (default 16)
  --no-act-order   --gpu-memory-utilization F (default 0.9)
)";

}  // namespace

int main(int argc, char** argv) {
  using quanteval::tools::ToolOptions;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    }
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--device" && std::string(argv[i + 1]) == "cuda")
      return quanteval::tools::bench_decode_cuda(argc, argv);
  int threads = 0, decode_tokens = 0, batch = 0, decode_context = 0;
  std::vector<int> prompt_lengths;  // each prefilled once; decode prompts take the first 16 tokens
  bool quantized = true, peer = false;
  std::string shape, checkpoint;
  try {
    const ToolOptions options(
        argc, argv,
        {"device", "threads", "decode-tokens", "prompt-tokens", "batch", "decode-context", "shape", "checkpoint"},
        {"bf16", "peer"});
    if (options.text("device", "cpu") != "cpu")
      throw ToolOptions::Error(fmt::format("--device: expected cpu or cuda, got '{}'", options.text("device", "")));
    threads = static_cast<int>(options.integer("threads", 2));
    decode_tokens = static_cast<int>(options.integer("decode-tokens", 32));
    for (long long tokens : options.integers("prompt-tokens", "128"))
      prompt_lengths.push_back(std::max(16, static_cast<int>(tokens)));
    batch = static_cast<int>(options.integer("batch", 16));
    decode_context = static_cast<int>(options.integer("decode-context", 16));
    if (decode_context < 1 || batch < 1 || decode_tokens < 1 || threads < 0)
      throw ToolOptions::Error("--decode-context, --batch and --decode-tokens must be >= 1, --threads >= 0");
    quantized = !options.flag("bf16");
    // --peer: only prefill and decode (no floor, no kernel rows), for tools/bench_llamacpp.sh.
    peer = options.flag("peer");
    shape = options.text("shape", "qwen2.5-0.5b");
    checkpoint = options.text("checkpoint", "");
  } catch (const ToolOptions::Error& e) {
    fmt::print(stderr, "bench_decode: {}\n{}", e.what(), kUsage);
    return 2;
  }
  const int prompt_tokens = *std::max_element(prompt_lengths.begin(), prompt_lengths.end());

  auto build_start = Clock::now();
  std::unique_ptr<Model> model;
  // 1 GiB, or ~32 KB per cached token (both shapes take 24.6 KB) for long decode contexts.
  const std::uint64_t kv_bytes = std::max<std::uint64_t>(
      1ull << 30, static_cast<std::uint64_t>(decode_context + decode_tokens + 1) * batch * (32u << 10));
  const LoadOptions load_options{.threads = threads, .kv_cache_bytes = kv_bytes, .max_sequences = batch};
  try {
    if (!checkpoint.empty()) {
      model = Model::load(checkpoint, load_options);
    } else {
      SyntheticShapeOptions options;
      options.quantized = quantized;
      const SyntheticWeights weights = SyntheticWeights::from_config_json(synthetic_config_json(shape, options));
      model = Model::build(weights, load_options);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_decode: {}\n", e.what());
    return 2;
  }
  const ModelConfig& config = model->config();
  if (checkpoint.empty())
    fmt::print("built {} model with {} shapes in {:.1f} s, {}\n", quantized ? "GPTQ INT4 (group 128)" : "BF16", shape,
               seconds(build_start), model->backend().name());
  else
    fmt::print("loaded {} in {:.1f} s, {}\n", checkpoint, seconds(build_start), model->backend().name());
  Backend& backend = model->backend();
  ThreadPool& pool = dynamic_cast<CpuBackend&>(backend).pool();
  std::vector<TokenId> prompt(static_cast<std::size_t>(std::max(prompt_tokens, decode_context)));
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<TokenId>((i * 7919 + 13) % config.vocab_size);
  auto prefill = [&](int tokens) {
    auto state = model->open_sequence(tokens + 1);
    const Model::Step step{state.get(), std::span<const TokenId>(prompt.data(), static_cast<std::size_t>(tokens)),
                           false};
    const auto start = Clock::now();
    model->forward(std::span<const Model::Step>(&step, 1));
    return seconds(start);
  };
  if (peer) prefill(16);  // warm-up (the kernel rows warm the full run up)

  // --- memory floor ---------------------------------------------------------------------
  // Widest loads of the active ISA, all threads, 1 GiB (>> LLC), best of 5 passes: no
  // kernel that reads its weights from DRAM can beat it (checked in the report).
  ReadBandwidth floor_bw = peer ? ReadBandwidth{} : measure_read_bandwidth(pool, std::size_t{1} << 30, 5);
  // And a floor beside each single-sequence decode step: one pass over 256 MB (>> LLC) with
  // the best configuration right after the step, so the step is compared with the bandwidth
  // of its own moment (see ReadPass).
  std::unique_ptr<ReadPass> paired_pass = peer ? nullptr : std::make_unique<ReadPass>(pool, std::size_t{256} << 20);

  // --- kernels alone ----------------------------------------------------------------------
  const ModelWeights& w = model->weights();
  std::uint64_t mlp_bytes = 0;
  for (const auto& layer : w.layers)
    mlp_bytes +=
        layer.mlp.gate_proj->weight_bytes() + layer.mlp.up_proj->weight_bytes() + layer.mlp.down_proj->weight_bytes();
  const Tensor x = backend.scratch(1, config.intermediate_size);  // wide enough for every projection's input
  std::vector<float> half(static_cast<std::size_t>(config.intermediate_size), 0.5f);
  backend.write(x, half.data());
  const Tensor y = backend.scratch(1, config.vocab_size);
  auto run = [&](const LinearWeight& linear) {
    backend.matmul(linear, {x.data, 1, linear.in_features()}, {y.data, 1, linear.out_features()});
  };
  double mlp_s = 0, head_s = 0, hot_s = 0;
  const LinearWeight& hot = *w.layers.front().mlp.gate_proj;
  if (!peer) {
    // The DRAM rows flush their weights from every cache level before each call (clflush
    // of each line). Reading other memory does not do it: an Intel Xeon VM's 480 MiB L3
    // keeps lines that were read again (after a 1 GiB read a 167 MB buffer read back at
    // 39-42 GB/s, after clflush at 32-37), and the MLP row came out at 105-110% of the floor.
    auto flush = [](const LinearWeight& weight) {
      const auto memory = dynamic_cast<const CpuLinear&>(weight).weight_memory();
#if defined(__x86_64__)
      for (std::size_t i = 0; i < memory.size(); i += 64) _mm_clflush(memory.data() + i);
      _mm_mfence();
#else
      (void)memory;
#endif
    };
    auto flush_mlp = [&] {
      for (const auto& layer : w.layers)
        for (const LinearWeight* linear : {layer.mlp.gate_proj.get(), layer.mlp.up_proj.get(), layer.mlp.down_proj.get()})
          flush(*linear);
    };
    mlp_s = min_seconds(
        5,
        [&] {
          for (const auto& layer : w.layers) {
            run(*layer.mlp.gate_proj);
            run(*layer.mlp.up_proj);
            run(*layer.mlp.down_proj);
          }
        },
        flush_mlp);
    head_s = min_seconds(5, [&] { run(*w.lm_head); }, [&] { flush(*w.lm_head); });
    // One hidden x intermediate matrix over and over: its megabytes stay in cache, so this
    // is the kernel's own speed, without DRAM.
    hot_s = min_seconds(50, [&] { run(hot); }, [] {});
  }
  backend.end_step();

  // --- prefill ----------------------------------------------------------------------------
  std::vector<double> prefill_s;
  for (int tokens : prompt_lengths) prefill_s.push_back(prefill(tokens));

  // --- decode: one sequence, then `batch` sequences in one step ---------------------------
  const std::uint64_t token_bytes = model->weight_bytes();
  std::vector<double> paired_ratios;  // per single-sequence step: its GB/s over the read pass's
  auto decode = [&](int sequences) {
    std::vector<std::unique_ptr<SequenceState>> states;
    std::vector<Model::Step> steps;
    std::vector<TokenId> short_prompt(prompt.begin(), prompt.begin() + decode_context);
    for (int s = 0; s < sequences; ++s) {
      states.push_back(model->open_sequence(decode_context + decode_tokens + 1));
      steps.push_back({states.back().get(), short_prompt, false});
    }
    model->forward(steps);  // prefill the decode_context-token prompts
    std::vector<TokenId> next(static_cast<std::size_t>(sequences), 42);
    for (int s = 0; s < sequences; ++s)
      steps[static_cast<std::size_t>(s)].tokens = std::span<const TokenId>(&next[static_cast<std::size_t>(s)], 1);
    std::vector<double> step_times;
    for (int t = 0; t < decode_tokens; ++t) {
      const auto start = Clock::now();
      model->forward(steps);
      step_times.push_back(seconds(start));
      if (sequences == 1 && paired_pass) {
        const double pass_gbs = paired_pass->gb_per_s(floor_bw.isa, floor_bw.prefetch_bytes);
        paired_ratios.push_back(token_bytes / step_times.back() / 1e9 / pass_gbs);
      }
    }
    return median(step_times);  // seconds per step
  };
  const double single_step_s = decode(1);
  const double batch_step_s = decode(batch);

  // The floor again after the rows (other jobs on a shared machine come and go): the
  // better of the two is the floor.
  if (!peer) {
    ReadBandwidth again = measure_read_bandwidth(pool, std::size_t{1} << 30, 5);
    if (again.gb_per_s > floor_bw.gb_per_s) {
      again.worst_gb_per_s = std::min(again.worst_gb_per_s, floor_bw.worst_gb_per_s);
      floor_bw = again;
    } else {
      floor_bw.worst_gb_per_s = std::min(again.worst_gb_per_s, floor_bw.worst_gb_per_s);
    }
  }
  const double read_gbs = floor_bw.gb_per_s;

  // --- report -----------------------------------------------------------------------------
  const double floor_s = token_bytes / (read_gbs * 1e9);
  const double single_tok_s = 1.0 / single_step_s, batch_tok_s = batch / batch_step_s;
  // A row that reads every byte once from DRAM faster than the floor means the floor is
  // wrong (or the data was cached): it is flagged and the program exits with 1.
  int over_floor = 0;
  auto check = [&](double gbs) -> std::string {
    if (gbs <= read_gbs) return "";
    ++over_floor;
    return fmt::format(" **ABOVE THE FLOOR ({:.0f}%): not a valid floor**", 100 * gbs / read_gbs);
  };
  fmt::print("\nCPU: {}; ISA: {}; {} threads\n", cpu_model_name(), describe_cpu_isa(), pool.size());
  fmt::print("\n| measurement | value | note |\n| --- | ---: | --- |\n");
  if (!peer) {
    fmt::print(
        "| read floor, 1 GiB | {:.1f} GB/s | best: {} loads, prefetch {} B, {} threads; {} passes x {} load widths / "
        "prefetch distances (that one's worst {:.1f}) |\n",
        read_gbs, to_string(floor_bw.isa), floor_bw.prefetch_bytes, floor_bw.threads, floor_bw.passes,
        floor_bw.configurations, floor_bw.worst_gb_per_s);
    fmt::print("| bytes read per decoded token | {:.1f} MB | INT4 layers {:.1f} MB + BF16 lm_head {:.1f} MB |\n",
               token_bytes / 1e6, (token_bytes - model->lm_head_bytes()) / 1e6, model->lm_head_bytes() / 1e6);
    const double mlp_gbs = mlp_bytes / mlp_s / 1e9;
    fmt::print("| INT4 GEMV, all MLP projections, M=1 | {:.1f} GB/s | {:.0f}% of floor ({:.1f} MB in {:.2f} ms){} |\n",
               mlp_gbs, 100 * mlp_gbs / read_gbs, mlp_bytes / 1e6, mlp_s * 1e3, check(mlp_gbs));
    fmt::print(
        "| INT4 GEMV, one {}x{} matrix, hot in cache, M=1 | {:.1f} GB/s | {:.3f} ms (cache, not DRAM: no floor) |\n",
        hot.in_features(), hot.out_features(), hot.weight_bytes() / hot_s / 1e9, hot_s * 1e3);
    const double head_gbs = model->lm_head_bytes() / head_s / 1e9;
    fmt::print("| BF16 lm_head GEMV, M=1 | {:.1f} GB/s | {:.0f}% of floor ({:.2f} ms){} |\n", head_gbs,
               100 * head_gbs / read_gbs, head_s * 1e3, check(head_gbs));
  }
  for (std::size_t i = 0; i < prompt_lengths.size(); ++i)
    fmt::print("| prefill, {} tokens | {:.1f} tok/s | {:.3f} s |\n", prompt_lengths[i],
               prompt_lengths[i] / prefill_s[i], prefill_s[i]);
  const double decode_gbs = peer ? 0.0 : token_bytes / single_step_s / 1e9;
  const std::string context_note =
      decode_context == 16 ? std::string() : fmt::format("; after a {}-token prompt", decode_context);
  if (peer)
    fmt::print("| decode, 1 sequence | {:.2f} tok/s | {:.1f} ms/token{} |\n", single_tok_s, single_step_s * 1e3,
               context_note);
  else
    fmt::print("| decode, 1 sequence | {:.2f} tok/s | {:.1f} ms/token; floor {:.1f} ms -> {:.0f}% of floor{}{} |\n",
               single_tok_s, single_step_s * 1e3, floor_s * 1e3, 100 * floor_s / single_step_s, context_note,
               check(decode_gbs));
  if (!paired_ratios.empty()) {
    std::sort(paired_ratios.begin(), paired_ratios.end());
    fmt::print(
        "| decode, 1 sequence, vs a read pass after each step | {:.0f}% | the step's bytes / time over a 256 MB read "
        "pass's GB/s, per step: min {:.0f}%, max {:.0f}% (the same-moment floor; the row above uses the best pass "
        "of the run) |\n",
        100 * median(paired_ratios), 100 * paired_ratios.front(), 100 * paired_ratios.back());
  }
  fmt::print("| decode, {} sequences batched | {:.2f} tok/s | {:.1f} ms/step; {:.2f}x single-sequence tok/s{} |\n",
             batch, batch_tok_s, batch_step_s * 1e3, batch_tok_s / single_tok_s, context_note);
  if (over_floor > 0) {
    fmt::print(stderr, "bench_decode: {} row(s) read faster than the measured floor\n", over_floor);
    return 1;
  }
  return 0;
}
