// The safetensors reader: fixture files read correctly (checked against an
// independent reader and against transformers' own fp32 activations), and
// malformed files refused with a message naming file and tensor.
#include <doctest/doctest.h>

#include <cstring>
#include <random>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/safetensors.hpp"
#include "tests/checkpoint/safetensors_writer.hpp"
#include "tests/support/test_data.hpp"

namespace rt = quanteval::runtime;
namespace qt = quanteval::test;
namespace fs = std::filesystem;

namespace {

const char* const kModels[] = {"qwen2-tiny-bf16",   "qwen2-tiny-gptq-g64-actorder-fp16",
                               "qwen3-tiny-bf16",   "qwen3-tiny-gptq-g64-actorder",
                               "qwen3_5-tiny-bf16", "qwen3_5-tiny-gptq-g64-actorder"};

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The message of the CheckpointError that parsing `file` throws ("" when it parses).
std::string parse_error(const std::string& file, const std::string& source = "bad.safetensors") {
  try {
    rt::parse_safetensors(as_bytes(file), source);
  } catch (const rt::CheckpointError& e) {
    return e.what();
  }
  return "";
}

std::string small_valid_file() {
  return qt::serialize({qt::bf16_tensor("a.weight", {4, 8}),
                        qt::bf16_tensor("b.weight", {8}),
                        {"c.idx", "I32", {3}, std::string(12, '\x01')}});
}

}  // namespace

TEST_CASE("fixture safetensors files match an independent reading of their headers") {
  for (const char* model : kModels) {
    CAPTURE(model);
    const fs::path path = qt::fixture(std::string("models/") + model + "/model.safetensors");
    const rt::SafetensorsFile file(path);
    const auto expected = qt::read_tensors(path);
    REQUIRE(file.tensors().size() == expected.size());
    CHECK(file.metadata().at("format") == "pt");
    CHECK(file.file_size() == fs::file_size(path));
    for (const auto& raw : expected) {
      CAPTURE(raw.name);
      const rt::TensorView view = file.tensor(raw.name);
      CHECK(rt::dtype_name(view.dtype) == raw.dtype);
      CHECK(view.shape == raw.shape);
      CHECK(view.file == path);
      REQUIRE(view.bytes == raw.data.size());
      CHECK(std::memcmp(view.data, raw.data.data(), view.bytes) == 0);
    }
    CHECK_THROWS_WITH_AS(file.tensor("no.such.tensor"), doctest::Contains("no.such.tensor"), rt::CheckpointError);
  }
}

TEST_CASE("BF16 and F16 embeddings convert exactly to transformers' fp32 embedding output") {
  // hidden_states[0] in reference_logits.safetensors is transformers' fp32
  // embedding lookup of reference.json's input_ids: row ids[t] of embed_tokens.
  for (const char* model : {"qwen3-tiny-bf16", "qwen2-tiny-gptq-g64-actorder-fp16", "qwen3_5-tiny-bf16"}) {
    CAPTURE(model);
    const fs::path dir = qt::fixture(std::string("models/") + model);
    const rt::SafetensorsFile weights(dir / "model.safetensors");
    const rt::SafetensorsFile reference(dir / "reference_logits.safetensors");
    const auto ids = nlohmann::json::parse(qt::read_bytes(dir / "reference.json"))["input_ids"].get<std::vector<int>>();

    const rt::TensorView embed = weights.tensor("model.embed_tokens.weight");
    CHECK(embed.dtype == (std::string(model).find("fp16") != std::string::npos ? rt::DType::f16 : rt::DType::bf16));
    const std::vector<float> table = rt::to_float(embed);
    const std::vector<float> hidden = rt::to_float(reference.tensor("hidden_states"));
    const std::int64_t width = embed.shape[1];
    REQUIRE(reference.tensor("hidden_states").shape[2] == width);
    std::size_t mismatches = 0;
    for (std::size_t t = 0; t < ids.size(); ++t)
      for (std::int64_t j = 0; j < width; ++j)
        mismatches += table[static_cast<std::size_t>(ids[t] * width + j)] != hidden[t * width + j];
    CHECK(mismatches == 0);
  }
}

