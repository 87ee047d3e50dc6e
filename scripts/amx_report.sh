#!/bin/bash
# shellcheck disable=SC2054  # comma lists (--dtype f32,bf16,int8) are single arguments here
# AMX report (issue #25): runs every AMX check the project has on this CPU and writes one
# Markdown file, docs/results/amx_<YYYY-MM-DD>.md, that names the CPU (lscpu model name and
# amx_* flags, build/bin/neural_engine_cpu, kernel, date, git commit) and holds, per step,
# the command and its raw output, under a summary table (step, status, wall time, AMX check).
#
#   scripts/amx_report.sh [--build-dir DIR (build)] [--out FILE] [--quick] [--threads T (2)]
#                         [--workdir DIR (BUILD/amx_report: generated models, IRs, logs)]
#
# Steps, each under `timeout` (its limit is in the summary table):
#   tests            ctest -R <the AMX kernel, K-gather and attention tests>; pass/fail/skip
#                    counts (scripts/ctest_skips.py on ctest's JUnit file names each skip);
#   sgemm_dense_amx  bench_sparse_gemm, the sparse kernels vs oneDNN dense (AMX for bf16/int8)
#                    (kernels/bench/RESULTS.md, "Intel Xeon with AMX");
#   sgemm_kgather    bench_sparse_gemm --blocking standard,kgather: the AMX K-gather kernels vs
#                    the AVX-512 1x4 kernels vs oneDNN dense AMX (RESULTS.md, "... K-gather");
#   attention        bench_attention: the AMX bf16 attention kernel vs the AVX-512 bf16 path;
#   ip_vs_onednn     bench_ops_quant --vs-onednn: dense InnerProduct vs dnnl::matmul alone;
#   rule_grid        bench_ops_quant --rule: default choice vs forced sparse / forced dense;
#   models           scripts/gen_bert.py BERT-base dense and pruned, int8 IRs (cached in WORKDIR);
#   dispatch_rule    scripts/bench_dispatch_rule.sh on the int8 IRs;
#   e2e              scripts/bench_e2e.py against ONNX Runtime fp32 and int8 QDQ (skipped, and
#                    said so, where onnxruntime-node is not installed: scripts/install_ort.sh).
# --quick: fewer rounds, shapes and models (each tool's own smaller settings). WORKDIR needs ~5 GB
# for a full run (5 BERT-base ONNX models, their IRs; --quick: ~2 GB).
#
# A CPU without usable AMX (lscpu's amx_* flags; `neural_engine_cpu --why avx512_core_amx`,
# which also checks XCR0 and the arch_prctl permission): prints why, measures nothing, writes
# no report, exits 0. On an AMX CPU: a failing step does not stop the others; the exit status
# is 1 if a step failed (rc != 0, a timeout, a skipped AMX test, or output that names no AMX
# kernel where the step prints kernel names), else 0. 2: bad arguments or no build.
#
# For testing this script on a CPU without AMX (not for measurements):
#   NE_AMX_REPORT_FORCE=1        run the steps anyway (the report says so; exit status 0)
#   NE_AMX_REPORT_PRESET=tiny    gen_bert.py preset of the generated models (default bert-base)
#   NE_AMX_REPORT_MAX_STEP_S=N   cap every step's time limit at N seconds
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
BUILD=build OUT="" QUICK=0 THREADS="" WORKDIR=""

usage() { sed -n '3,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "amx_report: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a value"; BUILD=$2; shift 2 ;;
    --build-dir=*) BUILD=${1#*=}; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --workdir) [ $# -ge 2 ] || die "--workdir needs a value"; WORKDIR=$2; shift 2 ;;
    --workdir=*) WORKDIR=${1#*=}; shift ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a value"; THREADS=$2; shift 2 ;;
    --threads=*) THREADS=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bin
CPU_EXE=$BIN/neural_engine_cpu
NPROC=$(nproc 2>/dev/null || echo 1)
if [ -z "$THREADS" ]; then THREADS=2; [ "$NPROC" -lt 2 ] && THREADS=$NPROC; fi
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, not '$THREADS'"

