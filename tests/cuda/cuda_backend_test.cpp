// The CUDA backend against the CPU path, written to be verified in one short GPU
// window (docs/cuda-backend.md). Groups:
//   ops       every Backend op on random inputs, on the backend under test and on the
//             CPU backend's reference kernels (fp32 weights, plain loops), step by step
//             through prefill and decode (K/V pages and recurrent state carried), odd
//             shapes, long contexts (several attention splits); prints each op's error
//             and the first op that diverges;
//   fixtures  every model in fixtures/models: per-layer hidden states against the CPU
//             path (the first layer that diverges, then that layer alone on the CPU's
//             input to tell its own ops from upstream error), logits against
//             transformers (relative L2 <= 1e-2, argmax at every position), the 16
//             greedy tokens, and the same sequence inside a batch of three (tokens equal;
//             the largest logit difference printed: 0 means bitwise batch-invariant);
//             GPTQ fixtures also with the GPTQ weights dequantized to BF16 + cuBLAS;
//   sanitize  the small ops and one tiny fixture (what compute-sanitizer runs).
// `--backend cpu` runs the same checks with the CPU's fast kernels as the backend under
// test, and `--backend cpu-faulty` with a planted attention bug that they must catch: ctest
// runs both on every machine (label cpu), so this program's own logic is tested before a
// GPU ever runs it.
// Exit: 0 all passed, 1 a check failed, 77 no usable GPU (backend cuda), 2 bad usage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "runtime/checkpoint/safetensors.hpp"
#include "runtime/kernels/cpu/backend.hpp"
#include "runtime/kernels/cuda/backend.hpp"
#include "runtime/model/model.hpp"
#include "runtime/platform/device.hpp"

namespace {

namespace fs = std::filesystem;
using namespace quanteval::runtime;

struct Options {
  std::string backend = "cuda";
  fs::path fixtures;
  std::set<std::string> groups;
  std::uint64_t seed = 1;
};

// ---- results ---------------------------------------------------------------------------------

struct Tally {
  int passed = 0, failed = 0;
  std::string first_failure;
  void record(bool ok, const std::string& what) {
    ok ? ++passed : ++failed;
    if (!ok && first_failure.empty()) first_failure = what;
  }
};

struct Difference {
  double relative_l2 = 0, max_abs = 0;
};

Difference difference(const std::vector<float>& actual, const std::vector<float>& expected) {
  Difference d;
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double e = static_cast<double>(actual[i]) - expected[i];
    if (!std::isfinite(actual[i])) {
      d.max_abs = INFINITY;
      diff = INFINITY;
    }
    diff += e * e;
    norm += static_cast<double>(expected[i]) * expected[i];
    d.max_abs = std::max(d.max_abs, std::abs(e));
  }
  d.relative_l2 = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  return d;
}

std::vector<float> random_values(std::size_t n, std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(n);
  for (auto& v : values) v = dist(rng);
  return values;
}

// ---- ops ------------------------------------------------------------------------------------
// Both backends see the same weights and the same inputs; the CPU reference backend is
// the baseline. Tolerances: fp32 ops compare to 1e-4 relative L2 (the same math, other
// summation orders, fma, device exp/sin/cos: measured differences are ~1e-6); projections
// on the GPU round their inputs to BF16 (2^-9 relative per element), so 1e-2 as the
// issue's logits bound; copies (embed, gather) must be exact.

class OpChecker {
 public:
  OpChecker(Backend& base, Backend& test, Tally& tally, std::uint64_t seed)
      : base_(base), test_(test), tally_(tally), rng_(seed) {}

  std::mt19937_64& rng() { return rng_; }

  struct Pair {
    Tensor base, test;
  };
  Pair tensor(std::int64_t rows, std::int64_t cols, const std::vector<float>& values) {
    Pair p{base_.scratch(rows, cols), test_.scratch(rows, cols)};
    base_.write(p.base, values.data());
    test_.write(p.test, values.data());
    return p;
  }
  Pair random(std::int64_t rows, std::int64_t cols, float lo = -1.0f, float hi = 1.0f) {
    return tensor(rows, cols, random_values(static_cast<std::size_t>(rows * cols), rng_, lo, hi));
  }
  Pair empty(std::int64_t rows, std::int64_t cols) { return {base_.scratch(rows, cols), test_.scratch(rows, cols)}; }

  void compare(const std::string& name, const Pair& p, double tolerance) {
    std::vector<float> a(static_cast<std::size_t>(p.base.rows * p.base.cols)), b(a.size());
    base_.read(p.base, a.data());
    test_.read(p.test, b.data());
    const Difference d = difference(b, a);
    const bool ok = tolerance == 0 ? d.max_abs == 0 : d.relative_l2 <= tolerance;
    std::printf("  %-58s rel L2 %9.2e  max |diff| %9.2e  (bound %s)  %s\n", name.c_str(), d.relative_l2, d.max_abs,
                tolerance == 0 ? "exact" : fmt::format("{:.0e}", tolerance).c_str(), ok ? "ok" : "FAIL");
    std::fflush(stdout);
    tally_.record(ok, "op " + name);
  }
  void end_step() {
    base_.end_step();
    test_.end_step();
  }

  Backend& base() { return base_; }
  Backend& test() { return test_; }

 private:
  Backend& base_;
  Backend& test_;
  Tally& tally_;
  std::mt19937_64 rng_;
};

constexpr double kFp32Tolerance = 1e-4;
constexpr double kProjectionTolerance = 1e-2;

