#!/usr/bin/python3
"""Rewrite a scripts/gen_bert.py export into the graph ONNX Runtime's transformer optimizer
writes for it (`python -m onnxruntime.transformers.optimizer --model_type bert`), with
com.microsoft ops:

  input_ids, token_type_ids, attention_mask -> Cast(int32)
  EmbedLayerNormalization(ids, segment_ids, word, position, segment, gamma, beta[, mask])
      -> (embeddings, mask_index)
  per layer:
    Attention(x, W_qkv [H, 3H], b_qkv [3H], mask_index) num_heads
    MatMul(W_o) -> SkipLayerNormalization(., x, gamma, beta, b_o)
    MatMul(W_1) -> BiasGelu(., b_1) | FastGelu(., b_1) | Add(b_1) -> Gelu
    MatMul(W_2) -> SkipLayerNormalization(., ln1, gamma, beta, b_2)

--mask_index 1d: the mask goes into EmbedLayerNormalization, whose mask_index output (int32 [B]
  valid lengths, right padding) feeds every Attention (the optimizer's default).
--mask_index 2d: Cast(attention_mask, int32) [B, S] feeds every Attention as a raw mask
  (`--use_raw_attention_mask` / newer optimizers); EmbedLayerNormalization gets no mask.
--gelu fastgelu needs a model exported with `gen_bert.py --gelu tanh` (FastGelu is the tanh
  approximation); biasgelu / gelu need the erf one.

Weights come from IN_DIR/model.onnx, found by the names gen_bert.py's torch export gives them
and by IN_DIR/meta.json (the MatMul initializer of each Linear). IN_DIR/inputs and ref/ are
copied to OUT_DIR. Check the result with scripts/ort_run.js against ref/ (torch).
Always run with /usr/bin/python3 (Debian's onnx 1.12).

  make_ort_optimized.py IN_DIR OUT_DIR [--mask_index 1d|2d] [--gelu biasgelu|fastgelu|gelu]
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("in_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--mask_index", choices=("1d", "2d"), default="1d")
    ap.add_argument("--gelu", choices=("biasgelu", "fastgelu", "gelu"), default="biasgelu")
    a = ap.parse_args(argv)

    meta = json.load(open(os.path.join(a.in_dir, "meta.json")))
    c = meta["config"]
    want_tanh = a.gelu == "fastgelu"
    if (c["gelu"] == "tanh") != want_tanh:
        ap.error(f"--gelu {a.gelu} needs a model exported with --gelu {'tanh' if want_tanh else 'erf'}")
    src = onnx.load(os.path.join(a.in_dir, "model.onnx"))
    init = {t.name: numpy_helper.to_array(t) for t in src.graph.initializer}
    lin = {w["name"]: w for w in meta["weights"]}
    H, heads, L = c["hidden"], c["heads"], c["layers"]
    eps = 1e-12

    inits = []

    def add(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def w_of(key):
        return init[lin[key]["onnx_initializer"]], init[lin[key]["bias_initializer"]]

    nodes = []
    graph_inputs = [i for i in src.graph.input if i.name not in init]
    names = [i.name for i in graph_inputs]
    has_tt = "token_type_ids" in names

    def cast32(name):
        out = name + "_int32"
        nodes.append(helper.make_node("Cast", [name], [out], name="Cast_" + name, to=TensorProto.INT32))
        return out

    ids = cast32("input_ids")
    seg = cast32("token_type_ids") if has_tt else ""
    mask32 = cast32("attention_mask")

    emb_in = [ids, seg,
              add("word_embeddings", init["embeddings.word_embeddings.weight"]),
              add("position_embeddings", init["embeddings.position_embeddings.weight"]),
              add("token_type_embeddings", init["embeddings.token_type_embeddings.weight"]) if has_tt else "",
              add("embeddings_ln_gamma", init["embeddings.LayerNorm.weight"]),
              add("embeddings_ln_beta", init["embeddings.LayerNorm.bias"])]
    if a.mask_index == "1d":
        emb_in.append(mask32)
    nodes.append(helper.make_node("EmbedLayerNormalization", emb_in,
                                  ["EmbedLayerNormalization_0_output", "EmbedLayerNormalization_0_mask_index"],
                                  name="EmbedLayerNormalization_0", domain="com.microsoft", epsilon=eps))
    mask = "EmbedLayerNormalization_0_mask_index" if a.mask_index == "1d" else mask32
    x = "EmbedLayerNormalization_0_output"

    for li in range(L):
        p = f"layer.{li}."
        (wq, bq), (wk, bk), (wv, bv) = (w_of(p + n) for n in ("query", "key", "value"))
        qkv_w = add(f"Attention_{li}_qkv_weight", np.concatenate([wq, wk, wv], axis=1))
        qkv_b = add(f"Attention_{li}_qkv_bias", np.concatenate([bq, bk, bv]))
        att = f"Attention_{li}_output"
        nodes.append(helper.make_node("Attention", [x, qkv_w, qkv_b, mask], [att], name=f"Attention_{li}",
                                      domain="com.microsoft", num_heads=heads))
        wo, bo = w_of(p + "attn_out")
        mo = f"MatMul_{li}_attn_out"
        nodes.append(helper.make_node("MatMul", [att, add(p + "attn_out.weight", wo)], [mo], name=mo))
        ln1 = f"SkipLayerNorm_{li}_0_output"
        nodes.append(helper.make_node("SkipLayerNormalization",
                                      [mo, x, add(p + "attn_ln.weight", init[p + "attn_ln.weight"]),
                                       add(p + "attn_ln.bias", init[p + "attn_ln.bias"]), add(p + "attn_out.bias", bo)],
                                      [ln1], name=f"SkipLayerNorm_{li}_0", domain="com.microsoft", epsilon=eps))
        w1, b1 = w_of(p + "ffn1")
        m1 = f"MatMul_{li}_ffn1"
        nodes.append(helper.make_node("MatMul", [ln1, add(p + "ffn1.weight", w1)], [m1], name=m1))
        g = f"Gelu_{li}_output"
        b1n = add(p + "ffn1.bias", b1)
        if a.gelu == "biasgelu":
            nodes.append(helper.make_node("BiasGelu", [m1, b1n], [g], name=f"BiasGelu_{li}", domain="com.microsoft"))
        elif a.gelu == "fastgelu":
            nodes.append(helper.make_node("FastGelu", [m1, b1n], [g], name=f"FastGelu_{li}", domain="com.microsoft"))
        else:
            nodes.append(helper.make_node("Add", [m1, b1n], [m1 + "_bias"], name=f"Add_{li}_ffn1_bias"))
            nodes.append(helper.make_node("Gelu", [m1 + "_bias"], [g], name=f"Gelu_{li}", domain="com.microsoft"))
        w2, b2 = w_of(p + "ffn2")
        m2 = f"MatMul_{li}_ffn2"
        nodes.append(helper.make_node("MatMul", [g, add(p + "ffn2.weight", w2)], [m2], name=m2))
        out = "last_hidden_state" if li == L - 1 else f"SkipLayerNorm_{li}_1_output"
        nodes.append(helper.make_node("SkipLayerNormalization",
                                      [m2, ln1, add(p + "ffn_ln.weight", init[p + "ffn_ln.weight"]),
                                       add(p + "ffn_ln.bias", init[p + "ffn_ln.bias"]), add(p + "ffn2.bias", b2)],
                                      [out], name=f"SkipLayerNorm_{li}_1", domain="com.microsoft", epsilon=eps))
        x = out

    g = helper.make_graph(nodes, "bert_ort_optimized", graph_inputs, list(src.graph.output), inits)
    opset = [op for op in src.opset_import if op.domain in ("", "ai.onnx")][0].version
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)],
                          producer_name="make_ort_optimized.py")
    m.ir_version = src.ir_version
    os.makedirs(a.out_dir, exist_ok=True)
    onnx.save(m, os.path.join(a.out_dir, "model.onnx"))
    for d in ("inputs", "ref"):
        s = os.path.join(a.in_dir, d)
        if os.path.isdir(s):
            shutil.rmtree(os.path.join(a.out_dir, d), ignore_errors=True)
            shutil.copytree(s, os.path.join(a.out_dir, d))
    meta_out = dict(generator="scripts/make_ort_optimized.py", source=os.path.basename(os.path.normpath(a.in_dir)),
                    mask_index=a.mask_index, gelu=a.gelu, config=c, inputs=meta["inputs"], outputs=meta["outputs"],
                    op_types=sorted({(n.domain + "::" if n.domain else "") + n.op_type for n in nodes}))
    with open(os.path.join(a.out_dir, "meta.json"), "w") as f:
        json.dump(meta_out, f, indent=1)
    print(f"wrote {a.out_dir}/model.onnx: {L} layers, mask_index {a.mask_index}, gelu {a.gelu}; "
          f"ops {meta_out['op_types']}")


if __name__ == "__main__":
    main()
