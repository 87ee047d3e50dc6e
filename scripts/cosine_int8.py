#!/usr/bin/python3
"""int8 (and bf16) vs fp32 accuracy of a model, as cosine similarity per token of its outputs.

  /usr/bin/python3 scripts/cosine_int8.py --model DIR/model.onnx [--inputs DIR/inputs]
      [--build build-quant] [--variants int8,int8_dynamic,bf16] [--calib_dir D]
      [--calib_method minmax|percentile] [--emulate auto|always|never] [--work DIR]

Compiles the model with bin/neural_engine_compile for fp32 and each variant, runs each IR with
bin/neural_engine on the inputs (the gen_bert.py model's inputs/ by default), and prints per
output: cosine similarity per token (over the last dim) min / mean, and max abs diff vs fp32.
`--emulate auto` runs the variant's real IR and, if the executor refuses it (int8 / bf16
InnerProduct not implemented yet), the fp32 emulation of the same IR
(neural_engine_compile --emulate: the same weights, scales and rounding as fake-quant ops).
Calibration of static int8: generated inputs (4 sets of batch 2 x seq 128) unless --calib_dir.
"""
import argparse
import os
import subprocess
import sys

import numpy as np


def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def compile_ir(bindir, model, out, precision, extra, emulate=False):
    os.makedirs(out, exist_ok=True)
    cmd = [os.path.join(bindir, "neural_engine_compile"), "--model", model, "--output_dir", out,
           "--precision", precision] + extra + (["--emulate"] if emulate else [])
    rc, log = sh(cmd)
    if rc != 0:
        sys.exit(f"compile failed: {' '.join(cmd)}\n{log}")


def run_ir(bindir, ir, inputs, out):
    os.makedirs(out, exist_ok=True)
    arg = ",".join(f"{f[:-4]}={os.path.join(inputs, f)}" for f in sorted(os.listdir(inputs)) if f.endswith(".npy"))
    cmd = [os.path.join(bindir, "neural_engine"), "--config", os.path.join(ir, "conf.yaml"), "--weight",
           os.path.join(ir, "model.bin"), "--input", arg, "--output_dir", out, "--iterations", "1", "--w", "0"]
    rc, log = sh(cmd)
    return rc == 0, log


def cosine(a, b):
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    c = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-30)
    return c.min(), c.mean(), np.abs(a - b).max()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs")
    ap.add_argument("--build", default="build-quant")
    ap.add_argument("--variants", default="int8,int8_dynamic,bf16")
    ap.add_argument("--calib_dir")
    ap.add_argument("--calib_method", default="minmax")
    ap.add_argument("--emulate", choices=["auto", "always", "never"], default="auto")
    ap.add_argument("--work")
    args = ap.parse_args()
    bindir = os.path.join(args.build, "bin")
    inputs = args.inputs or os.path.join(os.path.dirname(os.path.abspath(args.model)), "inputs")
    work = args.work or os.path.join(args.build, "cosine_work")
    extra = ["--calib_method", args.calib_method] + (["--calib_dir", args.calib_dir] if args.calib_dir else [])

    compile_ir(bindir, args.model, os.path.join(work, "fp32"), "fp32", [])
    ok, log = run_ir(bindir, os.path.join(work, "fp32"), inputs, os.path.join(work, "fp32_out"))
    if not ok:
        sys.exit(f"fp32 run failed:\n{log}")
    outs = sorted(f for f in os.listdir(os.path.join(work, "fp32_out")) if f.endswith(".npy"))
    print(f"model {args.model}, inputs {inputs}, calibration {args.calib_dir or 'generated'} ({args.calib_method})")
    for v in args.variants.split(","):
        how = None
        if args.emulate != "always":
            compile_ir(bindir, args.model, os.path.join(work, v), v, extra)
            ok, log = run_ir(bindir, os.path.join(work, v), inputs, os.path.join(work, v + "_out"))
            if ok:
                how = "executor"
            elif args.emulate == "never":
                print(f"{v}: executor run failed: {log.strip().splitlines()[-1] if log.strip() else ''}")
                continue
        if how is None:
            compile_ir(bindir, args.model, os.path.join(work, v + "_emu"), v, extra, emulate=True)
            ok, log = run_ir(bindir, os.path.join(work, v + "_emu"), inputs, os.path.join(work, v + "_out"))
            if not ok:
                print(f"{v}: emulated run failed:\n{log}")
                continue
            how = "emulated"
        for o in outs:
            a = np.load(os.path.join(work, "fp32_out", o))
            b = np.load(os.path.join(work, v + "_out", o))
            mn, mean, mad = cosine(a, b)
            print(f"{v:13s} ({how:8s}) {o[:-4]}: cosine per token min {mn:.5f} mean {mean:.5f}, "
                  f"max abs diff {mad:.4f} ({a.reshape(-1, a.shape[-1]).shape[0]} tokens)")


if __name__ == "__main__":
    main()
