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


# ----------------------------------------------------------------------------- small IR model
class Op:
    def __init__(self, name, type_, inputs, outputs, attr=None):
        self.name, self.type = name, type_
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.attr = OrderedDict(attr or [])


class IR:
    def __init__(self):
        self.ops = []
        self.consts = OrderedDict()  # name -> (np array, dtype string)
        self.inputs = []  # (name, dtype, shape)

    def const(self, name, arr, dtype):
        self.consts[name] = (arr, dtype)
        return name

    def add(self, *a, **k):
        op = Op(*a, **k)
        self.ops.append(op)
        return op

    def find(self, name):
        for i, op in enumerate(self.ops):
            if op.name == name:
                return i
        raise KeyError(name)


def bf16_bits(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return (a.view(np.int32) >> 16).astype(np.uint16)


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def quant_weight(w, perm):
    """Per-output-channel symmetric s8. w is [K,N] (perm '1,0') or [N,K] (perm '0,1')."""
    w = np.asarray(w, dtype=np.float32)
    axis = 0 if perm == "1,0" else -1
    wmin = w.min(axis=axis).astype(np.float32)
    wmax = w.max(axis=axis).astype(np.float32)
    scale = np.maximum(np.fabs(wmin), np.fabs(wmax))
    scale = np.where(scale == 0.0, 0.0, scale / 127.0)
    if perm == "1,0":
        q = np.round(w / scale).astype(np.int8)
    else:
        q = np.round(w.T / scale).astype(np.int8).T
    return np.ascontiguousarray(q), wmin, scale.astype(np.float32)


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


# ----------------------------------------------------------------------------- precision passes
def to_bf16(ir):
    """NE's bf16 autocast dialect."""
    ips = [op for op in ir.ops if op.type == "InnerProduct"]
    # weights + biases of every InnerProduct -> bf16
    for op in ips:
        for t in op.inputs[1:3]:
            arr, dt = ir.consts[t]
            if dt == "fp32":
                ir.consts[t] = (bf16_bits(arr), "bf16")

    def put_before(op, key, val, before):
        items = list(op.attr.items())
        idx = next((i for i, (k, _) in enumerate(items) if k in before), len(items))
        items.insert(idx, (key, val))
        op.attr = OrderedDict(items)

    for op in ir.ops:
        if op.type in ("InnerProduct", "Matmul"):
            put_before(op, "output_dtype", "bf16", ("reshape", "reshape_dims"))
        elif op.type in ("Softmax", "LayerNorm", "StridedSlice"):
            op.attr["output_dtype"] = "bf16"
        elif op.type == "Reshape" and op.name in ("last_layer_reshape",) or op.name.endswith("/pooler/Gather"):
            op.attr["output_dtype"] = "bf16"
    # embeddings LayerNorm: fp32 output + Quantize(bf16)
    i = ir.find(ir.emb_ln)
    ln = ir.ops[i]
    del ln.attr["output_dtype"]
    out = ln.outputs[0]
    ln.outputs[0] = out + "_before_quant"
    ir.ops.insert(i + 1, Op(ir.emb_ln + "_quant", "Quantize", [out + "_before_quant"], [out],
                            [("output_dtype", "bf16")]))
    # pooler: the Reshape output is renamed *_quant, final InnerProduct outputs fp32
    for j, op in enumerate(ir.ops):
        if op.name.endswith("/pooler/Gather"):
            old = op.outputs[0]
            op.outputs[0] = old + "_quant"
            nxt = ir.ops[j + 1]
            nxt.inputs = [op.outputs[0] if t == old else t for t in nxt.inputs]
            nxt.attr["output_dtype"] = "fp32"
    return ir


def to_dynamic_int8(ir):
    """NE's dynamic int8 (per-token activations, per-channel weights) dialect."""
    # 1. q,k,v order (NE's int8 pipeline emits query, key, value) and MHA fusion
    for (qn, kn, vn), qkn, smn, avn in ir.qkv:
        idx = sorted(ir.find(n) for n in (qn, kn, vn))
        ops = {n: ir.ops[ir.find(n)] for n in (qn, kn, vn)}
        for slot, n in zip(idx, (qn, kn, vn)):
            ir.ops[slot] = ops[n]
    mha_src = []
    for (qn, kn, vn), qkn, smn, avn in ir.qkv:
        qk, av = ir.ops[ir.find(qkn)], ir.ops[ir.find(avn)]
        mha_src.append((qk, av))
    # 2. quantize IP / Matmul inputs and weights
    quant_ops = OrderedDict()  # tensor -> Quantize op (inserted before first consumer)
    for op in ir.ops:
        if op.type not in ("InnerProduct", "Matmul"):
            continue
        if op.type == "Matmul":
            continue  # replaced by MultiHeadAttention below
        reshape_ref = []
        ins = list(op.inputs)
        if "reshape_dims" in op.attr:
            reshape_ref = [ins.pop()]
        xq = ins[0]
        if xq not in quant_ops:
            quant_ops[xq] = op.name
        w = ins[1]
        arr, _ = ir.consts.pop(w)
        q, wmin, wscale = quant_weight(arr, op.attr["src1_perm"])
        ir.consts[w + "_quant"] = (q, "s8")
        ir.consts[w + "_min"] = (wmin, "fp32")
        ir.consts[w + "_scale"] = (wscale, "fp32")
        op.inputs = [xq + "_quant", w + "_quant"] + ins[2:] + [xq + "_min", xq + "_scale", w + "_min",
                                                                w + "_scale"] + reshape_ref
    # 3. outputs of IPs feeding quantized consumers become s8 per-token (Quantize fused)
    produced = {op.outputs[0]: op for op in ir.ops}
    mha_inputs = set()
    for qk, av in mha_src:
        mha_inputs.update([qk.inputs[0], qk.inputs[1], av.inputs[1]])
    fused = set()
    for t in list(quant_ops) + sorted(mha_inputs):
        p = produced.get(t)
        if p is not None and p.type == "InnerProduct":
            p.outputs = [t + "_quant", t + "_min", t + "_scale"]
            p.attr["output_dtype"] = "s8"
            p.attr["per_token"] = True
            fused.add(t)
    # 4. MHA
    for (qk, av) in mha_src:
        q, k, v = qk.inputs[0], qk.inputs[1], av.inputs[1]
        ctx = av.outputs[0]
        attr = OrderedDict([(kk, vv) for kk, vv in av.attr.items() if kk != "src1_perm"])
        attr["output_dtype"] = "s8"
        attr["per_token"] = True
        attr["V_perm"] = av.attr["src1_perm"]
        attr["K_perm"] = qk.attr["src1_perm"]
        attr["Q_perm"] = qk.attr["src0_perm"]
        attr["output_scale"] = qk.attr["output_scale"]
        mha = Op(qk.name, "MultiHeadAttention",
                 [q + "_quant", k + "_quant", v + "_quant", qk.inputs[2], q + "_min", q + "_scale",
                  k + "_min", k + "_scale", v + "_min", v + "_scale"],
                 [ctx + "_quant", ctx + "_min", ctx + "_scale"], attr)
        i = ir.find(qk.name)
        ir.ops[i] = mha
        ir.ops.remove(ir.ops[ir.find(av.name)])
        ir.ops = [o for o in ir.ops if not (o.type == "Softmax" and o.inputs[0] == qk.outputs[0])]
        fused.add(ctx)
    # 5. explicit Quantize ops for the remaining (LayerNorm / Reshape outputs)
    for t, consumer in quant_ops.items():
        if t in fused:
            continue
        i = ir.find(consumer)
        ir.ops.insert(i, Op(t + "_quant0", "Quantize", [t], [t + "_quant", t + "_min", t + "_scale"],
                            [("output_dtype", "s8"), ("per_token", True)]))
    # 6. PaddingSequence for MHA
    ir.ops[ir.find(ir.mask_op)].attr = OrderedDict([("dst_shape", "-1,-1")])
    return ir


def to_static_int8(ir):
    """NE's compile() of a static QDQ int8 ONNX (ONNX Runtime QDQ form, u8 activations, per-channel s8
    weights): encoder MatMuls -> s8-weight InnerProducts with constant min/max tensors."""
    src = ir.src
    if not src.qdq:
        raise SystemExit("sparse_int8_transposed needs a static QDQ model (scripts/make_qdq.py output)")
    ops = {op.name: op for op in ir.ops}
    producer = {op.outputs[0]: op for op in ir.ops}
    u8_out = set()

    ir.f64 = {}

    def mm_const(t, onnx_t):
        mn, mx = src.minmax(onnx_t)
        ir.f64[t + "_min"], ir.f64[t + "_max"] = src.f64[onnx_t]
        ir.const(t + "_min", mn, "fp32")
        ir.const(t + "_max", mx, "fp32")
        return [t + "_min", t + "_max"]

    quantized = {}  # activation -> its quant tensor
    new_ops = []
    enc_ips = set()
    for lay in ir.layer_ops:
        enc_ips.update([lay["q"], lay["k"], lay["v"], lay["o"], lay["f1"], lay["f2"]])
    # which tensor feeds which attention matmul input (for the QKV / FFN1 output min/max)
    out_onnx = {}
    for lay in ir.layer_ops:
        qk, av = ops[lay["qk"]], ops[lay["av"]]
        if ir.family != "distilbert":
            # DistilBERT scales q by a Div before Q.K^T; NE then drops the QDQ info of both QK
            # operands: q_lin / k_lin stay fp32-output InnerProducts and Q.K^T an fp32 Matmul
            out_onnx[qk.inputs[0]] = src.act_of(ir.attn_mm[lay["qk"]], 0)
            out_onnx[qk.inputs[1]] = src.act_of(ir.attn_mm[lay["qk"]], 1)
        out_onnx[av.inputs[1]] = src.act_of(ir.attn_mm[lay["av"]], 1)
        out_onnx[av.inputs[0]] = src.act_of(ir.attn_mm[lay["av"]], 0)
        out_onnx[ops[lay["f2"]].inputs[0]] = src.act_of(src.mm_of_weight[ops[lay["f2"]].inputs[1]], 0)
        out_onnx[ops[lay["o"]].inputs[0]] = src.act_of(src.mm_of_weight[ops[lay["o"]].inputs[1]], 0)
    for op in ir.ops:
        if op.name in enc_ips:
            mmn = src.mm_of_weight[op.inputs[1]]
            x, w = op.inputs[0], op.inputs[1]
            base = w[:-2]
            wq = base + "_quantized:0"
            del ir.consts[w]
            ir.const(wq, np.ascontiguousarray(src.init[base + "_quantized"]), "s8")
            wmn, wmx = src.minmax(base)
            ir.const(wq + "_min", wmn, "fp32")
            ir.const(wq + "_max", wmx, "fp32")
            xmm = mm_const(x, src.act_of(mmn, 0))
            rest = op.inputs[2:]
            reshape_ref = []
            if "reshape_dims" in op.attr:
                reshape_ref = [rest.pop()]
            if x in u8_out:
                xin = x
            elif x in quantized:
                xin = quantized[x]
            else:
                xin = x + "_quant"
                quantized[x] = xin
                new_ops.append(Op(op.name + "_quant_0", "Quantize", [x] + xmm, [xin], [("output_dtype", "u8")]))
            outmm = []
            o = op.outputs[0]
            if o in out_onnx and op.attr.get("append_op") != "sum":
                outmm = mm_const(o, out_onnx[o])
                dt = "u8" if op.attr.get("append_op") == "gelu_tanh" else "s8"
                items = list(op.attr.items())
                idx = next((i for i, (k, _) in enumerate(items) if k in ("reshape", "reshape_dims")), len(items))
                items.insert(idx, ("output_dtype", dt))
                op.attr = OrderedDict(items)
                if dt == "u8":
                    u8_out.add(o)
            op.inputs = [xin, wq] + rest + xmm + [wq + "_min", wq + "_max"] + outmm + reshape_ref
        elif op.type == "Matmul" and op.name in ir.attn_mm:
            if "src0_perm" in op.attr:  # Q x K^T
                if op.inputs[0] not in out_onnx:
                    new_ops.append(op)
                    continue
                op.inputs = op.inputs + [op.inputs[0] + "_min", op.inputs[0] + "_max",
                                         op.inputs[1] + "_min", op.inputs[1] + "_max"]
            else:  # P x V
                sm, o = op.inputs[0], op.outputs[0]
                op.inputs = op.inputs + [sm + "_min", sm + "_max"] + mm_const(o, out_onnx[o])
                items = list(op.attr.items())
                idx = next((i for i, (k, _) in enumerate(items) if k == "reshape"), len(items))
                items.insert(idx, ("output_dtype", "u8"))
                op.attr = OrderedDict(items)
                u8_out.add(o)
        elif op.type == "Softmax":
            o = op.outputs[0]
            op.inputs = op.inputs + mm_const(o, out_onnx[o])
            op.attr["output_dtype"] = "u8"
            u8_out.add(o)
        new_ops.append(op)
    ir.ops = new_ops
    # u8 activations: fold the activation zero point into the fp32 bias,
    #   bias' = bias - s_x * zp_x * s_w[n] * sum_k Wq[k, n]
    # with s_x = (max - min) / 255, zp_x = -min / s_x (unrounded), s_w = max(|wmin|, |wmax|) / 127
    for op in ir.ops:
        if op.name not in enc_ips:
            continue
        off = 1 if op.attr.get("append_op") in ("sum", "binary_add") else 0
        xmn, xmx = ir.consts[op.inputs[3 + off]][0], ir.consts[op.inputs[4 + off]][0]
        wmn, wmx = ir.consts[op.inputs[5 + off]][0], ir.consts[op.inputs[6 + off]][0]
        span = xmx - xmn
        inv = np.where(span == 0.0, 0.0, 255.0 / span).astype(np.float32)
        zp = -xmn * inv
        s_x = 1.0 / inv
        wabs = np.maximum(np.fabs(wmn), np.fabs(wmx))
        s_w = 1.0 / np.where(wabs == 0.0, 0.0, 127.0 / wabs).astype(np.float32)
        wq = ir.consts[op.inputs[1]][0]
        comp = s_x * zp * s_w * np.sum(wq.astype(np.float32), axis=0)
        b, dt = ir.consts[op.inputs[2]]
        ir.consts[op.inputs[2]] = ((b - comp).astype(np.float32), dt)
    return ir


def transpose_mode_int8(ir):
    """NE's Graph.transpose_mode_int8(): sparse (VNNI, activation-as-src1) layout of the s8 encoder."""
    ops = {op.name: op for op in ir.ops}
    enc_ips, lns_t = [], []
    for li, lay in enumerate(ir.layer_ops):
        enc_ips += [lay["q"], lay["k"], lay["v"], lay["o"], lay["f1"], lay["f2"]]
        lns_t.append(lay["ln1"])
        if li != len(ir.layer_ops) - 1:
            lns_t.append(lay["ln2"])
    first_q = None
    for op in ir.ops:
        if op.name in enc_ips:
            w = op.inputs[1]
            arr, dt = ir.consts[w]
            ir.consts[w] = (np.ascontiguousarray(arr.T), dt)
            ins = op.inputs
            sumres = [ins[3]] if op.attr.get("append_op") == "sum" else []
            k = 3 + len(sumres)
            xmm, wmm, rest = ins[k:k + 2], ins[k + 2:k + 4], ins[k + 4:]
            op.inputs = [w, ins[0], ins[2]] + sumres + wmm + xmm + rest
            del op.attr["src1_perm"]
            if "reshape" in op.attr:
                op.attr["reshape"] = "%d,%d,-1, -1" % (ir.heads, ir.hd)
        elif op.type == "Matmul":
            if op.attr.get("src0_perm") == "0,2,1,3" and op.attr.get("src1_perm") == "0,2,3,1":
                op.attr["src0_perm"], op.attr["src1_perm"] = "2,0,3,1", "2,0,1,3"
            if op.attr.get("src1_perm") == "0,2,1,3" and op.attr.get("dst_perm") == "0,2,1,3":
                op.attr["src1_perm"], op.attr["dst_perm"] = "2,0,3,1", "1,3,0,2"
            if "reshape" in op.attr:
                op.attr["reshape"] = "%d,-1" % ir.H
        elif op.type == "Quantize" and first_q is None:
            first_q = op
        if op.name in lns_t:
            op.attr["transpose_mode"] = "1, 0"
    # Reorder_Post before the first Quantize; the residual of the first sum uses the reordered tensor
    x = first_q.inputs[0]
    xr = x + "_reorder"
    i = ir.find(first_q.name)
    ir.ops.insert(i, Op(first_q.name + "_Reorder_Post_0", "Reorder", [x], [xr],
                        [("src_perm", "0,1"), ("dst_perm", "1,0")]))
    first_q.inputs[0] = xr
    for op in ir.ops:
        if op.name in enc_ips and op.attr.get("append_op") == "sum" and op.inputs[3] == x:
            op.inputs[3] = xr
    # Reorder_Recover before the last LayerNorm
    last = ir.layer_ops[-1]
    f2 = ops[last["f2"]]
    o = f2.outputs[0]
    i = ir.find(last["ln2"])
    ir.ops.insert(i, Op(f2.name + "_Reorder_Recover", "Reorder", [o], [o + "_recover"],
                        [("src_perm", "0,1"), ("dst_perm", "1,0")]))
    ir.ops[i + 1].inputs[0] = o + "_recover"
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


# ----------------------------------------------------------------------------- reference
def reference(ir, inputs, precision):
    """float64 evaluation of the IR as written (weights as stored)."""
    C = {}
    for t, (arr, dt) in ir.consts.items():
        C[t] = bf16_to_f32(arr).astype(np.float64) if dt == "bf16" else arr.astype(np.float64) \
            if dt != "s32" else arr
    ids = inputs["input_ids"].astype(np.int64)
    Bn, S = ids.shape
    am = inputs["attention_mask"].astype(np.float64)
    maskadd = ((1.0 - am) * -10000.0)[:, None, None, :]
    H, heads, hd, eps = ir.H, ir.heads, ir.hd, ir.eps
    int8 = precision == "dynamic_int8"
    bf16 = precision == "bf16"

    def rb(x):  # bf16 activations: round-to-nearest-even
        if not bf16:
            return x
        u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
        return u.astype(np.uint32).view(np.float32).astype(np.float64)

    def tokq(x):  # per-token symmetric s8 fake quant
        if not int8:
            return x
        s = np.abs(x).max(axis=-1, keepdims=True) / 127.0
        s = np.where(s == 0, 1.0, s)
        return np.clip(np.round(x / s), -128, 127) * s

    def wt(name, perm):
        if name in C:
            return C[name]
        q = ir.consts[name + "_quant"][0].astype(np.float64)
        sc = ir.consts[name + "_scale"][0].astype(np.float64)
        return q * sc if perm == "1,0" else q * sc[:, None]

    def lnorm(x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * g + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    fam = ir.family
    Wp = "model.%s." % ("bert" if fam in ("bert", "minilm") else fam)
    word = C[Wp + "embeddings.word_embeddings.weight:0"]
    pos = C[Wp + "embeddings.position_embeddings.weight:0"]
    if fam == "roberta":
        ne = (ids != 1).astype(np.int64)
        pid = np.cumsum(ne, axis=1) * ne + 1
        e = word[ids] + pos[pid] + C[Wp + "embeddings.token_type_embeddings.weight:0"][0]
    else:
        e = word[ids] + pos[np.arange(S)][None]
        if fam in ("bert", "minilm"):
            e = e + C[Wp + "embeddings.token_type_embeddings.weight:0"][inputs["token_type_ids"].astype(np.int64)]
    ops = {op.name: op for op in ir.ops}
    ln_e = ops[ir.emb_ln]
    x = rb(lnorm(e, C[ln_e.inputs[1]], C[ln_e.inputs[2]]))
    # walk the layers using the fp32 op naming captured in ir.qkv
    for li, ((qn, kn, vn), qkn, smn, avn) in enumerate(ir.qkv):
        def ip(name, inp):
            op = ops[name]
            w = op.inputs[1][:-len("_quant")] if op.inputs[1].endswith("_quant") else op.inputs[1]
            wmat = wt(w, op.attr["src1_perm"])
            if op.attr["src1_perm"] == "0,1":
                wmat = wmat.T
            b = C[op.inputs[2]]
            return tokq(inp) @ wmat + b, op
        xin = x
        q, _ = ip(qn, xin)
        k, _ = ip(kn, xin)
        v, _ = ip(vn, xin)
        q, k, v = (tokq(rb(t)) for t in (q, k, v))
        sh = lambda t: t.reshape(Bn, S, heads, hd).transpose(0, 2, 1, 3)  # noqa: E731
        sc = sh(q) @ sh(k).transpose(0, 1, 3, 2) * (1.0 / np.sqrt(hd)) + maskadd
        sc = rb(sc)
        p = np.exp(sc - sc.max(-1, keepdims=True))
        p = rb(p / p.sum(-1, keepdims=True))
        ctx = rb((p @ sh(v)).transpose(0, 2, 1, 3).reshape(Bn, S, H))
        # following ops in order after the AV matmul / MHA
        names = [o.name for o in ir.ops]
        j = names.index(avn) if avn in names else names.index(qkn)
        seq = [o for o in ir.ops[j + 1:] if o.type in ("InnerProduct", "LayerNorm")][:5]
        o_ip, ln1, f1, f2, ln2 = seq
        a, _ = ip(o_ip.name, ctx)
        a = rb(a + xin)
        h1 = rb(lnorm(a, C[ln1.inputs[1]], C[ln1.inputs[2]]))
        f, _ = ip(f1.name, h1)
        f = rb(gelu(f))
        g, _ = ip(f2.name, f)
        g = rb(g + h1)
        x = rb(lnorm(g, C[ln2.inputs[1]], C[ln2.inputs[2]]))
    res = OrderedDict()
    pool = [o for o in ir.ops if o.name.endswith("/pooler/activation/Tanh")]
    if pool:
        y, _ = ip(pool[0].name, x[:, 0, :])
        res[ir.outputs[0][:-2]] = np.tanh(y)
    else:
        # the last LayerNorm's output, as the Neural Engine holds it: [B*S, H]
        res[ir.outputs[0][:-2]] = x.reshape(Bn * S, H)
    return res


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
