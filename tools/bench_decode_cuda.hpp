#pragma once
// bench_decode's GPU half (`--device cuda`): tools/bench_decode_cuda.cpp.
namespace quanteval::tools {
// Exit status: 0 measured, 2 no CUDA in this build, 77 no usable GPU.
int bench_decode_cuda(int argc, char** argv);
}  // namespace quanteval::tools
