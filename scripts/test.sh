#!/bin/bash
# Runs the test suite (ctest over every GoogleTest binary) on the Release build: the whole suite on
# this CPU as it is, then the kernel and op suites (ctest label `isa_tiers`) again with the ISA
# capped, so that one machine also tests the paths of smaller CPUs:
#   avx512_core_bf16  NE_MAX_ISA=avx512_core_bf16 ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (AVX-512
#                     VNNI/BF16 kernels, oneDNN without AMX: what an AMX Xeon otherwise never runs)
#   avx2              NE_MAX_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (CPUs without AVX-512)
# A tier runs when this CPU is above it; the last lines say which tiers ran and which were skipped
# and why (also that the AMX kernels ran, or why not), and per tier how many tests were skipped and
# why: GTEST_SKIP cases (ctest "***Skipped"), GoogleTest and pytest skips inside an entry that ran,
# read from ctest's JUnit file by scripts/ctest_skips.py, each skipped test listed after its tier.
# Usage: scripts/test.sh [--build-dir DIR] [--no-tiers] [extra ctest args]
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=build
TIERS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --no-tiers) TIERS=0; shift ;;
    *) break ;;
  esac
done
cmake --build "$BUILD" -j"$(nproc)" || exit 1
CPU="$BUILD/bin/neural_engine_cpu"
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT

summary=()
failed=0
total_pass=0
total_fail=0
total_skip=0
JUNIT=0
[[ "$(ctest --help 2>/dev/null)" == *--output-junit* ]] && JUNIT=1  # ctest >= 3.21
# run_tier NAME ENV... -- CTEST_ARGS...
run_tier() {
  local name="$1"; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  echo "== tier $name${envs[*]:+ (${envs[*]})}"
  local junit=()
  [ "$JUNIT" = 1 ] && junit=(--output-junit "$LOG/$name.xml")
  (cd "$BUILD" && env "${envs[@]}" ctest --output-on-failure --timeout 600 -j"$(nproc)" "${junit[@]}" "$@") 2>&1 | tee "$LOG/$name.txt"
  local rc=${PIPESTATUS[0]}
  local line n f s skips
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$LOG/$name.txt" | tail -1)
  n=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/'); f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/')
  [ -z "$line" ] && n=0 && f=0
  # ctest counts its skipped entries ("***Skipped") as passed: they are not.
  s=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*Skipped' "$LOG/$name.txt")
  total_pass=$((total_pass + n - f - s)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
  if [ "$JUNIT" = 1 ] && [ -f "$LOG/$name.xml" ]; then
    python3 scripts/ctest_skips.py "$LOG/$name.xml" --list > "$LOG/$name.skips" 2>&1 || echo "skips unknown" > "$LOG/$name.skips"
    skips=$(head -1 "$LOG/$name.skips")
    tail -n +2 "$LOG/$name.skips"
  else
    skips="$s skipped (reasons unknown: ctest without --output-junit)"
  fi
  echo "== tier $name: $skips"
  if [ "$rc" -ne 0 ]; then failed=1; summary+=("  $name: FAILED ($line); $skips"); else summary+=("  $name: ran, $line; $skips"); fi
}

NATIVE=$("$CPU" --isa)
run_tier "native:$NATIVE" -- "$@"
if [ "$TIERS" = 1 ]; then
  for t in avx512_core_bf16:AVX512_CORE_BF16 avx2:AVX2; do
    ne="${t%%:*}"; dn="${t##*:}"
    if [ "$NATIVE" = "$ne" ]; then
      summary+=("  $ne: skipped (this CPU is $NATIVE: the native run is this tier)")
    elif ! why=$("$CPU" --why "$ne"); then
      summary+=("  $ne: skipped ($why)")
    else
      run_tier "$ne" NE_MAX_ISA="$ne" ONEDNN_MAX_CPU_ISA="$dn" -- -L isa_tiers "$@"
    fi
  done
fi
echo "== ISA tiers ($("$CPU"))"
if why=$("$CPU" --why avx512_core_amx); then
  echo "  avx512_core_amx: the AMX kernels ran in the native tier"
else
  echo "  avx512_core_amx: skipped, the AMX tests did not run here ($why)"
fi
printf '%s\n' "${summary[@]}"
echo "tiers: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $failed
