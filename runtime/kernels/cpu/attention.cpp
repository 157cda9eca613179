#include "runtime/kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/model/math.hpp"

namespace quanteval::runtime {

namespace {
// At most this many query heads per task (the per-task softmax state lives on the stack);
// larger GQA groups are split into runs of a divisor of the group.
constexpr int kMaxHeadsPerTask = 16;
}  // namespace

std::int64_t attention_workspace_floats(const AttentionSpec& spec, std::int64_t rows) {
  return rows * spec.heads * spec.head_dim;
}

void attention_cpu(const AttentionSpec& spec, const float* q_norm, const float* k_norm, const StepBatch& batch,
                   const float* q, float* k, const float* v, float* out, const CpuMemory& memory, ThreadPool& pool,
                   float* workspace) {
  const std::int64_t m = batch.rows();
  const int heads = spec.heads, kv_heads = spec.kv_heads, head_dim = spec.head_dim;
  const int q_stride = heads * head_dim * (spec.gated ? 2 : 1);  // gated: per head [query | gate]
  const int q_head_stride = head_dim * (spec.gated ? 2 : 1);
  const int kv_width = kv_heads * head_dim;
  const int block_tokens = memory.plan().shape.block_tokens;
  const int rotary_dim = static_cast<int>(spec.inv_freq.size()) * 2;
  std::vector<float> owned;
  if (!workspace) {
    owned.resize(static_cast<std::size_t>(attention_workspace_floats(spec, m)));
    workspace = owned.data();
  }
  float* query = workspace;  // [M, heads * head_dim] normed, rotated

  // Per row: q/k head norms, RoPE at the row's position, then K/V into the memory.
  // Every row is stored before any row attends, so a prompt's rows see each other.
  auto prepare_rows = [&](std::int64_t begin, std::int64_t end) {
    // One row's RoPE angles serve all its q and k heads (16 per row on Qwen2.5-0.5B).
    std::vector<math::RotaryAngle> angles(static_cast<std::size_t>(rotary_dim / 2));
    for (std::int64_t r = begin; r < end; ++r) {
      const std::int64_t position = batch.positions[static_cast<std::size_t>(r)];
      for (std::size_t i = 0; i < angles.size(); ++i) angles[i] = math::rotary_angle(position, spec.inv_freq[i]);
      auto rope_head = [&](float* head) { math::rotate_head(head, rotary_dim, angles.data()); };
      for (int h = 0; h < heads; ++h) {
        const float* src = q + r * q_stride + static_cast<std::int64_t>(h) * q_head_stride;
        float* head = query + (r * heads + h) * head_dim;
        if (q_norm)
          math::rms_norm_row(src, q_norm, head_dim, spec.norm_eps, head);
        else
          std::memcpy(head, src, sizeof(float) * head_dim);
        rope_head(head);
      }
      const SequenceState& state =
          *batch.sequences[static_cast<std::size_t>(batch.row_sequence[static_cast<std::size_t>(r)])].state;
      const std::int32_t block = state.blocks()[static_cast<std::size_t>(position / block_tokens)];
      const int offset = static_cast<int>(position % block_tokens);
      for (int h = 0; h < kv_heads; ++h) {
        float* head = k + r * kv_width + h * head_dim;
        if (k_norm) math::rms_norm_row(head, k_norm, head_dim, spec.norm_eps, head);
        rope_head(head);
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

  // Causal attention. A task is one row and a run of query heads that share one K/V head
  // (GQA): each key and value vector is fetched once (one block lookup, one L2 -> L1
  // transfer) for all of them instead of once per head (7 heads per K/V head on
  // Qwen2.5-0.5B). With the AVX2 loops below this took attention from ~15% to ~10% of a
  // 512-token prefill's samples, and the prefill from 143 to 173 tok/s (Zen 3). Every score
  // and output element is still computed by the same expression in the same position
  // order, so the bits do not depend on how heads are grouped (or on the batch). Runs are
  // cut shorter only when whole groups would leave a thread without a task. Decoding one
  // sequence had been cut to single heads whenever there were fewer than 4 tasks a thread:
  // then every query head re-read its K/V head's whole cache, 7 times per layer on
  // Qwen2.5-0.5B, from L3 once a long context's K/V outgrew L2 (4096 tokens: 42.5 ms a token,
  // 25 of them attention, against 17.7 ms at 16 tokens).
  const int group = heads / kv_heads;  // query heads sharing one K/V head
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  int heads_per_task = 1;
  for (int d = std::min(group, kMaxHeadsPerTask); d >= 1 && heads_per_task == 1; --d)
    if (group % d == 0 && (d == 1 || m * (heads / d) >= pool.size())) heads_per_task = d;
  const int tasks_per_row = heads / heads_per_task;
  // This file is compiled for baseline x86-64 (SSE2): the scores and the value sum are the
  // shared SIMD loops (detail::attention_scores, multiply_accumulate; the same bits as scalar).
  // Calls f(p, count, keys, values) for the runs of consecutive positions of [first, last]
  // whose rows of this head are contiguous in the memory (head_dim floats apart): within a
  // KV block, and on across blocks with consecutive ids (CpuMemory's head-major layout).
  auto for_each_run = [&](const SequenceState& state, int kv_head, std::int64_t first, std::int64_t last, auto&& f) {
    const auto block_at = [&](std::int64_t index) { return state.blocks()[static_cast<std::size_t>(index)]; };
    for (std::int64_t p = first; p <= last;) {
      const std::int32_t block = block_at(p / block_tokens);
      const int offset = static_cast<int>(p % block_tokens);
      std::int64_t end = std::min<std::int64_t>(last + 1, (p / block_tokens + 1) * block_tokens);
      while (end <= last && block_at(end / block_tokens) == block_at(end / block_tokens - 1) + 1)
        end = std::min<std::int64_t>(last + 1, end + block_tokens);
      const int count = static_cast<int>(end - p);
      f(p, count, memory.key(spec.kv_layer, block, offset, kv_head),
        memory.value(spec.kv_layer, block, offset, kv_head));
      p += count;
    }
  };
  auto attend = [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scores;  // [heads_per_task][positions]: scores, then softmax weights
    for (std::int64_t task = begin; task < end; ++task) {
      const std::int64_t r = task / tasks_per_row;
      const int h0 = static_cast<int>(task % tasks_per_row) * heads_per_task;
      const int kv_head = h0 / group;
      const std::int64_t position = batch.positions[static_cast<std::size_t>(r)];
      const SequenceState& state =
          *batch.sequences[static_cast<std::size_t>(batch.row_sequence[static_cast<std::size_t>(r)])].state;
      const std::int64_t first = math::attention_first_position(position, spec.window);
      const auto count = static_cast<std::size_t>(position - first + 1);
      scores.resize(count * heads_per_task);
      const float* query_heads = query + (r * heads + h0) * head_dim;
      for_each_run(state, kv_head, first, position, [&](std::int64_t p, int run, const float* keys, const float*) {
        detail::attention_scores(query_heads, heads_per_task, head_dim, keys, head_dim, run, scale,
                                 scores.data() + (p - first), static_cast<std::int64_t>(count));
      });
      for (int h = 0; h < heads_per_task; ++h) detail::softmax(scores.data() + h * count, count);
      float* results = out + (r * heads + h0) * head_dim;
      std::fill(results, results + heads_per_task * head_dim, 0.0f);
      for_each_run(state, kv_head, first, position, [&](std::int64_t p, int run, const float*, const float* values) {
        const float* weights = scores.data() + (p - first);
        // rows = heads, inner = positions: each output element takes the positions in order.
        detail::multiply_accumulate(results, head_dim, weights, static_cast<std::int64_t>(count), values, head_dim,
                                    heads_per_task, head_dim, run, false);
      });
      if (spec.gated) {
        for (int h = 0; h < heads_per_task; ++h) {
          const float* gate = q + r * q_stride + static_cast<std::int64_t>(h0 + h) * q_head_stride + head_dim;
          float* result = results + h * head_dim;
          for (int d = 0; d < head_dim; ++d) result[d] = math::gated_output(result[d], gate[d]);
        }
      }
    }
  };
  // Below 16k multiply-adds (about a microsecond) stay on this thread: a call to the pool
  // costs ~1.2 us while its workers spin between a decode step's calls (measured on Zen 4),
  // and one decode row's attention over 16-48 positions took ~10 us a layer on the calling
  // thread alone (Qwen2.5-0.5B; the old 256k bound kept every row below 146 positions
  // there). Tasks are claimed in small runs: rows late in a prompt attend over more
  // positions than early ones.
  std::int64_t multiply_adds = 0;
  for (std::int64_t r = 0; r < m; ++r)
    multiply_adds += 2 * (batch.positions[static_cast<std::size_t>(r)] + 1) * heads * head_dim;
  const std::int64_t tasks = m * tasks_per_row;
  if (multiply_adds < (1 << 14))
    attend(0, tasks);
  else
    pool.parallel_chunks(tasks, std::max<std::int64_t>(1, tasks / (8 * pool.size())), attend);
}

}  // namespace quanteval::runtime