DenseSource bf16_source(std::int64_t rows, std::int64_t cols, const std::vector<float>& values,
                        std::vector<std::uint16_t>& bits) {
  bits.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) bits[i] = float_to_bf16(values[i]);
  DenseSource source;
  source.dtype = DType::bf16;
  source.rows = rows;
  source.cols = cols;
  source.bytes = reinterpret_cast<const std::byte*>(bits.data());
  source.copy_to = [&bits](void* destination) { std::memcpy(destination, bits.data(), bits.size() * 2); };
  return source;
}

void check_elementwise_ops(OpChecker& c) {
  std::vector<std::uint16_t> bits;
  const auto table_values = random_values(50 * 96, c.rng());
  const DenseSource table_source = bf16_source(50, 96, table_values, bits);
  auto base_table = c.base().table(table_source);
  auto test_table = c.test().table(table_source);
  const std::vector<TokenId> tokens = {3, 0, 49, 7, 7};
  auto embedded = c.empty(5, 96);
  c.base().embed(*base_table, tokens, embedded.base);
  c.test().embed(*test_table, tokens, embedded.test);
  c.compare("embed bf16 [50, 96], 5 tokens", embedded, 0);
  c.end_step();

  for (const int width : {96, 257, 5120}) {
    const auto weight = random_values(width, c.rng(), 0.5f, 1.5f);
    auto base_w = c.base().vector(weight);
    auto test_w = c.test().vector(weight);
    auto x = c.random(7, width, -4.0f, 4.0f);
    auto out = c.empty(7, width);
    c.base().rms_norm(x.base, *base_w, 1e-6f, out.base);
    c.test().rms_norm(x.test, *test_w, 1e-6f, out.test);
    c.compare(fmt::format("rms_norm [7, {}]", width), out, kFp32Tolerance);
    c.base().rms_norm(x.base, *base_w, 1e-6f, x.base);  // in place, as the model's final norm
    c.test().rms_norm(x.test, *test_w, 1e-6f, x.test);
    c.compare(fmt::format("rms_norm in place [7, {}]", width), x, kFp32Tolerance);
    auto residual = c.random(7, width, -4.0f, 4.0f);
    auto addend = c.random(7, width);
    auto normed = c.empty(7, width);
    c.base().add_rms_norm(residual.base, addend.base, *base_w, 1e-6f, normed.base);
    c.test().add_rms_norm(residual.test, addend.test, *test_w, 1e-6f, normed.test);
    c.compare(fmt::format("add_rms_norm residual [7, {}]", width), residual, kFp32Tolerance);
    c.compare(fmt::format("add_rms_norm normed [7, {}]", width), normed, kFp32Tolerance);
    c.base().add(residual.base, addend.base);
    c.test().add(residual.test, addend.test);
    c.compare(fmt::format("add [7, {}]", width), residual, kFp32Tolerance);
    auto gate = c.random(7, width, -6.0f, 6.0f);
    auto up = c.random(7, width);
    c.base().swiglu(gate.base, up.base, gate.base);
    c.test().swiglu(gate.test, up.test, gate.test);
    c.compare(fmt::format("swiglu in place [7, {}]", width), gate, kFp32Tolerance);
    const std::vector<std::int64_t> rows = {6, 0, 3};
    auto gathered = c.empty(3, width);
    c.base().gather_rows(residual.base, rows, gathered.base);
    c.test().gather_rows(residual.test, rows, gathered.test);
    c.compare(fmt::format("gather_rows 3 of [7, {}]", width), gathered, 0);
    c.end_step();
  }
}

void check_linear(OpChecker& c, const std::string& name, const LinearSource& source, const std::vector<int>& ms) {
  auto base = c.base().linear(source);
  auto test = c.test().linear(source);
  for (const int m : ms) {
    auto x = c.random(m, source.in_features);
    auto y = c.empty(m, source.out_features);
    c.base().matmul(*base, x.base, y.base);
    c.test().matmul(*test, x.test, y.test);
    c.compare(fmt::format("matmul {} [{} x {}] m={}", name, source.out_features, source.in_features, m), y,
              kProjectionTolerance);
    c.end_step();
  }
}

void check_linears(OpChecker& c, bool small) {
  const std::vector<int> ms = small ? std::vector<int>{1, 17} : std::vector<int>{1, 2, 16, 17, 33, 65, 300};
  {  // dense bf16 with a bias
    std::vector<std::uint16_t> bits;
    const auto w = random_values(192 * 256, c.rng(), -0.1f, 0.1f);
    LinearSource source;
    source.name = "dense bf16 + bias";
    source.out_features = 192;
    source.in_features = 256;
    source.dense = bf16_source(192, 256, w, bits);
    source.bias = random_values(192, c.rng());
    check_linear(c, source.name, source, ms);
  }
  // GPTQ: a shape the INT4 kernel takes, and one it does not (K = 192: served dense).
  for (const auto& [n, k, group, act_order] : std::vector<std::tuple<int, int, int, bool>>{
           {128, 256, 64, true}, {256, 512, 128, false}, {64, 192, 64, true}}) {
    const auto w = random_values(static_cast<std::size_t>(n) * k, c.rng(), -0.1f, 0.1f);
    QuantizeOptions options;
    options.group_size = group;
    options.act_order = act_order;
    options.seed = c.rng()();
    OwnedGptqWeight q = quantize_reference(w, n, k, options);
    q.weight.name = "test";
    LinearSource source;
    source.name = fmt::format("gptq g{}{}", group, act_order ? " act-order" : "");
    source.out_features = n;
    source.in_features = k;
    source.gptq = q.weight;
    check_linear(c, source.name, source, ms);
  }
}

