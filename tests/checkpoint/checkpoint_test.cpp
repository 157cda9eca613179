// Checkpoint: opening model directories, name normalization, sharding, the
// tensor table and the inspect numbers.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "runtime/checkpoint/checkpoint.hpp"
#include "tests/checkpoint/safetensors_writer.hpp"
#include "tests/support/test_data.hpp"

namespace rt = quanteval::runtime;
namespace qt = quanteval::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kModels[] = {"qwen2-tiny-bf16",   "qwen2-tiny-gptq-g64-actorder-fp16",
                               "qwen3-tiny-bf16",   "qwen3-tiny-gptq-g64-actorder",
                               "qwen3_5-tiny-bf16", "qwen3_5-tiny-gptq-g64-actorder"};

fs::path model_dir(const std::string& name) { return qt::fixture("models/" + name); }

// Parameter count written out from the config, the way the architectures are
// defined in transformers (not by walking the table the runtime uses).
std::int64_t parameters_from_config(const rt::ModelConfig& c) {
  const std::int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
  const std::int64_t q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
  std::int64_t total = V * H + (c.tie_word_embeddings ? 0 : V * H) + H;
  for (const rt::LayerKind kind : c.layer_types) {
    total += 2 * H + 3 * I * H;
    if (kind == rt::LayerKind::linear_attention) {
      const auto& la = c.linear_attention;
      const std::int64_t conv = 2 * la.num_key_heads * la.key_head_dim + la.num_value_heads * la.value_head_dim;
      const std::int64_t value = la.num_value_heads * la.value_head_dim;
      total += conv * H + value * H + 2 * la.num_value_heads * H + conv * la.conv_kernel_size + 2 * la.num_value_heads +
               la.value_head_dim + H * value;
    } else {
      total += q * H * (c.architecture == rt::Architecture::qwen3_5 ? 2 : 1) + 2 * kv * H + H * q;
      if (c.architecture == rt::Architecture::qwen2) total += q + 2 * kv;  // q/k/v bias
      if (c.architecture != rt::Architecture::qwen2) total += 2 * hd;      // q_norm, k_norm
    }
  }
  return total;
}

std::uint64_t header_length(const fs::path& file) {
  const std::string bytes = qt::read_bytes(file).substr(0, 8);
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  return length;
}

void copy_config(const std::string& model, const fs::path& to) {
  for (const char* name : {"config.json", "quantize_config.json"})
    if (fs::exists(model_dir(model) / name)) fs::copy_file(model_dir(model) / name, to / name);
}

std::vector<qt::RawTensor> without(std::vector<qt::RawTensor> tensors, const std::string& name) {
  std::erase_if(tensors, [&](const qt::RawTensor& t) { return t.name == name; });
  return tensors;
}

qt::RawTensor& named(std::vector<qt::RawTensor>& tensors, const std::string& name) {
  for (auto& tensor : tensors)
    if (tensor.name == name) return tensor;
  FAIL("no tensor " << name);
  return tensors.front();
}

