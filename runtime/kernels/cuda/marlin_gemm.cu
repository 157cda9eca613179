// INT4 x BF16/FP16 GEMM for Hopper (sm_90) with mma.sync tensor cores.
//
// Design in one paragraph (docs/cuda-gemm.md has the long version):
//   * Weights are pre-permuted (runtime/kernels/cuda/marlin_layout.hpp) so a warp loads a 16 x 64
//     tile with one 16-byte load per lane and every nibble lands in that lane's own
//     mma B-fragment register: no shuffles, no ldmatrix for B.
//   * Global -> shared with cp.async in a 4-stage ring; the weight stream carries an
//     L2 evict_first policy (it is read exactly once, so it should not push the
//     activations, which every column strip re-reads, out of L2).
//   * Activation tiles are XOR-swizzled in shared memory so ldmatrix is conflict-free.
//   * Dequantization in registers: lop3 ORs two nibbles into the mantissas of a pair of
//     magic constants (1024.0 for f16, 128.0 for bf16) and one packed subtract/fma
//     yields q - 8 exactly; one packed multiply applies the group scale.
//   * Stream-K: the (column strip x k-block) iterations are split evenly over a grid of at
//     most one wave (marlin::plan_stream_k; small layers get fewer blocks so that each
//     streams a few k-blocks); strips shared by several blocks are reduced deterministically
//     by the last block to arrive (fixed block order, not arrival order), with the loads of
//     several partials in flight at once.
//   * Index arithmetic: 32-bit cursors advanced per k-block and shifts for the group; no
//     64-bit division anywhere in the kernel (a called subroutine on the GPU whose calls made
//     ptxas spill the live accumulators), and the k-block loop runs once per strip segment
//     with the segment's reduction after it (no spills at 64 rows). MarlinGemmOptions keeps
//     the first version's variants selectable so the benchmark can time both.
//   * Batch rows come in chunks of 16, 32 or 64 (one, two or four m16 tiles); a larger
//     chunk re-uses each dequantized weight for more rows, which is what large M needs.
//     From MarlinGemmOptions::dense_handover_m rows on, the weight is dequantized once
//     into scratch and cuBLAS multiplies (prefill: compute-bound, where cuBLAS's wgmma
//     kernels out-run mma.sync).
#include "runtime/kernels/cuda/marlin_gemm.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "runtime/kernels/cuda/cublas_library.hpp"
#include "runtime/kernels/cuda/marlin_layout.hpp"

namespace quanteval::runtime::cuda {
namespace {

namespace mk = quanteval::runtime::marlin;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

// ---- PTX wrappers -------------------------------------------------------------

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// lop3 evaluates any 3-input boolean function given as a truth table: the table is
// the function applied to the constants a = 0xF0, b = 0xCC, c = 0xAA. (a & b) | c is
// therefore (0xF0 & 0xCC) | 0xAA = 0xEA: mask the nibbles and OR in the magic exponent
// in one instruction.
template <int kTruthTable>
__device__ __forceinline__ uint32_t lop3(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm volatile("lop3.b32 %0, %1, %2, %3, %4;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c), "n"(kTruthTable));
  return d;
}
constexpr int kAndThenOr = (0xF0 & 0xCC) | 0xAA;

// An L2 policy marking lines as first to evict: the weights are streamed once.
__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}

// 16-byte asynchronous copy that bypasses L1 (.cg: nothing here is re-read by this SM
// from L1) with the given L2 policy.
__device__ __forceinline__ void copy_async_streaming(void* shared, const void* global, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)),
               "l"(global), "l"(policy));
}

// 16-byte asynchronous copy that writes zeros instead when `valid` is false (src-size 0):
// batch rows past m become zero rows without a branch around the copy.
__device__ __forceinline__ void copy_async_or_zero(void* shared, const void* global, bool valid) {
  const int source_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)), "l"(global),
               "r"(source_bytes));
}

__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int kPendingGroups>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPendingGroups));
}

// Four 8x8 b16 matrices from shared memory: lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void load_matrix_x4(uint32_t (&fragment)[4], const void* shared) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(fragment[0]), "=r"(fragment[1]), "=r"(fragment[2]), "=r"(fragment[3])
               : "r"(shared_address(shared)));
}

