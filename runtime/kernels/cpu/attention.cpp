#include "runtime/kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/model/math.hpp"

namespace quanteval::runtime {

void attention_cpu(const AttentionSpec& spec, const float* q_norm, const float* k_norm, const StepBatch& batch,
                   const float* q, float* k, const float* v, float* out, const CpuMemory& memory, ThreadPool& pool) {
  const std::int64_t m = batch.rows();
  const int heads = spec.heads, kv_heads = spec.kv_heads, head_dim = spec.head_dim;
  const int q_stride = heads * head_dim * (spec.gated ? 2 : 1);  // gated: per head [query | gate]
  const int q_head_stride = head_dim * (spec.gated ? 2 : 1);
  const int kv_width = kv_heads * head_dim;
  const int block_tokens = memory.plan().shape.block_tokens;
  const int rotary_dim = static_cast<int>(spec.inv_freq.size()) * 2;
  auto rope_head = [&](float* head, std::int64_t position) {
    math::rotate_head(head, rotary_dim, position, spec.inv_freq.data());
  };
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
          math::rms_norm_row(src, q_norm, head_dim, spec.norm_eps, head);
        else
          std::memcpy(head, src, sizeof(float) * head_dim);
        rope_head(head, position);
      }
      const SequenceState& state =
          *batch.sequences[static_cast<std::size_t>(batch.row_sequence[static_cast<std::size_t>(r)])].state;
      const std::int32_t block = state.blocks()[static_cast<std::size_t>(position / block_tokens)];
      const int offset = static_cast<int>(position % block_tokens);
      for (int h = 0; h < kv_heads; ++h) {
        float* head = k + r * kv_width + h * head_dim;
        if (k_norm) math::rms_norm_row(head, k_norm, head_dim, spec.norm_eps, head);
        rope_head(head, position);
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
      const std::int64_t first = math::attention_first_position(position, spec.window);
      const float* qh = query.data() + (r * heads + h) * head_dim;
      scores.resize(static_cast<std::size_t>(position - first + 1));
      float max_score = -INFINITY;
      for (std::int64_t p = first; p <= position; ++p) {
        const float* key = memory.key(spec.kv_layer, state.blocks()[static_cast<std::size_t>(p / block_tokens)],
                                      static_cast<int>(p % block_tokens), kv_head);
        const float dot = math::attention_score(qh, key, head_dim, scale);
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
        for (int d = 0; d < head_dim; ++d) result[d] = math::gated_output(result[d], gate[d]);
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