// A step over `lengths[i]` new tokens of sequence i.
StepBatch make_step(const std::vector<SequenceState*>& states, const std::vector<std::int64_t>& lengths,
                    std::mt19937_64& rng) {
  StepBatch batch;
  for (std::size_t i = 0; i < states.size(); ++i) {
    batch.sequences.push_back({states[i], batch.rows(), lengths[i], states[i]->length()});
    for (std::int64_t j = 0; j < lengths[i]; ++j) {
      batch.tokens.push_back(static_cast<TokenId>(rng() % 100));
      batch.positions.push_back(states[i]->length() + j);
      batch.row_sequence.push_back(static_cast<int>(i));
    }
  }
  return batch;
}

struct AttentionCase {
  const char* name;
  int heads, kv_heads, head_dim, rotary_dim;
  bool qk_norm, gated;
  std::int64_t window;
};

void check_attention(OpChecker& c, const AttentionCase& a, bool small) {
  AttentionSpec spec;
  spec.heads = a.heads;
  spec.kv_heads = a.kv_heads;
  spec.head_dim = a.head_dim;
  spec.rotary_dim = a.rotary_dim;
  spec.window = a.window;
  spec.gated = a.gated;
  spec.inv_freq = rope_inverse_frequencies(1e6, a.rotary_dim, "bfloat16");
  MemoryShape shape;
  shape.kv_layers = 1;
  shape.kv_heads = a.kv_heads;
  shape.head_dim = a.head_dim;
  const MemoryPlan plan = plan_memory(shape, std::uint64_t{1} << 27, 4);
  HybridMemory memory(plan);
  c.base().allocate_memory(plan);
  c.test().allocate_memory(plan);
  std::unique_ptr<VectorWeight> qn_base, qn_test, kn_base, kn_test;
  AttentionWeights w_base, w_test;
  if (a.qk_norm) {
    const auto qn = random_values(a.head_dim, c.rng(), 0.5f, 1.5f), kn = random_values(a.head_dim, c.rng(), 0.5f, 1.5f);
    qn_base = c.base().vector(qn), qn_test = c.test().vector(qn);
    kn_base = c.base().vector(kn), kn_test = c.test().vector(kn);
    w_base = {qn_base.get(), kn_base.get()};
    w_test = {qn_test.get(), kn_test.get()};
  }
  const int long_prompt = small ? 40 : 1100;  // 1100 positions: three splits of 512
  auto s1 = memory.try_admit(64), s2 = memory.try_admit(64), s3 = memory.try_admit(long_prompt + 8);
  std::vector<std::pair<std::vector<SequenceState*>, std::vector<std::int64_t>>> steps = {
      {{s1.get(), s2.get()}, {7, 20}},  // two prompts in one step
      {{s1.get(), s2.get()}, {1, 1}},   // decode
      {{s2.get(), s1.get()}, {1, 1}},   // decode, other order
      {{s1.get(), s2.get()}, {3, 1}},   // a prompt continued beside a decode
      {{s3.get()}, {long_prompt}},      // a long prompt alone
      {{s3.get(), s1.get()}, {1, 1}},   // long decode beside a short one
      {{s3.get()}, {1}},
  };
  int index = 0;
  for (const auto& [states, lengths] : steps) {
    const StepBatch batch = make_step(states, lengths, c.rng());
    const std::int64_t m = batch.rows();
    auto q = c.random(m, static_cast<std::int64_t>(a.heads) * a.head_dim * (a.gated ? 2 : 1), -2.0f, 2.0f);
    auto k = c.random(m, static_cast<std::int64_t>(a.kv_heads) * a.head_dim, -2.0f, 2.0f);
    auto v = c.random(m, static_cast<std::int64_t>(a.kv_heads) * a.head_dim);
    auto out = c.empty(m, static_cast<std::int64_t>(a.heads) * a.head_dim);
    c.base().attention(spec, w_base, batch, q.base, k.base, v.base, out.base);
    c.test().attention(spec, w_test, batch, q.test, k.test, v.test, out.test);
    std::string shape_text;
    for (std::size_t i = 0; i < states.size(); ++i)
      shape_text += fmt::format("{}{}+{}", i ? "," : "", states[i]->length(), lengths[i]);
    c.compare(fmt::format("attention {} step {} ({})", a.name, index++, shape_text), out, kFp32Tolerance);
    for (std::size_t i = 0; i < states.size(); ++i) states[i]->advance(lengths[i]);
    c.end_step();
  }
}

