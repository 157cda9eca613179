#pragma once
// The packed INT4 layout the CUDA GEMM (runtime/kernels/cuda/marlin_gemm.cu) consumes,
// described once as plain index maps so the CPU can check it and the GPU repack
// kernel can implement exactly the same thing.
//
// This header is included by nvcc (C++17) as well as by the C++20 runtime, so it
// sticks to C++17; the index maps are `QE_HOST_DEVICE` inline functions that the
// repack and GEMM kernels call directly.
//
// Notation: K = in_features (reduction), N = out_features. "Packed row" kp is the
// row's position after act-order sorting (packed row kp holds original row perm[kp]).
//
// ---- Why this layout --------------------------------------------------------
// The tensor-core instruction mma.sync.m16n8k16 takes its B operand (16 k x 8 n)
// as two 32-bit registers per thread: for lane l, with g = l / 4 and t = l % 4,
//   register 0 holds (k = 2t, n = g) in its low half and (k = 2t + 1, n = g) in its high half,
//   register 1 holds (k = 2t + 8, n = g) and (k = 2t + 9, n = g).
// The weights are cut into tiles of 16 packed rows x 64 columns (8 such n8 sub-tiles).
// A tile is 512 bytes: 32 lanes x one 16-byte vector (4 words) each, so a warp fetches a
// whole tile with one coalesced 16-byte load per thread and every nibble it gets belongs
// to a fragment register it owns -- no shuffles after the load.
// Word w of lane l feeds sub-tiles 2w and 2w + 1. The dequantizer pulls nibble pairs
// (p, p + 4) out of a word into the low/high halves of one 32-bit register (the two
// halves of a 32-bit word are independent 16-bit lanes, so nibble p lands in the low
// half and nibble p + 4 in the high one). Pair p becomes sub-tile 2w + p / 2, register p % 2:
//   nibble i (0..7):  p = i % 4, half e = i / 4
//   sub-tile = 2w + p / 2, register r = p % 2
//   k within tile = 2t + e + 8r,  n within tile = 8 * sub-tile + g
// Tiles are stored k-tile major: tile (kt, nt) starts at word (kt * N/64 + nt) * 128,
// so one k-tile row of a block's column strip is a contiguous run of bytes.
//
// Scales are permuted to match: for group G and tile column nt, the 64 scales sit in
// an 8 x 8 block [g][j] = scale(G, nt*64 + 8j + g), so the lanes with the same g read
// their eight sub-tile scales as one 16-byte vector. Scales are stored in the
// activation type (the kernel multiplies in bf16/f16).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/base/host_device.hpp"

namespace quanteval::runtime {
struct GptqWeight;  // runtime/gptq.hpp
}

