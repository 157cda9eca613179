#include "runtime/model/qwen3_5/mixers.hpp"
#include "runtime/base/check.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "runtime/model/qwen3_5/gated_deltanet.hpp"
#include "runtime/model/qwen3_5/layers.hpp"

namespace quanteval::runtime {
namespace {

// The layer code's projections are plain callbacks without a thread pool; the
// mixer points this slot at the step's pool for the duration of a forward.
struct PoolSlot {
  ThreadPool* pool = nullptr;
};

struct FastLinears {
  std::shared_ptr<PoolSlot> slot = std::make_shared<PoolSlot>();
  std::uint64_t bytes = 0;

  qwen3_5::LinearFactory factory(const std::optional<QuantConfig>& quant) {
    return [this, &quant](const LinearTensors& tensors) -> qwen3_5::LinearFn {
      auto linear = std::make_shared<Linear>(Linear::from_checkpoint(tensors, quant));
      bytes += linear->weight_bytes();
      return [slot = slot, linear](const float* x, int rows, float* y) { linear->forward(x, rows, y, *slot->pool); };
    };
  }
};

// The rows of a step grouped by sequence, packed one sequence after another as
// the layer code wants them.
struct PackedRows {
  std::vector<int> order;                // row indices in packed order
  std::vector<int> lengths;              // rows per sequence, in `sequences` order
  std::vector<int> sequences;            // sequence indices (into StepRows::states) in packed order
  std::vector<std::int64_t> first_position;  // per packed sequence: position of its first row
  bool one_token_each = true;

  explicit PackedRows(const StepRows& rows) {
    std::vector<std::vector<int>> rows_of(rows.states.size());
    for (int r = 0; r < static_cast<int>(rows.size()); ++r) {
      auto& list = rows_of[static_cast<std::size_t>(rows.sequence[static_cast<std::size_t>(r)])];
      if (list.empty()) sequences.push_back(rows.sequence[static_cast<std::size_t>(r)]);
      list.push_back(r);
    }
    for (int s : sequences) {
      const auto& list = rows_of[static_cast<std::size_t>(s)];
      for (std::size_t i = 1; i < list.size(); ++i)
        if (rows.position[static_cast<std::size_t>(list[i])] != rows.position[static_cast<std::size_t>(list[i - 1])] + 1)
          QE_FAIL("Qwen3.5 layers need each sequence's rows in consecutive positions");
      first_position.push_back(rows.position[static_cast<std::size_t>(list.front())]);
      order.insert(order.end(), list.begin(), list.end());
      lengths.push_back(static_cast<int>(list.size()));
      one_token_each = one_token_each && list.size() == 1;
    }
  }

  // Gathers the rows of `normed` into packed order, lets `compute(x, y)` fill
  // the packed output, and scatters it back to the step's row order in `out`.
  template <typename Compute>
  void apply(const float* normed, int width, float* out, Compute&& compute) const {
    const std::size_t w = static_cast<std::size_t>(width);
    std::vector<float> x(order.size() * w), y(order.size() * w);
    for (std::size_t i = 0; i < order.size(); ++i)
      std::copy_n(normed + static_cast<std::size_t>(order[i]) * w, w, x.data() + i * w);
    compute(x.data(), y.data());
    for (std::size_t i = 0; i < order.size(); ++i)
      std::copy_n(y.data() + i * w, w, out + static_cast<std::size_t>(order[i]) * w);
  }
};

template <typename StateType>
StateType& layer_state(const StepRows& rows, int sequence, std::size_t layer) {
  auto* state = dynamic_cast<StateType*>(rows.states[static_cast<std::size_t>(sequence)]->layer_state(layer));
  QE_CHECK(state, "Qwen3.5 mixer: sequence has no state of this layer's kind");
  return *state;
}

class DeltaNetMixer final : public TokenMixer {
 public:
  struct State final : LayerState {
    qwen3_5::DeltaNetState deltanet;
  };

