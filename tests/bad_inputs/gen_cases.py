#!/usr/bin/env python3
"""Writes the hand-crafted bad-input corpus (tests/bad_inputs/{ir,npy,onnx}/) and cases.txt.

Run from anywhere: python3 tests/bad_inputs/gen_cases.py [--out DIR]. The outputs are checked in; this
script is how they were made (standard library only; ONNX files are encoded with a minimal protobuf writer
below, so no `onnx` Python package is needed; no randomness, no network). --out DIR writes them under DIR
instead of next to this script. --check writes them into a temporary directory and fails (exit 1, with a
diff) unless every file it writes, cases.txt included, is byte-identical to the checked-in one, every
symbolic link it makes (link(): external data resolving outside the model's directory) is checked in as a
link to the same target, and every file cases.txt names exists: ctest runs it
(BadInputs.GeneratorMatchesCheckedInCorpus), so the script and the corpus cannot drift apart.

cases.txt: one case a line, fields separated by ' | ':
    kind | files (space-separated, relative to tests/bad_inputs; '@' = tests/data) | substring
kind: ir (conf.yaml [model.bin]) loaded, built and run once on small inputs;
      npy (read_npy); onnx (compile_onnx, then build and run);
      disabled-<kind>: a known bug reported to the owner, skipped (see the comment above it).
Every case must end in an ne::Error whose message contains the substring: never success, a crash,
a hang or another exception type.
"""
import argparse
import difflib
import os
import shutil
import struct
import sys
import tempfile


def f32(vals):
    return struct.pack(f"<{len(vals)}f", *vals)


HERE = os.path.dirname(os.path.abspath(__file__))
_ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_ap.add_argument("--out", help="write the corpus under this directory (default: next to this script)")
_ap.add_argument("--check", action="store_true", help="compare a fresh generation with the checked-in corpus")
ARGS = _ap.parse_args()
OUT = tempfile.mkdtemp(prefix="ne_bad_inputs_") if ARGS.check else (ARGS.out or HERE)
cases = []
written = []  # paths relative to OUT, in the order written
links = {}  # symbolic links written: path relative to OUT -> target (as os.readlink gives it)


def w(rel, data):
    written.append(rel)
    p = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def link(rel, target):
    """A symbolic link at rel (relative to OUT) to target (relative to the link's directory)."""
    links[rel] = target
    p = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if os.path.lexists(p):
        os.remove(p)
    os.symlink(target, p)


def case(kind, files, expect, comment=None):
    if comment:
        cases.append("# " + comment)
    cases.append(f"{kind} | {' '.join(files)} | {expect}")


# ------------------------------------------------------------------------------------- IR
# A small valid IR: x[-1,4] -> InnerProduct(W[4,3], b[3]) -> Softmax -> y. Weights at 0 and 64.
good_bin = f32([i / 10 for i in range(12)]) + b"\0" * (64 - 48) + f32([0.5, -0.5, 0.25])
w("ir/small.bin", good_bin)
GOOD = """version: 1
model:
  name: small
  operator:
    input_data:
      type: Input
      output:
        x: {dtype: fp32, shape: [-1, 4]}
        fc_w: {dtype: fp32, shape: [4, 3], location: [0, 48]}
        fc_b: {dtype: fp32, shape: [3], location: [64, 12]}
    fc:
      type: InnerProduct
      input: {x: {}, fc_w: {}, fc_b: {}}
      output: {h: {}}
    sm:
      type: Softmax
      input: {h: {}}
      output: {y: {}}
      attr: {axis: -1}
    output_data:
      type: Output
      input: {y: {}}
"""
w("ir/small.yaml", GOOD)  # the control: loads and runs (checked by the test, not a bad case)


def ir(name, yaml, expect, bin_file="ir/small.bin", comment=None):
    w(f"ir/{name}.yaml", yaml)
    case("ir", [f"ir/{name}.yaml"] + ([bin_file] if bin_file else []), expect, comment)


def sub(old, new, text=GOOD):
    assert old in text, old
    return text.replace(old, new)


