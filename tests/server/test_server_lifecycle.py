#!/usr/bin/python3
"""neural_engine_server over the lives of its connections, workers and process, on loopback:
  connections  clients stalled mid-body and mid-headers dropped after --request_timeout_ms,
               --connections connections opened and dropped (no descriptor leaked), keep-alive
  workers      a worker killed mid-request (500, restarted, counted), the queue limit (503 at
               once), one of two workers killed under load (no wrong answer)
  drain        SIGTERM with requests queued and in flight: all answered, exit 0
The server, request and CLI helpers are test_server.py's (imported, as test_hardening.py does).

Run by ctest (tests/server/CMakeLists.txt), one group per test:
  test_server_lifecycle.py --group connections|workers|drain \
      --server build/bin/neural_engine_server --cli build/bin/neural_engine \
      --compile build/bin/neural_engine_compile --data tests/data --workdir DIR
"""
import os
import signal
import socket
import subprocess
import threading
import time

import numpy as np

import test_server
from test_server import Server, binary_request, check, cli_outputs, fixture_inputs, ir, ir_args, join_all, parse_response, rows

ARGS = None


# ---------------------------------------------------------------- groups
def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def group_connections():
    srv = Server(ir_args("tiny") + ["--instances", "1", "--request_timeout_ms", "1500"], name="conn")
    x = rows(fixture_inputs("tiny"), 0, 1)
    good_body, good_hdr = binary_request(x)
    try:
        st, _, _ = srv.post("/v2/models/tiny/infer", good_body, good_hdr)
        check(st == 200, "a good request -> 200")
        fds0 = fd_count(srv.p.pid)
        # A request that never finishes sending: the server drops it after --request_timeout_ms
        # (or answers 400/408); meanwhile and afterwards it serves others.
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"inputs\": [")
        t0 = time.time()
        st, _, _ = srv.post("/v2/models/tiny/infer", good_body, good_hdr)
        check(st == 200, "while a client stalls mid-body, another request -> 200")
        s.settimeout(20)
        try:
            got = s.recv(4096)
        except socket.timeout:
            got = b"<no answer in 20 s>"
        except ConnectionResetError:
            got = b""
        dt = time.time() - t0
        status = got.split(b"\r\n", 1)[0].decode(errors="replace")
        check((got == b"" or b" 408 " in got) and dt < 15,
              "stalled request: after %.1f s: %s %s" % (dt, status or "connection closed", got[-120:]))
        s.close()
        # A stall before the headers end.
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(20)
        t0 = time.time()
        try:
            got = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            got = b"<timeout>"
        check(got == b"" or b" 400 " in got or b" 408 " in got,
              "stall inside the headers: closed or 4xx after %.1f s" % (time.time() - t0))
        s.close()
        # Many connections opened and dropped: some at once, some after part of a request.
        n = ARGS.connections
        t0 = time.time()
        for i in range(n):
            c = socket.create_connection(("127.0.0.1", srv.port))
            if i % 3 == 1:
                c.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"in")
            elif i % 3 == 2:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            c.close()
        dt = time.time() - t0
        ok = 0
        for _ in range(5):
            st, _, _ = srv.post("/v2/models/tiny/infer", good_body, good_hdr)
            ok += st == 200
        check(ok == 5, "%d connections opened and dropped in %.1f s; then 5/5 requests 200 (%d)" % (n, dt, ok))
        deadline = time.time() + 20
        while time.time() < deadline and fd_count(srv.p.pid) > fds0 + 2:
            time.sleep(0.2)
        check(fd_count(srv.p.pid) <= fds0 + 2, "descriptors back to %d (now %d): none leaked" % (fds0, fd_count(srv.p.pid)))
        # Keep-alive: 50 requests on one connection.
        c = srv.conn()
        ok = 0
        for _ in range(50):
            c.request("POST", "/v2/models/tiny/infer", body=good_body, headers=good_hdr)
            r = c.getresponse()
            r.read()
            ok += r.status == 200
        c.close()
        check(ok == 50, "50 requests on one keep-alive connection -> 200")
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")


