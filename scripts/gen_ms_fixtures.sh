#!/bin/sh
# Regenerates the com.microsoft (ONNX Runtime-optimized BERT) fixtures under tests/data/models/:
#   ms_base           the unoptimized export (gen_bert.py, erf GELU): the op counts to match
#   ms_1d_biasgelu    EmbedLayerNormalization mask_index (1-D lengths) -> Attention, BiasGelu
#   ms_2d_gelu        raw int32 mask [B, S] -> Attention, Add + Gelu
#   ms_1d_fastgelu    1-D mask_index, FastGelu (from the tanh-GELU export)
#   ms_2d_fastgelu    raw mask, FastGelu
# made by scripts/make_ort_optimized.py. Each variant's ref/last_hidden_state.npy is ONNX
# Runtime's output (scripts/ort_run.js), checked here against the torch reference (1e-4) first.
# Needs /usr/bin/python3 (torch, onnx) and node with third_party/ort/node_modules.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
D="$ROOT/tests/data/models"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
SMALL="--layers 2 --hidden 32 --heads 4 --ffn 128 --vocab 100 --max_pos 64 --batch 3 --seq 16 --pad 5 --seed 7"
$PY "$ROOT/scripts/gen_bert.py" $SMALL --out "$D/ms_base"
$PY "$ROOT/scripts/gen_bert.py" $SMALL --gelu tanh --out "$TMP/base_tanh"
for v in "1d biasgelu ms_base" "2d gelu ms_base" "1d fastgelu base_tanh" "2d fastgelu base_tanh"; do
  set -- $v
  src="$D/$3"; [ -d "$src" ] || src="$TMP/$3"
  out="$D/ms_$1_$2"
  $PY "$ROOT/scripts/make_ort_optimized.py" "$src" "$out" --mask_index "$1" --gelu "$2"
  I="$out/inputs"
  node "$ROOT/scripts/ort_run.js" "$out/model.onnx" --iterations 1 --warmup 0 --output_dir "$TMP/ort" \
    --input "input_ids=$I/input_ids.npy,attention_mask=$I/attention_mask.npy,token_type_ids=$I/token_type_ids.npy" >/dev/null
  $PY - "$TMP/ort/last_hidden_state.npy" "$out/ref/last_hidden_state.npy" <<'PYEOF'
import sys, numpy as np
ort, torch = np.load(sys.argv[1]), np.load(sys.argv[2])
d = float(np.abs(ort - torch).max())
print(f"  ORT vs torch: max |diff| {d:.3g}")
assert np.isfinite(ort).all() and d <= 1e-4, d
np.save(sys.argv[2], ort.astype(np.float32))
PYEOF
done
