#!/usr/bin/python3
"""Multi-instance throughput and weight memory, with and without WEIGHT_SHARING.

Runs, in one go, on the same IR:
  1 instance x C cores; N instances x C cores with WEIGHT_SHARING=1; the same with WEIGHT_SHARING=0
and prints throughput (and its ratio to one instance) and the weight memory summed over the
instances: PSS of model.bin + PSS of the packed-weight cache files + packed weights held in
private memory (which is what an instance without sharing keeps per process).

usage: bench_instances.py --config conf.yaml --weight model.bin [--instances 2] [--cores 1]
                          [--batch 8 --seq 128 --iterations 10 --w 2] [--engine build/bin/neural_engine]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile


def run(engine, a, n, sharing, cache):
    rep = tempfile.mktemp(suffix=".json")
    env = dict(os.environ, WEIGHT_SHARING="1" if sharing else "0", NE_CACHE_DIR=cache)
    cmd = [engine, "--config", a.config, "--weight", a.weight, "--instances", str(n),
           "--cores_per_instance", str(a.cores), "--batch_size", str(a.batch), "--seq_len", str(a.seq),
           "--iterations", str(a.iterations), "--w", str(a.w), "--report_json", rep]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stdout))
    r = json.load(open(rep))
    os.unlink(rep)
    mem = 0
    for inst in r["per_instance"]:
        m = inst["memory"]
        mem += m["weight_pss_bytes"] + m["packed_pss_bytes"] + m["packed_private_bytes"]
    return r["throughput"], mem, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--weight", required=True)
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--w", type=int, default=2)
    ap.add_argument("--engine", default="build/bin/neural_engine")
    a = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="ne_cache_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        t1, m1, _ = run(a.engine, a, 1, True, cache)
        ts, ms, _ = run(a.engine, a, a.instances, True, cache)
        tn, mn, _ = run(a.engine, a, a.instances, False, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    MB = 1 << 20
    print("| run | throughput (samples/s) | vs 1 instance | weight memory, summed PSS (MiB) | vs 1 instance |")
    print("|---|---|---|---|---|")
    print("| 1 x %d cores | %.2f | 1.00 | %.1f | 1.00 |" % (a.cores, t1, m1 / MB))
    print("| %d x %d cores, WEIGHT_SHARING=1 | %.2f | %.2f | %.1f | %.2f |" % (a.instances, a.cores, ts, ts / t1, ms / MB, ms / m1))
    print("| %d x %d cores, WEIGHT_SHARING=0 | %.2f | %.2f | %.1f | %.2f |" % (a.instances, a.cores, tn, tn / t1, mn / MB, mn / m1))


if __name__ == "__main__":
    main()