void check_deltanet(OpChecker& c, int key_heads, int value_heads, int dk, int dv, bool bias, bool small) {
  DeltaNetSpec spec;
  spec.key_heads = key_heads;
  spec.value_heads = value_heads;
  spec.key_head_dim = dk;
  spec.value_head_dim = dv;
  spec.conv_kernel = 4;
  MemoryShape shape;
  shape.state_layers = 1;
  shape.conv_floats = static_cast<std::int64_t>(spec.conv_kernel - 1) * spec.conv_dim();
  shape.recurrent_floats = static_cast<std::int64_t>(value_heads) * dk * dv;
  const MemoryPlan plan = plan_memory(shape, std::uint64_t{1} << 26, 3);
  HybridMemory memory(plan);
  c.base().allocate_memory(plan);
  c.test().allocate_memory(plan);
  const auto conv_weight =
      random_values(static_cast<std::size_t>(spec.conv_dim()) * spec.conv_kernel, c.rng(), -0.5f, 0.5f);
  const auto conv_bias = random_values(spec.conv_dim(), c.rng(), -0.2f, 0.2f);
  const auto A_log = random_values(value_heads, c.rng(), -1.0f, 1.0f);
  const auto dt_bias = random_values(value_heads, c.rng(), -1.0f, 1.0f);
  const auto norm = random_values(dv, c.rng(), 0.5f, 1.5f);
  struct Owned {
    std::unique_ptr<VectorWeight> conv_weight, conv_bias, A_log, dt_bias, norm;
    DeltaNetWeights view() const {
      return {conv_weight.get(), conv_bias.get(), A_log.get(), dt_bias.get(), norm.get()};
    }
  };
  auto build = [&](Backend& b) {
    Owned o;
    o.conv_weight = b.vector(conv_weight);
    if (bias) o.conv_bias = b.vector(conv_bias);
    o.A_log = b.vector(A_log);
    o.dt_bias = b.vector(dt_bias);
    o.norm = b.vector(norm);
    return o;
  };
  const Owned w_base = build(c.base()), w_test = build(c.test());
  auto s1 = memory.try_admit(200), s2 = memory.try_admit(200);
  for (auto* s : {s1.get(), s2.get()}) {
    c.base().clear_slot(s->slot());
    c.test().clear_slot(s->slot());
  }
  const std::int64_t long_prompt = small ? 20 : 130;  // 130: three of the CPU's 64-token chunks
  std::vector<std::pair<std::vector<SequenceState*>, std::vector<std::int64_t>>> steps = {
      {{s1.get(), s2.get()}, {9, long_prompt}},
      {{s1.get(), s2.get()}, {1, 1}},
      {{s2.get(), s1.get()}, {1, 1}},
      {{s1.get(), s2.get()}, {5, 1}},
      {{s2.get()}, {1}},
  };
  const std::string name =
      fmt::format("gated_deltanet Hk {} Hv {} dk {} dv {}{}", key_heads, value_heads, dk, dv, bias ? " +bias" : "");
  int index = 0;
  for (const auto& [states, lengths] : steps) {
    const StepBatch batch = make_step(states, lengths, c.rng());
    const std::int64_t m = batch.rows();
    auto qkv = c.random(m, spec.conv_dim());
    auto z = c.random(m, spec.value_dim(), -2.0f, 2.0f);
    auto b = c.random(m, value_heads, -2.0f, 2.0f);
    auto a = c.random(m, value_heads, -2.0f, 2.0f);
    auto out = c.empty(m, spec.value_dim());
    c.base().gated_deltanet(spec, w_base.view(), batch, qkv.base, z.base, b.base, a.base, out.base);
    c.test().gated_deltanet(spec, w_test.view(), batch, qkv.test, z.test, b.test, a.test, out.test);
    c.compare(fmt::format("{} step {} ({} rows)", name, index++, m), out, kFp32Tolerance);
    for (std::size_t i = 0; i < states.size(); ++i) states[i]->advance(lengths[i]);
    c.end_step();
  }
}

// Batch invariance of the mixers on the backend under test: a sequence's attention and
// DeltaNet outputs computed alone, and again for a twin sequence with the same history and
// inputs inside a step with another sequence (placed first, so the twin's rows move), must be
// bitwise equal -- the kernels' per-row work may not depend on the batch (docs/cuda-backend.md).
struct HostStep {
  std::vector<SequenceState*> states;
  std::vector<std::int64_t> lengths;
  std::vector<std::vector<float>> inputs;  // per input tensor, rows of all sequences in order
};

