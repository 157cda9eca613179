#pragma once
// The reference forward: the whole model written as plain loops over float
// weights read straight from the checkpoint (bf16/fp16 widened exactly, GPTQ
// through dequantize_reference), llm.c style. No threads, no SIMD, no cache,
// no batching: one prompt, every position, recomputed from scratch. It is the
// readable statement of the math and what the fast path (model.hpp) is tested
// against; it is far too slow for real use.
#include <cstdint>
#include <span>
#include <vector>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/text/tokenizer.hpp"  // TokenId

namespace quanteval::runtime {

struct ReferenceOutput {
  std::int64_t tokens = 0;            // T
  std::int64_t vocab = 0;
  std::int64_t hidden = 0;
  std::vector<float> logits;          // [T, vocab]
  std::vector<float> hidden_states;   // [layers + 1, T, hidden]: embeddings, each layer's output, last after the final norm
};

// Qwen2/Qwen3 (full or sliding attention layers). Throws CheckpointError for
// other layer kinds and std::invalid_argument for ids outside the vocabulary.
ReferenceOutput reference_forward(const Checkpoint& checkpoint, std::span<const TokenId> ids);

}  // namespace quanteval::runtime