namespace quanteval::runtime::marlin {

inline constexpr int kTileK = 16;                         // packed rows per tile (the mma k)
inline constexpr int kTileN = 64;                         // columns per tile (8 mma n8 sub-tiles)
inline constexpr int kWordsPerLane = 4;                   // one 16-byte vector per lane per tile
inline constexpr int kWordsPerTile = 32 * kWordsPerLane;  // 128 words = 512 bytes
inline constexpr int kScalesPerTile = kTileN;             // 64 scales per (group, tile column)
// Shape rules of the kernel (checked by validate_shape): K a multiple of 128 (the
// largest k-block of any kernel configuration), N a multiple of 64 (one tile column),
// and a group size the k-blocks line up with.
inline constexpr int kRequiredKMultiple = 128;
inline constexpr int kRequiredNMultiple = kTileN;

// Where one nibble of the packed buffer lives.
struct NibbleSlot {
  int64_t word = 0;  // index into the packed uint32 buffer
  int shift = 0;     // bit offset inside that word (4 * nibble index)
};

// Coordinates of a nibble inside its 16 x 64 tile.
struct TileCoordinate {
  int k = 0;  // 0..15
  int n = 0;  // 0..63
};

// The inverse direction, the one the GPU uses: which (k, n) of its tile a lane's
// word `word` (0..3), nibble `nibble` (0..7) holds. This is the mma fragment rule
// written out (see the header comment).
QE_HOST_DEVICE inline TileCoordinate tile_coordinate(int lane, int word, int nibble) {
  const int g = lane / 4, t = lane % 4;
  const int pair = nibble % 4, half = nibble / 4;
  const int sub_tile = 2 * word + pair / 2, reg = pair % 2;
  return TileCoordinate{2 * t + half + 8 * reg, 8 * sub_tile + g};
}

// Forward direction: where packed row kp, column n lands (n_total = N).
QE_HOST_DEVICE inline NibbleSlot packed_slot(int kp, int n, int n_total) {
  const int kt = kp / kTileK, kk = kp % kTileK;
  const int nt = n / kTileN, nn = n % kTileN;
  const int sub_tile = nn / 8, g = nn % 8;
  const int reg = kk / 8, t = (kk % 8) / 2, half = kk % 2;
  const int lane = 4 * g + t;
  const int word = sub_tile / 2;
  const int pair = 2 * (sub_tile % 2) + reg;
  const int nibble = pair + 4 * half;
  const int64_t tile = static_cast<int64_t>(kt) * (n_total / kTileN) + nt;
  return NibbleSlot{tile * kWordsPerTile + lane * kWordsPerLane + word, 4 * nibble};
}

// Index of scale (group, n) in the permuted scale buffer.
QE_HOST_DEVICE inline int64_t scale_slot(int group, int n, int n_total) {
  const int nt = n / kTileN, nn = n % kTileN;
  const int g = nn % 8, j = nn / 8;
  return ((static_cast<int64_t>(group) * (n_total / kTileN) + nt) * 8 + g) * 8 + j;
}

// Inverse of scale_slot inside one (group, tile column) block of 64: the column offset.
QE_HOST_DEVICE inline int scale_column_in_tile(int index_in_block) {
  const int g = index_in_block / 8, j = index_in_block % 8;
  return 8 * j + g;
}

// ---- Stream-K work partition ------------------------------------------------
// The output is cut into column strips (one per thread block tile column); each
// strip is ktiles k-blocks deep. The strips x ktiles iterations, strip-major, are
// split into `blocks` contiguous ranges as equal as integers allow, so every block
// streams the same number of weight bytes whatever the shape (a skinny layer does
// not leave SMs idle, a wide one does not leave a ragged last wave). A strip
// covered by more than one block is reduced deterministically: each block writes
// its partial sum to its own slot, and the last block to arrive adds the slots in
// block order.
struct StreamKPartition {
  int64_t strips = 0, ktiles = 0, blocks = 0;
  // 1 / total() and 1 / blocks, set by with_reciprocals() (plan_stream_k does): the divisions
  // below then take a double-precision estimate and correct it exactly, because a 64-bit
  // integer division is a called subroutine on the GPU, and a call with the accumulators live
  // makes ptxas spill them. Zero: plain integer division (host aggregates).
  double inverse_total = 0.0, inverse_blocks = 0.0;

  StreamKPartition with_reciprocals() const {
    StreamKPartition p = *this;
    p.inverse_total = 1.0 / static_cast<double>(total());
    p.inverse_blocks = 1.0 / static_cast<double>(blocks);
    return p;
  }
  // floor(x / d) for 0 <= x < 2^62 and 1 <= d < 2^31. The estimate's error is about
  // (x / d) * 2^-52 < 1 (the quotient is below 2^31), so one step of correction each way
  // makes it exact.
  QE_HOST_DEVICE static int64_t divide(int64_t x, int64_t d, double inverse) {
#if !defined(__CUDA_ARCH__)
    if (inverse == 0.0) return x / d;  // the kernel always gets reciprocals (plan_stream_k)
#endif
    int64_t q = static_cast<int64_t>(static_cast<double>(x) * inverse);
    if (q * d > x) --q;
    if ((q + 1) * d <= x) ++q;
    return q;
  }

