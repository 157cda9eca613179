// Qwen3.5 in its multimodal-wrapper form (config nested in text_config,
// tensors under model.language_model., vision tower and MTP head present but
// ignored) must give exactly the results of the text-only checkpoint.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "runtime/generate/generator.hpp"
#include "runtime/model/model.hpp"
#include "tests/checkpoint/safetensors_writer.hpp"
#include "tests/model/model_test_support.hpp"

using namespace quanteval::runtime;
namespace qt = quanteval::test;
using nlohmann::json;

TEST_CASE("Qwen3.5 multimodal wrapper gives identical logits and greedy tokens") {
  for (const std::string name : {"qwen3_5-tiny-bf16", "qwen3_5-tiny-gptq-g64-actorder"}) {
    CAPTURE(name);
    const qt::ModelReference ref = qt::load_model_reference(name);
    qt::TempDir dir;
    json text = json::parse(qt::read_bytes(ref.dir / "config.json"));
    json wrapper = {{"architectures", {"Qwen3_5ForConditionalGeneration"}},
                    {"model_type", "qwen3_5"},
                    {"vision_config", {{"depth", 1}}}};
    if (text.contains("quantization_config")) {
      wrapper["quantization_config"] = text["quantization_config"];
      text.erase("quantization_config");
    }
    wrapper["text_config"] = text;
    qt::write_bytes(dir.path() / "config.json", wrapper.dump(2));
    std::vector<qt::RawTensor> tensors = qt::read_tensors(ref.dir / "model.safetensors");
    for (auto& tensor : tensors)
      if (tensor.name.rfind("model.", 0) == 0) tensor.name = "model.language_model." + tensor.name.substr(6);
    tensors.push_back(qt::bf16_tensor("model.visual.blocks.0.attn.qkv.weight", {24, 8}));
    tensors.push_back(qt::bf16_tensor("mtp.fc.weight", {256, 512}));
    qt::write_bytes(dir.path() / "model.safetensors", qt::serialize(tensors));

    auto plain = Model::load(ref.dir, {.threads = 2, .kv_cache_bytes = 32ull << 20});
    auto wrapped = Model::load(dir.path(), {.threads = 2, .kv_cache_bytes = 32ull << 20});
    CHECK(wrapped->logits_for(ref.input_ids) == plain->logits_for(ref.input_ids));
    Generator generator(*wrapped, nullptr);
    GenerationRequest request;
    request.prompt = ref.input_ids;
    request.max_new_tokens = 16;
    CHECK(generator.generate(request).tokens == ref.greedy_new_tokens);
  }
}
