// GPU tests of the CUDA INT4 GEMM (label cuda). Exits 77 -- "not run" for ctest -- when no
// GPU is usable, printing CUDA's reason; never passes without one.
//
//   test_marlin_gemm_cuda [--groups a,b,...] [--seed N] [--list] [--probe]
//
// --probe only says whether a GPU is usable (exit 0) or why not (exit 77): the bundle's run.sh
// starts with it.
//
// Every case is printed (and flushed) before it launches, so a crash names its case. The
// data are fresh random every run (the seed is printed; --seed or QUANTEVAL_TEST_SEED
// repeats a run). Each GEMM check:
//   * poisons C with NaN (0xFFFF in both 16-bit types) before each of two runs: an element
//     the kernel never wrote stays NaN and fails;
//   * requires the two runs to give identical bytes (the stream-K reduction is ordered);
//   * compares with a GPU reference that reads the checkpoint's own tensors and works in FP64
//     (runtime/kernels/cuda/reference_gemm.hpp; itself checked against the CPU reference in group "reference"):
//     relative L2 over the whole output, and the worst per-element error of every row.
//
// The error bounds (relative L2 2.5 u; every element within u (2 |R| + 8 M)) and their
// derivation are in runtime/kernels/cuda/reference_gemm.hpp (ReferenceComparison), shared with the
// benchmark's check.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "runtime/kernels/cuda/marlin_gemm.hpp"
#include "runtime/kernels/cuda/marlin_layout.hpp"
#include "runtime/kernels/cuda/reference_gemm.hpp"

using namespace quanteval::runtime;
namespace ref = quanteval::runtime::cuda::reference;
using cuda::ActivationType;
using cuda::MarlinGemmOptions;

namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

template <typename... Args>
std::string format(const char* pattern, Args... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, pattern, args...);
  return buffer;
}

// splitmix64: fast enough to fill a 5120 x 34816 weight in well under a second.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  float normal() {                                                                // Box-Muller
    const double u1 = uniform() + 1e-300, u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[next() % i]);
  }

 private:
  uint64_t state_;
};

uint16_t encode(float v, bool bf16) { return bf16 ? float_to_bf16(v) : float_to_f16(v); }
float decode(uint16_t v, bool bf16) { return bf16 ? bf16_to_float(v) : f16_to_float(v); }

