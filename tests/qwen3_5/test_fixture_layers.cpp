// Qwen3.5 layers against the transformers 5.17 fixtures (fp32 math on the
// stored BF16 weights, or on the dequantized GPTQ weights):
//   - each decoder layer fed the fixture's input hidden states reproduces the
//     fixture's output hidden states (relative L2, bound and reason below);
//   - the whole model's logits (relative L2) and argmax at every position;
//   - the 16 greedy tokens via prefill + recurrent decode steps;
//   - batching: two sequences decoded together == each alone.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/model/qwen3_5/layers.hpp"
#include "runtime/checkpoint/safetensors.hpp"
#include "tests/qwen3_5/reference_model.hpp"
#include "tests/support/test_data.hpp"

namespace {

using quanteval::runtime::Checkpoint;
using quanteval::runtime::SafetensorsFile;
using quanteval::test::Qwen3_5ReferenceModel;
namespace q35 = quanteval::runtime::qwen3_5;

// Same fp32 math on the same weights, only the summation order differs: the
// measured errors are ~1e-6 (printed), so these bounds leave a wide margin for
// other compilers / FMA contraction while still catching any semantic slip
// (the smallest one found while writing this, RoPE frequencies not rounded to
// bf16, costs ~6e-5). The issue asks for logits within 1e-2; 1e-4 is stricter.
constexpr double kLayerTolerance = 1e-5;   // relative L2 per decoder layer
constexpr double kLogitsTolerance = 1e-4;  // relative L2 of the whole-model logits

struct Fixture {
  std::filesystem::path dir;
  std::vector<int> input_ids, argmax_per_position, greedy_new_tokens;
  std::vector<float> logits;         // [T, vocab]
  std::vector<float> hidden_states;  // [layers + 1, T, hidden]
  int layers_plus_one = 0, tokens = 0, hidden = 0, vocab = 0;