TEST_CASE("half-precision conversion handles every class of value") {
  CHECK(rt::f16_to_float(0x3c00) == 1.0f);
  CHECK(rt::f16_to_float(0xc000) == -2.0f);
  CHECK(rt::f16_to_float(0x7bff) == 65504.0f);
  CHECK(rt::f16_to_float(0x0001) == std::ldexp(1.0f, -24));     // smallest subnormal
  CHECK(rt::f16_to_float(0x03ff) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(std::signbit(rt::f16_to_float(0x8000)));
  CHECK(std::isinf(rt::f16_to_float(0x7c00)));
  CHECK(std::isnan(rt::f16_to_float(0x7e00)));
  CHECK(rt::bf16_to_float(0x3f80) == 1.0f);
  CHECK(rt::bf16_to_float(0xc0a0) == -5.0f);
  // Exhaustive over every finite non-negative half: compare with the value its bits define.
  for (std::uint32_t bits = 0; bits < 0x7c00; ++bits) {
    const float value = rt::f16_to_float(static_cast<std::uint16_t>(bits));
    const std::uint32_t exponent = bits >> 10, mantissa = bits & 0x3ff;
    const float expected =
        exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -24)
                      : std::ldexp(1.0f + static_cast<float>(mantissa) / 1024.0f, static_cast<int>(exponent) - 15);
    REQUIRE(value == expected);
  }
}

TEST_CASE("conversion helpers refuse the wrong dtype, naming the tensor") {
  const std::string file = qt::serialize({{"position_ids", "I64", {2}, std::string(16, '\0')}});
  qt::TempDir dir;
  qt::write_bytes(dir.path() / "x.safetensors", file);
  const rt::SafetensorsFile opened(dir.path() / "x.safetensors");
  const rt::TensorView ids = opened.tensor("position_ids");  // accepted and described...
  CHECK(ids.describe().find("I64 [2]") != std::string::npos);
  // ...but never used as weights.
  CHECK_THROWS_WITH_AS(rt::to_float(ids), doctest::Contains("position_ids"), rt::CheckpointError);
  CHECK_THROWS_WITH_AS(rt::to_int32(ids), doctest::Contains("x.safetensors"), rt::CheckpointError);
}

