// GPU tests of the CUDA INT4 GEMM (label cuda). Exits 77 -- "not run" for ctest --
// when no GPU is visible; never passes without one.
//
// What is checked, with fresh random data every run (the seed is printed):
//   * the GPU repack equals the host repack (runtime/marlin_layout.cpp) byte for byte;
//   * C = A W^T against the reference dequantizer and a float64 matmul, over batch sizes
//     1, 3, 17, 118, 257 (every tile configuration and a partial last chunk), group sizes
//     32/64/128/channel-wise (and 16), act-order on and off, BF16 and FP16, K and N at the
//     tile edges (one k-block, partial column strips) and a shape that splits every strip
//     across many blocks (the stream-K reduction);
//   * outputs are poisoned with NaN first, so an element the kernel never wrote fails;
//   * two runs give identical bytes (the reduction is deterministic);
//   * unsupported shapes throw std::invalid_argument naming the shape.
//
// Error bound (relative L2, ||C - R|| / ||R||): the kernel rounds each scale to the
// activation type and each product (q - 8) * scale once (two roundings, unit u each),
// accumulates in FP32 (K * 2^-24, negligible) and rounds the output once (u). With
// random signs these add like a random walk, so the expected relative L2 error is about
// u * sqrt(3) / sqrt(3) ~ u: u = 2^-8 = 3.9e-3 for BF16, 2^-11 = 4.9e-4 for FP16. The
// bounds allow 2.5x that: 1e-2 (BF16) and 1.25e-3 (FP16) -- a layout error moves
// whole weights and lands at ~1.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/kernels/cuda/marlin_gemm.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "runtime/kernels/cuda/marlin_layout.hpp"
#include "runtime/base/numeric.hpp"

using namespace quanteval::runtime;
using cuda::ActivationType;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

uint16_t encode(float v, bool bf16) { return bf16 ? float_to_bf16(v) : float_to_f16(v); }
float decode(uint16_t v, bool bf16) { return bf16 ? bf16_to_float(v) : f16_to_float(v); }

struct Case {
  int k, n, group;
  bool act_order;
};

OwnedGptqWeight make_weight(const Case& c, ScaleFormat scale_format, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(c.n) * c.k);
  for (float& v : w) v = normal(rng);
  QuantizeOptions options;
  options.group_size = c.group;
  options.act_order = c.act_order;
  options.scale_format = scale_format;
  options.format = (rng() & 1) ? GptqFormat::v1 : GptqFormat::v2;
  options.seed = rng();
  return quantize_reference(w, c.n, c.k, options);
}

void test_repack(const Case& c, bool bf16, std::mt19937_64& rng) {
  const OwnedGptqWeight owned = make_weight(c, (rng() & 1) ? ScaleFormat::bf16 : ScaleFormat::f16, rng);
  const auto weight = cuda::MarlinWeight::from_gptq(owned.weight, bf16 ? ActivationType::bf16 : ActivationType::f16);
  const std::vector<int32_t> order = marlin::group_sorted_rows(owned.weight);
  const std::string name = "repack K=" + std::to_string(c.k) + " N=" + std::to_string(c.n) +
                           " group=" + std::to_string(c.group) + (c.act_order ? " act-order" : "") +
                           (bf16 ? " bf16" : " f16");
  expect(weight.download_packed() == marlin::repack_weights(owned.weight, order), name + ": packed words differ");
  expect(weight.download_scales() == marlin::repack_scales(owned.weight, bf16), name + ": scales differ");
}

