"""ONNX import of ops whose semantics depend on the opset (issue 22): Softmax / LogSoftmax with
opset < 13 coercion to 2-D at `axis`, and CumSum (exclusive, reverse, negative axis).

References are numpy in float64, written here from the ONNX operator docs (independent of the
engine). Tolerances: softmax outputs are within [0, 1] and computed in fp32 by the engine: 1e-6
absolute (a few fp32 ulps of 1.0); log-softmax 1e-5; CumSum of integers exact, of fp32 values
1e-5 relative (fp32 running sums of <= 24 terms).
"""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

RNG_SEED = 22


def _model(nodes, inputs, outputs, opset, inits=()):
    g = helper.make_graph(nodes, "t", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def _save(tmp_path, m, name="model.onnx"):
    p = os.path.join(str(tmp_path), name)
    onnx.save(m, p)
    return p


def _softmax_v1_ref(x, axis, log):
    """Opset 1-12: coerce to 2-D [prod(d[:axis]), prod(d[axis:])], softmax per row."""
    x = x.astype(np.float64)
    a = axis if axis >= 0 else axis + x.ndim
    rows = int(np.prod(x.shape[:a])) if a > 0 else 1
    x2 = x.reshape(rows, -1)
    e = np.exp(x2 - x2.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    if log:
        s = np.log(s)
    return s.reshape(x.shape)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 12])
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2, None])
def test_softmax_opset_lt13_coercion(ne, tmp_path, op, opset, axis):
    shape = [2, 3, 4, 5]
    attrs = {} if axis is None else {"axis": axis}
    node = helper.make_node(op, ["x"], ["y"], name="sm", **attrs)
    # Dynamic batch: the rank is known, the dims are not.
    m = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 4, 5])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], opset)
    g = ne.compile(_save(tmp_path, m))
    x = np.random.default_rng(RNG_SEED).standard_normal(shape).astype(np.float32) * 3
    y = g.inference({"x": x})["y"]
    ref = _softmax_v1_ref(x, 1 if axis is None else axis, op == "LogSoftmax")
    assert y.shape == ref.shape
    assert np.all(np.isfinite(y))
    tol = 1e-5 if op == "LogSoftmax" else 1e-6
    assert np.max(np.abs(y - ref)) <= tol


def test_softmax_opset11_last_axis_is_one_softmax(ne, tmp_path):
    # torch writes axis=3 on the rank-4 attention scores: that is the per-row softmax, lowered
    # as one Softmax (no Flatten / Reshape around it), so attention fusion sees it.
    node = helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=3)
    m = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 2, "s", "s"])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], 11)
    p = _save(tmp_path, m)
    g = ne.compile(p)
    g.save(str(tmp_path / "ir"))
    conf = open(str(tmp_path / "ir" / "conf.yaml")).read()
    assert conf.count("type: Softmax") == 1 and "type: Flatten" not in conf and "type: Reshape" not in conf, conf
    x = np.random.default_rng(1).standard_normal([3, 2, 7, 7]).astype(np.float32)
    y = g.inference({"x": x})["y"]
    assert np.max(np.abs(y - _softmax_v1_ref(x, 3, False))) <= 1e-6


def _cumsum_ref(x, axis, exclusive, reverse):
    x = x.astype(np.float64) if x.dtype.kind == "f" else x.astype(np.int64)
    a = axis % x.ndim
    if reverse:
        x = np.flip(x, a)
    c = np.cumsum(x, axis=a)
    if exclusive:
        c = c - x
    if reverse:
        c = np.flip(c, a)
    return c


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(ne, tmp_path, dtype, axis, exclusive, reverse):
    tp = {np.float32: TensorProto.FLOAT, np.int32: TensorProto.INT32, np.int64: TensorProto.INT64}[dtype]
    ax = numpy_helper.from_array(np.array(axis, dtype=np.int64), "ax")
    node = helper.make_node("CumSum", ["x", "ax"], ["y"], name="cs", exclusive=exclusive, reverse=reverse)
    m = _model([node], [helper.make_tensor_value_info("x", tp, ["a", 5, 6])],
               [helper.make_tensor_value_info("y", tp, None)], 14, inits=[ax])
    g = ne.compile(_save(tmp_path, m))
    rng = np.random.default_rng(RNG_SEED + axis)
    x = (rng.standard_normal([3, 5, 6]) * 10).astype(dtype)
    y = g.inference({"x": x})["y"]
    ref = _cumsum_ref(x, axis, exclusive, reverse)
    assert y.dtype == dtype and y.shape == ref.shape
    if dtype == np.float32:
        assert np.all(np.isfinite(y))
        assert np.max(np.abs(y - ref) / (1 + np.abs(ref))) <= 1e-5
    else:
        assert np.array_equal(y.astype(np.int64), ref)


def test_roberta_position_ids(ne, tmp_path):
    # transformers' create_position_ids_from_input_ids, as torch exports it (opset 11):
    # mask = ne(ids, pad).int(); inc = cumsum(mask, 1).type_as(mask) * mask; pos = inc.long() + pad
    pad = 1
    nodes = [
        helper.make_node("Constant", [], ["pad"], value=numpy_helper.from_array(np.array(pad, np.int64))),
        helper.make_node("Equal", ["ids", "pad"], ["eq"]),
        helper.make_node("Not", ["eq"], ["ne"]),
        helper.make_node("Cast", ["ne"], ["mask"], to=TensorProto.INT32),
        helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.array(1, np.int64))),
        helper.make_node("CumSum", ["mask", "one"], ["cs"]),
        helper.make_node("Cast", ["cs"], ["cs32"], to=TensorProto.INT32),
        helper.make_node("Mul", ["cs32", "mask"], ["inc"]),
        helper.make_node("Cast", ["inc"], ["inc64"], to=TensorProto.INT64),
        helper.make_node("Add", ["inc64", "pad"], ["pos"]),
    ]
    m = _model(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
               [helper.make_tensor_value_info("pos", TensorProto.INT64, None)], 11)
    g = ne.compile(_save(tmp_path, m))
    ids = np.array([[0, 5, 6, 7, 2, 1, 1], [0, 9, 2, 1, 1, 1, 1]], np.int64)
    pos = g.inference({"ids": ids})["pos"]
    mask = (ids != pad).astype(np.int64)
    ref = np.cumsum(mask, axis=1) * mask + pad
    assert np.array_equal(pos, ref)
