// Real GPTQ v1 act-order tensors from the qwen3 tiny fixture (quantized by
// GPTQModel, not by this project): they validate, have the expected symmetric
// zeros and non-monotonic g_idx, and every fast kernel matches the reference
// dequantizer on them. (Whole-model logits against transformers are the model
// tests' job; this checks the weight representation on real bytes.)
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/kernels/cpu/linear.hpp"
#include "tests/cpu_kernels/test_helpers.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval::runtime;

namespace {

// Just enough safetensors for a test: 8-byte little-endian header length, JSON
// header {name: {dtype, shape, data_offsets}}, then the data block.
class TinySafetensors {
 public:
  explicit TinySafetensors(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path.string());
    uint64_t header_size = 0;
    in.read(reinterpret_cast<char*>(&header_size), 8);
    std::string header(header_size, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_size));
    header_ = nlohmann::json::parse(header);
    data_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  template <typename T>
  std::vector<T> tensor(const std::string& name, const std::string& dtype, std::vector<int64_t>& shape) const {
    const auto& entry = header_.at(name);
    if (entry.at("dtype") != dtype) throw std::runtime_error(name + ": dtype is not " + dtype);
    shape = entry.at("shape").get<std::vector<int64_t>>();
    const auto begin = entry.at("data_offsets")[0].get<size_t>(), end = entry.at("data_offsets")[1].get<size_t>();
    std::vector<T> out((end - begin) / sizeof(T));
    std::memcpy(out.data(), data_.data() + begin, end - begin);
    return out;
  }

 private:
  nlohmann::json header_;
  std::vector<char> data_;
};

}  // namespace

TEST_CASE("fixture GPTQ tensors (qwen3 tiny, v1, act-order, group 64): reference and kernels agree") {
  std::filesystem::path path;
  try {
    path = quanteval::test::fixture("models/qwen3-tiny-gptq-g64-actorder/model.safetensors");
  } catch (const quanteval::test::MissingTestData& missing) {
    MESSAGE("skipping: " << missing.what());
    return;
  }
  const TinySafetensors file(path);
  ThreadPool pool(2);
  std::mt19937_64 rng(quanteval::test::test_seed() + 70);
  for (const char* module :
       {"model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_proj", "model.layers.1.self_attn.q_proj"}) {
    CAPTURE(module);
    std::vector<int64_t> qweight_shape, qzeros_shape, scales_shape, g_idx_shape;
    const auto qweight = file.tensor<int32_t>(std::string(module) + ".qweight", "I32", qweight_shape);
    const auto qzeros = file.tensor<int32_t>(std::string(module) + ".qzeros", "I32", qzeros_shape);
    const auto scales = file.tensor<uint16_t>(std::string(module) + ".scales", "F16", scales_shape);
    const auto g_idx = file.tensor<int32_t>(std::string(module) + ".g_idx", "I32", g_idx_shape);
    GptqWeight weight;
    weight.name = module;
    weight.in_features = static_cast<int>(qweight_shape[0] * 8);
    weight.out_features = static_cast<int>(qweight_shape[1]);
    weight.group_size = 64;
    weight.format = GptqFormat::v1;
    weight.qweight = qweight;
    weight.qzeros = qzeros;
    weight.scales = scales;
    weight.g_idx = g_idx;
    REQUIRE_NOTHROW(weight.validate());
    CHECK(scales_shape[0] == weight.in_features / 64);

    bool monotonic = true;
    for (size_t k = 1; k < g_idx.size(); ++k) monotonic = monotonic && g_idx[k] >= g_idx[k - 1];
    CHECK_FALSE(monotonic);  // desc_act: the act-order path is exercised
    int non_eight = 0;
    for (int g = 0; g < weight.num_groups(); ++g)
      for (int n = 0; n < weight.out_features; ++n) non_eight += weight.zero(g, n) != 8;
    CHECK(non_eight == 0);  // sym=true: stored 7, real zero 8

    const auto reference = dequantize_reference(weight);
    const auto linear = Int4Linear::from_gptq(weight);
    CHECK(linear.dequantize() == reference);
    int blocks = 0;
    const auto block_of = quanteval::test::int16_activation_blocks(weight, blocks);
    for (int m : {1, 5, 16}) {
      const auto x = quanteval::test::random_floats(rng, static_cast<size_t>(m) * weight.in_features);
      const auto expected = quanteval::test::reference_matmul(x, reference, m, weight.out_features, weight.in_features);
      const auto expected_int16 = quanteval::test::reference_matmul_int16(x, reference, m, weight.out_features,
                                                                          weight.in_features, block_of, blocks);
      for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512}) {
        if (!cpu_supports(isa)) continue;
        for (Int4Activations activations : {Int4Activations::fp32, Int4Activations::int16}) {
          std::vector<float> y(static_cast<size_t>(m) * weight.out_features, std::numeric_limits<float>::quiet_NaN());
          linear.forward(x.data(), m, y.data(), pool, isa, activations);
          const bool int16 = activations == Int4Activations::int16;
          CHECK(quanteval::test::count_mismatches(
                    y, int16 ? expected_int16 : expected,
                    fmt::format("{} M={} {} {}", module, m, to_string(isa), int16 ? "int16" : "fp32")) == 0);
        }
      }
    }
  }
}