ir("yaml_syntax", GOOD.replace("[-1, 4]}", "[-1, 4}"), "YAML does not parse")
ir("empty", "", "expected a map with a 'model' key")
ir("not_a_map", "- a\n- b\n", "expected a map with a 'model' key")
ir("no_model", "version: 1\nmodels: {}\n", "expected a 'model:' map")
ir("operator_list", "model:\n  operator: [a, b]\n", "'model: operator:' to be a map")
ir("version_text", sub("version: 1", "version: one"), "version: 'one' is not an integer")
ir("op_not_map", sub("    sm:\n      type: Softmax", "    sm: 5\n    sm2:\n      type: Softmax"),
   "operator 'sm' must be a map")
ir("no_type", sub("      type: Softmax\n", ""), "operator 'sm' has no 'type'")
ir("unknown_type", sub("type: Softmax", "type: SoftMaxx"), "unknown operator type(s): SoftMaxx (sm)")
ir("unknown_dtype", sub("x: {dtype: fp32", "x: {dtype: fp33"), "tensor 'x': unknown dtype 'fp33'")
ir("shape_scalar", sub("shape: [-1, 4]", "shape: 4"), "tensor 'x': shape must be a list")
ir("rank_17", sub("shape: [-1, 4]", "shape: [" + ", ".join(["1"] * 17) + "]"), "rank 17 exceeds 16")
ir("dim_below_minus1", sub("shape: [-1, 4]", "shape: [-5, 4]"), "dimension -5 < -1")
ir("dim_text", sub("shape: [-1, 4]", "shape: [-1, four]"), "'four' is not an integer")
ir("dim_int64_overflow", sub("shape: [-1, 4]", "shape: [-1, 99999999999999999999999]"),
   "is not an integer")
ir("tensor_not_map", sub("x: {dtype: fp32, shape: [-1, 4]}", "x: [fp32]"), "tensor 'x' must be a map")
ir("inputs_list", sub("input: {h: {}}", "input: [h]"), "operator 'sm': 'input' must be a map of tensors")
ir("location_one", sub("location: [0, 48]", "location: [48]"),
   "tensor 'fc_w': location must be [byte_offset, byte_size]")
ir("location_negative", sub("location: [0, 48]", "location: [-64, 48]"), "tensor 'fc_w': negative location")
ir("location_size_mismatch", sub("location: [0, 48]", "location: [0, 44]"),
   "weight 'fc_w': location size 44 bytes does not match shape [4,3] x fp32 = 48 bytes")
ir("location_past_end", sub("location: [64, 12]", "location: [100, 12]"),
   "weight 'fc_b' at [100, 12] lies past the end of the file (76 bytes")
ir("offset_huge", sub("location: [64, 12]", "location: [9223372036854775807, 12]"),
   "weight 'fc_b' at [9223372036854775807, 12] lies past the end")
ir("claims_1tib", sub("fc_b: {dtype: fp32, shape: [3], location: [64, 12]}",
                      "fc_b: {dtype: fp32, shape: [262144, 1048576], location: [0, 1099511627776]}"),
   "weight 'fc_b' at [0, 1099511627776] lies past the end of the file (10 bytes",
   bin_file="ir/ten_bytes.bin", comment="a 10-byte model.bin whose conf.yaml claims a 1 TiB weight")
w("ir/ten_bytes.bin", b"0123456789")
ir("claims_2pow60", sub("shape: [3], location: [64, 12]", "shape: [1073741824, 1073741824], location: [0, 4]"),
   "weight 'fc_b': shape [1073741824,1073741824] is implausibly large")
ir("shape_overflow", sub("shape: [3], location: [64, 12]", "shape: [4294967296, 4294967296, 4294967296], location: [0, 4]"),
   "shape product overflows")
ir("weight_dynamic", sub("shape: [3], location", "shape: [-1], location"),
   "weight 'fc_b' has a dynamic dimension in [-1]")
ir("weight_no_shape", sub("fc_b: {dtype: fp32, shape: [3], location", "fc_b: {dtype: fp32, location"),
   "weight 'fc_b' has no shape")
ir("no_bin", GOOD, "model.bin was given", bin_file=None)
w("ir/empty.bin", b"")
ir("empty_bin", GOOD, "weight 'fc_b' at [64, 12] lies past the end of the file (0 bytes", bin_file="ir/empty.bin")
ir("bin_is_dir", GOOD, "not a regular file", bin_file="ir")
ir("missing_bin", GOOD, "ir/no_such.bin: cannot open", bin_file="ir/no_such.bin")
ir("undefined_tensor", sub("input: {h: {}}", "input: {hh: {}}"),
   "operator 'sm' (Softmax) uses tensor 'hh' which no earlier operator produces")
