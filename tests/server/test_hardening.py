#!/usr/bin/python3
"""neural_engine_server under hostile or careless clients, on loopback (issue #24).

Run by ctest (tests/server/CMakeLists.txt), one group per test:
  test_hardening.py --group limits|watchdog|access|memory --server ... --cli ... --compile ...
      --data tests/data --workdir DIR [--gen_bert scripts/gen_bert.py]

  limits    JSON nested 100,000 deep -> 400 and the server serves on; 64 clients trickling a
            byte a second do not stop a 65th from being answered within 2 s, and are dropped at
            --request_timeout_ms (the whole request's deadline, not a per-read one); beyond
            --max_connections 503; --max_seq_len (default: the position table) -> 400;
            --max_activation_bytes -> 413 before the batch runs; model names that are not plain
            names refused before anything is written.
  watchdog  a worker stopped with SIGSTOP mid-request: 503 within --worker_timeout_ms, killed,
            replaced, next requests 200, counted in /metrics.
  access    --auth_token_file: 401 without or with a wrong token, 200 with it, health probes
            open; --tls_cert/--tls_key: curl --cacert succeeds, plain HTTP does not.
  memory    500 requests with sequence lengths 1..512 (a generated BERT with 512 positions)
            leave the worker's RSS within 1.5x of its RSS after one b1 s512 request.
"""
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import numpy as np

import test_server as ts
from test_server import Server, binary_request, check, fixture_inputs, ir, ir_args, join_all, parse_response, rows

ARGS = None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0


def seq_inputs(batch, seq, vocab=100, seed=0):
    r = np.random.default_rng(seed)
    return {"input_ids": r.integers(0, vocab, (batch, seq)).astype(np.int64),
            "attention_mask": np.ones((batch, seq), np.int64),
            "token_type_ids": np.zeros((batch, seq), np.int64)}