// Pass/fail/skip counts per group, printed as the summary run.sh tabulates.
class Tally {
 public:
  void pass(const std::string& group) { ++counts_[group].passed; }
  void fail(const std::string& group, const std::string& what) {
    ++counts_[group].failed;
    std::printf("FAIL [%s] %s\n", group.c_str(), what.c_str());
    std::fflush(stdout);
  }
  void skip(const std::string& group, const std::string& why) {
    ++counts_[group].skipped;
    std::printf("SKIP [%s] %s\n", group.c_str(), why.c_str());
    std::fflush(stdout);
  }
  int failed() const {
    int total = 0;
    for (const auto& [name, c] : counts_) total += c.failed;
    return total;
  }
  void print() const {
    int passed = 0, failed = 0, skipped = 0;
    for (const auto& [name, c] : counts_) {
      std::printf("GROUP %-10s %d passed, %d failed, %d skipped\n", name.c_str(), c.passed, c.failed, c.skipped);
      passed += c.passed;
      failed += c.failed;
      skipped += c.skipped;
    }
    std::printf("test_marlin_gemm_cuda: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  }

 private:
  struct Counts {
    int passed = 0, failed = 0, skipped = 0;
  };
  std::map<std::string, Counts> counts_;
};

// ---- Random GPTQ weights -------------------------------------------------------------

struct WeightSpec {
  int k = 0, n = 0;
  int group = 128;  // -1 = channel-wise
  bool act_order = false;
};

std::string describe(const WeightSpec& s) {
  return format("K=%d N=%d group=%d%s", s.k, s.n, s.group, s.act_order ? " act-order" : "");
}

// Symmetric 4-bit weight with random nibbles and positive scales spread over two octaves
// (0.005..0.02: several binades, so rounding the scale is exercised), GPTQ v1 or v2 zeros and
// f16 or bf16 scales at random; act-order assigns exactly `group` random rows to each group.
// Built directly: tests need valid tensors with known values, not the quantizer.
OwnedGptqWeight random_weight(const WeightSpec& spec, Rng& rng) {
  OwnedGptqWeight out;
  GptqWeight& w = out.weight;
  w.name = "test." + describe(spec);
  w.in_features = spec.k;
  w.out_features = spec.n;
  w.group_size = spec.group;
  w.format = (rng.next() & 1) ? GptqFormat::v1 : GptqFormat::v2;
  w.scale_format = (rng.next() & 1) ? ScaleFormat::bf16 : ScaleFormat::f16;
  const int group = spec.group == -1 ? spec.k : spec.group;
  const int groups = spec.k / group;
  out.qweight.resize(size_t(spec.k / 8) * spec.n);
  for (auto& word : out.qweight) word = static_cast<int32_t>(static_cast<uint32_t>(rng.next()));
  const uint32_t stored_zero = w.format == GptqFormat::v1 ? 7u : 8u;
  out.qzeros.assign(size_t(groups) * (spec.n / 8), static_cast<int32_t>(stored_zero * 0x11111111u));
  out.scales.resize(size_t(groups) * spec.n);
  for (auto& s : out.scales) {
    const float value = static_cast<float>(0.005 * std::exp2(2.0 * rng.uniform()));
    s = w.scale_format == ScaleFormat::bf16 ? float_to_bf16(value) : float_to_f16(value);
  }
  if (spec.act_order) {
    out.g_idx.resize(spec.k);
    for (int row = 0; row < spec.k; ++row) out.g_idx[row] = row / group;
    rng.shuffle(out.g_idx);
  }
  out.refresh_views();
  return out;
}

// The raw tensors on the device, for the reference kernel.
struct DeviceGptq {
  cuda::DeviceBuffer qweight, qzeros, scales, g_idx;
  ref::GptqDeviceView view;
};

template <typename T>
cuda::DeviceBuffer upload(const std::vector<T>& host) {
  cuda::DeviceBuffer buffer(host.size() * sizeof(T));
  if (!host.empty())
    check_cuda(cudaMemcpy(buffer.data(), host.data(), buffer.bytes(), cudaMemcpyHostToDevice), "upload");
  return buffer;
}

DeviceGptq upload_gptq(const OwnedGptqWeight& owned) {
  DeviceGptq d;
  d.qweight = upload(owned.qweight);
  d.qzeros = upload(owned.qzeros);
  d.scales = upload(owned.scales);
  d.g_idx = upload(owned.g_idx);
  const GptqWeight& w = owned.weight;
  d.view.k = w.in_features;
  d.view.n = w.out_features;
  d.view.group_size = marlin::effective_group_size(w);
  d.view.v1_zeros = w.format == GptqFormat::v1;
  d.view.scales_bf16 = w.scale_format == ScaleFormat::bf16;
  d.view.qweight = d.qweight.as<int32_t>();
  d.view.qzeros = d.qzeros.as<int32_t>();
  d.view.scales = d.scales.as<uint16_t>();
  d.view.g_idx = owned.g_idx.empty() ? nullptr : d.g_idx.as<int32_t>();
  return d;
}

// Random activations (normal, rounded to the type) on the device and their host bits.
struct Activations {
  std::vector<uint16_t> bits;
  cuda::DeviceBuffer device;
};

Activations random_activations(int m, int k, bool bf16, Rng& rng) {
  Activations a;
  a.bits.resize(size_t(m) * k);
  for (auto& v : a.bits) v = encode(rng.normal(), bf16);
  a.device = upload(a.bits);
  return a;
}

// ---- The checks ------------------------------------------------------------------------

struct Context {
  Rng rng;
  Tally tally;
  cuda::MarlinWorkspace workspace;
  int multiprocessors = 0;
};

// Runs marlin_gemm twice on poisoned output; returns the first result (the runs must agree).
std::vector<uint16_t> run_gemm(Context& ctx, const cuda::MarlinWeight& weight, const Activations& a, int m,
                               const MarlinGemmOptions& options, bool& runs_agree) {
  const size_t elements = size_t(m) * weight.out_features();
  cuda::DeviceBuffer c(elements * 2);
  std::vector<uint16_t> first(elements), second(elements);
  for (int run = 0; run < 2; ++run) {
    check_cuda(cudaMemset(c.data(), 0xff, c.bytes()), "poison C");
    cuda::marlin_gemm(weight, a.device.data(), c.data(), m, ctx.workspace, nullptr, options);
    check_cuda(cudaDeviceSynchronize(), "marlin_gemm");
    check_cuda(cudaMemcpy(run == 0 ? first.data() : second.data(), c.data(), c.bytes(), cudaMemcpyDeviceToHost),
               "download C");
  }
  runs_agree = std::memcmp(first.data(), second.data(), elements * 2) == 0;
  return first;
}

std::string options_label(const MarlinGemmOptions& o) {
  std::string s;
  if (o.indexing == MarlinGemmOptions::Indexing::division) s += " indexing=division";
  if (o.reduction == MarlinGemmOptions::Reduction::serial) s += " reduction=serial";
  if (o.min_kblocks_per_block != MarlinGemmOptions().min_kblocks_per_block)
    s += " min_kblocks=" + std::to_string(o.min_kblocks_per_block);
  if (o.max_blocks > 0) s += " grid_cap=" + std::to_string(o.max_blocks);
  return s;
}

// A GEMM case: one weight, several batch sizes, each checked against the GPU reference.
// identical_to (optional): options whose result must be bit-identical to those of `options`.
struct GemmCase {
  std::string group;
  WeightSpec spec;
  bool bf16 = true;
  std::vector<int> batches;
  MarlinGemmOptions options;
  const MarlinGemmOptions* identical_to = nullptr;
};

void run_case(Context& ctx, const GemmCase& gc) {
  const OwnedGptqWeight owned = random_weight(gc.spec, ctx.rng);
  const auto weight = cuda::MarlinWeight::from_gptq(owned.weight, gc.bf16 ? ActivationType::bf16 : ActivationType::f16);
  const DeviceGptq device_gptq = upload_gptq(owned);
  for (int m : gc.batches) {
    const bool dense = cuda::uses_dense_handover(m, ctx.workspace, gc.options);
    const std::string name = format("%s %s M=%d path=%s%s", gc.bf16 ? "bf16" : "f16 ", describe(gc.spec).c_str(), m,
                                    dense ? "dense+cublas" : "int4", options_label(gc.options).c_str());
    std::printf("CASE [%s] %s\n", gc.group.c_str(), name.c_str());
    std::fflush(stdout);
    try {
      const Activations a = random_activations(m, gc.spec.k, gc.bf16, ctx.rng);
      bool runs_agree = false;
      const std::vector<uint16_t> out = run_gemm(ctx, weight, a, m, gc.options, runs_agree);
      std::vector<uint16_t> other;
      bool other_agrees = true;
      if (gc.identical_to) other = run_gemm(ctx, weight, a, m, *gc.identical_to, other_agrees);

      const size_t elements = size_t(m) * gc.spec.n;
      cuda::DeviceBuffer d_ref(elements * sizeof(double)), d_mag(elements * sizeof(double));
      ref::gemm_reference(device_gptq.view, a.device.as<uint16_t>(), gc.bf16, m, d_ref.as<double>(), d_mag.as<double>(),
                          nullptr);
      std::vector<double> reference(elements), magnitude(elements);
      check_cuda(cudaMemcpy(reference.data(), d_ref.data(), d_ref.bytes(), cudaMemcpyDeviceToHost), "download R");
      check_cuda(cudaMemcpy(magnitude.data(), d_mag.data(), d_mag.bytes(), cudaMemcpyDeviceToHost), "download M");

      const ref::ReferenceComparison c =
          ref::compare_with_reference(out.data(), reference.data(), magnitude.data(), m, gc.spec.n, gc.bf16);
      std::printf("  %s%s%s\n", c.summary().c_str(), runs_agree ? "" : ", RUNS DIFFER",
                  gc.identical_to && other != out ? ", VARIANTS DIFFER" : "");
      std::vector<std::string> problems;
      if (!c.passed()) problems.push_back(c.summary());
      if (!runs_agree || !other_agrees) problems.push_back("two runs gave different bytes");
      if (gc.identical_to && other != out)
        problems.push_back("variants" + options_label(*gc.identical_to) + " and" + options_label(gc.options) +
                           " differ");
      if (problems.empty()) {
        ctx.tally.pass(gc.group);
      } else {
        std::string joined;
        for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
        ctx.tally.fail(gc.group, name + ": " + joined);
      }
    } catch (const std::exception& e) {
      ctx.tally.fail(gc.group, name + ": exception: " + e.what());
      check_cuda(cudaGetLastError(), "after exception");  // a sticky error ends the run here
    }
  }
}

// ---- Groups -------------------------------------------------------------------------------

// The GPU reference against dequantize_reference + an FP64 matmul on the CPU.
void group_reference(Context& ctx) {
  const std::string group = "reference";
  for (const WeightSpec& spec :
       {WeightSpec{256, 192, 64, true}, WeightSpec{512, 128, -1, false}, WeightSpec{384, 64, 32, true}}) {
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      const int m = 5;
      const std::string name =
          format("gpu reference vs cpu %s %s M=%d", bf16 ? "bf16" : "f16", describe(spec).c_str(), m);
      std::printf("CASE [%s] %s\n", group.c_str(), name.c_str());
      std::fflush(stdout);
      const OwnedGptqWeight owned = random_weight(spec, ctx.rng);
      const DeviceGptq d = upload_gptq(owned);
      const Activations a = random_activations(m, spec.k, bf16 != 0, ctx.rng);
      const size_t elements = size_t(m) * spec.n;
      cuda::DeviceBuffer d_ref(elements * 8), d_mag(elements * 8);
      ref::gemm_reference(d.view, a.device.as<uint16_t>(), bf16 != 0, m, d_ref.as<double>(), d_mag.as<double>(),
                          nullptr);
      std::vector<double> gpu(elements), gpu_mag(elements);
      check_cuda(cudaMemcpy(gpu.data(), d_ref.data(), d_ref.bytes(), cudaMemcpyDeviceToHost), "download");
      check_cuda(cudaMemcpy(gpu_mag.data(), d_mag.data(), d_mag.bytes(), cudaMemcpyDeviceToHost), "download");
      const std::vector<float> dense = dequantize_reference(owned.weight);  // [N, K]
      // Both sums are FP64 over the same exact terms, differing only in order: <= K 2^-53 of the sum of
      // |terms| (1.2e-16 > 2^-53). The magnitude is an FP32 sum of squares: within K 2^-24 relative.
      double worst = 0;
      for (int r = 0; r < m; ++r)
        for (int n = 0; n < spec.n; ++n) {
          double sum = 0, squares = 0, absolute = 0;
          for (int k = 0; k < spec.k; ++k) {
            const double activation = decode(a.bits[size_t(r) * spec.k + k], bf16 != 0);
            const double term = activation * dense[size_t(n) * spec.k + k];
            sum += term;
            squares += term * term;
            absolute += std::fabs(term);
          }
          const size_t i = size_t(r) * spec.n + n;
          worst = std::max(worst, std::fabs(gpu[i] - sum) / (absolute * spec.k * 1.2e-16 + 1e-300));
          worst = std::max(worst,
                           std::fabs(gpu_mag[i] - std::sqrt(squares)) / (std::sqrt(squares) * spec.k * 6e-8 + 1e-300));
        }
      std::printf("  worst difference %.3f of its bound\n", worst);
      if (worst <= 1.0)
        ctx.tally.pass(group);
      else
        ctx.tally.fail(group, name + format(": differs from the CPU reference (%.2f of the bound)", worst));
    }
  }
}

// The GPU repack equals the host repack byte for byte.
void group_repack(Context& ctx) {
  const std::string group = "repack";
  for (const WeightSpec& spec :
       {WeightSpec{128, 64, 32, false}, WeightSpec{256, 320, 64, true}, WeightSpec{1024, 192, 128, true},
        WeightSpec{512, 128, -1, false}, WeightSpec{512, 256, 16, true}, WeightSpec{5120, 1024, 128, true}}) {
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      const std::string name = format("repack %s %s", bf16 ? "bf16" : "f16", describe(spec).c_str());
      std::printf("CASE [%s] %s\n", group.c_str(), name.c_str());
      std::fflush(stdout);
      const OwnedGptqWeight owned = random_weight(spec, ctx.rng);
      const auto weight =
          cuda::MarlinWeight::from_gptq(owned.weight, bf16 ? ActivationType::bf16 : ActivationType::f16);
      const std::vector<int32_t> order = marlin::group_sorted_rows(owned.weight);
      const bool packed_ok = weight.download_packed() == marlin::repack_weights(owned.weight, order);
      const bool scales_ok = weight.download_scales() == marlin::repack_scales(owned.weight, bf16 != 0);
      if (packed_ok && scales_ok)
        ctx.tally.pass(group);
      else
        ctx.tally.fail(group, name + (packed_ok ? "" : ": packed words differ") + (scales_ok ? "" : ": scales differ"));
    }
  }
}

