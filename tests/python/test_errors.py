"""Errors raise Python exceptions with the command line's one-line message: ValueError for bad
inputs (names, dtypes, ranks, shapes), files and models; RuntimeError for other engine errors.
The IR and ONNX cases of the CLI's bad-input corpus (tests/bad_inputs/cases.txt) run through the
module; its .npy cases do not apply (Python reads .npy files with numpy)."""
import os

import numpy as np
import pytest

from conftest import HERE, ROOT, fixture_dir, fixture_inputs

BAD = os.path.join(ROOT, "tests", "bad_inputs")
DATA = os.path.join(ROOT, "tests", "data")


def corpus(kind):
    cases = []
    for line in open(os.path.join(BAD, "cases.txt")):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, files, want = [x.strip() for x in line.split("|", 2)]
        if k != kind:
            continue
        paths = [os.path.join(DATA, f[1:].lstrip("/")) if f.startswith("@") else os.path.join(BAD, f)
                 for f in files.split()]
        cases.append(pytest.param(paths, want, id=os.path.basename(paths[0])))
    return cases


def small_run(g):
    """Runs once on small generated-like inputs (as the C++ corpus runner does)."""
    feeds = {}
    for i in g.inputs:
        shape = [d if d >= 0 else (2 if j == 0 else 3) for j, d in enumerate(i["shape"] or [-1, -1])]
        dt = np.dtype(i["dtype"]) if i["dtype"] not in (None, "bfloat16") else np.float32
        n = int(np.prod(shape))
        feeds[i["name"]] = (np.arange(n) % 2).astype(dt).reshape(shape)
    g.inference(feeds)


@pytest.mark.parametrize("paths,want", corpus("ir"))
def test_ir_corpus(ne, paths, want):
    conf = paths[0]
    binf = paths[1] if len(paths) > 1 else ""
    with pytest.raises((ValueError, RuntimeError)) as e:
        g = ne.load(conf, binf)
        small_run(g)
    assert want in str(e.value)
    # Load-time errors (the file, the model) are ValueError.
    try:
        ne.load(conf, binf)
    except ValueError:
        pass
    except RuntimeError as r:
        pytest.fail(f"load() raised RuntimeError, not ValueError: {r}")


@pytest.mark.parametrize("paths,want", corpus("onnx"))
def test_onnx_corpus(ne, paths, want):
    with pytest.raises((ValueError, RuntimeError)) as e:
        g = ne.compile(paths[0])
        small_run(g)
    assert want in str(e.value)


@pytest.fixture(scope="module")
def tiny(ne):
    return ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"))


def good():
    return fixture_inputs("tiny")


def test_unknown_input_name(tiny):
    with pytest.raises(ValueError, match="input 'input_idz' is not an input of the model"):
        tiny.inference(dict(good(), input_idz=good()["input_ids"]))


def test_missing_input(tiny):
    f = good()
    del f["attention_mask"]
    with pytest.raises(ValueError, match="model input 'attention_mask' was not given"):
        tiny.inference(f)


def test_wrong_count_in_list(tiny):
    with pytest.raises(ValueError, match="2 arrays given, the model has 3 inputs"):
        tiny.inference([good()["input_ids"], good()["attention_mask"]])


def test_wrong_dtype(tiny):
    with pytest.raises(ValueError, match="input 'input_ids': dtype fp32 given, the model expects"):
        tiny.inference(dict(good(), input_ids=good()["input_ids"].astype(np.float32)))
    with pytest.raises(ValueError, match="numpy dtype complex64 is not one the engine takes"):
        tiny.inference(dict(good(), input_ids=good()["input_ids"].astype(np.complex64)))
    ids_dtype = np.dtype([i for i in tiny.inputs if i["name"] == "input_ids"][0]["dtype"])
    other = np.int64 if ids_dtype == np.int32 else np.int32
    # int64 ids for an int32 model: converted when they fit, else ValueError; an int32 id past the
    # embedding table of an int64 model: Gather's RuntimeError.
    exc = ValueError if other == np.int64 else RuntimeError
    with pytest.raises(exc, match="values do not fit" if other == np.int64 else "out of range"):
        big = good()["input_ids"].astype(other)
        big[0, 0] = np.iinfo(other).max
        tiny.inference(dict(good(), input_ids=big))


def test_wrong_rank_and_shape(tiny):
    ids = good()["input_ids"]
    with pytest.raises(ValueError, match="input 'input_ids': rank 1"):
        tiny.inference(dict(good(), input_ids=ids.reshape(-1)))
    # Shapes that disagree with each other fail in planning: ValueError with the operator's message.
    with pytest.raises(ValueError, match="does not broadcast"):
        tiny.inference(dict(good(), attention_mask=good()["attention_mask"][:, :3].copy()))
    tiny.inference(good())


def test_not_arrays(tiny):
    with pytest.raises(ValueError, match="expected a list"):
        tiny.inference(42)
    with pytest.raises(ValueError, match="dict keys must be input names"):
        tiny.inference({1: good()["input_ids"]})
    with pytest.raises((ValueError, TypeError)):
        tiny.inference(dict(good(), input_ids=[["a", "b"]]))


def test_token_ids_out_of_range(tiny):
    ids = good()["input_ids"].copy()
    ids[0, 0] = 10 ** 6
    with pytest.raises(RuntimeError, match=r"index 1000000 .* is out of range for axis 0 of size"):
        tiny.inference(dict(good(), input_ids=ids))
    tiny.inference(good())  # and the graph still works


def test_bad_files(ne, tmp_path):
    with pytest.raises(ValueError, match="no_such.yaml"):
        ne.load(str(tmp_path / "no_such.yaml"), str(tmp_path / "no_such.bin"))
    with pytest.raises(ValueError, match="nothing.onnx"):
        ne.compile(str(tmp_path / "nothing.onnx"))
    with pytest.raises(ValueError):
        ne.compile(b"this is not an onnx model")
    with pytest.raises(ValueError, match="precision"):
        ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"), precision="int4")


def test_truncated_model_bin(ne, tmp_path):
    g = ne.compile(os.path.join(fixture_dir("tiny"), "model.onnx"))
    g.save(str(tmp_path / "ir"))
    b = tmp_path / "ir" / "model.bin"
    data = b.read_bytes()
    b.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.bin"):
        ne.load(str(tmp_path / "ir" / "conf.yaml"), str(b))
