"""The default dispatch (NE_DISPATCH=timed: each InnerProduct times its candidates on this CPU and
keeps the fastest) end to end through the CLI, the Python module and the server, against the
fixture's torch reference (float64-checked export, tests/data/models/*/ref) with a tolerance: the
other tests pin NE_DISPATCH=threshold so that two processes pick the same kernels bit for bit;
these do not, and must still be right whatever kernel the timing picks.

Each runs in a subprocess whose environment has NE_DISPATCH=timed (the default), so the module
imported here (threshold) is not used.
"""
import json
import os
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from conftest import BIN, PY_DIR, fixture_dir, fixture_inputs, run_cli

TIMED = {"NE_DISPATCH": "timed"}
# fp32 reference vs the engine's fp32 kernels (any of them: sparse, oneDNN, different blockings).
RTOL, ATOL = 1e-4, 1e-4
MODELS = ["tiny", "tiny_1x4_90", "tiny_4x1_90"]


def check_close(got, name):
    ref = np.load(os.path.join(fixture_dir(name), "ref", "last_hidden_state.npy"))
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.all(np.isfinite(got)), "non-finite output"
    err = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    assert np.allclose(got, ref, rtol=RTOL, atol=ATOL), f"max |diff| {err} vs the torch reference"


@pytest.mark.parametrize("name", MODELS)
def test_cli_timed(tmp_path, name):
    inp = fixture_inputs(name)
    for k, v in inp.items():
        np.save(tmp_path / f"{k}.npy", v)
    p = run_cli("neural_engine", "--model", os.path.join(fixture_dir(name), "model.onnx"), "--iterations", "1", "--w", "0",
                "--input", ",".join(f"{k}={tmp_path / k}.npy" for k in inp), "--output_dir", str(tmp_path / "out"),
                env=TIMED)
    check_close(np.load(tmp_path / "out" / "last_hidden_state.npy"), name)


@pytest.mark.parametrize("name", MODELS)
def test_python_timed(tmp_path, name):
    inp = fixture_inputs(name)
    np.savez(tmp_path / "in.npz", **inp)
    code = f"""
import sys, numpy as np
sys.path.insert(0, {PY_DIR!r})
import neural_engine as ne
g = ne.compile({os.path.join(fixture_dir(name), "model.onnx")!r})
x = dict(np.load({str(tmp_path / "in.npz")!r}))
np.save({str(tmp_path / "out.npy")!r}, g.inference(x)["last_hidden_state"])
"""
    env = dict(os.environ, **TIMED)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    check_close(np.load(tmp_path / "out.npy"), name)


def test_server_timed(tmp_path):
    name = "tiny_1x4_90"
    server = os.path.join(BIN, "neural_engine_server")
    if not os.path.exists(server):
        pytest.fail("neural_engine_server was not built")
    env = dict(os.environ, **TIMED)
    p = subprocess.Popen([server, "--port", "0", "--model", "m=" + os.path.join(fixture_dir(name), "model.onnx")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert "listening on" in line, line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        inp = fixture_inputs(name)
        body = json.dumps({"inputs": [{"name": k, "datatype": "INT64", "shape": list(v.shape), "data": v.ravel().tolist()}
                                      for k, v in inp.items()]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/m/infer", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            out = json.loads(r.read())["outputs"][0]
        check_close(np.array(out["data"], np.float32).reshape(out["shape"]), name)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
