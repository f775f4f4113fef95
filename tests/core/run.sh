#!/usr/bin/env bash
# Builds the core's GoogleTest suites with ASan and UBSan and runs them.
#   tests/core/run.sh                     sanitized build in build/core-tests
#   HEAPSCOPE_SANITIZE= tests/core/run.sh  plain build (e.g. for timing)
#   HEAPSCOPE_STRESS_SCALE=10 ...          a ten times longer stress run
# Needs cmake, a C++20 compiler and GoogleTest (Debian: libgtest-dev).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${repo}/build/core-tests"
sanitize="${HEAPSCOPE_SANITIZE-address,undefined}"
jobs="$(nproc 2>/dev/null || echo 2)"

cmake -S "${repo}" -B "${build}" -DHEAPSCOPE_CORE_TESTS=ON \
  -DHEAPSCOPE_SANITIZE="${sanitize}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "${build}" --parallel "${jobs}"

# UBSan only reports by default; make any report fail the test.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:${UBSAN_OPTIONS}}"
export ASAN_OPTIONS="detect_stack_use_after_return=1:strict_init_order=1${ASAN_OPTIONS:+:${ASAN_OPTIONS}}"
ctest --test-dir "${build}/tests/core" --output-on-failure --parallel "${jobs}" --no-tests=error