ir("produced_twice", sub("output: {y: {}}", "output: {h: {}}"), "tensor 'h' is produced twice (again by operator 'sm')")
ir("use_before_def", sub("input: {x: {}, fc_w: {}, fc_b: {}}", "input: {y: {}, fc_w: {}, fc_b: {}}"),
   "operator 'fc' (InnerProduct) uses tensor 'y' which no earlier operator produces")
ir("nested_attr", sub("attr: {axis: -1}", "attr: {axis: [[1, 2], 3]}"), "operator 'sm': nested lists are not allowed")
ir("attr_map_value", sub("attr: {axis: -1}", "attr: {axis: {a: 1}}"), "operator 'sm': expected a scalar or a list")
ir("attr_not_int", sub("attr: {axis: -1}", "attr: {axis: last}"), "attribute axis='last' is not an integer")
ir("deep_nesting", "model: " + "[" * 5000 + "]" * 5000 + "\n", "YAML does not parse",
   comment="nesting 5000 deep: yaml-cpp's depth guard (2000) must report it, not overflow the stack")
ir("deep_nesting_map", "model: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "YAML does not parse")
ir("alias_bomb", "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
   "model:\n  operator:\n    sm:\n      type: Softmax\n      attr: {axis: *d}\n",
   "operator 'sm': nested lists are not allowed", comment="YAML aliases (billion laughs): shared, never expanded")
ir("no_outputs", sub("input: {h: {}}", "input: {x: {}}", sub("      output: {h: {}}\n", "")), "operator 'fc' (InnerProduct) has no outputs",
   comment="fuzz_ir finding: ops index out[0] unchecked (UBSan null reference in InnerProductOp::reshape)")
# Operator validation (executor/ops): attributes and shapes that do not fit.
ir("softmax_axis", sub("attr: {axis: -1}", "attr: {axis: 7}"), "operator 'sm' (Softmax)")
ir("ip_weight_k", sub("x: {dtype: fp32, shape: [-1, 4]}", "x: {dtype: fp32, shape: [-1, 5]}"),
   "operator 'fc' (InnerProduct)")
ir("ip_weight_dtype", sub("fc_w: {dtype: fp32, shape: [4, 3], location: [0, 48]}",
                          "fc_w: {dtype: int32, shape: [4, 3], location: [0, 48]}"),
   "operator 'fc' (InnerProduct): weight 'fc_w' must be fp32, got int32")
ir("ip_bias_n", sub("fc_b: {dtype: fp32, shape: [3], location: [64, 12]}",
                    "fc_b: {dtype: fp32, shape: [2], location: [64, 8]}"),
   "operator 'fc' (InnerProduct): bias 'fc_b' [2] does not match N = 3")
ir("ip_append_op", sub("output: {h: {}}\n", "output: {h: {}}\n      attr: {append_op: frobnicate}\n"),
   "ip_append_op.yaml: operator 'fc' (InnerProduct): unknown append_op 'frobnicate'")
# Every operator declares its attributes (executor/op_attrs.cpp): an attribute it does not read, or a value it
# cannot honour, is an error naming the file, the operator and the attribute -- never ignored.
IP_ATTR = "output: {h: {}}\n      attr: {%s}\n"
ir("attr_ip_unknown", sub("output: {h: {}}\n", IP_ATTR % "append_op: relu, src_scle: 0.5"),
   "attr_ip_unknown.yaml: operator 'fc' (InnerProduct): unknown attribute 'src_scle'")
ir("attr_ip_append_op_foo", sub("output: {h: {}}\n", IP_ATTR % "append_op: foo"),
   "attr_ip_append_op_foo.yaml: operator 'fc' (InnerProduct): unknown append_op 'foo'")
ir("attr_ip_src1_perm", sub("output: {h: {}}\n", IP_ATTR % "src1_perm: '2,0'"),
   "attr_ip_src1_perm.yaml: operator 'fc' (InnerProduct): attribute src1_perm='2,0' is not supported")
ir("attr_ip_output_dtype", sub("output: {h: {}}\n", IP_ATTR % "output_dtype: s8"),
   "attr_ip_output_dtype.yaml: operator 'fc' (InnerProduct): attribute output_dtype='s8' is not supported")
ir("attr_ip_int8_attr_on_fp32", sub("output: {h: {}}\n", IP_ATTR % "src_scale: 0.5"),
   "attr_ip_int8_attr_on_fp32.yaml: operator 'fc' (InnerProduct): unknown attribute 'src_scale'",
   comment="an int8 attribute on an fp32 weight's InnerProduct would be ignored: refused")
# IRs in the Neural Engine compiler's dialect (compile/ne_dialect*): lowered at load, with the same rule.
ir("ne_ip_unknown_attr", sub("output: {h: {}}\n", IP_ATTR % "src1_perm: '1,0', foo: 1"),
   "ne_ip_unknown_attr.yaml: operator 'fc' (InnerProduct): unknown attribute 'foo' (value '1'): InnerProduct takes")
ir("ne_ip_append_op", sub("output: {h: {}}\n", IP_ATTR % "src1_perm: '1,0', append_op: swish"),
   "ne_ip_append_op.yaml: operator 'fc' (InnerProduct): attribute append_op='swish' is not supported")
NE_MASK = """model:
  name: ne_mask
  operator:
    input_data:
      type: Input
      output:
        input_ids:0: {dtype: s32, shape: [-1, -1]}
        attention_mask:0: {dtype: s32, shape: [-1, -1]}
    padding_sequence:
      type: PaddingSequence
      input: {attention_mask:0: {}}
      output: {padding_sequence:0: {}}
      attr: {dst_shape: '-1,-1', mode: llama}
    output_data:
      type: Output
      input: {padding_sequence:0: {}}
"""
ir("ne_padding_mode", NE_MASK,
   "ne_padding_mode.yaml: operator 'padding_sequence' (PaddingSequence): attribute mode='llama' is not supported")
ir("ne_padding_value", NE_MASK.replace("mode: llama", "padding_value: abc"),
   "ne_padding_value.yaml: operator 'padding_sequence' (PaddingSequence): an attribute that must be a number is not one")
ir("ne_unknown_op", NE_MASK.replace("attr: {dst_shape: '-1,-1', mode: llama}", "attr: {dst_shape: '-1,-1'}").replace(
    "    output_data:", "    conv:\n      type: Convolution\n      input: {padding_sequence:0: {}}\n"
    "      output: {c:0: {}}\n    output_data:"),
   "ne_unknown_op.yaml: operator 'conv' (Convolution): operator type 'Convolution' is not in the Neural Engine "
   "vocabulary")
ir("attr_layernorm_epsilon", sub("type: Softmax\n      input: {h: {}}\n      output: {y: {}}\n      attr: {axis: -1}",
                                 "type: LayerNorm\n      input: {h: {}, fc_b: {}}\n      output: {y: {}}\n"
                                 "      attr: {epsilon: abc}"),
   "attr_layernorm_epsilon.yaml: operator 'sm' (LayerNorm): attribute epsilon='abc' is not a number")
ir("attr_reorder_perm", sub("type: Softmax\n      input: {h: {}}\n      output: {y: {}}\n      attr: {axis: -1}",
                            "type: Reorder\n      input: {h: {}}\n      output: {y: {}}\n      attr: {perm: '0,0'}"),
   "attr_reorder_perm.yaml: operator 'sm' (Reorder): attribute perm='0,0' is not a permutation")
ir("attr_softmax_unknown", sub("attr: {axis: -1}", "attr: {axis: -1, transpose_mode: '1,0'}"),
   "attr_softmax_unknown.yaml: operator 'sm' (Softmax): unknown attribute 'transpose_mode'")
ir("ip_weight_rank", sub("fc_w: {dtype: fp32, shape: [4, 3], location: [0, 48]}",
                         "fc_w: {dtype: fp32, shape: [12], location: [0, 48]}"),
   "operator 'fc' (InnerProduct): weight 'fc_w' must be 2-D")
GATHER = """model:
  operator:
    input_data:
      type: Input
      output:
        ids: {dtype: int32, shape: [-1, -1]}
        table: {dtype: fp32, shape: [1, 4], location: [0, 16]}
    emb:
      type: Gather
      input: {table: {}, ids: {}}
      output: {y: {}}
      attr: {axis: 0}
    output_data:
      type: Output
      input: {y: {}}
"""
w("ir/table.bin", f32([1.0] * 4))
ir("gather_index_range", GATHER, "operator 'emb' (Gather): index 1", bin_file="ir/table.bin",
   comment="inputs are generated as ids 0,1,0,...: index 1 is out of range for a 1-row table")
ir("gather_axis", GATHER.replace("axis: 0", "axis: 5"), "operator 'emb' (Gather)", bin_file="ir/table.bin")
RESHAPE = sub("""    sm:
      type: Softmax
      input: {h: {}}
      output: {y: {}}
      attr: {axis: -1}""", """    sm:
      type: Reshape
      input: {h: {}}
      output: {y: {}}
      attr: {dst_shape: '7,-1'}""")
ir("reshape_bad", RESHAPE, "operator 'sm' (Reshape)")

# ------------------------------------------------------------------------------------ .npy
def npy(header, data=b"", version=1):
    h = header.encode()
    pad = (64 - (10 + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h)) + h + data


def npy_case(name, data, expect, comment=None):
    w(f"npy/{name}.npy", data)
    case("npy", [f"npy/{name}.npy"], expect, comment)


F4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
good = npy(F4, f32(list(range(6))))
npy_case("empty", b"", "not a .npy file")
npy_case("text", b"this is not numpy at all\n", "not a .npy file")
npy_case("magic_only", b"\x93NUMPY", "not a .npy file")
npy_case("version_9", b"\x93NUMPY\x09\x00" + good[8:], "unsupported .npy version 9")
npy_case("header_len_past_end", b"\x93NUMPY\x01\x00\xff\xff{'descr'", "truncated .npy header")
npy_case("v2_header_len_huge", b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}", "truncated .npy header")
npy_case("v2_short", b"\x93NUMPY\x02\x00\x10\x00", "truncated .npy header")
npy_case("big_endian", npy(F4.replace("<f4", ">f4"), b"\0" * 24), "unsupported .npy dtype '>f4'")
npy_case("complex", npy(F4.replace("<f4", "<c8"), b"\0" * 48), "unsupported .npy dtype '<c8'")
npy_case("object", npy(F4.replace("'<f4'", "'|O'"), b"\0" * 48), "unsupported .npy dtype '|O'")
npy_case("fortran", npy(F4.replace("False", "True"), b"\0" * 24), "Fortran-order arrays are not supported")
npy_case("no_descr", npy("{'fortran_order': False, 'shape': (2, 3), }", b"\0" * 24), "header has no 'descr'")
npy_case("no_shape", npy("{'descr': '<f4', 'fortran_order': False, }", b"\0" * 24), "header has no 'shape'")
npy_case("shape_text", npy(F4.replace("(2, 3)", "(a, 3)"), b"\0" * 24), "malformed shape")
npy_case("shape_negative", npy(F4.replace("(2, 3)", "(-2, 3)"), b"\0" * 24), "malformed shape")
npy_case("shape_unclosed", npy(F4.replace("(2, 3)", "[2, 3]"), b"\0" * 24), "malformed shape")
npy_case("rank_17", npy(F4.replace("(2, 3)", "(" + "1, " * 17 + ")"), b"\0" * 4), "rank exceeds 16")
npy_case("shape_overflow", npy(F4.replace("(2, 3)", "(4294967296, 4294967296, 4294967296)")),
         "shape product overflows")
npy_case("claims_1tib", npy(F4.replace("'<f4'", "'|u1'").replace("(2, 3)", "(1099511627776,)"), b"0123456789"),
         "truncated .npy data: shape [1099511627776] needs 1099511627776 bytes, file has 10",
         comment="10 data bytes claiming a 1 TiB array: an error, never an allocation")
npy_case("data_short_by_one", good[:-1], "truncated .npy data: shape [2,3] needs 24 bytes, file has 23")
npy_case("dim_int64_overflow", npy(F4.replace("(2, 3)", "(99999999999999999999999,)")), "npy")

# ----------------------------------------------------------------------------------- ONNX
# A minimal protobuf writer for the few ONNX messages needed.
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, b):
    b = b.encode() if isinstance(b, str) else b
    return varint(field << 3 | 2) + varint(len(b)) + b