# ---- Is AMX usable here? lscpu names the flags; neural_engine_cpu (CPUID + XCR0 + arch_prctl
# permission, the engine's own test) decides.
ENV_NOTES=()
for v in NE_MAX_ISA ONEDNN_MAX_CPU_ISA NE_IP_ONLY NE_DISPATCH NE_ATTENTION_AMX; do
  if [ -n "${!v+x}" ]; then ENV_NOTES+=("$v=${!v} was set in the environment; unset for this report"); unset "$v"; fi
done
MODEL_NAME=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
[ -n "$MODEL_NAME" ] || MODEL_NAME=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -1)
AMX_FLAGS=$( (lscpu 2>/dev/null || grep -m1 '^flags' /proc/cpuinfo) | grep -o 'amx[a-z_0-9]*' | sort -u | tr '\n' ' ')
AMX_FLAGS=${AMX_FLAGS% }
if [ -x "$CPU_EXE" ]; then
  WHY=$("$CPU_EXE" --why avx512_core_amx 2>&1)
  AMX_OK=$?
  [ "$AMX_OK" -eq 0 ] || [ -n "$WHY" ] || WHY="neural_engine_cpu --why exited $AMX_OK"
elif [ -n "$AMX_FLAGS" ]; then
  die "this CPU lists AMX ($AMX_FLAGS) but $CPU_EXE is missing: build first (cmake --build $BUILD); no report written"
else
  AMX_OK=1 WHY="lscpu lists no amx_* flag ($CPU_EXE missing, not asked)"
fi
FORCED=0
if [ "$AMX_OK" -ne 0 ]; then
  msg="no usable AMX on this CPU (${MODEL_NAME:-unknown model}; lscpu AMX flags: ${AMX_FLAGS:-none}; neural_engine_cpu --why avx512_core_amx: $WHY)"
  if [ "${NE_AMX_REPORT_FORCE:-0}" != 1 ]; then echo "amx_report: nothing measured: $msg. No report written."; exit 0; fi
  echo "amx_report: $msg" >&2
  echo "amx_report: NE_AMX_REPORT_FORCE=1: running the steps anyway to test this script; nothing below is an AMX measurement" >&2
  FORCED=1
fi
[ -x "$CPU_EXE" ] || die "$CPU_EXE missing: build first"

# ---- Paths and settings
DATE=$(date +%F)
if [ -z "$OUT" ]; then
  OUT=$ROOT/docs/results/amx_$DATE.md
  n=2
  while [ -e "$OUT" ]; do OUT=$ROOT/docs/results/amx_${DATE}_$n.md; n=$((n + 1)); done