template <bool kBf16>
__device__ __forceinline__ void mma_16816(const uint32_t (&a)[4], uint32_t b0, uint32_t b1, float (&c)[4]) {
  if constexpr (kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// ---- 16-bit pair arithmetic on raw 32-bit registers ------------------------------

template <bool kBf16>
struct PairMath;

// A 32-bit register seen as two 16-bit lanes of the pair type, and back.
template <typename PairType>
struct PairBits {
  using Pair = PairType;
  static __device__ __forceinline__ Pair pair(uint32_t bits) {
    Pair p;
    memcpy(&p, &bits, 4);
    return p;
  }
  static __device__ __forceinline__ uint32_t bits(Pair p) {
    uint32_t u;
    memcpy(&u, &p, 4);
    return u;
  }
};

template <>
struct PairMath<true> : PairBits<__nv_bfloat162> {
  static __device__ __forceinline__ uint32_t sub(uint32_t a, uint32_t b) { return bits(__hsub2(pair(a), pair(b))); }
  static __device__ __forceinline__ uint32_t mul(uint32_t a, uint32_t b) { return bits(__hmul2(pair(a), pair(b))); }
  static __device__ __forceinline__ uint32_t low_twice(uint32_t a) { return bits(__low2bfloat162(pair(a))); }
  static __device__ __forceinline__ uint32_t high_twice(uint32_t a) { return bits(__high2bfloat162(pair(a))); }
  static __device__ __forceinline__ uint32_t from_floats(float x, float y) { return bits(__floats2bfloat162_rn(x, y)); }
};

template <>
struct PairMath<false> : PairBits<__half2> {
  static __device__ __forceinline__ uint32_t sub(uint32_t a, uint32_t b) { return bits(__hsub2(pair(a), pair(b))); }
  static __device__ __forceinline__ uint32_t mul(uint32_t a, uint32_t b) { return bits(__hmul2(pair(a), pair(b))); }
  static __device__ __forceinline__ uint32_t fma(uint32_t a, uint32_t b, uint32_t c) {
    return bits(__hfma2(pair(a), pair(b), pair(c)));
  }
  static __device__ __forceinline__ uint32_t low_twice(uint32_t a) { return bits(__low2half2(pair(a))); }
  static __device__ __forceinline__ uint32_t high_twice(uint32_t a) { return bits(__high2half2(pair(a))); }
  static __device__ __forceinline__ uint32_t from_floats(float x, float y) { return bits(__floats2half2_rn(x, y)); }
};

// One packed word (8 nibbles) -> four registers of two 16-bit values, register p
// holding (nibble p, nibble p + 4) - 8. Derivation of the magic numbers:
//   f16: 1024.0 is 0x6400 (exponent 10, so one mantissa step is exactly 1.0). ORing a
//        nibble q into mantissa bits 0-3 gives the f16 value 1024 + q; subtracting
//        1032 (0x6408) leaves q - 8, exact. A nibble in bits 4-7 gives 1024 + 16q;
//        multiplying by 1/16 (0x2C00) and adding -72 (0xD480) gives 64 + q - 72 = q - 8,
//        exact, in one fma -- so each word needs only one shift (by 8), not three.
//   bf16: only 7 mantissa bits, so bits 4-7 would spill into the exponent; use 128.0
//        (0x4300, one mantissa step = 1.0), shift by 4 between pairs, subtract 136 (0x4308).
// The host emulation of exactly this is marlin::dequantize_pair_emulated (CPU-tested).
template <bool kBf16>
__device__ __forceinline__ void dequantize_word(uint32_t word, uint32_t (&pairs)[4]) {
  constexpr uint32_t kLowNibbles = 0x000f000f;
  if constexpr (kBf16) {
    constexpr uint32_t kMagic = 0x43004300, kMagicPlusEight = 0x43084308;
    pairs[0] = PairMath<true>::sub(lop3<kAndThenOr>(word, kLowNibbles, kMagic), kMagicPlusEight);
    pairs[1] = PairMath<true>::sub(lop3<kAndThenOr>(word >> 4, kLowNibbles, kMagic), kMagicPlusEight);
    pairs[2] = PairMath<true>::sub(lop3<kAndThenOr>(word >> 8, kLowNibbles, kMagic), kMagicPlusEight);
    pairs[3] = PairMath<true>::sub(lop3<kAndThenOr>(word >> 12, kLowNibbles, kMagic), kMagicPlusEight);
  } else {
    constexpr uint32_t kHighNibbles = 0x00f000f0, kMagic = 0x64006400, kMagicPlusEight = 0x64086408;
    constexpr uint32_t kOneSixteenth = 0x2c002c00, kMinusSeventyTwo = 0xd480d480;
    const uint32_t upper = word >> 8;
    pairs[0] = PairMath<false>::sub(lop3<kAndThenOr>(word, kLowNibbles, kMagic), kMagicPlusEight);
    pairs[1] = PairMath<false>::fma(lop3<kAndThenOr>(word, kHighNibbles, kMagic), kOneSixteenth, kMinusSeventyTwo);
    pairs[2] = PairMath<false>::sub(lop3<kAndThenOr>(upper, kLowNibbles, kMagic), kMagicPlusEight);
    pairs[3] = PairMath<false>::fma(lop3<kAndThenOr>(upper, kHighNibbles, kMagic), kOneSixteenth, kMinusSeventyTwo);
  }
}

// ---- Tile configurations --------------------------------------------------------

// A thread block of kWarpsN x kWarpsK warps computes a (16 kMBlocks) x (64 kWarpsN)
// output tile. Each warp owns one 64-column tile column and kKSub of the block's
// k16 steps per stage; the kWarpsK partial sums are added in shared memory at the end
// of a strip segment.
template <int MBlocks, int WarpsN, int WarpsK, int KSub, int Stages, int MinBlocksPerSM>
struct TileConfig {
  static constexpr int kMBlocks = MBlocks, kWarpsN = WarpsN, kWarpsK = WarpsK, kKSub = KSub;
  static constexpr int kStages = Stages, kMinBlocksPerSM = MinBlocksPerSM;
  static constexpr int kThreads = 32 * WarpsN * WarpsK;
  static constexpr int kRows = 16 * MBlocks;           // batch rows per launch
  static constexpr int kBlockN = mk::kTileN * WarpsN;  // columns per strip
  static constexpr int kBlockK = 16 * WarpsK * KSub;   // k per stage
  static constexpr int kKSteps = kBlockK / 16;
  // Per-stage shared memory, in 16-byte chunks.
  static constexpr int kWeightChunks = kKSteps * WarpsN * 32;
  static constexpr int kActivationChunksPerRow = kBlockK / 8;
  static constexpr int kActivationChunks = kRows * kActivationChunksPerRow;
  static constexpr int kScaleChunksMax = kKSteps * WarpsN * 8;  // groups of 16 rows at most
  static constexpr int kStageChunks = kWeightChunks + kActivationChunks + kScaleChunksMax;
  // One warp's accumulators as float4s: [m16 tile][n8 sub-tile][lane].
  static constexpr int kWarpFragments = MBlocks * 8 * 32;
  static constexpr int kReduceChunks = WarpsK > 1 ? WarpsN* kWarpFragments : 0;
  static constexpr int kSlotChunks = WarpsN * kWarpFragments;  // one stream-K partial
  static constexpr size_t kSharedBytes = (size_t(Stages) * kStageChunks + kReduceChunks) * 16 + 16;
  static_assert(kSlotChunks % kThreads == 0, "the stream-K reducer gives every thread whole fragments");
  static_assert(kBlockK >= 64, "the activation swizzle XORs 3 bits of the chunk index");
  static_assert(mk::kRequiredKMultiple % kBlockK == 0, "K's required multiple must be whole k-blocks");
};

// m <= 16: pure weight streaming. 128 x 128 per stage (8 KB of weights), 64 KB of shared
// memory, so two blocks share an SM and keep twice the bytes in flight.
using SmallBatchConfig = TileConfig<1, 2, 4, 2, 4, 2>;
// m <= 32: the same stream with two m16 tiles per weight fragment.
using MediumBatchConfig = TileConfig<2, 2, 4, 2, 4, 1>;
// m > 16*2: each dequantized fragment feeds four m16 mmas; 256-wide strips halve the
// activation re-reads; 128 accumulators per lane, so one block per SM.
using LargeBatchConfig = TileConfig<4, 4, 2, 2, 4, 1>;

struct KernelArgs {
  const uint16_t* activations;  // [rows, K] in packed-row order
  uint16_t* output;             // [rows, N]
  const uint4* weights;         // packed (marlin_layout.hpp)
  const uint4* scales;          // permuted, 8 per uint4
  float4* partials;             // [blocks][2 slots][kSlotChunks]
  int* counters;                // [strips], zero between launches
  int rows, k, n, group_size, n_tiles;
  // Group bookkeeping without division (incremental indexing): a group smaller than a k-block
  // (16/32/64 rows) is 16 << group_shift rows; a larger one spans ktiles_per_group k-blocks.
  int group_shift, ktiles_per_group;
  bool batched_reduction;  // MarlinGemmOptions::Reduction::batched
  mk::StreamKPartition partition;
};

// kDivisionIndexing reproduces the first version's index arithmetic and loop
// (MarlinGemmOptions::Indexing::division): a 64-bit division for the strip and k-block of every
// iteration, a division by the group size per k16 step, the segment end tested and run inside
// the k-block loop. Otherwise 32-bit cursors advance by one k-block per iteration and the loop
// runs once per strip segment. Both add the same products in the same order.
template <typename Config, bool kBf16, bool kDivisionIndexing>
__global__ void __launch_bounds__(Config::kThreads, Config::kMinBlocksPerSM) marlin_gemm_kernel(KernelArgs args) {
  using Math = PairMath<kBf16>;
  constexpr int kStages = Config::kStages, kWarpsN = Config::kWarpsN, kWarpsK = Config::kWarpsK;
  constexpr int kMBlocks = Config::kMBlocks, kBlockK = Config::kBlockK, kThreads = Config::kThreads;

  extern __shared__ uint4 shared[];
  uint4* const stage_base = shared;
  float4* const reduce_buffer = reinterpret_cast<float4*>(shared + kStages * Config::kStageChunks);
  __shared__ int last_to_arrive;

  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int warp_n = warp % kWarpsN, warp_k = warp / kWarpsN;
  const int lane_group = lane / 4, lane_in_group = lane % 4;  // mma fragment row / column pair
  const mk::StreamKPartition& partition = args.partition;
  const int block = blockIdx.x;
  // plan_stream_k guarantees strips x ktiles < 2^31, so iteration indices are 32-bit.
  const int iter_begin = static_cast<int>(partition.begin(block));
  const int iterations = static_cast<int>(partition.end(block)) - iter_begin;
  const int ktiles = static_cast<int>(partition.ktiles);
  const uint64_t policy = evict_first_policy();
  // Groups of 16/32/64 rows tile a k-block; larger groups cover whole k-blocks.
  const bool several_groups_per_stage = args.group_size < kBlockK;

  auto weights_of = [&](int stage) { return stage_base + stage * Config::kStageChunks; };
  auto activations_of = [&](int stage) { return weights_of(stage) + Config::kWeightChunks; };
  auto scales_of = [&](int stage) { return activations_of(stage) + Config::kActivationChunks; };

  // Queues the copies of k-block `ktile` of column strip `strip` into ring slot `stage`.
  // first_group: the scale group of the k-block's first row.
  auto load_stage = [&](int strip, int ktile, int first_group, int stage) {
    const int first_tile_column = strip * kWarpsN;
    uint4* weights = weights_of(stage);
    // Weights: kKSteps rows of kWarpsN contiguous 512-byte tiles.
#pragma unroll 1
    for (int chunk = thread; chunk < Config::kWeightChunks; chunk += kThreads) {
      const int k_step = chunk / (kWarpsN * 32), within = chunk % (kWarpsN * 32);
      if (first_tile_column + within / 32 < args.n_tiles) {
        const int64_t tile_row = int64_t(ktile) * Config::kKSteps + k_step;
        copy_async_streaming(weights + chunk,
                             args.weights + (tile_row * args.n_tiles + first_tile_column) * 32 + within, policy);
      }
    }
    // Activations: row r, chunk c stored at chunk c ^ (r % 8) (conflict-free ldmatrix).
    uint4* activations = activations_of(stage);
#pragma unroll 1
    for (int chunk = thread; chunk < Config::kActivationChunks; chunk += kThreads) {
      const int row = chunk / Config::kActivationChunksPerRow, column = chunk % Config::kActivationChunksPerRow;
      const bool valid = row < args.rows;
      const uint16_t* source =
          args.activations + int64_t(valid ? row : 0) * args.k + int64_t(ktile) * kBlockK + column * 8;
      copy_async_or_zero(activations + row * Config::kActivationChunksPerRow + (column ^ (row % 8)), source, valid);
    }
    // Scales: the groups this k-block touches, each kWarpsN x 8 chunks.
    uint4* scales = scales_of(stage);
    int groups_here = 1;
    if (several_groups_per_stage) {
      if constexpr (kDivisionIndexing)
        groups_here = kBlockK / args.group_size;
      else
        groups_here = Config::kKSteps >> args.group_shift;
    }
    for (int chunk = thread; chunk < groups_here * kWarpsN * 8; chunk += kThreads) {
      const int local_group = chunk / (kWarpsN * 8), within = chunk % (kWarpsN * 8);
      if (first_tile_column + within / 8 < args.n_tiles) {
        copy_async_streaming(
            scales + chunk,
            args.scales + (int64_t(first_group + local_group) * args.n_tiles + first_tile_column) * 8 + within, policy);
      }
    }
  };

  // The load cursor: the next iteration to queue. Loads are queued strictly in iteration
  // order, so it only ever advances by one (marlin::KBlockCursor, CPU-tested against division).
  mk::KBlockCursor load = mk::KBlockCursor::at(iter_begin, ktiles, args.ktiles_per_group);
  int64_t load_iteration = iter_begin;  // division indexing only
  auto load_next = [&](int stage) {
    if constexpr (kDivisionIndexing) {
      const int64_t ktiles64 = partition.ktiles;
      const int strip = static_cast<int>(load_iteration / ktiles64);
      const int ktile = static_cast<int>(load_iteration % ktiles64);
      load_stage(strip, ktile, ktile * kBlockK / args.group_size, stage);
      ++load_iteration;
    } else {
      const int first_group =
          several_groups_per_stage ? load.ktile * (Config::kKSteps >> args.group_shift) : load.group;
      load_stage(load.strip, load.ktile, first_group, stage);
      load.advance(ktiles, args.ktiles_per_group);
    }
  };

  float accumulators[kMBlocks][8][4];
  auto clear_accumulators = [&]() {
#pragma unroll
    for (int m = 0; m < kMBlocks; ++m)
#pragma unroll
      for (int s = 0; s < 8; ++s)
#pragma unroll
        for (int r = 0; r < 4; ++r) accumulators[m][s][r] = 0.0f;
  };

  auto compute_stage = [&](int stage) {
    const uint4* weights = weights_of(stage);
    const uint4* activations = activations_of(stage);
    const uint4* scales = scales_of(stage);
    // With four m16 tiles the 128 accumulators leave no room to overlap two k-steps' fragments.
#pragma unroll(kMBlocks >= 4 ? 1 : Config::kKSub)
    for (int step = 0; step < Config::kKSub; ++step) {
      const int k_step = warp_k * Config::kKSub + step;
      const uint4 packed = weights[(k_step * kWarpsN + warp_n) * 32 + lane];
      int local_group = 0;
      if (several_groups_per_stage) {
        if constexpr (kDivisionIndexing)
          local_group = k_step * 16 / args.group_size;
        else
          local_group = k_step >> args.group_shift;
      }
      const uint4 scale_vector = scales[(local_group * kWarpsN + warp_n) * 8 + lane_group];
      uint32_t a_fragments[kMBlocks][4];
#pragma unroll
      for (int m = 0; m < kMBlocks; ++m) {
        // ldmatrix.x4 matrices: rows 0-7/8-15 at k 0-7, then rows 0-7/8-15 at k 8-15.
        const int row = m * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        const int column = k_step * 2 + lane / 16;
        load_matrix_x4(a_fragments[m], activations + row * Config::kActivationChunksPerRow + (column ^ (row % 8)));
      }
      const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
      const uint32_t scale_pairs[4] = {scale_vector.x, scale_vector.y, scale_vector.z, scale_vector.w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        uint32_t pairs[4];
        dequantize_word<kBf16>(words[w], pairs);
        // Sub-tile 2w takes pairs 0/1 and scale element 2w; sub-tile 2w+1 pairs 2/3.
        const uint32_t scale_even = Math::low_twice(scale_pairs[w]);
        const uint32_t scale_odd = Math::high_twice(scale_pairs[w]);
        const uint32_t b0 = Math::mul(pairs[0], scale_even), b1 = Math::mul(pairs[1], scale_even);
        const uint32_t b2 = Math::mul(pairs[2], scale_odd), b3 = Math::mul(pairs[3], scale_odd);
#pragma unroll
        for (int m = 0; m < kMBlocks; ++m) {
          mma_16816<kBf16>(a_fragments[m], b0, b1, accumulators[m][2 * w]);
          mma_16816<kBf16>(a_fragments[m], b2, b3, accumulators[m][2 * w + 1]);
        }
      }
    }
  };

  // Fragment (m, s) of this lane sits at fragment_base + m * 256 + s * 32 (constant offsets
  // from one register, so the compiler does not keep 32 * kMBlocks addresses live).
  const int fragment_base = warp_n * kMBlocks * 256 + lane;
  auto fragment_index = [&](int m, int s) { return fragment_base + m * 256 + s * 32; };

  auto store_output = [&](int strip) {
    const int tile_column = strip * kWarpsN + warp_n;
    if (tile_column >= args.n_tiles) return;
    // Accumulator fragment: c0,c1 at (row g, columns 2t, 2t+1); c2,c3 at row g + 8.
    uint16_t* const lane_output =
        args.output + int64_t(lane_group) * args.n + tile_column * mk::kTileN + lane_in_group * 2;
#pragma unroll
    for (int m = 0; m < kMBlocks; ++m) {
      const int row = m * 16 + lane_group;
      uint16_t* const upper = lane_output + int64_t(m * 16) * args.n;
      uint16_t* const lower = upper + int64_t(8) * args.n;
#pragma unroll
      for (int s = 0; s < 8; ++s) {
        if (row < args.rows)
          *reinterpret_cast<uint32_t*>(upper + s * 8) = Math::from_floats(accumulators[m][s][0], accumulators[m][s][1]);
        if (row + 8 < args.rows)
          *reinterpret_cast<uint32_t*>(lower + s * 8) = Math::from_floats(accumulators[m][s][2], accumulators[m][s][3]);
      }
    }
  };

  // Stores one accumulator fragment given by its slot index ((warp_n, m16 tile, n8 sub-tile, lane),
  // the fragment_index order) -- used by the stream-K reducer, whose threads do not own the fragment.
  auto store_fragment = [&](int strip, int index, float4 value) {
    const int owner_lane = index % 32, sub_tile = (index / 32) % 8;
    const int m_tile = (index / 256) % kMBlocks, owner_warp_n = index / (256 * kMBlocks);
    const int tile_column = strip * kWarpsN + owner_warp_n;
    if (tile_column >= args.n_tiles) return;
    const int column = tile_column * mk::kTileN + sub_tile * 8 + (owner_lane % 4) * 2;
    const int row = m_tile * 16 + owner_lane / 4;
    if (row < args.rows)
      *reinterpret_cast<uint32_t*>(args.output + int64_t(row) * args.n + column) = Math::from_floats(value.x, value.y);
    if (row + 8 < args.rows)
      *reinterpret_cast<uint32_t*>(args.output + int64_t(row + 8) * args.n + column) =
          Math::from_floats(value.z, value.w);
  };

  // End of a strip segment: add the kWarpsK partial sums, then either write the output
  // (the block covered the whole strip) or publish a partial and let the last block reduce.
  auto finish_segment = [&](int strip) {
    // In-block reduction over warp_k, always in the order kWarpsK-1, ..., 1, 0 (deterministic).
    if constexpr (kWarpsK > 1) {
#pragma unroll 1
      for (int step = kWarpsK - 1; step >= 1; --step) {
        if (warp_k == step) {
#pragma unroll
          for (int m = 0; m < kMBlocks; ++m)
#pragma unroll
            for (int s = 0; s < 8; ++s) {
              float4& slot = reduce_buffer[fragment_index(m, s)];
              if (step < kWarpsK - 1) {
                const float4 earlier = slot;
                accumulators[m][s][0] += earlier.x;
                accumulators[m][s][1] += earlier.y;
                accumulators[m][s][2] += earlier.z;
                accumulators[m][s][3] += earlier.w;
              }
              slot = make_float4(accumulators[m][s][0], accumulators[m][s][1], accumulators[m][s][2],
                                 accumulators[m][s][3]);
            }
        }
        __syncthreads();
      }
      if (warp_k == 0) {
#pragma unroll
        for (int m = 0; m < kMBlocks; ++m)
#pragma unroll
          for (int s = 0; s < 8; ++s) {
            const float4 others = reduce_buffer[fragment_index(m, s)];
            accumulators[m][s][0] += others.x;
            accumulators[m][s][1] += others.y;
            accumulators[m][s][2] += others.z;
            accumulators[m][s][3] += others.w;
          }
      }
    }

    const int64_t first = partition.first_block(strip), last = partition.last_block(strip);
    if (first == last) {
      if (warp_k == 0) store_output(strip);
      return;
    }
    if (warp_k == 0) {
      float4* slot = args.partials + (int64_t(block) * 2 + partition.slot(block, strip)) * Config::kSlotChunks;
#pragma unroll
      for (int m = 0; m < kMBlocks; ++m)
#pragma unroll
        for (int s = 0; s < 8; ++s)
          __stcg(slot + fragment_index(m, s), make_float4(accumulators[m][s][0], accumulators[m][s][1],
                                                          accumulators[m][s][2], accumulators[m][s][3]));
    }
    __threadfence();  // publish the partial before the arrival is counted
    __syncthreads();
    if (thread == 0) last_to_arrive = atomicAdd(&args.counters[strip], 1) == static_cast<int>(last - first);
    __syncthreads();
    if (!last_to_arrive) return;
    __threadfence();
    // The last block adds the partials in block order (deterministic whatever the arrival
    // order). All threads share the work; the accumulators are dead by now, so the
    // kPerThread independent float4 loads per source stay in registers.
    constexpr int kPerThread = Config::kSlotChunks / kThreads;
    float4 totals[kPerThread];
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) totals[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    auto add = [](float4& total, const float4& part) {
      total.x += part.x;
      total.y += part.y;
      total.z += part.z;
      total.w += part.w;
    };
    auto slot_of = [&](int64_t source) {
      return args.partials + (source * 2 + partition.slot(source, strip)) * Config::kSlotChunks;
    };
    if (args.batched_reduction) {
      // The loads of kSources source blocks are issued before any is added: one L2 round trip
      // per kSources sources instead of one per source. About 8 float4 loads in flight per thread.
      constexpr int kSources = kPerThread >= 8 ? 1 : 8 / kPerThread;
#pragma unroll 1
      for (int64_t source = first; source <= last; source += kSources) {
        float4 parts[kSources][kPerThread];
#pragma unroll
        for (int s = 0; s < kSources; ++s) {
          if (source + s <= last) {
            const float4* slot = slot_of(source + s);
#pragma unroll
            for (int j = 0; j < kPerThread; ++j) parts[s][j] = __ldcg(slot + thread + j * kThreads);
          }
        }
#pragma unroll
        for (int s = 0; s < kSources; ++s)
          if (source + s <= last)
#pragma unroll
            for (int j = 0; j < kPerThread; ++j) add(totals[j], parts[s][j]);
      }
    } else {
#pragma unroll 1
      for (int64_t source = first; source <= last; ++source) {
        const float4* slot = slot_of(source);
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) add(totals[j], __ldcg(slot + thread + j * kThreads));
      }
    }
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) store_fragment(strip, thread + j * kThreads, totals[j]);
    if (thread == 0) args.counters[strip] = 0;  // every block of this strip has arrived
  };

  clear_accumulators();
  // Prologue: fill kStages - 1 stages (a commit per stage, even when empty, keeps the
  // group count in step with the wait below).
#pragma unroll
  for (int stage = 0; stage < kStages - 1; ++stage) {
    if (stage < iterations) load_next(stage);
    copy_async_commit();
  }
  // The compute cursor: strip and k-block of iteration i.
  int strip = iter_begin / ktiles, ktile = iter_begin - strip * ktiles;
  if constexpr (kDivisionIndexing) {
    // The first version's loop: one loop over k-blocks that tests for a segment end in every
    // iteration (64-bit) and runs the segment end inside it. ptxas then allocates the loop for
    // the reduction's needs as well: at 64 rows, 255 registers and ~140 B of spills.
#pragma unroll 1
    for (int i = 0; i < iterations; ++i) {
      copy_async_wait<kStages - 2>();  // stage i has landed (for this thread)
      __syncthreads();                 // ... for all threads, and stage i-1 is no longer being read
      const int next = i + kStages - 1;
      if (next < iterations) load_next(next % kStages);
      copy_async_commit();
      compute_stage(i % kStages);
      const int64_t iteration = int64_t(iter_begin) + i;
      if ((iteration + 1) % partition.ktiles == 0 || i + 1 == iterations) {
        finish_segment(static_cast<int>(iteration / partition.ktiles));
        clear_accumulators();
      }
    }
  } else {
    // One outer pass per strip segment: the segment end (reductions, stores) sits outside the
    // k-block loop, whose registers then hold only the pipeline (no spills at 64 rows).
    int i = 0;
#pragma unroll 1
    while (i < iterations) {
      const int segment_end = min(iterations, i + (ktiles - ktile));
#pragma unroll 1
      for (; i < segment_end; ++i) {
        copy_async_wait<kStages - 2>();  // stage i has landed (for this thread)
        __syncthreads();                 // ... for all threads, and stage i-1 is no longer being read
        const int next = i + kStages - 1;
        if (next < iterations) load_next(next % kStages);
        copy_async_commit();
        compute_stage(i % kStages);
      }
      finish_segment(strip);
      clear_accumulators();
      ktile = 0;
      ++strip;
    }
  }
  copy_async_wait<0>();
}

