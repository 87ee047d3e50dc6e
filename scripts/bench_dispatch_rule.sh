#!/bin/bash
# Issue 13's never-5%-slower rule end to end: each IR run with the default dispatch (timed
# candidates), forced sparse (--sparse_threshold 0) and forced dense (NE_IP_ONLY=dense),
# alternated within each round (the order rotates), R rounds; prints samples/s per round and,
# per IR, the best of the rounds and default / best(sparse, dense).
#   scripts/bench_dispatch_rule.sh [-r ROUNDS] [-b BATCH] [-s SEQ] [-i ITER] IR_DIR...
# OMP_NUM_THREADS and pinning (numactl / taskset) are the caller's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NE=${NE:-$ROOT/build/bin/neural_engine}
R=3 B=8 S=128 I=8
while getopts "r:b:s:i:" o; do
  case $o in r) R=$OPTARG ;; b) B=$OPTARG ;; s) S=$OPTARG ;; i) I=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r R] [-b B] [-s S] [-i I] IR_DIR..." >&2; exit 2; }
echo "# $("$ROOT/build/bin/neural_engine_cpu" 2>/dev/null | head -1 || true)"
echo "# OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset} b$B s$S --iterations $I --w 2; samples/s; default / sparse (--sparse_threshold 0) / dense (NE_IP_ONLY=dense), order rotating per round"
run() {  # ir mode -> throughput
  local ir=$1 mode=$2 extra=() envs=()
  case $mode in sparse) extra=(--sparse_threshold 0) ;; dense) envs=(NE_IP_ONLY=dense) ;; esac
  env "${envs[@]}" "$NE" --config "$ir/conf.yaml" --weight "$ir/model.bin" --batch_size "$B" --seq_len "$S" \
    --iterations "$I" --w 2 "${extra[@]}" 2>/dev/null | awk '/Throughput is/ {print $3}'
}
modes=(default sparse dense)
for ir in "$@"; do
  vals=""
  for ((r = 1; r <= R; ++r)); do
    for ((j = 0; j < 3; ++j)); do
      m=${modes[$(((j + r) % 3))]}
      t=$(run "$ir" "$m")
      echo "$(basename "$ir") round $r $m $t"
      vals+="$m $t"$'\n'
    done
  done
  printf "%s" "$vals" | /usr/bin/python3 -c '
import sys, statistics as st
v = {}
for line in sys.stdin:
    m, t = line.split()
    v.setdefault(m, []).append(float(t))
best = {m: max(x) for m, x in v.items()}
med = {m: st.median(x) for m, x in v.items()}
name = sys.argv[1]
for what, d in (("best of rounds", best), ("median of rounds", med)):
    b = max(d["sparse"], d["dense"])
    r = d["default"] / b
    print("%s %s: default %.2f sparse %.2f dense %.2f; default / best forced %.3f%s"
          % (name, what, d["default"], d["sparse"], d["dense"], r, "  (more than 5%% slower)" if r < 1 / 1.05 else ""))
' "$(basename "$ir")"
done