// Qwen3.5-27B's quantized linear layers (K -> N).
struct LayerShape {
  const char* name;
  int k, n;
};
const std::vector<LayerShape> kLayers = {
    {"q_proj", 5120, 12288},        {"k_proj/v_proj", 5120, 1024}, {"o_proj/out_proj", 6144, 5120},
    {"in_proj_qkv", 5120, 10240},   {"in_proj_z", 5120, 6144},     {"gate/up", 5120, 17408},
    {"gate_up fused", 5120, 34816}, {"down", 17408, 5120},
};

// Every layer shape on the production path (default options), BF16 with act-order as the seed
// checkpoint has it, FP16 on three; M = 1 and 17 everywhere, 65 on the three largest and 257
// (the dense hand-over under the default options) on down.
void group_layers(Context& ctx) {
  for (const LayerShape& layer : kLayers) {
    std::vector<int> batches = {1, 17};
    if (layer.n >= 17408) batches = {1, 17, 65};
    if (layer.k >= 17408) batches = {1, 17, 65, 257};
    GemmCase gc;
    gc.group = "layers";
    gc.spec = {layer.k, layer.n, 128, true};
    gc.batches = batches;
    run_case(ctx, gc);
  }
  for (const LayerShape& layer : {kLayers[1], kLayers[2], kLayers[7]}) {
    GemmCase gc;
    gc.group = "layers";
    gc.spec = {layer.k, layer.n, 128, false};
    gc.bf16 = false;
    gc.batches = {1, 17};
    run_case(ctx, gc);
  }
}