fi
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
[ -n "$WORKDIR" ] || WORKDIR=$BUILD/amx_report
case $WORKDIR in /*) ;; *) WORKDIR=$PWD/$WORKDIR ;; esac
LOGDIR=$WORKDIR/logs
mkdir -p "$LOGDIR" "$(dirname "$OUT")" || die "cannot create $LOGDIR or $(dirname "$OUT")"
BODY=$LOGDIR/body.md
: >"$BODY"
PRESET=${NE_AMX_REPORT_PRESET:-bert-base}
MAX_STEP=${NE_AMX_REPORT_MAX_STEP_S:-0}
PIN=()
if command -v numactl >/dev/null && [ "$THREADS" -le "$NPROC" ] && numactl -C "0-$((THREADS - 1))" true 2>/dev/null; then
  PIN=(numactl -C "0-$((THREADS - 1))")
fi
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }  # q FULL QUICK
limit() { local s; s=$(q "$1" "$2"); [ "$MAX_STEP" -gt 0 ] && [ "$MAX_STEP" -lt "$s" ] && s=$MAX_STEP; echo "$s"; }

# ---- Steps: each records id, title, status, wall time, limit, AMX check; BODY gets its section.
IDS=()
FAILED=()
declare -A TITLE STATUS WALL LIMIT CHECK
N=0
now() { date +%s.%N; }
cmd_text() { local s="" a; for a in "$@"; do s+="$(printf '%q' "$a") "; done; echo "${s% }"; }
section() {  # id cmd_text log_file_or_empty
  local id=$1
  {
    echo "### $N. $id: ${TITLE[$id]}"
    echo
    echo "Status: ${STATUS[$id]}; wall ${WALL[$id]} s (limit ${LIMIT[$id]} s); AMX check: ${CHECK[$id]}."
    echo
    echo '````sh'
    echo "$2"
    echo '````'
    echo
    if [ -n "$3" ]; then
      echo '````text'
      cat "$3"
      [ -n "$(tail -c1 "$3")" ] && echo
      echo '````'
      echo
    fi
  } >>"$BODY"
}
begin() { N=$((N + 1)); IDS+=("$1"); TITLE[$1]=$2; LIMIT[$1]=$3; CHECK[$1]="-"; WALL[$1]="-"; }
skip() {  # id title why cmd_text
  begin "$1" "$2" 0
  LIMIT[$1]="-"
  STATUS[$1]="skipped: $3"
  echo "amx_report: [$N] $1: ${STATUS[$1]}" >&2
  section "$1" "$4" ""
}
# run ID TITLE LIMIT_S -- CMD...: runs CMD under timeout, output (stdout+stderr) to LOGDIR/ID.log.
# Sets RC; the caller may refine STATUS / CHECK, then calls finish ID CMD_TEXT.
run() {
  local id=$1 title=$2 lim=$3
  shift 4
  begin "$id" "$title" "$lim"
  echo "amx_report: [$N] $id: $(cmd_text "$@") (limit ${lim}s)" >&2
  local t0 t1
  t0=$(now)
  # In a subshell that does not exec it, whose stderr takes bash's own notice ("Aborted ...") of a
  # command killed by a signal: the status line below says it.
  (timeout --kill-after=30 "$lim" "$@" >"$LOGDIR/$id.log" 2>&1 </dev/null; exit $?) 2>/dev/null
  RC=$?
  t1=$(now)
  WALL[$id]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [ "$RC" -eq 0 ]; then STATUS[$id]="ran"
  elif [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then STATUS[$id]="failed rc $RC (timed out after ${lim} s)"
  elif [ "$RC" -gt 128 ]; then STATUS[$id]="failed rc $RC (killed by SIG$(kill -l $((RC - 128)) 2>/dev/null || echo $((RC - 128))))"
  else STATUS[$id]="failed rc $RC"; fi
}
fail() { STATUS[$1]="failed: $2"; }  # a step that exited 0 but did not do what it should
finish() {  # id cmd_text
  case ${STATUS[$1]} in failed*) FAILED+=("$1") ;; esac
  echo "amx_report: [$N] $1: ${STATUS[$1]} (${WALL[$1]} s); AMX check: ${CHECK[$1]}" >&2
  section "$1" "$2" "$LOGDIR/$1.log"
}
# amx_rows ID REGEX_ROW REGEX_AMX WHAT: the AMX check of a step that prints kernel names: of the
# rows matching REGEX_ROW, how many name an AMX kernel. On an AMX CPU none is a failure (a fast
# path that silently fell back).
amx_rows() {
  local id=$1 rows amx
  rows=$(grep -cE "$2" "$LOGDIR/$id.log")
  amx=$(grep -E "$2" "$LOGDIR/$id.log" | grep -cE "$3")
  CHECK[$id]="$amx of $rows $4 rows name an AMX kernel"
  if [ "$FORCED" = 0 ] && [ "${STATUS[$id]}" = ran ]; then
    if [ "$rows" -eq 0 ]; then fail "$id" "ran, but printed no $4 rows"
    elif [ "$amx" -eq 0 ]; then fail "$id" "ran, but no $4 row names an AMX kernel"; fi
  fi
}

ENVT=(env "OMP_NUM_THREADS=$THREADS")

# 1. The AMX kernel, K-gather and attention tests (GoogleTest cases registered with ctest).
TEST_RE='Amx|amx|AMX|Kgather|kgather|Attention|CpuFeatures|CpuPeaks'
XML=$LOGDIR/tests.xml
rm -f "$XML"
JUNIT=()
[[ "$(ctest --help 2>/dev/null)" == *--output-junit* ]] && JUNIT=(--output-junit "$XML")
T_CMD=(ctest --test-dir "$BUILD")
# shellcheck disable=SC2016  # $0 / $@ are the inner shell's
[[ "$(ctest --help 2>/dev/null)" == *--test-dir* ]] || T_CMD=(bash -c 'cd "$0" && exec ctest "$@"' "$BUILD")  # ctest < 3.20
T_CMD+=(-R "$TEST_RE" --output-on-failure --timeout 600 -j"$NPROC" "${JUNIT[@]}")
if ! command -v ctest >/dev/null; then
  skip tests "AMX kernel, K-gather and attention tests" "ctest not on PATH" "$(cmd_text "${T_CMD[@]}")"
elif [ ! -f "$BUILD/CTestTestfile.cmake" ]; then
  skip tests "AMX kernel, K-gather and attention tests" "$BUILD has no CTestTestfile.cmake (not a configured build)" \
    "$(cmd_text "${T_CMD[@]}")"
else
  run tests "AMX kernel, K-gather and attention tests" "$(limit 1800 1800)" -- "${T_CMD[@]}"
  T_LOG=$LOGDIR/tests.log
  SK_CMD=""
  if [ -f "$XML" ]; then
    SK_CMD=$(cmd_text "$PY" "$ROOT/scripts/ctest_skips.py" "$XML" --list)
    { echo; echo "\$ $SK_CMD"; "$PY" "$ROOT/scripts/ctest_skips.py" "$XML" --list 2>&1; } >>"$T_LOG"
  fi
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$T_LOG" | tail -1)
  total=$(sed -nE 's/.* out of ([0-9]+).*/\1/p' <<<"$line"); total=${total:-0}
  nfail=$(sed -nE 's/.*passed, ([0-9]+) tests? failed.*/\1/p' <<<"$line"); nfail=${nfail:-0}
  nskip=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*Skipped' "$T_LOG")
  # GoogleTest's own "[  SKIPPED ] Suite.Name (N ms)" lines (the JUnit file holds each test's output).
  gskip=0
  [ -f "$XML" ] && gskip=$(grep -oE '\[  SKIPPED \] [^ ]+ \([0-9]+ ms\)' "$XML" | sort -u | wc -l)
  counts="$((total - nfail - nskip)) passed, $nfail failed, $nskip skipped of $total (GoogleTest [  SKIPPED ]: $gskip)"
  CHECK[tests]="$nskip skipped"
  if [ "$total" -eq 0 ]; then
    [ "$RC" -eq 0 ] && fail tests "no test matched -R '$TEST_RE'"
  elif [ "$RC" -ne 0 ]; then STATUS[tests]="${STATUS[tests]}: $counts"
  elif [ "$nskip" -gt 0 ] || [ "$gskip" -gt 0 ]; then
    if [ "$FORCED" = 0 ]; then fail tests "$counts: an AMX test skipped on an AMX CPU"; else STATUS[tests]="ran: $counts"; fi
  else STATUS[tests]="ran: $counts"; fi
  finish tests "$(cmd_text "${T_CMD[@]}")${SK_CMD:+$'\n'$SK_CMD}"
