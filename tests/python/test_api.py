"""neural_engine module: outputs against the torch reference and bit-exact against the CLI,
list/dict inputs, metadata, save/load, bytes, benchmark/profile/inspect, zero-copy inputs.

Tolerances: fp32 vs the torch fp32 reference max |diff| <= 1e-4 (tests/compile/test_e2e.cpp);
int8 vs fp32 per-token cosine >= 0.99 (tests/quant/test_quant.cpp); module vs CLI: bitwise.
"""
import json
import os

import numpy as np
import pytest

from conftest import compile_ir, fixture_dir, fixture_inputs, run_cli

FIXTURES = ["tiny", "tiny_notok", "distil_small", "tiny_1x4_90", "tiny_4x1_90"]


@pytest.mark.parametrize("name", FIXTURES)
def test_matches_torch_reference(ne, name):
    g = ne.compile(os.path.join(fixture_dir(name), "model.onnx"))
    out = g.inference(fixture_inputs(name))
    ref = np.load(os.path.join(fixture_dir(name), "ref", "last_hidden_state.npy"))
    assert list(out) == [o["name"] for o in g.outputs]
    y = out["last_hidden_state"]
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert np.max(np.abs(y.astype(np.float64) - ref)) <= 1e-4


def test_list_and_dict_inputs_agree(ne):
    g = ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"))
    inp = fixture_inputs("tiny")
    names = [i["name"] for i in g.inputs]
    a = g.inference(inp)["last_hidden_state"]
    b = g.inference([inp[n] for n in names])["last_hidden_state"]
    c = g([inp[n] for n in names])["last_hidden_state"]
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_metadata(ne):
    g = ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"))
    ins = {i["name"]: i for i in g.inputs}
    assert set(ins) == {"input_ids", "attention_mask", "token_type_ids"}
    for i in ins.values():
        assert i["shape"] == [-1, -1]
        assert np.dtype(i["dtype"]).kind == "i"
    (o,) = g.outputs
    assert o["name"] == "last_hidden_state" and o["dtype"] == "float32"


@pytest.mark.parametrize("name,precision", [("tiny", "fp32"), ("tiny_1x4_90", "fp32"), ("tiny_1x4_90", "int8"),
                                            ("tiny", "bf16"), ("tiny_4x1_90", "int8_dynamic")])
def test_bit_exact_with_cli(ne, tmp_path, name, precision):
    flags = []
    if precision == "int8_dynamic":
        flags = ["--precision", "int8", "--int8_mode", "dynamic"]
    elif precision != "fp32":
        flags = ["--precision", precision]
    conf, binf = compile_ir(name, tmp_path / "ir", *flags)
    inp = fixture_inputs(name)
    for k, v in inp.items():
        np.save(tmp_path / f"{k}.npy", v)
    run_cli("neural_engine", "--config", conf, "--weight", binf, "--iterations", "1", "--w", "0", "--input",
            ",".join(f"{k}={tmp_path / k}.npy" for k in inp), "--output_dir", str(tmp_path / "out"))
    cli = np.load(tmp_path / "out" / "last_hidden_state.npy")
    g = ne.load(conf, binf)
    mine = g.inference(inp)["last_hidden_state"]
    assert mine.dtype == cli.dtype and mine.shape == cli.shape
    assert np.array_equal(mine, cli), f"max diff {np.max(np.abs(mine - cli))}"
    # Same IR compiled by the module directly: the same outputs too.
    g2 = ne.compile(os.path.join(fixture_dir(name), "model.onnx"), precision=precision)
    assert np.array_equal(g2.inference(inp)["last_hidden_state"], cli)


def test_int8_close_to_fp32(ne):
    p = os.path.join(fixture_dir("tiny_1x4_90"), "model.onnx")
    inp = fixture_inputs("tiny_1x4_90")
    a = ne.compile(p).inference(inp)["last_hidden_state"].astype(np.float64)
    b = ne.compile(p, precision="int8").inference(inp)["last_hidden_state"].astype(np.float64)
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    cos = np.sum(a2 * b2, 1) / (np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1))
    assert cos.min() >= 0.99


def test_group_channels_keeps_outputs(ne):
    # Output-channel grouping (issue 14) permutes weights; the outputs stay (fp32 summation order).
    p = os.path.join(fixture_dir("heads2_1x4_90"), "model.onnx")
    inp = fixture_inputs("heads2_1x4_90")
    a = ne.compile(p).inference(inp)["last_hidden_state"]
    b = ne.compile(p, group_channels=True).inference(inp)["last_hidden_state"]
    assert np.max(np.abs(a - b)) <= 1e-5


def test_compile_from_bytes_and_calib_inputs(ne):
    p = os.path.join(fixture_dir("tiny"), "model.onnx")
    inp = fixture_inputs("tiny")
    with open(p, "rb") as f:
        g = ne.compile(f.read())
    assert np.array_equal(g.inference(inp)["last_hidden_state"], ne.compile(p).inference(inp)["last_hidden_state"])
    # Calibrating int8 on given sets gives a working int8 graph.
    gi = ne.compile(p, precision="int8", calib_inputs=[inp, inp])
    assert np.isfinite(gi.inference(inp)["last_hidden_state"]).all()