// ---- Load-time repacking kernels ---------------------------------------------------

// One thread per packed word: gathers the 8 nibbles marlin::tile_coordinate assigns to
// it from the GPTQ qweight ([K/8, N], row k at bits 4 (k % 8) of word (k / 8, n)).
__global__ void repack_weights_kernel(const int32_t* qweight, const int32_t* row_order, uint32_t* packed, int k,
                                      int n) {
  const int n_tiles = n / mk::kTileN;
  const int64_t total = int64_t(k / mk::kTileK) * n_tiles * mk::kWordsPerTile;
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= total) return;
  const int64_t tile = index / mk::kWordsPerTile;
  const int within = static_cast<int>(index % mk::kWordsPerTile);
  const int lane = within / mk::kWordsPerLane, word = within % mk::kWordsPerLane;
  const int k_tile = static_cast<int>(tile / n_tiles), n_tile = static_cast<int>(tile % n_tiles);
  uint32_t result = 0;
#pragma unroll
  for (int nibble = 0; nibble < 8; ++nibble) {
    const mk::TileCoordinate c = mk::tile_coordinate(lane, word, nibble);
    const int packed_row = k_tile * mk::kTileK + c.k, column = n_tile * mk::kTileN + c.n;
    const int row = row_order ? row_order[packed_row] : packed_row;
    const uint32_t source = static_cast<uint32_t>(qweight[int64_t(row / 8) * n + column]);
    result |= ((source >> (4 * (row % 8))) & 0xfu) << (4 * nibble);
  }
  packed[index] = result;
}

