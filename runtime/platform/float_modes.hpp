#pragma once
// Subnormal floats flushed to zero on the host (x86 MXCSR: FTZ for results, DAZ for inputs).
//
// Why: an x86 core takes a microcode assist for every SIMD operation that reads or writes a
// subnormal (|x| < 2^-126): ~100x the normal cost. The chunked delta rule of Qwen3.5 decays
// its state and coefficients by exp(G), and products of small decayed values land there:
// a 64 x 128 x 64 product took 1168 us instead of 9.5 us with subnormal inputs (AVX2, Intel
// VM), and a 512-token Qwen3.5-0.8B prefill ran 118 instead of 166 tok/s (docs/perf.md). Values
// that small change no logit, and TensorFlow and oneDNN make the same choice.
//
// Every CPU kernel runs under it, on every thread, whatever the split or the batch, so results
// stay bit-identical across thread counts and batch sizes: the pool's workers set it for good
// (flush_subnormals_on_this_thread), and the calling thread holds a FlushSubnormals for each
// pool call and for each model step (Backend::begin_step). Elsewhere (on other architectures)
// both are no-ops.
namespace quanteval::runtime {

// Sets FTZ and DAZ on the calling thread while it lives, restores the previous mode after.
class FlushSubnormals {
 public:
  FlushSubnormals();
  ~FlushSubnormals();
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
  unsigned saved_mode_;
};

// For threads the runtime owns (the pool's workers): FTZ and DAZ from now on.
void flush_subnormals_on_this_thread();

// Whether the calling thread flushes subnormals now (for tests).
bool subnormals_flushed_on_this_thread();

}  // namespace quanteval::runtime