// Every batch size against the float64 reference; NaN / unwritten outputs and run-to-run differences fail.
void test_gemm(const Case& c, bool bf16, const std::vector<int>& batch_sizes, std::mt19937_64& rng,
               cuda::MarlinWorkspace& workspace) {
  const OwnedGptqWeight owned = make_weight(c, ScaleFormat::f16, rng);
  const auto weight = cuda::MarlinWeight::from_gptq(owned.weight, bf16 ? ActivationType::bf16 : ActivationType::f16);
  const std::vector<float> dense = dequantize_reference(owned.weight);  // [N, K]
  for (int m : batch_sizes) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<uint16_t> a_bits(static_cast<size_t>(m) * c.k);
    std::vector<float> a(a_bits.size());
    for (size_t i = 0; i < a.size(); ++i) {
      a_bits[i] = encode(normal(rng), bf16);
      a[i] = decode(a_bits[i], bf16);
    }
    const size_t out_elements = static_cast<size_t>(m) * c.n;
    void *d_a = nullptr, *d_c = nullptr;
    check_cuda(cudaMalloc(&d_a, a_bits.size() * 2), "cudaMalloc a");
    check_cuda(cudaMalloc(&d_c, out_elements * 2), "cudaMalloc c");
    check_cuda(cudaMemcpy(d_a, a_bits.data(), a_bits.size() * 2, cudaMemcpyHostToDevice), "copy a");
    std::vector<uint16_t> out(out_elements), again(out_elements);
    for (int run = 0; run < 2; ++run) {
      check_cuda(cudaMemset(d_c, 0xff, out_elements * 2), "poison c");  // 0xFFFF is NaN in bf16 and f16
      cuda::marlin_gemm(weight, d_a, d_c, m, workspace, nullptr);
      check_cuda(cudaDeviceSynchronize(), "marlin_gemm");
      check_cuda(cudaMemcpy(run == 0 ? out.data() : again.data(), d_c, out_elements * 2, cudaMemcpyDeviceToHost),
                 "copy c");
    }
    cudaFree(d_a);
    cudaFree(d_c);

    double error2 = 0, reference2 = 0;
    size_t not_finite = 0;
    for (int row = 0; row < m; ++row) {
      const float* a_row = a.data() + static_cast<size_t>(row) * c.k;
      for (int col = 0; col < c.n; ++col) {
        const float* w_row = dense.data() + static_cast<size_t>(col) * c.k;
        double reference = 0;
        for (int k = 0; k < c.k; ++k) reference += static_cast<double>(a_row[k]) * w_row[k];
        const float got = decode(out[static_cast<size_t>(row) * c.n + col], bf16);
        if (!std::isfinite(got)) ++not_finite;
        error2 += (got - reference) * (got - reference);
        reference2 += reference * reference;
      }
    }
    const double relative = std::sqrt(error2 / reference2);
    const double bound = bf16 ? 1e-2 : 1.25e-3;
    char name[200];
    std::snprintf(name, sizeof name, "gemm %s M=%d K=%d N=%d group=%d%s", bf16 ? "bf16" : "f16", m, c.k, c.n,
                  c.group, c.act_order ? " act-order" : "");
    std::printf("%-60s rel L2 %.2e (bound %.1e)%s\n", name, relative, bound,
                not_finite ? "  UNWRITTEN/NaN" : "");
    expect(not_finite == 0, std::string(name) + ": " + std::to_string(not_finite) + " outputs NaN or unwritten");
    expect(relative <= bound, std::string(name) + ": relative L2 error over the bound");
    expect(std::memcmp(out.data(), again.data(), out.size() * 2) == 0, std::string(name) + ": runs differ");
  }
}

void test_rejections(std::mt19937_64& rng) {
  const std::vector<Case> bad = {{192, 64, 64, false}, {256, 96, 64, false}, {384, 64, 48, false}};
  for (const Case& c : bad) {
    std::vector<float> w(static_cast<size_t>(c.n) * c.k, 0.01f);
    QuantizeOptions options;
    options.group_size = c.group;
    const OwnedGptqWeight owned = quantize_reference(w, c.n, c.k, options);
    bool threw = false;
    try {
      (void)cuda::MarlinWeight::from_gptq(owned.weight, ActivationType::bf16);
    } catch (const std::invalid_argument& e) {
      threw = std::string(e.what()).find("K=" + std::to_string(c.k)) != std::string::npos;
    }
    expect(threw, "shape K=" + std::to_string(c.k) + " N=" + std::to_string(c.n) + " group=" +
                      std::to_string(c.group) + " not rejected with its shape");
  }
  (void)rng;
}

}  // namespace

int main() {
  if (!cuda::device_available()) {
    std::printf("test_marlin_gemm_cuda: no CUDA device visible -- not run\n");
    return 77;
  }
  const uint64_t seed = std::random_device{}();
  std::printf("test_marlin_gemm_cuda seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  try {
    for (const Case& c : std::vector<Case>{{128, 64, 32, false}, {256, 320, 64, true}, {1024, 192, 128, true},
                                           {512, 128, -1, false}, {512, 256, 16, true}})
      for (int bf16 = 0; bf16 < 2; ++bf16) test_repack(c, bf16 != 0, rng);

    cuda::MarlinWorkspace workspace;
    const std::vector<int> all_batches = {1, 3, 17, 118, 257};
    // Tile edges: one k-block (K=128), one tile column (N=64), partial strips (N=320, 1088),
    // many blocks per strip (K=4096, N=128: stream-K reduction), a layer-sized K (5120).
    const std::vector<Case> cases = {
        {128, 64, 32, false},   {128, 64, 128, true},    {256, 320, 64, false},  {256, 320, 64, true},
        {1024, 1088, 128, false}, {1024, 1088, 128, true}, {4096, 128, 32, false}, {4096, 128, -1, false},
        {5120, 192, 64, true},  {512, 256, 16, false},
    };
    for (int bf16 = 1; bf16 >= 0; --bf16)
      for (const Case& c : cases) test_gemm(c, bf16 != 0, all_batches, rng, workspace);
    test_rejections(rng);
  } catch (const std::exception& e) {
    std::printf("FAIL: exception: %s\n", e.what());
    ++failures;
  }
  std::printf("test_marlin_gemm_cuda: %s (%d failures, seed %llu)\n", failures ? "FAILED" : "passed", failures,
              static_cast<unsigned long long>(seed));
  return failures ? 1 : 0;
}
