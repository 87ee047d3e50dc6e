#!/bin/bash
# Model slim benchmark: a BERT model with 50% of its FFN channels and 25% of its heads zeroed,
# compiled without and with the slim pass, run by neural_engine; prints both speeds, the
# speed-up and the largest output difference.
#
#   scripts/slim_bench.sh [--preset bert-base] [--ffn 0.5] [--heads 0.25] [--batch 1] [--seq 128]
#                         [--iterations 10] [--build build] [--work build/models/slim_bench]
#
# Needs /usr/bin/python3 with torch + onnx (gen_bert.py, zero_channels.py) and a build with
# neural_engine and neural_engine_compile (--slim). Threads: OMP_NUM_THREADS as usual.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PRESET=bert-base FFN=0.5 HEADS=0.25 BATCH=1 SEQ=128 ITERS=10 WARM=3 BUILD="$ROOT/build" WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET="$2"; shift ;;
    --ffn) FFN="$2"; shift ;;
    --heads) HEADS="$2"; shift ;;
    --batch) BATCH="$2"; shift ;;
    --seq) SEQ="$2"; shift ;;
    --iterations) ITERS="$2"; shift ;;
    --build) BUILD=$(cd "$2" && pwd); shift ;;
    --work) WORK="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
WORK=${WORK:-$BUILD/models/slim_bench}
PY=/usr/bin/python3
BIN="$BUILD/bin"
for b in neural_engine neural_engine_compile; do
  [ -x "$BIN/$b" ] || { echo "error: $BIN/$b not built (cmake --build $BUILD --target $b)" >&2; exit 1; }
done
mkdir -p "$WORK"
if [ ! -f "$WORK/dense/model.onnx" ]; then
  echo "== generating $PRESET"
  $PY "$ROOT/scripts/gen_bert.py" --preset "$PRESET" --no_ref --seed 0 --out "$WORK/dense"
fi
echo "== zeroing ${FFN} of FFN channels and ${HEADS} of heads"
$PY "$ROOT/scripts/zero_channels.py" --model_dir "$WORK/dense" --ffn "$FFN" --heads "$HEADS" --seed 0 --out "$WORK/zeroed"
echo "== compiling without and with slim"
"$BIN/neural_engine_compile" --model "$WORK/zeroed/model.onnx" --output_dir "$WORK/ir_plain"
"$BIN/neural_engine_compile" --model "$WORK/zeroed/model.onnx" --output_dir "$WORK/ir_slim" --slim
ls -l "$WORK/ir_plain/model.bin" "$WORK/ir_slim/model.bin" | awk '{print "   " $5 " bytes  " $NF}'

run() {  # $1 = ir dir, $2 = label
  echo "== $2"
  GLOG_minloglevel=2 "$BIN/neural_engine" --config "$1/conf.yaml" --weight "$1/model.bin" \
    --batch_size "$BATCH" --seq_len "$SEQ" --iterations "$ITERS" --w "$WARM" \
    --output_dir "$1/out" --report_json "$1/run.json" | tee "$1/run.txt"
}
run "$WORK/ir_plain" "without slim"
run "$WORK/ir_slim" "with slim"
$PY - "$WORK" <<'PYEOF'
import glob, json, os, sys
import numpy as np
w = sys.argv[1]
a = json.load(open(os.path.join(w, "ir_plain/run.json")))
b = json.load(open(os.path.join(w, "ir_slim/run.json")))
la, lb = a["latency_ms"]["mean"], b["latency_ms"]["mean"]
diff = 0.0
for f in glob.glob(os.path.join(w, "ir_plain/out/*.npy")):
    diff = max(diff, float(np.abs(np.load(f) - np.load(os.path.join(w, "ir_slim/out", os.path.basename(f)))).max()))
print("== summary: batch %d seq %d threads %s" % (a["batch"], a["seq"], a.get("threads", "?")))
print("   without slim: %8.2f ms/batch  %8.2f samples/s" % (la, a["throughput"]))
print("   with slim:    %8.2f ms/batch  %8.2f samples/s" % (lb, b["throughput"]))
print("   speed-up %.2fx; max |output difference| %.3g" % (la / lb, diff))
PYEOF