TEST_CASE("malformed files are refused with the file and tensor named") {
  qt::TempDir dir;
  const fs::path fixture = qt::fixture("models/qwen3-tiny-bf16/model.safetensors");
  const std::string original = qt::read_bytes(fixture);

  auto open_error = [&](const std::string& name, const std::string& bytes) {
    const fs::path path = dir.path() / name;
    qt::write_bytes(path, bytes);
    try {
      rt::SafetensorsFile file(path);
    } catch (const rt::CheckpointError& e) {
      CHECK(std::string(e.what()).find(path.string()) != std::string::npos);
      return std::string(e.what());
    }
    FAIL("opened " << name << " without an error");
    return std::string();
  };

  SUBCASE("truncated: the tensor that no longer fits is named") {
    const std::string message = open_error("truncated.safetensors", original.substr(0, original.size() / 2));
    CHECK(message.find("reach past the data region") != std::string::npos);
    CHECK(message.find("tensor 'model.") != std::string::npos);
  }
  SUBCASE("shorter than the length field") { open_error("tiny.safetensors", original.substr(0, 5)); }
  SUBCASE("empty file") { open_error("empty.safetensors", ""); }
  SUBCASE("header length past the end of the file") {
    const std::string bytes = original.substr(0, 8 + 1000);  // the header alone is 3824 bytes
    CHECK(open_error("long-header.safetensors", bytes).find("past the end of the file") != std::string::npos);
  }
  SUBCASE("header length beyond the cap") {
    std::string bytes = original;
    const std::uint64_t huge = 0xffff'ffff'ffff'fff0ull;
    std::memcpy(bytes.data(), &huge, 8);
    CHECK(open_error("huge-header.safetensors", bytes).find("limit") != std::string::npos);
  }
  SUBCASE("overlapping offsets name both tensors") {
    const std::string header =
        R"({"first":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"second":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
    const std::string message = open_error("overlap.safetensors", qt::assemble(header, std::string(24, '\0')));
    CHECK(message.find("'second'") != std::string::npos);
    CHECK(message.find("'first'") != std::string::npos);
  }
  SUBCASE("shape and byte length disagree") {
    const std::string header = R"({"w":{"dtype":"BF16","shape":[3,4],"data_offsets":[0,16]}})";
    const std::string message = open_error("mismatch.safetensors", qt::assemble(header, std::string(16, '\0')));
    CHECK(message.find("tensor 'w'") != std::string::npos);
    CHECK(message.find("needs 24 bytes") != std::string::npos);
  }
  SUBCASE("shape product overflows") {
    const std::string header = R"({"big":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})";
    CHECK(open_error("overflow.safetensors", qt::assemble(header, std::string(16, '\0'))).find("tensor 'big'") !=
          std::string::npos);
  }
  SUBCASE("unknown dtype") {
    const std::string header = R"({"odd":{"dtype":"F7","shape":[2],"data_offsets":[0,2]}})";
    const std::string message = open_error("dtype.safetensors", qt::assemble(header, std::string(2, '\0')));
    CHECK(message.find("tensor 'odd'") != std::string::npos);
    CHECK(message.find("'F7'") != std::string::npos);
  }
}

TEST_CASE("header rules, one case each") {
  auto error_for = [](const std::string& header, std::size_t data_bytes) {
    return parse_error(qt::assemble(header, std::string(data_bytes, '\0')));
  };
  const std::string ok = R"({"__metadata__":{"format":"pt"},"t":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}})";
  CHECK(error_for(ok, 8).empty());
  CHECK(error_for(ok + "    ", 8).empty());  // trailing space padding is allowed by the spec
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[],"data_offsets":[0,2]}})", 2).empty());     // scalar
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[0,5],"data_offsets":[0,0]}})", 0).empty());  // empty tensor

  CHECK(error_for(ok, 12).find("not indexed") != std::string::npos);  // trailing unindexed bytes
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}})", 8).find("unindexed") !=
        std::string::npos);  // a gap
  CHECK(error_for(R"([1,2,3])", 0).find("start with") != std::string::npos);
  CHECK(error_for(R"({"t":1})", 0).find("tensor 't'") != std::string::npos);
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[-2],"data_offsets":[0,0]}})", 0).find("tensor 't'") !=
        std::string::npos);
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[2.5],"data_offsets":[0,5]}})", 5).find("tensor 't'") !=
        std::string::npos);
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[4,0]}})", 4).find("end before begin") !=
        std::string::npos);
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[0]}})", 4).find("data_offsets") !=
        std::string::npos);
  CHECK(error_for(R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[0,4],"extra":1}})", 4).find("extra") !=
        std::string::npos);
  CHECK(
      error_for(
          R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"t":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}})",
          8)
          .find("twice") != std::string::npos);
  CHECK(error_for(R"({"__metadata__":{"n":1}})", 0).find("__metadata__") != std::string::npos);
  CHECK(error_for(R"({"t":{"dtype":"F16",)", 0).find("not valid JSON") != std::string::npos);
  CHECK(error_for(std::string(R"({"x":)") + std::string(500, '[') + std::string(500, ']') + "}", 0)
            .find("nests deeper") != std::string::npos);
  CHECK(error_for(R"({"":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4).find("empty tensor name") !=
        std::string::npos);
}