  QE_HOST_DEVICE int64_t total() const { return strips * ktiles; }
  QE_HOST_DEVICE int64_t begin(int64_t block) const { return divide(block * total(), blocks, inverse_blocks); }
  QE_HOST_DEVICE int64_t end(int64_t block) const { return begin(block + 1); }
  // The block whose range holds iteration i: the largest b with begin(b) <= i.
  QE_HOST_DEVICE int64_t block_of(int64_t i) const { return divide((i + 1) * blocks - 1, total(), inverse_total); }
  QE_HOST_DEVICE int64_t first_block(int64_t strip) const { return block_of(strip * ktiles); }
  QE_HOST_DEVICE int64_t last_block(int64_t strip) const { return block_of((strip + 1) * ktiles - 1); }
  // Which of the block's two partial slots its segment of `strip` uses: 0 for the
  // segment that starts the block's range, 1 for a later one (which must end it).
  QE_HOST_DEVICE int slot(int64_t block, int64_t strip) const {
    const int64_t segment_begin = begin(block) > strip * ktiles ? begin(block) : strip * ktiles;
    return segment_begin == begin(block) ? 0 : 1;
  }
};

// Where the kernel's copy stream is: column strip, k-block within the strip, and for groups
// of at least a k-block (ktiles_per_group k-blocks each, dividing ktiles) the scale group of
// the k-block and the k-block's place in it. The kernel starts one with at() (its only
// divisions, once per block) and then advances it by one k-block per iteration. For groups
// smaller than a k-block the group is ktile * groups_per_kblock instead, and ktiles_per_group
// is passed as 1 (group is then unused).
struct KBlockCursor {
  int strip = 0, ktile = 0, group = 0, ktile_in_group = 0;

  QE_HOST_DEVICE static KBlockCursor at(int iteration, int ktiles, int ktiles_per_group) {
    KBlockCursor c;
    c.strip = iteration / ktiles;
    c.ktile = iteration - c.strip * ktiles;
    c.group = c.ktile / ktiles_per_group;
    c.ktile_in_group = c.ktile - c.group * ktiles_per_group;
    return c;
  }
  QE_HOST_DEVICE void advance(int ktiles, int ktiles_per_group) {
    if (++ktile == ktiles) {
      ktile = 0;
      ++strip;
      group = 0;
      ktile_in_group = 0;
    } else if (++ktile_in_group == ktiles_per_group) {
      ktile_in_group = 0;
      ++group;
    }
  }
};

// The stream-K grid of one launch over `strips` x `ktiles` iterations:
//   blocks = min(multiprocessors x resident_per_multiprocessor,     one wave: no block waits for an SM
//                iterations / min_kblocks_per_block (at least 1),    no block streams less than that
//                max_blocks when > 0,                               test-only cap
//                iterations)                                         no empty block
// with the reciprocals set. Throws std::invalid_argument for non-positive sizes,
// min_kblocks_per_block < 1 or max_blocks < 0, and when the iteration count does not fit the
// kernel's 32-bit cursors. (Inline, like check_gemm_arguments: the CUDA library calls both and
// must not depend on the C++20 runtime library.)
inline StreamKPartition plan_stream_k(int64_t strips, int64_t ktiles, int multiprocessors,
                                      int resident_per_multiprocessor, int min_kblocks_per_block, int max_blocks) {
  if (strips < 1 || ktiles < 1 || multiprocessors < 1 || resident_per_multiprocessor < 1)
    throw std::invalid_argument("plan_stream_k: strips=" + std::to_string(strips) + ", ktiles=" +
                                std::to_string(ktiles) + ", multiprocessors=" + std::to_string(multiprocessors) +
                                ", resident=" + std::to_string(resident_per_multiprocessor) + ": all must be >= 1");
  if (min_kblocks_per_block < 1)
    throw std::invalid_argument("min_kblocks_per_block must be >= 1, got " + std::to_string(min_kblocks_per_block));
  if (max_blocks < 0) throw std::invalid_argument("max_blocks must be >= 0, got " + std::to_string(max_blocks));
  StreamKPartition p;
  p.strips = strips;
  p.ktiles = ktiles;
  // The kernel walks iterations with 32-bit cursors (and block * total stays far inside 64 bits).
  if (p.total() > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("plan_stream_k: " + std::to_string(strips) + " strips x " + std::to_string(ktiles) +
                                " k-blocks exceed the kernel's 32-bit iteration index");
  int64_t blocks = int64_t(multiprocessors) * resident_per_multiprocessor;
  blocks = std::min(blocks, std::max<int64_t>(1, p.total() / min_kblocks_per_block));
  if (max_blocks > 0) blocks = std::min<int64_t>(blocks, max_blocks);
  p.blocks = std::min(blocks, p.total());
  return p.with_reciprocals();
}

// The scalar arguments of marlin_gemm, checked before any work is queued: m >= 1, K, N >= 1,
// min_kblocks_per_block >= 1, max_blocks >= 0, dense_handover_m >= 0. Throws
// std::invalid_argument naming the argument and its value.
inline void check_gemm_arguments(int64_t m, int k, int n, int min_kblocks_per_block, int max_blocks,
                                 int dense_handover_m) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("marlin_gemm: " + what); };
  if (m < 1) fail("m must be >= 1, got " + std::to_string(m));
  if (k < 1 || n < 1) fail("K=" + std::to_string(k) + " and N=" + std::to_string(n) + " must be >= 1");
  if (min_kblocks_per_block < 1)
    fail("min_kblocks_per_block must be >= 1, got " + std::to_string(min_kblocks_per_block));
  if (max_blocks < 0) fail("max_blocks must be >= 0, got " + std::to_string(max_blocks));
  if (dense_handover_m < 0) fail("dense_handover_m must be >= 0 (0 = never), got " + std::to_string(dense_handover_m));
}