fi

# 2-3. bench_sparse_gemm: rows = sparse kernel vs oneDNN dense (AMX for bf16/int8) in the same run.
SG=$BIN/bench_sparse_gemm
if [ -x "$SG" ]; then
  C=("${PIN[@]}" "$SG" --dtype f32,bf16,int8 --pattern 1x4,4x1 --sparsity 70,90 --m 128,1024 --threads 1 --cpu-time)
  [ "$QUICK" = 1 ] && C=("${PIN[@]}" "$SG" --quick --dtype f32,bf16,int8 --pattern 1x4 --sparsity 90 --m 128 --threads 1 --cpu-time)
  run sgemm_dense_amx "bench_sparse_gemm: sparse kernels vs oneDNN dense AMX" "$(limit 1800 600)" -- "${C[@]}"
  # oneDNN's effective ISA (its line in the header) is the check: dense bf16/int8 ran on AMX.
  if grep -qE '^# oneDNN .*effective ISA .*amx' "$LOGDIR/sgemm_dense_amx.log"; then CHECK[sgemm_dense_amx]="oneDNN effective ISA has AMX"
  else
    CHECK[sgemm_dense_amx]="oneDNN effective ISA: $(sed -nE 's/^# oneDNN .*effective ISA (.*)/\1/p' "$LOGDIR/sgemm_dense_amx.log" | head -1)"
    [ "$FORCED" = 0 ] && [ "${STATUS[sgemm_dense_amx]}" = ran ] && fail sgemm_dense_amx "ran, but oneDNN's effective ISA is not AMX"
  fi
  finish sgemm_dense_amx "$(cmd_text "${C[@]}")"

  C=("${PIN[@]}" "$SG" --dtype bf16,int8 --pattern 1x4,1x16 --sparsity 80,90 --m 128,1024 --threads 1 --cpu-time
     --blocking standard,kgather)
  [ "$QUICK" = 1 ] && C=("${PIN[@]}" "$SG" --quick --dtype bf16,int8 --pattern 1x4,1x16 --sparsity 90 --m 128 --threads 1
    --cpu-time --blocking standard,kgather)
  run sgemm_kgather "bench_sparse_gemm: AMX K-gather vs AVX-512 1x4 vs oneDNN dense AMX" "$(limit 1800 600)" -- "${C[@]}"
  amx_rows sgemm_kgather '\(z=[0-9.]+\)$' '__amx +\(z=' "K-gather"
  finish sgemm_kgather "$(cmd_text "${C[@]}")"
