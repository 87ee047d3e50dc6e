#!/bin/bash
# Load test of neural_engine_server with wrk: b1 requests (binary tensors in and out) from C
# connections for D seconds, then the same IR on `neural_engine --instances` at the batch the
# server achieved, for comparison.
#
# Usage: scripts/bench_server.sh --config conf.yaml --weight model.bin [--instances N (2)]
#          [--cores_per_instance C (1)] [--duration S (60)] [--connections K (16)] [--seq S (128)]
#          [--max_batch_size B (8)] [--max_queue_delay_us U (0)] [--build DIR (build)] [--no_cli]
#          [--kill_worker_after T]   (kill -9 one worker T seconds into the run: its in-flight
#                                     requests fail (non-2xx), the rest go on, it is restarted)
# Prints: wrk throughput, non-2xx count, latency percentiles; the batch sizes the server ran
# (from /metrics); RSS and PSS of the server and its workers at the start and end of the run;
# the CLI's throughput at the effective batch and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build N=2 C=1 DUR=60 CONN=16 SEQ=128 MB=8 DELAY=0 CONF="" WEIGHT="" CLI=1 KILL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONF="$2"; shift ;;
    --weight) WEIGHT="$2"; shift ;;
    --instances) N="$2"; shift ;;
    --cores_per_instance) C="$2"; shift ;;
    --duration) DUR="$2"; shift ;;
    --connections) CONN="$2"; shift ;;
    --seq) SEQ="$2"; shift ;;
    --max_batch_size) MB="$2"; shift ;;
    --max_queue_delay_us) DELAY="$2"; shift ;;
    --build) BUILD="$2"; shift ;;
    --no_cli) CLI=0 ;;
    --kill_worker_after) KILL="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$CONF" ] && [ -n "$WEIGHT" ] || { echo "give --config conf.yaml --weight model.bin" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
W=$(mktemp -d)
SRV_PID=""
cleanup() { [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

"$BUILD/bin/neural_engine_server" --config "bench=$CONF" --weight "$WEIGHT" --port 0 --instances "$N" \
  --cores_per_instance "$C" --max_batch_size "$MB" --max_queue_delay_us "$DELAY" --max_queue_size 256 \
  --warmup "1x$SEQ,$MB""x$SEQ" > "$W/server.out" 2> "$W/server.err" &
SRV_PID=$!
for _ in $(seq 600); do
  grep -q "listening on" "$W/server.out" 2>/dev/null && break
  kill -0 "$SRV_PID" 2>/dev/null || { cat "$W/server.err" >&2; exit 1; }
  sleep 0.2
done
PORT=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$W/server.out")
URL="http://127.0.0.1:$PORT"

# The request: every model input [1, SEQ] as binary (ids in 1..99, fit any vocabulary >= 100;
# masks 1; other inputs 0), every output binary.
/usr/bin/python3 - "$URL" "$SEQ" "$W" <<'PY'
import json, sys, urllib.request
import numpy as np
url, seq, w = sys.argv[1], int(sys.argv[2]), sys.argv[3]
meta = json.load(urllib.request.urlopen(url + "/v2/models/bench"))
rng = np.random.default_rng(1)
hdr = {"inputs": [], "parameters": {"binary_data_output": True}}
blobs = []
for i in meta["inputs"]:
    dt = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32}[i["datatype"]]
    n = i["name"]
    a = rng.integers(1, 100, (1, seq)) if "ids" in n and "type" not in n else \
        (np.ones((1, seq)) if "mask" in n else np.zeros((1, seq)))
    b = a.astype(dt).tobytes()
    hdr["inputs"].append({"name": n, "datatype": i["datatype"], "shape": [1, seq], "parameters": {"binary_data_size": len(b)}})
    blobs.append(b)
h = json.dumps(hdr).encode()
open(w + "/body.bin", "wb").write(h + b"".join(blobs))
open(w + "/hdr", "w").write(str(len(h)))
req = urllib.request.Request(url + "/v2/models/bench/infer", data=h + b"".join(blobs),
                             headers={"Inference-Header-Content-Length": str(len(h))})
r = urllib.request.urlopen(req)
assert r.status == 200, r.status
PY

mem() {  # RSS and PSS (MiB) of the server and its workers
  /usr/bin/python3 - "$SRV_PID" <<'PY'
import os, sys
root = int(sys.argv[1])
def ppid(d):
    try:
        return int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1
pids = [root] + [int(d) for d in os.listdir("/proc") if d.isdigit() and ppid(d) == root]
rss = pss = 0
for p in pids:
    try:
        for l in open("/proc/%d/smaps_rollup" % p):
            if l.startswith("Rss:"): rss += int(l.split()[1])
            if l.startswith("Pss:"): pss += int(l.split()[1])
    except OSError:
        pass
print("%d processes, RSS %.1f MiB, PSS %.1f MiB" % (len(pids), rss / 1024, pss / 1024))
PY
}
metric() { curl -s "$URL/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

# A short warm run (first plans of the batch sizes the load makes), then the measured one.
BENCH_BODY="$W/body.bin" BENCH_HDR=$(cat "$W/hdr") BENCH_PATH=/v2/models/bench/infer \
  wrk -t2 -c"$CONN" -d3s -s scripts/bench_server/post.lua "$URL" > /dev/null
B0=$(metric 'ne_batch_size_sum{model="bench"}'); C0=$(metric 'ne_batch_size_count{model="bench"}')
busy() { curl -s "$URL/metrics" | awk '$1 ~ /^ne_instance_busy_seconds_total/ { printf "%s ", $2 }'; }
U0=$(busy)
echo "== neural_engine_server: $N x $C cores, $CONN connections, b1 s$SEQ, ${DUR} s, --max_batch_size $MB --max_queue_delay_us $DELAY"
echo "memory at start: $(mem)"
if [ -n "$KILL" ]; then
  VICTIM=$(ps --ppid "$SRV_PID" -o pid= | head -1 | tr -d ' ')
  (sleep "$KILL"; kill -9 "$VICTIM" && echo "killed worker pid $VICTIM (kill -9) at ${KILL} s") &
fi
BENCH_BODY="$W/body.bin" BENCH_HDR=$(cat "$W/hdr") BENCH_PATH=/v2/models/bench/infer \
  wrk -t2 -c"$CONN" -d"${DUR}s" --timeout 30s -s scripts/bench_server/post.lua "$URL" | tee "$W/wrk.txt"
echo "memory at end:   $(mem)"
B1=$(metric 'ne_batch_size_sum{model="bench"}'); C1=$(metric 'ne_batch_size_count{model="bench"}')
U1=$(busy)
echo "utilisation over the run (busy seconds / $DUR s, per instance): $(awk -v a="$U0" -v b="$U1" -v d="$DUR" \
  'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; ++i) printf "%.2f ", (y[i] - x[i]) / d }')"
EFF=$(awk -v a="$B0" -v b="$B1" -v c="$C0" -v d="$C1" 'BEGIN { printf "%.2f", (d > c) ? (b - a) / (d - c) : 0 }')
echo "batches: $((${C1%.*} - ${C0%.*})), mean batch size $EFF (ne_batch_size histogram, whole run:)"
curl -s "$URL/metrics" | grep '^ne_batch_size_bucket{model="bench"' | sed 's/^/  /'
curl -s "$URL/metrics" | grep -E '^ne_request_failures_total|^ne_worker_(restarts_total|up)' | sed 's/^/  /'
THR=$(sed -n 's/^wrk: requests [0-9]* in [0-9.]* s: \([0-9.]*\) req.*/\1/p' "$W/wrk.txt")
NON2XX=$(sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' "$W/wrk.txt"); NON2XX=${NON2XX:-0}
echo "server: $THR inferences/s, non-2xx $NON2XX"
kill -TERM "$SRV_PID"; wait "$SRV_PID" || true; SRV_PID=""

if [ "$CLI" = 1 ]; then
  B=$(awk -v e="$EFF" 'BEGIN { b = int(e + 0.5); print (b < 1) ? 1 : b }')
  echo "== neural_engine --instances $N --cores_per_instance $C --batch_size $B --seq_len $SEQ (the effective batch)"
  "$BUILD/bin/neural_engine" --config "$CONF" --weight "$WEIGHT" --instances "$N" --cores_per_instance "$C" \
    --batch_size "$B" --seq_len "$SEQ" --iterations 20 --w 3 2>/dev/null | tee "$W/cli.txt" | grep -E "Throughput|Latency is|Batch Size"
  CT=$(grep "^ Throughput is" "$W/cli.txt" | tail -1 | awk '{print $3}')
  awk -v s="$THR" -v c="$CT" 'BEGIN { if (c > 0) printf "server / CLI throughput: %.2f / %.2f = %.2f\n", s, c, s / c }'
fi