// One thread per scale: permutes [G, N] into the lane-vector order of marlin::scale_slot
// and converts to the activation type with round-to-nearest-even (exact when equal).
__global__ void repack_scales_kernel(const uint16_t* scales, uint16_t* out, int groups, int n, bool scales_bf16,
                                     bool to_bf16) {
  const int n_tiles = n / mk::kTileN;
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= int64_t(groups) * n) return;
  const int64_t block = index / mk::kScalesPerTile;
  const int group = static_cast<int>(block / n_tiles), n_tile = static_cast<int>(block % n_tiles);
  const int column = n_tile * mk::kTileN + mk::scale_column_in_tile(static_cast<int>(index % mk::kScalesPerTile));
  const uint16_t bits = scales[int64_t(group) * n + column];
  if (scales_bf16 == to_bf16) {
    out[index] = bits;
    return;
  }
  const float value = scales_bf16 ? __uint_as_float(uint32_t(bits) << 16) : __half2float(__ushort_as_half(bits));
  out[index] = to_bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(value)) : __half_as_ushort(__float2half_rn(value));
}

// Act-order: gathered[r, kp] = a[r, row_order[kp]], so packed row kp meets its activation.
__global__ void gather_columns_kernel(const uint16_t* a, const int32_t* row_order, uint16_t* gathered, int rows,
                                      int k) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= int64_t(rows) * k) return;
  const int64_t row = index / k;
  const int column = static_cast<int>(index % k);
  gathered[index] = a[row * k + row_order[column]];
}