// Every batch size that reaches a tile edge, on the INT4 kernel (no hand-over).
void group_batches(Context& ctx) {
  const std::vector<int> batches = {1, 2, 4, 8, 15, 16, 17, 32, 33, 64, 65, 128, 257};
  GemmCase gc;
  gc.group = "batches";
  gc.options.dense_handover_m = 0;
  gc.batches = batches;
  gc.spec = {5120, 1024, 128, true};
  run_case(ctx, gc);
  gc.spec = {6144, 5120, 128, false};
  gc.bf16 = false;
  run_case(ctx, gc);
}

// Group sizes 32/64/128/channel-wise (and 16), act-order on and off, both types. Act-order is
// a no-op for channel-wise (one group: the stable sort keeps the order), so it is not repeated.
void group_groups(Context& ctx) {
  for (int group : {32, 64, 128, -1, 16}) {
    for (int act_order = 0; act_order < 2; ++act_order) {
      if (group == -1 && act_order) continue;
      for (int bf16 = 0; bf16 < 2; ++bf16) {
        GemmCase gc;
        gc.group = "groups";
        gc.spec = {5120, 1024, group, act_order != 0};
        gc.bf16 = bf16 != 0;
        gc.batches = {1, 16, 33};
        gc.options.dense_handover_m = 0;
        run_case(ctx, gc);
      }
    }
  }
}

