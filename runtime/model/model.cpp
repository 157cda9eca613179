#include "runtime/model/model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "runtime/base/check.hpp"
#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/checkpoint/tensor_table.hpp"
#include "runtime/kernels/cpu/backend.hpp"
#include "runtime/kernels/cuda/backend.hpp"
#include "runtime/model/attention.hpp"
#include "runtime/model/qwen3_5/gated_deltanet.hpp"
#include "runtime/platform/host_memory.hpp"

namespace quanteval::runtime {

namespace {

std::unique_ptr<Backend> make_backend(const LoadOptions& options) {
  if (options.device == Device::cuda) return make_cuda_backend({.linears = options.linears});
  return std::make_unique<CpuBackend>(options.threads, options.linears);
}

// Builds the model's weights from `source` through `backend`, by the names of the
// tensor table. Every tensor is handed to the backend and released at once, so
// at most one tensor's source pages are resident at a time.
class WeightBuilder {
 public:
  WeightBuilder(const WeightSource& source, Backend& backend)
      : source_(source), backend_(backend), config_(source.config()) {}

  std::unique_ptr<LinearWeight> linear(const std::string& prefix, std::int64_t out_features, std::int64_t in_features) {
    const LinearSource tensors = source_.linear(prefix, out_features, in_features);
    auto weight = backend_.linear(tensors);
    source_.release(tensors);
    return weight;
  }

  // A norm weight; zero-centred norms (Qwen3.5) store w - 1 and apply 1 + w.
  std::unique_ptr<VectorWeight> norm(const std::string& name, std::int64_t width, bool zero_centered) {
    std::vector<float> w = source_.vector(name, width);
    if (zero_centered)
      for (float& v : w) v += 1.0f;
    return backend_.vector(std::move(w));
  }

  std::unique_ptr<VectorWeight> vector(const std::string& name, std::int64_t elements) {
    return backend_.vector(source_.vector(name, elements));
  }

  std::unique_ptr<TokenMixer> attention(const LayerTensorNames& n, LayerKind kind, int kv_layer) {
    const AttentionSpec spec = attention_spec(config_, kind, kv_layer);
    const std::int64_t hidden = config_.hidden_size;
    const std::int64_t q_width = static_cast<std::int64_t>(spec.heads) * spec.head_dim;
    const std::int64_t kv_width = static_cast<std::int64_t>(spec.kv_heads) * spec.head_dim;
    AttentionMixer::Weights w;
    w.q_proj = linear(n.q_proj, q_width * (spec.gated ? 2 : 1), hidden);
    w.k_proj = linear(n.k_proj, kv_width, hidden);
    w.v_proj = linear(n.v_proj, kv_width, hidden);
    w.o_proj = linear(n.o_proj, hidden, q_width);
    if (config_.qk_norm) {
      w.q_norm = norm(n.q_norm, spec.head_dim, config_.zero_centered_norms);
      w.k_norm = norm(n.k_norm, spec.head_dim, config_.zero_centered_norms);
    }
    return std::make_unique<AttentionMixer>(spec, std::move(w));
  }

  std::unique_ptr<TokenMixer> deltanet(const LayerTensorNames& n, int state_layer) {
    const DeltaNetSpec spec = deltanet_spec(config_, state_layer);
    const std::int64_t hidden = config_.hidden_size;
    GatedDeltaNetMixer::Weights w;
    w.in_proj_qkv = linear(n.in_proj_qkv, spec.conv_dim(), hidden);
    w.in_proj_z = linear(n.in_proj_z, spec.value_dim(), hidden);
    w.in_proj_b = linear(n.in_proj_b, spec.value_heads, hidden);
    w.in_proj_a = linear(n.in_proj_a, spec.value_heads, hidden);
    w.out_proj = linear(n.out_proj, hidden, spec.value_dim());
    // [conv_dim, 1, kernel] is [conv_dim, kernel] in memory.
    w.conv_weight = vector(n.conv1d, static_cast<std::int64_t>(spec.conv_dim()) * spec.conv_kernel);
    w.A_log = vector(n.A_log, spec.value_heads);
    w.dt_bias = vector(n.dt_bias, spec.value_heads);
    w.norm = vector(n.gated_norm, spec.value_head_dim);  // used as stored: not zero-centred
    return std::make_unique<GatedDeltaNetMixer>(spec, std::move(w));
  }

