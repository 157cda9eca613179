#!/usr/bin/env bash
# One command: install dependencies, build, run the test suite (what CI runs).
# Tests labelled cuda report "not run" (skipped) on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --tests
tools/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
