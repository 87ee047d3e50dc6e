"""Shared fixtures of the Python-module tests (run by ctest: tests/python/CMakeLists.txt).

Environment (set by ctest): NE_PYTHON_DIR (build/python, holds the module), NE_BIN_DIR (build/bin),
NE_TEST_DATA (tests/data). NE_DISPATCH=threshold everywhere, so that the CLI and the module pick the
same kernels (measured dispatch times candidates and can differ between two processes).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PY_DIR = os.environ.get("NE_PYTHON_DIR", os.path.join(ROOT, "build", "python"))
BIN = os.environ.get("NE_BIN_DIR", os.path.join(ROOT, "build", "bin"))
DATA = os.environ.get("NE_TEST_DATA", os.path.join(ROOT, "tests", "data"))
os.environ.setdefault("NE_DISPATCH", "threshold")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, PY_DIR)

import neural_engine  # noqa: E402


def fixture_dir(name):
    d = os.path.join(DATA, "models", name)
    if not os.path.isfile(os.path.join(d, "model.onnx")):
        pytest.fail(f"fixture missing: {d}/model.onnx (scripts/gen_fixtures.sh makes it)")
    return d


def fixture_inputs(name):
    d = os.path.join(fixture_dir(name), "inputs")
    return {f[:-4]: np.load(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith(".npy")}


def run_cli(*args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([os.path.join(BIN, args[0])] + list(args[1:]), capture_output=True, text=True, env=e,
                       timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


def compile_ir(name, out_dir, *flags):
    run_cli("neural_engine_compile", "--model", os.path.join(fixture_dir(name), "model.onnx"), "--output_dir",
            str(out_dir), *flags)
    return os.path.join(out_dir, "conf.yaml"), os.path.join(out_dir, "model.bin")


@pytest.fixture(scope="session")
def ne():
    return neural_engine
