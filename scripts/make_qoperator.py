#!/usr/bin/python3
"""Write QOperator-format int8 variants of an fp32 ONNX model (scripts/gen_bert.py output) the
way ONNX Runtime's quantizer and its graph optimizer write them, without ONNX Runtime's python
package (not installable here). Calibration and the reference outputs run in ONNX Runtime
through node (scripts/ort_run.js).

  /usr/bin/python3 scripts/make_qoperator.py IN_DIR OUT_DIR --form FORM
      [--weight_type s8|u8|mixed] [--per_channel 0|1|mixed] [--calib_dir D] [--no_ref]

IN_DIR holds model.onnx, inputs/*.npy and ref/*.npy (the fp32 torch reference); OUT_DIR gets
model.onnx, inputs/ (copied), ref/ (ONNX Runtime's outputs for the quantized model), ref_fp32/
(IN_DIR/ref copied) and meta.json (the form, the weights' quantization, and ONNX Runtime's own
int8 error: max abs and min cosine per token against the fp32 reference).

Forms (every MatMul with an initializer weight [K, N] and its bias Add, unless said otherwise):

qlinearmatmul   quantize_static(QuantFormat.QOperator, op_types_to_quantize=['MatMul']):
                x -> QuantizeLinear `x_QuantizeLinear` (x_scale, x_zero_point) -> x_quantized;
                QLinearMatMul(x_quantized, x_scale, x_zero_point, W_quantized, W_scale,
                W_zero_point, y_scale, y_zero_point) -> y_quantized -> DequantizeLinear -> y.
                The attention MatMuls (both inputs activations) become QLinearMatMul too.
                Activations u8 asymmetric (MinMax); bias Adds stay fp32.
matmulinteger_zp quantize_dynamic(QOperator / IntegerOps) with weights of non-zero zero point
                (weight_type QUInt8, or QInt8 with WeightSymmetric=False):
                DynamicQuantizeLinear(x) -> MatMulInteger(xq, Wq, x_zp, W_zp) -> Cast(float)
                -> Mul(., Mul(x_scale, W_scale)). Attention MatMuls stay fp32 (the extra
                option MatMulConstBOnly=True).
qgemm           the model's MatMul + bias Add rewritten as Reshape([-1, K]) -> Gemm(transB=1,
                alpha=0.5, B = 2 W^T) -> Reshape back (a Gemm export), then
                quantize_static(QOperator, op_types_to_quantize=['Gemm']): QuantizeLinear(x2d) ->
                com.microsoft QGemm(xq, x_scale, x_zp, Bq, B_scale, B_zp, C int32 (bias / (alpha
                * x_scale * B_scale)), y_scale, y_zp) -> DequantizeLinear. The FFN2 QGemms are
                written without y_scale / y_zero_point (fp32 output), the other form QGemm has.
dynamicquantizematmul  what ORT's optimizer fuses quantize_dynamic's output into:
                com.microsoft DynamicQuantizeMatMul(x, Wq, W_scale, W_zp?, bias) (the bias Add
                fused).
matmulintegertofloat   DynamicQuantizeLinear(x) -> com.microsoft MatMulIntegerToFloat(xq, Wq,
                x_scale, W_scale, x_zp, W_zp?, bias) (the bias Add fused).

Weights (7-bit with --reduce_range 1, the default): s8 symmetric (zero point 0, written only where the form needs one), or asymmetric u8 /
s8 ("mixed" alternates s8-symmetric, u8, s8-asymmetric by weight); per output channel or per
tensor ("mixed" alternates). Scale / zero point as ORT's quant_utils computes them: range widened
to include 0; asymmetric: scale = (max - min) / (qmax - qmin), zp = round(qmin - min / scale);
symmetric: scale = max|.| / 127. Zero weights quantize to the zero point, so pruned blocks stay
blocks of the zero point.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_qdq import run_ort, qparams  # noqa: E402  (same directory)

MS = "com.microsoft"
FORMS = ["qlinearmatmul", "matmulinteger_zp", "qgemm", "dynamicquantizematmul", "matmulintegertofloat"]


def quant_weight(w, kind, per_channel, axis=1, reduce_range=False):
    """w [K, N] fp32 (axis = the output-channel axis). Returns (q, scale, zp) with scale / zp of
    shape [N] (per channel) or [] (per tensor). reduce_range: 7-bit weights as ORT's
    reduce_range (s8 [-64, 64] / [-64, 63], u8 [0, 127])."""
    red = 1 - axis
    if kind == "s8sym":
        qm = 64 if reduce_range else 127
        a = np.abs(w).max(axis=red) if per_channel else np.array(np.abs(w).max(), np.float32)
        scale = (a / np.float32(qm)).astype(np.float32)
        scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
        zp = np.zeros(scale.shape, np.int8)
        q = np.clip(np.round(w / (scale if axis == 1 else scale[:, None] if per_channel else scale)), -qm, qm)
        return q.astype(np.int8), scale, zp
    qmin, qmax, dt = (0, 255, np.uint8) if kind == "u8" else (-128, 127, np.int8)
    if reduce_range:
        qmin, qmax = (0, 127) if kind == "u8" else (-64, 63)
    lo = np.minimum(w.min(axis=red) if per_channel else np.array(w.min()), 0).astype(np.float32)
    hi = np.maximum(w.max(axis=red) if per_channel else np.array(w.max()), 0).astype(np.float32)
    scale = ((hi - lo) / np.float32(qmax - qmin)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    zp = np.clip(np.round(np.float32(qmin) - lo / scale), qmin, qmax)
    bs = (lambda v: v) if (axis == 1 or not per_channel) else (lambda v: v[:, None])
    q = np.clip(np.round(w / bs(scale)) + bs(zp), qmin, qmax)
    return q.astype(dt), scale, zp.astype(dt)


def weight_kind(i, args, default):
    k = args.weight_type or default
    if k == "mixed":
        k = ["s8sym", "u8", "s8asym"][i % 3]
    elif k == "s8":
        k = "s8sym"
    pc = args.per_channel if args.per_channel is not None else "1"
    per_channel = (i % 2 == 0) if pc == "mixed" else pc == "1"
    return k, per_channel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("in_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--form", required=True, choices=FORMS)
    ap.add_argument("--weight_type", choices=["s8", "u8", "s8asym", "mixed"])
    ap.add_argument("--per_channel", choices=["0", "1", "mixed"])
    ap.add_argument("--reduce_range", type=int, default=1,
                    help="7-bit weights (default 1, as ORT's quantizer advises without VNNI: its AVX2 u8*s8 "
                         "kernels sum pairs in 16 bits and saturate on full-range s8 weights)")
    ap.add_argument("--calib_dir")
    ap.add_argument("--no_ref", action="store_true")
    args = ap.parse_args()
    form = args.form
    src_model = os.path.join(args.in_dir, "model.onnx")
    calib_dir = args.calib_dir or os.path.join(args.in_dir, "inputs")
    m = onnx.load(src_model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)

    # Linear MatMuls and their bias Adds.
    linear = []  # (matmul node, weight name, bias name or None, add node or None)
    for n in g.node:
        if n.op_type != "MatMul" or n.input[1] not in inits or len(inits[n.input[1]].dims) != 2:
            continue
        add, bias = None, None
        cs = consumers.get(n.output[0], [])
        if len(cs) == 1 and cs[0].op_type == "Add":
            other = [t for t in cs[0].input if t != n.output[0]]
            if len(other) == 1 and other[0] in inits and len(inits[other[0]].dims) == 1:
                add, bias = cs[0], other[0]
        linear.append((n, n.input[1], bias, add))
    attn = [n for n in g.node if n.op_type == "MatMul" and n.input[1] not in inits]
    meta = {"generator": "scripts/make_qoperator.py", "source": os.path.relpath(src_model, os.getcwd()),
            "form": form, "weights": {}, "activations": {}}

    # ---- qgemm: MatMul + Add -> Reshape / Gemm / Reshape first.
    gemm_of = {}
    if form == "qgemm":
        nodes = []
        drop = set()
        for (mm, w, b, add) in linear:
            drop.add(id(mm))
            if add is not None:
                drop.add(id(add))
        lin_by_mm = {id(mm): (mm, w, b, add) for (mm, w, b, add) in linear}
        new_inits = []
        for n in g.node:
            if id(n) in lin_by_mm:
                mm, w, b, add = lin_by_mm[id(n)]
                x, y = mm.input[0], (add.output[0] if add is not None else mm.output[0])
                W = numpy_helper.to_array(inits[w]).astype(np.float32)
                K, N = W.shape
                base = mm.name.replace("/MatMul", "") or w
                bt = w + "_gemmB"
                new_inits.append(numpy_helper.from_array((2 * W).T.copy(), bt))
                k_shape = base + "/k_shape"
                new_inits.append(numpy_helper.from_array(np.array([-1, K], np.int64), k_shape))
                new_inits.append(numpy_helper.from_array(np.array([N], np.int64), base + "/n_dim"))
                new_inits.append(numpy_helper.from_array(np.array([0], np.int64), base + "/zero"))
                new_inits.append(numpy_helper.from_array(np.array([-1], np.int64), base + "/minus1"))
                x2, y2 = base + "/x2d", base + "/y2d"
                gin = [x2, bt] + ([b] if b else [])
                nodes += [
                    helper.make_node("Reshape", [x, k_shape], [x2], name=base + "/Reshape_in"),
                    helper.make_node("Gemm", gin, [y2], name=base + "/Gemm", transB=1, alpha=0.5),
                    helper.make_node("Shape", [x], [base + "/xshape"], name=base + "/Shape"),
                    helper.make_node("Slice", [base + "/xshape", base + "/zero", base + "/minus1"],
                                     [base + "/lead"], name=base + "/Slice"),
                    helper.make_node("Concat", [base + "/lead", base + "/n_dim"], [base + "/yshape"],
                                     name=base + "/Concat", axis=0),
                    helper.make_node("Reshape", [y2, base + "/yshape"], [y], name=base + "/Reshape_out")]
                gemm_of[base + "/Gemm"] = (w, b, x2, y2, "ffn2" in base)
            elif id(n) in drop:
                continue
            else:
                nodes.append(n)
        del g.node[:]
        g.node.extend(nodes)
        g.initializer.extend(new_inits)
        inits = {i.name: i for i in g.initializer}
        onnx.checker.check_model(m)

    # ---- calibration (static forms): MatMul / Gemm inputs and outputs.
    ranges = {}
    static = form in ("qlinearmatmul", "qgemm")
    if static:
        if form == "qlinearmatmul":
            acts = []
            for n in g.node:
                if n.op_type == "MatMul":
                    for t in list(n.input) + [n.output[0]]:
                        if t not in inits and t not in acts:
                            acts.append(t)
        else:
            acts = []
            for v in gemm_of.values():
                acts += [v[2], v[3]]
        cal = onnx.ModelProto()
        cal.CopyFrom(m)
        for i, t in enumerate(acts):
            cal.graph.node.append(helper.make_node("Identity", [t], [f"calib_{i}"], name=f"calib_{i}"))
            cal.graph.output.append(helper.make_tensor_value_info(f"calib_{i}", TensorProto.FLOAT, None))
        with tempfile.TemporaryDirectory() as tmp:
            p = os.path.join(tmp, "calib.onnx")
            onnx.save(cal, p)
            od = os.path.join(tmp, "out")
            os.makedirs(od)
            run_ort(p, calib_dir, od)
            for i, t in enumerate(acts):
                v = np.load(os.path.join(od, f"calib_{i}.npy"))
                ranges[t] = (float(v.min()), float(v.max()))

    new_inits = []

    def add_init(arr, name):
        new_inits.append(numpy_helper.from_array(arr, name))
        return name

    act_q = {}  # activation -> (quantized name, scale name, zp name)
    pre_nodes = {}  # tensor -> QuantizeLinear node to place after its producer

    def quantize_act(t):
        if t not in act_q:
            s, zp = qparams(ranges[t][0], ranges[t][1], False, 0, 255)
            sn = add_init(np.array(s, np.float32), t + "_scale")
            zn = add_init(np.array(zp, np.uint8), t + "_zero_point")
            meta["activations"][t] = {"min": ranges[t][0], "max": ranges[t][1], "scale": float(s), "zero_point": int(zp)}
            act_q[t] = (t + "_quantized", sn, zn)
            pre_nodes[t] = helper.make_node("QuantizeLinear", [t, sn, zn], [t + "_quantized"], name=t + "_QuantizeLinear")
        return act_q[t]

    def quantize_w(i, w, default_kind, axis=1, arr=None):
        W = numpy_helper.to_array(inits[w]).astype(np.float32) if arr is None else arr
        kind, pc = weight_kind(i, args, default_kind)
        q, s, zp = quant_weight(W, kind, pc, axis, args.reduce_range)
        meta["weights"][w] = {"kind": kind, "per_channel": pc, "reduce_range": args.reduce_range, "shape": list(W.shape),
                              "zero_point_range": [int(zp.min()), int(zp.max())]}
        return (add_init(q, w + "_quantized"), add_init(s, w + "_scale"), add_init(zp, w + "_zero_point"), kind)

    # Activation quantization decided up front: a QuantizeLinear goes right after its producer.
    out_q = set()  # outputs written quantized by the op itself (no QuantizeLinear)
    if form == "qlinearmatmul":
        for n in g.node:
            if n.op_type == "MatMul":
                for k, t in enumerate(n.input):
                    if not (k == 1 and t in inits):
                        quantize_act(t)
                quantize_act(n.output[0])
                out_q.add(n.output[0])
    elif form == "qgemm":
        for (w, b, x2, y2, float_out) in gemm_of.values():
            quantize_act(x2)
            if not float_out:
                quantize_act(y2)
                out_q.add(y2)
    for t in out_q:
        pre_nodes[t] = None

    nodes = []
    replaced = set()
    lin_by_mm = {id(mm): k for k, (mm, w, b, add) in enumerate(linear)}
    add_ids = {id(add): k for k, (mm, w, b, add) in enumerate(linear) if add is not None}
    dyn = {}  # x -> DQL outputs

    def dql(x):
        if x not in dyn:
            dyn[x] = (x + "_quantized", x + "_scale", x + "_zero_point")
            nodes.append(helper.make_node("DynamicQuantizeLinear", [x], list(dyn[x]), name=x + "_QuantizeLinear"))
        return dyn[x]

    for n in list(g.node):
        if form == "qlinearmatmul" and n.op_type == "MatMul":
            y = n.output[0]
            ins = []
            for k, t in enumerate(n.input):
                if k == 1 and t in inits:
                    qn, sn, zn, _ = quantize_w(lin_by_mm[id(n)], t, "s8")
                    ins += [qn, sn, zn]
                else:
                    ins += list(quantize_act(t))
            _, ys, yz = quantize_act(y)
            nm = n.name + "_quant"
            nodes += [helper.make_node("QLinearMatMul", ins + [ys, yz], [y + "_quantized"], name=nm),
                      helper.make_node("DequantizeLinear", [y + "_quantized", ys, yz], [y], name=y + "_DequantizeLinear")]
        elif form == "qgemm" and n.op_type == "Gemm":
            w, b, x2, y2, float_out = gemm_of[n.name]
            i = sorted(gemm_of).index(n.name)
            B = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)  # [N, K]
            qn, sn, zn, _ = quantize_w(i, n.input[1], "s8", axis=0, arr=B)
            xq, xs, xz = quantize_act(x2)
            ins = [xq, xs, xz, qn, sn, zn]
            alpha = 0.5
            if b:
                bias = numpy_helper.to_array(inits[b]).astype(np.float32)
                ws = numpy_helper.to_array([i_ for i_ in new_inits if i_.name == sn][0])
                cs = np.float32(alpha) * np.float32(meta["activations"][x2]["scale"]) * ws
                ins.append(add_init(np.round(bias / cs).astype(np.int32), b + "_quantized"))
            else:
                ins.append("")
            if float_out:
                nodes.append(helper.make_node("QGemm", ins, [y2], name=n.name + "_quant", domain=MS,
                                              transB=1, alpha=alpha))
            else:
                _, ys, yz = quantize_act(y2)
                nodes += [helper.make_node("QGemm", ins + [ys, yz], [y2 + "_quantized"], name=n.name + "_quant",
                                           domain=MS, transB=1, alpha=alpha),
                          helper.make_node("DequantizeLinear", [y2 + "_quantized", ys, yz], [y2],
                                           name=y2 + "_DequantizeLinear")]
        elif form in ("matmulinteger_zp", "dynamicquantizematmul", "matmulintegertofloat") and id(n) in lin_by_mm:
            k = lin_by_mm[id(n)]
            mm, w, b, add = linear[k]
            x = mm.input[0]
            y = add.output[0] if (add is not None and form != "matmulinteger_zp") else mm.output[0]
            nm = mm.name + "_quant"
            if form == "matmulinteger_zp":
                qn, sn, zn, _ = quantize_w(k, w, "mixed")
                xq, xs, xz = dql(x)
                nodes += [
                    helper.make_node("MatMulInteger", [xq, qn, xz, zn], [y + "_quantized"], name=nm),
                    helper.make_node("Cast", [y + "_quantized"], [y + "_quantized_cast_output"], name=nm + "_output_cast",
                                     to=TensorProto.FLOAT),
                    helper.make_node("Mul", [xs, sn], [nm + "_scales_mul:0"], name=nm + "_scales_mul"),
                    helper.make_node("Mul", [y + "_quantized_cast_output", nm + "_scales_mul:0"], [y],
                                     name=nm + "_output_scale_mul")]
            else:
                qn, sn, zn, kind = quantize_w(k, w, "mixed")
                zpi = "" if kind == "s8sym" else zn  # symmetric weights: the optional zero point left out
                if form == "dynamicquantizematmul":
                    nodes.append(helper.make_node("DynamicQuantizeMatMul", [x, qn, sn, zpi, b or ""], [y],
                                                  name=nm, domain=MS))
                else:
                    xq, xs, xz = dql(x)
                    nodes.append(helper.make_node("MatMulIntegerToFloat", [xq, qn, xs, sn, xz, zpi, b or ""], [y],
                                                  name=nm, domain=MS))
                if add is not None:
                    replaced.add(id(add))
        elif id(n) in replaced:
            pass
        else:
            nodes.append(n)
        for o in n.output:
            if o in pre_nodes and pre_nodes[o] is not None:
                nodes.append(pre_nodes[o])
                pre_nodes[o] = None
    # QuantizeLinear of graph inputs / initializers (none in these models) would go first.
    missing = [t for t, v in pre_nodes.items() if v is not None]
    assert not missing, f"activations without a producer: {missing}"
    # Re-sort topologically (QuantizeLinear nodes sit after their producers already; the
    # DynamicQuantizeLinear ones were appended at first use).
    used = {t for n in nodes for t in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + [i for i in new_inits if i.name in used])
    del g.node[:]
    g.node.extend(nodes)
    if True:  # MatMulInteger / QLinearMatMul / DynamicQuantizeLinear need opset >= 10 / 11
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx") and o.version < 11:
                o.version = 11
    if form in ("qgemm", "dynamicquantizematmul", "matmulintegertofloat"):
        m.opset_import.append(helper.make_opsetid(MS, 1))
    else:
        onnx.checker.check_model(m)
    os.makedirs(args.out_dir, exist_ok=True)
    out_model = os.path.join(args.out_dir, "model.onnx")
    onnx.save(m, out_model)

    if not args.no_ref:
        d = os.path.join(args.out_dir, "inputs")
        os.makedirs(d, exist_ok=True)
        for f in sorted(os.listdir(os.path.join(args.in_dir, "inputs"))):
            if f.endswith(".npy"):
                shutil.copy(os.path.join(args.in_dir, "inputs", f), os.path.join(d, f))
        ref = os.path.join(args.out_dir, "ref")
        os.makedirs(ref, exist_ok=True)
        run_ort(out_model, d, ref)
        fref = os.path.join(args.out_dir, "ref_fp32")
        os.makedirs(fref, exist_ok=True)
        meta["ort_int8_vs_fp32"] = {}
        for f in sorted(os.listdir(ref)):
            src = os.path.join(args.in_dir, "ref", f)
            if not os.path.exists(src):
                continue
            shutil.copy(src, os.path.join(fref, f))
            a, b = np.load(os.path.join(ref, f)).astype(np.float64), np.load(src).astype(np.float64)
            a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
            cos = (a2 * b2).sum(1) / np.maximum(np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1), 1e-30)
            meta["ort_int8_vs_fp32"][f[:-4]] = {"max_abs": float(np.abs(a - b).max()), "min_cosine": float(cos.min()),
                                                "finite": bool(np.isfinite(a).all())}
    with open(os.path.join(args.out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"make_qoperator: {form}: {len(meta['weights'])} weights, {len(meta['activations'])} activations -> "
          f"{out_model}; ORT int8 vs fp32: {meta.get('ort_int8_vs_fp32')}")


if __name__ == "__main__":
    main()