// Grid caps: blocks that run many k-blocks (the cp.async ring wraps many times, accumulation
// spans stages) and span two or more strips (both stream-K slots, several partial segments).
// The plan is printed so the log shows what each cap forces.
void group_grid(Context& ctx) {
  struct Shape {
    WeightSpec spec;
    bool bf16;
    std::vector<int> caps, batches;
  };
  const std::vector<int> small_caps = {1, 2, 3, 7, 13, 64}, all_tiles = {1, 15, 33, 65};
  const std::vector<Shape> shapes = {
      {{2048, 320, 64, true}, true, small_caps, all_tiles},  // partial last strip at every tile width
      {{1024, 1088, 32, false}, false, small_caps, all_tiles},
      {{4096, 128, 128, true}, true, small_caps, all_tiles},  // one or two strips, deep
      {{17408, 5120, 128, true}, true, {5, 13}, {1, 15}},     // the down projection
  };
  for (const Shape& shape : shapes) {
    for (int cap : shape.caps) {
      GemmCase gc;
      gc.group = "grid";
      gc.spec = shape.spec;
      gc.bf16 = shape.bf16;
      gc.batches = shape.batches;
      gc.options.max_blocks = cap;
      gc.options.min_kblocks_per_block = 1;
      gc.options.dense_handover_m = 0;
      // What the cap does with the 16-row tiles (128-column strips, 128-row k-blocks).
      const marlin::StreamKPartition p =
          marlin::plan_stream_k((shape.spec.n + 127) / 128, shape.spec.k / 128, ctx.multiprocessors, 2, 1, cap);
      std::printf("PLAN grid_cap=%d %s: %lld blocks over %lld strips x %lld k-blocks = %.1f k-blocks per block\n", cap,
                  describe(shape.spec).c_str(), (long long)p.blocks, (long long)p.strips, (long long)p.ktiles,
                  double(p.total()) / p.blocks);
      run_case(ctx, gc);
    }
  }
}

