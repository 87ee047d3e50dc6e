#!/usr/bin/python3
"""Soak neural_engine_server: wrk sends good requests for --seconds while, beside it, a client
sends the bad-request mix of tests/server/test_hardening.py (JSON nested 100,000 deep, bodies
trickled a byte a second, bodies over --max_request_bytes, garbage, wrong shapes, sequences past
the position table, connections dropped mid-request, unknown models). Prints wrk's figures, the
bad requests' status counts, and the resident memory of the front end and the worker sampled
every 5 s; fails when a good request got a non-2xx answer or RSS moved more than 5% between the
first sample after --warmup_s and the last.

  scripts/soak_server.py --build build [--seconds 60] [--model tiny]

Needs wrk (Debian package) and /usr/bin/python3 with numpy.
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for l in f:
                if l.startswith("VmRSS:"):
                    return int(l.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except OSError:
                pass
    return kids


def binary_body(inputs):
    hdr = {"inputs": [], "outputs": [{"name": "last_hidden_state", "parameters": {"binary_data": True}}]}
    blobs = []
    for k, a in inputs.items():
        hdr["inputs"].append({"name": k, "datatype": "INT64", "shape": list(a.shape),
                              "parameters": {"binary_data_size": a.nbytes}})
        blobs.append(a.astype("<i8").tobytes())
    h = json.dumps(hdr).encode()
    return h + b"".join(blobs), len(h)


def post_raw(port, data, timeout=10, read=True):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(data)
        if not read:
            s.close()
            return "dropped"
        got = s.recv(64)
        s.close()
        return got.split(b" ")[1].decode() if got.startswith(b"HTTP/") else "closed"
    except (OSError, IndexError):
        return "error"


def http(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def bad_mix(port, stop, tally):
    p = b"/v2/models/m/infer"
    deep = b"[" * 100000 + b"]" * 100000
    cases = [
        ("deep_shape", lambda: post_raw(port, http(p, b'{"inputs":[{"name":"input_ids","datatype":"INT64","shape":' + deep + b',"data":[1]}]}'))),
        ("deep_data", lambda: post_raw(port, http(p, b'{"inputs":[{"name":"input_ids","datatype":"INT64","shape":[1,1],"data":' + deep + b'}]}'))),
        ("garbage", lambda: post_raw(port, http(p, os.urandom(2000)))),
        ("wrong_shape", lambda: post_raw(port, http(p, b'{"inputs":[{"name":"input_ids","datatype":"INT64","shape":[1,3],"data":[1,2]}]}'))),
        ("too_long", lambda: post_raw(port, http(p, json.dumps({"inputs": [
            {"name": n, "datatype": "INT64", "shape": [1, 600], "data": [1] * 600}
            for n in ("input_ids", "attention_mask", "token_type_ids")]}).encode()))),
        ("oversize", lambda: post_raw(port, b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n{")),
        ("unknown_model", lambda: post_raw(port, http(b"/v2/models/nope/infer", b"{}"))),
        ("dropped", lambda: post_raw(port, http(p, b'{"inputs":[{"name":"inp')[:-10], read=False)),
    ]

    def trickler():
        while not stop[0]:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                req = http(p, b" " * 100000)
                for i in range(40):
                    if stop[0]:
                        break
                    s.send(req[i:i + 1])
                    time.sleep(1.0)
                s.close()
            except OSError:
                pass
            tally["trickle"] = tally.get("trickle", 0) + 1

    tr = [threading.Thread(target=trickler, daemon=True) for _ in range(8)]
    [t.start() for t in tr]
    rng = random.Random(0)
    while not stop[0]:
        name, fn = rng.choice(cases)
        st = fn()
        key = "%s:%s" % (name, st)
        tally[key] = tally.get(key, 0) + 1
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--data", default=os.path.join(HERE, "..", "tests", "data"))
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup_s", type=int, default=15)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--rss_tolerance", type=float, default=0.05, help="largest RSS drift after the warm-up (0.05: 5%%)")
    ap.add_argument("--no_rss_check", action="store_true",
                    help="print RSS but do not judge it (sanitizer builds: ASan's quarantine and shadow are not the server's)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ne_soak_")
    server = os.path.join(a.build, "bin", "neural_engine_server")
    onnx = os.path.join(a.data, "models", a.model, "model.onnx")
    p = subprocess.Popen([server, "--port", "0", "--model", "m=" + onnx, "--instances", "1", "--request_timeout_ms", "5000",
                          "--max_request_bytes", "1000000"],
                         stdout=subprocess.PIPE, stderr=open(os.path.join(work, "server.log"), "w"), text=True,
                         env=dict(os.environ, GLOG_minloglevel="2"))
    line = p.stdout.readline()
    if "listening on" not in line:
        print("server did not start: " + line + open(os.path.join(work, "server.log")).read())
        return 1
    port = int(line.split("127.0.0.1:")[1].split()[0])
    rng = np.random.default_rng(0)
    x = {"input_ids": rng.integers(0, 100, (1, 128)), "attention_mask": np.ones((1, 128), np.int64),
         "token_type_ids": np.zeros((1, 128), np.int64)}
    body, hlen = binary_body(x)
    bfile = os.path.join(work, "body.bin")
    open(bfile, "wb").write(body)
    lua = os.path.join(work, "good.lua")
    open(lua, "w").write('''wrk.method = "POST"
local f = io.open("%s", "rb"); wrk.body = f:read("*all"); f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = "%d"
''' % (bfile, hlen))
    worker = children(p.pid)[0]
    stop = [False]
    tally = {}
    bad = threading.Thread(target=bad_mix, args=(port, stop, tally), daemon=True)
    bad.start()
    samples = []

    def sampler():
        t0 = time.time()
        while not stop[0]:
            samples.append((time.time() - t0, rss_kb(p.pid), rss_kb(worker)))
            time.sleep(5)

    threading.Thread(target=sampler, daemon=True).start()
    w = subprocess.run(["wrk", "-t1", "-c%d" % a.connections, "-d%ds" % a.seconds, "--latency", "-s", lua,
                        "http://127.0.0.1:%d/v2/models/m/infer" % port], capture_output=True, text=True)
    samples.append((a.seconds, rss_kb(p.pid), rss_kb(worker)))
    stop[0] = True
    print(w.stdout)
    non2xx = 0
    for l in w.stdout.splitlines():
        if "Non-2xx" in l:
            non2xx = int(l.split(":")[1])
    print("bad-request mix beside it (case:status count): " + ", ".join("%s %d" % kv for kv in sorted(tally.items())))
    print("RSS samples (s, front end MB, worker MB): " +
          "; ".join("%.0f %.1f %.1f" % (t, f / 1024, k / 1024) for t, f, k in samples))
    after = [s for s in samples if s[0] >= a.warmup_s]
    ok = True
    if non2xx:
        print("FAIL: %d good requests got a non-2xx answer" % non2xx)
        ok = False
    same_worker = worker in children(p.pid)
    for i, what in ((1, "front end"), (2, "worker")):
        r0, r1 = after[0][i], after[-1][i]
        drift = (r1 - r0) / max(r0, 1)
        print("%s RSS %.1f -> %.1f MB (%+.1f%%) from %d s to the end" % (what, r0 / 1024, r1 / 1024, 100 * drift, after[0][0]))
        if abs(drift) > a.rss_tolerance and not a.no_rss_check:
            ok = False
            print("FAIL: %s RSS moved more than %.0f%%" % (what, 100 * a.rss_tolerance))
    print("worker pid %d %s" % (worker, "still serving (no restart)" if same_worker else "GONE (restarted)"))
    ok = ok and same_worker
    p.terminate()
    p.wait(30)
    print("soak: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