  ModelWeights build() {
    const ModelConfig& c = config_;
    const std::int64_t hidden = c.hidden_size;
    const bool zero_centered = c.zero_centered_norms;
    ModelWeights weights;
    const DenseSource table = source_.table(TensorNames::embed_tokens, c.vocab_size, hidden);
    weights.embed_tokens = backend_.table(table);
    source_.release_table(TensorNames::embed_tokens);
    int kv_layer = 0, state_layer = 0;
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const LayerTensorNames n = TensorNames::layer(i);
      DecoderLayer layer;
      layer.kind = c.layer_types.at(static_cast<std::size_t>(i));
      layer.input_norm = norm(n.input_norm, hidden, zero_centered);
      layer.post_attention_norm = norm(n.post_attention_norm, hidden, zero_centered);
      layer.mixer =
          layer.kind == LayerKind::linear_attention ? deltanet(n, state_layer++) : attention(n, layer.kind, kv_layer++);
      layer.mlp.gate_proj = linear(n.gate_proj, c.intermediate_size, hidden);
      layer.mlp.up_proj = linear(n.up_proj, c.intermediate_size, hidden);
      layer.mlp.down_proj = linear(n.down_proj, hidden, c.intermediate_size);
      weights.layers.push_back(std::move(layer));
    }
    weights.final_norm = norm(TensorNames::final_norm, hidden, zero_centered);
    if (source_.has_linear(TensorNames::lm_head)) {
      weights.lm_head = linear(TensorNames::lm_head, c.vocab_size, hidden);
    } else if (c.tie_word_embeddings) {
      weights.lm_head = backend_.linear_from_table(*weights.embed_tokens);
      weights.lm_head_shares_embedding = true;
    } else {
      throw CheckpointError(fmt::format("{}: no lm_head and tie_word_embeddings is false", source_.describe()));
    }
    return weights;
  }