void check_batch_invariance(Backend& b, Tally& tally, std::mt19937_64& rng, bool small) {
  auto report = [&](const std::string& what, const std::vector<float>& alone, const std::vector<float>& twin) {
    std::size_t differing = 0;
    for (std::size_t i = 0; i < alone.size(); ++i) differing += std::memcmp(&alone[i], &twin[i], sizeof(float)) != 0;
    std::printf("  %-58s %zu of %zu values differ  %s\n", what.c_str(), differing, alone.size(),
                differing ? "FAIL" : "ok");
    std::fflush(stdout);
    tally.record(differing == 0, "batch invariance " + what);
  };
  // Runs `op` on a step: writes the inputs (widths[i] columns each), returns out [rows, out_width].
  auto run = [&](const HostStep& h, const std::vector<std::int64_t>& widths, std::int64_t out_width,
                 const std::function<void(const StepBatch&, const std::vector<Tensor>&, Tensor)>& op) {
    const StepBatch batch = make_step(h.states, h.lengths, rng);
    std::vector<Tensor> tensors;
    for (std::size_t i = 0; i < widths.size(); ++i) {
      tensors.push_back(b.scratch(batch.rows(), widths[i]));
      b.write(tensors.back(), h.inputs[i].data());
    }
    Tensor out = b.scratch(batch.rows(), out_width);
    op(batch, tensors, out);
    std::vector<float> host(static_cast<std::size_t>(batch.rows() * out_width));
    b.read(out, host.data());
    for (std::size_t i = 0; i < h.states.size(); ++i) h.states[i]->advance(h.lengths[i]);
    b.end_step();
    return host;
  };
  // The phases: a prompt (two attention splits unless small), then two decode tokens.
  const std::vector<std::int64_t> own = {small ? 40 : 600, 1, 1}, others = {37, 1, 5};
  auto phases = [&](const std::string& name, MemoryPlan plan, const std::vector<std::int64_t>& widths,
                    std::int64_t out_width,
                    const std::function<void(const StepBatch&, const std::vector<Tensor>&, Tensor)>& op) {
    HybridMemory memory(plan);
    b.allocate_memory(plan);
    auto alone = memory.try_admit(700), twin = memory.try_admit(700), other = memory.try_admit(700);
    for (auto* s : {alone.get(), twin.get(), other.get()})
      if (s->slot() >= 0) b.clear_slot(s->slot());
    for (std::size_t phase = 0; phase < own.size(); ++phase) {
      HostStep first{{alone.get()}, {own[phase]}, {}},
          second{{other.get(), twin.get()}, {others[phase], own[phase]}, {}};
      for (const std::int64_t width : widths) {
        const auto mine = random_values(static_cast<std::size_t>(own[phase] * width), rng, -2.0f, 2.0f);
        auto theirs = random_values(static_cast<std::size_t>(others[phase] * width), rng, -2.0f, 2.0f);
        first.inputs.push_back(mine);
        theirs.insert(theirs.end(), mine.begin(), mine.end());
        second.inputs.push_back(theirs);
      }
      const auto out_alone = run(first, widths, out_width, op);
      const auto out_batch = run(second, widths, out_width, op);
      const std::vector<float> twin_rows(out_batch.end() - static_cast<std::ptrdiff_t>(out_alone.size()),
                                         out_batch.end());
      report(fmt::format("{} phase {} ({} rows) alone == in a batch", name, phase, own[phase]), out_alone, twin_rows);
    }
  };

  {  // Qwen3.5 gated attention with q/k norms
    AttentionSpec spec;
    spec.heads = 4, spec.kv_heads = 2, spec.head_dim = 64, spec.rotary_dim = 16, spec.gated = true;
    spec.inv_freq = rope_inverse_frequencies(1e7, 16, "bfloat16");
    const auto qn = b.vector(random_values(64, rng, 0.5f, 1.5f)), kn = b.vector(random_values(64, rng, 0.5f, 1.5f));
    const AttentionWeights weights{qn.get(), kn.get()};
    MemoryShape shape;
    shape.kv_layers = 1, shape.kv_heads = 2, shape.head_dim = 64;
    phases("attention", plan_memory(shape, std::uint64_t{1} << 26, 3), {4 * 128, 2 * 64, 2 * 64}, 4 * 64,
           [&](const StepBatch& batch, const std::vector<Tensor>& t, Tensor out) {
             b.attention(spec, weights, batch, t[0], t[1], t[2], out);
           });
  }
  {  // Gated DeltaNet
    DeltaNetSpec spec;
    spec.key_heads = 2, spec.value_heads = 4, spec.key_head_dim = 32, spec.value_head_dim = 32, spec.conv_kernel = 4;
    const auto conv = b.vector(random_values(static_cast<std::size_t>(spec.conv_dim()) * 4, rng, -0.5f, 0.5f));
    const auto A_log = b.vector(random_values(4, rng)), dt_bias = b.vector(random_values(4, rng));
    const auto norm = b.vector(random_values(32, rng, 0.5f, 1.5f));
    const DeltaNetWeights weights{conv.get(), nullptr, A_log.get(), dt_bias.get(), norm.get()};
    MemoryShape shape;
    shape.state_layers = 1;
    shape.conv_floats = 3 * spec.conv_dim();
    shape.recurrent_floats = 4 * 32 * 32;
    phases("gated_deltanet", plan_memory(shape, std::uint64_t{1} << 24, 3), {spec.conv_dim(), 128, 4, 4}, 128,
           [&](const StepBatch& batch, const std::vector<Tensor>& t, Tensor out) {
             b.gated_deltanet(spec, weights, batch, t[0], t[1], t[2], t[3], out);
           });
  }
}

// The CPU backend with one planted bug: attention's last head is scaled by 1.05, as a
// wrong softmax normaliser would. `--backend cpu-faulty` checks that this program fails,
// names attention as the first diverging op and the first attention layer of each fixture.
class FaultyBackend final : public Backend {
 public:
  explicit FaultyBackend(LinearKernels linears) : inner_(2, linears) {}
  std::string name() const override { return inner_.name() + " with a planted attention fault"; }
  bool batch_invariant() const override { return inner_.batch_invariant(); }
  std::unique_ptr<LinearWeight> linear(const LinearSource& source) override { return inner_.linear(source); }
  std::unique_ptr<VectorWeight> vector(std::vector<float> values) override { return inner_.vector(std::move(values)); }
  std::unique_ptr<TableWeight> table(const DenseSource& source) override { return inner_.table(source); }
  std::unique_ptr<LinearWeight> linear_from_table(const TableWeight& t) override { return inner_.linear_from_table(t); }
  void allocate_memory(const MemoryPlan& plan) override { inner_.allocate_memory(plan); }
  void clear_slot(int slot) override { inner_.clear_slot(slot); }
  Tensor scratch(std::int64_t rows, std::int64_t cols) override { return inner_.scratch(rows, cols); }
  void end_step() override { inner_.end_step(); }
  void embed(const TableWeight& t, std::span<const TokenId> tokens, Tensor out) override {
    inner_.embed(t, tokens, out);
  }
  void rms_norm(Tensor x, const VectorWeight& w, float eps, Tensor out) override { inner_.rms_norm(x, w, eps, out); }
  void add_rms_norm(Tensor r, Tensor a, const VectorWeight& w, float eps, Tensor n) override {
    inner_.add_rms_norm(r, a, w, eps, n);
  }
  void add(Tensor r, Tensor a) override { inner_.add(r, a); }
  void matmul(const LinearWeight& w, Tensor x, Tensor y) override { inner_.matmul(w, x, y); }
  void swiglu(Tensor g, Tensor u, Tensor out) override { inner_.swiglu(g, u, out); }
  void attention(const AttentionSpec& spec, const AttentionWeights& weights, const StepBatch& batch, Tensor q, Tensor k,
                 Tensor v, Tensor out) override {
    inner_.attention(spec, weights, batch, q, k, v, out);
    std::vector<float> values(static_cast<std::size_t>(out.rows * out.cols));
    inner_.read(out, values.data());
    for (std::int64_t r = 0; r < out.rows; ++r)
      for (std::int64_t d = out.cols - spec.head_dim; d < out.cols; ++d)
        values[static_cast<std::size_t>(r * out.cols + d)] *= 1.05f;
    inner_.write(out, values.data());
  }
  void gated_deltanet(const DeltaNetSpec& spec, const DeltaNetWeights& w, const StepBatch& batch, Tensor qkv, Tensor z,
                      Tensor b, Tensor a, Tensor out) override {
    inner_.gated_deltanet(spec, w, batch, qkv, z, b, a, out);
  }
  void gather_rows(Tensor x, std::span<const std::int64_t> rows, Tensor out) override {
    inner_.gather_rows(x, rows, out);
  }
  void read(Tensor x, float* host) override { inner_.read(x, host); }
  void write(Tensor x, const float* host) override { inner_.write(x, host); }

