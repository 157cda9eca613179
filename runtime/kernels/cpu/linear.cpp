#include "runtime/kernels/cpu/linear.hpp"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

#include "runtime/base/numeric.hpp"

namespace quanteval::runtime {
namespace {

using detail::kInt4BlockColumns;
using detail::PackedLine;

void check_bias(std::span<const float> bias, int n, const char* what) {
  if (!bias.empty() && bias.size() != static_cast<size_t>(n)) {
    throw std::invalid_argument(
        fmt::format("{}: bias has {} elements, expected out_features = {}", what, bias.size(), n));
  }
}

void check_forward_args(const float* x, int m, float* y, CpuIsa isa, const char* what) {
  if (m < 1) throw std::invalid_argument(fmt::format("{}::forward: m = {} must be >= 1", what, m));
  if (x == nullptr || y == nullptr) throw std::invalid_argument(fmt::format("{}::forward: null x or y", what));
  if (!cpu_supports(isa)) {
    throw std::runtime_error(
        fmt::format("{}::forward: this CPU or build cannot run the {} kernels", what, to_string(isa)));
  }
}

// Column blocks go to the threads as streams (ThreadPool::parallel_streams): each thread
// runs through one contiguous share of the blocks in address order, so its reads and its
// software prefetches run on from one claimed run into the next (at M = 1, DRAM-resident,
// 24 x 3 MLP matrices: 65% of the read floor with runs handed out in turn, ~80% as
// streams). Runs of ~1/8 of a share still let a thread that another job delays leave
// the rest of its share to the others. Each block's result does not depend on who computes it.
void run_blocks(ThreadPool& pool, int64_t blocks, const std::function<void(int64_t, int64_t)>& task) {
  const int64_t grain = std::max<int64_t>(2, blocks / (8 * pool.size()));
  pool.parallel_streams(blocks, grain, task);
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

Int4Linear Int4Linear::from_gptq(const GptqWeight& weight, std::span<const float> bias,
                                 std::shared_ptr<StreamedArena> arena) {
  weight.validate();
  check_bias(bias, weight.out_features, "Int4Linear::from_gptq");
  Int4Linear out;
  out.lines_ = StreamedVector<PackedLine>(StreamedAllocator<PackedLine>(std::move(arena)));
  out.in_features_ = weight.in_features;
  out.out_features_ = weight.out_features;
  out.scales_bf16_ = weight.scale_format == ScaleFormat::bf16;
  out.bias_.assign(bias.begin(), bias.end());
  const int k_count = weight.in_features, n_count = weight.out_features, groups = weight.num_groups();

  // Stable counting sort of K by group: within a group the original order is kept,
  // so without act-order the permutation is the identity and no gather is needed.
  std::vector<std::vector<int32_t>> members(groups);
  for (int k = 0; k < k_count; ++k) members[weight.group_of(k)].push_back(k);
  std::vector<int> group_ids;  // original group id of each present group
  for (int g = 0; g < groups; ++g) {
    if (members[g].empty()) continue;
    const int lines = static_cast<int>((members[g].size() + 7) / 8);
    group_ids.push_back(g);
    out.group_rows_.push_back(lines);
    out.source_row_.insert(out.source_row_.end(), members[g].begin(), members[g].end());
    // Pad to whole 8-row words; padded rows read a zero activation, so their weight never matters.
    out.source_row_.resize(out.source_row_.size() + (static_cast<size_t>(lines) * 8 - members[g].size()), -1);
  }
  out.packed_k_ = static_cast<int>(out.source_row_.size());
  out.gather_ = out.packed_k_ != k_count;
  for (int k = 0; k < out.packed_k_ && !out.gather_; ++k) out.gather_ = out.source_row_[k] != k;

  out.num_blocks_ = (n_count + kInt4BlockColumns - 1) / kInt4BlockColumns;
  out.lines_per_block_ = 0;
  for (int lines : out.group_rows_) {
    out.lines_per_block_ += 1 + lines;
    out.quant_blocks_ += (lines + detail::kQuantBlockLines - 1) / detail::kQuantBlockLines;
    out.amx_steps_ += (lines + detail::kAmxStepLines - 1) / detail::kAmxStepLines;
  }
  out.lines_.assign(static_cast<size_t>(out.num_blocks_ * out.lines_per_block_), PackedLine{});

  for (int64_t block = 0; block < out.num_blocks_; ++block) {
    PackedLine* line = out.lines_.data() + block * out.lines_per_block_;
    int64_t packed_row = 0;
    for (size_t gi = 0; gi < group_ids.size(); ++gi) {
      const int g = group_ids[gi];
      uint16_t header[2 * kInt4BlockColumns] = {};  // scale bits, then zeros; padded columns stay 0
      for (int c = 0; c < kInt4BlockColumns; ++c) {
        const int n = static_cast<int>(block * kInt4BlockColumns + c);
        if (n >= n_count) break;
        header[c] = weight.scales[static_cast<size_t>(g) * n_count + n];
        header[kInt4BlockColumns + c] = static_cast<uint16_t>(weight.zero(g, n));
      }
      std::memcpy(line->words, header, sizeof header);
      ++line;
      for (int r = 0; r < out.group_rows_[gi]; ++r, ++line, packed_row += 8) {
        const int32_t* src = out.source_row_.data() + packed_row;
        // Whole aligned original word (always so without act-order): copy it as is.
        bool whole_word = src[0] >= 0 && src[0] % 8 == 0;
        for (int j = 1; j < 8 && whole_word; ++j) whole_word = src[j] == src[0] + j;
        for (int c = 0; c < kInt4BlockColumns; ++c) {
          const int n = static_cast<int>(block * kInt4BlockColumns + c);
          if (n >= n_count) break;
          if (whole_word) {
            line->words[c] = static_cast<uint32_t>(weight.qweight[static_cast<size_t>(src[0] / 8) * n_count + n]);
            continue;
          }
          uint32_t word = 0;
          for (int j = 0; j < 8; ++j) {
            if (src[j] >= 0) word |= static_cast<uint32_t>(weight.quant(src[j], n)) << (4 * j);
          }
          line->words[c] = word;
        }
      }
    }
  }
  return out;
}

std::vector<float> Int4Linear::dequantize() const {
  std::vector<float> dense(static_cast<size_t>(out_features_) * in_features_, 0.0f);
  for (int64_t block = 0; block < num_blocks_; ++block) {
    const PackedLine* line = lines_.data() + block * lines_per_block_;
    int64_t packed_row = 0;
    for (int lines : group_rows_) {
      uint16_t header[2 * kInt4BlockColumns];
      std::memcpy(header, line->words, sizeof header);
      ++line;
      for (int r = 0; r < lines; ++r, ++line, packed_row += 8) {
        for (int c = 0; c < kInt4BlockColumns; ++c) {
          const int64_t n = block * kInt4BlockColumns + c;
          if (n >= out_features_) break;
          const float scale = scales_bf16_ ? bf16_to_float(header[c]) : f16_to_float(header[c]);
          const int zero = header[kInt4BlockColumns + c];
          for (int j = 0; j < 8; ++j) {
            const int32_t k = source_row_[packed_row + j];
            if (k < 0) continue;
            const int q = static_cast<int>((line->words[c] >> (4 * j)) & 0xfu);
            dense[n * in_features_ + k] = scale * static_cast<float>(q - zero);
          }
        }
      }
    }
  }
  return dense;
}

void Int4Linear::forward(const float* x, int m, float* y, ThreadPool& pool) const {
  forward(x, m, y, pool, best_cpu_isa(), activations_);
}

void Int4Linear::forward(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa) const {
  forward(x, m, y, pool, isa, activations_);
}

// Quantizes each row of x (gathered into the packed K order on the way) to int16 per
// activation block; see Int4Activations and detail::QuantBlockScale. x_q holds each
// 8-row line as rows 0,4,1,5,2,6,3,7: the (row j, row j+4) int16 pairs that sit in
// one dword of a packed weight word after masking with 0x000f000f (see the kernels).
// Per block: scale = max|x| / 32767 (fp32), x_q = round-to-nearest(x / scale) computed
// in double (so |x - scale * x_q| <= scale / 2 up to 2^-37 relative; the clamp to
// +-32767 only absorbs that last-bit slack). A block with a NaN or inf gets scale NaN
// (its outputs are NaN, never a silently finite number); an all-zero block gets scale 0.
void Int4Linear::quantize_activations(const float* x, int row_begin, int row_end, int m, int16_t* x_q,
                                      detail::QuantBlockScale* blocks) const {
  constexpr int kMaxRows = detail::kQuantBlockLines * 8;
  // Same results either way (tested): the choice follows the CPU, not the forced ISA.
  auto* quantize = cpu_supports(CpuIsa::avx512) ? &detail::quantize_block_avx512
                   : cpu_supports(CpuIsa::avx2) ? &detail::quantize_block_avx2
                                                : &detail::quantize_block_scalar;
  float values[kMaxRows];
  for (int i = row_begin; i < row_end; ++i) {
    const float* row = x + static_cast<size_t>(i) * in_features_;
    int16_t* out = x_q + static_cast<size_t>(i) * 8;  // line l of this row at out + 8 m l
    detail::QuantBlockScale* block = blocks + static_cast<size_t>(i) * quant_blocks_;
    int64_t k = 0;
    for (int lines_in_group : group_rows_) {
      for (int r0 = 0; r0 < lines_in_group; r0 += detail::kQuantBlockLines, ++block) {
        const int rows = 8 * std::min(detail::kQuantBlockLines, lines_in_group - r0);
        if (gather_) {
          for (int j = 0; j < rows; ++j) values[j] = source_row_[k + j] >= 0 ? row[source_row_[k + j]] : 0.0f;
        } else {
          std::memcpy(values, row + k, sizeof(float) * rows);
        }
        quantize(values, rows, out + k / 8 * 8 * static_cast<int64_t>(m), 8 * static_cast<int64_t>(m), block);
        k += rows;
      }
    }
  }
}

detail::Int4Problem Int4Linear::problem(int m, float* y) const {
  detail::Int4Problem problem;
  problem.lines = lines_.data();
  problem.lines_per_block = lines_per_block_;
  problem.group_rows = group_rows_.data();
  problem.num_groups = static_cast<int>(group_rows_.size());
  problem.scales_bf16 = scales_bf16_;
  problem.m = m;
  problem.y = y;
  problem.n = out_features_;
  problem.bias = bias_.empty() ? nullptr : bias_.data();
  problem.software_prefetch = int4_software_prefetch();
  return problem;
}

bool Int4Linear::uses_amx(int m, CpuIsa isa, Int4Activations activations) {
  return activations == Int4Activations::int16 && isa == CpuIsa::avx512 && m >= kAmxMinRows && amx_enabled();
}

bool Int4Linear::quantizes_like(const Int4Linear& other) const {
  return in_features_ == other.in_features_ && packed_k_ == other.packed_k_ && quant_blocks_ == other.quant_blocks_ &&
         gather_ == other.gather_ && group_rows_ == other.group_rows_ && (!gather_ || source_row_ == other.source_row_);
}

// One chunk of rows (m <= kInt16RowChunk) on the int16 kernels: x quantized (rows spread
// over the pool when there are several: batched decode has 16 rows of up to 4864 values),
// the kernel chosen, the problem ready for run_blocks. At M = 1 this runs on the calling
// thread while the workers wait, so it does no more than it must: no zero-fill, and no
// second quantization of an x another layer of the same call already quantized.
Int4Linear::Int16Call Int4Linear::prepare_int16(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa,
                                                const Int16Call* same_activations) const {
  Int16Call call;
  call.problem = problem(m, y);
  call.kernel = isa == CpuIsa::avx512 ? &detail::int4_blocks_avx512
                : isa == CpuIsa::avx2 ? &detail::int4_blocks_avx2
                                      : &detail::int4_blocks_scalar;
  if (isa == CpuIsa::avx512 && detail::avx512_vnni_supported()) call.kernel = &detail::int4_blocks_avx512_vnni;
  if (isa == CpuIsa::avx2 && avx2_vnni_enabled()) call.kernel = &detail::int4_blocks_avx2_vnni;
  call.problem.x_q_line_stride = 8 * static_cast<int64_t>(m);
  call.problem.x_blocks_stride = quant_blocks_;
  if (same_activations) {
    call.problem.x_q = same_activations->problem.x_q;
    call.problem.x_blocks = same_activations->problem.x_blocks;
    call.problem.x_bytes = same_activations->problem.x_bytes;
    return call;
  }
  call.x_q = std::make_unique_for_overwrite<int16_t[]>(static_cast<size_t>(m) * packed_k_);
  call.blocks = std::make_unique_for_overwrite<detail::QuantBlockScale[]>(static_cast<size_t>(m) * quant_blocks_);
  if (m == 1) {
    quantize_activations(x, 0, 1, 1, call.x_q.get(), call.blocks.get());
  } else {
    pool.parallel_for(m, [&](int64_t begin, int64_t end) {
      quantize_activations(x, static_cast<int>(begin), static_cast<int>(end), m, call.x_q.get(), call.blocks.get());
    });
  }
  call.problem.x_q = call.x_q.get();
  call.problem.x_blocks = call.blocks.get();
  if (m == 1 && call.kernel == &detail::int4_blocks_avx512_vnni) {
    // The byte-halves kernel (kernels_avx512.cpp): the same bits, fewer instructions a line.
    call.x_bytes = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(packed_k_) * 2);
    detail::int16_to_byte_halves_avx512(call.x_q.get(), packed_k_ / 8, call.x_bytes.get());
    call.problem.x_bytes = call.x_bytes.get();
  }
  return call;
}

void Int4Linear::forward(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa,
                         Int4Activations activations) const {
  check_forward_args(x, m, y, isa, "Int4Linear");
  if (uses_amx(m, isa, activations)) {
    forward_amx(x, m, pool, problem(m, y));
    return;
  }
  if (activations == Int4Activations::int16) {
    // Rows go in chunks of kInt16RowChunk, each with its own x_q layout ([line][chunk rows]
    // [8]) and its own pass over the weights. One layout over all M rows made every tile of
    // a long prompt read its activations 16 * M bytes apart (8 KB at M = 512: a page per
    // line, and the whole x_q -- 0.9-5 MB -- re-streamed from L3 for every column block);
    // a chunk's x_q stays in L2 and the weights are re-read once per chunk instead. Each
    // row's result does not depend on the chunking (batch invariance, tested).
    for (int m0 = 0; m0 < m; m0 += kInt16RowChunk) {
      const int rows = std::min(kInt16RowChunk, m - m0);
      const Int16Call call = prepare_int16(x + static_cast<size_t>(m0) * in_features_, rows,
                                           y + static_cast<size_t>(m0) * out_features_, pool, isa);
      run_blocks(pool, num_blocks_, [&](int64_t begin, int64_t end) { call.kernel(call.problem, begin, end); });
    }
    return;
  }

  detail::Int4Problem fp32 = problem(m, y);
  auto* kernel = isa == CpuIsa::avx512 ? &detail::int4_blocks_avx512
                 : isa == CpuIsa::avx2 ? &detail::int4_blocks_avx2
                                       : &detail::int4_blocks_scalar;
  std::vector<float> gathered;
  fp32.x = x;
  fp32.x_stride = in_features_;
  if (gather_) {
    // Permute (and zero-pad) the activation columns into the packed K order once,
    // so the hot loop reads x and the weights both sequentially.
    gathered.resize(static_cast<size_t>(m) * packed_k_);
    for (int i = 0; i < m; ++i) {
      const float* row = x + static_cast<size_t>(i) * in_features_;
      float* out = gathered.data() + static_cast<size_t>(i) * packed_k_;
      for (int k = 0; k < packed_k_; ++k) out[k] = source_row_[k] >= 0 ? row[source_row_[k]] : 0.0f;
    }
    fp32.x = gathered.data();
    fp32.x_stride = packed_k_;
  }
  run_blocks(pool, num_blocks_, [&](int64_t begin, int64_t end) { kernel(fp32, begin, end); });
}

void Int4Linear::forward_shared_input(std::span<const Int4Linear* const> linears, const float* x, int m,
                                      std::span<float* const> ys, ThreadPool& pool) {
  if (linears.size() != ys.size())
    throw std::invalid_argument(fmt::format("Int4Linear::forward_shared_input: {} layers but {} outputs",
                                            linears.size(), ys.size()));
  if (linears.empty()) return;
  const CpuIsa isa = best_cpu_isa();
  bool one_pass = linears.size() > 1 && m <= kInt16RowChunk;
  for (size_t i = 0; i < linears.size(); ++i) {
    if (linears[i]->in_features_ != linears[0]->in_features_)
      throw std::invalid_argument(fmt::format(
          "Int4Linear::forward_shared_input: layer {} takes {} inputs, layer 0 takes {}", i,
          linears[i]->in_features_, linears[0]->in_features_));
    one_pass = one_pass && linears[i]->activations_ == Int4Activations::int16 &&
               !uses_amx(m, isa, Int4Activations::int16);
  }
  if (!one_pass) {
    for (size_t i = 0; i < linears.size(); ++i) linears[i]->forward(x, m, ys[i], pool);
    return;
  }
  check_forward_args(x, m, ys[0], isa, "Int4Linear");
  // Each layer's activations as forward() quantizes them (act-order layers gather x in their
  // own order), then one pass over the concatenation of all their column blocks. Layers
  // that quantize x alike (q/k/v and gate/up of one layer; act-order ones too where GPTQ
  // gave them one permutation, which it derives from their shared input) share one copy.
  std::vector<Int16Call> calls;
  calls.reserve(linears.size());        // calls point into earlier calls' buffers
  std::vector<int64_t> first_block{0};  // [layers + 1]: layer i's blocks are [first_block[i], first_block[i + 1])
  for (size_t i = 0; i < linears.size(); ++i) {
    if (ys[i] == nullptr) throw std::invalid_argument("Int4Linear::forward_shared_input: null output");
    const Int16Call* same = nullptr;
    for (size_t j = 0; j < i && !same; ++j)
      if (calls[j].x_q && linears[i]->quantizes_like(*linears[j])) same = &calls[j];
    calls.push_back(linears[i]->prepare_int16(x, m, ys[i], pool, isa, same));
    first_block.push_back(first_block.back() + linears[i]->num_blocks_);
  }
  run_blocks(pool, first_block.back(), [&](int64_t begin, int64_t end) {
    for (size_t i = 0; i < calls.size() && begin < end; ++i) {
      const int64_t from = std::max(begin, first_block[i]), to = std::min(end, first_block[i + 1]);
      if (from < to) calls[i].kernel(calls[i].problem, from - first_block[i], to - first_block[i]);
    }
  });
}

// The int16 product on AMX tiles (detail::int4_blocks_amx: the same bits as the other
// kernels, so whether a call takes it never changes a result). Rows go in chunks of whole
// 16-row tiles (padded rows are zero) whose split activations (2 bytes a value) fit in
// ~1 MB of L2, between 32 and 128 rows: every column block's weights are unpacked once per
// chunk and every tile of the chunk then streams through them. Measured at M = 512 (one
// thread, K = 896 and 4864): chunks of 64-128 rows ran 1.1-1.8x faster than 256-512.
void Int4Linear::forward_amx(const float* x, int m, ThreadPool& pool, detail::Int4Problem problem) const {
  constexpr int64_t kChunkBytes = int64_t{1} << 20;
  constexpr int64_t kTileBytes = 16 * 64;  // one 16-row tile of one k-step
  const int64_t row_bytes = 64 * amx_steps_;
  const int max_rows = static_cast<int>(std::clamp<int64_t>(kChunkBytes / (2 * row_bytes) / 16 * 16, 32, 128));
  // Equal chunks (whole tiles) rather than full ones and a short tail: the same number of
  // passes over the weights, and no pass for a handful of rows.
  const int chunks = (m + max_rows - 1) / max_rows;
  const int chunk_rows = ((m + chunks - 1) / chunks + 15) / 16 * 16;
  std::vector<int8_t> hi(static_cast<size_t>(chunk_rows) * row_bytes);
  std::vector<uint8_t> lo(static_cast<size_t>(chunk_rows) * row_bytes);
  std::vector<detail::QuantBlockScale> blocks(static_cast<size_t>(chunk_rows) * quant_blocks_);
  problem.a_hi = hi.data();
  problem.a_lo = lo.data();
  problem.quant_blocks = quant_blocks_;
  problem.amx_steps = amx_steps_;
  problem.x_blocks = blocks.data();
  problem.x_blocks_stride = quant_blocks_;
  float* const y = problem.y;
  for (int m0 = 0; m0 < m; m0 += chunk_rows) {
    const int rows = std::min(chunk_rows, m - m0);
    pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
      std::vector<int16_t> row_q(static_cast<size_t>(packed_k_));
      for (int64_t i = begin; i < end; ++i) {
        quantize_activations(x + static_cast<size_t>(m0 + i) * in_features_, 0, 1, 1, row_q.data(),
                             blocks.data() + i * quant_blocks_);
        const int64_t at = i / 16 * 16 * row_bytes + i % 16 * 64;  // tile i / 16, step 0, row i % 16
        detail::amx_split_row(row_q.data(), group_rows_.data(), static_cast<int>(group_rows_.size()),
                              lo.data() + at, hi.data() + at, kTileBytes);
      }
    });
    // The last tile's padded rows: zero activations and scales (their outputs are not stored).
    const int padded = (rows + 15) / 16 * 16;
    for (int i = rows; i < padded; ++i) {
      for (int64_t step = 0; step < amx_steps_; ++step) {
        const int64_t at = i / 16 * 16 * row_bytes + step * kTileBytes + i % 16 * 64;
        std::fill_n(hi.begin() + at, 64, int8_t{0});
        std::fill_n(lo.begin() + at, 64, uint8_t{0});
      }
      std::fill_n(blocks.begin() + i * quant_blocks_, quant_blocks_, detail::QuantBlockScale{0.0f, 0});
    }
    problem.m = rows;
    problem.y = y + static_cast<size_t>(m0) * out_features_;
    run_blocks(pool, num_blocks_, [&](int64_t begin, int64_t end) { detail::int4_blocks_amx(problem, begin, end); });
  }
}