  DeltaNetMixer(qwen3_5::DeltaNetWeights weights, FastLinears linears)
      : net_(std::move(weights)), linears_(std::move(linears)) {}

  void forward(const StepRows& rows, const float* normed, float* out, MixerContext& context) const override {
    linears_.slot->pool = &context.pool;
    const PackedRows packed(rows);
    std::vector<qwen3_5::DeltaNetState*> states;
    for (int s : packed.sequences) states.push_back(&layer_state<State>(rows, s, context.layer_index).deltanet);
    packed.apply(normed, net_.dims().hidden_size, out, [&](const float* x, float* y) {
      // A decode step uses the recurrence; anything longer the chunked form (same result).
      // The layer's per-token loops share the step's pool with the projections; it
      // calls the projections outside its parallel regions, so they never nest.
      if (packed.one_token_each) net_.decode_step(x, states, y, &context.pool);
      else net_.prefill(x, packed.lengths, states, y, qwen3_5::GatedDeltaNet::kDefaultChunkSize, &context.pool);
    });
  }

  std::unique_ptr<LayerState> make_state() const override {
    auto state = std::make_unique<State>();
    state->deltanet = qwen3_5::DeltaNetState::zeros(net_.dims());
    return state;
  }

  std::uint64_t weight_bytes() const override { return linears_.bytes; }

 private:
  qwen3_5::GatedDeltaNet net_;
  FastLinears linears_;
};

class GatedAttentionMixer final : public TokenMixer {
 public:
  struct State final : LayerState {
    qwen3_5::AttentionKvCache cache;
  };

  GatedAttentionMixer(qwen3_5::GatedAttentionWeights weights, FastLinears linears)
      : attention_(std::move(weights)), linears_(std::move(linears)) {}

  void forward(const StepRows& rows, const float* normed, float* out, MixerContext& context) const override {
    linears_.slot->pool = &context.pool;
    const PackedRows packed(rows);
    std::vector<qwen3_5::AttentionKvCache*> caches;
    for (std::size_t i = 0; i < packed.sequences.size(); ++i) {
      auto& cache = layer_state<State>(rows, packed.sequences[i], context.layer_index).cache;
      // The layer's own cache must be exactly as long as the positions say.
      if (cache.length != packed.first_position[i])
        QE_FAIL("Qwen3.5 attention: cache length and position disagree");
      caches.push_back(&cache);
    }
    packed.apply(normed, attention_.dims().hidden_size, out, [&](const float* x, float* y) {
      if (packed.one_token_each) attention_.decode_step(x, caches, y, &context.pool);
      else attention_.forward(x, packed.lengths, caches, y, &context.pool);
    });
  }

  std::unique_ptr<LayerState> make_state() const override { return std::make_unique<State>(); }

  std::uint64_t weight_bytes() const override { return linears_.bytes; }

 private:
  qwen3_5::GatedAttention attention_;
  FastLinears linears_;
};

}  // namespace

std::unique_ptr<TokenMixer> build_qwen3_5_mixer(const Checkpoint& checkpoint, int layer,
                                                const std::optional<QuantConfig>& quant) {
  const LayerKind kind = checkpoint.config().layer_types.at(static_cast<std::size_t>(layer));
  FastLinears linears;
  const auto factory = linears.factory(quant);
  if (kind == LayerKind::linear_attention) {
    auto weights = qwen3_5::load_deltanet_weights(checkpoint, layer, factory);
    return std::make_unique<DeltaNetMixer>(std::move(weights), std::move(linears));
  }
  if (kind == LayerKind::full_attention) {
    auto weights = qwen3_5::load_attention_weights(checkpoint, layer, factory);
    return std::make_unique<GatedAttentionMixer>(std::move(weights), std::move(linears));
  }
  throw CheckpointError(fmt::format("{}: layer {} has kind {}, which Qwen3.5 does not use",
                                    checkpoint.directory().string(), layer, layer_kind_name(kind)));
}

}  // namespace quanteval::runtime