 private:
  CpuBackend inner_;
};

std::unique_ptr<Backend> backend_under_test(const Options& options, LinearKernels linears) {
  if (options.backend == "cuda") return make_cuda_backend({.linears = linears});
  if (options.backend == "cpu-faulty") return std::make_unique<FaultyBackend>(linears);
  return std::make_unique<CpuBackend>(2, linears);
}

void run_ops(const Options& options, Tally& tally, bool small) {
  CpuBackend base(1, LinearKernels::reference);
  const auto test = backend_under_test(options, LinearKernels::fast);
  std::printf("ops: %s against %s (reference kernels)\n", test->name().c_str(), base.name().c_str());
  OpChecker c(base, *test, tally, options.seed);
  check_elementwise_ops(c);
  check_linears(c, small);
  {  // the reference mode of the backend under test: GPTQ dequantized, dense kernels
    const auto dequant = backend_under_test(options, LinearKernels::reference);
    OpChecker d(base, *dequant, tally, options.seed + 1);
    std::printf("ops: %s\n", dequant->name().c_str());
    check_linears(d, true);
  }
  const std::vector<AttentionCase> cases = {
      {"qwen2 (4/2 heads of 64)", 4, 2, 64, 64, false, false, 0},
      {"qwen3 (q/k norm)", 4, 2, 64, 64, true, false, 0},
      {"qwen3.5 (gated, rotary 16 of 64)", 4, 2, 64, 16, true, true, 0},
      {"sliding window 300", 4, 2, 64, 64, false, false, 300},
      {"GQA 8/1 of 128", 8, 1, 128, 128, true, false, 0},
      {"27B shape (2/1 heads of 256, gated, rotary 64)", 2, 1, 256, 64, true, true, 0},
      {"head_dim 80", 2, 2, 80, 80, false, false, 0},
  };
  for (const auto& a : cases) {
    if (small && a.head_dim != 64) continue;
    check_attention(c, a, small);
  }
  check_deltanet(c, 2, 4, 32, 32, false, small);
  if (!small) {
    check_deltanet(c, 2, 4, 32, 32, true, small);
    check_deltanet(c, 1, 3, 128, 128, false, small);  // the 27B's head dims and value/key ratio
  }
  std::printf("ops: batch invariance of %s\n", test->name().c_str());
  check_batch_invariance(*test, tally, c.rng(), small);
}

// ---- fixtures -------------------------------------------------------------------------------

struct Fixture {
  std::string name;
  fs::path dir;
  std::vector<TokenId> input_ids, argmax_per_position, greedy_new_tokens;
  std::vector<float> logits, hidden_states;  // [T, vocab], [layers + 1, T, hidden]
};

Fixture load_fixture(const fs::path& dir) {
  Fixture f;
  f.name = dir.filename().string();
  f.dir = dir;
  std::ifstream in(dir / "reference.json");
  const nlohmann::json reference = nlohmann::json::parse(in);
  f.input_ids = reference.at("input_ids").get<std::vector<TokenId>>();
  f.argmax_per_position = reference.at("argmax_per_position").get<std::vector<TokenId>>();
  f.greedy_new_tokens = reference.at("greedy_new_tokens").get<std::vector<TokenId>>();
  const SafetensorsFile file(dir / "reference_logits.safetensors");
  f.logits = to_float(file.tensor("logits"));
  f.hidden_states = to_float(file.tensor("hidden_states"));
  return f;
}

std::vector<TokenId> argmax_rows(const std::vector<float>& logits, std::int64_t vocab) {
  std::vector<TokenId> out;
  for (std::size_t r = 0; r < logits.size() / static_cast<std::size_t>(vocab); ++r) {
    const auto row = logits.begin() + static_cast<std::ptrdiff_t>(r * vocab);
    out.push_back(static_cast<TokenId>(std::max_element(row, row + vocab) - row));
  }
  return out;
}