def tensor(name, dims, dtype=1, raw=None, floats=None, ext=None):
    m = b"".join(f_varint(1, d) for d in dims) + f_varint(2, dtype) + f_bytes(8, name)
    if floats is not None:
        m += f_bytes(4, b"".join(struct.pack("<f", v) for v in floats))
    if raw is not None:
        m += f_bytes(9, raw)
    if ext is not None:
        for k, v in ext:
            m += f_bytes(13, f_bytes(1, k) + f_bytes(2, v))
        m += f_varint(14, 1)
    return m


def value_info(name, dims, elem=1):
    shape = b"".join(f_bytes(1, f_bytes(2, d) if isinstance(d, str) else f_varint(1, d)) for d in dims)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, f_varint(1, elem) + f_bytes(2, shape)))


def attr_ints(name, vals):
    """AttributeProto: name, ints, type INTS (7)."""
    return f_bytes(1, name) + b"".join(f_varint(8, v) for v in vals) + f_varint(20, 7)


def node(op, ins, outs, name, attrs=()):
    return b"".join(f_bytes(1, i) for i in ins) + b"".join(f_bytes(2, o) for o in outs) + \
        f_bytes(3, name) + f_bytes(4, op) + b"".join(f_bytes(5, a) for a in attrs)


def model(initializers, nodes=None, ir_version=8, opset=13):
    nodes = nodes if nodes is not None else [node("MatMul", ["x", "w"], ["y"], "mm")]
    g = b"".join(f_bytes(1, n) for n in nodes) + f_bytes(2, "g")
    g += b"".join(f_bytes(5, t) for t in initializers)
    g += f_bytes(11, value_info("x", ["N", 4])) + f_bytes(12, value_info("y", ["N", 3]))
    return f_varint(1, ir_version) + f_bytes(7, g) + f_bytes(8, f_bytes(1, "") + f_varint(2, opset))


