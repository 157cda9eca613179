#pragma once
// CPU linear layers: INT4 GPTQ (repacked at load time) and dense BF16/FP16/FP32.
// Both compute Y[m, N] = X[m, K] * W^T (+ bias) with fp32 accumulation -- dense with
// fp32 activations, INT4 by default with int16-quantized activations (exact int32
// products, see Int4Activations) or optionally fp32 -- on the widest SIMD level this
// CPU has (or one forced by the caller), split over output columns on a
// caller-owned ThreadPool.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/checkpoint/gptq.hpp"
#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/platform/streamed_memory.hpp"

namespace quanteval::runtime {

// 16-bit weights (bf16 or fp16 bits) as the dense kernels stream them; see streamed_memory.hpp.
using Bits16 = StreamedVector<uint16_t>;

// How Int4Linear treats the activations.
//  int16: each row of X is quantized per block of 128 packed rows to int16 with a float
//        scale (round to nearest, scale = max|x| / 32767), the products with the 4-bit
//        weights are summed exactly in int32 (vpdpwssd / vpmaddwd), and scales and zero
//        points are applied once per block. Error per output <= sum_k |w_k| scale_b / 2
//        (~1.5e-5 of max|x| per element) plus fp32 rounding (bound derived in
//        tests/cpu_kernels/test_helpers.hpp). Bitwise identical on every ISA and thread
//        count. ~4x fewer instructions per weight than fp32 at M = 1.
//        (int8 was tried first: 2-4x cheaper still, but its ~0.4% activation error gave
//        1.7e-2 relative logit error on the test fixtures, over the 1e-2 bound, and
//        flipped greedy tokens; int16 keeps the error ~250x smaller.)
//  fp32: weights dequantized exactly in registers, fp32 activations and FMAs: the
//        reference-grade path (differs from dequantize_reference only by summation order).
enum class Int4Activations { int16, fp32 };

class Int4Linear {
 public:
  // Validates `weight` (std::invalid_argument naming the field) and repacks it:
  // K is reordered so each group's rows are contiguous (act-order g_idx sorted
  // stably by group, the permutation kept to gather activations at run time), each
  // group padded to a multiple of 8 rows with zero activations, columns cut into
  // blocks of 16 (the last padded). `bias` is empty or [N]. The packed lines come from
  // `arena` when given (a model's weights share one), else from a mapping of their own.
  static Int4Linear from_gptq(const GptqWeight& weight, std::span<const float> bias = {},
                              std::shared_ptr<StreamedArena> arena = nullptr);

  // x: [m, K] row-major, y: [m, N] row-major (every element written). m >= 1, any size
  // (tiles of up to 8 rows share one pass over the weights).
  // Uses activations() (int16 unless set otherwise).
  void forward(const float* x, int m, float* y, ThreadPool& pool) const;
  // Same with a forced SIMD level; throws std::runtime_error when this CPU lacks it.
  void forward(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa) const;
  // Forced SIMD level and activation precision (tests, benchmarks).
  void forward(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa, Int4Activations activations) const;

  // The products of one x [m, K] with several INT4 layers of the same K: ys[i] [m, N_i] =
  // x W_i^T (+ b_i), the bits forward() gives each, in one parallel pass over all their
  // weights (each layer's activations quantized as forward() does it). At M = 1 a small
  // GEMV's start and end cost about as much as streaming its weights, so a layer's q/k/v or
  // gate/up go as one. Where forward() would not run one int16 chunk on the default ISA
  // (fp32 activations, the AMX rows, m > 32) this is one forward() per layer.
  static void forward_shared_input(std::span<const Int4Linear* const> linears, const float* x, int m,
                                   std::span<float* const> ys, ThreadPool& pool);

  // Activation precision used by the forwards that do not name one. Default int16.
  Int4Activations activations() const { return activations_; }
  void set_activations(Int4Activations activations) { activations_ = activations; }

  // W [N, K] rebuilt from the packed layout alone (tests compare it with dequantize_reference).
  std::vector<float> dequantize() const;

  int in_features() const { return in_features_; }
  int out_features() const { return out_features_; }
  // Bytes one forward streams: packed nibbles + scale/zero headers.
  size_t packed_bytes() const { return lines_.size() * sizeof(detail::PackedLine); }
  // Those bytes themselves (benchmarks flush them from the caches before a cold call).
  std::span<const std::byte> packed_memory() const { return std::as_bytes(std::span(lines_)); }
  // True when activations are gathered (act-order or padded groups) before the kernel.
  bool gathers_activations() const { return gather_; }
  // True when this layer quantizes every x to the bits `other` does: the same packed K
  // order (no gather, or the same act-order permutation) and the same groups, so
  // forward_shared_input quantizes x once for both.
  bool quantizes_like(const Int4Linear& other) const;