  // One hidden-state entry, [T, hidden].
  std::vector<float> hidden_entry(int index) const {
    const size_t size = static_cast<size_t>(tokens) * hidden;
    return {hidden_states.begin() + index * size, hidden_states.begin() + (index + 1) * size};
  }
};

// The fixture folder, or nullopt (with a message) when the test data is absent.
std::optional<Fixture> load_fixture(const std::string& name) {
  Fixture fixture;
  try {
    fixture.dir = quanteval::test::fixture("models/" + name);
  } catch (const quanteval::test::MissingTestData& missing) {
    MESSAGE("skipping: " << missing.what());
    return std::nullopt;
  }
  std::ifstream in(fixture.dir / "reference.json");
  REQUIRE(in.good());
  const nlohmann::json reference = nlohmann::json::parse(in);
  fixture.input_ids = reference.at("input_ids").get<std::vector<int>>();
  fixture.argmax_per_position = reference.at("argmax_per_position").get<std::vector<int>>();
  fixture.greedy_new_tokens = reference.at("greedy_new_tokens").get<std::vector<int>>();

  const SafetensorsFile file(fixture.dir / "reference_logits.safetensors");
  const auto logits = file.tensor("logits");
  const auto hidden = file.tensor("hidden_states");
  REQUIRE(logits.shape.size() == 2);
  REQUIRE(hidden.shape.size() == 3);
  fixture.tokens = static_cast<int>(logits.shape[0]);
  fixture.vocab = static_cast<int>(logits.shape[1]);
  fixture.layers_plus_one = static_cast<int>(hidden.shape[0]);
  fixture.hidden = static_cast<int>(hidden.shape[2]);
  REQUIRE(hidden.shape[1] == fixture.tokens);
  REQUIRE(fixture.input_ids.size() == static_cast<size_t>(fixture.tokens));
  fixture.logits = quanteval::runtime::to_float(logits);
  fixture.hidden_states = quanteval::runtime::to_float(hidden);
  return fixture;
}

double relative_l2(const std::vector<float>& actual, const std::vector<float>& expected) {
  REQUIRE(actual.size() == expected.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    diff += (static_cast<double>(actual[i]) - expected[i]) * (static_cast<double>(actual[i]) - expected[i]);
    norm += static_cast<double>(expected[i]) * expected[i];
  }
  return std::sqrt(diff / norm);
}

std::vector<int> argmax_rows(const std::vector<float>& logits, int vocab) {
  std::vector<int> result;
  for (size_t r = 0; r < logits.size() / vocab; ++r) {
    const auto row = logits.begin() + static_cast<std::ptrdiff_t>(r * vocab);
    result.push_back(static_cast<int>(std::max_element(row, row + vocab) - row));
  }
  return result;
}

// Greedy decoding of each prompt, all sequences in one batch: packed prefill, then decode steps.
std::vector<std::vector<int>> greedy_batch(const Qwen3_5ReferenceModel& model,
                                           const std::vector<std::vector<int>>& prompts, int new_tokens) {
  std::vector<Qwen3_5ReferenceModel::Sequence> sequences;
  for (size_t i = 0; i < prompts.size(); ++i) sequences.push_back(model.new_sequence());
  std::vector<Qwen3_5ReferenceModel::Sequence*> pointers;
  for (auto& sequence : sequences) pointers.push_back(&sequence);

  const std::vector<float> prefill_logits = model.prefill(prompts, pointers);
  const std::vector<int> prefill_argmax = argmax_rows(prefill_logits, model.vocab_size());
  std::vector<std::vector<int>> generated(prompts.size());
  std::vector<int> next;
  size_t row = 0;
  for (const auto& prompt : prompts) {
    row += prompt.size();
    next.push_back(prefill_argmax[row - 1]);
  }
  for (int step = 0; step < new_tokens; ++step) {
    for (size_t i = 0; i < prompts.size(); ++i) generated[i].push_back(next[i]);
    if (step + 1 == new_tokens) break;
    next = argmax_rows(model.decode_step(next, pointers), model.vocab_size());
  }
  return generated;
}

void check_checkpoint(const std::string& name) {
  const auto fixture = load_fixture(name);
  if (!fixture) return;
  const Checkpoint checkpoint = Checkpoint::open(fixture->dir);
  const Qwen3_5ReferenceModel model(checkpoint);
  const int layers = static_cast<int>(model.layers().size());
  REQUIRE(fixture->layers_plus_one == layers + 1);
  REQUIRE(fixture->hidden == model.hidden_size());
  REQUIRE(fixture->vocab == model.vocab_size());
  const int T = fixture->tokens;

  SUBCASE("each decoder layer from the fixture's input hidden states") {
    for (int l = 0; l < layers; ++l) {
      CAPTURE(l);
      const std::vector<float> input = fixture->hidden_entry(l);
      std::vector<float> output(input.size());
      q35::LayerState state = model.layers()[l].make_state();
      q35::LayerState* states[] = {&state};
      const int lengths[] = {T};
      model.layers()[l].prefill(input.data(), lengths, states, output.data());
      // The fixture's last entry is after the final norm (transformers replaces
      // the last layer's output with the normed one).
      if (l == layers - 1) model.final_norm(output.data(), T, output.data());
      const double error = relative_l2(output, fixture->hidden_entry(l + 1));
      MESSAGE(name << " layer " << l << " (" << std::string(quanteval::runtime::layer_kind_name(model.layers()[l].kind()))
                   << std::string(l == layers - 1 ? ", + final norm" : "") << "): relative L2 " << error);
      CHECK(error <= kLayerTolerance);
    }
  }

  SUBCASE("attention with exact fp32 RoPE frequencies: close, but only bf16-rounded ones reproduce the fixture") {
    const int l = layers - 1;
    REQUIRE(model.layers()[l].kind() == quanteval::runtime::LayerKind::full_attention);
    const q35::LinearFactory reference = [&checkpoint](const quanteval::runtime::LinearTensors& tensors) {
      return q35::reference_linear(checkpoint, tensors);
    };
    q35::DecoderLayerWeights weights = q35::load_decoder_layer_weights(checkpoint, l, reference);
    REQUIRE(weights.self_attn->dims.bf16_inv_freq);  // from_config: the checkpoint is bfloat16
    weights.self_attn->dims.bf16_inv_freq = false;
    const q35::DecoderLayer exact(std::move(weights));
    const std::vector<float> input = fixture->hidden_entry(l);
    std::vector<float> output(input.size());
    q35::LayerState state = exact.make_state();
    q35::LayerState* states[] = {&state};
    const int lengths[] = {T};
    exact.prefill(input.data(), lengths, states, output.data());
    model.final_norm(output.data(), T, output.data());
    const double error = relative_l2(output, fixture->hidden_entry(l + 1));
    MESSAGE(name << " attention layer with fp32 inv_freq: relative L2 " << error);
    CHECK(error > kLayerTolerance);
    CHECK(error <= 1e-3);
  }

  SUBCASE("DeltaNet layers on real weights: chunked prefill (chunk 64 and 5) == token-by-token recurrence") {
    const q35::LinearFactory reference = [&checkpoint](const quanteval::runtime::LinearTensors& tensors) {
      return q35::reference_linear(checkpoint, tensors);
    };
    for (int l = 0; l < layers; ++l) {
      if (model.layers()[l].kind() != quanteval::runtime::LayerKind::linear_attention) continue;
      CAPTURE(l);
      const q35::GatedDeltaNet deltanet(q35::load_deltanet_weights(checkpoint, l, reference));
      const std::vector<float> input = fixture->hidden_entry(l);  // any realistic input will do
      const int lengths[] = {T};
      auto run = [&](int chunk) {
        q35::DeltaNetState state = q35::DeltaNetState::zeros(deltanet.dims());
        q35::DeltaNetState* states[] = {&state};
        std::vector<float> out(input.size());
        if (chunk == 0) {
          deltanet.forward_recurrent(input.data(), lengths, states, out.data());
        } else {
          deltanet.prefill(input.data(), lengths, states, out.data(), chunk);
        }
        CHECK(state.tokens_seen == T);
        return out;
      };
      const std::vector<float> recurrent = run(0);
      for (int chunk : {64, 5}) {
        const double error = relative_l2(run(chunk), recurrent);
        MESSAGE(name << " DeltaNet layer " << l << " chunk " << chunk << " vs recurrent: relative L2 " << error);
        CHECK(error <= 1e-6);
      }
    }
  }

  SUBCASE("whole model: logits and argmax at every position") {
    auto sequence = model.new_sequence();
    Qwen3_5ReferenceModel::Sequence* pointers[] = {&sequence};
    const std::vector<std::vector<int>> prompt = {fixture->input_ids};
    const std::vector<float> logits = model.prefill(prompt, pointers);
    const double error = relative_l2(logits, fixture->logits);
    MESSAGE(name << " logits: relative L2 " << error);
    CHECK(error <= kLogitsTolerance);
    CHECK(argmax_rows(logits, model.vocab_size()) == fixture->argmax_per_position);
  }

  SUBCASE("prefill in two pieces (attention cache and DeltaNet states carried) == one piece") {
    auto sequence = model.new_sequence();
    Qwen3_5ReferenceModel::Sequence* pointers[] = {&sequence};
    const int split = 10;
    const std::vector<std::vector<int>> first = {{fixture->input_ids.begin(), fixture->input_ids.begin() + split}};
    const std::vector<std::vector<int>> second = {{fixture->input_ids.begin() + split, fixture->input_ids.end()}};
    std::vector<float> logits = model.prefill(first, pointers);
    const std::vector<float> rest = model.prefill(second, pointers);
    logits.insert(logits.end(), rest.begin(), rest.end());
    const double error = relative_l2(logits, fixture->logits);
    MESSAGE(name << " logits from a 10 + 14 token prefill: relative L2 " << error);
    CHECK(error <= kLogitsTolerance);
    CHECK(argmax_rows(logits, model.vocab_size()) == fixture->argmax_per_position);
  }

  SUBCASE("greedy: prefill + recurrent decode reproduces the 16 reference tokens; batching changes nothing") {
    const int n = static_cast<int>(fixture->greedy_new_tokens.size());
    const std::vector<int>& prompt = fixture->input_ids;
    const std::vector<int> other(prompt.rbegin(), prompt.rbegin() + 9);  // a different, shorter prompt
    const auto alone = greedy_batch(model, {prompt}, n);
    CHECK(alone[0] == fixture->greedy_new_tokens);
    const auto other_alone = greedy_batch(model, {other}, n);
    const auto together = greedy_batch(model, {other, prompt}, n);
    CHECK(together[0] == other_alone[0]);
    CHECK(together[1] == fixture->greedy_new_tokens);
  }
}

}  // namespace