else
  skip sgemm_dense_amx "bench_sparse_gemm: sparse kernels vs oneDNN dense AMX" "$SG not built" "$SG ..."
  skip sgemm_kgather "bench_sparse_gemm: AMX K-gather vs AVX-512 1x4 vs oneDNN dense AMX" "$SG not built" "$SG ..."
fi

# 4. bench_attention [rounds] [threads...]: the AMX bf16 attention kernel vs the AVX-512 bf16 path.
BA=$BIN/bench_attention
C=("${PIN[@]}" "$BA" 5 1 "$THREADS")
[ "$THREADS" = 1 ] && C=("${PIN[@]}" "$BA" 5 1)
[ "$QUICK" = 1 ] && C=("${PIN[@]}" "$BA" 2 1)
if [ -x "$BA" ]; then
  run attention "bench_attention: AMX bf16 attention kernel vs AVX-512 bf16" "$(limit 900 300)" -- "${C[@]}"
  amx_rows attention '^b[0-9]+ s[0-9]+ .* threads [0-9]+ ' '__amx' "timed"
  finish attention "$(cmd_text "${C[@]}")"
else
  skip attention "bench_attention: AMX bf16 attention kernel vs AVX-512 bf16" "$BA not built" "$(cmd_text "${C[@]}")"
fi

# 5-6. bench_ops_quant (tests/ops_quant): --vs-onednn [rounds], --rule [rounds] [dtypes] [Ms].
BQ=$BUILD/tests/ops_quant/bench_ops_quant
[ -x "$BQ" ] || BQ=$BIN/bench_ops_quant
C=("${ENVT[@]}" "${PIN[@]}" "$BQ" --vs-onednn "$(q 7 2)")
if [ -x "$BQ" ]; then
  run ip_vs_onednn "bench_ops_quant --vs-onednn: dense InnerProduct vs dnnl::matmul" "$(limit 900 300)" -- "${C[@]}"
  amx_rows ip_vs_onednn '^(int8|bf16) ' 'amx' "int8/bf16"
  finish ip_vs_onednn "$(cmd_text "${C[@]}")"
