#!/bin/bash
# Builds the libFuzzer targets with clang (ASan + UBSan + coverage) into build-fuzz and runs each
# for a bounded time, seeded from the project's own fixtures and the bad-input corpus.
#
# Usage: scripts/fuzz.sh [seconds-per-target (60)] [target...]
#   targets: npy ir onnx server_request (or fuzz_npy ...); default all four. server_request is
#   neural_engine_server's KServe request decoder (JSON + binary tensors, bin/server/codec.cpp).
# Environment: NE_FUZZ_BUILD (build-fuzz), NE_FUZZ_JOBS (2, build jobs), NE_FUZZ_RSS_MB (2048),
#   NE_FUZZ_TIMEOUT (25 s per input = hang), NE_FUZZ_ALLOW_STD=1 (tolerate non-ne::Error
#   exceptions, to fuzz past a known one), NE_FUZZ_ARGS (extra libFuzzer flags).
# The growing corpus stays in build-fuzz/corpus/<target>; crashes land in build-fuzz/artifacts/.
# Reproduce one: build-fuzz/fuzz/fuzz_ir build-fuzz/artifacts/fuzz_ir-crash-...
# Exit status 1 if any target found a crash, leak, hang or out-of-memory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=()
for t in "${@:-npy ir onnx server_request}"; do
  for x in $t; do TARGETS+=("fuzz_${x#fuzz_}"); done
done
BUILD=${NE_FUZZ_BUILD:-build-fuzz}
JOBS=${NE_FUZZ_JOBS:-2}
RSS=${NE_FUZZ_RSS_MB:-2048}
TIMEOUT=${NE_FUZZ_TIMEOUT:-25}

if [ ! -f "$BUILD/CMakeCache.txt" ] || ! grep -q "NE_FUZZ:BOOL=ON" "$BUILD/CMakeCache.txt"; then
  cmake -S . -B "$BUILD" -DNE_FUZZ=ON -DNE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}"

# Seeds, regenerated every run from the fixtures (tests/data) and tests/bad_inputs.
SEP=$'\n#NEBIN#\n'
seed_dir() { rm -rf "$BUILD/seeds/$1"; mkdir -p "$BUILD/seeds/$1" "$BUILD/corpus/$1" "$BUILD/artifacts"; }
seed_dir fuzz_npy
i=0; while IFS= read -r f; do cp "$f" "$BUILD/seeds/fuzz_npy/$i.npy"; i=$((i + 1)); done \
  < <(find tests/data tests/bad_inputs -name '*.npy' -size -256k 2>/dev/null | sort)
seed_dir fuzz_ir
i=0; while IFS= read -r c; do
  d=$(dirname "$c"); b="${c%.yaml}.bin"
  [ -f "$b" ] || b="$d/model.bin"
  [ -f "$b" ] || b="$d/small.bin"
  { cat "$c"; printf '%s' "$SEP"; [ -f "$b" ] && cat "$b"; } > "$BUILD/seeds/fuzz_ir/$i"
  i=$((i + 1))
done < <(find tests/data tests/bad_inputs -name '*.yaml' 2>/dev/null | sort)
seed_dir fuzz_onnx
# Bad inputs of known, reported bugs (disabled-* in cases.txt) are left out: they would stop the run.
KNOWN=$(sed -n 's/^disabled-[a-z]* | \([^ |]*\).*/tests\/bad_inputs\/\1/p' tests/bad_inputs/cases.txt 2>/dev/null)
i=0; while IFS= read -r f; do
  grep -qxF "$f" <<<"$KNOWN" && continue
  cp "$f" "$BUILD/seeds/fuzz_onnx/$i.onnx"; i=$((i + 1))
done < <(find tests/data tests/bad_inputs -name '*.onnx' 2>/dev/null | sort)

seed_dir fuzz_server_request
cp tests/fuzz/server_request_seeds/* "$BUILD/seeds/fuzz_server_request/"
# Deeply nested JSON (the decoder must refuse it while parsing, not recurse on it: a ~200 KB nested
# "shape" once crashed every worker): arrays nested 100, 1000 and 100000 deep in "shape" and in
# "data", and objects as deep in "parameters". Generated here (the deepest is ~200 KB each).
# nest N OPEN CLOSE INNER: OPEN N times, INNER, CLOSE N times.
nest() { printf '%*s' "$1" '' | sed "s/ /$2/g"; printf '%s' "$4"; printf '%*s' "$1" '' | sed "s/ /$3/g"; }
for d in 100 1000 100000; do
  sd="$BUILD/seeds/fuzz_server_request"
  { printf '{"inputs":[{"name":"x","datatype":"FP32","shape":'; nest "$d" '[' ']' 1
    printf ',"data":[1]}]}'; } > "$sd/deep_shape_$d.json"
  { printf '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":'; nest "$d" '[' ']' 1
    printf '}]}'; } > "$sd/deep_data_$d.json"
  { printf '{"id":"r","parameters":'; nest "$((d - 1))" '{"p":' '}' '{"a":1}'
    printf ',"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}'; } > "$sd/deep_params_$d.json"
done

export OMP_NUM_THREADS=1 GLOG_minloglevel=3
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_stack_use_after_return=1:abort_on_error=1"
export LSAN_OPTIONS="${LSAN_OPTIONS:-}:suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1"

declare -A DICT=([fuzz_ir]=tests/fuzz/ir.dict [fuzz_npy]=tests/fuzz/npy.dict
                 [fuzz_server_request]=tests/fuzz/server_request.dict)
# fuzz_server_request: 1 MiB, room for the 200 KB nested seeds (and inputs past the decoder's limits).
declare -A MAXLEN=([fuzz_ir]=262144 [fuzz_npy]=65536 [fuzz_onnx]=1100000 [fuzz_server_request]=1048576)
status=0
summary=""
for t in "${TARGETS[@]}"; do
  exe="$BUILD/fuzz/$t"
  [ -x "$exe" ] || { echo "== $t: not built (is compile/ present?)"; continue; }
  log="$BUILD/$t.log"
  args=(-max_total_time="$SECS" -rss_limit_mb="$RSS" -timeout="$TIMEOUT" -close_fd_mask=3
        -print_final_stats=1 -max_len="${MAXLEN[$t]}" -artifact_prefix="$BUILD/artifacts/$t-")
  [ -n "${DICT[$t]:-}" ] && args+=(-dict="${DICT[$t]}")
  echo "== $t: ${SECS}s, seeds $(ls "$BUILD/seeds/$t" | wc -l), corpus $(ls "$BUILD/corpus/$t" | wc -l)"
  rc=0
  # shellcheck disable=SC2086
  "$exe" "${args[@]}" ${NE_FUZZ_ARGS:-} "$BUILD/corpus/$t" "$BUILD/seeds/$t" > "$log" 2>&1 || rc=$?
  last=$(grep -E '^#[0-9]+.*cov:' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last"); ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  eps=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
  res="ok"
  if [ "$rc" -ne 0 ]; then
    status=1
    res="FOUND (rc $rc): $(grep -m1 -E 'ERROR: |FUZZ FINDING|SUMMARY' "$log" || echo see log)"
    res="$res; input: $(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -1); log: $log"
  fi
  line="$t: ${SECS}s executions=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} exec/s=${eps:-?} -> $res"
  echo "$line"
  summary+="$line"$'\n'
done
echo "== fuzz summary"
printf '%s' "$summary"
exit $status