def raw_request(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    try:
        s.sendall(data)
        got = b""
        while True:
            try:
                k = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not k:
                break
            got += k
            if b"\r\n\r\n" in got:
                head, body = got.split(b"\r\n\r\n", 1)
                n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    break
        return got
    finally:
        s.close()


def status_of(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def group_limits():
    x = rows(fixture_inputs("tiny"), 0, 1)
    good_body, good_hdr = binary_request(x)
    srv = Server(ir_args("tiny") + ["--instances", "1", "--request_timeout_ms", "3000", "--max_connections", "70",
                                    "--max_activation_bytes", "400000"], name="limits")
    try:
        # 1) JSON nested 100,000 deep in 'shape' (and in 'data'): 400, and the server serves on.
        for where in ("shape", "data"):
            deep = "[" * 100000 + "]" * 100000
            doc = '{"inputs":[{"name":"input_ids","datatype":"INT64","shape":%s,"data":%s}]}' % (
                deep if where == "shape" else "[1,1]", deep if where == "data" else "[1]")
            st, rb, _ = srv.post("/v2/models/tiny/infer", doc.encode(), {"Content-Type": "application/json"})
            check(st == 400 and len(rb) < 600, "JSON nested 100,000 deep in '%s' -> %s: %s" % (where, st, rb[:160]))
        st, _, _ = srv.post("/v2/models/tiny/infer", good_body, good_hdr)
        check(st == 200 and srv.p.poll() is None and len(srv.children()) == 1, "then a good request -> 200, same worker")

        # 2) 64 clients trickle one byte a second (in the headers, and in the body); a 65th is
        # answered within 2 s; the tricklers are dropped at the 3 s deadline although each read
        # gets a byte well within the per-read timeout.
        req = (b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100000\r\n\r\n" + b"{" + b" " * 100000)
        stop = [False]
        ends = {}

        def trickle(i):
            s = socket.create_connection(("127.0.0.1", srv.port))
            t0 = time.time()
            k = 0 if i % 2 == 0 else req.index(b"\r\n\r\n") + 4  # half in the headers, half in the body
            if k:
                s.sendall(req[:k])
            s.settimeout(0.05)
            got = b""
            while not stop[0] and time.time() - t0 < 20:
                try:
                    s.send(req[k:k + 1])
                    k += 1
                except OSError:
                    break
                try:
                    r = s.recv(4096)
                    if not r:
                        break
                    got += r
                    break
                except socket.timeout:
                    pass
                except OSError:
                    break
                time.sleep(0.95)
            ends[i] = (time.time() - t0, got)
            s.close()

        th = [threading.Thread(target=trickle, args=(i,)) for i in range(64)]
        [t.start() for t in th]
        time.sleep(1.0)
        t0 = time.time()
        st, _, _ = srv.post("/v2/models/tiny/infer", good_body, good_hdr, timeout=10)
        dt = time.time() - t0
        check(st == 200 and dt < 2.0, "with 64 clients trickling a byte a second, a 65th request -> %s in %.2f s" % (st, dt))
        join_all(th, 30, "the trickling clients")
        stop[0] = True
        times = sorted(v[0] for v in ends.values())
        dropped = [v for v in ends.values() if v[0] < 8]
        n408 = sum(1 for v in ends.values() if b" 408 " in v[1][:20])
        check(len(ends) == 64 and len(dropped) == 64 and n408 >= 32,
              "all 64 tricklers dropped at the 3 s deadline (after %.1f..%.1f s; %d answered 408, the rest closed)" % (
                  times[0] if times else -1, times[-1] if times else -1, n408))
        m = srv.metrics()
        check(m.get("ne_http_request_deadline_total", 0) >= 64, "/metrics: ne_http_request_deadline_total %s" %
              m.get("ne_http_request_deadline_total"))

        # 3) --max_connections 70: 70 open connections (idle after a partial request line), the 71st -> 503.
        held = []
        for _ in range(70):
            c = socket.create_connection(("127.0.0.1", srv.port))
            c.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
            held.append(c)
        time.sleep(0.3)
        t0 = time.time()
        got = raw_request(srv.port, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        check(status_of(got) == 503 and b"max_connections" in got and time.time() - t0 < 2,
              "the 71st connection -> %s at once: %s" % (status_of(got), got.split(b"\r\n\r\n")[-1][:120]))
        for c in held:
            c.close()
        time.sleep(0.5)
        st, _, _ = srv.post("/v2/models/tiny/infer", good_body, good_hdr)
        m = srv.metrics()
        check(st == 200 and m.get('ne_http_connections_total{outcome="refused"}', 0) >= 1,
              "after they close, requests -> 200; /metrics counts the refused connection")

        # 4) --max_seq_len default: the model's position table (128 rows): 129 -> 400 before any work.
        body, hdr = binary_request(seq_inputs(1, 129))
        st, rb, _ = srv.post("/v2/models/tiny/infer", body, hdr)
        check(st == 400 and b"128" in rb and b"max_seq_len" in rb, "sequence 129 > position table 128 -> %s: %s" % (st, rb[:200]))
        # 5) --max_activation_bytes 400 kB: b1 s16 fits, b8 s128 does not -> 413, the worker survives.
        body, hdr = binary_request(seq_inputs(8, 128))
        st, rb, _ = srv.post("/v2/models/tiny/infer", body, hdr)
        check(st == 413 and b"limit" in rb, "b8 s128 over --max_activation_bytes -> %s: %s" % (st, rb[:200]))
        body, hdr = binary_request(seq_inputs(1, 16))
        st, rb, _ = srv.post("/v2/models/tiny/infer", body, hdr)
        m = srv.metrics()
        check(st == 200 and m['ne_worker_restarts_total{instance="0"}'] == 0, "b1 s16 -> 200, no worker restart")
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")

    # An explicit --max_seq_len.
    srv = Server(ir_args("tiny") + ["--max_seq_len", "32"], name="limits_seq")
    try:
        st, rb, _ = srv.post("/v2/models/tiny/infer", *binary_request(seq_inputs(1, 33)))
        st2, _, _ = srv.post("/v2/models/tiny/infer", *binary_request(seq_inputs(1, 32)))
        check(st == 400 and b"32" in rb and st2 == 200, "--max_seq_len 32: 33 -> %s, 32 -> %s" % (st, st2))
    finally:
        srv.stop()

    # 6) Model names that are not plain names: refused before anything is written.
    onnx_path = os.path.join(ARGS.data, "models", "tiny", "model.onnx")
    conf, weight = ir("tiny")
    for flags, what in ((["--model", "..=" + onnx_path], "--model ..=m.onnx"),
                        (["--model", "a/b=" + onnx_path], "--model a/b=m.onnx"),
                        (["--config", "x y=" + conf, "--weight", weight], "--config 'x y=conf.yaml'")):
        d = tempfile.mkdtemp(dir=ARGS.workdir, prefix="irdir_")
        r = subprocess.run([ARGS.server, "--port", "0", "--ir_dir", os.path.join(d, "ir")] + flags,
                           capture_output=True, text=True, timeout=60)
        check(r.returncode != 0 and "not a plain name" in r.stderr and os.listdir(d) == [],
              "%s refused, nothing written: %s" % (what, r.stderr.strip()[-160:]))


def group_watchdog():
    watchdog_sigstop()
    group_no_worker()


def watchdog_sigstop():
    conf, weight = ir("tiny")
    x = rows(fixture_inputs("tiny"), 0, 1)
    body, hdr = binary_request(x)
    srv = Server(ir_args("tiny") + ["--instances", "1", "--worker_timeout_ms", "2000"],
                 env_extra={"NE_SERVER_TEST_DELAY_MS": "300"}, name="watchdog")
    try:
        st, rb, resp = srv.post("/v2/models/tiny/infer", body, hdr)
        ref = parse_response(rb, resp)[1]["last_hidden_state"] if st == 200 else None
        check(st == 200, "a request -> 200 (300 ms each: the test delay)")
        kids = srv.children()
        res = {}

        def req():
            t0 = time.time()
            res["r"] = srv.post("/v2/models/tiny/infer", body, hdr, timeout=30)
            res["t"] = time.time() - t0

        t = threading.Thread(target=req)
        t.start()
        time.sleep(0.1)
        os.kill(kids[0], signal.SIGSTOP)  # mid-request
        join_all([t], 30, "the request to the stopped worker")
        st, rb, _ = res.get("r", (None, b"", None))
        check(st == 503 and b"did not answer" in rb and res.get("t", 99) < 2.0 + 1.5,
              "a worker stopped (SIGSTOP) mid-request: %s after %.1f s: %s" % (st, res.get("t", -1), rb[:200]))
        ok = 0
        for _ in range(3):
            st, rb, resp = srv.post("/v2/models/tiny/infer", body, hdr)
            ok += st == 200 and ref is not None and np.array_equal(parse_response(rb, resp)[1]["last_hidden_state"], ref)
        kids2 = srv.children()
        check(ok == 3 and len(kids2) == 1 and kids2 != kids, "then 3/3 requests -> 200, same outputs, a new worker %s (was %s)" % (kids2, kids))
        m = srv.metrics()
        check(m['ne_worker_timeouts_total{instance="0"}'] == 1 and m['ne_worker_restarts_total{instance="0"}'] == 1
              and m['ne_request_failures_total{model="tiny",reason="worker"}'] == 1,
              "/metrics: 1 watchdog kill, 1 restart, 1 failure by the worker")
        try:
            os.kill(kids[0], 0)
            gone = False
        except ProcessLookupError:
            gone = True
        check(gone, "the stopped worker (pid %d) is gone" % kids[0])
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")


def group_no_worker():
    """Workers that cannot start again (the IR moved away under the server): a request is answered
    503 within the bound (--worker_timeout_ms x (2 + queue / instances)), not held for ever; once
    the IR is back the worker starts and requests are answered 200."""
    import shutil
    conf, weight = ir("tiny")
    d = os.path.join(ARGS.workdir, "ir_moving")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    shutil.copy(conf, d)
    shutil.copy(weight, d)
    x = rows(fixture_inputs("tiny"), 0, 1)
    body, hdr = binary_request(x)
    srv = Server(["--config", "tiny=" + os.path.join(d, "conf.yaml"), "--weight", os.path.join(d, "model.bin"),
                  "--worker_timeout_ms", "1000", "--max_queue_size", "2"], name="no_worker")
    try:
        st, _, _ = srv.post("/v2/models/tiny/infer", body, hdr)
        check(st == 200, "a request -> 200")
        os.rename(d, d + ".away")
        os.kill(srv.children()[0], signal.SIGKILL)
        time.sleep(0.3)
        t0 = time.time()
        st, rb, _ = srv.post("/v2/models/tiny/infer", body, hdr, timeout=30)
        dt = time.time() - t0
        check(st == 503 and b"not answered within 4000 ms" in rb and dt < 4.0 + 2.0,
              "no worker can start: a request -> %s after %.1f s: %s" % (st, dt, rb[:160]))
        os.rename(d + ".away", d)
        ok = False
        deadline = time.time() + 20
        while time.time() < deadline and not ok:
            st, _, _ = srv.post("/v2/models/tiny/infer", body, hdr, timeout=30)
            ok = st == 200
        check(ok, "the IR back: the worker starts again and a request -> 200")
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def group_access():
    x = rows(fixture_inputs("tiny"), 0, 1)
    body, hdr = binary_request(x)
    tok_file = os.path.join(ARGS.workdir, "token")
    token = "s3cret-token-" + os.urandom(8).hex()
    with open(tok_file, "w") as f:
        f.write(token + "\n")
    srv = Server(ir_args("tiny") + ["--auth_token_file", tok_file], name="auth")
    try:
        st, rb, resp = srv.post("/v2/models/tiny/infer", body, hdr)
        check(st == 401 and resp.getheader("WWW-Authenticate", "").startswith("Bearer"), "infer without a token -> %s" % st)
        st, _, _ = srv.post("/v2/models/tiny/infer", body, dict(hdr, Authorization="Bearer wrong-token-wrong-token"))
        check(st == 401, "infer with a wrong token -> %s" % st)
        st, rb, resp = srv.post("/v2/models/tiny/infer", body, dict(hdr, Authorization="Bearer " + token))
        check(st == 200 and np.all(np.isfinite(parse_response(rb, resp)[1]["last_hidden_state"])), "infer with the token -> %s" % st)
        for p in ("/v2/health/live", "/v2/health/ready"):
            st, _, _ = srv.get(p)
            check(st == 200, "GET %s without a token -> %s (probes stay open)" % (p, st))
        for p in ("/metrics", "/v2/models/tiny", "/v2"):
            st, _, _ = srv.get(p)
            check(st == 401, "GET %s without a token -> %s" % (p, st))
        st, _, _ = srv.post("/v2/models/tiny/infer", body, dict(hdr, Authorization="Bearer " + token))
        check(st == 200, "the connection refused before its body was read left the server serving -> %s" % st)
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")
    r = subprocess.run([ARGS.server, "--port", "0", "--auth_token_file", os.path.join(ARGS.workdir, "nope")] + ir_args("tiny"),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and "auth_token_file" in r.stderr, "a missing token file stops the server: %s" % r.stderr.strip()[-120:])

    cert, key = make_cert(ARGS.workdir)
    r = subprocess.run([ARGS.server, "--port", "0", "--tls_cert", cert, "--tls_key", cert] + ir_args("tiny"),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and "--tls_key" in r.stderr, "a certificate given as the key stops the server: %s" % r.stderr.strip()[-160:])
    log = os.path.join(ARGS.workdir, "tls.log")
    env = dict(os.environ, NE_DISPATCH="threshold", GLOG_minloglevel="1")
    p = subprocess.Popen([ARGS.server, "--port", "0", "--tls_cert", cert, "--tls_key", key] + ir_args("tiny"),
                         stdout=subprocess.PIPE, stderr=open(log, "w"), env=env, text=True)
    try:
        line = p.stdout.readline()
        check("listening on https://" in line, "started: %s" % line.strip())
        port = int(line.split("127.0.0.1:")[1].split()[0])
        url = "https://127.0.0.1:%d" % port
        ready = None
        for _ in range(100):
            c = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", cert, url + "/v2/health/ready"],
                               capture_output=True, text=True, timeout=30)
            ready = c.stdout
            if ready == "200":
                break
            time.sleep(0.1)
        check(ready == "200", "curl --cacert %s/v2/health/ready -> %s" % (url, ready))
        bfile = os.path.join(ARGS.workdir, "tls_body.bin")
        with open(bfile, "wb") as f:
            f.write(body)
        out = os.path.join(ARGS.workdir, "tls_out.bin")
        c = subprocess.run(["curl", "-s", "-o", out, "-w", "%{http_code}", "--cacert", cert, "-H",
                            "Inference-Header-Content-Length: " + hdr["Inference-Header-Content-Length"], "-H",
                            "Content-Type: application/octet-stream", "--data-binary", "@" + bfile, url + "/v2/models/tiny/infer"],
                           capture_output=True, text=True, timeout=30)
        check(c.stdout == "200", "curl --cacert POST infer over TLS -> %s" % c.stdout)
        c = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url + "/v2/health/ready"],
                           capture_output=True, text=True, timeout=30)
        check(c.returncode != 0, "curl without --cacert (unknown CA) fails: exit %d" % c.returncode)
        got = raw_request(port, b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        check(not got.startswith(b"HTTP/"), "plain HTTP to the TLS port gets no HTTP answer (%r)" % got[:40])
        ctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection(("127.0.0.1", port)) as s, ctx.wrap_socket(s, server_hostname="localhost") as tls:
            tls.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = tls.recv(4096)
        check(status_of(got) == 200, "Python ssl client: GET /v2/health/live -> %s" % status_of(got))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
    check(rc == 0, "TLS server: SIGTERM -> exit 0")


def group_memory():
    d = os.path.join(ARGS.workdir, "bert512")
    if not os.path.exists(os.path.join(d, "model.onnx")):
        subprocess.run(["/usr/bin/python3", ARGS.gen_bert, "--hidden", "256", "--heads", "4", "--ffn", "1024", "--layers", "2",
                        "--max_pos", "512", "--no_ref", "--out", d], check=True, capture_output=True)
    srv = Server(["--model", "bert512=" + os.path.join(d, "model.onnx"), "--instances", "1"], name="memory")
    try:
        kid = srv.children()[0]
        body, hdr = binary_request(seq_inputs(1, 512))
        st, _, _ = srv.post("/v2/models/bert512/infer", body, hdr)
        r0 = rss_kb(kid)
        check(st == 200, "b1 s512 -> 200; worker RSS %.1f MB" % (r0 / 1024))
        order = list(range(1, 513))
        np.random.default_rng(0).shuffle(order)
        bad = 0
        peak = r0
        for i, s in enumerate(order[:500]):
            st, _, _ = srv.post("/v2/models/bert512/infer", *binary_request(seq_inputs(1, s, seed=i)))
            bad += st != 200
            if i % 50 == 49:
                peak = max(peak, rss_kb(kid))
        r1 = rss_kb(kid)
        peak = max(peak, r1)
        check(bad == 0 and srv.children() == [kid], "500 requests, sequence lengths 1..512 in random order: all 200, same worker")
        what = "worker RSS after them %.1f MB, peak %.1f MB: within 1.5x of %.1f MB (%.2fx)" % (
            r1 / 1024, peak / 1024, r0 / 1024, peak / r0)
        if ARGS.no_rss_check:
            print("  (not judged: sanitizer build) " + what)
        else:
            check(peak <= 1.5 * r0, what)
    finally:
        rc = srv.stop()
    check(rc == 0, "SIGTERM -> exit 0")


def main():
    def bind(a):
        global ARGS
        ARGS = a

    ts.main_for({"limits": group_limits, "watchdog": group_watchdog, "access": group_access, "memory": group_memory},
                extra=[("--gen_bert", dict(default=os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                                                                "gen_bert.py"))),
                       ("--no_rss_check", dict(action="store_true"))], bind=bind)


if __name__ == "__main__":
    main()