else
  skip ip_vs_onednn "bench_ops_quant --vs-onednn: dense InnerProduct vs dnnl::matmul" "bench_ops_quant not built" \
    "$(cmd_text "${C[@]}")"
fi
C=("${ENVT[@]}" "${PIN[@]}" "$BQ" --rule 5 fp32,int8,bf16 1,16,128,1024)
[ "$QUICK" = 1 ] && C=("${ENVT[@]}" "${PIN[@]}" "$BQ" --rule 2 int8,bf16 128)
if [ -x "$BQ" ]; then
  run rule_grid "bench_ops_quant --rule: default vs forced sparse / dense" "$(limit 3600 900)" -- "${C[@]}"
  amx_rows rule_grid '^(int8|bf16) ' 'amx' "int8/bf16"
  last=$(grep -E '^# [0-9]+ points' "$LOGDIR/rule_grid.log" | tail -1)
  [ -n "$last" ] && CHECK[rule_grid]="${CHECK[rule_grid]}; ${last#\# }"
  finish rule_grid "$(cmd_text "${C[@]}")"
else
  skip rule_grid "bench_ops_quant --rule: default vs forced sparse / dense" "bench_ops_quant not built" "$(cmd_text "${C[@]}")"
fi

# 7. Models for the end-to-end steps: random-weight BERT (gen_bert.py), dense and 1x4-pruned
# (1x16 too: the pattern whose all-zero (16-channel, k) rows the AMX K-gather kernels skip), and
# the int8 IRs bench_dispatch_rule.sh runs. Cached in WORKDIR (made again only if missing; each
# is written to DIR.part and renamed when complete, so a step cut off by its time limit leaves
# nothing half-made behind).
MD=$WORKDIR/models
case $PRESET in bert-base) TAG=bb ;; *) TAG=$PRESET ;; esac
if [ "$QUICK" = 1 ]; then PRUNED=(1x4:0.9); RULE_IRS=(1x4:0.9); else PRUNED=(1x4:0.5 1x4:0.7 1x4:0.9 1x16:0.9); RULE_IRS=(1x4:0.5 1x4:0.7 1x4:0.9 1x16:0.9); fi
mname() { echo "${TAG}_${1%%:*}_${1##*:}"; }  # 1x4:0.9 -> bb_1x4_0.9
MODELS_SH="set -euo pipefail"$'\n'
gen() {  # dir [prune sparsity]
  local extra=""
  [ $# -gt 1 ] && extra=" --prune $2 --sparsity $3"
  local d=$MD/$1
  MODELS_SH+="[ -f $(printf %q "$d/model.onnx") ] || { rm -rf $(printf %q "$d.part") && $(cmd_text "$PY" "$ROOT/scripts/gen_bert.py" --preset "$PRESET" --no_ref --out "$d.part")$extra && rm -rf $(printf %q "$d") && mv $(printf %q "$d.part") $(printf %q "$d"); }"$'\n'
}
gen "${TAG}_dense"
for p in "${PRUNED[@]}"; do gen "$(mname "$p")" "${p%%:*}" "${p##*:}"; done
RULE_DIRS=()
for p in "${RULE_IRS[@]}"; do
  m=$(mname "$p") ir=$WORKDIR/ir/$(mname "$p")_int8
  RULE_DIRS+=("$ir")
  MODELS_SH+="[ -f $(printf %q "$ir/conf.yaml") ] || { rm -rf $(printf %q "$ir.part") && $(cmd_text "$BIN/neural_engine_compile" --model "$MD/$m/model.onnx" --output_dir "$ir.part" --precision int8) && rm -rf $(printf %q "$ir") && mv $(printf %q "$ir.part") $(printf %q "$ir"); }"$'\n'
done
MODELS_SH+="ls -l $(printf %q "$MD")/*/model.onnx $(printf %q "$WORKDIR/ir")/*/model.bin"
MODELS_OK=0
if ! "$PY" -c 'import torch, onnx' 2>/dev/null; then
  skip models "BERT models (gen_bert.py) and int8 IRs" "$PY cannot import torch and onnx (scripts/README_models.md)" "$MODELS_SH"
elif [ ! -x "$BIN/neural_engine_compile" ]; then
  skip models "BERT models (gen_bert.py) and int8 IRs" "$BIN/neural_engine_compile not built" "$MODELS_SH"
else
  run models "BERT models ($PRESET, gen_bert.py) and int8 IRs" "$(limit 2400 1200)" -- bash -c "$MODELS_SH"
  [ "$RC" -eq 0 ] && MODELS_OK=1
  finish models "$MODELS_SH"
fi

# 8. scripts/bench_dispatch_rule.sh: default vs forced sparse vs forced dense, int8 BERT b8 s128.
C=("${ENVT[@]}" "NE=$BIN/neural_engine" "${PIN[@]}" "$ROOT/scripts/bench_dispatch_rule.sh" -r "$(q 3 1)" -i "$(q 10 3)" "${RULE_DIRS[@]}")
if [ "$MODELS_OK" = 1 ] && [ -x "$BIN/neural_engine" ]; then
  run dispatch_rule "bench_dispatch_rule.sh: default vs forced sparse / dense, end to end" "$(limit 2400 900)" -- "${C[@]}"
  finish dispatch_rule "$(cmd_text "${C[@]}")"
else
  why="the models step did not run or failed"
  [ -x "$BIN/neural_engine" ] || why="$BIN/neural_engine not built"
  skip dispatch_rule "bench_dispatch_rule.sh: default vs forced sparse / dense, end to end" "$why" "$(cmd_text "${C[@]}")"
fi

# 9. scripts/bench_e2e.py against ONNX Runtime fp32 and int8 QDQ (onnxruntime-node from npm).
SPARSE=""
for p in "${PRUNED[@]}"; do
  case $p in 1x4:0.9|1x16:0.9) SPARSE+="${SPARSE:+,}$MD/$(mname "$p")/model.onnx" ;; esac
