#include "runtime/platform/float_modes.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define QUANTEVAL_HAVE_MXCSR 1
#endif

namespace quanteval::runtime {

#ifdef QUANTEVAL_HAVE_MXCSR
namespace {
constexpr unsigned kFlushToZero = 1u << 15;     // MXCSR.FTZ: subnormal results become 0
constexpr unsigned kDenormalsAreZero = 1u << 6;  // MXCSR.DAZ: subnormal inputs read as 0
constexpr unsigned kFlushBits = kFlushToZero | kDenormalsAreZero;
}  // namespace

FlushSubnormals::FlushSubnormals() : saved_mode_(_mm_getcsr()) { _mm_setcsr(saved_mode_ | kFlushBits); }
FlushSubnormals::~FlushSubnormals() { _mm_setcsr(saved_mode_); }
void flush_subnormals_on_this_thread() { _mm_setcsr(_mm_getcsr() | kFlushBits); }
bool subnormals_flushed_on_this_thread() { return (_mm_getcsr() & kFlushBits) == kFlushBits; }
#else
FlushSubnormals::FlushSubnormals() : saved_mode_(0) {}
FlushSubnormals::~FlushSubnormals() = default;
void flush_subnormals_on_this_thread() {}
bool subnormals_flushed_on_this_thread() { return false; }
#endif

}  // namespace quanteval::runtime
