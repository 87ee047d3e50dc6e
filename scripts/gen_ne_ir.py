#!/usr/bin/python3
"""Emit Neural-Engine-dialect IR directories (conf.yaml + model.bin) for tiny BERT-family models.

This is our own emitter: it writes the IR *dialect* that Intel's deprecated Neural Engine (NE)
Python compiler produces for a transformers-style ONNX export (same op types, op order,
attribute names/values/order, tensor names with the ":0" suffix, s32 inputs, weight layouts,
`location: [offset, size]` blob), so that our C++ lowering of that dialect can be tested without
NE. It never imports NE; names come from the ONNX export that scripts/gen_hf.py writes.

Usage (always Debian's python):
  /usr/bin/python3 scripts/gen_ne_ir.py --family bert --opset 14 --precision fp32 --out DIR
  /usr/bin/python3 scripts/gen_ne_ir.py --family roberta --precision dynamic_int8 \
        --from_onnx GEN_HF_DIR --out DIR

  --family      bert | minilm | distilbert | roberta   (gen_hf.py --head base exports)
  --precision   fp32 | bf16 | dynamic_int8: NE's compile() (plain / autocast) of the fp32 ONNX
                sparse_int8_transposed: NE's sparse example flow, compile(static QDQ int8 ONNX)
                then Graph.transpose_mode_int8(); needs a scripts/make_qdq.py output (opset >= 13)
                as --from_onnx, or generates one (gen_hf --prune 1x4 --sparsity S, make_qdq static)
  --from_onnx   reuse a gen_hf.py output dir (model.onnx, inputs/*.npy); otherwise gen_hf.py is
                run into DIR/src with --hidden 128 --heads 2 --ffn 256 --layers 2 (NE's compiler
                derives the head count from a hidden->heads table {1024:16, 768:12, 384:12,
                256:4, 128:2, 32:2}; this emitter uses the same table so that the IR matches).
  --opset       passed to gen_hf.py (11 and 14 only differ in torch's onnx::MatMul_NNN names).

sparse_int8_transposed (static int8, u8 activations with constant <t>_min/<t>_max [1] tensors from
the QDQ scale/zero point: max = (255 - zp) * s, min = max - 255 * s; weights <W>_quantized:0 s8 with
per-channel min = -128 s, max = 127 s; bias' = bias - s_x * zp_x * s_w * sum_k Wq; then transposed:
InnerProduct src0 = s8 weight [N, K], src1 = activation, Reorder ops before the first Quantize and
before the last LayerNorm, LayerNorm transpose_mode '1, 0', Matmul perms 2,0,3,1 / 2,0,1,3 /
1,3,0,2). Its ref/ is a float64 evaluation of the dequantized fp32 model and ref_ort/ is ONNX
Runtime's output of the QDQ model.

Writes DIR/conf.yaml, DIR/model.bin, DIR/inputs/<name>.npy (int32, NE inputs are s32),
DIR/ref/<output name>.npy: a float64 numpy evaluation of exactly what the IR describes
(weights as stored in model.bin, i.e. bf16-truncated / int8-dequantized; GELU written by NE as
gelu_tanh is evaluated as tanh-GELU; PaddingSequence mask = -10000 on padded keys; dynamic int8
also fake-quantizes activations per token (s8, symmetric) where the IR has Quantize/per_token
outputs), plus DIR/ref_torch/*.npy copied from gen_hf (the original torch fp32 model, erf GELU).

Dialect facts reproduced here (observed on NE-compiled tiny models):
  * MatMul weights stay [K,N] with src1_perm 1,0; the Gemm pooler weight stays torch's [N,K]
    with src1_perm 0,1.
  * bf16: InnerProduct weights and biases are stored as bf16 = upper 16 bits of the fp32
    pattern (truncation, no rounding); embeddings and LayerNorm params stay fp32.
  * dynamic_int8: per-output-channel symmetric s8 weights, scale = max(|min|,|max|)/127 over K
    (0 if the channel is all zero), q = round(W/scale); tensors <w>_quant (s8), <w>_min,
    <w>_scale (fp32, [N]); activations by Quantize ops (s8, per_token) named <tensor>_quant0.
The blob is the concatenation of constants in order of first use by the ops (no padding).

The IR model, the precision passes and the float64 reference are in gen_ne_ir_passes.py.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import OrderedDict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NE_HEADS = {1024: 16, 768: 12, 384: 12, 256: 4, 128: 2, 32: 2}
FAMILIES = ("bert", "minilm", "distilbert", "roberta")

sys.path.insert(0, HERE)
from gen_ne_ir_passes import (IR, reference, to_bf16, to_dynamic_int8, to_static_int8,  # noqa: E402
                              transpose_mode_int8)


# ----------------------------------------------------------------------------- ONNX reading
class OnnxSrc:
    def __init__(self, path):
        import onnx
        from onnx import numpy_helper
        m = onnx.load(path)
        self.g = m.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in self.g.initializer}
        self.nodes = {n.name: n for n in self.g.node}
        for n in self.g.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.init.setdefault(n.output[0], numpy_helper.to_array(a.t))
        self.outputs = [o.name for o in self.g.output]
        self.inputs = [i.name for i in self.g.input]
        # static QDQ models (scripts/make_qdq.py): W -> W_quantized/W_scale/W_zero_point; expose a
        # dequantized float W under the original name so that the fp32 builder can run unchanged
        self.qdq = False
        for k in list(self.init):
            if k.endswith("_quantized"):
                base = k[:-len("_quantized")]
                q, sc = self.init[k].astype(np.float32), self.init[base + "_scale"].astype(np.float32)
                self.init.setdefault(base, q * sc)
                self.qdq = True
        self.mm_of_weight = {}
        self.f64 = {}

    def node(self, name):
        if name not in self.nodes:
            raise SystemExit("gen_ne_ir: ONNX node %r not found (unexpected export layout)" % name)
        return self.nodes[name]

    def weight_of(self, node_name, idx=1):
        n = self.node(node_name)
        for i in ([idx] + list(range(len(n.input)))):
            t = self.strip(n.input[i])
            if t in self.init:
                self.mm_of_weight[t + ":0"] = node_name
                return t, self.init[t]
        raise SystemExit("no initializer input on " + node_name)

    @staticmethod
    def strip(t):
        return t[:-len("_DequantizeLinear_Output")] if t.endswith("_DequantizeLinear_Output") else t

    def act_of(self, node_name, idx):
        """ONNX name of the (quantized) activation feeding input idx of a MatMul."""
        return self.strip(self.node(node_name).input[idx])

    def minmax(self, t, dtype=None):
        """NE's scale/zero-point -> [min, max]: max = (qmax - zp) * scale, min = max - 255 * scale."""
        sc = np.asarray(self.init[t + "_scale"], dtype=np.float32)
        zp = np.asarray(self.init[t + "_zero_point"])
        qmax = 127 if zp.dtype == np.int8 else 255
        if sc.ndim == 0:  # per-tensor activation: NE's arithmetic ends up in float64
            mx = (qmax - float(zp)) * float(sc)
            mn = mx - 255 * float(sc)
            self.f64[t] = (np.array([mn]), np.array([mx]))
            return np.array([mn], np.float32), np.array([mx], np.float32)
        mx = (np.asarray(qmax - zp.astype(np.int32), dtype=np.float32) * sc).astype(np.float32)
        mn = (mx - np.float32(255) * sc).astype(np.float32)
        return mn, mx

    def scalar(self, name):
        return float(np.asarray(self.init[name]).reshape(-1)[0])


