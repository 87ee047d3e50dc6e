#!/bin/bash
# Accuracy end to end: train + prune (scripts/accuracy/train_prune.py) into build/accuracy/models
# (skipped when its meta.json exists), then scripts/accuracy/eval.py over our engine and ORT.
#   scripts/accuracy/run.sh [extra eval.py flags, e.g. --precisions fp32,int8 --threads 1]
# Env: OUT (build/accuracy), ENGINE (build/bin/neural_engine), COMPILE (build/bin/neural_engine_compile),
#      RETRAIN=1 (train again), TRAIN_FLAGS (extra train_prune.py flags, e.g. "--task first_marker"
#      for the old, saturating task; the default task is triple_products).
# Torch on Debian 12 links the reference BLAS (~5 GFLOP/s); training uses OpenBLAS instead when it
# can: the system's (libopenblas0-pthread installed) or a private copy unpacked from
# `apt-get download libopenblas0-pthread` into $OUT/openblas (nothing system-wide changes).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/accuracy}
ENGINE=${ENGINE:-build/bin/neural_engine}
COMPILE=${COMPILE:-build/bin/neural_engine_compile}
PY=/usr/bin/python3
mkdir -p "$OUT"

if [[ ! -f "$OUT/models/meta.json" || "${RETRAIN:-0}" == 1 ]]; then
  blas=""
  for d in /usr/lib/x86_64-linux-gnu/openblas-pthread "$OUT/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread"; do
    [[ -f "$d/libblas.so.3" ]] && { blas=$d; break; }
  done
  if [[ -z "$blas" ]] && command -v apt-get >/dev/null; then
    echo "== fetching a private OpenBLAS (apt-get download libopenblas0-pthread) for torch training"
    ( mkdir -p "$OUT/openblas" && cd "$OUT/openblas" && apt-get download libopenblas0-pthread >/dev/null 2>&1 \
      && dpkg -x libopenblas0-pthread_*.deb . ) || echo "   (failed; training with the default BLAS, ~10x slower)"
    d="$OUT/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread"
    [[ -f "$d/libblas.so.3" ]] && blas=$(cd "$d" && pwd)
  fi
  echo "== training (BLAS: ${blas:-default})"
  rm -rf "$OUT/models"
  t0=$(date +%s)
  LD_LIBRARY_PATH="${blas}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OPENBLAS_NUM_THREADS=1 \
    $PY scripts/accuracy/train_prune.py --out "$OUT/models" ${TRAIN_FLAGS:-} 2>&1 | grep -v -i "warning" || true
  [[ -f "$OUT/models/meta.json" ]] || { echo "error: training failed" >&2; exit 1; }
  echo "== training took $(( $(date +%s) - t0 ))s"
else
  echo "== $OUT/models/meta.json exists: skipping training (RETRAIN=1 to redo)"
fi

if [[ ! -d third_party/ort/node_modules/onnxruntime-node ]]; then
  echo "== installing ONNX Runtime (scripts/install_ort.sh)"
  bash scripts/install_ort.sh || echo "   (failed: eval runs without ORT)"
fi
ort_flag=()
[[ -d third_party/ort/node_modules/onnxruntime-node ]] || ort_flag=(--no_ort)

echo "== eval"
$PY scripts/accuracy/eval.py --models "$OUT/models" --work "$OUT/eval" --engine "$ENGINE" --compile "$COMPILE" \
  "${ort_flag[@]}" "$@"
