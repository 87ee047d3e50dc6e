#!/usr/bin/python3
"""Zero whole FFN channels and attention heads of a gen_bert.py model (for model slim).

  /usr/bin/python3 scripts/zero_channels.py --model_dir DIR --ffn 0.5 --heads 0.25 [--seed 0] --out OUT

DIR holds model.onnx and meta.json from scripts/gen_bert.py (meta.json names each Linear's
MatMul initializer W[K,N] and bias). Per layer, round(ffn * F) intermediate FFN channels f get
W_ffn1[:, f] = 0, b_ffn1[f] = 0, W_ffn2[f, :] = 0, and round(heads * H) heads h get their Q, K, V
columns h*D..h*D+D-1 and biases zeroed and W_attn_out rows h*D..h*D+D-1 zeroed. Channels and
heads are drawn at random (numpy, seeded). Writes OUT/model.onnx, OUT/inputs/ (copied),
OUT/zeroed.json (what was zeroed) and OUT/meta.json (the input's, plus "zeroed").
Zeros are +0.0 (assigned, not multiplied). Always run with /usr/bin/python3.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", required=True)
    ap.add_argument("--ffn", type=float, default=0.5, help="share of FFN channels to zero per layer")
    ap.add_argument("--heads", type=float, default=0.25, help="share of heads to zero per layer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    meta = json.load(open(os.path.join(a.model_dir, "meta.json")))
    cfg = meta["config"]
    H, hidden, F = cfg["heads"], cfg["hidden"], cfg["ffn"]
    D = hidden // H
    model = onnx.load(os.path.join(a.model_dir, "model.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    by_name = {w["name"]: w for w in meta["weights"]}
    arrays = {}

    def arr(name):
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(inits[name]).copy()
        return arrays[name]

    rng = np.random.default_rng(a.seed)
    zeroed = {"ffn": {}, "heads": {}, "seed": a.seed, "ffn_share": a.ffn, "heads_share": a.heads}
    for layer in range(cfg["layers"]):
        p = "layer.%d." % layer
        nf = int(round(a.ffn * F))
        fs = sorted(int(x) for x in rng.choice(F, size=nf, replace=False))
        w1, b1, w2 = by_name[p + "ffn1"], by_name[p + "ffn1"], by_name[p + "ffn2"]
        arr(w1["onnx_initializer"])[:, fs] = 0.0
        arr(b1["bias_initializer"])[fs] = 0.0
        arr(w2["onnx_initializer"])[fs, :] = 0.0
        nh = int(round(a.heads * H))
        hs = sorted(int(x) for x in rng.choice(H, size=nh, replace=False))
        cols = [h * D + d for h in hs for d in range(D)]
        for n in ("query", "key", "value"):
            arr(by_name[p + n]["onnx_initializer"])[:, cols] = 0.0
            arr(by_name[p + n]["bias_initializer"])[cols] = 0.0
        arr(by_name[p + "attn_out"]["onnx_initializer"])[cols, :] = 0.0
        zeroed["ffn"][str(layer)] = fs
        zeroed["heads"][str(layer)] = hs
    for name, v in arrays.items():
        t = inits[name]
        t.CopyFrom(numpy_helper.from_array(v.astype(numpy_helper.to_array(t).dtype), name))

    os.makedirs(a.out, exist_ok=True)
    big = sum(v.nbytes for v in (numpy_helper.to_array(t) for t in model.graph.initializer)) > (1 << 30)
    onnx.save(model, os.path.join(a.out, "model.onnx"), save_as_external_data=big)
    src_inputs = os.path.join(a.model_dir, "inputs")
    if os.path.isdir(src_inputs):
        shutil.copytree(src_inputs, os.path.join(a.out, "inputs"), dirs_exist_ok=True)
    json.dump(zeroed, open(os.path.join(a.out, "zeroed.json"), "w"), indent=1)
    meta["zeroed"] = zeroed
    json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1)
    print("zeroed %d FFN channels of %d and %d heads of %d per layer (%d layers) -> %s" %
          (int(round(a.ffn * F)), F, int(round(a.heads * H)), H, cfg["layers"], os.path.join(a.out, "model.onnx")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