 private:
  int in_features_ = 0;
  int out_features_ = 0;
  int packed_k_ = 0;  // K after per-group padding to multiples of 8
  bool scales_bf16_ = false;
  bool gather_ = false;
  Int4Activations activations_ = Int4Activations::int16;
  int64_t quant_blocks_ = 0;                  // activation blocks per row (kQuantBlockLines lines each, per group)
  int64_t amx_steps_ = 0;                     // AMX k-steps per row (kAmxStepLines lines each, per group)
  std::vector<int32_t> source_row_;           // [packed_k]: original k of each packed row, -1 for padding
  std::vector<int> group_rows_;               // [groups present] lines (of 8 rows) per group
  StreamedVector<detail::PackedLine> lines_;  // [blocks * lines_per_block]
  int64_t lines_per_block_ = 0;
  int64_t num_blocks_ = 0;
  std::vector<float> bias_;  // [N] or empty

  // The int16 forward on AMX tiles from this many rows: below it the VNNI kernels,
  // already near the weight stream's speed, win over the per-call weight unpacking.
  static constexpr int kAmxMinRows = 16;
  static bool uses_amx(int m, CpuIsa isa, Int4Activations activations);
  void forward_amx(const float* x, int m, ThreadPool& pool, detail::Int4Problem problem) const;

  // Rows of x per int16 pass over the weights (see forward).
  static constexpr int kInt16RowChunk = 32;
  // One int16 pass ready to run: the problem and the buffers it points into. The buffers
  // are not zero-filled (quantize_activations writes every element); a call that shares
  // another call's activations owns none and points into that call's.
  struct Int16Call {
    detail::Int4Problem problem;
    void (*kernel)(const detail::Int4Problem&, int64_t, int64_t) = nullptr;
    std::unique_ptr<int16_t[]> x_q;                     // [packed K / 8][m][8]
    std::unique_ptr<detail::QuantBlockScale[]> blocks;  // [m, quant_blocks]
    std::unique_ptr<uint8_t[]> x_bytes;                 // [packed K * 2] (M = 1, AVX-512 VNNI only)
  };
  // `same_activations`: a call prepared by a layer for which quantizes_like(*this) holds,
  // on the same x, m and isa; its quantized activations are reused instead of redone.
  Int16Call prepare_int16(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa,
                          const Int16Call* same_activations = nullptr) const;
  detail::Int4Problem problem(int m, float* y) const;  // the weight fields set, no activations

  // Rows [row_begin, row_end) of x ([m, K]) into x_q / blocks (see detail::Int4Problem).
  void quantize_activations(const float* x, int row_begin, int row_end, int m, int16_t* x_q,
                            detail::QuantBlockScale* blocks) const;
};

class DenseLinear {
 public:
  // w: [n, k] row-major raw bits (bf16 / fp16) or floats; copied. bias empty or [n].
  static DenseLinear from_bf16(const uint16_t* w, int n, int k, std::span<const float> bias = {});
  static DenseLinear from_f16(const uint16_t* w, int n, int k, std::span<const float> bias = {});
  static DenseLinear from_f32(const float* w, int n, int k, std::span<const float> bias = {});
  // Shares 16-bit weights [n, k] held elsewhere (a tied lm_head reads the
  // embedding table itself instead of a second copy of it).
  static DenseLinear from_shared_16bit(std::shared_ptr<const Bits16> w, bool bf16, int n, int k,
                                       std::span<const float> bias = {});

  void forward(const float* x, int m, float* y, ThreadPool& pool) const;
  void forward(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa) const;

  int in_features() const { return in_features_; }
  int out_features() const { return out_features_; }
  size_t weight_bytes() const { return (bits16_ ? bits16_->size() * 2 : 0) + floats_.size() * 4; }
  // The weights a forward streams (benchmarks flush them from the caches before a cold call).
  std::span<const std::byte> weight_memory() const {
    return bits16_ ? std::as_bytes(std::span(*bits16_)) : std::as_bytes(std::span(floats_));
  }

 private:
  static DenseLinear make(detail::DenseType type, int n, int k, std::span<const float> bias);

  detail::DenseType type_ = detail::DenseType::f32;
  int in_features_ = 0;
  int out_features_ = 0;
  std::shared_ptr<const Bits16> bits16_;  // [n, k] for bf16 / f16 (possibly shared)
  std::vector<float> floats_;             // [n, k] for f32
  std::vector<float> bias_;
};

// Bulk f16 -> float conversion, F16C when available (exact either way).
void f16_to_float(std::span<const uint16_t> in, std::span<float> out);

}  // namespace quanteval::runtime
