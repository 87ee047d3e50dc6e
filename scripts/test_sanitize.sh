#!/bin/bash
# Builds the engine and its tests with AddressSanitizer + UBSan (g++, RelWithDebInfo) in
# build-asan and runs the whole ctest suite on it. Must pass clean.
# Usage: scripts/test_sanitize.sh [--build-dir DIR] [extra ctest args]
# Leaks are checked (LeakSanitizer) with tests/sanitizers/lsan.supp, which lists only third-party
# process-lifetime caches; UBSan findings abort the test (-fno-sanitize-recover).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=build-asan
if [ "${1:-}" = "--build-dir" ]; then BUILD="$2"; shift 2; fi
cmake -S . -B "$BUILD" -DNE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="${LSAN_OPTIONS:-}:suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1"
export GLOG_minloglevel="${GLOG_minloglevel:-1}"
cd "$BUILD"
ctest --output-on-failure --timeout 1200 -j"$(nproc)" "$@"
