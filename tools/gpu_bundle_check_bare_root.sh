#!/usr/bin/env bash
# Proves that build/gpu-bundle/ (tools/gpu_bundle.sh) runs without the project's build
# dependencies: a minimal Debian root (debootstrap --variant=minbase bookworm: no -dev packages,
# no libcurl, libfmt, utf8proc, CUDA or NVIDIA driver), the bundle copied in, and inside it
#   1. every library the binaries need beyond glibc resolves to the bundle's lib/;
#   2. quanteval --version runs;
#   3. run.sh exits 77 and prints "no GPU" with CUDA's own error text.
# Needs root (chroot, mount) and, the first time, the Debian mirror (debootstrap; the root is
# kept for the next run). Not part of CI.
#   tools/gpu_bundle_check_bare_root.sh [ROOT]     # default /var/tmp/quanteval-bare-root
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-${BARE_ROOT:-/var/tmp/quanteval-bare-root}}
bundle=build/gpu-bundle
[[ -x "$bundle/run.sh" ]] || { echo "no $bundle: run tools/gpu_bundle.sh first" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (chroot)" >&2; exit 2; }

if [[ ! -x "$root/bin/bash" ]]; then
  command -v debootstrap >/dev/null || apt-get install -y debootstrap
  echo "== debootstrap --variant=minbase bookworm $root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/tmp/quanteval-debootstrap.log
fi
libs="$root/usr/lib/x86_64-linux-gnu"
for absent in libcurl.so.4 libfmt.so.9 libutf8proc.so.2 libcuda.so.1 libcublas.so.13; do
  if [[ -e "$libs/$absent" ]]; then echo "the root is not bare: it has $absent" >&2; exit 1; fi
done
echo "== the root has none of libcurl, libfmt, utf8proc, libcuda, libcublas (it has apt's libstdc++, which the bundle must not use)"

rm -rf "$root/gpu-bundle"
cp -a "$bundle" "$root/gpu-bundle"
mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc"; trap 'umount "$root/proc"' EXIT; }
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

status=0
echo "== 1. library resolution inside the root"
for binary in "$root"/gpu-bundle/bin/*; do
  name=$(basename "$binary")
  resolution=$(in_root ldd "/gpu-bundle/bin/$name")
  outside=$(echo "$resolution" | grep '=>' \
    | grep -Ev '^[[:space:]]*(libc|libm|libmvec|libpthread|libdl|librt|libresolv)\.so' \
    | grep -Ev '=> /gpu-bundle/(bin/\.\./)?lib/' || true)
  if [[ -n "$outside" ]] || echo "$resolution" | grep -q 'not found'; then
    echo "   $name: FAIL"; echo "$resolution" | sed 's/^/      /'; status=1
  else
    echo "   $name: ok ($(echo "$resolution" | grep -Ec '=> /gpu-bundle/(bin/\.\./)?lib/') libraries from the bundle, the rest glibc)"
  fi
done

echo "== 2. quanteval --version"
if version=$(in_root /gpu-bundle/bin/quanteval --version 2>&1); then echo "   $version"; else echo "   FAIL: $version"; status=1; fi

echo "== 3. run.sh (no GPU here: expect exit 77 and CUDA's reason)"
set +e
output=$(in_root OUT=/tmp/gpu-bundle-out bash /gpu-bundle/run.sh 2>&1)
rc=$?
set -e
echo "$output" | sed 's/^/   | /'
echo "   exit status $rc"
if [[ $rc != 77 ]]; then echo "   FAIL: expected exit 77"; status=1; fi
if ! echo "$output" | grep -q '^no GPU: .*CUDA not usable: cuda[A-Za-z]*: .*(cudaError[A-Za-z]*)'; then
  echo "   FAIL: no 'no GPU' line with CUDA's error text"; status=1
fi
((status == 0)) && echo "bare-root check passed" || echo "bare-root check FAILED"
exit $status
