#!/bin/sh
# Regenerates the committed test fixtures under tests/data/models/ (deterministic: fixed seeds).
# All accept sequences up to 128 (max_pos 128). Each fixture: model.onnx (+ model.onnx.data for tiny_extdata), inputs/*.npy,
# ref/last_hidden_state.npy (torch fp32), meta.json. See scripts/README_models.md.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GEN="/usr/bin/python3 $ROOT/scripts/gen_bert.py"
D="$ROOT/tests/data/models"
mkdir -p "$D"
TINY="--preset tiny --batch 3 --seq 16 --pad 5 --seed 1"
$GEN $TINY --out "$D/tiny"
$GEN --preset tiny_notok --batch 3 --seq 16 --pad 4 --seed 2 --out "$D/tiny_notok"
$GEN --preset distilbert --layers 6 --hidden 64 --heads 4 --ffn 128 --vocab 200 --max_pos 128 \
     --batch 2 --seq 77 --pad 10 --seed 3 --out "$D/distil_small"
# 16 heads of 8: one layer (two layers of hidden 128 / ffn 256 would be ~1.05 MB)
$GEN --preset heads16 --layers 1 --hidden 128 --heads 16 --ffn 256 --vocab 100 --max_pos 128 \
     --batch 2 --seq 16 --pad 3 --seed 4 --out "$D/heads16"
$GEN $TINY --prune 1x4 --sparsity 0.9 --out "$D/tiny_1x4_90"
# 2 heads of 32 (two 16-channel groups per head: output-channel grouping within heads), 1x4 at 0.9
$GEN $TINY --layers 1 --heads 2 --prune 1x4 --sparsity 0.9 --out "$D/heads2_1x4_90"
$GEN $TINY --prune 4x1 --sparsity 0.9 --out "$D/tiny_4x1_90"
$GEN $TINY --prune 1x16 --sparsity 0.9 --out "$D/tiny_1x16_90"
$GEN $TINY --prune channel --sparsity 0.5 --out "$D/tiny_channel_50"
$GEN $TINY --opset 17 --out "$D/tiny_opset17"
$GEN $TINY --gelu tanh --out "$D/tiny_gelu_tanh"
$GEN $TINY --external_data --out "$D/tiny_extdata"