int blocks_for(int64_t items, int threads) { return static_cast<int>((items + threads - 1) / threads); }

// dense[n, kp] = (q - 8) * scale in the activation type, rounded once (round-to-nearest-even):
// bit for bit the B operand the tensor-core kernel builds with its packed multiply, so the
// dense hand-over computes the same product. Packed-row order, so it meets the same (gathered)
// activations. One thread per 8 consecutive packed rows of one column: one 16-byte store.
template <bool kBf16>
__global__ void dequantize_dense_kernel(const uint32_t* packed, const uint16_t* scales, uint16_t* dense, int k, int n,
                                        int group_size) {
  // run_dense checks that n * k / 8 < 2^31, so the index math is 32-bit (no 64-bit division).
  const int index = blockIdx.x * blockDim.x + threadIdx.x;
  const int chunks_per_row = k / 8;
  if (index >= n * chunks_per_row) return;
  const int column = index / chunks_per_row, first_row = (index - column * chunks_per_row) * 8;
  const int group = first_row / group_size;  // 8 rows never straddle a group (groups are multiples of 16)
  const uint16_t scale_bits = scales[mk::scale_slot(group, column, n)];
  const float scale =
      kBf16 ? __bfloat162float(__ushort_as_bfloat16(scale_bits)) : __half2float(__ushort_as_half(scale_bits));
  uint16_t values[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const mk::NibbleSlot slot = mk::packed_slot(first_row + i, column, n);
    const int q = static_cast<int>((packed[slot.word] >> slot.shift) & 0xfu);
    const float value = float(q - 8) * scale;  // exact in FP32 (4-bit x 8- or 11-bit significands)
    values[i] = kBf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(value)) : __half_as_ushort(__float2half_rn(value));
  }
  uint4 out;
  memcpy(&out, values, sizeof out);
  reinterpret_cast<uint4*>(dense)[index] = out;
}