// ---- Host-side description (pure C++, CPU-tested) ---------------------------

// Checks that the kernel can take this weight and throws std::invalid_argument
// naming the tensor and the shape when it cannot: bits != 4, K not a multiple of
// 128, N not a multiple of 64, a group size other than 16/32/64 or a multiple of
// 128 (or -1), zeros other than the symmetric 8, act-order groups of unequal size.
void validate_for_kernel(const GptqWeight& weight);

// The group size the kernel uses: weight.group_size, or K for channel-wise (-1).
int effective_group_size(const GptqWeight& weight);

// perm[kp] = original row of packed row kp: rows sorted stably by group, so that
// each group's rows are contiguous (identity when g_idx is empty or already sorted).
std::vector<int32_t> group_sorted_rows(const GptqWeight& weight);
bool is_identity(const std::vector<int32_t>& perm);

// What the GPU repack needs from a validated GPTQ weight, in plain C++17 types (the CUDA
// sources are compiled as C++17 and cannot include gptq.hpp). The pointers view the
// GptqWeight's tensors: keep that alive while using this.
struct PreparedWeight {
  int in_features = 0, out_features = 0;
  int group_size = 0;  // effective (K for channel-wise)
  int groups = 0;
  bool scales_bf16 = false;
  const int32_t* qweight = nullptr;  // [K/8, N]
  const uint16_t* scales = nullptr;  // [G, N]
  std::vector<int32_t> row_order;    // group_sorted_rows
  bool gathers = false;              // row_order is not the identity (act-order)
};

// validate_for_kernel, then the views and the row order.
PreparedWeight prepare_for_kernel(const GptqWeight& weight);

// The packed weight buffer ((K/16) * (N/64) * 128 words), built with packed_slot.
std::vector<uint32_t> repack_weights(const GptqWeight& weight, const std::vector<int32_t>& perm);

// The permuted scale buffer (G * N values) as raw bits of the activation type
// (bf16 when to_bf16, else f16), converted with round-to-nearest-even.
std::vector<uint16_t> repack_scales(const GptqWeight& weight, bool to_bf16);

// W[n, k] (original k order, [N, K] row-major floats) read back from the packed
// buffers by emulating what the kernel does: each lane's words split into nibble
// pairs with the magic-number trick in the activation type, scaled by the lane's
// scale vector, placed where the mma fragment rule says. Tests compare this with
// dequantize_reference.
std::vector<float> unpack_as_kernel(const std::vector<uint32_t>& packed, const std::vector<uint16_t>& scales,
                                    const std::vector<int32_t>& perm, int in_features, int out_features, int group_size,
                                    bool bf16);

// The magic-number dequantization, emulated bit for bit on the host: the two
// 16-bit lanes of register `pair` (0..3) of word `word`, as floats (q - 8 exactly).
void dequantize_pair_emulated(uint32_t word, int pair, bool bf16, float& low, float& high);

}  // namespace quanteval::runtime::marlin