def test_save_and_load(ne, tmp_path):
    g = ne.compile(os.path.join(fixture_dir("tiny_1x4_90"), "model.onnx"), precision="int8")
    g.save(str(tmp_path / "ir"))
    assert (tmp_path / "ir" / "conf.yaml").is_file() and (tmp_path / "ir" / "model.bin").is_file()
    h = ne.load(str(tmp_path / "ir" / "conf.yaml"), str(tmp_path / "ir" / "model.bin"))
    inp = fixture_inputs("tiny_1x4_90")
    assert np.array_equal(g.inference(inp)["last_hidden_state"], h.inference(inp)["last_hidden_state"])


def test_outputs_are_owned_and_writable(ne):
    g = ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"))
    inp = fixture_inputs("tiny")
    a = g.inference(inp)["last_hidden_state"]
    keep = a.copy()
    assert a.flags.owndata is False and a.base is not None  # held by its capsule, not by the engine
    a[...] = 0  # the caller may write it
    b = g.inference(inp)["last_hidden_state"]
    assert np.array_equal(b, keep) and not np.shares_memory(a, b)


def test_zero_copy_inputs(ne):
    g = ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"))
    inp = {k: np.ascontiguousarray(v) for k, v in fixture_inputs("tiny").items()}
    want = {i["name"]: np.dtype(i["dtype"]) for i in g.inputs}
    inp = {k: v.astype(want[k]) for k, v in inp.items()}
    before = {k: v.copy() for k, v in inp.items()}
    out = g.inference(inp)["last_hidden_state"]
    assert g.copied_inputs == []          # read in place
    for k in inp:                         # and never written
        assert np.array_equal(inp[k], before[k])
    # Non-contiguous views and other integer types are converted (and said so) with the same result.
    ids = inp["input_ids"]
    wide = np.zeros((ids.shape[0], ids.shape[1] * 2), ids.dtype)
    wide[:, ::2] = ids
    other = np.int32 if want["attention_mask"] == np.int64 else np.int64
    inp2 = dict(inp, input_ids=wide[:, ::2], attention_mask=inp["attention_mask"].astype(other))
    assert not inp2["input_ids"].flags.c_contiguous
    out2 = g.inference(inp2)["last_hidden_state"]
    assert sorted(g.copied_inputs) == ["attention_mask", "input_ids"]
    assert np.array_equal(out, out2)


def test_benchmark_matches_cli_report(ne, tmp_path):
    conf, binf = compile_ir("tiny_1x4_90", tmp_path / "ir")
    run_cli("neural_engine", "--config", conf, "--weight", binf, "--iterations", "2", "--w", "1", "--batch_size", "2",
            "--seq_len", "16", "--report_json", str(tmp_path / "r.json"))
    cli = json.load(open(tmp_path / "r.json"))
    g = ne.load(conf, binf)
    r = g.benchmark(batch_size=2, seq_len=16, iterations=2, warmup=1)
    assert list(r) == list(cli)
    assert r["batch"] == 2 and r["seq"] == 16 and r["iterations"] == 2 and r["throughput"] > 0
    assert set(r["memory"]) == set(cli["memory"]) and r["cpu"] == cli["cpu"]
    assert [p["kernel"] for p in r["profile"]] == [p["kernel"] for p in cli["profile"]]
    prof = g.profile(batch_size=2, seq_len=16, iterations=1, warmup=0)
    ips = [p for p in prof if p["type"] == "InnerProduct"]
    assert ips and all(p["kernel"] and p["reason"] for p in ips)
    if not ne.cpu()["isa"].startswith("avx512"):
        # No block-sparse kernel but the scalar reference below AVX-512: dense, saying so.
        assert all(p["kernel"].startswith("onednn") for p in ips), [p["kernel"] for p in ips]
        assert any("scalar reference" in p["reason"] for p in ips), [p["reason"] for p in ips]
    else:
        assert any(p["kernel"].startswith("bsgemm") for p in ips), [p["kernel"] for p in ips]
    assert abs(sum(p["share"] for p in prof) - 1) < 1e-6


def test_inspect(ne, tmp_path):
    p = os.path.join(fixture_dir("tiny_1x4_90"), "model.onnx")
    r = ne.inspect(p)
    g = ne.compile(p)
    r2 = ne.inspect(g)
    assert r["weights"] and len(r["weights"]) == len(r2["weights"])
    w = [x for x in r["weights"] if x.get("inner_product")]
    assert w, r["weights"][0].keys()
    run_cli("neural_engine_inspect", "--model", p, "--output_dir", str(tmp_path / "rep"))
    cli = json.load(open(tmp_path / "rep" / "report.json"))
    assert [x["tensor"] for x in cli["weights"]] == [x["tensor"] for x in r["weights"]]


def test_cpu(ne):
    c = ne.cpu()
    assert set(c) == {"model", "isa", "isa_detected", "amx"}
