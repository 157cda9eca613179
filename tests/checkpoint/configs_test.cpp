// config.json, generation_config.json and the GPTQ quantization config.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/quant_config.hpp"
#include "tests/checkpoint/safetensors_writer.hpp"
#include "tests/support/test_data.hpp"

namespace rt = quanteval::runtime;
namespace qt = quanteval::test;
using nlohmann::json;

namespace {

json fixture_config(const std::string& model) {
  return json::parse(qt::read_bytes(qt::fixture("models/" + model + "/config.json")));
}

rt::ModelConfig parse(const json& config) { return rt::parse_model_config(config.dump(), "config.json"); }

std::string model_error(const json& config) {
  try {
    parse(config);
  } catch (const rt::CheckpointError& e) {
    return e.what();
  }
  return "";
}

std::string quant_error(const json& quant) {
  try {
    rt::parse_quant_config(quant, "quantize_config.json");
  } catch (const rt::CheckpointError& e) {
    return e.what();
  }
  return "";
}

json gptq(json overrides = json::object()) {
  json base = {{"quant_method", "gptq"}, {"bits", 4},   {"group_size", 64},
               {"desc_act", true},       {"sym", true}, {"checkpoint_format", "gptq"}};
  base.merge_patch(overrides);
  return base;
}

}  // namespace

TEST_CASE("the fixture configs parse to the values they state") {
  SUBCASE("qwen2: head_dim derived, q/k/v bias implied") {
    const rt::ModelConfig c = rt::load_model_config(qt::fixture("models/qwen2-tiny-bf16"));
    CHECK(c.architecture == rt::Architecture::qwen2);
    CHECK(c.hidden_size == 256);
    CHECK(c.head_dim == 256 / 4);
    CHECK(c.num_key_value_heads == 2);
    CHECK(c.attention_bias);
    CHECK_FALSE(c.attention_output_bias);
    CHECK_FALSE(c.qk_norm);
    CHECK(c.rope_theta == 1e6);
    CHECK(c.rotary_dim == 64);
    CHECK(c.layer_types == std::vector<rt::LayerKind>(3, rt::LayerKind::full_attention));
    CHECK(c.eos_token_ids.empty());  // null in the fixture
    CHECK(c.torch_dtype == "bfloat16");
  }
  SUBCASE("qwen3: explicit head_dim, q/k norm") {
    const rt::ModelConfig c = rt::load_model_config(qt::fixture("models/qwen3-tiny-gptq-g64-actorder"));
    CHECK(c.architecture == rt::Architecture::qwen3);
    CHECK(c.head_dim == 64);
    CHECK(c.qk_norm);
    CHECK_FALSE(c.attention_bias);
    CHECK(c.vocab_size == 1024);
    CHECK(c.intermediate_size == 512);
    CHECK(c.max_position_embeddings == 4096);
    CHECK(c.rms_norm_eps == doctest::Approx(1e-6));
    CHECK_FALSE(c.tie_word_embeddings);
  }
  SUBCASE("qwen3.5: hybrid layers, partial rotary, linear attention dims") {
    const rt::ModelConfig c = rt::load_model_config(qt::fixture("models/qwen3_5-tiny-bf16"));
    CHECK(c.architecture == rt::Architecture::qwen3_5);
    CHECK_FALSE(c.multimodal_wrapper);
    CHECK(c.layer_types == std::vector<rt::LayerKind>{rt::LayerKind::linear_attention, rt::LayerKind::linear_attention,
                                                      rt::LayerKind::linear_attention, rt::LayerKind::full_attention});
    CHECK(c.num_linear_attention_layers() == 3);
    CHECK(c.partial_rotary_factor == 0.25);
    CHECK(c.rotary_dim == 16);
    CHECK(c.rope_theta == 1e7);
    CHECK(c.gated_attention);
    CHECK(c.zero_centered_norms);
    CHECK(c.linear_attention.conv_kernel_size == 4);
    CHECK(c.linear_attention.key_dim() == 2 * 32);
    CHECK(c.linear_attention.value_dim() == 4 * 32);
    CHECK(c.linear_attention.conv_dim() == 2 * 64 + 128);
  }
}

