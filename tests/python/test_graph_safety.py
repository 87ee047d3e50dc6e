"""neural_engine module (issue 24): lazily built Graph members under many Python threads at once,
big-endian numpy inputs converted (never misread), threads= setting the OpenMP threads the Graph's
runs use (whichever Python thread calls), and the module's temporary directory removed without a
shell.

Exactness: a big-endian array holds the same values as its little-endian twin, so the outputs must be
bitwise equal (same kernels, same inputs); so must every thread's view of Graph.outputs.
"""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import PY_DIR, fixture_dir, fixture_inputs

RNG_SEED = 24


def _fp32_model(tmp_path, k=8, n=5):
    """x[B, S, k] fp32 -> MatMul(W[k, n]) + b -> Softmax: a model with an fp32 graph input."""
    rng = np.random.default_rng(RNG_SEED)
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Add", ["h", "b"], ["hb"], name="add"),
             helper.make_node("Softmax", ["hb"], ["y"], name="sm", axis=-1)]
    g = helper.make_graph(nodes, "be", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 7
    p = os.path.join(str(tmp_path), "be.onnx")
    onnx.save(m, p)
    return p


# ------------------------------------------------------------------------- lazy members, many threads

def test_fresh_graph_lazy_members_from_many_threads(ne):
    """16 threads released at once (a barrier) on a fresh Graph: outputs (computed on first access,
    with the GIL released), inputs, inference. Every thread sees the same outputs, equal to those a
    single thread computes, and every inference is right. Five fresh Graphs, so the first access races
    each time."""
    path = os.path.join(fixture_dir("tiny"), "model.onnx")
    feeds = fixture_inputs("tiny")
    ref_graph = ne.compile(path)
    want_outputs = ref_graph.outputs
    want_y = ref_graph.inference(feeds)["last_hidden_state"]
    assert want_outputs[0]["shape"] == [-1, -1, want_y.shape[-1]], want_outputs
    n_threads = 16
    for round_ in range(5):
        g = ne.compile(path)
        barrier = threading.Barrier(n_threads)
        errors, seen = [], []

        def work(t):
            try:
                barrier.wait(30)
                for i in range(4):
                    if (t + i) % 4 == 3:
                        y = g.inference(feeds)["last_hidden_state"]
                        if not np.array_equal(y, want_y):
                            errors.append(f"round {round_} thread {t}: wrong inference")
                    elif (t + i) % 4 == 2:
                        if [x["name"] for x in g.inputs] != [x["name"] for x in ref_graph.inputs]:
                            errors.append(f"round {round_} thread {t}: inputs differ")
                    else:
                        seen.append(g.outputs)
            except Exception as e:  # noqa: BLE001
                errors.append(f"round {round_} thread {t}: {e!r}")

        th = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for x in th:
            x.start()
        for x in th:
            x.join(120)
        assert not [t for t, x in enumerate(th) if x.is_alive()], "threads still running after 120 s"
        assert not errors, errors
        assert seen and all(o == want_outputs for o in seen), (want_outputs, [o for o in seen if o != want_outputs])


# ------------------------------------------------------------------------------- big-endian inputs

def test_big_endian_float_input_matches_little_endian(ne, tmp_path):
    g = ne.compile(_fp32_model(tmp_path))
    x = np.random.default_rng(RNG_SEED).standard_normal((2, 3, 8)).astype("<f4")
    want = g.inference({"x": x})["y"]
    assert g.copied_inputs == []
    for be in (x.astype(">f4"), x.astype(">f4")[:, ::-1][:, ::-1], np.asfortranarray(x.astype(">f4"))):
        assert be.dtype.byteorder == ">" and np.array_equal(be, x)
        y = g.inference({"x": be})["y"]
        assert np.array_equal(y, want), "a big-endian input was misread"
        assert g.copied_inputs == ["x"]
    assert np.array_equal(g.inference([x.astype(">f4")])["y"], want)  # list form too


def test_big_endian_int_inputs_match_little_endian(ne):
    g = ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"))
    feeds = fixture_inputs("tiny")
    want = g.inference(feeds)["last_hidden_state"]
    for dt in (">i8", ">i4"):  # the model's int64, and another integer type in the other byte order
        be = {k: v.astype(dt) for k, v in feeds.items()}
        y = g.inference(be)["last_hidden_state"]
        assert np.array_equal(y, want), f"{dt} ids misread"
        assert sorted(g.copied_inputs) == sorted(feeds)


def test_big_endian_calibration_inputs(ne, tmp_path):
    """calib_inputs are written as .npy files, which the engine reads little-endian only: big-endian
    sets are converted, and calibrate exactly as their little-endian twins."""
    path = os.path.join(fixture_dir("tiny"), "model.onnx")
    feeds = fixture_inputs("tiny")
    le = ne.compile(path, precision="int8", calib_inputs=[feeds])
    be = ne.compile(path, precision="int8", calib_inputs=[{k: v.astype(">i8") for k, v in feeds.items()}])
    assert np.array_equal(le.inference(feeds)["last_hidden_state"], be.inference(feeds)["last_hidden_state"])


# ------------------------------------------------------------------------------------------ threads=

def _report_threads(g):
    return g.benchmark(batch_size=1, seq_len=8, iterations=1, warmup=0, profile=False)["threads"]


def test_threads_sets_the_graphs_openmp_threads(ne):
    """threads=N: the Graph's calls run with N OpenMP threads, from the main thread and from any other
    Python thread (OpenMP's count is per thread: setting it once in the compiling thread missed the
    others); threads=0 keeps the calling thread's default (OMP_NUM_THREADS); one Graph's setting does
    not leak into another's calls."""
    path = os.path.join(fixture_dir("tiny"), "model.onnx")
    g0 = ne.compile(path)
    default = _report_threads(g0)
    g1 = ne.compile(path, threads=1)
    g3 = ne.compile(path, threads=3)
    assert (g0.threads, g1.threads, g3.threads) == (0, 1, 3)
    assert _report_threads(g3) == 3
    assert _report_threads(g1) == 1
    assert _report_threads(g0) == default, "threads= of another Graph leaked into this one"
    got = {}

    def worker():
        got["g3"], got["g1"], got["g0"] = _report_threads(g3), _report_threads(g1), _report_threads(g0)

    t = threading.Thread(target=worker)
    t.start()
    t.join(120)
    assert not t.is_alive(), "the worker thread is still running after 120 s"
    assert got == {"g3": 3, "g1": 1, "g0": default}, got
    with pytest.raises(ValueError, match="threads"):
        ne.compile(path, threads=-1)


def test_threads_really_runs_that_many_openmp_threads(tmp_path):
    """The OS threads of a fresh process (OMP_NUM_THREADS=1): a Graph with threads=3 run from a new
    Python thread starts OpenMP workers for it (libgomp keeps a pool per calling thread); threads=0
    starts none. Counted in /proc/self/task while the calling thread is alive."""
    script = textwrap.dedent(f"""
        import os, sys, threading
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        sys.path.insert(0, {PY_DIR!r})  # first: the module under test
        import numpy as np
        import neural_engine as ne
        from conftest import fixture_dir, fixture_inputs
        path = os.path.join(fixture_dir("distil_small"), "model.onnx")
        feeds = {{k: np.repeat(v, 4, axis=0) for k, v in fixture_inputs("distil_small").items()}}
        res = {{}}
        for n in (0, 3):
            g = ne.compile(path, threads=n)
            def run():
                before = len(os.listdir("/proc/self/task"))
                g.inference(feeds)
                res[n] = len(os.listdir("/proc/self/task")) - before
            t = threading.Thread(target=run)
            t.start()
            t.join()
        print(res[0], res[3])
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    extra0, extra3 = map(int, p.stdout.split()[-2:])
    assert extra0 == 0, f"threads=0 under OMP_NUM_THREADS=1 started {extra0} threads"
    assert extra3 >= 2, f"threads=3 started {extra3} OpenMP worker threads (expected 2: 3 with the caller)"


# ---------------------------------------------------------------------------------- temporary directory

def test_temporary_directory_removed_without_a_shell(ne, tmp_path, monkeypatch):
    """ne.compile(bytes) and calib_inputs write into a temporary directory under TMPDIR: it is removed
    after, with no shell command (PATH empty: no `rm` to run), even with a quote in its path."""
    tmp = tmp_path / "it's tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("PATH", "")
    path = os.path.join(fixture_dir("tiny"), "model.onnx")
    with open(path, "rb") as f:
        data = f.read()
    feeds = fixture_inputs("tiny")
    g = ne.compile(data, precision="int8", calib_inputs=[feeds])
    assert g.inference(feeds)["last_hidden_state"].shape[0] == 3
    assert os.listdir(tmp) == [], f"left behind in TMPDIR: {os.listdir(tmp)}"