WRAW = f32(list(range(12)))


def onnx_case(name, data, expect, kind="onnx", comment=None, extra=()):
    w(f"onnx/{name}.onnx", data)
    case(kind, [f"onnx/{name}.onnx"] + list(extra), expect, comment)


w("onnx/small.onnx", model([tensor("w", [4, 3], raw=WRAW)]))  # the control: compiles and runs
w("onnx/small.data", WRAW)
w("onnx/small_ext.onnx", model([tensor("w", [4, 3], ext=[("location", "small.data")])]))  # control
onnx_case("empty", b"", "the file is empty")
onnx_case("text", b"this is not a protobuf at all, just some text\n" * 3, "protobuf parse failed")
onnx_case("truncated", model([tensor("w", [4, 3], raw=WRAW)])[:-7], "protobuf parse failed")
onnx_case("no_graph", f_varint(1, 8), "no graph")
onnx_case("raw_data_short", model([tensor("w", [4, 3], raw=WRAW[:-4])]),
          "tensor 'w': raw_data has 44 bytes, shape [4,3] needs 48")
onnx_case("float_data_short", model([tensor("w", [4, 3], floats=[1.0] * 5)]),
          "tensor 'w': has 5 values, shape [4,3] needs 12")
onnx_case("negative_dim", model([tensor("w", [4, -3], raw=WRAW)]), "tensor 'w': negative dimension -3")
onnx_case("dtype_string", model([tensor("w", [4, 3], dtype=8, raw=WRAW)]), "tensor 'w': data type STRING is not supported")
onnx_case("dims_overflow", model([tensor("w", [1 << 32, 1 << 32, 1 << 32], raw=WRAW)]), "tensor 'w'",
          comment="fixed (d894b01) compile/onnx_import.cpp onnx_tensor_value: shape_numel's 'shape product "
          "overflows int64' reached the user without the file or tensor name (an ne::Error, no crash)")
