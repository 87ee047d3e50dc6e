"""scripts/run_executor.py: the Neural Engine example's lines in performance mode, and accuracy
on a data set whose labels come from the torch reference (argmax over each row's flattened
output), so the engine must reproduce the reference's predictions."""
import os
import re
import subprocess
import sys

import numpy as np

from conftest import PY_DIR, ROOT, compile_ir, fixture_dir, fixture_inputs

SCRIPT = os.path.join(ROOT, "scripts", "run_executor.py")


def run(*args):
    p = subprocess.run([sys.executable, SCRIPT, "--module_dir", PY_DIR] + list(args), capture_output=True, text=True,
                       timeout=300)
    return p


def test_performance_lines(tmp_path):
    conf, _ = compile_ir("tiny_1x4_90", tmp_path / "ir", "--precision", "int8")
    p = run("--input_model", str(tmp_path / "ir"), "--mode", "performance", "--batch_size", "2", "--seq_len", "16",
            "--iterations", "3", "--warmup", "1")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^ Batch Size is 2$", p.stdout, re.M)
    assert re.search(r"^ Latency is [0-9.]+ ms$", p.stdout, re.M)
    assert re.search(r"^ Throughput is [0-9.]+$", p.stdout, re.M)
    # An ONNX model works too.
    p = run("--input_model", os.path.join(fixture_dir("tiny"), "model.onnx"), "--iterations", "1", "--seq_len", "8")
    assert p.returncode == 0 and " Throughput is" in p.stdout, p.stderr


def test_accuracy_against_reference(tmp_path):
    inp = fixture_inputs("tiny")
    ref = np.load(os.path.join(fixture_dir("tiny"), "ref", "last_hidden_state.npy"))
    labels = np.argmax(ref.reshape(ref.shape[0], -1), axis=-1)
    for b in range(2):  # two batch directories, the layout scripts/accuracy writes
        d = tmp_path / "data" / f"batch_{b:03d}"
        d.mkdir(parents=True)
        for k, v in inp.items():
            np.save(d / f"{k}.npy", v)
        np.save(d / "labels.npy", labels)
    p = run("--input_model", os.path.join(fixture_dir("tiny"), "model.onnx"), "--mode", "accuracy", "--data_dir",
            str(tmp_path / "data"))
    assert p.returncode == 0, p.stderr
    assert re.search(r"^ Accuracy is 1\.0000$", p.stdout, re.M), p.stdout
    assert re.search(r"^ Samples is 6$", p.stdout, re.M), p.stdout


def test_errors_are_one_line(tmp_path):
    p = run("--input_model", str(tmp_path / "missing.onnx"))
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "missing.onnx" in p.stderr
    (tmp_path / "d").mkdir()
    p = run("--input_model", os.path.join(fixture_dir("tiny"), "model.onnx"), "--mode", "accuracy", "--data_dir",
            str(tmp_path / "d"))
    assert p.returncode != 0 and "labels.npy" in p.stderr