// The first version's index arithmetic and reduction against the current ones on the same grid:
// the results must be bit-identical; and legacy() as a whole (its own grid) against the reference.
void group_variants(Context& ctx) {
  MarlinGemmOptions before;
  before.indexing = MarlinGemmOptions::Indexing::division;
  before.reduction = MarlinGemmOptions::Reduction::serial;
  before.dense_handover_m = 0;
  MarlinGemmOptions after;
  after.dense_handover_m = 0;
  for (const WeightSpec& spec :
       {WeightSpec{5120, 1024, 128, true}, WeightSpec{17408, 5120, 128, true}, WeightSpec{5120, 10240, 64, false}}) {
    GemmCase gc;
    gc.group = "variants";
    gc.spec = spec;
    gc.batches = {1, 16, 65};
    gc.options = after;
    gc.identical_to = &before;
    run_case(ctx, gc);
    gc.options = MarlinGemmOptions::legacy();
    gc.identical_to = nullptr;
    gc.batches = {1, 33};
    run_case(ctx, gc);
  }
}

// The dense hand-over (dequantize + cuBLAS), forced from M = 1.
void group_handover(Context& ctx) {
  MarlinGemmOptions dense;
  dense.dense_handover_m = 1;
  if (!cuda::uses_dense_handover(1, ctx.workspace, dense)) {
    ctx.tally.skip("handover", "cuBLAS could not be loaded: " + ctx.workspace.cublas_unavailable_reason());
    return;
  }
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    GemmCase gc;
    gc.group = "handover";
    gc.spec = {5120, 1024, 128, bf16 != 0};
    gc.bf16 = bf16 != 0;
    gc.batches = {1, 64, 257};
    gc.options = dense;
    run_case(ctx, gc);
  }
  GemmCase gc;
  gc.group = "handover";
  gc.spec = {6144, 5120, 32, true};
  gc.batches = {300};
  gc.options = dense;
  run_case(ctx, gc);
}