def group_workers():
    conf, weight = ir("tiny")
    x = rows(fixture_inputs("tiny"), 0, 1)
    ref = cli_outputs(conf, weight, x, "w_b1")["last_hidden_state"]
    body, hdr = binary_request(x)
    # 1) kill -9 of the worker while it runs a request (the test hook makes each batch take 1 s).
    srv = Server(ir_args("tiny") + ["--instances", "1", "--max_queue_size", "2"], env_extra={"NE_SERVER_TEST_DELAY_MS": "1000"},
                 name="workers1")
    try:
        kids = srv.children()
        check(len(kids) == 1, "one worker process (pid %s)" % kids)
        res = {}

        def req():
            res["r"] = srv.post("/v2/models/tiny/infer", body, hdr)

        t = threading.Thread(target=req)
        t.start()
        time.sleep(0.4)
        os.kill(kids[0], signal.SIGKILL)
        join_all([t], 60, "the request thread")
        st, rb, _ = res["r"]
        check(st == 500 and b"died" in rb and b"signal 9" in rb, "in-flight request of the killed worker -> 500: %s" % rb[:160])
        st, rb, resp = srv.post("/v2/models/tiny/infer", body, hdr)
        check(st == 200 and np.array_equal(parse_response(rb, resp)[1]["last_hidden_state"], ref),
              "next request -> 200, bit-exact (worker restarted)")
        kids2 = srv.children()
        check(len(kids2) == 1 and kids2 != kids, "a new worker process (pid %s)" % kids2)
        m = srv.metrics()
        check(m['ne_worker_restarts_total{instance="0"}'] == 1 and m['ne_request_failures_total{model="tiny",reason="worker"}'] == 1,
              "/metrics: 1 restart, 1 request failed by the worker's death")
        # 2) Queue full: 1 running + 2 queued; the rest get 503 at once.
        out = [None] * 6
        tstart = [0.0] * 6

        def q(i):
            tstart[i] = time.time()
            st, rb, _ = srv.post("/v2/models/tiny/infer", body, hdr)
            out[i] = (st, time.time() - tstart[i], rb)

        ts = []
        for i in range(6):
            ts.append(threading.Thread(target=q, args=(i,)))
            ts[-1].start()
            time.sleep(0.05)
        join_all(ts, 60, "client threads")
        n503 = [o for o in out if o[0] == 503]
        n200 = [o for o in out if o[0] == 200]
        check(len(n503) >= 2 and len(n200) >= 3 and len(n503) + len(n200) == 6 and all(o[1] < 0.5 for o in n503)
              and all(b"queue is full" in o[2] for o in n503),
              "max_queue_size 2, 6 requests: %d x 200, %d x 503 at once (%s s)" % (
                  len(n200), len(n503), ",".join("%.2f" % o[1] for o in n503)))
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")
    # 3) kill -9 of one of two workers under load from 4 clients: every answer 200 and right
    # (within 1e-5 of the CLI: requests of several clients run batched), or
    # 500 naming the dead worker (at most the 4 requests of the batch it ran); afterwards both up.
    srv = Server(ir_args("tiny") + ["--instances", "2"], env_extra={"NE_SERVER_TEST_DELAY_MS": "50"}, name="workers2")
    try:
        stop = [False]
        tally = {"ok": 0, "wrong": 0, "500": 0, "other": 0}
        lock = threading.Lock()

        def client():
            while not stop[0]:
                st, rb, resp = srv.post("/v2/models/tiny/infer", body, hdr)
                with lock:
                    if st == 200:
                        # Batched with other clients' rows: within 1e-5 of the CLI on it alone (a
                        # dense GEMM's blocking may depend on M), finite.
                        y = parse_response(rb, resp)[1]["last_hidden_state"]
                        good = bool(np.all(np.isfinite(y)) and np.allclose(y, ref, rtol=1e-5, atol=1e-5))
                        tally["ok" if good else "wrong"] += 1
                    elif st == 500 and b"died" in rb:
                        tally["500"] += 1
                    else:
                        tally["other"] += 1

        ts = [threading.Thread(target=client) for _ in range(4)]
        [t.start() for t in ts]
        time.sleep(1.0)
        kids = srv.children()
        os.kill(kids[0], signal.SIGKILL)
        time.sleep(2.0)
        stop[0] = True
        join_all(ts, 60, "client threads")
        m = srv.metrics()
        deadline = time.time() + 30
        while time.time() < deadline and sum(v for k, v in m.items() if k.startswith("ne_worker_up")) < 2:
            time.sleep(0.2)
            m = srv.metrics()
        up = sum(v for k, v in m.items() if k.startswith("ne_worker_up"))
        check(tally["wrong"] == 0 and tally["other"] == 0 and tally["ok"] > 10 and tally["500"] <= 4,
              "kill -9 of 1 of 2 workers under load: %s" % tally)
        check(up == 2 and sum(v for k, v in m.items() if k.startswith("ne_worker_restarts_total")) == 1
              and m['ne_request_failures_total{model="tiny",reason="worker"}'] == tally["500"],
              "both workers up again, 1 restart, %d failure(s) counted in /metrics" % tally["500"])
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")


def group_drain():
    conf, weight = ir("tiny")
    x = rows(fixture_inputs("tiny"), 0, 1)
    ref = cli_outputs(conf, weight, x, "d_b1")["last_hidden_state"]
    body, hdr = binary_request(x)
    srv = Server(ir_args("tiny") + ["--instances", "1"], env_extra={"NE_SERVER_TEST_DELAY_MS": "400"}, name="drain")
    out = [None] * 3

    def q(i):
        st, rb, resp = srv.post("/v2/models/tiny/infer", body, hdr)
        out[i] = (st, parse_response(rb, resp)[1]["last_hidden_state"] if st == 200 else rb)

    ts = [threading.Thread(target=q, args=(i,)) for i in range(3)]
    [t.start() for t in ts]
    time.sleep(0.2)
    t0 = time.time()
    srv.p.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    try:
        st, rb, _ = srv.post("/v2/models/tiny/infer", body, hdr, timeout=10)
        late = st
    except (ConnectionError, OSError):
        late = "refused"
    join_all(ts, 60, "client threads")
    try:
        rc = srv.p.wait(30)
    except subprocess.TimeoutExpired:
        srv.p.kill()
        rc = None
    check(all(o and o[0] == 200 and np.all(np.isfinite(o[1])) and np.allclose(o[1], ref, rtol=1e-5, atol=1e-5)
              for o in out),
          "SIGTERM with 3 requests queued/in flight: all 3 answered 200, within 1e-5 of the CLI (%s)" % [o[0] if o else None for o in out])
    check(late in (503, "refused"), "a request after SIGTERM -> %s" % late)
    check(rc == 0, "exit status %s after %.1f s" % (rc, time.time() - t0))
    check(not srv.children(), "no worker left")


def main():
    def bind(a):
        global ARGS
        ARGS = a

    test_server.main_for({"connections": group_connections, "workers": group_workers, "drain": group_drain},
                         extra=[("--connections", dict(type=int, default=1000))], bind=bind)


if __name__ == "__main__":
    main()
