#!/usr/bin/env bash
# Installs everything quanteval needs to build and run on Debian 12 (as root or via sudo);
# with --tests, also what the test suite needs; with --bench, what tools/bench_llamacpp.sh
# needs (node + npm, to install the llama.cpp peer from npm into a cache).
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config git ca-certificates
  nlohmann-json3-dev libfmt-dev zlib1g-dev libssl-dev libcurl4-openssl-dev
  libboost-dev libcpp-httplib-dev doctest-dev libseccomp-dev libpcre2-dev libutf8proc-dev
  python3 python3-numpy
)
# The test suite also renders HTML reports in a real browser.
for arg in "$@"; do
  [ "$arg" = "--tests" ] && packages+=(chromium)
  # A machine whose Node.js came from elsewhere (nodesource's nodejs conflicts with Debian's npm)
  # already has what the bench needs.
  if [ "$arg" = "--bench" ] && ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
