#!/bin/bash
# Installs everything the engine needs on a fresh Debian 12 machine (Debian packages, and
# ONNX Runtime from npm for the reference benchmarks) and makes a Release build in build/.
# Usage: scripts/setup.sh [--no-ort] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build
ORT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-ort) ORT=0 ;;
    --build-dir) BUILD="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# ocl-icd-opencl-dev: Debian's oneDNN is built with the OpenCL GPU runtime and its dnnl-config.cmake
# requires OpenCL, but libdnnl-dev only recommends the package (and we install without recommends).
PKGS="build-essential cmake pkg-config git ca-certificates
  libdnnl-dev ocl-icd-opencl-dev libyaml-cpp-dev libjemalloc-dev libgflags-dev libgoogle-glog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libxbyak-dev
  libprotobuf-dev protobuf-compiler libonnx-dev libonnx-testdata
  numactl python3 python3-numpy python3-torch python3-onnx nodejs npm
  chromium clang libclang-rt-14-dev zlib1g-dev libpng-dev nlohmann-json3-dev
  pybind11-dev python3-dev python3-pytest libcpp-httplib-dev libssl-dev openssl curl wrk"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  $SUDO apt-get update -q
  # npm: Debian's package conflicts with nodesource's nodejs (which bundles npm); skip it then.
  if command -v npm >/dev/null 2>&1; then missing="$(echo "$missing" | sed 's/ npm\b//; s/ nodejs\b//')"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

if [ "$ORT" = 1 ]; then
  bash scripts/install_ort.sh || echo "warning: ONNX Runtime (npm) could not be installed; ORT comparisons will be skipped" >&2
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$(nproc)"
echo "== built: $BUILD/bin/neural_engine"