DenseLinear DenseLinear::make(detail::DenseType type, int n, int k, std::span<const float> bias) {
  if (n <= 0 || k <= 0) {
    throw std::invalid_argument(fmt::format("DenseLinear: shape [n={}, k={}] must be positive", n, k));
  }
  check_bias(bias, n, "DenseLinear");
  DenseLinear out;
  out.type_ = type;
  out.out_features_ = n;
  out.in_features_ = k;
  out.bias_.assign(bias.begin(), bias.end());
  return out;
}

DenseLinear DenseLinear::from_bf16(const uint16_t* w, int n, int k, std::span<const float> bias) {
  DenseLinear out = make(detail::DenseType::bf16, n, k, bias);
  out.bits16_ = std::make_shared<const Bits16>(w, w + static_cast<size_t>(n) * k);
  return out;
}

DenseLinear DenseLinear::from_f16(const uint16_t* w, int n, int k, std::span<const float> bias) {
  DenseLinear out = make(detail::DenseType::f16, n, k, bias);
  out.bits16_ = std::make_shared<const Bits16>(w, w + static_cast<size_t>(n) * k);
  return out;
}

DenseLinear DenseLinear::from_shared_16bit(std::shared_ptr<const Bits16> w, bool bf16, int n, int k,
                                           std::span<const float> bias) {
  DenseLinear out = make(bf16 ? detail::DenseType::bf16 : detail::DenseType::f16, n, k, bias);
  if (!w || w->size() != static_cast<size_t>(n) * static_cast<size_t>(k))
    throw std::invalid_argument(
        fmt::format("DenseLinear: shared weights hold {} values, expected [{}, {}]", w ? w->size() : 0, n, k));
  out.bits16_ = std::move(w);
  return out;
}

