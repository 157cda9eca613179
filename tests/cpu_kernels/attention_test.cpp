// The CPU attention op against a plain double-precision causal softmax attention, over
// odd head sizes and uneven sequences, and batch invariance: a sequence's outputs are
// bit-identical whether it runs alone or in a batch with others (prefill and decode), and
// the AVX2 / AVX-512 inner loops against the portable ones, bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "runtime/kernels/cpu/attention.hpp"
#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/model/math.hpp"
#include "runtime/model/model.hpp"
#include "tests/cpu_kernels/test_helpers.hpp"

namespace {

using namespace quanteval::runtime;

struct Rows {
  std::vector<float> q, k, v;  // [rows, heads * head_dim] and [rows, kv_heads * head_dim]
};

// One sequence's rows for every step (prefill of `prompt` rows, then single-row steps).
struct Script {
  std::vector<Rows> steps;
};

Rows random_rows(std::mt19937_64& rng, int rows, const AttentionSpec& spec) {
  Rows out;
  out.q = quanteval::test::random_floats(rng, static_cast<size_t>(rows) * spec.heads * spec.head_dim);
  out.k = quanteval::test::random_floats(rng, static_cast<size_t>(rows) * spec.kv_heads * spec.head_dim);
  out.v = quanteval::test::random_floats(rng, static_cast<size_t>(rows) * spec.kv_heads * spec.head_dim);
  return out;
}

// Runs the scripts of `which` sequences together, step by step, on fresh memory;
// returns per sequence the outputs of each step ([rows, heads * head_dim] each). With
// `fragmented`, the memory first admits a 2-block and a 1-block sequence and frees the
// first, so the sequences' blocks are not handed out in one ascending run (checked).
std::vector<std::vector<std::vector<float>>> run(const AttentionSpec& spec, const std::vector<Script>& scripts,
                                                 const std::vector<int>& which, ThreadPool& pool,
                                                 bool fragmented = false) {
  MemoryShape shape;
  shape.block_tokens = 16;
  shape.kv_layers = 1;
  shape.kv_heads = spec.kv_heads;
  shape.head_dim = spec.head_dim;
  const MemoryPlan plan = plan_memory(shape, 64 * shape.kv_bytes_per_block(), 8);
  HybridMemory memory(plan);
  CpuMemory storage;
  storage.allocate(plan);
  std::unique_ptr<SequenceState> keeper;
  if (fragmented) {
    auto hole = memory.try_admit(2 * shape.block_tokens);
    keeper = memory.try_admit(shape.block_tokens);
  }
  std::vector<std::unique_ptr<SequenceState>> states;
  for (int s : which) {
    int total = 0;
    for (const Rows& r : scripts[s].steps) total += static_cast<int>(r.v.size() / (spec.kv_heads * spec.head_dim));
    states.push_back(memory.try_admit(total));
    REQUIRE(states.back());
    if (fragmented) {
      const auto& blocks = states.back()->blocks();
      bool ascending_run = true;
      for (size_t b = 1; b < blocks.size(); ++b) ascending_run = ascending_run && blocks[b] == blocks[b - 1] + 1;
      REQUIRE_FALSE(ascending_run);
    }
  }
  std::vector<std::vector<std::vector<float>>> outputs(which.size());
  const int q_width = spec.heads * spec.head_dim, kv_width = spec.kv_heads * spec.head_dim;
  for (size_t step = 0; step < scripts[which[0]].steps.size(); ++step) {
    StepBatch batch;
    std::vector<float> q, k, v;
    std::vector<int> rows;
    for (size_t i = 0; i < which.size(); ++i) {
      const Rows& r = scripts[which[i]].steps[step];
      const int n = static_cast<int>(r.v.size() / kv_width);
      rows.push_back(n);
      batch.sequences.push_back({states[i].get(), batch.rows(), n, states[i]->length()});
      for (int t = 0; t < n; ++t) {
        batch.tokens.push_back(0);
        batch.positions.push_back(states[i]->length() + t);
        batch.row_sequence.push_back(static_cast<int>(i));
      }
      q.insert(q.end(), r.q.begin(), r.q.end());
      k.insert(k.end(), r.k.begin(), r.k.end());
      v.insert(v.end(), r.v.begin(), r.v.end());
    }
    std::vector<float> out(static_cast<size_t>(batch.rows()) * q_width, NAN);
    attention_cpu(spec, nullptr, nullptr, batch, q.data(), k.data(), v.data(), out.data(), storage, pool);
    size_t row = 0;
    for (size_t i = 0; i < which.size(); ++i) {
      outputs[i].emplace_back(out.begin() + static_cast<std::ptrdiff_t>(row * q_width),
                              out.begin() + static_cast<std::ptrdiff_t>((row + rows[i]) * q_width));
      row += static_cast<size_t>(rows[i]);
      states[i]->advance(rows[i]);
    }
  }
  return outputs;
}

}  // namespace