 private:
  const WeightSource& source_;
  Backend& backend_;
  const ModelConfig& config_;
};

MemoryShape memory_shape(const ModelConfig& c, int block_tokens) {
  MemoryShape shape;
  shape.block_tokens = block_tokens;
  shape.kv_layers = static_cast<int>(c.num_full_attention_layers());
  shape.kv_heads = static_cast<int>(c.num_key_value_heads);
  shape.head_dim = static_cast<int>(c.head_dim);
  shape.state_layers = static_cast<int>(c.num_linear_attention_layers());
  if (shape.state_layers > 0) {
    const LinearAttentionConfig& la = c.linear_attention;
    shape.conv_floats = (la.conv_kernel_size - 1) * la.conv_dim();
    shape.recurrent_floats = la.num_value_heads * la.key_head_dim * la.value_head_dim;
  }
  return shape;
}

void check_supported(const ModelConfig& config, const std::string& where) {
  if (config.hidden_act != "silu")
    throw CheckpointError(fmt::format("{}: hidden_act '{}' is not supported (only silu)", where, config.hidden_act));
  if (config.rope_type != "default")
    throw CheckpointError(fmt::format("{}: rope_type '{}' is not supported", where, config.rope_type));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Small pieces

std::vector<float> rope_inverse_frequencies(double theta, int rotary_dim, std::string_view model_dtype) {
  // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), all in fp32 --
  // then the buffer is cast with the model to its dtype, so a bf16 (fp16) model
  // rotates by bf16- (fp16-) rounded frequencies. Matching that rounding is
  // worth ~1e-3 relative L2 on the logits of the bf16 fixtures.
  std::vector<float> inv_freq(static_cast<std::size_t>(rotary_dim / 2));
  for (int i = 0; i < rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    float value = 1.0f / std::pow(static_cast<float>(theta), exponent);
    if (model_dtype == "bfloat16")
      value = bf16_to_float(float_to_bf16(value));
    else if (model_dtype == "float16")
      value = f16_to_float(float_to_f16(value));
    inv_freq[static_cast<std::size_t>(i)] = value;
  }
  return inv_freq;
}

std::uint64_t default_kv_cache_bytes() {
  const std::uint64_t ram = physical_memory_bytes();
  if (ram == 0) return 256ull << 20;
  return std::min<std::uint64_t>(ram / 4, 4ull << 30);
}

bool StepBatch::one_row_each() const {
  for (const auto& s : sequences)
    if (s.rows != 1) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Model

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, const LoadOptions& options) {
  return load(dir, options, nullptr);
}

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, const LoadOptions& options,
                                   std::unique_ptr<Backend> backend) {
  const Checkpoint checkpoint = Checkpoint::open(dir);
  checkpoint.validate();
  auto model = build(CheckpointWeights(checkpoint), options, std::move(backend));
  model->directory_ = dir;
  return model;
}

std::unique_ptr<Model> Model::build(const WeightSource& source, const LoadOptions& options) {
  return build(source, options, nullptr);
}

std::unique_ptr<Model> Model::build(const WeightSource& source, const LoadOptions& options,
                                    std::unique_ptr<Backend> backend) {
  check_supported(source.config(), source.describe());
  std::unique_ptr<Model> model(new Model());
  model->config_ = source.config();
  model->backend_ = backend ? std::move(backend) : make_backend(options);
  model->weights_ = WeightBuilder(source, *model->backend_).build();
  std::uint64_t budget = options.kv_cache_bytes;
  if (budget == 0) {
    const auto device = model->backend_->device_memory();
    budget = device ? device_memory_budget(device->free_bytes, device->total_bytes, options.gpu_memory_utilization,
                                           kGpuScratchReserve)
                    : default_kv_cache_bytes();
  }
  const MemoryPlan plan =
      plan_memory(memory_shape(model->config_, options.kv_block_tokens), budget, options.max_sequences);
  model->backend_->allocate_memory(plan);
  model->memory_ = std::make_unique<HybridMemory>(plan);
  return model;
}

std::uint64_t Model::weight_bytes() const {
  std::uint64_t total = weights_.lm_head->weight_bytes();
  for (const auto& layer : weights_.layers) {
    total += layer.mixer->weight_bytes() + layer.mlp.gate_proj->weight_bytes() + layer.mlp.up_proj->weight_bytes() +
             layer.mlp.down_proj->weight_bytes();
    total += static_cast<std::uint64_t>(layer.input_norm->size() + layer.post_attention_norm->size()) * sizeof(float);
  }
  return total;
}

std::uint64_t Model::resident_weight_bytes() const {
  // A tied lm_head shares the table, and weight_bytes() already counts it.
  return weight_bytes() + (weights_.lm_head_shares_embedding ? 0 : weights_.embed_tokens->bytes());
}

std::int64_t Model::max_sequence_tokens() const {
  std::int64_t limit = memory_->capacity_tokens();
  if (config_.max_position_embeddings > 0) limit = std::min(limit, config_.max_position_embeddings);
  return limit;
}

void Model::check_tokens(std::span<const TokenId> ids) const {
  if (ids.empty()) throw ModelInputError("empty token sequence: a prompt needs at least one token");
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      throw ModelInputError(fmt::format("token id {} at index {} is outside the model vocabulary [0, {})", ids[i], i,
                                        config_.vocab_size));
}

std::unique_ptr<SequenceState> Model::try_open_sequence(std::int64_t max_tokens) {
  if (max_tokens <= 0) throw ModelInputError("a sequence needs room for at least one token");
  if (config_.max_position_embeddings > 0 && max_tokens > config_.max_position_embeddings)
    throw ModelInputError(
        fmt::format("sequence of {} tokens (prompt + max new tokens) exceeds the model's context "
                    "of {} (max_position_embeddings)",
                    max_tokens, config_.max_position_embeddings));
  if (!memory_->fits(max_tokens)) {
    const MemoryPlan& plan = memory_->plan();
    throw ModelInputError(fmt::format(
        "sequence of {} tokens (prompt + max new tokens) does not fit the model's memory: its budget holds {} tokens "
        "of K/V ({} bytes per token){}",
        max_tokens, plan.capacity_tokens(), plan.shape.kv_bytes_per_token(),
        plan.shape.recurrent()
            ? fmt::format(" and {} recurrent state slots of {} bytes", plan.slots, plan.shape.slot_bytes())
            : std::string()));
  }
  auto state = memory_->try_admit(max_tokens);
  if (state && state->slot() >= 0) backend_->clear_slot(state->slot());
  return state;
}

std::unique_ptr<SequenceState> Model::open_sequence(std::int64_t max_tokens) {
  auto state = try_open_sequence(max_tokens);
  if (!state)
    throw ModelInputError(fmt::format(
        "the model's memory is full: {} tokens requested, {} of {} K/V blocks and {} of "
        "{} state slots free",
        max_tokens, memory_->free_blocks(), memory_->plan().blocks, memory_->free_slots(), memory_->plan().slots));
  return state;
}

StepBatch Model::make_batch(std::span<const Step> steps, std::vector<std::int64_t>& logit_rows) const {
  StepBatch batch;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    if (!step.state) throw std::invalid_argument("Model::forward: step without a sequence");
    check_tokens(step.tokens);
    const auto count = static_cast<std::int64_t>(step.tokens.size());
    if (step.state->length() + count > step.state->capacity())
      throw ModelInputError(fmt::format("sequence would grow to {} tokens but only {} were reserved",
                                        step.state->length() + count, step.state->capacity()));
    for (std::size_t j = 0; j < i; ++j) QE_CHECK(steps[j].state != step.state, "a sequence appears twice in one step");
    batch.sequences.push_back({step.state, batch.rows(), count, step.state->length()});
    for (std::int64_t j = 0; j < count; ++j) {
      if (step.all_logits || j == count - 1) logit_rows.push_back(batch.rows());
      batch.tokens.push_back(step.tokens[static_cast<std::size_t>(j)]);
      batch.row_sequence.push_back(static_cast<int>(i));
      batch.positions.push_back(step.state->length() + j);
    }
  }
  return batch;
}