template <typename Config, bool kBf16, bool kDivisionIndexing>
void launch_chunk(const MarlinWeight& weight, const uint16_t* a, uint16_t* c, int rows, MarlinWorkspace& workspace,
                  cudaStream_t stream, const MarlinGemmOptions& options) {
  const auto kernel = marlin_gemm_kernel<Config, kBf16, kDivisionIndexing>;
  const int n_tiles = weight.out_features() / mk::kTileN;
  const int resident = workspace.blocks_per_multiprocessor(reinterpret_cast<const void*>(kernel), Config::kSharedBytes,
                                                           Config::kThreads);
  const int64_t strips = (weight.out_features() + Config::kBlockN - 1) / Config::kBlockN;  // last may be partial
  const mk::StreamKPartition partition =
      mk::plan_stream_k(strips, weight.in_features() / Config::kBlockK, workspace.multiprocessors(), resident,
                        options.min_kblocks_per_block, options.max_blocks);

  KernelArgs args{};
  args.activations = a;
  args.output = c;
  args.weights = reinterpret_cast<const uint4*>(weight.packed());
  args.scales = reinterpret_cast<const uint4*>(weight.scales());
  args.partials = reinterpret_cast<float4*>(
      workspace.partials(size_t(partition.blocks) * 2 * Config::kSlotChunks * sizeof(float4), stream));
  args.counters = workspace.counters(size_t(partition.strips), stream);
  args.rows = rows;
  args.k = weight.in_features();
  args.n = weight.out_features();
  args.group_size = weight.group_size();
  args.n_tiles = n_tiles;
  // Groups below a k-block are 16, 32 or 64 rows (validate_for_kernel); larger ones are whole
  // multiples of 128 and so of every kBlockK.
  const bool several_groups_per_stage = weight.group_size() < Config::kBlockK;
  args.group_shift = 0;
  while (several_groups_per_stage && (16 << args.group_shift) < weight.group_size()) ++args.group_shift;
  args.ktiles_per_group = several_groups_per_stage ? 1 : weight.group_size() / Config::kBlockK;
  args.batched_reduction = options.reduction == MarlinGemmOptions::Reduction::batched;
  args.partition = partition;
  kernel<<<static_cast<unsigned>(partition.blocks), Config::kThreads, Config::kSharedBytes, stream>>>(args);
  check(cudaGetLastError(), "launch marlin_gemm_kernel");
}