TEST_CASE("attention matches a double-precision causal softmax over odd head sizes") {
  std::mt19937_64 rng(quanteval::test::test_seed());
  ThreadPool pool(2);
  for (int head_dim : {1, 7, 8, 13, 64, 72}) {
    AttentionSpec spec;
    spec.heads = 6;
    spec.kv_heads = 2;
    spec.head_dim = head_dim;  // no rotary dims and no q/k norm: plain attention
    std::vector<Script> scripts(3);
    const int prompts[] = {1, 9, 37};
    for (int s = 0; s < 3; ++s) {
      scripts[s].steps.push_back(random_rows(rng, prompts[s], spec));
      for (int t = 0; t < 3; ++t) scripts[s].steps.push_back(random_rows(rng, 1, spec));
    }
    const auto got = run(spec, scripts, {0, 1, 2}, pool);
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    int mismatches = 0;
    for (int s = 0; s < 3; ++s) {
      // The sequence's K/V rows in position order.
      std::vector<const float*> keys, values, queries;
      std::vector<const float*> out_rows;
      for (size_t step = 0; step < scripts[s].steps.size(); ++step) {
        const Rows& r = scripts[s].steps[step];
        const size_t n = r.v.size() / (spec.kv_heads * head_dim);
        for (size_t t = 0; t < n; ++t) {
          keys.push_back(r.k.data() + t * spec.kv_heads * head_dim);
          values.push_back(r.v.data() + t * spec.kv_heads * head_dim);
          queries.push_back(r.q.data() + t * spec.heads * head_dim);
          out_rows.push_back(got[s][step].data() + t * spec.heads * head_dim);
        }
      }
      for (size_t p = 0; p < queries.size(); ++p) {
        for (int h = 0; h < spec.heads; ++h) {
          const int kv = h / (spec.heads / spec.kv_heads);
          std::vector<double> score(p + 1);
          double max_score = -INFINITY, max_abs_dot = 0;
          for (size_t j = 0; j <= p; ++j) {
            double dot = 0, abs_dot = 0;
            for (int d = 0; d < head_dim; ++d) {
              dot += static_cast<double>(queries[p][h * head_dim + d]) * keys[j][kv * head_dim + d];
              abs_dot += std::fabs(static_cast<double>(queries[p][h * head_dim + d]) * keys[j][kv * head_dim + d]);
            }
            score[j] = dot * scale;
            max_score = std::max(max_score, score[j]);
            max_abs_dot = std::max(max_abs_dot, abs_dot * scale);
          }
          double total = 0;
          for (double& x : score) total += (x = std::exp(x - max_score));
          // fp32 bound: each score off by <= (head_dim + 2) u sum|q k| (u = 2^-24), which
          // moves each softmax weight by <= 2x that (relative) plus exp/division rounding
          // (~4u); the weighted sum of p + 1 values (|v| <= 1) adds (p + 2) u.
          const double u = std::ldexp(1.0, -24);
          const double tolerance = 2 * ((head_dim + 2) * u * max_abs_dot + 4 * u) + (p + 2) * u + 1e-7;
          for (int d = 0; d < head_dim; ++d) {
            double expected = 0;
            for (size_t j = 0; j <= p; ++j) expected += score[j] / total * values[j][kv * head_dim + d];
            const double error = std::fabs(out_rows[p][h * head_dim + d] - expected);
            if (!(error <= tolerance)) {
              if (++mismatches < 5)
                MESSAGE("head_dim " << head_dim << " seq " << s << " pos " << p << " head " << h << " d " << d
                                    << ": got " << out_rows[p][h * head_dim + d] << " expected " << expected);
            }
          }
        }
      }
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("attention is batch invariant: a sequence alone or among others gives the same bits") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 1);
  // With 5 threads a sequence decoded alone runs one query head per task (2 K/V heads x 2
  // heads each would leave threads idle) while the batch runs both heads of a K/V head in
  // one task; with 2 both are grouped. Either way the same bits.
  for (int threads : {2, 5})
    for (int head_dim : {13, 64}) {
      ThreadPool pool(threads);
      CAPTURE(threads);
      AttentionSpec spec;
      spec.heads = 4;
      spec.kv_heads = 2;
      spec.head_dim = head_dim;
      spec.rotary_dim = head_dim / 2 * 2;
      spec.inv_freq = rope_inverse_frequencies(10000.0, spec.rotary_dim, "float32");
      std::vector<Script> scripts(4);
      const int prompts[] = {21, 3, 40, 1};
      for (int s = 0; s < 4; ++s) {
        scripts[s].steps.push_back(random_rows(rng, prompts[s], spec));
        for (int t = 0; t < 4; ++t) scripts[s].steps.push_back(random_rows(rng, 1, spec));
      }
      const auto together = run(spec, scripts, {0, 1, 2, 3}, pool);
      for (int s = 0; s < 4; ++s) {
        CAPTURE(s);
        const auto alone = run(spec, scripts, {s}, pool);
        for (size_t step = 0; step < alone[0].size(); ++step) {
          CAPTURE(step);
          REQUIRE(alone[0][step].size() == together[s][step].size());
          CHECK(std::memcmp(alone[0][step].data(), together[s][step].data(), alone[0][step].size() * sizeof(float)) ==
                0);
        }
      }
    }
}

TEST_CASE("the AVX2 and AVX-512 attention loops give the same bits as the portable ones") {
  if (!cpu_supports(CpuIsa::avx2)) {
    MESSAGE("no AVX2 on this CPU (or capped by QUANTEVAL_CPU_ISA): nothing to compare");
    return;
  }
  const bool avx512 = cpu_supports(CpuIsa::avx512);
  if (!avx512) MESSAGE("no AVX-512 on this CPU (or capped): only the AVX2 loops are compared");
  std::mt19937_64 rng(quanteval::test::test_seed() + 2);
  for (int head_dim : {8, 24, 64, 72, 128, 256}) {
    for (int heads : {1, 2, 4, 7}) {  // the AVX-512 loop pairs heads: odd counts leave one
      // Runs shorter than, equal to and past the 8-position score groups.
      for (int count : {1, 7, 8, 9, 19}) {
        CAPTURE(head_dim);
        CAPTURE(heads);
        CAPTURE(count);
        // The scores have no fused multiply-add in their spec, the value sum one per product.
        auto values = [&](size_t n) { return quanteval::test::floats_over_binades(rng, n, 17); };
        // K/V rows `stride` floats apart (another K/V head's vectors between them, as in a
        // block of the KV memory); scores and weights [heads][score_stride].
        const int64_t stride = head_dim * 2 + 8, score_stride = count + 3;
        const std::vector<float> queries = values(static_cast<size_t>(heads) * head_dim),
                                 keys = values(static_cast<size_t>(count) * stride),
                                 kv_values = values(static_cast<size_t>(count) * stride),
                                 weights = values(static_cast<size_t>(heads) * score_stride);
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        std::vector<float> fast(static_cast<size_t>(heads) * score_stride, -1.0f), portable(fast);
        detail::attention_scores_avx2(queries.data(), heads, head_dim, keys.data(), stride, count, scale, fast.data(),
                                      score_stride);
        for (int h = 0; h < heads; ++h)
          for (int j = 0; j < count; ++j)
            portable[h * score_stride + j] =
                math::attention_score(queries.data() + h * head_dim, keys.data() + j * stride, head_dim, scale);
        CHECK(std::memcmp(fast.data(), portable.data(), fast.size() * sizeof(float)) == 0);
        if (avx512) {
          std::vector<float> wide(fast.size(), -1.0f);
          detail::attention_scores_avx512(queries.data(), heads, head_dim, keys.data(), stride, count, scale,
                                          wide.data(), score_stride);
          CHECK(std::memcmp(wide.data(), portable.data(), wide.size() * sizeof(float)) == 0);
        }

        const std::vector<float> start = values(static_cast<size_t>(heads) * head_dim);
        std::vector<float> expected = start;
        for (int h = 0; h < heads; ++h)
          for (int j = 0; j < count; ++j)
            for (int d = 0; d < head_dim; ++d)
              expected[h * head_dim + d] =
                  std::fma(weights[h * score_stride + j], kv_values[j * stride + d], expected[h * head_dim + d]);
        std::vector<float> fast_out = start;
        // The value sum: multiply_accumulate with rows = heads, inner = positions.
        detail::multiply_accumulate_avx2(fast_out.data(), head_dim, weights.data(), score_stride, kv_values.data(),
                                         stride, heads, head_dim, count, false);
        CHECK(std::memcmp(fast_out.data(), expected.data(), expected.size() * sizeof(float)) == 0);
        if (avx512 && head_dim % 16 == 0) {
          std::vector<float> wide_out = start;
          detail::multiply_accumulate_avx512(wide_out.data(), head_dim, weights.data(), score_stride, kv_values.data(),
                                             stride, heads, head_dim, count, false);
          CHECK(std::memcmp(wide_out.data(), expected.data(), expected.size() * sizeof(float)) == 0);
        }
      }
    }
  }
}

TEST_CASE("attention gives the same bits whether a sequence's K/V blocks are consecutive or scattered") {
  // CpuMemory keeps each head's rows contiguous across blocks with consecutive ids, and the
  // attention loops take such blocks as one run: a sequence whose blocks are scattered runs
  // in shorter pieces, which must not change a bit.
  std::mt19937_64 rng(quanteval::test::test_seed() + 2);
  ThreadPool pool(2);
  for (int head_dim : {13, 64}) {
    CAPTURE(head_dim);
    AttentionSpec spec;
    spec.heads = 4;
    spec.kv_heads = 2;
    spec.head_dim = head_dim;
    std::vector<Script> scripts(1);
    scripts[0].steps.push_back(random_rows(rng, 45, spec));  // 3 blocks of 16 (with the decode steps)
    for (int t = 0; t < 4; ++t) scripts[0].steps.push_back(random_rows(rng, 1, spec));
    const auto consecutive = run(spec, scripts, {0}, pool);
    const auto scattered = run(spec, scripts, {0}, pool, true);
    for (size_t step = 0; step < consecutive[0].size(); ++step) {
      CAPTURE(step);
      REQUIRE(consecutive[0][step].size() == scattered[0][step].size());
      CHECK(std::memcmp(consecutive[0][step].data(), scattered[0][step].data(),
                        consecutive[0][step].size() * sizeof(float)) == 0);
    }
  }
}
