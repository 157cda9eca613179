#include "runtime/kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/model/math.hpp"

namespace quanteval::runtime {

void rms_norm_row(const float* x, const float* weight, std::int64_t width, float eps, float* y) {
  double sum_squares = 0;
  for (std::int64_t i = 0; i < width; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  const float inverse_rms = math::inverse_rms(sum_squares, static_cast<int>(width), eps);
  for (std::int64_t i = 0; i < width; ++i) y[i] = x[i] * inverse_rms * weight[i];
}

namespace {

// a . b in 8 interleaved fp32 partial sums (lane l takes the d with d % 8 == l), then a
// fixed pairwise reduction. One serial sum made every score a chain of head_dim dependent
// adds (~4 cycles each: 21% of a 512-token prefill); 8 independent lanes vectorize. The
// order depends only on n, so a score never depends on the batch or the thread.
float dot_lanes(const float* a, const float* b, int n) {
  float lane[8] = {};
  int d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; ++l) lane[l] += a[d + l] * b[d + l];
  for (int l = 0; d < n; ++d, ++l) lane[l] += a[d] * b[d];
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

void rope_head(float* head, std::int64_t position, const std::vector<float>& inv_freq) {
  const std::size_t half = inv_freq.size();
  for (std::size_t i = 0; i < half; ++i) math::rotate_pair(head[i], head[i + half], position, inv_freq[i]);
}

}  // namespace

void attention_cpu(const AttentionSpec& spec, const float* q_norm, const float* k_norm, const StepBatch& batch,
                   const float* q, float* k, const float* v, float* out, const CpuMemory& memory, ThreadPool& pool) {
  const std::int64_t m = batch.rows();
  const int heads = spec.heads, kv_heads = spec.kv_heads, head_dim = spec.head_dim;
  const int q_stride = heads * head_dim * (spec.gated ? 2 : 1);  // gated: per head [query | gate]
  const int q_head_stride = head_dim * (spec.gated ? 2 : 1);
  const int kv_width = kv_heads * head_dim;
  const int block_tokens = memory.plan().shape.block_tokens;
  std::vector<float> query(static_cast<std::size_t>(m) * heads * head_dim);  // [M, heads * head_dim] normed, rotated

  // Per row: q/k head norms, RoPE at the row's position, then K/V into the memory.
  // Every row is stored before any row attends, so a prompt's rows see each other.
  auto prepare_rows = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const std::int64_t position = batch.positions[static_cast<std::size_t>(r)];
      for (int h = 0; h < heads; ++h) {
        const float* src = q + r * q_stride + static_cast<std::int64_t>(h) * q_head_stride;
        float* head = query.data() + (r * heads + h) * head_dim;
        if (q_norm)
          rms_norm_row(src, q_norm, head_dim, spec.norm_eps, head);
        else
          std::memcpy(head, src, sizeof(float) * head_dim);
        rope_head(head, position, spec.inv_freq);
      }
      const SequenceState& state =
          *batch.sequences[static_cast<std::size_t>(batch.row_sequence[static_cast<std::size_t>(r)])].state;
      const std::int32_t block = state.blocks()[static_cast<std::size_t>(position / block_tokens)];
      const int offset = static_cast<int>(position % block_tokens);
      for (int h = 0; h < kv_heads; ++h) {
        float* head = k + r * kv_width + h * head_dim;
        if (k_norm) rms_norm_row(head, k_norm, head_dim, spec.norm_eps, head);
        rope_head(head, position, spec.inv_freq);
        std::memcpy(memory.key(spec.kv_layer, block, offset, h), head, sizeof(float) * head_dim);
        std::memcpy(memory.value(spec.kv_layer, block, offset, h), v + r * kv_width + h * head_dim,
                    sizeof(float) * head_dim);
      }
    }
  };
  // Waking the pool costs tens of microseconds, more than a few rows of this work:
  // decode steps of small batches do it on the calling thread.
  constexpr std::int64_t kRowsWorthThreads = 8;
  if (m < kRowsWorthThreads)
    prepare_rows(0, m);
  else
    pool.parallel_for(m, prepare_rows);

  // Causal attention, one (row, query head) pair per task; scores are softmaxed in fp32.
  const int group = heads / kv_heads;  // query heads sharing one K/V head
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  auto attend = [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scores;
    for (std::int64_t task = begin; task < end; ++task) {
      const std::int64_t r = task / heads;
      const int h = static_cast<int>(task % heads);
      const int kv_head = h / group;
      const std::int64_t position = batch.positions[static_cast<std::size_t>(r)];
      const SequenceState& state =
          *batch.sequences[static_cast<std::size_t>(batch.row_sequence[static_cast<std::size_t>(r)])].state;
      const std::int64_t first = spec.window > 0 ? std::max<std::int64_t>(0, position - spec.window + 1) : 0;
      const float* qh = query.data() + (r * heads + h) * head_dim;
      scores.resize(static_cast<std::size_t>(position - first + 1));
      float max_score = -INFINITY;
      for (std::int64_t p = first; p <= position; ++p) {
        const float* key = memory.key(spec.kv_layer, state.blocks()[static_cast<std::size_t>(p / block_tokens)],
                                      static_cast<int>(p % block_tokens), kv_head);
        const float dot = dot_lanes(qh, key, head_dim) * scale;
        scores[static_cast<std::size_t>(p - first)] = dot;
        max_score = std::max(max_score, dot);
      }
      float total = 0;
      for (float& s : scores) {
        s = std::exp(s - max_score);
        total += s;
      }
      float* result = out + (r * heads + h) * head_dim;
      std::fill(result, result + head_dim, 0.0f);
      for (std::int64_t p = first; p <= position; ++p) {
        const float* value = memory.value(spec.kv_layer, state.blocks()[static_cast<std::size_t>(p / block_tokens)],
                                          static_cast<int>(p % block_tokens), kv_head);
        const float weight = scores[static_cast<std::size_t>(p - first)] / total;
        for (int d = 0; d < head_dim; ++d) result[d] += weight * value[d];
      }
      if (spec.gated) {
        const float* gate = q + r * q_stride + static_cast<std::int64_t>(h) * q_head_stride + head_dim;
        for (int d = 0; d < head_dim; ++d) result[d] *= math::sigmoid(gate[d]);
      }
    }
  };
  // Same trade-off: below ~256k multiply-adds (a few tens of microseconds) stay on
  // this thread. Tasks are claimed in small runs: rows late in a prompt attend
  // over more positions than early ones.
  std::int64_t multiply_adds = 0;
  for (std::int64_t r = 0; r < m; ++r)
    multiply_adds += 2 * (batch.positions[static_cast<std::size_t>(r)] + 1) * heads * head_dim;
  const std::int64_t tasks = m * heads;
  if (multiply_adds < (1 << 18))
    attend(0, tasks);
  else
    pool.parallel_chunks(tasks, std::max<std::int64_t>(1, tasks / (8 * pool.size())), attend);
}

}  // namespace quanteval::runtime
