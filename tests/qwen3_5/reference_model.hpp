#pragma once
// A whole Qwen3.5 text model assembled from the runtime's layer building
// blocks with fp32 reference projections (GPTQ weights dequantized). It exists
// only so the tests can compare against the transformers fixtures end to end;
// the runtime's real model lives elsewhere.
#include <span>
#include <vector>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/model/qwen3_5/layers.hpp"

namespace quanteval::test {

class Qwen3_5ReferenceModel {
 public:
  explicit Qwen3_5ReferenceModel(const runtime::Checkpoint& checkpoint);

  // One sequence's state: one LayerState per decoder layer.
  struct Sequence {
    std::vector<runtime::qwen3_5::LayerState> layers;
  };
  Sequence new_sequence() const;

  int vocab_size() const { return vocab_; }
  int hidden_size() const { return hidden_; }
  const std::vector<runtime::qwen3_5::DecoderLayer>& layers() const { return layers_; }

  // Packed prefill of several sequences (each continuing its own state).
  // Returns logits [sum(sizes), vocab]. When `hidden_states` is given it gets
  // num_layers + 1 entries of [sum(sizes), hidden] laid out like the fixture:
  // the embeddings, each layer's output, and last the final-normed output.
  std::vector<float> prefill(std::span<const std::vector<int>> tokens, std::span<Sequence* const> sequences,
                             std::vector<std::vector<float>>* hidden_states = nullptr) const;

  // One token per sequence; returns logits [batch, vocab].
  std::vector<float> decode_step(std::span<const int> tokens, std::span<Sequence* const> sequences) const;

  // The final zero-centred norm, rows of [rows, hidden].
  void final_norm(const float* x, int rows, float* y) const;

 private:
  std::vector<float> embed(std::span<const int> tokens) const;
  std::vector<float> head(const std::vector<float>& hidden, int rows,
                          std::vector<std::vector<float>>* hidden_states) const;

  int vocab_ = 0, hidden_ = 0;
  float eps_ = 1e-6f;
  std::vector<float> embeddings_;  // [vocab, hidden]
  std::vector<float> final_norm_;  // [hidden] stored w
  runtime::qwen3_5::LinearFn lm_head_;
  std::vector<runtime::qwen3_5::DecoderLayer> layers_;
};

}  // namespace quanteval::test
