#pragma once
// QE_HOST_DEVICE marks a function that is compiled for the CPU and, under nvcc,
// for the GPU too: the one definition of per-element math and layout maps that
// both backends (and the CPU tests) use. Headers that use it stay C++17 for nvcc.
#if defined(__CUDACC__)
#define QE_HOST_DEVICE __host__ __device__
#else
#define QE_HOST_DEVICE
#endif