// Greedy decoding of all prompts in one batch; also the logits rows of prompt 0 at every step.
std::vector<std::vector<TokenId>> greedy(Model& model, const std::vector<std::vector<TokenId>>& prompts, int count,
                                         std::vector<float>* first_logits) {
  std::vector<std::unique_ptr<SequenceState>> states;
  std::vector<Model::Step> steps;
  for (const auto& p : prompts) {
    states.push_back(model.open_sequence(static_cast<std::int64_t>(p.size()) + count));
    steps.push_back({states.back().get(), p, false});
  }
  const std::int64_t vocab = model.config().vocab_size;
  std::vector<std::vector<TokenId>> out(prompts.size());
  for (int step = 0; step < count; ++step) {
    const std::vector<float> logits = model.forward(steps);
    if (first_logits) first_logits->insert(first_logits->end(), logits.begin(), logits.begin() + vocab);
    const std::vector<TokenId> next = argmax_rows(logits, vocab);
    for (std::size_t i = 0; i < prompts.size(); ++i) out[i].push_back(next[i]);
    for (std::size_t i = 0; i < prompts.size(); ++i) steps[i].tokens = std::span<const TokenId>(&out[i].back(), 1);
  }
  return out;
}

constexpr double kLayerTolerance = 1e-2;   // per-layer hidden states against the CPU path
constexpr double kLogitsTolerance = 1e-2;  // the bound against transformers

struct FixtureRow {
  std::string fixture, mode, status;
  double worst_layer = 0, logits_rel = 0, batch_max_diff = 0;
  int argmax_mismatches = 0;
  bool greedy_ok = false, batch_ok = false;
  std::string divergence;
};

FixtureRow check_fixture(const Options& options, const Fixture& f, LinearKernels linears, Tally& tally,
                         bool logits_only) {
  FixtureRow row;
  row.fixture = f.name;
  row.mode = linears == LinearKernels::fast ? "fast" : "dequant";
  LoadOptions base_options;
  base_options.threads = 2;
  base_options.linears = LinearKernels::reference;
  base_options.kv_cache_bytes = std::uint64_t{64} << 20;
  base_options.max_sequences = 4;
  LoadOptions test_options = base_options;
  const auto base = Model::load(f.dir, base_options);
  const auto test = Model::load(f.dir, test_options, backend_under_test(options, linears));
  const std::int64_t vocab = test->config().vocab_size;

  const std::vector<float> logits = test->logits_for(f.input_ids);
  row.logits_rel = difference(logits, f.logits).relative_l2;
  const std::vector<TokenId> argmax = argmax_rows(logits, vocab);
  for (std::size_t i = 0; i < argmax.size(); ++i) row.argmax_mismatches += argmax[i] != f.argmax_per_position[i];
  bool ok = row.logits_rel <= kLogitsTolerance && row.argmax_mismatches == 0;

  if (!logits_only) {
    const ForwardTrace tb = base->hidden_states_for(f.input_ids), tt = test->hidden_states_for(f.input_ids);
    const std::size_t entry = static_cast<std::size_t>(tb.rows * tb.width);
    const std::size_t entries = tb.hidden_states.size() / entry;
    for (std::size_t e = 0; e < entries; ++e) {
      const std::vector<float> b(tb.hidden_states.begin() + e * entry, tb.hidden_states.begin() + (e + 1) * entry);
      const std::vector<float> t(tt.hidden_states.begin() + e * entry, tt.hidden_states.begin() + (e + 1) * entry);
      const double rel = difference(t, b).relative_l2;
      row.worst_layer = std::max(row.worst_layer, rel);
      if (rel > kLayerTolerance && row.divergence.empty()) {
        // Entry 0 is the embedding; entry e > 0 is layer e - 1's output. Run that layer
        // alone on the CPU's own input: a small error there means the layer is fine and
        // the error came from upstream.
        if (e == 0) {
          row.divergence = fmt::format("embedding (rel L2 {:.2e})", rel);
        } else {
          const int layer = static_cast<int>(e) - 1;
          const std::vector<float> input(tb.hidden_states.begin() + (e - 1) * entry,
                                         tb.hidden_states.begin() + e * entry);
          const double alone = difference(test->layer_for(layer, input), base->layer_for(layer, input)).relative_l2;
          row.divergence = fmt::format("layer {} ({}): rel L2 {:.2e}; alone on the CPU's input {:.2e}{}", layer,
                                       std::string(layer_kind_name(test->config().layer_types[layer])), rel, alone,
                                       e + 1 == entries ? " (last entry includes the final norm)" : "");
        }
      }
    }
    ok = ok && row.divergence.empty();

    std::vector<float> alone_logits, batch_logits;
    const auto alone = greedy(*test, {f.input_ids}, 16, &alone_logits);
    row.greedy_ok = alone[0] == f.greedy_new_tokens;
    std::vector<TokenId> half(f.input_ids.begin(),
                              f.input_ids.begin() + static_cast<std::ptrdiff_t>(f.input_ids.size() / 2 + 1));
    std::vector<TokenId> reversed(f.input_ids.rbegin(), f.input_ids.rend());
    reversed.push_back(f.input_ids.front());
    const auto batched = greedy(*test, {f.input_ids, half, reversed}, 16, &batch_logits);
    row.batch_ok = batched[0] == alone[0];
    row.batch_max_diff = difference(batch_logits, alone_logits).max_abs;
    ok = ok && row.greedy_ok && row.batch_ok;
  } else {
    row.greedy_ok = row.batch_ok = true;
    row.divergence = "(logits only)";
  }
  row.status = ok ? "PASS" : "FAIL";
  tally.record(ok, "fixture " + f.name + " " + row.mode);
  std::printf(
      "  %-36s %-7s logits rel L2 %.2e, argmax mismatches %d, worst layer %.2e, greedy %s, batch %s "
      "(max |logit diff| alone vs batch %.2e)%s%s  %s\n",
      f.name.c_str(), row.mode.c_str(), row.logits_rel, row.argmax_mismatches, row.worst_layer,
      row.greedy_ok ? "ok" : "DIFFERENT", row.batch_ok ? "ok" : "DIFFERENT", row.batch_max_diff,
      row.divergence.empty() ? "" : "; first divergence: ", row.divergence.c_str(), row.status.c_str());
  std::fflush(stdout);
  return row;
}

