#!/usr/bin/python3
"""Calling overhead of the Python module against the command line, on the same IR and threads.

  scripts/bench_python.py --ir /work/models/bert_int8 [--batch 1 --seq 128 --iterations 20 --rounds 5]
                          [--tiny tests/data/models/tiny/model.onnx] [--json out.json]

Per round, alternating: (1) `neural_engine --config --weight` (its mean batch latency over
--iterations, after warm-ups); (2) `graph.inference(inputs)` timed from Python on the inputs the
CLI generates (Graph.generate_inputs, same seed), same process throughout; (3)
`scripts/run_executor.py --mode performance` (its throughput) against (1)'s. Reports each
round, then the median of the per-round ratios and the ratio of the best rounds. On the tiny
model the per-call overhead in microseconds: Python loop mean minus the C++ loop mean
(Graph.benchmark) in the same process, alternating.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "build", "python"))
import neural_engine as ne  # noqa: E402


def cli_latency(args, conf, binf):
    # Its printed lines, not --report_json (which turns on per-operator timing).
    p = subprocess.run([os.path.join(ROOT, "build/bin/neural_engine"), "--config", conf, "--weight", binf,
                        "--batch_size", str(args.batch), "--seq_len", str(args.seq), "--iterations",
                        str(args.iterations), "--w", str(args.warmup)], check=True, capture_output=True, text=True)
    ms = float(re.search(r"Batch latency is ([0-9.]+) ms", p.stdout).group(1))
    tp = float(re.search(r"Throughput is ([0-9.]+)", p.stdout).group(1))
    return ms, tp


def py_latency(g, feeds, iterations, warmup):
    for _ in range(warmup):
        g.inference(feeds)
    ts = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        g.inference(feeds)
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.fmean(ts)


def run_executor_tp(args, ir):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/run_executor.py"), "--input_model", ir,
                        "--mode", "performance", "--batch_size", str(args.batch), "--seq_len", str(args.seq),
                        "--iterations", str(args.iterations), "--warmup", str(args.warmup)],
                       check=True, capture_output=True, text=True)
    return float(re.search(r"Throughput is ([0-9.]+)", p.stdout).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ir", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tiny", default=os.path.join(ROOT, "tests/data/models/tiny/model.onnx"))
    ap.add_argument("--tiny_calls", type=int, default=20000)
    ap.add_argument("--json")
    args = ap.parse_args()
    conf, binf = os.path.join(args.ir, "conf.yaml"), os.path.join(args.ir, "model.bin")
    cpu = ne.cpu()
    print(f"CPU: {cpu['model']} ({cpu['isa']}), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(all)')}, "
          f"NE_DISPATCH={os.environ.get('NE_DISPATCH', '(measured)')}")
    g = ne.load(conf, binf)
    feeds = g.generate_inputs(args.batch, args.seq, 1)
    rows = []
    for r in range(args.rounds):
        cli_ms, cli_tp = cli_latency(args, conf, binf)
        py_ms = py_latency(g, feeds, args.iterations, args.warmup)
        rx_tp = run_executor_tp(args, args.ir)
        rows.append({"cli_ms": cli_ms, "py_ms": py_ms, "cli_tp": cli_tp, "run_executor_tp": rx_tp})
        print(f"round {r}: CLI {cli_ms:.3f} ms  Python {py_ms:.3f} ms  (x{py_ms / cli_ms:.4f})   "
              f"run_executor {rx_tp:.2f}/s vs CLI {cli_tp:.2f}/s (x{rx_tp / cli_tp:.4f})")
    med_lat = statistics.median(x["py_ms"] / x["cli_ms"] for x in rows)
    best_lat = min(x["py_ms"] for x in rows) / min(x["cli_ms"] for x in rows)
    med_tp = statistics.median(x["run_executor_tp"] / x["cli_tp"] for x in rows)
    best_tp = max(x["run_executor_tp"] for x in rows) / max(x["cli_tp"] for x in rows)
    print(f"inference latency / CLI latency: median of rounds x{med_lat:.4f}, best vs best x{best_lat:.4f}")
    # In one process, alternating: the C++ timing loop of the CLI (Graph.benchmark, profile off:
    # Executor::run on the generated inputs) against graph.inference from Python.
    inproc = []
    for r in range(args.rounds * 2):
        c = g.benchmark(batch_size=args.batch, seq_len=args.seq, iterations=args.iterations, warmup=1,
                        profile=False)["latency_ms"]["mean"]
        p = py_latency(g, feeds, args.iterations, 1)
        inproc.append((c, p))
    med_in = statistics.median(p / c for c, p in inproc)
    best_in = min(p for _, p in inproc) / min(c for c, _ in inproc)
    print(f"in one process: C++ loop best {min(c for c, _ in inproc):.3f} ms, Python loop best "
          f"{min(p for _, p in inproc):.3f} ms; Python / C++: median of rounds x{med_in:.4f}, best vs best x{best_in:.4f}")
    print(f"run_executor throughput / CLI throughput: median of rounds x{med_tp:.4f}, best vs best x{best_tp:.4f}")

    t = ne.compile(args.tiny)
    tf = t.generate_inputs(1, 16, 1)
    over = []
    for r in range(args.rounds):
        c = t.benchmark(batch_size=1, seq_len=16, iterations=args.tiny_calls, warmup=100,
                        profile=False)["latency_ms"]["mean"]
        p = py_latency(t, tf, args.tiny_calls, 100)
        over.append((p - c) * 1e3)
        print(f"tiny round {r}: C++ loop {c * 1e3:.1f} us, Python loop {p * 1e3:.1f} us per call: "
              f"overhead {(p - c) * 1e3:.1f} us")
    print(f"per-call overhead on the tiny model (b1 s16): median {statistics.median(over):.1f} us, "
          f"min {min(over):.1f} us")
    if args.json:
        json.dump({"cpu": cpu, "rounds": rows, "median_latency_ratio": med_lat, "best_latency_ratio": best_lat,
                   "median_throughput_ratio": med_tp, "inprocess_rounds": inproc, "best_throughput_ratio": best_tp, "tiny_overhead_us": over},
                  open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