onnx_case("ext_dotdot", model([tensor("w", [4, 3], ext=[("location", "../small.data")])]),
          "leaves the model's directory")
onnx_case("ext_dotdot_inner", model([tensor("w", [4, 3], ext=[("location", "sub/../../etc/passwd")])]),
          "leaves the model's directory")
onnx_case("ext_absolute", model([tensor("w", [4, 3], ext=[("location", "/etc/passwd")])]), "is an absolute path")
onnx_case("ext_missing", model([tensor("w", [4, 3], ext=[("location", "no_such.data")])]),
          "cannot open external data file")
onnx_case("ext_no_location", model([tensor("w", [4, 3], ext=[("offset", "0")])]), "external data without a location")
onnx_case("ext_offset_past_end", model([tensor("w", [4, 3], ext=[("location", "small.data"), ("offset", "8")])]),
          "lies beyond the end", extra=["onnx/small.data"])
onnx_case("ext_length_mismatch", model([tensor("w", [4, 3], ext=[("location", "small.data"), ("length", "40")])]),
          "external data length 40 does not match 48", extra=["onnx/small.data"])
onnx_case("ext_claims_1tib", model([tensor("w", [1 << 38], ext=[("location", "small.data")])]),
          "lies beyond the end", extra=["onnx/small.data"])
