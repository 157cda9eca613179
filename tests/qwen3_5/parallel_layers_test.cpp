// The pooled Gated DeltaNet and gated attention ops against their serial runs.
// Each (sequence, head) unit is computed by one thread in the serial order, so
// the results must be bit-identical (not merely close) for any pool size;
// several sequences of different lengths (one empty for the DeltaNet) make the
// units uneven, and decode steps after the prefill check that the carried
// states and K/V memory match too.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "runtime/kernels/cpu/attention.hpp"
#include "runtime/kernels/cpu/delta_rule.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/model/model.hpp"

namespace {

using namespace quanteval::runtime;

const std::vector<int> kLengths = {5, 0, 70, 1, 33};  // 70 spans several 16-token chunks
constexpr int kDecodeSteps = 3;
constexpr int kChunk = 16;

std::vector<float> random_values(size_t n, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> unit(-scale, scale);
  std::vector<float> values(n);
  for (auto& x : values) x = unit(rng);
  return values;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Everything one run produces: the outputs of the prefill and of each decode
// step, and the final per-sequence states (or K/V memory) flattened.
struct Trace {
  std::vector<std::vector<float>> outputs;
  std::vector<float> final_state;
};

void check_identical(const Trace& serial, const Trace& pooled) {
  REQUIRE(serial.outputs.size() == pooled.outputs.size());
  for (size_t i = 0; i < serial.outputs.size(); ++i) {
    CAPTURE(i);  // 0 = prefill, then the decode steps
    CHECK(bitwise_equal(serial.outputs[i], pooled.outputs[i]));
  }
  CHECK(bitwise_equal(serial.final_state, pooled.final_state));
}

bool any_nonzero(const std::vector<float>& values) {
  for (float v : values)
    if (v != 0.0f) return true;
  return false;
}

// --- Gated DeltaNet -----------------------------------------------------------------------

const DeltaNetSpec kDeltaNet{2, 4, 16, 8, 4, 1e-6f, 0};  // 2 value heads per key head

struct DeltaNetParameters {
  std::vector<float> conv_weight, conv_bias, A_log, dt_bias, norm;
  DeltaNetCpuWeights view() const {
    return {conv_weight.data(), conv_bias.data(), A_log.data(), dt_bias.data(), norm.data()};
  }
};

DeltaNetParameters deltanet_parameters(std::mt19937& rng) {
  const DeltaNetSpec& d = kDeltaNet;
  return {random_values(static_cast<size_t>(d.conv_dim()) * d.conv_kernel, rng, 0.5f),
          random_values(static_cast<size_t>(d.conv_dim()), rng, 0.1f),
          random_values(static_cast<size_t>(d.value_heads), rng, 1.0f),
          random_values(static_cast<size_t>(d.value_heads), rng, 1.0f),
          random_values(static_cast<size_t>(d.value_head_dim), rng, 1.0f)};
}

Trace run_deltanet(const DeltaNetParameters& parameters, ThreadPool* pool, bool chunked, unsigned seed) {
  const DeltaNetSpec& d = kDeltaNet;
  std::mt19937 rng(seed);
  const size_t conv_size = static_cast<size_t>(d.conv_kernel - 1) * d.conv_dim();
  const size_t state_size = static_cast<size_t>(d.value_heads) * d.key_head_dim * d.value_head_dim;
  std::vector<std::vector<float>> conv(kLengths.size(), std::vector<float>(conv_size, 0.0f));
  std::vector<std::vector<float>> state(kLengths.size(), std::vector<float>(state_size, 0.0f));
  auto step = [&](const std::vector<int>& lengths, int chunk) {
    std::vector<DeltaNetRun> runs;
    std::int64_t first = 0;
    for (size_t s = 0; s < lengths.size(); ++s) {
      runs.push_back({first, lengths[s], conv[s].data(), state[s].data()});
      first += lengths[s];
    }
    const auto rows = static_cast<size_t>(first);
    const auto qkv = random_values(rows * d.conv_dim(), rng, 1.0f), z = random_values(rows * d.value_dim(), rng, 1.0f);
    const auto b = random_values(rows * d.value_heads, rng, 1.0f), a = random_values(rows * d.value_heads, rng, 1.0f);
    std::vector<float> out(rows * d.value_dim());
    gated_deltanet_cpu(d, parameters.view(), runs, qkv.data(), z.data(), b.data(), a.data(), out.data(), chunk, pool);
    return out;
  };
  Trace trace;
  trace.outputs.push_back(step(kLengths, chunked ? kChunk : 0));
  for (int i = 0; i < kDecodeSteps; ++i) trace.outputs.push_back(step(std::vector<int>(kLengths.size(), 1), 0));
  for (size_t s = 0; s < kLengths.size(); ++s) {
    trace.final_state.insert(trace.final_state.end(), conv[s].begin(), conv[s].end());
    trace.final_state.insert(trace.final_state.end(), state[s].begin(), state[s].end());
  }
  return trace;
}

// --- Gated attention ----------------------------------------------------------------------

// Runs the attention op over paged memory: prefill of the sequences, then decode steps.
Trace run_attention(ThreadPool& pool, unsigned seed) {
  const std::vector<int> lengths = {5, 70, 1, 33};  // a step holds no empty sequence
  std::mt19937 rng(seed);
  AttentionSpec spec;
  spec.heads = 4;
  spec.kv_heads = 2;
  spec.head_dim = 16;
  spec.rotary_dim = 8;  // partial RoPE, as Qwen3.5
  spec.gated = true;
  spec.inv_freq = rope_inverse_frequencies(10000.0, spec.rotary_dim, "float32");
  std::mt19937 weight_rng(99u);
  const auto q_norm = random_values(16, weight_rng, 0.5f), k_norm = random_values(16, weight_rng, 0.5f);

  MemoryShape shape;
  shape.block_tokens = 16;
  shape.kv_layers = 1;
  shape.kv_heads = spec.kv_heads;
  shape.head_dim = spec.head_dim;
  const MemoryPlan plan = plan_memory(shape, 64 * shape.kv_bytes_per_block(), 8);
  HybridMemory memory(plan);
  CpuMemory storage;
  storage.allocate(plan);
  std::vector<std::unique_ptr<SequenceState>> states;
  for (int n : lengths) states.push_back(memory.try_admit(n + kDecodeSteps));

  auto step = [&](const std::vector<int>& rows) {
    StepBatch batch;
    for (size_t s = 0; s < rows.size(); ++s) {
      batch.sequences.push_back({states[s].get(), batch.rows(), rows[s], states[s]->length()});
      for (int t = 0; t < rows[s]; ++t) {
        batch.tokens.push_back(0);
        batch.positions.push_back(states[s]->length() + t);
        batch.row_sequence.push_back(static_cast<int>(s));
      }
    }
    const auto m = static_cast<size_t>(batch.rows());
    const auto q = random_values(m * spec.heads * 2 * spec.head_dim, rng, 1.0f);
    auto k = random_values(m * spec.kv_heads * spec.head_dim, rng, 1.0f);
    const auto v = random_values(m * spec.kv_heads * spec.head_dim, rng, 1.0f);
    std::vector<float> out(m * spec.heads * spec.head_dim);
    attention_cpu(spec, q_norm.data(), k_norm.data(), batch, q.data(), k.data(), v.data(), out.data(), storage, pool);
    for (size_t s = 0; s < rows.size(); ++s) states[s]->advance(rows[s]);
    return out;
  };
  Trace trace;
  trace.outputs.push_back(step(lengths));
  for (int i = 0; i < kDecodeSteps; ++i) trace.outputs.push_back(step(std::vector<int>(lengths.size(), 1)));
  // The K/V of every cached position, in position order.
  for (const auto& state : states)
    for (std::int64_t p = 0; p < state->length(); ++p)
      for (int h = 0; h < spec.kv_heads; ++h) {
        const std::int32_t block = state->blocks()[static_cast<size_t>(p / 16)];
        const float* key = storage.key(0, block, static_cast<int>(p % 16), h);
        const float* value = storage.value(0, block, static_cast<int>(p % 16), h);
        trace.final_state.insert(trace.final_state.end(), key, key + spec.head_dim);
        trace.final_state.insert(trace.final_state.end(), value, value + spec.head_dim);
      }
  return trace;
}

}  // namespace

TEST_CASE("gated deltanet: pooled prefill and decode are bit-identical to serial") {
  std::mt19937 rng(2024u);
  const DeltaNetParameters parameters = deltanet_parameters(rng);
  for (bool chunked : {true, false}) {
    CAPTURE(chunked);
    const Trace serial = run_deltanet(parameters, nullptr, chunked, 7u);
    // The serial run is not trivially constant: outputs and state are non-zero.
    CHECK(any_nonzero(serial.outputs[0]));
    CHECK(any_nonzero(serial.final_state));
    for (int threads : {1, 2, 3}) {
      CAPTURE(threads);
      ThreadPool pool(threads);
      check_identical(serial, run_deltanet(parameters, &pool, chunked, 7u));
    }
  }
}

TEST_CASE("gated attention: pooled prefill and decode are bit-identical to serial") {
  ThreadPool one(1);
  const Trace serial = run_attention(one, 11u);
  CHECK(any_nonzero(serial.outputs[0]));
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    ThreadPool pool(threads);
    check_identical(serial, run_attention(pool, 11u));
  }
}