TEST_CASE("qwen3_5 tiny bf16: layers, logits and greedy tokens match transformers") {
  check_checkpoint("qwen3_5-tiny-bf16");
}

TEST_CASE("qwen3_5 tiny GPTQ g64 act-order: layers, logits and greedy tokens match transformers") {
  check_checkpoint("qwen3_5-tiny-gptq-g64-actorder");
}

TEST_CASE("qwen3_5 layers: constructor and state checks") {
  q35::DeltaNetWeights w;
  w.dims = q35::DeltaNetDims{16, 2, 3, 8, 8, 4};  // 3 value heads over 2 key heads
  CHECK_THROWS_AS(q35::GatedDeltaNet{w}, std::invalid_argument);
  w.dims.num_value_heads = 4;
  CHECK_THROWS_AS(q35::GatedDeltaNet{w}, std::invalid_argument);  // no projections
  const q35::LinearFn zero = [](const float*, int, float*) {};
  w.in_proj_qkv = w.in_proj_z = w.in_proj_a = w.in_proj_b = w.out_proj = zero;
  w.conv_weight.assign(static_cast<size_t>(w.dims.conv_dim()) * 4, 0.0f);
  w.A_log.assign(4, 0.0f);
  w.dt_bias.assign(4, 0.0f);
  w.norm_weight.assign(8, 1.0f);
  const q35::GatedDeltaNet layer(w);
  q35::DeltaNetState wrong;  // empty: sizes do not match the layer
  q35::DeltaNetState* states[] = {&wrong};
  std::vector<float> x(16), y(16);
  CHECK_THROWS_AS(layer.decode_step(x.data(), states, y.data()), std::invalid_argument);
}