template <typename Config, bool kBf16>
void launch_chunk(const MarlinWeight& weight, const uint16_t* a, uint16_t* c, int rows, MarlinWorkspace& workspace,
                  cudaStream_t stream, const MarlinGemmOptions& options) {
  if (options.indexing == MarlinGemmOptions::Indexing::division)
    launch_chunk<Config, kBf16, true>(weight, a, c, rows, workspace, stream, options);
  else
    launch_chunk<Config, kBf16, false>(weight, a, c, rows, workspace, stream, options);
}

template <bool kBf16>
void run_int4_kernel(const MarlinWeight& weight, const uint16_t* a, uint16_t* c, int m, MarlinWorkspace& workspace,
                     cudaStream_t stream, const MarlinGemmOptions& options) {
  const int k = weight.in_features(), n = weight.out_features();
  for (int row = 0; row < m;) {
    const int left = m - row;
    const uint16_t* a_chunk = a + int64_t(row) * k;
    uint16_t* c_chunk = c + int64_t(row) * n;
    if (left <= SmallBatchConfig::kRows) {
      launch_chunk<SmallBatchConfig, kBf16>(weight, a_chunk, c_chunk, left, workspace, stream, options);
      row += left;
    } else if (left <= MediumBatchConfig::kRows) {
      launch_chunk<MediumBatchConfig, kBf16>(weight, a_chunk, c_chunk, left, workspace, stream, options);
      row += left;
    } else {
      const int rows = std::min(left, LargeBatchConfig::kRows);
      launch_chunk<LargeBatchConfig, kBf16>(weight, a_chunk, c_chunk, rows, workspace, stream, options);
      row += rows;
    }
  }
}

// The dense hand-over: dequantize W into the workspace, then one cuBLAS GEMM for all m rows.
void run_dense(const MarlinWeight& weight, const uint16_t* a, uint16_t* c, int m, MarlinWorkspace& workspace,
               CublasHandle& cublas, cudaStream_t stream) {
  const int k = weight.in_features(), n = weight.out_features();
  auto* dense = static_cast<uint16_t*>(workspace.dense_weight(size_t(n) * k * sizeof(uint16_t), stream));
  const bool bf16 = weight.activation_type() == ActivationType::bf16;
  constexpr int kThreads = 256;
  const int64_t chunks = int64_t(n) * (k / 8);
  if (chunks >= (int64_t(1) << 31) - kThreads)
    throw std::invalid_argument("marlin_gemm: the dense hand-over takes at most 2^31 8-row chunks, got K=" +
                                std::to_string(k) + " N=" + std::to_string(n));
  if (bf16)
    dequantize_dense_kernel<true><<<blocks_for(chunks, kThreads), kThreads, 0, stream>>>(
        weight.packed(), weight.scales(), dense, k, n, weight.group_size());
  else
    dequantize_dense_kernel<false><<<blocks_for(chunks, kThreads), kThreads, 0, stream>>>(
        weight.packed(), weight.scales(), dense, k, n, weight.group_size());
  check(cudaGetLastError(), "launch dequantize_dense_kernel");
  cublas.gemm_row_major(bf16, m, n, k, a, k, dense, k, c, n, stream);
}

}  // namespace