std::string open_error(const fs::path& dir) {
  try {
    rt::Checkpoint::open(dir);
  } catch (const rt::CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("all six fixtures open and match the tensor table exactly") {
  for (const char* model : kModels) {
    CAPTURE(model);
    const rt::Checkpoint checkpoint = rt::Checkpoint::open(model_dir(model));
    const rt::ValidationReport report = checkpoint.check();
    CHECK(report.errors.empty());
    CHECK(report.unexpected_tensors.empty());  // the table accounts for every tensor in the file
    CHECK_NOTHROW(checkpoint.validate());
    CHECK(checkpoint.ignored_tensors().empty());
    CHECK(checkpoint.files().safetensors.size() == 1);
    CHECK_FALSE(checkpoint.files().tokenizer_json);  // the fixtures carry no tokenizer

    const rt::ModelConfig& c = checkpoint.config();
    CHECK(checkpoint.tensor("model.embed_tokens.weight").shape ==
          std::vector<std::int64_t>{c.vocab_size, c.hidden_size});
    CHECK(checkpoint.tensor("model.norm.weight").shape == std::vector<std::int64_t>{c.hidden_size});

    const bool quantized = std::string(model).find("gptq") != std::string::npos;
    CHECK(checkpoint.quant_config().has_value() == quantized);
    const rt::LinearTensors down = checkpoint.linear("model.layers.0.mlp.down_proj");
    CHECK(down.quantized == quantized);
    CHECK(down.in_features == c.intermediate_size);
    CHECK(down.out_features == c.hidden_size);
    if (quantized) {
      CHECK(checkpoint.quant_config()->group_size == 64);
      CHECK(checkpoint.quant_config()->desc_act);
      CHECK(checkpoint.quant_config()->format == rt::GptqFormat::v1);
      REQUIRE(down.g_idx);
      CHECK(down.qweight->shape == std::vector<std::int64_t>{c.intermediate_size / 8, c.hidden_size});
      CHECK(down.qzeros->shape == std::vector<std::int64_t>{c.intermediate_size / 64, c.hidden_size / 8});
      CHECK(down.scales->dtype == rt::DType::f16);
      // Act-order: g_idx values are group numbers, every group used, not sorted.
      const std::vector<std::int32_t> groups = rt::to_int32(*down.g_idx);
      CHECK(*std::max_element(groups.begin(), groups.end()) == c.intermediate_size / 64 - 1);
      CHECK_FALSE(std::is_sorted(groups.begin(), groups.end()));
    }
    if (c.architecture == rt::Architecture::qwen2) {
      CHECK(checkpoint.linear("model.layers.1.self_attn.k_proj").bias->shape ==
            std::vector<std::int64_t>{c.num_key_value_heads * c.head_dim});
    }
    if (c.architecture == rt::Architecture::qwen3_5) {
      // Gated attention: q_proj emits query and gate, twice the query width.
      CHECK(checkpoint.linear("model.layers.3.self_attn.q_proj").out_features ==
            2 * c.num_attention_heads * c.head_dim);
      CHECK(checkpoint.tensor("model.layers.0.linear_attn.conv1d.weight").shape ==
            std::vector<std::int64_t>{c.linear_attention.conv_dim(), 1, c.linear_attention.conv_kernel_size});
      CHECK_THROWS_AS(checkpoint.linear("model.layers.0.self_attn.q_proj"), rt::CheckpointError);  // a DeltaNet layer
    }
  }
}

TEST_CASE("inspect numbers: parameters, bits per weight, size on disk") {
  for (const char* model : kModels) {
    CAPTURE(model);
    const fs::path dir = model_dir(model);
    const rt::Checkpoint checkpoint = rt::Checkpoint::open(dir);
    const rt::CheckpointSummary s = checkpoint.summary();
    CHECK(s.parameter_count == parameters_from_config(checkpoint.config()));
    const std::uint64_t file_size = fs::file_size(dir / "model.safetensors");
    CHECK(s.size_on_disk == file_size);
    CHECK(s.tensor_bytes == file_size - 8 - header_length(dir / "model.safetensors"));  // fully indexed
    CHECK(s.bits_per_weight ==
          doctest::Approx(8.0 * static_cast<double>(s.tensor_bytes) / static_cast<double>(s.parameter_count)));
    CHECK(s.shard_count == 1);
    if (checkpoint.quant_config()) {
      // 4 bits + fp16 scale and 4-bit zero per 64 weights, + an int32 g_idx per input row (N >= 128 here).
      CHECK(s.quantized_bits_per_weight > 4.0 + 16.0 / 64 + 4.0 / 64);
      CHECK(s.quantized_bits_per_weight <= 4.0 + 16.0 / 64 + 4.0 / 64 + 32.0 / 128);
      CHECK(s.quantized_module_count > 0);
      CHECK(s.bits_per_weight < 16.0);
    } else {
      CHECK(s.quantized_parameter_count == 0);
      CHECK(s.bits_per_weight == doctest::Approx(16.0));
    }
  }
}

TEST_CASE("the Qwen3.5 multimodal wrapper: names normalized, vision and MTP tensors set aside") {
  qt::TempDir dir;
  const std::string source = "qwen3_5-tiny-gptq-g64-actorder";
  json text = json::parse(qt::read_bytes(model_dir(source) / "config.json"));
  const json quantization = text["quantization_config"];
  text.erase("quantization_config");
  const json wrapper = {{"architectures", {"Qwen3_5ForConditionalGeneration"}},
                        {"model_type", "qwen3_5"},
                        {"text_config", text},
                        {"vision_config", {{"depth", 1}}},
                        {"quantization_config", quantization}};
  qt::write_bytes(dir.path() / "config.json", wrapper.dump(2));

  std::vector<qt::RawTensor> tensors = qt::read_tensors(model_dir(source) / "model.safetensors");
  const auto original = tensors;
  for (auto& tensor : tensors)
    if (tensor.name.rfind("model.", 0) == 0) tensor.name = "model.language_model." + tensor.name.substr(6);
  tensors.push_back(qt::bf16_tensor("model.visual.blocks.0.attn.qkv.weight", {24, 8}));
  tensors.push_back(qt::bf16_tensor("model.visual.merger.mlp.0.weight", {8, 32}));
  tensors.push_back(qt::bf16_tensor("mtp.fc.weight", {256, 512}));
  tensors.push_back(qt::bf16_tensor("mtp.layers.0.input_layernorm.weight", {256}));
  qt::write_bytes(dir.path() / "model.safetensors", qt::serialize(tensors));
  qt::write_bytes(dir.path() / "tokenizer.json", "{}");
  qt::write_bytes(dir.path() / "chat_template.jinja", "{{ messages }}");
  qt::write_bytes(dir.path() / "generation_config.json", R"({"eos_token_id": [248046, 248044], "bos_token_id": null})");

  const rt::Checkpoint checkpoint = rt::Checkpoint::open(dir.path());
  CHECK(checkpoint.config().multimodal_wrapper);
  CHECK(checkpoint.quant_config().has_value());
  CHECK_NOTHROW(checkpoint.validate());
  CHECK(checkpoint.check().unexpected_tensors.empty());
  CHECK(checkpoint.ignored_tensors().size() == 4);
  CHECK(checkpoint.tensors().size() == original.size());
  CHECK(checkpoint.files().tokenizer_json == dir.path() / "tokenizer.json");
  CHECK(checkpoint.files().chat_template_jinja == dir.path() / "chat_template.jinja");
  CHECK(checkpoint.files().generation_config_json == dir.path() / "generation_config.json");
  CHECK(checkpoint.config().eos_token_ids == std::vector<std::int64_t>{248046, 248044});
  for (const auto& raw : original) {
    CAPTURE(raw.name);
    const rt::TensorView& view = checkpoint.tensor(raw.name);  // the plain text-model name
    REQUIRE(view.bytes == raw.data.size());
    CHECK(std::memcmp(view.data, raw.data.data(), view.bytes) == 0);
  }
  CHECK(checkpoint.tensor("model.layers.0.linear_attn.A_log").name ==
        "model.language_model.layers.0.linear_attn.A_log");
  CHECK(checkpoint.summary().ignored_tensor_count == 4);
  CHECK(checkpoint.summary().parameter_count ==
        rt::Checkpoint::open(model_dir(source)).summary().parameter_count);  // ignored tensors not counted

  // Both spellings of one tensor are a conflict, not a silent choice.
  tensors.push_back(qt::bf16_tensor("model.norm.weight", {256}));
  qt::write_bytes(dir.path() / "model.safetensors", qt::serialize(tensors));
  CHECK(open_error(dir.path()).find("model.norm.weight") != std::string::npos);
}

TEST_CASE("sharded checkpoints: every shard opened once, index and shards must agree") {
  qt::TempDir dir;
  const std::string source = "qwen3-tiny-bf16";
  copy_config(source, dir.path());
  const std::vector<qt::RawTensor> tensors = qt::read_tensors(model_dir(source) / "model.safetensors");
  std::vector<qt::RawTensor> first(tensors.begin(), tensors.begin() + tensors.size() / 2);
  std::vector<qt::RawTensor> second(tensors.begin() + tensors.size() / 2, tensors.end());
  const std::string shard1 = "model-00001-of-00002.safetensors", shard2 = "model-00002-of-00002.safetensors";
  qt::write_bytes(dir.path() / shard1, qt::serialize(first));
  qt::write_bytes(dir.path() / shard2, qt::serialize(second));
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (const auto& t : first) index["weight_map"][t.name] = shard1;
  for (const auto& t : second) index["weight_map"][t.name] = shard2;
  qt::write_bytes(dir.path() / "model.safetensors.index.json", index.dump());

  {
    const rt::Checkpoint checkpoint = rt::Checkpoint::open(dir.path());
    CHECK_NOTHROW(checkpoint.validate());
    CHECK(checkpoint.files().safetensors.size() == 2);
    CHECK(checkpoint.summary().shard_count == 2);
    CHECK(checkpoint.tensors().size() == tensors.size());
    CHECK(checkpoint.tensor(first.front().name).file == dir.path() / shard1);
    CHECK(checkpoint.tensor(second.back().name).file == dir.path() / shard2);
    const rt::TensorView& last = checkpoint.tensor(second.back().name);
    CHECK(std::memcmp(last.data, second.back().data.data(), last.bytes) == 0);
  }

  SUBCASE("a tensor the index places in the wrong shard") {
    json wrong = index;
    wrong["weight_map"][second.front().name] = shard1;
    qt::write_bytes(dir.path() / "model.safetensors.index.json", wrong.dump());
    const std::string message = open_error(dir.path());
    CHECK(message.find(second.front().name) != std::string::npos);
    CHECK(message.find(shard1) != std::string::npos);
  }
  SUBCASE("a shard outside the model directory") {
    json escaping = index;
    escaping["weight_map"][first.front().name] = "../" + shard1;
    qt::write_bytes(dir.path() / "model.safetensors.index.json", escaping.dump());
    CHECK(open_error(dir.path()).find("not a plain file name") != std::string::npos);
  }
  SUBCASE("a missing shard") {
    fs::remove(dir.path() / shard2);
    CHECK(open_error(dir.path()).find(shard2) != std::string::npos);
  }
  SUBCASE("an index that is not JSON") {
    qt::write_bytes(dir.path() / "model.safetensors.index.json", "{\"weight_map\": ");
    CHECK(open_error(dir.path()).find("model.safetensors.index.json") != std::string::npos);
  }
}

TEST_CASE("validate() reports every missing or mis-shaped tensor by name") {
  SUBCASE("dense") {
    qt::TempDir dir;
    copy_config("qwen3-tiny-bf16", dir.path());
    auto tensors = without(qt::read_tensors(model_dir("qwen3-tiny-bf16") / "model.safetensors"),
                           "model.layers.1.mlp.up_proj.weight");
    qt::RawTensor& k_norm = named(tensors, "model.layers.2.self_attn.k_norm.weight");
    k_norm.shape = {32};
    k_norm.data.resize(64);
    qt::RawTensor& o_proj = named(tensors, "model.layers.0.self_attn.o_proj.weight");
    o_proj.shape = {128, 512};  // same byte count, wrong shape
    tensors.push_back(qt::bf16_tensor("model.layers.0.self_attn.rotary_emb.inv_freq", {32}));
    qt::write_bytes(dir.path() / "model.safetensors", qt::serialize(tensors));

    const rt::Checkpoint checkpoint = rt::Checkpoint::open(dir.path());
    const rt::ValidationReport report = checkpoint.check();
    CHECK(report.errors.size() == 3);
    CHECK(report.unexpected_tensors == std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});
    try {
      checkpoint.validate();
      FAIL("validate() accepted a broken checkpoint");
    } catch (const rt::CheckpointError& e) {
      const std::string message = e.what();
      CHECK(message.find("3 tensor problem(s)") != std::string::npos);
      CHECK(message.find("missing tensor model.layers.1.mlp.up_proj.weight (expected BF16/F16/F32 [512, 256])") !=
            std::string::npos);
      CHECK(message.find("model.layers.2.self_attn.k_norm.weight has shape [32], expected [64]") != std::string::npos);
      CHECK(message.find("model.layers.0.self_attn.o_proj.weight has shape [128, 512], expected [256, 256]") !=
            std::string::npos);
    }
  }
  SUBCASE("GPTQ") {
    qt::TempDir dir;
    copy_config("qwen3-tiny-gptq-g64-actorder", dir.path());
    auto tensors = without(qt::read_tensors(model_dir("qwen3-tiny-gptq-g64-actorder") / "model.safetensors"),
                           "model.layers.0.self_attn.q_proj.g_idx");
    qt::RawTensor& scales = named(tensors, "model.layers.2.mlp.down_proj.scales");
    scales.shape = {4, 256};  // the group count for K=256, not K=512
    scales.data.resize(4 * 256 * 2);
    named(tensors, "model.layers.1.mlp.up_proj.qzeros").dtype = "F32";  // same byte size, wrong dtype
    qt::write_bytes(dir.path() / "model.safetensors", qt::serialize(tensors));

    const rt::ValidationReport report = rt::Checkpoint::open(dir.path()).check();
    REQUIRE(report.errors.size() == 3);
    const std::string all = fmt::format("{}", fmt::join(report.errors, "\n"));
    CHECK(all.find("missing tensor model.layers.0.self_attn.q_proj.g_idx (expected I32 [256])") != std::string::npos);
    CHECK(all.find("model.layers.2.mlp.down_proj.scales has shape [4, 256], expected [8, 256]") != std::string::npos);
    CHECK(all.find("model.layers.1.mlp.up_proj.qzeros has dtype F32, expected I32") != std::string::npos);
  }
  SUBCASE("GPTQ tensors without a quantization config") {
    qt::TempDir dir;
    copy_config("qwen3-tiny-bf16", dir.path());
    fs::copy_file(model_dir("qwen3-tiny-gptq-g64-actorder") / "model.safetensors", dir.path() / "model.safetensors");
    const rt::ValidationReport report = rt::Checkpoint::open(dir.path()).check();
    CHECK_FALSE(report.ok());
    CHECK(report.errors.front().find("no quantization config") != std::string::npos);
  }
  SUBCASE("tied embeddings make lm_head optional") {
    qt::TempDir dir;
    json config = json::parse(qt::read_bytes(model_dir("qwen3-tiny-bf16") / "config.json"));
    config["tie_word_embeddings"] = true;
    qt::write_bytes(dir.path() / "config.json", config.dump());
    qt::write_bytes(
        dir.path() / "model.safetensors",
        qt::serialize(without(qt::read_tensors(model_dir("qwen3-tiny-bf16") / "model.safetensors"), "lm_head.weight")));
    const rt::Checkpoint checkpoint = rt::Checkpoint::open(dir.path());
    CHECK_NOTHROW(checkpoint.validate());
    CHECK(checkpoint.summary().parameter_count == parameters_from_config(checkpoint.config()));
  }
}

TEST_CASE("directory-level errors name the path") {
  qt::TempDir dir;
  CHECK(open_error(dir.path() / "nope").find("does not exist") != std::string::npos);
  qt::write_bytes(dir.path() / "file", "x");
  CHECK(open_error(dir.path() / "file").find("not a directory") != std::string::npos);
  const fs::path model = dir.path() / "model";
  fs::create_directories(model);
  CHECK(open_error(model).find((model / "config.json").string() + ": missing") != std::string::npos);
  qt::write_bytes(model / "config.json", "{ \"model_type\": \"qwen3\", ");
  CHECK(open_error(model).find((model / "config.json").string() + ": config is not valid JSON") != std::string::npos);
  fs::copy_file(model_dir("qwen3-tiny-bf16") / "config.json", model / "config.json",
                fs::copy_options::overwrite_existing);
  CHECK(open_error(model).find("no model.safetensors") != std::string::npos);
  qt::write_bytes(model / "quantize_config.json", R"({"bits": 8, "group_size": 64})");
  CHECK(open_error(model).find("quantize_config.json: field bits") != std::string::npos);
  fs::remove(model / "quantize_config.json");
  // An oddly named single weights file (older AutoGPTQ exports) is found.
  fs::copy_file(model_dir("qwen3-tiny-bf16") / "model.safetensors", model / "gptq_model-4bit-64g.safetensors");
  CHECK_NOTHROW(rt::Checkpoint::open(model).validate());
}
