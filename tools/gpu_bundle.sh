#!/usr/bin/env bash
# Builds build/gpu-bundle/: the CUDA tests, the GEMM benchmark and quanteval itself, runnable
# on a machine that has only the NVIDIA driver (and, for the cuBLAS baseline and the dense
# hand-over, a CUDA 13 cuBLAS somewhere usual) -- such as the lent GPU machine, which has no
# Debian -dev packages and no network.
#
#   tools/gpu_bundle.sh             # configure + build (sm_90) in build/gpu-bundle-build, then assemble
#   JOBS=8 tools/gpu_bundle.sh      # more build jobs (default 2)
#
# How it stays portable:
#   * the CUDA runtime is linked statically (cudart_static); cuBLAS is dlopen'ed at run time
#     (runtime/kernels/cuda/cublas_library.hpp) and never carried: run.sh points LD_LIBRARY_PATH at
#     the machine's CUDA folders;
#   * libstdc++ and libgcc are linked statically and fmt is compiled in (header-only), so no
#     C++ runtime is carried; `serve` is left out (-DQUANTEVAL_SERVE=OFF): Debian's cpp-httplib
#     is a shared library linked to the shared libstdc++;
#   * every other library the binaries need beyond glibc (libcurl and its closure, pcre2,
#     utf8proc, seccomp, zlib, OpenSSL ...) is copied into lib/, and the binaries find it
#     through DT_RPATH $ORIGIN/../lib (RPATH, not RUNPATH, so it also covers the libraries'
#     own dependencies and wins over LD_LIBRARY_PATH).
# The result is also packed as build/gpu-bundle.tar.gz (what the device tool carries: at most
# 64 MiB with the repo), which must stay under 60 MiB; the folder itself is ~60 MiB since it
# holds the fixture models (~22 MiB) the CUDA backend check compares with.
# tools/gpu_bundle_check_bare_root.sh proves it in a minimal Debian root without a GPU.
# docs/cuda-gemm.md says how to run it on a lent GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUNDLE_BUILD_DIR:-build/gpu-bundle-build}
bundle=build/gpu-bundle
jobs=${JOBS:-2}
targets=(quanteval test_marlin_gemm_cuda test_marlin_layout bench_gemm_cuda test_cuda_backend bench_decode)
# glibc's own libraries (and the dynamic loader) exist on every Linux system; nothing else is assumed.
system_libraries='^[[:space:]]*(libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|libnsl|ld-linux-x86-64)\.so'
max_bytes=$((60 * 1024 * 1024))

command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || { echo "gpu_bundle: nvcc not found (install the CUDA 13 toolkit)" >&2; exit 2; }

echo "== configure ($build)"
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DQUANTEVAL_FMT_HEADER_ONLY=ON -DQUANTEVAL_SERVE=OFF -DQUANTEVAL_TESTS=ON \
  -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc -Wl,--disable-new-dtags" \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH='$ORIGIN/../lib' >"$build/configure.log" 2>&1 \
  || { tail -30 "$build/configure.log"; exit 1; }
grep -q "CUDA backend ON" "$build/configure.log" || { echo "gpu_bundle: the CUDA backend is off" >&2; exit 1; }

echo "== build ${targets[*]} (-j$jobs)"
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

echo "== assemble $bundle"
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
for target in "${targets[@]}"; do
  binary=$(find "$build" -type f -name "$target" -perm -u+x | head -1)
  [[ -n "$binary" ]] || { echo "gpu_bundle: $target not built" >&2; exit 1; }
  cp "$binary" "$bundle/bin/"
  strip --strip-unneeded "$bundle/bin/$target"