done
E=("$PY" "$ROOT/scripts/bench_e2e.py" --dense "$MD/${TAG}_dense/model.onnx" --sparse "$SPARSE")
if [ "$QUICK" = 1 ]; then
  E+=(--precisions int8 --dense_precisions int8 --batch 8 --seq 128 --threads "$THREADS" --iterations 3 --warmup 1 --rounds 1)
else
  E+=(--precisions int8,bf16 --dense_precisions fp32,int8,bf16 --batch 1,8 --seq 128 --threads "$THREADS" --iterations 5
      --warmup 2 --rounds 3)
fi
E+=(--workdir "$WORKDIR/e2e" --engine "$BIN/neural_engine" --compiler "$BIN/neural_engine_compile"
    --markdown "$LOGDIR/e2e_table.md" --json "$LOGDIR/e2e.json")
ORT_DIR=$ROOT/third_party/ort/node_modules/onnxruntime-node
ORT_VERSION=""
if ! command -v node >/dev/null; then
  ORT_WHY="ONNX Runtime not installed: node is not on PATH"
elif ! node -e "try{require(process.argv[1])}catch(e){require('onnxruntime-node')}" "$ORT_DIR" >/dev/null 2>&1; then
  ORT_WHY="ONNX Runtime not installed: onnxruntime-node does not load (install it with scripts/install_ort.sh)"
else
  ORT_WHY=""
  ORT_VERSION=$(node -e "try{console.log(require(process.argv[1]+'/package.json').version)}catch(e){console.log('?')}" "$ORT_DIR" 2>/dev/null)