Model::StepTensors Model::step_tensors(std::int64_t rows) const {
  Backend& b = *backend_;
  const std::int64_t hidden = config_.hidden_size, intermediate = config_.intermediate_size;
  return {b.scratch(rows, hidden), b.scratch(rows, hidden), b.scratch(rows, hidden), b.scratch(rows, intermediate),
          b.scratch(rows, intermediate)};
}

// One decoder layer on t.normed (= input_norm(t.residual)): mixer, post-attention
// norm, MLP. The residual add that ends the layer is fused with the next layer's
// input norm when there is one (next_input_norm), leaving t.normed ready for it.
void Model::run_layer(const DecoderLayer& layer, const StepBatch& batch, const StepTensors& t,
                      const VectorWeight* next_input_norm) const {
  Backend& b = *backend_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  layer.mixer->forward(b, batch, t.normed, t.branch);
  b.add_rms_norm(t.residual, t.branch, *layer.post_attention_norm, eps, t.normed);
  const LinearWeight* gate_up[] = {layer.mlp.gate_proj.get(), layer.mlp.up_proj.get()};
  const Tensor gate_up_out[] = {t.gate, t.up};
  b.matmul_shared_input(gate_up, t.normed, gate_up_out);
  b.swiglu(t.gate, t.up, t.gate);
  b.matmul(*layer.mlp.down_proj, t.gate, t.branch);
  if (next_input_norm)
    b.add_rms_norm(t.residual, t.branch, *next_input_norm, eps, t.normed);
  else
    b.add(t.residual, t.branch);
}