done
cp tools/gpu_bundle_run.sh "$bundle/run.sh"
chmod +x "$bundle/run.sh"
# The fixture models the backend check compares with transformers (ground truth, ~22 MB);
# the GPU machine has no ../shared beside the repository.
fixtures=${QUANTEVAL_TEST_DATA:-$root/../shared}/fixtures/models
[[ -d "$fixtures" ]] || { echo "gpu_bundle: no fixture models at $fixtures (set QUANTEVAL_TEST_DATA)" >&2; exit 1; }
mkdir -p "$bundle/fixtures/models"
for model in "$fixtures"/*/; do
  name=$(basename "$model")
  mkdir -p "$bundle/fixtures/models/$name"
  cp "$model"/*.json "$model"/*.safetensors "$bundle/fixtures/models/$name/"
done

# Carry every non-glibc library in the binaries' closure (ldd lists the closure).
declare -A carried=()
for binary in "$bundle"/bin/*; do
  if ! readelf -d "$binary" | grep -q "(RPATH).*\$ORIGIN/../lib"; then
    echo "gpu_bundle: $binary lacks RPATH \$ORIGIN/../lib" >&2; readelf -d "$binary" | grep -i path >&2; exit 1
  fi
  while read -r name arrow path _; do
    [[ "$arrow" == "=>" && -n "$path" ]] || continue
    if [[ "$path" == "not" ]]; then echo "gpu_bundle: $binary: $name not found" >&2; exit 1; fi
    [[ "$name" =~ $system_libraries ]] && continue
    case "$name" in
      libstdc++.so*|libgcc_s.so*) echo "gpu_bundle: $binary still links $name (static C++ runtime expected)" >&2; exit 1 ;;
      libcuda.so*|libcublas*|libcudart*) echo "gpu_bundle: $binary links $name (must be static or dlopen'ed)" >&2; exit 1 ;;
    esac
    carried[$name]=$path
  done < <(LD_LIBRARY_PATH= ldd "$binary")
done
for name in "${!carried[@]}"; do cp -L "${carried[$name]}" "$bundle/lib/$name"; done
strip --strip-unneeded "$bundle"/lib/* 2>/dev/null || true

# Inside the bundle every carried library must now resolve to the bundle's own copy.
for binary in "$bundle"/bin/*; do
  if LD_LIBRARY_PATH= ldd "$binary" | grep "=>" | grep -Ev "$system_libraries" \
      | grep -Ev "=> $root/$bundle/(bin/\.\./)?lib/" >/dev/null; then
    echo "gpu_bundle: $binary resolves libraries outside the bundle:" >&2
    LD_LIBRARY_PATH= ldd "$binary" | grep "=>" | grep -Ev "$system_libraries" >&2
    exit 1
  fi
done

# The newest glibc symbol version any binary or carried library needs: the GPU machine's glibc
# must be at least that (Debian 12 builds need 2.36: Ubuntu 24.04 has 2.39, 22.04 only 2.35).
glibc=$(for file in "$bundle"/bin/* "$bundle"/lib/*; do objdump -T "$file" 2>/dev/null; done \
  | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
{
  echo "quanteval GPU bundle"
  echo "commit   $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built    $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(nvcc --version | tail -1)"
  echo "targets  sm_90 (CMAKE_CUDA_ARCHITECTURES=90); needs glibc >= ${glibc#GLIBC_}, an NVIDIA driver for CUDA 13"
  echo "carried  ${!carried[*]}"
  echo
  echo "Run on the GPU machine: bash run.sh   (docs/cuda-gemm.md)"
} >"$bundle/MANIFEST.txt"

bytes=$(du -sb "$bundle" | cut -f1)
echo "== $bundle: $((bytes / 1024 / 1024)) MiB ($bytes bytes), ${#carried[@]} libraries carried"
du -sh "$bundle"/bin/* "$bundle/lib" "$bundle/fixtures" | sed 's/^/   /'
tar czf "$bundle.tar.gz" -C "$(dirname "$bundle")" "$(basename "$bundle")"
packed=$(stat -c %s "$bundle.tar.gz")
echo "== $bundle.tar.gz: $((packed / 1024 / 1024)) MiB ($packed bytes): carry this, then"
echo "   tar xzf build/gpu-bundle.tar.gz -C /tmp && bash /tmp/gpu-bundle/run.sh"
if ((packed > max_bytes)); then
  echo "gpu_bundle: the packed bundle is over 60 MiB" >&2
  exit 1
fi
