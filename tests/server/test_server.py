#!/usr/bin/python3
"""neural_engine_server against a real HTTP client (http.client), on loopback.

Run by ctest (tests/server/CMakeLists.txt), one group per test so each stays well under a minute:
  test_server.py --group protocol|bad_requests \
      --server build/bin/neural_engine_server --cli build/bin/neural_engine \
      --compile build/bin/neural_engine_compile --data tests/data --workdir DIR

Every server is started with --port 0 (it prints the port it chose) and NE_DISPATCH=threshold,
as is the CLI the outputs are compared with (same kernels, no timing-based choice), both with one
OpenMP thread. Timeouts are generous: the machine may be loaded. The groups connections, workers
and drain are in test_server_lifecycle.py, which imports the helpers here (as test_hardening.py does).
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ARGS = None
FAILS = []


def check(cond, what):
    if cond:
        print("  ok   " + what)
    else:
        print("  FAIL " + what)
        FAILS.append(what)


def join_all(threads, timeout, what):
    """Joins the threads within `timeout` seconds in all; one still running fails the test."""
    deadline = time.time() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    alive = sum(1 for t in threads if t.is_alive())
    check(alive == 0, "%s: all %d threads finished (%d still running after %d s)" % (what, len(threads), alive, timeout))


class Server:
    def __init__(self, args, env_extra=None, name="srv"):
        self.log = os.path.join(ARGS.workdir, name + ".log")
        env = dict(os.environ, NE_DISPATCH="threshold", GLOG_minloglevel="1")
        env.update(json.loads(os.environ.get("NE_TEST_SERVER_ENV", "{}")))
        env.update(env_extra or {})
        self.p = subprocess.Popen([ARGS.server, "--port", "0"] + args, stdout=subprocess.PIPE,
                                  stderr=open(self.log, "w"), env=env, text=True)
        line = [None]

        def rd():
            line[0] = self.p.stdout.readline()

        t = threading.Thread(target=rd, daemon=True)
        t.start()
        t.join(90)
        if not line[0] or "listening on" not in line[0]:
            self.p.kill()
            raise RuntimeError("server did not start: %r; log:\n%s" % (line[0], open(self.log).read()))
        self.port = int(line[0].split("127.0.0.1:")[1].split()[0])
        self.rest = []
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        deadline = time.time() + 60
        while time.time() < deadline:
            st, _, _ = self.get("/v2/health/ready")
            if st == 200:
                break
            time.sleep(0.1)

    def _drain_stdout(self):
        for l in self.p.stdout:
            self.rest.append(l)

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path):
        c = self.conn()
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read(), r
        finally:
            c.close()

    def post(self, path, body, headers=None, timeout=60):
        c = self.conn(timeout)
        try:
            c.request("POST", path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), r
        finally:
            c.close()

    def metrics(self):
        st, body, _ = self.get("/metrics")
        assert st == 200
        m = {}
        for l in body.decode().splitlines():
            if l.startswith("#") or not l.strip():
                continue
            k, v = l.rsplit(" ", 1)
            m[k] = float(v)
        return m

    def children(self):
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    parts = f.read().rsplit(")", 1)[1].split()
                if int(parts[1]) == self.p.pid:
                    kids.append(int(d))
            except OSError:
                pass
        return sorted(kids)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode


# ---------------------------------------------------------------- request building
def tensor_json(name, arr, dt=None):
    dt = dt or {np.int64: "INT64", np.int32: "INT32", np.float32: "FP32"}[arr.dtype.type]
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": arr.flatten().tolist()}


def json_request(inputs, outputs=None, binary_output=False, rid=None):
    req = {"inputs": [tensor_json(k, v) for k, v in inputs.items()]}
    if rid:
        req["id"] = rid
    if binary_output:
        req["parameters"] = {"binary_data_output": True}
    if outputs is not None:
        req["outputs"] = outputs
    return json.dumps(req).encode(), {"Content-Type": "application/json"}


def binary_request(inputs, binary_output=True):
    hdr = {"inputs": [], "parameters": {"binary_data_output": binary_output}}
    blobs = []
    for k, v in inputs.items():
        dt = {np.int64: "INT64", np.int32: "INT32", np.float32: "FP32"}[v.dtype.type]
        b = np.ascontiguousarray(v).tobytes()
        hdr["inputs"].append({"name": k, "datatype": dt, "shape": list(v.shape), "parameters": {"binary_data_size": len(b)}})
        blobs.append(b)
    h = json.dumps(hdr).encode()
    return h + b"".join(blobs), {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(h))}


def parse_response(body, resp):
    """{name: np.ndarray} from a JSON or binary infer response."""
    hl = resp.getheader("Inference-Header-Content-Length")
    if hl is None:
        j = json.loads(body)
        blob = b""
    else:
        j = json.loads(body[: int(hl)])
        blob = body[int(hl):]
    out, off = {}, 0
    dts = {"FP32": np.float32, "INT64": np.int64, "INT32": np.int32}
    for o in j["outputs"]:
        dt = dts[o["datatype"]]
        p = o.get("parameters", {})
        if "binary_data_size" in p:
            n = p["binary_data_size"]
            a = np.frombuffer(blob[off: off + n], dtype=dt).reshape(o["shape"])
            off += n
        else:
            a = np.array(o["data"], dtype=dt).reshape(o["shape"])
        out[o["name"]] = a
    return j, out


def cli_outputs(conf, weight, inputs, tag):
    d = os.path.join(ARGS.workdir, "cli_" + tag)
    os.makedirs(d, exist_ok=True)
    spec = []
    for k, v in inputs.items():
        f = os.path.join(d, k + ".npy")
        np.save(f, v)
        spec.append("%s=%s" % (k, f))
    env = dict(os.environ, NE_DISPATCH="threshold", OMP_NUM_THREADS="1", GLOG_minloglevel="2")
    r = subprocess.run([ARGS.cli, "--config", conf, "--weight", weight, "--input", ",".join(spec), "--output_dir", d,
                        "--iterations", "1", "--w", "0"], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("CLI failed: " + r.stderr)
    return {"last_hidden_state": np.load(os.path.join(d, "last_hidden_state.npy"))}


def cli_error(conf, weight, inputs, tag):
    d = os.path.join(ARGS.workdir, "clierr_" + tag)
    os.makedirs(d, exist_ok=True)
    spec = []
    for k, v in inputs.items():
        f = os.path.join(d, k + ".npy")
        np.save(f, v)
        spec.append("%s=%s" % (k, f))
    env = dict(os.environ, NE_DISPATCH="threshold", OMP_NUM_THREADS="1", GLOG_minloglevel="2")
    r = subprocess.run([ARGS.cli, "--config", conf, "--weight", weight, "--input", ",".join(spec),
                        "--iterations", "1", "--w", "0"], env=env, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr.strip()


_IR = {}


def ir(model):
    """Compiles tests/data/models/<model> to an IR once per run: (conf, weight)."""
    if model not in _IR:
        d = os.path.join(ARGS.workdir, "ir_" + model)
        subprocess.run([ARGS.compile, "--model", os.path.join(ARGS.data, "models", model, "model.onnx"), "--output_dir", d],
                       check=True, capture_output=True, timeout=120, env=dict(os.environ, GLOG_minloglevel="2"))
        _IR[model] = (os.path.join(d, "conf.yaml"), os.path.join(d, "model.bin"))
    return _IR[model]


def fixture_inputs(model):
    d = os.path.join(ARGS.data, "models", model, "inputs")
    return {n: np.load(os.path.join(d, n + ".npy")) for n in ("input_ids", "attention_mask", "token_type_ids")}


def rows(inputs, a, b):
    return {k: np.ascontiguousarray(v[a:b]) for k, v in inputs.items()}


def ir_args(*models):
    confs, weights = [], []
    for m in models:
        c, w = ir(m)
        confs.append("%s=%s" % (m, c))
        weights.append(w)
    return ["--config", ",".join(confs), "--weight", ",".join(weights)]


# ---------------------------------------------------------------- groups
def group_protocol():
    sp = ir("tiny_1x4_90")
    srv = Server(ir_args("tiny_1x4_90") + ["--model", "onnx_tiny=" + os.path.join(ARGS.data, "models/tiny/model.onnx"),
                                             "--instances", "1", "--max_queue_delay_us", "100000", "--max_batch_size", "8"],
                 name="protocol")
    try:
        st, body, _ = srv.get("/v2/health/live")
        check(st == 200, "GET /v2/health/live -> 200")
        st, body, _ = srv.get("/v2/health/ready")
        check(st == 200, "GET /v2/health/ready -> 200")
        st, body, _ = srv.get("/v2")
        j = json.loads(body)
        check(st == 200 and j["name"] == "neural_engine_server" and "binary_tensor_data" in j["extensions"],
              "GET /v2: server metadata with binary_tensor_data")
        st, body, _ = srv.get("/v2/models/tiny_1x4_90")
        j = json.loads(body)
        check(st == 200 and [i["name"] for i in j["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
              and j["inputs"][0]["datatype"] == "INT64" and j["inputs"][0]["shape"] == [-1, -1]
              and j["outputs"][0] == {"name": "last_hidden_state", "datatype": "FP32", "shape": [-1, -1, 64]},
              "GET /v2/models/{name}: inputs, outputs, datatypes, shapes: " + body.decode()[:200])
        st, _, _ = srv.get("/v2/models/onnx_tiny/ready")
        check(st == 200, "GET /v2/models/onnx_tiny/ready -> 200 (second model, from ONNX)")
        st, _, _ = srv.get("/v2/models/tiny_1x4_90/versions/1/ready")
        check(st == 200, "GET /v2/models/{name}/versions/1/ready -> 200")
        st, body, _ = srv.get("/v2/models/nope/ready")
        check(st == 404 and "error" in json.loads(body), "unknown model ready -> 404 + error")

        x = fixture_inputs("tiny_1x4_90")
        # JSON and binary forms, b1 and b3, sequential (no batching with others): bit-exact with the CLI.
        for tag, inp in (("b1", rows(x, 0, 1)), ("b1r2", rows(x, 2, 3)), ("b3", x)):
            ref = cli_outputs(sp[0], sp[1], inp, tag)["last_hidden_state"]
            body, hdr = json_request(inp, rid="req-" + tag)
            st, rb, resp = srv.post("/v2/models/tiny_1x4_90/infer", body, hdr)
            j, out = parse_response(rb, resp)
            check(st == 200 and j.get("id") == "req-" + tag and j["model_name"] == "tiny_1x4_90",
                  "JSON infer %s -> 200, id and model echoed" % tag)
            check(out["last_hidden_state"].shape == ref.shape and np.array_equal(out["last_hidden_state"], ref),
                  "JSON infer %s: bit-exact with neural_engine --output_dir" % tag)
            body, hdr = binary_request(inp)
            st, rb, resp = srv.post("/v2/models/tiny_1x4_90/infer", body, hdr)
            j, out = parse_response(rb, resp)
            check(st == 200 and resp.getheader("Inference-Header-Content-Length") is not None
                  and j["outputs"][0]["parameters"]["binary_data_size"] == ref.nbytes,
                  "binary infer %s -> 200, binary output with binary_data_size" % tag)
            check(np.array_equal(out["last_hidden_state"], ref), "binary infer %s: bit-exact with the CLI" % tag)
        # Binary input, JSON output; output selected by name with binary_data.
        inp = rows(x, 1, 2)
        ref = cli_outputs(sp[0], sp[1], inp, "b1r1")["last_hidden_state"]
        body, hdr = binary_request(inp, binary_output=False)
        st, rb, resp = srv.post("/v2/models/tiny_1x4_90/infer", body, hdr)
        j, out = parse_response(rb, resp)
        check(st == 200 and resp.getheader("Inference-Header-Content-Length") is None
              and np.array_equal(out["last_hidden_state"], ref), "binary input, JSON output: bit-exact")
        body, hdr = json_request(inp, outputs=[{"name": "last_hidden_state", "parameters": {"binary_data": True}}])
        st, rb, resp = srv.post("/v2/models/tiny_1x4_90/infer", body, hdr)
        j, out = parse_response(rb, resp)
        check(st == 200 and np.array_equal(out["last_hidden_state"], ref), "outputs[].parameters.binary_data: bit-exact")
        # Versioned path; the ONNX-compiled model against the CLI on its own IR.
        tp = ir("tiny")
        xt = fixture_inputs("tiny")
        ref_t = cli_outputs(tp[0], tp[1], xt, "tiny_b3")["last_hidden_state"]
        body, hdr = binary_request(xt)
        st, rb, resp = srv.post("/v2/models/onnx_tiny/versions/1/infer", body, hdr)
        j, out = parse_response(rb, resp)
        check(st == 200 and np.array_equal(out["last_hidden_state"], ref_t),
              "/v2/models/onnx_tiny/versions/1/infer (--model, compiled at start): bit-exact with the CLI on the IR")

        # Dynamic batching: 6 concurrent b1 requests of the same shape -> batched; each answer
        # matches the CLI on that request alone (compared to 1e-5; exact matches counted).
        refs = [cli_outputs(sp[0], sp[1], rows(x, i % 3, i % 3 + 1), "r%d" % (i % 3))["last_hidden_state"] for i in range(3)]
        before = srv.metrics()
        res = [None] * 6

        def one(i):
            body, hdr = binary_request(rows(x, i % 3, i % 3 + 1))
            st, rb, resp = srv.post("/v2/models/tiny_1x4_90/infer", body, hdr)
            res[i] = (st, parse_response(rb, resp)[1]["last_hidden_state"] if st == 200 else rb)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        [t.start() for t in ts]
        join_all(ts, 60, "client threads")
        after = srv.metrics()
        ok = all(r and r[0] == 200 for r in res)
        close = ok and all(np.allclose(res[i][1], refs[i % 3], rtol=1e-5, atol=1e-5) for i in range(6))
        exact = sum(1 for i in range(6) if ok and np.array_equal(res[i][1], refs[i % 3]))
        k1 = 'ne_batch_size_bucket{model="tiny_1x4_90",le="1"}'
        kc = 'ne_batch_size_count{model="tiny_1x4_90"}'
        nb = after[kc] - before[kc]
        multi = nb - (after[k1] - before[k1])
        check(close, "6 concurrent b1 requests: all 200, each within 1e-5 of the CLI on it alone (%d/6 bit-exact)" % exact)
        check(multi >= 1 and nb < 6, "they ran batched: %d batches, %d of them with more than one row" % (nb, multi))
        # A bad request batched with good ones gets its own 400; the others are answered.
        res2 = [None] * 4

        def two(i):
            inp = rows(x, 0, 1)
            if i == 2:
                inp = dict(inp)
                inp["input_ids"] = inp["input_ids"].copy()
                inp["input_ids"][0, 3] = 100000
            body, hdr = binary_request(inp)
            st, rb, resp = srv.post("/v2/models/tiny_1x4_90/infer", body, hdr)
            res2[i] = (st, rb)

        ts = [threading.Thread(target=two, args=(i,)) for i in range(4)]
        [t.start() for t in ts]
        join_all(ts, 60, "client threads")
        check(res2[2][0] == 400 and b"out of range" in res2[2][1] and all(res2[i][0] == 200 for i in (0, 1, 3)),
              "an id out of range in a batch: that request 400, the others 200")
        m = srv.metrics()
        for k in ('ne_requests_total{model="tiny_1x4_90"}', 'ne_request_latency_seconds_count{model="tiny_1x4_90"}',
                  'ne_queue_time_seconds_count{model="tiny_1x4_90"}', 'ne_instance_utilization{instance="0"}',
                  'ne_request_failures_total{model="tiny_1x4_90",reason="client"}'):
            check(k in m and m[k] > 0, "/metrics has %s = %g" % (k, m.get(k, -1)))
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")


def post_raw(srv, body, headers, path="/v2/models/tiny/infer"):
    st, rb, _ = srv.post(path, body, headers)
    try:
        msg = json.loads(rb).get("error", "")
    except Exception:
        msg = None
    return st, msg


def group_bad_requests():
    conf, weight = ir("tiny")
    srv = Server(ir_args("tiny") + ["--instances", "1", "--max_request_bytes", "200000", "--max_batch_size", "4"],
                 name="bad")
    x = rows(fixture_inputs("tiny"), 0, 1)
    good_body, good_hdr = json_request(x)
    J = {"Content-Type": "application/json"}

    def still_serving(what):
        st, rb, resp = srv.post("/v2/models/tiny/infer", good_body, good_hdr)
        return st == 200

    def bad(what, body, hdr, want=400, path="/v2/models/tiny/infer", contains=None):
        st, msg = post_raw(srv, body, hdr, path)
        ok = st == want and msg is not None and msg != "" and (contains is None or contains in msg)
        check(ok and still_serving(what), "%s -> %d %r; the next good request 200" % (what, st, (msg or "")[:150]))
        return msg

    # Load during the bad requests: 3 clients post good binary requests until the corpus is
    # done; every answer must be 200 and within 1e-5 of the first (batching may change M).
    lb, lh = binary_request(x)
    st0, rb0, resp0 = srv.post("/v2/models/tiny/infer", lb, lh)
    ref = parse_response(rb0, resp0)[1]["last_hidden_state"] if st0 == 200 else None
    stop_load = threading.Event()
    load = {"ok": 0, "bad": []}

    def loader():
        while not stop_load.is_set():
            st, rb, resp = srv.post("/v2/models/tiny/infer", lb, lh)
            if st == 200 and np.allclose(parse_response(rb, resp)[1]["last_hidden_state"], ref, rtol=1e-5, atol=1e-5):
                load["ok"] += 1
            else:
                load["bad"].append((st, rb[:120]))

    loaders = [threading.Thread(target=loader, daemon=True) for _ in range(3)]
    [t.start() for t in loaders]
    try:
        check(st0 == 200 and still_serving("start"), "a good request -> 200")
        bad("malformed JSON", b'{"inputs": [', J, contains="does not parse")
        bad("JSON not an object", b'[1,2]', J)
        # ~190 KB of nesting in "shape": refused while parsing (it used to crash every worker:
        # the value was printed back recursively); the message stays short.
        deep = b'{"inputs":[{"name":"input_ids","datatype":"INT64","shape":' + b"[" * 95000 + b"1" + \
            b"]" * 95000 + b',"data":[1]}]}'
        m = bad("deeply nested shape", deep, J, contains="nests deeper than 32")
        check(m is not None and len(m) < 500, "the nesting error is short (%d chars)" % len(m or ""))
        bad("no inputs", b'{"id":"x"}', J)
        r = json.loads(good_body); r["inputs"][0]["name"] = "input_idz"
        m = bad("wrong tensor name", json.dumps(r).encode(), J, contains="input_idz")
        r = json.loads(good_body); r["inputs"] = r["inputs"][:2]
        bad("missing input", json.dumps(r).encode(), J, contains="was not given")
        r = json.loads(good_body); r["inputs"][0]["datatype"] = "FP32"
        msg = bad("wrong dtype (FP32 ids)", json.dumps(r).encode(), J, contains="dtype")
        # The same message as the CLI prints for the same input.
        xf = dict(x); xf["input_ids"] = x["input_ids"].astype(np.float32)
        rc, err = cli_error(conf, weight, xf, "dtype")
        check(rc == 1 and msg and err == "error: " + msg, "wrong dtype: the CLI prints the same message (%r)" % err[:120])
        r = json.loads(good_body); r["inputs"][0]["datatype"] = "BYTES"
        bad("unsupported datatype BYTES", json.dumps(r).encode(), J, contains="not supported")
        r = json.loads(good_body); r["inputs"][0]["shape"] = [1, 1, 16]
        msg = bad("wrong rank", json.dumps(r).encode(), J, contains="rank")
        x3 = dict(x); x3["input_ids"] = x["input_ids"].reshape(1, 1, 16)
        rc, err = cli_error(conf, weight, x3, "rank")
        check(rc == 1 and msg and err == "error: " + msg, "wrong rank: the CLI prints the same message")
        r = json.loads(good_body); r["inputs"][0]["shape"] = [2, 16]
        bad("shape does not match data", json.dumps(r).encode(), J, contains="elements")
        r = json.loads(good_body); r["inputs"][0]["shape"] = [1, 8]; r["inputs"][0]["data"] = r["inputs"][0]["data"][:8]
        bad("shapes of inputs disagree (seq 8 vs 16)", json.dumps(r).encode(), J)
        r = json.loads(good_body); r["inputs"][0]["data"][3] = 100000
        msg = bad("token id out of the embedding table", json.dumps(r).encode(), J, contains="out of range")
        xo = dict(x); xo["input_ids"] = x["input_ids"].copy(); xo["input_ids"][0, 3] = 100000
        rc, err = cli_error(conf, weight, xo, "oor")
        check(rc == 1 and msg and err == "error: " + msg, "id out of range: the CLI prints the same message (%r)" % err[:160])
        r = json.loads(good_body); r["inputs"][0]["data"][3] = 1.5
        bad("non-integer INT64 data", json.dumps(r).encode(), J, contains="integer")
        r = json.loads(good_body); r["inputs"][0]["data"][3] = "7"
        bad("string in data", json.dumps(r).encode(), J)
        r = json.loads(good_body); r["outputs"] = [{"name": "pooler"}]
        bad("unknown output", json.dumps(r).encode(), J, contains="pooler")
        xb = {k: np.repeat(v, 5, axis=0) for k, v in x.items()}
        b, h = json_request(xb)
        bad("batch 5 > --max_batch_size 4", b, h, contains="max_batch_size")
        bad("unknown model", good_body, J, want=404, path="/v2/models/nope/infer")
        b, h = binary_request(x)
        bad("truncated binary tensor", b[:-10], h, contains="truncated")
        bad("binary data left over", b + b"xx", h, contains="left over")
        h2 = dict(h); h2["Inference-Header-Content-Length"] = str(len(b) + 5)
        bad("Inference-Header-Content-Length past the body", b, h2)
        h3 = dict(h); h3["Inference-Header-Content-Length"] = "abc"
        bad("Inference-Header-Content-Length not a number", b, h3)
        big = json.dumps({"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 100000],
                                      "data": [1] * 100000}]}).encode()
        st, msg = post_raw(srv, big, J)
        check(st == 413 and msg and "max_request_bytes" in msg and still_serving("413"),
              "body of %d bytes > --max_request_bytes 200000 -> %d %r" % (len(big), st, msg))
        st, rb, _ = srv.get("/v2/nothing")
        check(st == 404 and "error" in json.loads(rb), "unknown path -> 404 + error")
        m = srv.metrics()
        check(m['ne_request_failures_total{model="tiny",reason="client"}'] >= 15,
              "/metrics counts the client failures (%g)" % m['ne_request_failures_total{model="tiny",reason="client"}'])
        stop_load.set()
        join_all(loaders, 60, "client threads")
        check(load["ok"] > 0 and not load["bad"],
              "under load from 3 clients meanwhile: %d good requests answered right, %d not (%r)"
              % (load["ok"], len(load["bad"]), load["bad"][:2]))
    finally:
        stop_load.set()
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")


def main_for(groups, extra=(), bind=None):
    """The command line of every server test module: --group NAME --server --cli --compile --data
    [--workdir] plus `extra` ((flag, argparse kwargs) pairs); runs groups[NAME] and exits 1 when a
    check failed. `bind(args)` gives the parsed arguments to the calling module."""
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--group", required=True, choices=sorted(groups))
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--compile", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--workdir", default="")
    for flag, kw in extra:
        ap.add_argument(flag, **kw)
    ARGS = ap.parse_args()
    tmp = None
    if not ARGS.workdir:
        tmp = tempfile.TemporaryDirectory(prefix="ne_server_test_")
        ARGS.workdir = tmp.name
    os.makedirs(ARGS.workdir, exist_ok=True)
    if bind:
        bind(ARGS)
    t0 = time.time()
    print("== server test group %s (workdir %s)" % (ARGS.group, ARGS.workdir))
    groups[ARGS.group]()
    print("== %s: %d failure(s) in %.1f s" % (ARGS.group, len(FAILS), time.time() - t0))
    for f in FAILS:
        print("   FAILED: " + f)
    sys.exit(1 if FAILS else 0)


def main():
    main_for({"protocol": group_protocol, "bad_requests": group_bad_requests})


if __name__ == "__main__":
    main()