// ---- DeviceBuffer -------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) check(cudaMalloc(&data_, bytes), "cudaMalloc");
}
DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}
DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_), bytes_(other.bytes_) {
  other.data_ = nullptr;
  other.bytes_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = other.data_;
    bytes_ = other.bytes_;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

// ---- MarlinWeight -------------------------------------------------------------------

MarlinWeight MarlinWeight::from_prepared(const mk::PreparedWeight& prepared, ActivationType type, cudaStream_t stream) {
  MarlinWeight out;
  out.in_features_ = prepared.in_features;
  out.out_features_ = prepared.out_features;
  out.group_size_ = prepared.group_size;
  out.type_ = type;
  out.gathers_ = prepared.gathers;

  const int k = prepared.in_features, n = prepared.out_features, groups = prepared.groups;
  const size_t weight_bytes = size_t(k / 8) * n * sizeof(int32_t), scale_bytes = size_t(groups) * n * sizeof(uint16_t);
  DeviceBuffer raw_weights(weight_bytes), raw_scales(scale_bytes);
  check(cudaMemcpyAsync(raw_weights.data(), prepared.qweight, weight_bytes, cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync qweight");
  check(cudaMemcpyAsync(raw_scales.data(), prepared.scales, scale_bytes, cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync scales");
  if (out.gathers_) {
    const std::vector<int32_t>& order = prepared.row_order;
    out.row_order_ = DeviceBuffer(order.size() * sizeof(int32_t));
    check(cudaMemcpyAsync(out.row_order_.data(), order.data(), order.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                          stream),
          "cudaMemcpyAsync row order");
  }
  const int64_t words = int64_t(k / mk::kTileK) * (n / mk::kTileN) * mk::kWordsPerTile;
  out.packed_ = DeviceBuffer(size_t(words) * sizeof(uint32_t));
  out.scales_ = DeviceBuffer(size_t(groups) * n * sizeof(uint16_t));
  constexpr int kThreads = 256;
  repack_weights_kernel<<<blocks_for(words, kThreads), kThreads, 0, stream>>>(
      raw_weights.as<int32_t>(), out.row_order(), out.packed_.as<uint32_t>(), k, n);
  check(cudaGetLastError(), "launch repack_weights_kernel");
  repack_scales_kernel<<<blocks_for(int64_t(groups) * n, kThreads), kThreads, 0, stream>>>(
      raw_scales.as<uint16_t>(), out.scales_.as<uint16_t>(), groups, n, prepared.scales_bf16,
      type == ActivationType::bf16);
  check(cudaGetLastError(), "launch repack_scales_kernel");
  // The raw buffers die with this scope and the host spans may be unmapped after return.
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize after repack");
  return out;
}

std::vector<uint32_t> MarlinWeight::download_packed() const {
  std::vector<uint32_t> host(packed_.bytes() / sizeof(uint32_t));
  check(cudaMemcpy(host.data(), packed_.data(), packed_.bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy packed");
  return host;
}

std::vector<uint16_t> MarlinWeight::download_scales() const {
  std::vector<uint16_t> host(scales_.bytes() / sizeof(uint16_t));
  check(cudaMemcpy(host.data(), scales_.data(), scales_.bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy scales");
  return host;
}

// ---- MarlinWorkspace ----------------------------------------------------------------

MarlinWorkspace::MarlinWorkspace() {
  check(cudaGetDevice(&device_), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, device_),
        "cudaDeviceGetAttribute multiProcessorCount");
}
MarlinWorkspace::~MarlinWorkspace() = default;
MarlinWorkspace::MarlinWorkspace(MarlinWorkspace&&) noexcept = default;
MarlinWorkspace& MarlinWorkspace::operator=(MarlinWorkspace&&) noexcept = default;

float* MarlinWorkspace::partials(size_t bytes, cudaStream_t stream) {
  if (partials_.bytes() < bytes) {
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize before growing partials");
    partials_ = DeviceBuffer(bytes);
  }
  return partials_.as<float>();
}

int* MarlinWorkspace::counters(size_t count, cudaStream_t stream) {
  if (counters_.bytes() < count * sizeof(int)) {
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize before growing counters");
    counters_ = DeviceBuffer(count * sizeof(int));
    // Zero once; each strip's last block puts its counter back to zero.
    check(cudaMemsetAsync(counters_.data(), 0, counters_.bytes(), stream), "cudaMemsetAsync counters");
  }
  return counters_.as<int>();
}

void* MarlinWorkspace::gathered(size_t bytes, cudaStream_t stream) {
  if (gathered_.bytes() < bytes) {
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize before growing gathered activations");
    gathered_ = DeviceBuffer(bytes);
  }
  return gathered_.data();
}

void* MarlinWorkspace::dense_weight(size_t bytes, cudaStream_t stream) {
  if (dense_.bytes() < bytes) {
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize before growing the dense weight scratch");
    dense_ = DeviceBuffer();  // free first: the old and new scratch together may not fit
    dense_ = DeviceBuffer(bytes);
  }
  return dense_.data();
}

CublasHandle* MarlinWorkspace::cublas() {
  if (!cublas_tried_) {
    cublas_tried_ = true;
    cublas_ = CublasHandle::open(cublas_error_);
  }
  return cublas_.get();
}

int MarlinWorkspace::blocks_per_multiprocessor(const void* kernel, size_t shared_bytes, int threads) {
  for (const auto& [known, blocks] : occupancy_)
    if (known == kernel) return blocks;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes)),
        "cudaFuncSetAttribute MaxDynamicSharedMemorySize");
  int blocks = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, shared_bytes),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  if (blocks < 1) throw std::runtime_error("CUDA: marlin_gemm_kernel cannot be resident on this device");
  occupancy_.emplace_back(kernel, blocks);
  return blocks;
}

void MarlinWorkspace::reserve(int max_m, int max_n, int max_k, cudaStream_t stream, bool with_dense_handover) {
  // Partials: at most SMs x resident blocks, two slots each, of the largest configuration's
  // slot (two resident blocks at most for any configuration). Grown on demand anyway.
  partials(size_t(multiprocessors_) * 2 * 2 * LargeBatchConfig::kSlotChunks * sizeof(float4), stream);
  counters(size_t(max_n / mk::kTileN), stream);
  gathered(size_t(max_m) * max_k * sizeof(uint16_t), stream);
  if (with_dense_handover) {
    dense_weight(size_t(max_n) * max_k * sizeof(uint16_t), stream);
    cublas();
  }
}

// ---- Entry points -------------------------------------------------------------------

bool uses_dense_handover(int m, MarlinWorkspace& workspace, const MarlinGemmOptions& options) {
  return options.dense_handover_m > 0 && m >= options.dense_handover_m && workspace.cublas() != nullptr;
}

void marlin_gemm(const MarlinWeight& weight, const void* a, void* c, int m, MarlinWorkspace& workspace,
                 cudaStream_t stream, const MarlinGemmOptions& options) {
  mk::check_gemm_arguments(m, weight.in_features(), weight.out_features(), options.min_kblocks_per_block,
                           options.max_blocks, options.dense_handover_m);
  if (a == nullptr || c == nullptr) throw std::invalid_argument("marlin_gemm: null activation or output pointer");
  if (weight.packed() == nullptr) throw std::invalid_argument("marlin_gemm: the weight holds no data (moved from?)");
  const uint16_t* activations = static_cast<const uint16_t*>(a);
  if (weight.gathers_activations()) {
    const int64_t elements = int64_t(m) * weight.in_features();
    auto* gathered = static_cast<uint16_t*>(workspace.gathered(size_t(elements) * sizeof(uint16_t), stream));
    constexpr int kThreads = 256;
    gather_columns_kernel<<<blocks_for(elements, kThreads), kThreads, 0, stream>>>(activations, weight.row_order(),
                                                                                   gathered, m, weight.in_features());
    check(cudaGetLastError(), "launch gather_columns_kernel");
    activations = gathered;
  }
  auto* output = static_cast<uint16_t*>(c);
  if (uses_dense_handover(m, workspace, options)) {
    run_dense(weight, activations, output, m, workspace, *workspace.cublas(), stream);
  } else if (weight.activation_type() == ActivationType::bf16) {
    run_int4_kernel<true>(weight, activations, output, m, workspace, stream, options);
  } else {
    run_int4_kernel<false>(weight, activations, output, m, workspace, stream, options);
  }
}

bool device_available() { return device_status().usable; }

}  // namespace quanteval::runtime::cuda