DenseLinear DenseLinear::from_f32(const float* w, int n, int k, std::span<const float> bias) {
  DenseLinear out = make(detail::DenseType::f32, n, k, bias);
  out.floats_.assign(w, w + static_cast<size_t>(n) * k);
  return out;
}

void DenseLinear::forward(const float* x, int m, float* y, ThreadPool& pool) const {
  forward(x, m, y, pool, best_cpu_isa());
}

void DenseLinear::forward(const float* x, int m, float* y, ThreadPool& pool, CpuIsa isa) const {
  check_forward_args(x, m, y, isa, "DenseLinear");
  detail::DenseProblem problem;
  problem.w = type_ == detail::DenseType::f32 ? static_cast<const void*>(floats_.data())
                                              : static_cast<const void*>(bits16_->data());
  problem.type = type_;
  problem.n = out_features_;
  problem.k = in_features_;
  problem.x = x;
  problem.m = m;
  problem.y = y;
  problem.bias = bias_.empty() ? nullptr : bias_.data();
  std::unique_ptr<float[], AlignedFree> split;
  if (type_ == detail::DenseType::bf16 && (isa == CpuIsa::avx512 || isa == CpuIsa::avx2)) {
    // The AVX-512 and AVX2 bf16 kernels take x split by k parity (see dense_bf16_split_tile); m * K
    // floats, small next to the weights. Every M uses it, M = 1 too: it sums each output in
    // its own order, so a plain kernel at M = 1 gave a sequence decoded alone other logit
    // bits than the same sequence in a batch (batch invariance, tested). At M = 1 it stays
    // memory-bound (4 weight rows = 4 independent FMA chains per pass).
    // 64-byte aligned (half is a multiple of 16 floats, so every X vector load is one
    // cache line; misaligned, each would split two lines: ~30% slower, measured).
    const int64_t half = ((static_cast<int64_t>(in_features_) + 1) / 2 + 15) / 16 * 16;
    const size_t floats = static_cast<size_t>(m) * 2 * half;
    split.reset(static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float))));
    if (!split) throw std::bad_alloc();
    std::fill(split.get(), split.get() + floats, 0.0f);
    for (int i = 0; i < m; ++i) {
      const float* row = x + static_cast<size_t>(i) * in_features_;
      float* out = split.get() + static_cast<size_t>(i) * 2 * half;
      for (int k = 0; k < in_features_; ++k) out[(k & 1) * half + k / 2] = row[k];
    }
    problem.x_split = split.get();
    problem.x_split_half = half;
  }
  problem.row_prefetch = dense_row_prefetch();
  auto* kernel = isa == CpuIsa::avx512 ? &detail::dense_rows_avx512
                 : isa == CpuIsa::avx2 ? &detail::dense_rows_avx2
                                       : &detail::dense_rows_scalar;
  // Rows as streams, as run_blocks does for INT4: each thread reads its own share in address
  // order, and a worker that another job delays leaves the rest of its share to the others
  // instead of stalling the call (the lm_head is most of a decode step's bytes). Runs of
  // whole 32-row chunks (the kernels' row chunk), down to one chunk at the end of a share;
  // a row's result does not depend on who computes it.
  constexpr int64_t kRowChunk = 32;
  const int64_t grain =
      std::max(kRowChunk, (out_features_ / (8 * pool.size()) + kRowChunk - 1) / kRowChunk * kRowChunk);
  pool.parallel_streams(
      out_features_, grain, [&](int64_t begin, int64_t end) { kernel(problem, begin, end); }, kRowChunk);
}

void f16_to_float(std::span<const uint16_t> in, std::span<float> out) {
  if (out.size() < in.size()) throw std::invalid_argument("f16_to_float: output shorter than input");
  if (cpu_supports(CpuIsa::avx2)) {
    detail::f16_to_float_avx2(in.data(), out.data(), in.size());
    return;
  }
  for (size_t i = 0; i < in.size(); ++i) out[i] = f16_to_float(in[i]);
}

}  // namespace quanteval::runtime
