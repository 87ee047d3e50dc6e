"""Neural-Engine-dialect IRs (conf.yaml + model.bin as Intel NE's compiler writes them) through every
entry point that loads an IR: the CLI (build/bin/neural_engine), the module (neural_engine.load),
scripts/run_executor.py and build/bin/neural_engine_server.

Fixtures are written once per module by scripts/gen_ne_ir.py (in child processes: torch.onnx.export
breaks in a process that has loaded the neural_engine module) into a pytest tmp dir:
  families bert, distilbert, roberta, minilm x opsets 11, 14 x precisions fp32, bf16, dynamic_int8
  (bf16 and dynamic_int8 reuse the fp32 fixture's ONNX export, --from_onnx, so all three IRs are the
  same model), plus sparse_int8_transposed (1x4 90% pruned, static QDQ int8) at opset 14.
Generation of the whole matrix takes ~40 s on 2 cores. NE_DIALECT_QUICK=1 restricts it to bert.

Output shapes are the Neural Engine's: DistilBERT's last_hidden_state:0 (a LayerNorm's output) is
[B*S, H] (docs/NE_DIALECT.md), and so is its ref/; shapes must be equal.
Tolerances (every output the IR's Output operator keeps; every value must be finite, checked
explicitly with np.isfinite so that a NaN fails):
  fp32                      max |engine - ref/| <= 1e-4 (ref/: gen_ne_ir.py's float64 evaluation)
  bf16, dynamic_int8        cosine per row (last axis) >= 0.999 against the fp32 fixture's ref/
  sparse_int8_transposed    cosine per row >= 0.999 against its own ref/ (the dequantized fp32 model)
Refusals: an unknown attribute and an unsupported src1_perm are one-line `error:` messages; a
flipped src1_perm on a square weight changes the output, and flipping it together with transposing
the weight's bytes in model.bin gives the reference back.
The sparse IR's profile (--report_json): the encoder InnerProducts run int8 kernels, of the
block-sparse family (`bsgemm`) on AVX-512 VNNI CPUs; elsewhere the kernel and the reason are named.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import BIN, PY_DIR, ROOT

GEN = os.path.join(ROOT, "scripts", "gen_ne_ir.py")
QUICK = os.environ.get("NE_DIALECT_QUICK", "") not in ("", "0")
FAMILIES = ["bert"] if QUICK else ["bert", "distilbert", "roberta", "minilm"]
OPSETS = [11, 14]
PRECISIONS = ["fp32", "bf16", "dynamic_int8"]
MATRIX = [f"{f}_o{o}_{p}" for f in FAMILIES for o in OPSETS for p in PRECISIONS]
SPARSE = [f"{f}_o14_sparse_int8_transposed" for f in FAMILIES]
ALL = MATRIX + SPARSE

# gen_ne_ir.py's default size (hidden 128, 2 heads of 64) makes the minilm fixture byte-identical
# to bert's (same BertModel, same seed): MiniLM's own geometry instead, 12 heads of 32 (hidden 384).
SIZE = {"minilm": ["--hidden", "384", "--heads", "12", "--ffn", "512"]}
FP32_TOL = 1e-4
COS = 0.999


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def gen_root(tmp_path_factory):
    """Generates every fixture of ALL (one gen_ne_ir.py child process each); name -> dir."""
    root = str(tmp_path_factory.mktemp("ne_dialect"))
    t0 = time.time()

    def gen(name, *args):
        out = os.path.join(root, name)
        p = subprocess.run([sys.executable, GEN, "--out", out] + list(args), capture_output=True, text=True,
                           timeout=600)
        assert p.returncode == 0, f"gen_ne_ir.py {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n" \
                                  f"{p.stderr[-3000:]}"

    for f in FAMILIES:
        for o in OPSETS:
            base = f"{f}_o{o}_fp32"
            gen(base, "--family", f, "--opset", str(o), "--precision", "fp32", *SIZE.get(f, []))
            for p in PRECISIONS[1:]:
                gen(f"{f}_o{o}_{p}", "--family", f, "--opset", str(o), "--precision", p, "--from_onnx",
                    os.path.join(root, base, "src"))
        gen(f"{f}_o14_sparse_int8_transposed", "--family", f, "--opset", "14", "--precision",
            "sparse_int8_transposed", *SIZE.get(f, []))
    print(f"\n[ne_dialect] generated {len(ALL)} fixtures in {time.time() - t0:.1f} s")
    return root


class Fixture:
    def __init__(self, root, name):
        self.name = name
        self.dir = os.path.join(root, name)
        self.conf = os.path.join(self.dir, "conf.yaml")
        self.bin = os.path.join(self.dir, "model.bin")
        self.precision = name.split("_", 2)[2]
        self.ir = yaml.safe_load(open(self.conf))
        ops = self.ir["model"]["operator"]
        self.input_names = [k for o in ops.values() if o["type"] == "Input" for k, v in o["output"].items()
                            if "location" not in (v or {})]
        self.output_names = [k for o in ops.values() if o["type"] == "Output" for k in (o.get("input") or {})]
        self.inputs = {n: np.load(os.path.join(self.dir, "inputs", strip(n) + ".npy")) for n in self.input_names}
        # the fp32 reference of the same model: the fp32 fixture's ref/ (bf16, dynamic int8) or ref/
        # itself (fp32, sparse: the dequantized fp32 model)
        refdir = os.path.join(self.dir, "ref")
        if self.precision in ("bf16", "dynamic_int8"):
            fam, opset, _ = name.split("_", 2)
            refdir = os.path.join(root, f"{fam}_{opset}_fp32", "ref")
        self.refs = {n: np.load(os.path.join(refdir, strip(n) + ".npy")) for n in self.output_names}
        # Output shapes are the Neural Engine's (DistilBERT's last_hidden_state:0 is [B*S, H]): ref/
        # has them too, and the comparisons require equal shapes.

    def ops(self):
        return self.ir["model"]["operator"]


def strip(name):
    return name[:-2] if name.endswith(":0") else name


_fx = {}


def fixture(root, name):
    if name not in _fx:
        _fx[name] = Fixture(root, name)
    return _fx[name]


def cos_rows(a, b):
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    return np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def compare(fx, outs, exact=None):
    """Errors (list of str) of outs {IR output name: array} against fx.refs. exact: max-abs (fp32)
    instead of cosine; default by fx.precision."""
    exact = fx.precision == "fp32" if exact is None else exact
    errs = []
    for n, ref in fx.refs.items():
        y = outs.get(n)
        if y is None:
            errs.append(f"{n}: missing (have {sorted(outs)})")
            continue
        if y.shape != ref.shape:
            errs.append(f"{n}: shape {list(y.shape)} != ref {list(ref.shape)}")
            continue
        bad = ~np.isfinite(y)
        if bad.any():
            errs.append(f"{n}: {int(bad.sum())} non-finite values of {y.size}")
            continue
        if exact:
            d = float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64))))
            if not d <= FP32_TOL:
                errs.append(f"{n}: max |engine - ref| {d:.3g} > {FP32_TOL}")
        else:
            c = cos_rows(y, ref)
            if not np.isfinite(c).all() or not c.min() >= COS:
                errs.append(f"{n}: min cosine per row {c.min():.6f} < {COS} (row {int(np.argmin(c))}); "
                            f"whole-tensor cosine {float(cos_rows(y.reshape(1, -1), ref.reshape(1, -1))[0]):.6f}")
    return errs


def run_cli(conf, weight, inputs, workdir, *extra, check=True):
    """Runs build/bin/neural_engine; returns (CompletedProcess, {IR output name: array})."""
    os.makedirs(workdir, exist_ok=True)
    spec = []
    for n, a in inputs.items():
        f = os.path.join(workdir, "in_" + strip(n) + ".npy")
        np.save(f, a)
        spec.append(f"{n}={f}")
    out = os.path.join(workdir, "out")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    p = subprocess.run([os.path.join(BIN, "neural_engine"), "--config", conf, "--weight", weight, "--input",
                        ",".join(spec), "--output_dir", out, "--iterations", "1", "--w", "0"] + list(extra),
                       capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, f"neural_engine failed ({p.returncode}):\n{p.stdout[-1000:]}\n{p.stderr[-2000:]}"
    outs = {}
    if p.returncode == 0:
        for f in os.listdir(out):
            if f.endswith(".npy"):
                outs[f[:-4]] = np.load(os.path.join(out, f))
    return p, outs


def by_ir_name(fx, files):
    """Maps the CLI's output files (':' written as '_') back to the IR's output names."""
    return {n: files[n.replace(":", "_")] for n in fx.output_names if n.replace(":", "_") in files}


# ----------------------------------------------------------------------------- 1. CLI matrix
@pytest.mark.parametrize("name", ALL)
def test_cli(gen_root, tmp_path, name):
    fx = fixture(gen_root, name)
    assert fx.output_names, "the IR has no Output operator inputs"
    p, files = run_cli(fx.conf, fx.bin, fx.inputs, str(tmp_path))
    assert re.search(r"^ Latency is", p.stdout, re.M), p.stdout
    assert re.search(r"^ Throughput is", p.stdout, re.M), p.stdout
    outs = by_ir_name(fx, files)
    assert sorted(outs) == sorted(fx.output_names), f"CLI wrote {sorted(files)}, the IR keeps {fx.output_names}"
    errs = compare(fx, outs)
    assert not errs, f"{name}: " + "; ".join(errs)


# ----------------------------------------------------------------------------- 2. module
@pytest.mark.parametrize("name", ALL)
def test_module(ne, gen_root, name):
    fx = fixture(gen_root, name)
    g = ne.load(fx.conf, fx.bin)
    outs = g.inference(fx.inputs)
    assert sorted(outs) == sorted(fx.output_names), f"module outputs {sorted(outs)} != {fx.output_names}"
    errs = compare(fx, outs)
    assert not errs, f"{name}: " + "; ".join(errs)


# ----------------------------------------------------------------------------- 3. run_executor.py
def test_run_executor(gen_root):
    fx = fixture(gen_root, "bert_o14_fp32")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "run_executor.py"), "--module_dir", PY_DIR,
                        "--input_model", fx.dir, "--mode", "performance", "--batch_size", "2", "--seq_len", "16",
                        "--iterations", "3", "--warmup", "1"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"run_executor.py failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-2000:]}"
    assert re.search(r"^ Latency is [0-9.]+ ms$", p.stdout, re.M), p.stdout
    assert re.search(r"^ Throughput is [0-9.]+$", p.stdout, re.M), p.stdout


# ----------------------------------------------------------------------------- 4. server
def test_server(gen_root, tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
    import test_server as ts  # its Server class and KServe v2 request/response helpers

    ts.ARGS = argparse.Namespace(server=os.path.join(BIN, "neural_engine_server"), workdir=str(tmp_path))
    fx = fixture(gen_root, "bert_o14_fp32")
    srv = ts.Server(["--config", "ne_bert=" + fx.conf, "--weight", fx.bin, "--instances", "1"], name="ne_dialect")
    try:
        st, body, _ = srv.get("/v2/models/ne_bert")
        assert st == 200, body
        meta = json.loads(body)
        served_in = [i["name"] for i in meta["inputs"]]
        # the server's tensor names for the IR's inputs (as written, or without ':0')
        inputs = {}
        for n, a in fx.inputs.items():
            key = n if n in served_in else strip(n)
            assert key in served_in, f"input {n} not among the served inputs {served_in}"
            inputs[key] = a
        for kind in ("json", "binary"):
            body, hdr = ts.json_request(inputs) if kind == "json" else ts.binary_request(inputs)
            st, rb, resp = srv.post("/v2/models/ne_bert/infer", body, hdr)
            assert st == 200, f"{kind}: {st} {rb[:500]!r}"
            _, outs = ts.parse_response(rb, resp)
            mapped = {}
            for n in fx.output_names:
                k = n if n in outs else strip(n)
                assert k in outs, f"{kind}: output {n} missing from the response ({sorted(outs)})"
                mapped[n] = outs[k]
            errs = compare(fx, mapped, exact=True)
            assert not errs, f"server ({kind}): " + "; ".join(errs)
    finally:
        rc = srv.stop()
    assert rc == 0, f"server exited {rc} on SIGTERM; log:\n{open(srv.log).read()[-2000:]}"


# ----------------------------------------------------------------------------- 5. refusals and src1_perm
def op_block(lines, op):
    """(start, end) line indexes of operator `op`'s block in conf.yaml's lines."""
    head = f"    {op}:"
    start = next(i for i, l in enumerate(lines) if l.rstrip("\n") == head)
    end = start + 1
    while end < len(lines) and (lines[end].startswith("      ") or not lines[end].strip()):
        end += 1
    return start, end


def edit_attr(conf_text, op, key, value, add=False):
    """conf.yaml text with attribute `key` of operator `op` set to `value` (a YAML scalar as written);
    add: insert it as a new attribute (first in attr)."""
    lines = conf_text.splitlines(True)
    s, e = op_block(lines, op)
    block = lines[s:e]
    a = next(i for i, l in enumerate(block) if l.rstrip("\n") == "      attr:")
    if add:
        block.insert(a + 1, f"        {key}: {value}\n")
    else:
        k = next(i for i in range(a + 1, len(block)) if block[i].startswith(f"        {key}:"))
        block[k] = f"        {key}: {value}\n"
    return "".join(lines[:s] + block + lines[e:])


def square_ip(fx):
    """(op name, weight name) of the first InnerProduct with an fp32 square weight used by no other op,
    its src1_perm '1,0'."""
    ops = fx.ops()
    consts = {k: v for o in ops.values() if o["type"] == "Input" for k, v in o["output"].items()
              if "location" in (v or {})}
    uses = {}
    for o in ops.values():
        for t in (o.get("input") or {}):
            uses[t] = uses.get(t, 0) + 1
    for name, o in ops.items():
        if o["type"] != "InnerProduct":
            continue
        w = list(o["input"])[1]
        c = consts.get(w)
        attr = o.get("attr") or {}
        if c and c["dtype"] == "fp32" and len(c["shape"]) == 2 and c["shape"][0] == c["shape"][1] \
                and uses[w] == 1 and str(attr.get("src1_perm")) == "1,0":
            return name, w, c
    pytest.fail("no InnerProduct with a square fp32 weight in " + fx.conf)


def copy_fixture(fx, dst, conf_text=None):
    os.makedirs(dst, exist_ok=True)
    shutil.copy(fx.bin, os.path.join(dst, "model.bin"))
    with open(os.path.join(dst, "conf.yaml"), "w") as f:
        f.write(conf_text if conf_text is not None else open(fx.conf).read())
    return os.path.join(dst, "conf.yaml"), os.path.join(dst, "model.bin")


def one_error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    errs = [l for l in lines if l.startswith("error:")]
    assert len(errs) == 1, f"want exactly one 'error:' line, stderr:\n{p.stderr}"
    return errs[0]


def test_refuses_unknown_attribute(gen_root, tmp_path):
    fx = fixture(gen_root, "bert_o14_fp32")
    op, _, _ = square_ip(fx)
    conf, binf = copy_fixture(fx, str(tmp_path / "ir"), edit_attr(open(fx.conf).read(), op, "foo", "1", add=True))
    assert yaml.safe_load(open(conf))["model"]["operator"][op]["attr"]["foo"] == 1
    p, _ = run_cli(conf, binf, fx.inputs, str(tmp_path / "run"), check=False)
    assert p.returncode != 0, "an unknown attribute was accepted"
    line = one_error_line(p)
    assert conf in line and op in line and "foo" in line, line


def test_refuses_bad_src1_perm(gen_root, tmp_path):
    fx = fixture(gen_root, "bert_o14_fp32")
    op, _, _ = square_ip(fx)
    conf, binf = copy_fixture(fx, str(tmp_path / "ir"), edit_attr(open(fx.conf).read(), op, "src1_perm", "'2,0'"))
    p, _ = run_cli(conf, binf, fx.inputs, str(tmp_path / "run"), check=False)
    assert p.returncode != 0, "src1_perm '2,0' was accepted"
    line = one_error_line(p)
    assert conf in line and op in line and "src1_perm" in line, line


def test_src1_perm_is_honoured(gen_root, tmp_path):
    fx = fixture(gen_root, "bert_o14_fp32")
    op, w, c = square_ip(fx)
    text = edit_attr(open(fx.conf).read(), op, "src1_perm", "'0,1'")
    # flipped perm, same bytes: runs, but computes with the transposed weight
    conf, binf = copy_fixture(fx, str(tmp_path / "flip"), text)
    _, files = run_cli(conf, binf, fx.inputs, str(tmp_path / "run_flip"))
    outs = by_ir_name(fx, files)
    assert sorted(outs) == sorted(fx.output_names)
    for n, ref in fx.refs.items():
        assert np.isfinite(outs[n]).all(), f"{n}: non-finite values with src1_perm 0,1"
        d = float(np.max(np.abs(outs[n].astype(np.float64) - ref)))
        assert d > 1e-2, f"{n}: src1_perm '0,1' on {op} changed nothing (max diff {d:.3g}): the attribute is ignored"
    # flipped perm and transposed bytes: the reference again
    conf, binf = copy_fixture(fx, str(tmp_path / "flip_t"), text)
    off, size = c["location"]
    n0, n1 = c["shape"]
    blob = bytearray(open(binf, "rb").read())
    wt = np.frombuffer(bytes(blob[off: off + size]), dtype="<f4").reshape(n0, n1)
    assert size == wt.nbytes and not np.array_equal(wt, wt.T)
    blob[off: off + size] = np.ascontiguousarray(wt.T).astype("<f4").tobytes()
    open(binf, "wb").write(bytes(blob))
    _, files = run_cli(conf, binf, fx.inputs, str(tmp_path / "run_flip_t"))
    errs = compare(fx, by_ir_name(fx, files), exact=True)
    assert not errs, f"src1_perm '0,1' with {w} transposed in model.bin: " + "; ".join(errs)


# ----------------------------------------------------------------------------- 6. sparse profile
def has_vnni():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("flags"):
                return "avx512_vnni" in l.split()
    except OSError:
        pass
    return False


@pytest.mark.parametrize("name", SPARSE)
def test_sparse_profile(gen_root, tmp_path, name):
    fx = fixture(gen_root, name)
    rep = str(tmp_path / "report.json")
    run_cli(fx.conf, fx.bin, fx.inputs, str(tmp_path / "run"), "--report_json", rep)
    prof = json.load(open(rep))["profile"]
    # the encoder's InnerProducts: NE names them after the ONNX nodes of layer.N
    enc = [p for p in prof if p["type"] == "InnerProduct" and re.search(r"layer\.\d+/", p["name"])]
    layers = json.load(open(os.path.join(fx.dir, "meta.json")))["layers"]
    assert len(enc) == 6 * layers, f"{len(enc)} encoder InnerProducts in the profile, want {6 * layers}: " \
                                   f"{[p['name'] for p in prof if p['type'] == 'InnerProduct']}"
    vnni = has_vnni()
    errs = []
    for p in enc:
        k = p["kernel"]
        if not re.search(r"[us]8s8|int8|s8", k):
            errs.append(f"{p['name']}: kernel {k!r} is not int8 ({p['reason']})")
        elif vnni and "bsgemm" not in k:
            errs.append(f"{p['name']}: kernel {k!r} is not block-sparse on an AVX-512 VNNI CPU ({p['reason']})")
        elif not vnni and (not k or not p["reason"]):
            errs.append(f"{p['name']}: kernel {k!r} without a reason")
    assert not errs, "; ".join(errs)
    if not vnni:
        print(f"\n[ne_dialect] no AVX-512 VNNI: {enc[0]['kernel']}: {enc[0]['reason']}")