std::vector<FixtureRow> run_fixtures(const Options& options, Tally& tally, bool sanitize) {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(options.fixtures))
    if (fs::exists(entry.path() / "reference.json")) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  if (dirs.empty()) throw std::runtime_error("no fixtures under " + options.fixtures.string());
  std::vector<FixtureRow> rows;
  for (const auto& dir : dirs) {
    const Fixture f = load_fixture(dir);
    const bool gptq = fs::exists(dir / "quantize_config.json");
    if (sanitize && f.name != "qwen3_5-tiny-gptq-g64-actorder") continue;
    std::printf("fixture %s\n", f.name.c_str());
    std::fflush(stdout);
    try {
      rows.push_back(check_fixture(options, f, LinearKernels::fast, tally, sanitize));
      if (gptq && !sanitize) rows.push_back(check_fixture(options, f, LinearKernels::reference, tally, false));
    } catch (const std::exception& e) {
      std::printf("  %s: exception: %s  FAIL\n", f.name.c_str(), e.what());
      tally.record(false, "fixture " + f.name + ": " + e.what());
      FixtureRow failed;
      failed.fixture = f.name;
      failed.mode = "-";
      failed.status = "FAIL(exception)";
      rows.push_back(failed);
    }
  }
  return rows;
}

void print_table(const std::vector<FixtureRow>& rows) {
  if (rows.empty()) return;
  std::printf("\n%-36s %-7s %-10s %-9s %-7s %-10s %-7s %-9s %s\n", "fixture", "mode", "logits", "argmax", "greedy",
              "worst-lay", "batch", "batch-dif", "status");
  for (const auto& r : rows)
    std::printf("%-36s %-7s %-10.2e %-9d %-7s %-10.2e %-7s %-9.1e %s\n", r.fixture.c_str(), r.mode.c_str(),
                r.logits_rel, r.argmax_mismatches, r.greedy_ok ? "ok" : "DIFF", r.worst_layer,
                r.batch_ok ? "ok" : "DIFF", r.batch_max_diff, r.status.c_str());
}

fs::path default_fixtures() {
  if (const char* env = std::getenv("QUANTEVAL_TEST_DATA"); env && *env) return fs::path(env) / "fixtures" / "models";
  return QUANTEVAL_FIXTURE_MODELS;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.fixtures = default_fixtures();
  const std::vector<std::string> all_groups = {"ops", "fixtures", "sanitize"};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--backend" && i + 1 < argc) {
      options.backend = argv[++i];
    } else if (arg == "--groups" && i + 1 < argc) {
      std::stringstream list(argv[++i]);
      for (std::string name; std::getline(list, name, ',');) options.groups.insert(name);
    } else if (arg == "--fixtures" && i + 1 < argc) {
      options.fixtures = argv[++i];
    } else if (arg == "--seed" && i + 1 < argc) {
      options.seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr,
                   "usage: test_cuda_backend [--backend cuda|cpu|cpu-faulty] [--groups ops,fixtures,sanitize] "
                   "[--fixtures DIR] [--seed N]\n");
      return 2;
    }
  }
  if (options.backend != "cuda" && options.backend != "cpu" && options.backend != "cpu-faulty") {
    std::fprintf(stderr, "test_cuda_backend: --backend is cuda, cpu or cpu-faulty\n");
    return 2;
  }
  for (const auto& g : options.groups)
    if (std::find(all_groups.begin(), all_groups.end(), g) == all_groups.end()) {
      std::fprintf(stderr, "test_cuda_backend: unknown group '%s' (ops, fixtures, sanitize)\n", g.c_str());
      return 2;
    }
  if (options.groups.empty()) options.groups = {"ops", "fixtures"};
  if (options.backend == "cuda" && !cuda_available()) {
    std::printf("test_cuda_backend: no GPU: %s -- not run\n", cuda_unavailable_reason().c_str());
    return 77;
  }
  Tally tally;
  std::vector<FixtureRow> rows;
  for (const auto& group : all_groups) {
    if (!options.groups.count(group)) continue;
    std::printf("== group %s (backend under test: %s, seed %llu)\n", group.c_str(), options.backend.c_str(),
                static_cast<unsigned long long>(options.seed));
    std::fflush(stdout);
    try {
      if (group == "ops") run_ops(options, tally, false);
      if (group == "fixtures") rows = run_fixtures(options, tally, false);
      if (group == "sanitize") {
        run_ops(options, tally, true);
        rows = run_fixtures(options, tally, true);
      }
    } catch (const std::exception& e) {
      std::printf("group %s: exception: %s\n", group.c_str(), e.what());
      tally.record(false, "group " + group + ": " + e.what());
    }
  }
  print_table(rows);
  std::printf("\ntest_cuda_backend: %d passed, %d failed%s%s\n", tally.passed, tally.failed,
              tally.first_failure.empty() ? "" : "; first failure: ", tally.first_failure.c_str());
  return tally.failed ? 1 : 0;
}
