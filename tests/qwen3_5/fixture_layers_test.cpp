// Qwen3.5 against the transformers 5.17 fixtures (fp32 math on the stored BF16
// weights, or on the dequantized GPTQ weights), through the one decoder stack
// with the CPU backend's reference projections (fp32 weights, plain loops) so
// that only the layer math is being compared:
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
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/kernels/cpu/delta_rule.hpp"
#include "runtime/model/model.hpp"
#include "runtime/model/qwen3_5/gated_deltanet.hpp"
#include "runtime/model/reference.hpp"
#include "tests/support/test_data.hpp"

namespace {

using namespace quanteval::runtime;

// Same fp32 math on the same weights, only the summation order differs: the
// measured errors are ~1e-6 (printed), so these bounds leave a wide margin for
// other compilers / FMA contraction while still catching any semantic slip
// (the smallest one found while writing this, RoPE frequencies not rounded to
// bf16, costs ~6e-5). The issue asks for logits within 1e-2; 1e-4 is stricter.
constexpr double kLayerTolerance = 1e-5;   // relative L2 per decoder layer
constexpr double kLogitsTolerance = 1e-4;  // relative L2 of the whole-model logits

struct Fixture {
  std::filesystem::path dir;
  std::vector<TokenId> input_ids, argmax_per_position, greedy_new_tokens;
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
  fixture.input_ids = reference.at("input_ids").get<std::vector<TokenId>>();
  fixture.argmax_per_position = reference.at("argmax_per_position").get<std::vector<TokenId>>();
  fixture.greedy_new_tokens = reference.at("greedy_new_tokens").get<std::vector<TokenId>>();

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
  fixture.logits = to_float(logits);
  fixture.hidden_states = to_float(hidden);
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

std::vector<TokenId> argmax_rows(const std::vector<float>& logits, int vocab) {
  std::vector<TokenId> result;
  for (size_t r = 0; r < logits.size() / vocab; ++r) {
    const auto row = logits.begin() + static_cast<std::ptrdiff_t>(r * vocab);
    result.push_back(static_cast<TokenId>(std::max_element(row, row + vocab) - row));
  }
  return result;
}

// Greedy decoding of each prompt, all sequences in one batch: one prefill step, then decode steps.
std::vector<std::vector<TokenId>> greedy_batch(Model& model, const std::vector<std::vector<TokenId>>& prompts,
                                               int new_tokens) {
  std::vector<std::unique_ptr<SequenceState>> states;
  std::vector<Model::Step> steps;
  for (const auto& prompt : prompts) {
    states.push_back(model.open_sequence(static_cast<std::int64_t>(prompt.size()) + new_tokens));
    steps.push_back({states.back().get(), prompt, false});
  }
  std::vector<TokenId> next = argmax_rows(model.forward(steps), static_cast<int>(model.config().vocab_size));
  std::vector<std::vector<TokenId>> generated(prompts.size());
  for (int step = 0; step < new_tokens; ++step) {
    for (size_t i = 0; i < prompts.size(); ++i) generated[i].push_back(next[i]);
    if (step + 1 == new_tokens) break;
    for (size_t i = 0; i < prompts.size(); ++i) steps[i].tokens = std::span<const TokenId>(&next[i], 1);
    next = argmax_rows(model.forward(steps), static_cast<int>(model.config().vocab_size));
  }
  return generated;
}

// The final zero-centred RMSNorm, as transformers applies it to the last layer's output.
std::vector<float> final_norm(const Checkpoint& checkpoint, std::vector<float> x) {
  const std::vector<float> w = to_float(checkpoint.tensor("model.norm.weight"));
  const size_t width = w.size();
  const double eps = checkpoint.config().rms_norm_eps;
  for (size_t r = 0; r < x.size() / width; ++r) {
    double sum = 0;
    for (size_t i = 0; i < width; ++i) sum += static_cast<double>(x[r * width + i]) * x[r * width + i];
    const double inverse = 1.0 / std::sqrt(sum / static_cast<double>(width) + eps);
    for (size_t i = 0; i < width; ++i) x[r * width + i] = static_cast<float>(x[r * width + i] * inverse * (1.0 + w[i]));
  }
  return x;
}

// y = x W^T (+ b) with the checkpoint's weights as fp32 (GPTQ dequantized), plain loops.
std::vector<float> project(const Checkpoint& checkpoint, const std::string& prefix, const std::vector<float>& x,
                           int rows) {
  const LinearTensors t = checkpoint.linear(prefix);
  const std::vector<float> w =
      t.quantized ? dequantize_reference(view_gptq_weight(t, *checkpoint.quant_config()).weight) : to_float(*t.weight);
  const auto n = static_cast<size_t>(t.out_features), k = static_cast<size_t>(t.in_features);
  std::vector<float> y(static_cast<size_t>(rows) * n);
  for (size_t r = 0; r < static_cast<size_t>(rows); ++r)
    for (size_t o = 0; o < n; ++o) {
      float acc = 0.0f;
      for (size_t i = 0; i < k; ++i) acc += x[r * k + i] * w[o * k + i];
      y[r * n + o] = acc;
    }
  return y;
}

void check_checkpoint(const std::string& name) {
  const auto fixture = load_fixture(name);
  if (!fixture) return;
  const Checkpoint checkpoint = Checkpoint::open(fixture->dir);
  const auto model = Model::load(fixture->dir, {.threads = 2, .linears = LinearKernels::reference});
  const ModelConfig& config = model->config();
  const int layers = static_cast<int>(config.num_hidden_layers);
  REQUIRE(fixture->layers_plus_one == layers + 1);
  REQUIRE(fixture->hidden == config.hidden_size);
  REQUIRE(fixture->vocab == config.vocab_size);
  const int T = fixture->tokens;

  SUBCASE("each decoder layer from the fixture's input hidden states") {
    for (int l = 0; l < layers; ++l) {
      CAPTURE(l);
      std::vector<float> output = model->layer_for(l, fixture->hidden_entry(l));
      // The fixture's last entry is after the final norm (transformers replaces
      // the last layer's output with the normed one).
      if (l == layers - 1) output = final_norm(checkpoint, output);
      const double error = relative_l2(output, fixture->hidden_entry(l + 1));
      MESSAGE(name << " layer " << l << " (" << std::string(layer_kind_name(config.layer_types[l]))
                   << std::string(l == layers - 1 ? ", + final norm" : "") << "): relative L2 " << error);
      CHECK(error <= kLayerTolerance);
    }
  }

  SUBCASE("attention with exact fp32 RoPE frequencies: close, but only bf16-rounded ones reproduce the fixture") {
    REQUIRE(config.layer_types[layers - 1] == LayerKind::full_attention);
    REQUIRE(config.torch_dtype == "bfloat16");
    // The plain reference path, once with the bf16-rounded frequencies the fast
    // path uses and once with exact ones; only the last (attention) layer rotates.
    const auto rounded = reference_forward(checkpoint, fixture->input_ids);
    const auto exact = reference_forward(checkpoint, fixture->input_ids, {.exact_rope_frequencies = true});
    const auto last = [&](const ReferenceOutput& out) {
      const size_t size = static_cast<size_t>(T) * fixture->hidden;
      return std::vector<float>(out.hidden_states.end() - static_cast<std::ptrdiff_t>(size), out.hidden_states.end());
    };
    const double rounded_error = relative_l2(last(rounded), fixture->hidden_entry(layers));
    const double exact_error = relative_l2(last(exact), fixture->hidden_entry(layers));
    MESSAGE(name << " last layer with bf16 inv_freq: relative L2 " << rounded_error
                 << ", with fp32 inv_freq: " << exact_error);
    CHECK(rounded_error <= kLayerTolerance);
    CHECK(exact_error > kLayerTolerance);
    CHECK(exact_error <= 1e-3);
  }

  SUBCASE("DeltaNet layers on real weights: chunked prefill (chunk 64 and 5) == token-by-token recurrence") {
    const DeltaNetSpec spec = deltanet_spec(config, 0);
    for (int l = 0; l < layers; ++l) {
      if (config.layer_types[l] != LayerKind::linear_attention) continue;
      CAPTURE(l);
      const std::string p = "model.layers." + std::to_string(l) + ".linear_attn.";
      const std::vector<float> input = fixture->hidden_entry(l);  // any realistic input will do
      const auto qkv = project(checkpoint, p + "in_proj_qkv", input, T),
                 z = project(checkpoint, p + "in_proj_z", input, T);
      const auto b = project(checkpoint, p + "in_proj_b", input, T), a = project(checkpoint, p + "in_proj_a", input, T);
      const auto conv = to_float(checkpoint.tensor(p + "conv1d.weight")),
                 A_log = to_float(checkpoint.tensor(p + "A_log"));
      const auto dt_bias = to_float(checkpoint.tensor(p + "dt_bias")),
                 norm = to_float(checkpoint.tensor(p + "norm.weight"));
      const DeltaNetCpuWeights weights{conv.data(), nullptr, A_log.data(), dt_bias.data(), norm.data()};
      auto run = [&](int chunk) {
        std::vector<float> conv_state(static_cast<size_t>(spec.conv_kernel - 1) * spec.conv_dim(), 0.0f);
        std::vector<float> state(static_cast<size_t>(spec.value_heads) * spec.key_head_dim * spec.value_head_dim, 0.0f);
        const DeltaNetRun runs[] = {{0, T, conv_state.data(), state.data()}};
        std::vector<float> out(static_cast<size_t>(T) * spec.value_dim());
        gated_deltanet_cpu(spec, weights, runs, qkv.data(), z.data(), b.data(), a.data(), out.data(), chunk, nullptr);
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
    const std::vector<float> logits = model->logits_for(fixture->input_ids);
    const double error = relative_l2(logits, fixture->logits);
    MESSAGE(name << " logits: relative L2 " << error);
    CHECK(error <= kLogitsTolerance);
    CHECK(argmax_rows(logits, fixture->vocab) == fixture->argmax_per_position);
  }

  SUBCASE("prefill in two pieces (attention cache and DeltaNet states carried) == one piece") {
    auto state = model->open_sequence(T);
    const int split = 10;
    const std::span<const TokenId> ids(fixture->input_ids);
    const Model::Step first{state.get(), ids.subspan(0, split), true};
    std::vector<float> logits = model->forward(std::span<const Model::Step>(&first, 1));
    const Model::Step second{state.get(), ids.subspan(split), true};
    const std::vector<float> rest = model->forward(std::span<const Model::Step>(&second, 1));
    logits.insert(logits.end(), rest.begin(), rest.end());
    const double error = relative_l2(logits, fixture->logits);
    MESSAGE(name << " logits from a 10 + 14 token prefill: relative L2 " << error);
    CHECK(error <= kLogitsTolerance);
    CHECK(argmax_rows(logits, fixture->vocab) == fixture->argmax_per_position);
  }

  SUBCASE("greedy: prefill + recurrent decode reproduces the 16 reference tokens; batching changes nothing") {
    const int n = static_cast<int>(fixture->greedy_new_tokens.size());
    const std::vector<TokenId>& prompt = fixture->input_ids;
    const std::vector<TokenId> other(prompt.rbegin(), prompt.rbegin() + 9);  // a different, shorter prompt
    const auto alone = greedy_batch(*model, {prompt}, n);
    CHECK(alone[0] == fixture->greedy_new_tokens);
    const auto other_alone = greedy_batch(*model, {other}, n);
    const auto together = greedy_batch(*model, {other, prompt}, n);
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

TEST_CASE("Gated DeltaNet: inconsistent head counts are refused") {
  DeltaNetSpec spec{2, 3, 8, 8, 4, 1e-6f, 0};  // 3 value heads over 2 key heads
  std::vector<float> zeros(1024, 0.0f);
  const DeltaNetCpuWeights weights{zeros.data(), nullptr, zeros.data(), zeros.data(), zeros.data()};
  std::vector<float> conv(1024), state(1024), out(1024);
  const DeltaNetRun runs[] = {{0, 1, conv.data(), state.data()}};
  CHECK_THROWS_AS(gated_deltanet_cpu(spec, weights, runs, zeros.data(), zeros.data(), zeros.data(), zeros.data(),
                                     out.data(), 0, nullptr),
                  std::invalid_argument);
}
