# Per-file SIMD flags for the CPU kernels: each ISA's kernels are compiled with
# that ISA enabled and chosen at run time (cpu_supports), so the library itself
# stays baseline x86-64 and runs on any CPU.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/kernels_avx2.cpp PROPERTIES
    COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/kernels_avx512.cpp PROPERTIES
    COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-Wno-maybe-uninitialized;-Wno-uninitialized")
  # -Wno-maybe-uninitialized / -Wno-uninitialized: GCC 12 warns inside its own
  # avx512fintrin.h about _mm512_undefined_* (GCC bug 105593; the -Wuninitialized form
  # appears once _mm512_reduce_add_ps is fully unrolled), not about this code.
endif()