onnx_case("unknown_op", model([tensor("w", [4, 3], raw=WRAW)], [node("FrobnicateOp", ["x", "w"], ["y"], "fro")]),
          "FrobnicateOp")
onnx_case("undefined_input", model([tensor("w", [4, 3], raw=WRAW)], [node("MatMul", ["x", "nope"], ["y"], "mm")]),
          "nope")
onnx_case("matmul_k_mismatch", model([tensor("w", [5, 3], raw=f32([0.0] * 15))]), "mm")
# Regressions of bugs in compile/ fixed in d894b01 (ONNX loader hardening): enabled cases.
onnx_case("claims_1tib_raw", model([tensor("w", [1 << 38], raw=b"\0" * 4)]), "raw_data has 4 bytes",
          comment="fixed BUG compile/onnx_import.cpp onnx_tensor_value: r.bytes.resize(nbytes) (up to 1 TiB, "
                  "zero-filled) ran before raw_data's size was checked")
onnx_case("ext_offset_text", model([tensor("w", [4, 3], ext=[("location", "small.data"), ("offset", "abc")])]),
          "offset", extra=["onnx/small.data"],
          comment="fixed BUG compile/onnx_import.cpp: std::stoull/stoll on external_data offset/length threw "
                  "std::invalid_argument (not ne::Error, no file named)")

onnx_case("matmul_one_input", model([tensor("w", [4, 3], raw=WRAW)], [node("MatMul", ["x"], ["y"], "mm")]),
          "mm",
          comment="fixed BUG compile/onnx_import.cpp Lowerer::lower_node: MatMul read in[1] of a node with one "
                  "input (out-of-bounds, SEGV); node arity was not checked before lowering (found by the "
                  "generated bit flips of small.onnx)")

# Every default-domain node the compiler reads is checked against ONNX's schema for the model's opset,
# before anything reads its inputs (issue 24): an op newer than the opset is an error naming node, op and
# opset (the check used to be skipped when the opset had no schema for the op), and so is a node with
# fewer inputs than its schema needs.
onnx_case("castlike_opset13", model([tensor("w", [4, 3], raw=WRAW)], [node("CastLike", ["x", "w"], ["y"], "cl")]),
          "node 'cl' (CastLike): not defined in opset 13 of ai.onnx (since opset 15)",
          comment="fixed BUG compile/onnx_import.cpp: the ONNX schema check was skipped for an op the model's "
                  "opset does not define (Schema(op, opset) is null), so node arity went unchecked")
onnx_case("castlike_one_input", model([tensor("w", [4, 3], raw=WRAW)], [node("CastLike", ["x"], ["y"], "cl")],
                                      opset=15),
          "node 'cl' (CastLike): does not match the ONNX schema of opset 15",
          comment="fixed BUG compile/onnx_import.cpp Lowerer::lower_node: CastLike read in[1] of a node with one "
                  "input (in an opset that skipped the schema check)")
onnx_case("layernorm_opset14", model([tensor("w", [4, 3], raw=WRAW)],
                                     [node("LayerNormalization", ["x", "w"], ["y"], "ln")], opset=14),
          "node 'ln' (LayerNormalization): not defined in opset 14 of ai.onnx (since opset 17)")
onnx_case("reshape_one_input_opset11",
          model([tensor("w", [4, 3], raw=WRAW)], [node("Reshape", ["x"], ["r"], "rs"), node("Softmax", ["r"], ["y"], "sm")],
                opset=11),
          "node 'rs' (Reshape): does not match the ONNX schema of opset 11",
          comment="fixed BUG compile/onnx_import.cpp Lowerer::infer_ranks (opset < 13 with a Softmax) read "
                  "Reshape's input 1 before any schema check: every node is now checked first")