# ----------------------------------------------------------------------------- fp32 graph
def build_fp32(src, family, nlayers_hint=None):
    ir = IR()
    hf = family in ("bert", "minilm")
    fam_key = "bert" if hf else family
    P = "/model/" + fam_key
    W = "model." + fam_key + "."
    T = lambda n: n + ":0"  # noqa: E731

    word = src.init[W + "embeddings.word_embeddings.weight"]
    H = int(word.shape[1])
    heads = NE_HEADS.get(H)
    if heads is None:
        raise SystemExit("hidden %d not in NE's hidden->heads table %s" % (H, NE_HEADS))
    hd = H // heads
    # layer count
    L = 0
    layer_tag = "transformer/layer" if family == "distilbert" else "encoder/layer"
    while ("%s/%s.%d/" % (P, layer_tag, L)) and any(k.startswith("%s/%s.%d/" % (P, layer_tag, L)) for k in src.nodes):
        L += 1
    eps_node = "%s/embeddings/LayerNorm/Constant_1" % P
    eps = float(np.float32(src.scalar(src.node(eps_node).output[0])))
    qk_scale = float(1.0 / np.sqrt(hd))

    # inputs
    ir.inputs.append(("input_ids:0", "s32", [-1, -1]))
    if hf:
        ir.inputs.append(("token_type_ids:0", "s32", [-1, -1]))
    ir.inputs.append(("attention_mask:0", "s32", [-1, -1]))

    def c(name, arr=None, dtype="fp32"):
        if arr is None:
            arr = src.init[name]
        if arr.dtype == np.int64:
            arr = arr.astype(np.int32)
            dtype = "s32"
        ir.const(T(name), np.ascontiguousarray(arr), dtype)
        return T(name)

    # ---------------- mask
    if family == "distilbert":
        mask_name, mask = "padding_sequence", "padding_sequence:0"
        ir.add(mask_name, "PaddingSequence", ["attention_mask:0"], [mask],
               [("dst_shape", "-1,12,0,-1"), ("dims", 1)])  # NE hard-codes 12 heads here
    else:
        mask_name = P + "/Mul"
        mask = T(P + "/Mul_output_0")
        src.node(mask_name)
        ir.add(mask_name, "PaddingSequence", ["attention_mask:0"], [mask],
               [("dst_shape", "-1,%d,0,-1" % heads), ("dims", 1)])
    ir.mask_op = mask_name

    gattr = [("axis", 0), ("batch_dims", 0), ("append_op", "binary_add"),
             ("reshape", "-1,-1,%d" % H), ("reshape_dims", "0,1"), ("mul", "1,2")]
    # ---------------- embeddings
    if family == "roberta":
        slice_in = src.node(P + "/embeddings/Slice").input[0]
        tt = T("token_type_embeddings/Expand_21")
        ir.add("token_type_embeddings/Expand_21", "TokenTypeIds", ["input_ids:0", c(slice_in)], [tt],
               [("mode", "roberta")])
        ir.add("token_type_embeddings/reshape", "Reshape", [tt], ["token_type_embeddings/reshape:0"],
               [("dst_shape", -1)])
        ir.add("position_embeddings/Add_40", "PositionIds", ["input_ids:0"], ["position_embeddings/Add_40:0"],
               [("mode", "roberta")])
        ir.add("position_embeddings/reshape", "Reshape", ["position_embeddings/Add_40:0"],
               ["position_embeddings/reshape:0"], [("dst_shape", -1)])
        ir.add("word_embeddings/reshape", "Reshape", ["input_ids:0"], ["word_embeddings/reshape:0"],
               [("dst_shape", -1)])
        ttg = P + "/embeddings/token_type_embeddings/Gather"
        ir.add(ttg, "Gather", ["token_type_embeddings/reshape:0",
                               c(W + "embeddings.token_type_embeddings.weight"), "input_ids:0"], [T(ttg)])
        pg = P + "/embeddings/position_embeddings/Gather"
        ir.add(pg, "Gather", ["position_embeddings/reshape:0", c(W + "embeddings.position_embeddings.weight"),
                              T(ttg), "input_ids:0"], [T(pg)], gattr)
        ir.add(P + "/embeddings/word_embeddings/Gather", "Gather",
               ["word_embeddings/reshape:0", c(W + "embeddings.word_embeddings.weight"), T(pg), "input_ids:0"],
               ["embeddings_add/reshape_2d:0"], gattr)
    else:
        ir.add("position_embeddings/after/reshape", "Reshape",
               [c(W + "embeddings.position_embeddings.weight"), "input_ids:0"],
               ["position_embeddings/after/reshape:0"], [("dst_shape", "1,-1,%d" % H), ("dims", 1)])
        pg = P + "/embeddings/position_embeddings/Gather"
        ir.add(pg, "Reshape", ["position_embeddings/after/reshape:0"], [T(pg + "_output_0")],
               [("dst_shape", "1,-1")])
        ir.add("word_embeddings/reshape", "Reshape", ["input_ids:0"], ["word_embeddings/reshape:0"],
               [("dst_shape", -1)])
        if hf:
            ir.add("token_type_embeddings/reshape", "Reshape", ["token_type_ids:0"],
                   ["token_type_embeddings/reshape:0"], [("dst_shape", -1)])
            ttg = P + "/embeddings/token_type_embeddings/Gather"
            ir.add(ttg, "Gather", ["token_type_embeddings/reshape:0",
                                   c(W + "embeddings.token_type_embeddings.weight"), T(pg + "_output_0"),
                                   "token_type_ids:0"], [T(ttg)], gattr)
            ir.add(P + "/embeddings/word_embeddings/Gather", "Gather",
                   ["word_embeddings/reshape:0", c(W + "embeddings.word_embeddings.weight"), T(ttg),
                    "token_type_ids:0"], ["embeddings_add/reshape_2d:0"], gattr)
        else:
            ir.add(P + "/embeddings/word_embeddings/Gather", "Gather",
                   ["word_embeddings/reshape:0", c(W + "embeddings.word_embeddings.weight"),
                    T(pg + "_output_0"), "input_ids:0"], ["embeddings_add/reshape_2d:0"], gattr)
    ln = P + "/embeddings/LayerNorm/Add_1"
    x = T(ln + "_output_0")
    ir.add(ln, "LayerNorm", ["embeddings_add/reshape_2d:0", c(W + "embeddings.LayerNorm.weight"),
                             c(W + "embeddings.LayerNorm.bias")], [x], [("epsilon", eps)])
    ir.emb_ln = ln

    has_pooler = (W + "pooler.dense.weight") in src.init
    outs = [o for o in src.outputs if o != "last_hidden_state"]
    ir.attn_mm, ir.layer_ops = {}, []
    ir.qkv = []  # per layer: ((q,k,v op names), qk matmul, softmax, av matmul)
    ip_perm = [("src1_perm", "1,0")]
    rs_attr = [("reshape", "-1,-1,%d,%d" % (heads, hd)), ("reshape_dims", "0")]
    for i in range(L):
        last = i == L - 1
        if family == "distilbert":
            B = "%s/transformer/layer.%d" % (P, i)
            A = B + "/attention"
            wp = W + "transformer.layer.%d." % i
            lin = lambda nm: src.weight_of("%s/%s/MatMul" % (A, nm))[0]  # noqa: E731
            qn, kn, vn = A + "/q_lin/Add", A + "/k_lin/Add", A + "/v_lin/Add"
            qo, ko, vo = T(A + "/Reshape_output_0"), T(A + "/Reshape_1_output_0"), T(A + "/Reshape_2_output_0")
            spec = [(qn, "q_lin", qo), (kn, "k_lin", ko), (vn, "v_lin", vo)]
            for nm, sub, o in spec:
                ir.add(nm, "InnerProduct", [x, c(lin(sub)), c(wp + "attention.%s.bias" % sub), "input_ids:0"],
                       [o], ip_perm + rs_attr)
            qkn, smn, avn = A + "/Where", A + "/Softmax", A + "/Transpose_3"
            qko, smo, ctx = T(A + "/Where_output_0"), T(A + "/Softmax_output_0"), T(A + "/Reshape_4_output_0")
            on, oo = B + "/Add", T(B + "/Add_output_0")
            wo, bo = lin("out_lin"), wp + "attention.out_lin.bias"
            ln1, ln1w = B + "/sa_layer_norm/Add_1", wp + "sa_layer_norm."
            f1n, f1w = B + "/ffn/activation/Mul_1", src.weight_of(B + "/ffn/lin1/MatMul")[0]
            f1b = wp + "ffn.lin1.bias"
            f2n, f2w = B + "/Add_1", src.weight_of(B + "/ffn/lin2/MatMul")[0]
            f2b, f2o = wp + "ffn.lin2.bias", T(B + "/Add_1_output_0")
            ln2, ln2w = B + "/output_layer_norm/Add_1", wp + "output_layer_norm."
        else:
            B = "%s/encoder/layer.%d" % (P, i)
            A = B + "/attention/self"
            wp = W + "encoder.layer.%d." % i
            qn, kn, vn = A + "/query/Add", A + "/key/Add", A + "/value/Add"
            ko, vo, qo = T(A + "/Reshape_output_0"), T(A + "/Reshape_1_output_0"), T(A + "/Reshape_2_output_0")
            spec = [(kn, "key", ko), (vn, "value", vo), (qn, "query", qo)]
            for nm, sub, o in spec:
                ir.add(nm, "InnerProduct",
                       [x, c(src.weight_of("%s/%s/MatMul" % (A, sub))[0]),
                        c(wp + "attention.self.%s.bias" % sub), "input_ids:0"], [o], ip_perm + rs_attr)
            qkn, smn, avn = A + "/Add", A + "/Softmax", A + "/Transpose_3"
            qko, smo, ctx = T(A + "/Add_output_0"), T(A + "/Softmax_output_0"), T(A + "/Reshape_3_output_0")
            on, oo = B + "/attention/output/Add", T(B + "/attention/output/Add_output_0")
            wo = src.weight_of(B + "/attention/output/dense/MatMul")[0]
            bo = wp + "attention.output.dense.bias"
            ln1, ln1w = B + "/attention/output/LayerNorm/Add_1", wp + "attention.output.LayerNorm."
            f1n = B + "/intermediate/intermediate_act_fn/Mul_1"
            f1w, f1b = src.weight_of(B + "/intermediate/dense/MatMul")[0], wp + "intermediate.dense.bias"
            f2n, f2w = B + "/output/Add", src.weight_of(B + "/output/dense/MatMul")[0]
            f2b, f2o = wp + "output.dense.bias", T(B + "/output/Add_output_0")
            ln2, ln2w = B + "/output/LayerNorm/Add_1", wp + "output.LayerNorm."
        ir.add(qkn, "Matmul", [qo, ko, mask], [qko],
               [("src0_perm", "0,2,1,3"), ("src1_perm", "0,2,3,1"), ("output_scale", qk_scale),
                ("format_any", False), ("append_op", "binary_add")])
        ir.add(smn, "Softmax", [qko], [smo])
        ir.add(avn, "Matmul", [smo, vo], [ctx],
               [("src1_perm", "0,2,1,3"), ("dst_perm", "0,2,1,3"), ("reshape", "-1,%d" % H)])
        ir.qkv.append(((qn, kn, vn), qkn, smn, avn))
        ir.attn_mm[qkn] = A + "/MatMul"
        ir.attn_mm[avn] = A + "/MatMul_1"
        ir.layer_ops.append(dict(q=qn, k=kn, v=vn, qk=qkn, sm=smn, av=avn, o=on, ln1=ln1, f1=f1n, f2=f2n, ln2=ln2))
        ir.add(on, "InnerProduct", [ctx, c(wo), c(bo), x], [oo], ip_perm + [("append_op", "sum")])
        l1o = T(ln1 + "_output_0")
        ir.add(ln1, "LayerNorm", [oo, c(ln1w + "weight"), c(ln1w + "bias")], [l1o], [("epsilon", eps)])
        f1o = T(f1n + "_output_0")
        ir.add(f1n, "InnerProduct", [l1o, c(f1w), c(f1b)], [f1o], ip_perm + [("append_op", "gelu_tanh")])
        ir.add(f2n, "InnerProduct", [f1o, c(f2w), c(f2b), l1o], [f2o], ip_perm + [("append_op", "sum")])
        if last:
            l2o = T(ln2) if has_pooler else "last_hidden_state:0"
        else:
            l2o = T(ln2 + "_output_0")
        ir.add(ln2, "LayerNorm", [f2o, c(ln2w + "weight"), c(ln2w + "bias")], [l2o], [("epsilon", eps)])
        x = l2o
    ir.outputs = []
    if has_pooler:
        ir.add("last_layer_reshape", "Reshape", [x, "input_ids:0"], ["last_layer_reshape:0"],
               [("dst_shape", "-1,-1,%d" % H), ("dims", "0")])
        ir.add("last_layer_strided_slice", "StridedSlice", ["last_layer_reshape:0"],
               ["last_layer_strided_slice:0"],
               [("begin_mask", 5), ("ellipsis_mask", 0), ("end_mask", 5), ("new_axis_mask", 0),
                ("shrink_axis_mask", 0), ("begin", "0,0,0"), ("end", "0,1,0"), ("strides", "1,1,1")])
        pgn = P + "/pooler/Gather"
        ir.add(pgn, "Reshape", ["last_layer_strided_slice:0"], [T(pgn + "_output_0")],
               [("dst_shape", "-1,%d" % H)])
        pout = T(outs[0])
        ir.add(P + "/pooler/activation/Tanh", "InnerProduct",
               [T(pgn + "_output_0"), c(W + "pooler.dense.weight"), c(W + "pooler.dense.bias")], [pout],
               [("src1_perm", "0,1"), ("append_op", "tanh")])
        ir.outputs = [pout]
    else:
        ir.outputs = [x]
    ir.H, ir.heads, ir.hd, ir.eps, ir.family, ir.L = H, heads, hd, eps, family, L
    ir.src = src
    return ir


