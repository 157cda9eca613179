#include "tests/qwen3_5/reference_model.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "runtime/checkpoint/safetensors.hpp"

namespace quanteval::test {

using runtime::Checkpoint;
using runtime::LinearTensors;
namespace q35 = runtime::qwen3_5;

Qwen3_5ReferenceModel::Qwen3_5ReferenceModel(const Checkpoint& checkpoint) {
  const runtime::ModelConfig& config = checkpoint.config();
  vocab_ = static_cast<int>(config.vocab_size);
  hidden_ = static_cast<int>(config.hidden_size);
  eps_ = static_cast<float>(config.rms_norm_eps);
  embeddings_ = q35::load_float_tensor(checkpoint, "model.embed_tokens.weight",
                                       static_cast<std::int64_t>(vocab_) * hidden_);
  final_norm_ = q35::load_float_tensor(checkpoint, "model.norm.weight", hidden_);

  const q35::LinearFactory reference = [&checkpoint](const LinearTensors& tensors) {
    return q35::reference_linear(checkpoint, tensors);
  };
  if (config.tie_word_embeddings || !(checkpoint.has("lm_head.weight") || checkpoint.has("lm_head.qweight"))) {
    // Tied: logits = h E^T with the embedding matrix itself.
    const std::vector<float>* table = &embeddings_;
    const int vocab = vocab_, hidden = hidden_;
    lm_head_ = [table, vocab, hidden](const float* x, int rows, float* y) {
      for (int r = 0; r < rows; ++r)
        for (int v = 0; v < vocab; ++v) {
          float acc = 0.0f;
          for (int i = 0; i < hidden; ++i) acc += x[static_cast<size_t>(r) * hidden + i] * (*table)[static_cast<size_t>(v) * hidden + i];
          y[static_cast<size_t>(r) * vocab + v] = acc;
        }
    };
  } else {
    lm_head_ = reference(checkpoint.linear("lm_head"));
  }
  for (int layer = 0; layer < static_cast<int>(config.num_hidden_layers); ++layer) {
    layers_.emplace_back(q35::load_decoder_layer_weights(checkpoint, layer, reference));
  }
}

Qwen3_5ReferenceModel::Sequence Qwen3_5ReferenceModel::new_sequence() const {
  Sequence sequence;
  for (const auto& layer : layers_) sequence.layers.push_back(layer.make_state());
  return sequence;
}

std::vector<float> Qwen3_5ReferenceModel::embed(std::span<const int> tokens) const {
  std::vector<float> x(tokens.size() * hidden_);
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= vocab_) throw std::out_of_range(fmt::format("token id {} outside the vocabulary", tokens[t]));
    std::copy_n(embeddings_.begin() + static_cast<std::ptrdiff_t>(tokens[t]) * hidden_, hidden_, x.begin() + t * hidden_);
  }
  return x;
}

void Qwen3_5ReferenceModel::final_norm(const float* x, int rows, float* y) const {
  q35::rms_norm_zero_centered(x, rows, hidden_, final_norm_, eps_, y);
}

std::vector<float> Qwen3_5ReferenceModel::head(const std::vector<float>& hidden, int rows,
                                               std::vector<std::vector<float>>* hidden_states) const {
  std::vector<float> normed(hidden.size());
  final_norm(hidden.data(), rows, normed.data());
  if (hidden_states) hidden_states->back() = normed;
  std::vector<float> logits(static_cast<size_t>(rows) * vocab_);
  lm_head_(normed.data(), rows, logits.data());
  return logits;
}

std::vector<float> Qwen3_5ReferenceModel::prefill(std::span<const std::vector<int>> tokens,
                                                  std::span<Sequence* const> sequences,
                                                  std::vector<std::vector<float>>* hidden_states) const {
  if (tokens.size() != sequences.size()) throw std::invalid_argument("one token list per sequence");
  std::vector<int> flat, lengths;
  for (const auto& list : tokens) {
    flat.insert(flat.end(), list.begin(), list.end());
    lengths.push_back(static_cast<int>(list.size()));
  }
  const int rows = static_cast<int>(flat.size());
  std::vector<float> x = embed(flat), y(x.size());
  if (hidden_states) hidden_states->assign(layers_.size() + 1, {});
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (hidden_states) (*hidden_states)[l] = x;
    std::vector<q35::LayerState*> states;
    for (Sequence* sequence : sequences) states.push_back(&sequence->layers[l]);
    layers_[l].prefill(x.data(), lengths, states, y.data());
    std::swap(x, y);
  }
  return head(x, rows, hidden_states);
}

std::vector<float> Qwen3_5ReferenceModel::decode_step(std::span<const int> tokens,
                                                      std::span<Sequence* const> sequences) const {
  if (tokens.size() != sequences.size()) throw std::invalid_argument("one token per sequence");
  const int rows = static_cast<int>(tokens.size());
  std::vector<float> x = embed(tokens), y(x.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    std::vector<q35::LayerState*> states;
    for (Sequence* sequence : sequences) states.push_back(&sequence->layers[l]);
    layers_[l].decode_step(x.data(), states, y.data());
    std::swap(x, y);
  }
  return head(x, rows, nullptr);
}

}  // namespace quanteval::test