TEST_CASE("older and alternative spellings") {
  json c = fixture_config("qwen3-tiny-bf16");
  SUBCASE("top-level rope_theta instead of rope_parameters") {
    c.erase("rope_parameters");
    c["rope_theta"] = 5e5;
    CHECK(parse(c).rope_theta == 5e5);
  }
  SUBCASE("no layer_types: all full attention") {
    c.erase("layer_types");
    CHECK(parse(c).layer_types == std::vector<rt::LayerKind>(3, rt::LayerKind::full_attention));
  }
  SUBCASE("qwen3.5 full_attention_interval instead of layer_types") {
    json q = fixture_config("qwen3_5-tiny-bf16");
    q.erase("layer_types");
    q["num_hidden_layers"] = 8;
    q["full_attention_interval"] = 4;
    const auto kinds = parse(q).layer_types;
    REQUIRE(kinds.size() == 8);
    for (std::size_t i = 0; i < 8; ++i)
      CHECK(kinds[i] == ((i + 1) % 4 == 0 ? rt::LayerKind::full_attention : rt::LayerKind::linear_attention));
  }
  SUBCASE("eos as an int, a list, and merged with generation_config.json") {
    c["eos_token_id"] = 7;
    c["bos_token_id"] = 3;
    rt::ModelConfig parsed = parse(c);
    CHECK(parsed.eos_token_ids == std::vector<std::int64_t>{7});
    CHECK(parsed.bos_token_id == 3);
    c["eos_token_id"] = {7, 9};
    parsed = parse(c);
    CHECK(parsed.eos_token_ids == std::vector<std::int64_t>{7, 9});
    rt::apply_generation_config(parsed, R"({"eos_token_id":[11,7],"bos_token_id":5})", "generation_config.json");
    CHECK(parsed.eos_token_ids == std::vector<std::int64_t>{11, 7, 9});
    CHECK(parsed.bos_token_id == 5);
  }
  SUBCASE("tie_word_embeddings") {
    c["tie_word_embeddings"] = true;
    CHECK(parse(c).tie_word_embeddings);
  }
}

TEST_CASE("the Qwen3.5 multimodal wrapper reads text_config") {
  json text = fixture_config("qwen3_5-tiny-bf16");
  text["eos_token_id"] = 248044;
  const json wrapper = {{"architectures", {"Qwen3_5ForConditionalGeneration"}},
                        {"model_type", "qwen3_5"},
                        {"text_config", text},
                        {"vision_config", {{"depth", 2}, {"hidden_size", 64}}},
                        {"tie_word_embeddings", false}};
  const rt::ModelConfig c = parse(wrapper);
  CHECK(c.multimodal_wrapper);
  CHECK(c.architecture == rt::Architecture::qwen3_5);
  CHECK(c.model_type == "qwen3_5");
  CHECK(c.hidden_size == 256);
  CHECK(c.num_linear_attention_layers() == 3);
  CHECK(c.eos_token_ids == std::vector<std::int64_t>{248044});

  json missing_text = wrapper;
  missing_text.erase("text_config");
  CHECK(model_error(missing_text).find("text_config") != std::string::npos);
  json bad_field = wrapper;
  bad_field["text_config"]["hidden_size"] = "wide";
  CHECK(model_error(bad_field).find("text_config.hidden_size") != std::string::npos);
}

