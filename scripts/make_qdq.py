#!/usr/bin/python3
"""Quantize an fp32 ONNX model (scripts/gen_bert.py output) the way ONNX Runtime's quantizer does,
without ONNX Runtime's python package (not installable here): calibration runs the model in
ONNX Runtime through node (scripts/ort_run.js).

  /usr/bin/python3 scripts/make_qdq.py --model fp32/model.onnx --out DIR
      [--mode static|dynamic] [--calib_dir D (default: the model's inputs/)]
      [--activation u8|s8] [--per_channel 1|0] [--ref_inputs D] [--no_ref]

static  = onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QDQ,
          op_types_to_quantize=['MatMul'], per_channel=True, reduce_range=False,
          activation_type=QUInt8 (asymmetric) | QInt8 (symmetric), weight_type=QInt8,
          calibrate_method=MinMax):
  activation t of a MatMul -> QuantizeLinear `t_QuantizeLinear` (t, t_scale, t_zero_point) ->
  `t_quantized` -> DequantizeLinear `t_DequantizeLinear` -> `t_DequantizeLinear_Output`;
  weight W (initializer [K, N]) -> `W_quantized` int8, `W_scale` [N] (axis 1) or [],
  `W_zero_point` int8 zeros -> DequantizeLinear `W_DequantizeLinear` (axis 1) ->
  `W_DequantizeLinear_Output`. Every MatMul is quantized, the attention ones (activation x
  activation) too; bias Adds stay fp32.
dynamic = quantize_dynamic(..., op_types_to_quantize=['MatMul'], weight_type=QInt8,
          per_channel=False): for MatMuls with an initializer weight,
  x -> DynamicQuantizeLinear `x_QuantizeLinear` (x_quantized, x_scale, x_zero_point);
  MatMulInteger(x_quantized, W_quantized, x_zero_point, W_zero_point) -> Cast(float) ->
  Mul(., Mul(x_scale, W_scale)) -> the MatMul's output.

Scales and zero points as ORT computes them (quant_utils.compute_scale_zp): range widened to
include 0; u8: scale = (max - min) / 255, zp = round(-min / scale); symmetric s8:
scale = max|.| / 127 (qmin -127), zp 0. Weights symmetric s8 per output channel.

Writes DIR/model.onnx, DIR/meta.json (quantized tensors with scale / zero point), and unless
--no_ref, DIR/inputs/*.npy (copied from --ref_inputs, default the model's inputs/) and
DIR/ref_ort/<output>.npy: ONNX Runtime's outputs for the quantized model on those inputs.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

HERE = os.path.dirname(os.path.abspath(__file__))
ORT_RUN = os.path.join(HERE, "ort_run.js")


def run_ort(model_path, inputs_dir, out_dir):
    names = [f for f in sorted(os.listdir(inputs_dir)) if f.endswith(".npy")]
    arg = ",".join(f"{f[:-4]}={os.path.join(inputs_dir, f)}" for f in names)
    cmd = ["node", ORT_RUN, model_path, "--input", arg, "--output_dir", out_dir,
           "--iterations", "1", "--warmup", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"make_qdq: ONNX Runtime failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")


def calib_sets(d):
    if any(f.endswith(".npy") for f in os.listdir(d)):
        return [d]
    subs = [os.path.join(d, s) for s in sorted(os.listdir(d)) if os.path.isdir(os.path.join(d, s))]
    if not subs:
        sys.exit(f"make_qdq: no .npy files in {d}")
    return subs


def qparams(rmin, rmax, symmetric, qmin, qmax):
    rmin, rmax = np.float32(min(rmin, 0.0)), np.float32(max(rmax, 0.0))
    if symmetric:
        a = np.float32(max(abs(rmin), abs(rmax)))
        rmin, rmax = -a, a
    scale = np.float32((rmax - rmin) / np.float32(qmax - qmin))
    if scale < np.finfo(np.float32).tiny:
        return np.float32(1.0), 0
    zp = 0 if symmetric else int(np.clip(np.round(np.float32(qmin) - rmin / scale), qmin, qmax))
    return scale, zp


def quantize_weight(w, per_channel):
    a = np.abs(w).max(axis=0) if per_channel else np.array(np.abs(w).max(), dtype=np.float32)
    scale = (a / np.float32(127)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    return q, scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=["static", "dynamic"], default="static")
    ap.add_argument("--calib_dir")
    ap.add_argument("--ref_inputs")
    ap.add_argument("--activation", choices=["u8", "s8"], default="u8")
    ap.add_argument("--per_channel", type=int, default=None)
    ap.add_argument("--no_ref", action="store_true")
    args = ap.parse_args()
    per_channel = bool(args.per_channel if args.per_channel is not None else args.mode == "static")
    model_dir = os.path.dirname(os.path.abspath(args.model))
    calib_dir = args.calib_dir or os.path.join(model_dir, "inputs")
    ref_inputs = args.ref_inputs or os.path.join(model_dir, "inputs")

    m = onnx.load(args.model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    matmuls = [n for n in g.node if n.op_type == "MatMul"]
    weights, acts = [], []
    for n in matmuls:
        for k, t in enumerate(n.input):
            w = inits.get(t)
            if w is not None and k == 1 and len(w.dims) == 2 and w.data_type == TensorProto.FLOAT:
                if t not in weights:
                    weights.append(t)
            elif args.mode == "static" and t not in acts:
                acts.append(t)
            elif args.mode == "dynamic" and k == 0 and inits.get(n.input[1]) is not None and t not in acts:
                acts.append(t)

    meta = {"generator": "scripts/make_qdq.py", "source": os.path.relpath(args.model, os.getcwd()),
            "mode": args.mode, "activation": args.activation, "per_channel": per_channel,
            "activations": {}, "weights": {}}

    # ---- calibration (static): the activations as extra outputs, run in ORT, min / max.
    ranges = {}
    if args.mode == "static":
        cal = onnx.load(args.model)
        for i, t in enumerate(acts):
            cal.graph.node.append(helper.make_node("Identity", [t], [f"calib_{i}"], name=f"calib_{i}"))
            cal.graph.output.append(helper.make_tensor_value_info(f"calib_{i}", TensorProto.FLOAT, None))
        with tempfile.TemporaryDirectory() as tmp:
            p = os.path.join(tmp, "calib.onnx")
            onnx.save(cal, p)
            for s in calib_sets(calib_dir):
                od = os.path.join(tmp, "out")
                os.makedirs(od, exist_ok=True)
                run_ort(p, s, od)
                for i, t in enumerate(acts):
                    v = np.load(os.path.join(od, f"calib_{i}.npy"))
                    lo, hi = float(v.min()), float(v.max())
                    if t in ranges:
                        lo, hi = min(lo, ranges[t][0]), max(hi, ranges[t][1])
                    ranges[t] = (lo, hi)

    # ---- weights
    new_inits = []
    dq_nodes = {}
    for t in weights:
        w = numpy_helper.to_array(inits[t]).astype(np.float32)
        q, scale = quantize_weight(w, per_channel)
        new_inits += [numpy_helper.from_array(q, t + "_quantized"),
                      numpy_helper.from_array(scale, t + "_scale"),
                      numpy_helper.from_array(np.zeros(scale.shape, np.int8), t + "_zero_point")]
        meta["weights"][t] = {"shape": list(w.shape), "scale_shape": list(scale.shape),
                              "max_roundtrip_err": float(np.abs(q * scale - w).max())}
        if args.mode == "static":
            kw = {"axis": 1} if per_channel else {}
            dq_nodes[t] = helper.make_node("DequantizeLinear", [t + "_quantized", t + "_scale", t + "_zero_point"],
                                           [t + "_DequantizeLinear_Output"], name=t + "_DequantizeLinear", **kw)
    keep = [i for i in g.initializer if i.name not in weights]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)

    # ---- activations and the rewrite, in topological order
    qt = TensorProto.UINT8 if args.activation == "u8" else TensorProto.INT8
    qmin, qmax = (0, 255) if args.activation == "u8" else (-127, 127)
    act_nodes = {}  # tensor -> nodes to place right after its producer
    for t in acts:
        if args.mode == "static":
            s, zp = qparams(ranges[t][0], ranges[t][1], args.activation == "s8", qmin, qmax)
            g.initializer.extend([numpy_helper.from_array(np.array(s, np.float32), t + "_scale"),
                                  numpy_helper.from_array(np.array(zp, np.uint8 if qt == TensorProto.UINT8 else np.int8),
                                                          t + "_zero_point")])
            meta["activations"][t] = {"min": ranges[t][0], "max": ranges[t][1], "scale": float(s), "zero_point": zp}
            act_nodes[t] = [
                helper.make_node("QuantizeLinear", [t, t + "_scale", t + "_zero_point"], [t + "_quantized"],
                                 name=t + "_QuantizeLinear"),
                helper.make_node("DequantizeLinear", [t + "_quantized", t + "_scale", t + "_zero_point"],
                                 [t + "_DequantizeLinear_Output"], name=t + "_DequantizeLinear")]
        else:
            act_nodes[t] = [helper.make_node("DynamicQuantizeLinear", [t],
                                             [t + "_quantized", t + "_scale", t + "_zero_point"],
                                             name=t + "_QuantizeLinear")]
    nodes = []
    graph_inputs = {i.name for i in g.input}
    for t in acts:
        if t in graph_inputs:
            nodes += act_nodes.pop(t)
    nodes += list(dq_nodes.values()) if args.mode == "static" else []
    for n in g.node:
        if n.op_type == "MatMul" and args.mode == "static":
            n.input[:] = [t + "_DequantizeLinear_Output" if (t in ranges or t in dq_nodes) else t for t in n.input]
            nodes.append(n)
        elif n.op_type == "MatMul" and n.input[1] in weights:
            x, w, y = n.input[0], n.input[1], n.output[0]
            nm = (n.name or y) + "_quant"
            nodes += [
                helper.make_node("MatMulInteger", [x + "_quantized", w + "_quantized", x + "_zero_point", w + "_zero_point"],
                                 [y + "_quantized"], name=nm),
                helper.make_node("Cast", [y + "_quantized"], [y + "_quantized_cast_output"], name=nm + "_output_cast",
                                 to=TensorProto.FLOAT),
                helper.make_node("Mul", [x + "_scale", w + "_scale"], [nm + "_scales_mul:0"], name=nm + "_scales_mul"),
                helper.make_node("Mul", [y + "_quantized_cast_output", nm + "_scales_mul:0"], [y],
                                 name=nm + "_output_scale_mul")]
        else:
            nodes.append(n)
        for o in n.output:
            if o in act_nodes:
                nodes += act_nodes.pop(o)
    assert not act_nodes, f"activations without a producer: {list(act_nodes)}"
    del g.node[:]
    g.node.extend(nodes)
    if args.mode == "dynamic":  # MatMulInteger / DynamicQuantizeLinear need opset >= 11
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx") and o.version < 11:
                o.version = 11
    onnx.checker.check_model(m)
    os.makedirs(args.out, exist_ok=True)
    out_model = os.path.join(args.out, "model.onnx")
    onnx.save(m, out_model)

    if not args.no_ref:
        d = os.path.join(args.out, "inputs")
        os.makedirs(d, exist_ok=True)
        for f in sorted(os.listdir(ref_inputs)):
            if f.endswith(".npy"):
                shutil.copy(os.path.join(ref_inputs, f), os.path.join(d, f))
        ref = os.path.join(args.out, "ref_ort")
        os.makedirs(ref, exist_ok=True)
        run_ort(out_model, d, ref)
        meta["ref_ort"] = sorted(os.listdir(ref))
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"make_qdq: {args.mode}: {len(weights)} weights, {len(acts)} activations -> {out_model}")


if __name__ == "__main__":
    main()