// Arguments marlin_gemm must reject before queueing anything (shape rules are CPU-tested in
// test_marlin_layout; here the entry point itself).
void group_arguments(Context& ctx) {
  const std::string group = "arguments";
  const OwnedGptqWeight owned = random_weight({256, 128, 64, false}, ctx.rng);
  const auto weight = cuda::MarlinWeight::from_gptq(owned.weight, ActivationType::bf16);
  cuda::DeviceBuffer a(size_t(4) * 256 * 2), c(size_t(4) * 128 * 2);
  auto expect_rejected = [&](const std::string& what, const std::string& needle, const std::function<void()>& call) {
    std::printf("CASE [%s] %s\n", group.c_str(), what.c_str());
    std::fflush(stdout);
    std::string message;
    try {
      call();
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    if (!message.empty() && message.find(needle) != std::string::npos)
      ctx.tally.pass(group);
    else
      ctx.tally.fail(group,
                     what + ": expected std::invalid_argument mentioning '" + needle + "', got '" + message + "'");
  };
  MarlinGemmOptions defaults;
  expect_rejected("m = 0", "m must be >= 1",
                  [&] { cuda::marlin_gemm(weight, a.data(), c.data(), 0, ctx.workspace, nullptr); });
  expect_rejected("m = -3", "m must be >= 1",
                  [&] { cuda::marlin_gemm(weight, a.data(), c.data(), -3, ctx.workspace, nullptr); });
  expect_rejected("null A", "null", [&] { cuda::marlin_gemm(weight, nullptr, c.data(), 1, ctx.workspace, nullptr); });
  expect_rejected("null C", "null", [&] { cuda::marlin_gemm(weight, a.data(), nullptr, 1, ctx.workspace, nullptr); });
  MarlinGemmOptions o = defaults;
  o.min_kblocks_per_block = 0;
  expect_rejected("min_kblocks_per_block = 0", "min_kblocks_per_block",
                  [&] { cuda::marlin_gemm(weight, a.data(), c.data(), 1, ctx.workspace, nullptr, o); });
  o = defaults;
  o.max_blocks = -1;
  expect_rejected("max_blocks = -1", "max_blocks",
                  [&] { cuda::marlin_gemm(weight, a.data(), c.data(), 1, ctx.workspace, nullptr, o); });
  o = defaults;
  o.dense_handover_m = -2;
  expect_rejected("dense_handover_m = -2", "dense_handover_m",
                  [&] { cuda::marlin_gemm(weight, a.data(), c.data(), 1, ctx.workspace, nullptr, o); });
  for (const WeightSpec& bad :
       {WeightSpec{192, 64, 64, false}, WeightSpec{256, 96, 64, false}, WeightSpec{384, 64, 48, false}}) {
    OwnedGptqWeight w = random_weight(bad, ctx.rng);
    expect_rejected("weight " + describe(bad), "K=" + std::to_string(bad.k),
                    [&] { (void)cuda::MarlinWeight::from_gptq(w.weight, ActivationType::bf16); });
  }
  check_cuda(cudaDeviceSynchronize(), "after rejections");
}

// Small cases covering every kernel path, sized for compute-sanitizer (memcheck, racecheck):
// each tile configuration, partial strips, both stream-K slots (grid cap), act-order gather,
// small groups, FP16, and the dense hand-over.
void group_sanitize(Context& ctx) {
  GemmCase gc;
  gc.group = "sanitize";
  gc.spec = {1024, 320, 64, true};
  gc.batches = {1, 17, 33, 65};
  gc.options.dense_handover_m = 0;
  run_case(ctx, gc);
  gc.options.max_blocks = 3;
  gc.options.min_kblocks_per_block = 1;
  run_case(ctx, gc);
  gc.spec = {512, 192, 32, false};
  gc.bf16 = false;
  gc.options.max_blocks = 5;
  gc.options.reduction = MarlinGemmOptions::Reduction::serial;
  gc.options.indexing = MarlinGemmOptions::Indexing::division;
  run_case(ctx, gc);
  gc.options = MarlinGemmOptions();
  gc.options.dense_handover_m = 1;
  gc.spec = {512, 128, 128, true};
  gc.batches = {20};
  if (cuda::uses_dense_handover(20, ctx.workspace, gc.options))
    run_case(ctx, gc);
  else
    ctx.tally.skip("sanitize",
                   "dense hand-over: cuBLAS could not be loaded: " + ctx.workspace.cublas_unavailable_reason());
}

struct Group {
  const char* name;
  void (*run)(Context&);
  const char* what;
};
const std::vector<Group> kGroups = {
    {"reference", group_reference, "the GPU reference against the CPU reference"},
    {"repack", group_repack, "GPU repack equals host repack"},
    {"arguments", group_arguments, "invalid arguments throw std::invalid_argument"},
    {"sanitize", group_sanitize, "small cases over every path (the compute-sanitizer subset)"},
    {"layers", group_layers, "every Qwen3.5-27B quantized layer shape, production options"},
    {"batches", group_batches, "M in {1,2,4,8,15,16,17,32,33,64,65,128,257}"},
    {"groups", group_groups, "group sizes 16/32/64/128/-1, act-order on/off, BF16/FP16"},
    {"grid", group_grid, "grid caps: many k-blocks per block, blocks spanning strips"},
    {"variants", group_variants, "first-version index arithmetic and reduction bit-identical to the current"},
    {"handover", group_handover, "the dequantize + cuBLAS path"},
};

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> selected;
  bool probe = false;
  uint64_t seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  if (const char* env = std::getenv("QUANTEVAL_TEST_SEED"); env && *env) seed = std::strtoull(env, nullptr, 10);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--list") {
      for (const Group& g : kGroups) std::printf("%-10s %s\n", g.name, g.what);
      return 0;
    } else if (arg == "--groups" && i + 1 < argc) {
      std::stringstream list(argv[++i]);
      for (std::string name; std::getline(list, name, ',');) selected.insert(name);
    } else if (arg == "--probe") {
      probe = true;
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: test_marlin_gemm_cuda [--groups a,b,...] [--seed N] [--list] [--probe]\n");
      return 2;
    }
  }
  for (const std::string& name : selected) {
    if (std::none_of(kGroups.begin(), kGroups.end(), [&](const Group& g) { return name == g.name; })) {
      std::fprintf(stderr, "test_marlin_gemm_cuda: unknown group '%s' (--list shows them)\n", name.c_str());
      return 2;
    }
  }
  const cuda::DeviceStatus status = cuda::device_status();
  if (!status.usable) {
    std::printf("test_marlin_gemm_cuda: no GPU: %s -- not run\n", status.summary().c_str());
    return 77;
  }
  if (probe) {
    const std::vector<cuda::DeviceInfo> devices = cuda::list_devices();
    std::printf("GPU: %s, %d SMs, %zu MiB; %s\n", devices.empty() ? "?" : devices[0].name.c_str(),
                devices.empty() ? 0 : devices[0].multiprocessors,
                devices.empty() ? size_t(0) : devices[0].total_memory_bytes >> 20, status.summary().c_str());
    return 0;
  }
  std::printf("test_marlin_gemm_cuda seed %llu; %s\n", static_cast<unsigned long long>(seed), status.summary().c_str());
  std::fflush(stdout);
  int exit_code = 0;
  try {
    Context ctx{Rng(seed), Tally(), cuda::MarlinWorkspace(), 0};
    ctx.multiprocessors = ctx.workspace.multiprocessors();
    for (const Group& g : kGroups) {
      if (!selected.empty() && !selected.count(g.name)) continue;
      std::printf("== group %s: %s\n", g.name, g.what);
      std::fflush(stdout);
      try {
        g.run(ctx);
      } catch (const std::exception& e) {
        ctx.tally.fail(g.name, std::string("exception: ") + e.what());
        if (cudaGetLastError() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
          std::printf("the CUDA context is broken; the remaining groups cannot run\n");
          break;
        }
      }
    }
    ctx.tally.print();
    exit_code = ctx.tally.failed() ? 1 : 0;
  } catch (const std::exception& e) {
    std::printf("FAIL: exception: %s\n", e.what());
    exit_code = 1;
  }
  std::printf("test_marlin_gemm_cuda: %s (seed %llu)\n", exit_code ? "FAILED" : "passed",
              static_cast<unsigned long long>(seed));
  return exit_code;
}