TEST_CASE("config errors name the file and field") {
  json c = fixture_config("qwen3-tiny-bf16");
  auto error_without = [&](const char* field) {
    json copy = c;
    copy.erase(field);
    return model_error(copy);
  };
  CHECK(error_without("hidden_size").find("config.json: field hidden_size: missing") != std::string::npos);
  CHECK(error_without("model_type").find("model_type") != std::string::npos);
  auto error_with = [&](const char* field, json value) {
    json copy = c;
    copy[field] = std::move(value);
    return model_error(copy);
  };
  CHECK(error_with("model_type", "llama").find("unsupported model_type 'llama'") != std::string::npos);
  CHECK(error_with("num_hidden_layers", -1).find("num_hidden_layers") != std::string::npos);
  CHECK(error_with("num_hidden_layers", 1.5).find("num_hidden_layers") != std::string::npos);
  CHECK(error_with("vocab_size", 1ull << 40).find("vocab_size") != std::string::npos);
  CHECK(error_with("num_key_value_heads", 3).find("num_key_value_heads") != std::string::npos);
  CHECK(error_with("hidden_act", "gelu").find("hidden_act") != std::string::npos);
  CHECK(error_with("layer_types", {"full_attention"}).find("layer_types") != std::string::npos);
  CHECK(error_with("layer_types", {"full_attention", "linear_attention", "full_attention"}).find("Qwen3.5") !=
        std::string::npos);
  CHECK(error_with("eos_token_id", "</s>").find("eos_token_id") != std::string::npos);
  CHECK(error_with("rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1e6}}).find("yarn") != std::string::npos);
  CHECK(error_with("rope_parameters", {{"rope_theta", "big"}}).find("rope_parameters.rope_theta") != std::string::npos);
  json linear = fixture_config("qwen3_5-tiny-bf16");
  linear.erase("linear_key_head_dim");
  CHECK(model_error(linear).find("linear_key_head_dim") != std::string::npos);

  CHECK_THROWS_WITH_AS(rt::parse_model_config("{\"model_type\": ", "/x/config.json"),
                       doctest::Contains("/x/config.json: config is not valid JSON"), rt::CheckpointError);
  CHECK_THROWS_WITH_AS(rt::parse_model_config("[1]", "/x/config.json"), doctest::Contains("not a JSON object"),
                       rt::CheckpointError);
  CHECK_THROWS_WITH_AS(rt::parse_model_config(R"({"a":1,"a":2})", "/x/config.json"), doctest::Contains("twice"),
                       rt::CheckpointError);
}

TEST_CASE("GPTQ quantization configs: supported spellings") {
  const rt::QuantConfig v1 = rt::parse_quant_config(gptq(), "q");
  CHECK(v1.bits == 4);
  CHECK(v1.group_size == 64);
  CHECK(v1.sym);
  CHECK(v1.desc_act);
  CHECK(v1.format == rt::GptqFormat::v1);
  CHECK(v1.stored_zero_offset() == 1);
  CHECK(v1.groups(512) == 8);

  const rt::QuantConfig v2 = rt::parse_quant_config(gptq({{"checkpoint_format", "gptq_v2"}}), "q");
  CHECK(v2.format == rt::GptqFormat::v2);
  CHECK(v2.stored_zero_offset() == 0);

  // GPTQModel's newer spellings.
  json modern = {{"method", "gptq"},  {"format", "gptq_v2"},   {"bits", 4},       {"group_size", 128}, {"sym", false},
                 {"desc_act", false}, {"pack_dtype", "int32"}, {"lm_head", false}};
  const rt::QuantConfig m = rt::parse_quant_config(modern, "q");
  CHECK(m.format == rt::GptqFormat::v2);
  CHECK_FALSE(m.sym);  // asymmetric is fine in v2, which stores real zeros
  CHECK(m.group_size == 128);

  // AutoGPTQ's quantize_config.json has no quant_method; v1 is the default format.
  json autogptq = gptq();
  autogptq.erase("quant_method");
  autogptq.erase("checkpoint_format");
  CHECK(rt::parse_quant_config(autogptq, "q").format == rt::GptqFormat::v1);

  const rt::QuantConfig per_channel = rt::parse_quant_config(gptq({{"group_size", -1}}), "q");
  CHECK(per_channel.groups(5120) == 1);
  CHECK(per_channel.effective_group_size(5120) == 5120);
  CHECK(rt::parse_quant_config(gptq({{"group_size", 32}}), "q").groups(256) == 8);

  const auto fixture = rt::load_quant_config(qt::fixture("models/qwen2-tiny-gptq-g64-actorder-fp16"));
  REQUIRE(fixture);
  CHECK(*fixture == v1);
  CHECK_FALSE(rt::load_quant_config(qt::fixture("models/qwen3-tiny-bf16")));
}

TEST_CASE("GPTQ quantization configs: unsupported settings are clear errors") {
  CHECK(quant_error(gptq({{"bits", 8}})).find("8-bit") != std::string::npos);
  CHECK(quant_error(gptq({{"bits", 3}})).find("3-bit") != std::string::npos);
  CHECK(quant_error(gptq({{"quant_method", "awq"}})).find("'awq'") != std::string::npos);
  CHECK(quant_error(gptq({{"group_size", 96}})).find("group_size") != std::string::npos);
  CHECK(quant_error(gptq({{"group_size", 0}})).find("group_size") != std::string::npos);
  CHECK(quant_error(gptq({{"checkpoint_format", "marlin"}})).find("marlin") != std::string::npos);
  CHECK(quant_error(gptq({{"sym", false}})).find("asymmetric GPTQ v1") != std::string::npos);
  CHECK(quant_error(gptq({{"format", "gptq_v2"}})).find("disagrees") != std::string::npos);
  CHECK(quant_error(gptq({{"pack_dtype", "int16"}})).find("pack_dtype") != std::string::npos);
  CHECK(quant_error(gptq({{"dynamic", {{"-:.*lm_head", json::object()}}}})).find("dynamic") != std::string::npos);
  CHECK(quant_error(gptq({{"desc_act", "yes"}})).find("desc_act") != std::string::npos);
  json no_bits = gptq();
  no_bits.erase("bits");
  CHECK(quant_error(no_bits).find("field bits: missing") != std::string::npos);
  CHECK(quant_error(json::array()).find("not a JSON object") != std::string::npos);

  // config.json and quantize_config.json must agree.
  qt::TempDir dir;
  json config = fixture_config("qwen3-tiny-gptq-g64-actorder");
  qt::write_bytes(dir.path() / "config.json", config.dump());
  qt::write_bytes(dir.path() / "quantize_config.json", gptq({{"group_size", 128}}).dump());
  CHECK_THROWS_WITH_AS(rt::load_quant_config(dir.path()), doctest::Contains("quantize_config.json"),
                       rt::CheckpointError);
  // quant_config.json alone is read too.
  config.erase("quantization_config");
  qt::write_bytes(dir.path() / "config.json", config.dump());
  std::filesystem::remove(dir.path() / "quantize_config.json");
  qt::write_bytes(dir.path() / "quant_config.json", gptq({{"checkpoint_format", "gptq_v2"}}).dump());
  const auto found = rt::load_quant_config(dir.path());
  REQUIRE(found);
  CHECK(found->format == rt::GptqFormat::v2);
  CHECK(found->source.find("quant_config.json") != std::string::npos);
}