# ----------------------------------------------------------------------------- writing
def write_ir(ir, out):
    os.makedirs(out, exist_ok=True)
    blob = bytearray()
    loc = OrderedDict()
    for op in ir.ops:
        for t in op.inputs:
            if t in ir.consts and t not in loc:
                arr, dt = ir.consts[t]
                b = np.ascontiguousarray(arr).tobytes()
                loc[t] = [len(blob), len(b)]
                blob.extend(b)
    with open(os.path.join(out, "model.bin"), "wb") as f:
        f.write(bytes(blob))
    lines = ["model:", "  name: model", "  operator:", "    input_data:", "      type: Input",
             "      output:"]
    for name, dt, shape in ir.inputs:
        lines += ["        %s:" % ykey(name), "          dtype: %s" % dt, "          shape: %s" % yflow(shape)]
    for t, (o, n) in loc.items():
        arr, dt = ir.consts[t]
        lines += ["        %s:" % ykey(t), "          dtype: %s" % dt,
                  "          shape: %s" % yflow(list(arr.shape)), "          location: %s" % yflow([o, n])]
    for op in ir.ops:
        lines += ["    %s:" % ykey(op.name), "      type: %s" % op.type]
        if op.inputs:
            lines.append("      input:")
            lines += ["        %s: {}" % ykey(t) for t in op.inputs]
        if op.outputs:
            lines.append("      output:")
            lines += ["        %s: {}" % ykey(t) for t in op.outputs]
        if op.attr:
            lines.append("      attr:")
            lines += ["        %s: %s" % (k, yval(v)) for k, v in op.attr.items()]
    lines += ["    output_data:", "      type: Output", "      input:"]
    lines += ["        %s: {}" % ykey(t) for t in ir.outputs]
    with open(os.path.join(out, "conf.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return loc


def yval(v):
    import yaml
    s = yaml.safe_dump(v, default_flow_style=True)
    s = s.strip()
    if s.endswith("\n..."):
        s = s[:-4].strip()
    if s.endswith("..."):
        s = s[:-3].strip()
    return s


def ykey(k):
    return yval(k)


def yflow(lst):
    return "[" + ", ".join(str(int(x)) for x in lst) + "]"


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=FAMILIES)
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--precision", default="fp32",
                    choices=("fp32", "bf16", "dynamic_int8", "sparse_int8_transposed"))
    ap.add_argument("--from_onnx", help="gen_hf.py output dir to reuse (model.onnx, inputs/, ref/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sparsity", type=float, default=0.9, help="sparse_int8_transposed: 1x4 block sparsity")
    ap.add_argument("--no_ref", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    srcdir = a.from_onnx
    if not srcdir:
        srcdir = os.path.join(a.out, "src")
        if os.path.exists(srcdir):
            shutil.rmtree(srcdir)
        cmd = [sys.executable, os.path.join(HERE, "gen_hf.py"), "--family", a.family, "--head", "base",
               "--opset", str(a.opset), "--hidden", str(a.hidden), "--heads", str(a.heads),
               "--ffn", str(a.ffn), "--layers", str(a.layers), "--seed", str(a.seed), "--quiet",
               "--out", srcdir]
        if a.precision == "sparse_int8_transposed":
            # NE's sparse kernels want 4x1 blocks of the transposed s8 weight [N, K], i.e. 1x4
            # blocks (1 along K, 4 along N) of our W[K, N]; then a static QDQ model (opset >= 13)
            cmd += ["--prune", "1x4", "--sparsity", str(a.sparsity)]
            subprocess.check_call(cmd)
            fp = srcdir
            srcdir = os.path.join(a.out, "src_qdq")
            if os.path.exists(srcdir):
                shutil.rmtree(srcdir)
            subprocess.check_call([sys.executable, os.path.join(HERE, "make_qdq.py"), "--model",
                                   os.path.join(fp, "model.onnx"), "--out", srcdir])
        else:
            subprocess.check_call(cmd)
    src = OnnxSrc(os.path.join(srcdir, "model.onnx"))
    ir = build_fp32(src, a.family)
    if a.precision == "bf16":
        to_bf16(ir)
    elif a.precision == "dynamic_int8":
        to_dynamic_int8(ir)
    elif a.precision == "sparse_int8_transposed":
        ref_ir = build_fp32(src, a.family)  # QDQ weights dequantized (q * scale), fp32 biases
        to_static_int8(ir)
        transpose_mode_int8(ir)
    write_ir(ir, a.out)
    # inputs (s32)
    ind = os.path.join(a.out, "inputs")
    os.makedirs(ind, exist_ok=True)
    inputs = {}
    for name, _, _ in ir.inputs:
        n = name[:-2]
        arr = np.load(os.path.join(srcdir, "inputs", n + ".npy"))
        inputs[n] = arr
        np.save(os.path.join(ind, n + ".npy"), arr.astype(np.int32))
    if not a.no_ref:
        refd = os.path.join(a.out, "ref")
        os.makedirs(refd, exist_ok=True)
        if a.precision == "sparse_int8_transposed":
            # float64 evaluation of the dequantized model (weights q*scale, activations not
            # fake-quantized); ONNX Runtime's output of the QDQ model is copied to ref_ort/
            res = reference(ref_ir, inputs, "fp32")
            td = os.path.join(srcdir, "ref_ort")
            if os.path.isdir(td):
                os.makedirs(os.path.join(a.out, "ref_ort"), exist_ok=True)
                for f in os.listdir(td):
                    shutil.copy(os.path.join(td, f), os.path.join(a.out, "ref_ort", f))
        else:
            res = reference(ir, inputs, a.precision)
        for k, v in res.items():
            np.save(os.path.join(refd, k + ".npy"), v.astype(np.float32))
        td = os.path.join(srcdir, "ref")
        if os.path.isdir(td):
            os.makedirs(os.path.join(a.out, "ref_torch"), exist_ok=True)
            for f in os.listdir(td):
                shutil.copy(os.path.join(td, f), os.path.join(a.out, "ref_torch", f))
    meta = {"generator": "scripts/gen_ne_ir.py", "family": a.family, "precision": a.precision,
            "source": os.path.abspath(srcdir), "hidden": ir.H, "heads": ir.heads, "layers": ir.L,
            "inputs": [n for n, _, _ in ir.inputs], "outputs": [o[:-2] for o in ir.outputs]}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
