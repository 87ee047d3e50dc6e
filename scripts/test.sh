#!/bin/bash
# Runs the default test suite (ctest over every GoogleTest binary) on the Release build.
# Usage: scripts/test.sh [--build-dir DIR] [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build
if [ "${1:-}" = "--build-dir" ]; then BUILD="$2"; shift 2; fi
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
ctest --output-on-failure --timeout 600 -j"$(nproc)" "$@"