TEST_CASE("hundreds of mutated headers never crash the parser") {
  // Structured mutations must each be refused; random byte flips may by
  // chance still form a valid file, so for those only "no crash, no foreign
  // exception" is asserted.
  const std::string valid = small_valid_file();
  REQUIRE(parse_error(valid).empty());
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, valid.data(), 8);
  const std::string header = valid.substr(8, header_length);
  const std::string data = valid.substr(8 + header_length);
  int refused = 0;

  // Every truncation of the file.
  for (std::size_t cut = 0; cut < valid.size(); ++cut) {
    CAPTURE(cut);
    CHECK(!parse_error(valid.substr(0, cut)).empty());
    ++refused;
  }
  // Header lengths that do not describe the header.
  for (std::uint64_t length :
       {header_length - 1, header_length + 1, std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0x7fffffffffffffff},
        ~std::uint64_t{0}, std::uint64_t{100} << 20, (std::uint64_t{100} << 20) + 1}) {
    std::string bytes = valid;
    std::memcpy(bytes.data(), &length, 8);
    CHECK(!parse_error(bytes).empty());
    ++refused;
  }
  // Field-level rewrites of one entry.
  const char* bad_entries[] = {
      R"({"dtype":"BF16","shape":[4,8],"data_offsets":[0,63]})",
      R"({"dtype":"BF16","shape":[4,9],"data_offsets":[0,64]})",
      R"({"dtype":"BF16","shape":[-4,8],"data_offsets":[0,64]})",
      R"({"dtype":"BF16","shape":[4611686018427387904,4],"data_offsets":[0,64]})",
      R"({"dtype":"BF16","shape":[18446744073709551615],"data_offsets":[0,64]})",
      R"({"dtype":"BF16","shape":[4,8],"data_offsets":[1,65]})",
      R"({"dtype":"BF16","shape":[4,8],"data_offsets":[-1,63]})",
      R"({"dtype":"BF16","shape":[4,8],"data_offsets":[0,18446744073709551615]})",
      R"({"dtype":"BF16","shape":"4,8","data_offsets":[0,64]})",
      R"({"dtype":"BF16","shape":[4,8]})",
      R"({"shape":[4,8],"data_offsets":[0,64]})",
      R"({"dtype":"bf16","shape":[4,8],"data_offsets":[0,64]})",
      R"({"dtype":"","shape":[4,8],"data_offsets":[0,64]})",
      R"({"dtype":7,"shape":[4,8],"data_offsets":[0,64]})",
      R"({"dtype":"F4","shape":[4,8],"data_offsets":[0,64]})",
      R"({"dtype":"BF16","shape":[4,8],"data_offsets":[0,64,128]})",
      R"({"dtype":"BF16","shape":[4,8],"data_offsets":{"0":0}})",
      R"([])",
      R"(null)",
  };
  const auto a_entry_begin = header.find(R"("a.weight":)") + std::string(R"("a.weight":)").size();
  const auto a_entry_end = header.find('}', a_entry_begin) + 1;
  for (const char* entry : bad_entries) {
    CAPTURE(entry);
    const std::string mutated = header.substr(0, a_entry_begin) + entry + header.substr(a_entry_end);
    CHECK(parse_error(qt::assemble(mutated, data)).find("'a.weight'") != std::string::npos);
    ++refused;
  }
  // Non-object and broken JSON documents.
  for (const char* document : {"", " ", "{", "}", "[]", "null", "\"x\"", "42", "{\"a\":}", "{'a':1}", "{\"a\":1,}",
                               "{\"\xff\":1}", "{\"a\":1}{", "{\"__metadata__\":[]}"}) {
    CAPTURE(document);
    CHECK(!parse_error(qt::assemble(document, data)).empty());
    ++refused;
  }
  CHECK(refused > 200);

  // Random byte flips and insertions inside the header: whatever happens, it
  // is a clean parse or a CheckpointError (anything else escapes and fails the test).
  std::mt19937 random(20240607);
  for (int round = 0; round < 400; ++round) {
    std::string bytes = valid;
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = 8 + random() % header_length;
      bytes[at] = static_cast<char>(random() % 256);
    }
    (void)parse_error(bytes);
  }
}
