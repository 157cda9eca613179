# Per-file SIMD flags for the CPU kernels: each ISA's kernels are compiled with
# that ISA enabled and chosen at run time (cpu_supports), so the library itself
# stays baseline x86-64 and runs on any CPU.
# -ffp-contract=off: GCC fuses a * b + c into an FMA wherever FMA is enabled, even in ISO
# mode and even across intrinsics (_mm256_add_ps(_mm256_mul_ps(..))). The kernels ask for
# FMA explicitly where they want it; everywhere else they must round like the portable
# code compiled without FMA (attention's loops: same bits on every ISA, tested).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/kernels_avx2.cpp PROPERTIES
    COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-ffp-contract=off")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/kernels_avx512.cpp PROPERTIES
    COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-ffp-contract=off;-mavx512f;-mavx512bw;-mavx512vl;-Wno-maybe-uninitialized;-Wno-uninitialized")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/kernels_amx.cpp PROPERTIES
    COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-ffp-contract=off;-mavx512f;-mavx512bw;-mavx512vl;-mamx-tile;-mamx-int8;-Wno-maybe-uninitialized;-Wno-uninitialized")
  # -Wno-maybe-uninitialized / -Wno-uninitialized: GCC 12 warns inside its own
  # avx512fintrin.h about _mm512_undefined_* (GCC bug 105593; the -Wuninitialized form
  # appears once _mm512_reduce_add_ps is fully unrolled), not about this code.
endif()
