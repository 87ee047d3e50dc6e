#!/bin/bash
# Token-major vs --transpose on one ONNX model, alternating runs (the machine is shared and
# noisy: compare the min and the median of the per-run P50 batch latencies, not single runs).
#
#   scripts/bench_transpose.sh MODEL.onnx [REPS (8)] [PRECISIONS ("fp32 int8")] [BATCHES ("1 8")]
#
# Compiles MODEL to $OUT (default /tmp/ne_bench_transpose)/<precision>{,_t}, then runs each
# configuration REPS times under `numactl -C ${CORES:-0,1}` with OMP_NUM_THREADS=${THREADS:-2},
# seq 128, and prints one line per configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$1
REPS=${2:-8}
PRECS=${3:-fp32 int8}
BATCHES=${4:-1 8}
OUT=${OUT:-/tmp/ne_bench_transpose}
export GLOG_minloglevel=2 OMP_NUM_THREADS=${THREADS:-2}
for p in $PRECS; do
  build/bin/neural_engine_compile --model "$MODEL" --output_dir "$OUT/$p" --precision "$p" >/dev/null
  build/bin/neural_engine_compile --model "$MODEL" --output_dir "$OUT/${p}_t" --precision "$p" --transpose >/dev/null 2>&1
done
for p in $PRECS; do
  for b in $BATCHES; do
    it=$([ "$b" = 1 ] && echo 10 || echo 3)
    tok=() tr=()
    for _ in $(seq "$REPS"); do
      for v in "$p" "${p}_t"; do
        l=$(numactl -C "${CORES:-0,1}" build/bin/neural_engine --config "$OUT/$v/conf.yaml" --weight "$OUT/$v/model.bin" \
              --batch_size "$b" --seq_len 128 --iterations "$it" --w 2 | sed -n 's/.*P50 \([0-9.]*\),.*/\1/p')
        if [ "$v" = "$p" ]; then tok+=("$l"); else tr+=("$l"); fi
      done
    done
    /usr/bin/python3 - "$p" "$b" "${tok[*]}" "${tr[*]}" <<'EOF'
import statistics as st, sys
p, b, a, t = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
print(f"{p:5s} batch {b}: token-major min {min(a):8.2f} median {st.median(a):8.2f} ms | --transpose min {min(t):8.2f} "
      f"median {st.median(t):8.2f} ms | transpose/token-major min {min(t)/min(a):.3f} median {st.median(t)/st.median(a):.3f}")
EOF
  done
done