std::vector<float> Model::forward(std::span<const Step> steps, ForwardTrace* trace) {
  std::vector<std::int64_t> logit_rows;  // which rows of the batch produce logits, in output order
  const StepBatch batch = make_batch(steps, logit_rows);
  Backend& b = *backend_;
  const auto step_scope = b.begin_step();
  const std::int64_t m = batch.rows(), hidden = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const StepTensors t = step_tensors(m);  // residual: the residual stream [M, hidden]
  auto record = [&](Tensor x) {
    const std::size_t old = trace->hidden_states.size();
    trace->hidden_states.resize(old + static_cast<std::size_t>(m * hidden));
    b.read(x, trace->hidden_states.data() + old);
  };

  b.embed(*weights_.embed_tokens, batch.tokens, t.residual);
  if (trace) {
    trace->rows = m;
    trace->width = hidden;
    trace->hidden_states.clear();
    record(t.residual);
  }
  const std::size_t layers = weights_.layers.size();
  b.rms_norm(t.residual, *weights_.layers.front().input_norm, eps, t.normed);
  for (std::size_t l = 0; l < layers; ++l) {
    const ArenaMark layer_scratch = b.scratch_mark();  // the mixer's tensors end with the layer
    run_layer(weights_.layers[l], batch, t, l + 1 < layers ? weights_.layers[l + 1].input_norm.get() : nullptr);
    b.release_scratch(layer_scratch);
    if (trace && l + 1 < layers) record(t.residual);
  }
  for (const auto& s : batch.sequences) s.state->advance(s.rows);

  // Final norm and lm_head only for the rows whose logits are wanted: at decode the
  // lm_head is the largest single matrix, and prefill needs only the last row.
  const auto out_rows = static_cast<std::int64_t>(logit_rows.size());
  Tensor selected = b.scratch(out_rows, hidden);
  b.gather_rows(t.residual, logit_rows, selected);
  b.rms_norm(selected, *weights_.final_norm, eps, selected);
  if (trace) {
    b.rms_norm(t.residual, *weights_.final_norm, eps, t.normed);
    record(t.normed);
  }
  Tensor logits = b.scratch(out_rows, config_.vocab_size);
  b.matmul(*weights_.lm_head, selected, logits);
  std::vector<float> host(static_cast<std::size_t>(out_rows * config_.vocab_size));  // [R, vocab]
  b.read(logits, host.data());
  b.end_step();
  return host;
}

std::vector<float> Model::logits_for(std::span<const TokenId> ids) {
  check_tokens(ids);
  auto state = open_sequence(static_cast<std::int64_t>(ids.size()));
  const Step step{state.get(), ids, true};
  return forward(std::span<const Step>(&step, 1));
}

ForwardTrace Model::hidden_states_for(std::span<const TokenId> ids) {
  check_tokens(ids);
  auto state = open_sequence(static_cast<std::int64_t>(ids.size()));
  const Step step{state.get(), ids, true};
  ForwardTrace trace;
  forward(std::span<const Step>(&step, 1), &trace);
  return trace;
}

std::vector<float> Model::layer_for(int layer, std::span<const float> hidden) {
  if (layer < 0 || layer >= static_cast<int>(weights_.layers.size()))
    throw std::invalid_argument(fmt::format("layer_for: layer {} outside [0, {})", layer, weights_.layers.size()));
  const std::int64_t width = config_.hidden_size;
  if (hidden.empty() || hidden.size() % static_cast<std::size_t>(width) != 0)
    throw std::invalid_argument(fmt::format("layer_for: {} values are not rows of {}", hidden.size(), width));
  const auto tokens = static_cast<std::int64_t>(hidden.size()) / width;
  auto state = open_sequence(tokens);
  StepBatch batch;
  batch.sequences.push_back({state.get(), 0, tokens, 0});
  for (std::int64_t p = 0; p < tokens; ++p) {
    batch.tokens.push_back(0);  // unused: the layer's input is written below
    batch.positions.push_back(p);
    batch.row_sequence.push_back(0);
  }
  Backend& b = *backend_;
  const auto step_scope = b.begin_step();
  const DecoderLayer& l = weights_.layers[static_cast<std::size_t>(layer)];
  const StepTensors t = step_tensors(tokens);
  b.write(t.residual, hidden.data());
  b.rms_norm(t.residual, *l.input_norm, static_cast<float>(config_.rms_norm_eps), t.normed);
  run_layer(l, batch, t, nullptr);
  std::vector<float> out(hidden.size());
  b.read(t.residual, out.data());
  b.end_step();
  return out;
}

}  // namespace quanteval::runtime
