// The pooled Gated DeltaNet and gated attention against their serial paths. Each
// (sequence, head) unit is computed by one thread in the serial order, so the
// results must be bit-identical (not merely close) for any pool size; several
// sequences of different lengths (one empty) make the units uneven, and decode
// steps after the prefill check that the carried states and caches match too.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/model/qwen3_5/gated_deltanet.hpp"
#include "runtime/model/qwen3_5/layers.hpp"

namespace {

using namespace quanteval::runtime;
using namespace quanteval::runtime::qwen3_5;

const std::vector<int> kLengths = {5, 0, 70, 1, 33};  // 70 spans several 16-token chunks
constexpr int kDecodeSteps = 3;
constexpr int kChunk = 16;

std::vector<float> random_values(size_t n, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> unit(-scale, scale);
  std::vector<float> values(n);
  for (auto& x : values) x = unit(rng);
  return values;
}

// A dense projection with random weights (plain loops, no pool of its own).
LinearFn random_linear(int in_features, int out_features, std::mt19937& rng) {
  auto weight = std::make_shared<std::vector<float>>(
      random_values(static_cast<size_t>(in_features) * out_features, rng, 1.0f / static_cast<float>(in_features)));
  return [weight, in_features, out_features](const float* x, int rows, float* y) {
    for (int r = 0; r < rows; ++r)
      for (int n = 0; n < out_features; ++n) {
        float acc = 0.0f;
        for (int k = 0; k < in_features; ++k)
          acc += x[static_cast<size_t>(r) * in_features + k] * (*weight)[static_cast<size_t>(n) * in_features + k];
        y[static_cast<size_t>(r) * out_features + n] = acc;
      }
  };
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

int total(const std::vector<int>& lengths) {
  int sum = 0;
  for (int n : lengths) sum += n;
  return sum;
}

GatedDeltaNet make_deltanet(std::mt19937& rng) {
  DeltaNetWeights w;
  w.dims = DeltaNetDims{32, 2, 4, 16, 8, 4};  // 2 value heads per key head
  const DeltaNetDims& d = w.dims;
  w.in_proj_qkv = random_linear(d.hidden_size, d.conv_dim(), rng);
  w.in_proj_z = random_linear(d.hidden_size, d.value_dim(), rng);
  w.in_proj_b = random_linear(d.hidden_size, d.num_value_heads, rng);
  w.in_proj_a = random_linear(d.hidden_size, d.num_value_heads, rng);
  w.out_proj = random_linear(d.value_dim(), d.hidden_size, rng);
  w.conv_weight = random_values(static_cast<size_t>(d.conv_dim()) * d.conv_kernel, rng, 0.5f);
  w.conv_bias = random_values(static_cast<size_t>(d.conv_dim()), rng, 0.1f);
  w.A_log = random_values(static_cast<size_t>(d.num_value_heads), rng, 1.0f);
  w.dt_bias = random_values(static_cast<size_t>(d.num_value_heads), rng, 1.0f);
  w.norm_weight = random_values(static_cast<size_t>(d.value_head_dim), rng, 1.0f);
  return GatedDeltaNet(std::move(w));
}

GatedAttention make_attention(std::mt19937& rng) {
  GatedAttentionWeights w;
  w.dims = AttentionDims{32, 4, 2, 16, 8, 10000.0, false};
  const AttentionDims& d = w.dims;
  w.q_proj = random_linear(d.hidden_size, d.num_heads * 2 * d.head_dim, rng);
  w.k_proj = random_linear(d.hidden_size, d.num_kv_heads * d.head_dim, rng);
  w.v_proj = random_linear(d.hidden_size, d.num_kv_heads * d.head_dim, rng);
  w.o_proj = random_linear(d.num_heads * d.head_dim, d.hidden_size, rng);
  w.q_norm = random_values(static_cast<size_t>(d.head_dim), rng, 0.5f);
  w.k_norm = random_values(static_cast<size_t>(d.head_dim), rng, 0.5f);
  return GatedAttention(std::move(w));
}

// Everything one run produces: the outputs of the prefill and of each decode step,
// and the final per-sequence states flattened.
struct Trace {
  std::vector<std::vector<float>> outputs;
  std::vector<float> final_state;
};

Trace run_deltanet(const GatedDeltaNet& net, ThreadPool* pool, bool chunked, unsigned seed) {
  std::mt19937 rng(seed);
  const int hidden = net.dims().hidden_size;
  std::vector<DeltaNetState> states(kLengths.size(), DeltaNetState::zeros(net.dims()));
  std::vector<DeltaNetState*> pointers;
  for (auto& s : states) pointers.push_back(&s);
  Trace trace;
  const std::vector<float> x = random_values(static_cast<size_t>(total(kLengths)) * hidden, rng, 1.0f);
  std::vector<float> y(x.size());
  if (chunked) net.prefill(x.data(), kLengths, pointers, y.data(), kChunk, pool);
  else net.forward_recurrent(x.data(), kLengths, pointers, y.data(), pool);
  trace.outputs.push_back(y);
  for (int step = 0; step < kDecodeSteps; ++step) {
    const std::vector<float> xs = random_values(kLengths.size() * static_cast<size_t>(hidden), rng, 1.0f);
    std::vector<float> ys(xs.size());
    net.decode_step(xs.data(), pointers, ys.data(), pool);
    trace.outputs.push_back(ys);
  }
  for (const auto& s : states) {
    trace.final_state.insert(trace.final_state.end(), s.conv.begin(), s.conv.end());
    trace.final_state.insert(trace.final_state.end(), s.recurrent.begin(), s.recurrent.end());
    trace.final_state.push_back(static_cast<float>(s.tokens_seen));
  }
  return trace;
}

Trace run_attention(const GatedAttention& attention, ThreadPool* pool, unsigned seed) {
  std::mt19937 rng(seed);
  const int hidden = attention.dims().hidden_size;
  std::vector<AttentionKvCache> caches(kLengths.size());
  std::vector<AttentionKvCache*> pointers;
  for (auto& c : caches) pointers.push_back(&c);
  Trace trace;
  const std::vector<float> x = random_values(static_cast<size_t>(total(kLengths)) * hidden, rng, 1.0f);
  std::vector<float> y(x.size());
  attention.forward(x.data(), kLengths, pointers, y.data(), pool);
  trace.outputs.push_back(y);
  for (int step = 0; step < kDecodeSteps; ++step) {
    const std::vector<float> xs = random_values(kLengths.size() * static_cast<size_t>(hidden), rng, 1.0f);
    std::vector<float> ys(xs.size());
    attention.decode_step(xs.data(), pointers, ys.data(), pool);
    trace.outputs.push_back(ys);
  }
  for (const auto& c : caches) {
    trace.final_state.insert(trace.final_state.end(), c.keys.begin(), c.keys.end());
    trace.final_state.insert(trace.final_state.end(), c.values.begin(), c.values.end());
    trace.final_state.push_back(static_cast<float>(c.length));
  }
  return trace;
}

void check_identical(const Trace& serial, const Trace& pooled) {
  REQUIRE(serial.outputs.size() == pooled.outputs.size());
  for (size_t i = 0; i < serial.outputs.size(); ++i) {
    CAPTURE(i);  // 0 = prefill, then the decode steps
    CHECK(bitwise_equal(serial.outputs[i], pooled.outputs[i]));
  }
  CHECK(bitwise_equal(serial.final_state, pooled.final_state));
}

}  // namespace

TEST_CASE("gated deltanet: pooled prefill and decode are bit-identical to serial") {
  std::mt19937 rng(2024u);
  const GatedDeltaNet net = make_deltanet(rng);
  for (bool chunked : {true, false}) {
    CAPTURE(chunked);
    const Trace serial = run_deltanet(net, nullptr, chunked, 7u);
    // The serial run is not trivially constant: outputs and state are non-zero.
    bool any_nonzero = false;
    for (float v : serial.outputs[0]) any_nonzero = any_nonzero || v != 0.0f;
    CHECK(any_nonzero);
    for (int threads : {1, 2, 3}) {
      CAPTURE(threads);
      ThreadPool pool(threads);
      check_identical(serial, run_deltanet(net, &pool, chunked, 7u));
    }
  }
}

TEST_CASE("gated attention: pooled prefill and decode are bit-identical to serial") {
  std::mt19937 rng(4048u);
  const GatedAttention attention = make_attention(rng);
  const Trace serial = run_attention(attention, nullptr, 11u);
  bool any_nonzero = false;
  for (float v : serial.outputs[0]) any_nonzero = any_nonzero || v != 0.0f;
  CHECK(any_nonzero);
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    ThreadPool pool(threads);
    check_identical(serial, run_attention(attention, &pool, 11u));
  }
}