fi
if [ -n "$ORT_WHY" ]; then
  skip e2e "bench_e2e.py vs ONNX Runtime fp32 / int8 QDQ" "$ORT_WHY" "$(cmd_text "${E[@]}")"
elif [ "$MODELS_OK" != 1 ]; then
  skip e2e "bench_e2e.py vs ONNX Runtime fp32 / int8 QDQ" "the models step did not run or failed" "$(cmd_text "${E[@]}")"
else
  run e2e "bench_e2e.py vs ONNX Runtime $ORT_VERSION fp32 / int8 QDQ" "$(limit 3600 1200)" -- "${E[@]}"
  finish e2e "$(cmd_text "${E[@]}")"
fi

# ---- The report: header, summary table, then the steps' sections.
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=""
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && DIRTY=" (with uncommitted changes to tracked files)"
lsv() { lscpu 2>/dev/null | sed -n "s/^$1: *//p" | head -1; }
{
  echo "# AMX report, $DATE"
  echo
  if [ "$FORCED" = 1 ]; then
    echo "**Forced run (NE_AMX_REPORT_FORCE=1) on a CPU without usable AMX ($WHY): nothing here is an AMX"
    echo "measurement; it tests scripts/amx_report.sh itself.**"
    echo
  fi
  echo "- CPU: ${MODEL_NAME:-unknown} (lscpu: family $(lsv 'CPU family'), model $(lsv 'Model'), stepping $(lsv 'Stepping'); $(lsv 'CPU(s)') CPUs; hypervisor: $(lsv 'Hypervisor vendor'))"
  echo "- lscpu AMX flags: ${AMX_FLAGS:-none}"
  echo "- \`neural_engine_cpu\`: $("$CPU_EXE" 2>&1 | head -1)"
  echo "- \`neural_engine_cpu --why avx512_core_amx\`: ${WHY:-(empty: AMX usable)}"
  echo "- kernel: $(uname -srvm)"
  echo "- date: $(date '+%F %T %Z')"
  echo "- git commit: $COMMIT$DIRTY"
  echo "- build: $BUILD; threads $THREADS$([ ${#PIN[@]} -gt 0 ] && echo " (pinned: ${PIN[*]})"); $(q "full" "--quick") run; models: gen_bert.py --preset $PRESET"
  echo "- ONNX Runtime: ${ORT_VERSION:-${ORT_WHY}}"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
  for e in "${ENV_NOTES[@]}"; do echo "- $e"; done
  echo "- command: scripts/amx_report.sh$([ "$QUICK" = 1 ] && echo " --quick"); step logs and generated models: $WORKDIR"
  echo
  echo "## Summary"
  echo
  echo "| # | step | status | wall s | limit s | AMX check |"
  echo "|---|---|---|---|---|---|"
  i=0
  for id in "${IDS[@]}"; do
    i=$((i + 1))
    echo "| $i | $id: ${TITLE[$id]} | ${STATUS[$id]//|/\\|} | ${WALL[$id]} | ${LIMIT[$id]} | ${CHECK[$id]//|/\\|} |"
  done
  echo
  echo "\"AMX check\": tests: how many skipped (on an AMX CPU each skip is a failure: an AMX path that did not"
  echo "run); benchmarks that print kernel names: how many rows name an AMX kernel (none on an AMX CPU is a"
  echo "failure); sgemm_dense_amx: oneDNN's effective ISA; '-': the step prints no kernel names."
  echo
  echo "## Steps"
  echo
  cat "$BODY"
} >"$OUT"

echo "amx_report: wrote $OUT (${#IDS[@]} steps, ${#FAILED[@]} failed${FAILED[*]:+: ${FAILED[*]}})" >&2
if [ "$FORCED" = 1 ]; then
  [ ${#FAILED[@]} -gt 0 ] && echo "amx_report: forced run without AMX: exit status 0 whatever failed" >&2
  exit 0
fi
[ ${#FAILED[@]} -eq 0 ]
