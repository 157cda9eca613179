#pragma once
// The reference forward: the whole model written as plain loops over float
// weights read straight from the checkpoint (bf16/fp16 widened exactly, GPTQ
// through dequantize_reference), llm.c style, every sum in double. No threads,
// no SIMD, no memory pages, no batching: one prompt, every position, recomputed
// from scratch; the Gated DeltaNet as its plain token-by-token recurrence.
//
// It is kept separate from the fast path (model.hpp) on purpose, as llm.c keeps
// train_gpt2.c beside train_gpt2.cu: it is the readable statement of the math,
// it shares no layer code with the fast path (only the weights and the RoPE
// frequency convention), and the fast path on every backend is tested against
// it. Far too slow for real use.
#include <cstdint>
#include <span>
#include <vector>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/text/tokenizer.hpp"  // TokenId

namespace quanteval::runtime {

struct ReferenceOutput {
  std::int64_t tokens = 0;  // T
  std::int64_t vocab = 0;
  std::int64_t hidden = 0;
  std::vector<float> logits;  // [T, vocab]
  std::vector<float>
      hidden_states;  // [layers + 1, T, hidden]: embeddings, each layer's output, last after the final norm
};

struct ReferenceOptions {
  // RoPE with the exact fp32 frequencies instead of transformers' dtype-rounded
  // buffer (only to show what that rounding is worth).
  bool exact_rope_frequencies = false;
};

// Qwen2, Qwen3 and Qwen3.5 (full, sliding or gated attention and Gated DeltaNet
// layers). Throws std::invalid_argument for ids outside the vocabulary.
ReferenceOutput reference_forward(const Checkpoint& checkpoint, std::span<const TokenId> ids,
                                  const ReferenceOptions& options = {});

}  // namespace quanteval::runtime