onnx_case("slice_attrs_opset9",
          model([tensor("w", [4, 3], raw=WRAW)],
                [node("Slice", ["x"], ["y"], "sl", [attr_ints("starts", [0]), attr_ints("ends", [2])])], opset=9),
          "Slice ('starts' / 'ends' attributes (opset < 10)): sl",
          comment="Slice-1 (attributes, one input) was lowered as if it were Slice-10 (inputs), its attributes dropped")
# External data resolving outside the model's directory through a symbolic link (a file, a directory).
link("onnx/ext_symlink.data", "../ir/small.bin")
onnx_case("ext_symlink", model([tensor("w", [4, 3], ext=[("location", "ext_symlink.data")])]),
          "external data location 'ext_symlink.data' resolves to", extra=["onnx/ext_symlink.data"],
          comment="fixed BUG compile/onnx_import.cpp external_path: the location was checked as text only, so a "
                  "symbolic link in the model's directory could read any file")
link("onnx/ext_linkdir", "../ir")
onnx_case("ext_symlink_dir", model([tensor("w", [4, 3], ext=[("location", "ext_linkdir/small.bin")])]),
          "outside the model's directory", extra=["onnx/ext_linkdir"])

# ---------------------------------------------------------------------------- fuzz findings
# Inputs found by the fuzzers (tests/fuzz), checked in byte for byte as found: this script does not
# write them, it only lists them (--check verifies they exist).
FOUND = ["ir/fuzz_output_with_outputs.yaml", "ir/fuzz_output_with_outputs.bin"]
case("ir", FOUND, "must have inputs only",
     comment="fuzz_ir finding (92b8e17): an Output op with outputs left a tensor without a buffer in the planner")

CASES_TXT = ("# Bad-input corpus: generated by gen_cases.py (see its docstring for the format).\n"
             "# kind | files (relative to tests/bad_inputs; @ = tests/data) | expected substring of the ne::Error\n"
             + "\n".join(cases) + "\n")
w("cases.txt", CASES_TXT)


def check():
    """Fresh generation (in OUT) vs the checked-in corpus (HERE); returns the problems found."""
    problems = []
    for rel, target in sorted(links.items()):
        theirs = os.path.join(HERE, rel)
        if not os.path.islink(theirs):
            problems.append(f"{rel}: a symbolic link gen_cases.py makes (to {target}) is not checked in as one")
        elif os.readlink(theirs) != target:
            problems.append(f"{rel}: links to {os.readlink(theirs)}, gen_cases.py makes it link to {target}")
    for rel in sorted(set(written)):
        mine, theirs = os.path.join(OUT, rel), os.path.join(HERE, rel)
        if not os.path.isfile(theirs):
            problems.append(f"{rel}: written by gen_cases.py but not checked in")
            continue
        with open(mine, "rb") as a, open(theirs, "rb") as b:
            da, db = a.read(), b.read()
        if da == db:
            continue
        if rel.endswith((".txt", ".yaml")):
            diff = difflib.unified_diff(db.decode(errors="replace").splitlines(), da.decode(errors="replace").splitlines(),
                                        f"checked in: tests/bad_inputs/{rel}", f"gen_cases.py writes: {rel}", lineterm="")
            problems.append(f"{rel} differs:\n" + "\n".join(diff))
        else:
            problems.append(f"{rel} differs ({len(db)} bytes checked in, {len(da)} generated)")
    for rel in FOUND:
        if not os.path.isfile(os.path.join(HERE, rel)):
            problems.append(f"{rel}: a checked-in fuzz finding that cases.txt names is missing")
    return problems


if ARGS.check:
    found = check()
    shutil.rmtree(OUT)
    for p in found:
        print(p)
    print(f"gen_cases.py --check: {len(written)} files and {len(links)} links written, {len(found)} problem(s)"
          + (" (re-run python3 tests/bad_inputs/gen_cases.py, or fix it, and commit both)" if found else ""))
    sys.exit(1 if found else 0)
print(len([c for c in cases if not c.startswith("#")]), "cases")
