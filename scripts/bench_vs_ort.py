#!/usr/bin/python3
"""Benchmark our engine against ONNX Runtime (onnxruntime-node, CPU) on one model.

  scripts/bench_vs_ort.py --model M.onnx [--batch 1,8] [--seq 128] [--threads 1,2]
      [--iterations 20] [--warmup 5] [--engine build/bin/neural_engine | none]
      [--generate PRESET] [--seed 0] [--workdir DIR] [--json FILE] [--no_numactl]

For every (batch, seq) the same seeded inputs are written as .npy (ids uniform in
[0, vocab), masks all ones, token types zeros) and fed to both runtimes; for every thread
count both run with OMP_NUM_THREADS=T under `numactl -C 0-(T-1)` (when numactl exists).
ORT: scripts/ort_run.js (intra-op threads T, inter-op 1, all graph optimisations).
Ours: neural_engine --model M --input ... --output_dir ... --iterations I --w W
      --batch_size B --seq_len S --report_json F ; the report must have
      latency_ms: {mean, p50, p90, p99} and throughput (samples/s).
Latency columns are the mean wall time of one run of the whole batch (ORT's latency_ms;
ours' latency_ms as reported). ratio = ours throughput / ORT throughput (> 1: we win).
max|diff| = largest |ours - ORT| over all outputs.
--generate PRESET: when --model is missing or absent, build it with gen_bert.py
(default path build/models/<PRESET>/model.onnx). Prints a markdown table.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"


def ints(s):
    return [int(x) for x in str(s).split(",") if x.strip()]


def model_info(path):
    """Input names and vocabulary size (rows of the Gather table indexed by input_ids)."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    names = [i.name for i in m.graph.input if i.name not in inits]
    vocab = None
    for n in m.graph.node:
        if n.op_type == "Gather" and len(n.input) == 2 and n.input[1] == "input_ids" and n.input[0] in inits:
            vocab = inits[n.input[0]][0]
            break
    return names, vocab


def make_inputs(names, vocab, batch, seq, seed, d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(seed)
    files = {}
    for n in names:
        if "mask" in n:
            a = np.ones((batch, seq), np.int64)
        elif "type" in n:
            a = np.zeros((batch, seq), np.int64)
        else:
            a = rng.randint(0, vocab, size=(batch, seq)).astype(np.int64)
        files[n] = os.path.join(d, n + ".npy")
        np.save(files[n], a)
    return files


def pin(threads, use_numactl):
    if use_numactl and shutil.which("numactl") and threads <= (os.cpu_count() or 1):
        return ["numactl", "-C", f"0-{threads - 1}" if threads > 1 else "0"]
    return []


def run(cmd, env, log):
    t = time.time()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n\n" + p.stdout)
    return p.returncode, p.stdout, time.time() - t


def max_diff(dir_a, dir_b):
    worst = 0.0
    names = [f for f in os.listdir(dir_a) if f.endswith(".npy")]
    if not names:
        return None
    for f in names:
        pb = os.path.join(dir_b, f)
        if not os.path.exists(pb):
            return float("nan")
        a, b = np.load(os.path.join(dir_a, f)), np.load(pb)
        if a.shape != b.shape:
            return float("nan")
        worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--seq", default="128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--engine", default=os.path.join(ROOT, "build", "bin", "neural_engine"),
                    help="path to neural_engine, or 'none' to run ORT only")
    ap.add_argument("--generate", metavar="PRESET", help="gen_bert.py preset to build when the model is absent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, help="override the vocabulary size read from the model")
    ap.add_argument("--workdir", help="inputs/outputs/logs (default build/bench/<model dir name>)")
    ap.add_argument("--json", help="also write all results as JSON here")
    ap.add_argument("--no_numactl", action="store_true")
    a = ap.parse_args()

    model = a.model
    if not model:
        if not a.generate:
            ap.error("--model or --generate is required")
        model = os.path.join(ROOT, "build", "models", a.generate, "model.onnx")
    if not os.path.exists(model):
        if not a.generate:
            ap.error(f"{model} does not exist (use --generate PRESET)")
        out = os.path.dirname(os.path.abspath(model))
        print(f"generating {a.generate} into {out} ...", file=sys.stderr)
        subprocess.run([PY, os.path.join(ROOT, "scripts", "gen_bert.py"), "--preset", a.generate, "--out", out],
                       check=True, stdout=sys.stderr)
    model = os.path.abspath(model)
    mname = os.path.basename(os.path.dirname(model)) or os.path.basename(model)
    work = os.path.abspath(a.workdir or os.path.join(ROOT, "build", "bench", mname))
    names, vocab = model_info(model)
    vocab = a.vocab or vocab
    if vocab is None:
        ap.error("cannot find the vocabulary size in the model; pass --vocab")
    engine = None if a.engine == "none" else os.path.abspath(a.engine)
    if engine and not os.access(engine, os.X_OK):
        print(f"warning: engine {engine} not found; running ORT only", file=sys.stderr)
        engine = None
    ort_js = os.path.join(ROOT, "scripts", "ort_run.js")

    rows = []
    for b in ints(a.batch):
        for s in ints(a.seq):
            tag = f"b{b}_s{s}"
            files = make_inputs(names, vocab, b, s, a.seed, os.path.join(work, tag, "inputs"))
            inarg = ",".join(f"{n}={f}" for n, f in files.items())
            for t in ints(a.threads):
                env = dict(os.environ, OMP_NUM_THREADS=str(t))
                pre = pin(t, not a.no_numactl)
                d = os.path.join(work, tag, f"t{t}")
                os.makedirs(d, exist_ok=True)
                row = dict(model=mname, batch=b, seq=s, threads=t)
                ort_out = os.path.join(d, "ort")
                rc, out, _ = run(pre + ["node", ort_js, model, "--input", inarg, "--output_dir", ort_out,
                                        "--threads", str(t), "--iterations", str(a.iterations),
                                        "--warmup", str(a.warmup)], env, os.path.join(d, "ort.log"))
                if rc == 0:
                    r = json.loads(out.strip().splitlines()[-1])
                    row["ort"] = dict(latency_ms=r["latency_ms"], throughput=r["throughput"])
                else:
                    row["ort_error"] = f"rc {rc}, see {d}/ort.log"
                if engine:
                    ours_out, rep = os.path.join(d, "ours"), os.path.join(d, "ours_report.json")
                    if os.path.exists(rep):
                        os.remove(rep)
                    rc, out, _ = run(pre + [engine, "--model", model, "--input", inarg, "--output_dir", ours_out,
                                            "--iterations", str(a.iterations), "--w", str(a.warmup),
                                            "--batch_size", str(b), "--seq_len", str(s), "--report_json", rep],
                                     env, os.path.join(d, "ours.log"))
                    if rc == 0 and os.path.exists(rep):
                        r = json.load(open(rep))
                        row["ours"] = dict(latency_ms=r.get("latency_ms"), throughput=r.get("throughput"))
                        if "ort" in row and os.path.isdir(ours_out):
                            row["max_abs_diff"] = max_diff(ort_out, ours_out)
                    else:
                        row["ours_error"] = f"rc {rc}, see {d}/ours.log"
                rows.append(row)
                print(f"done {mname} b{b} s{s} t{t}", file=sys.stderr)

    def f(x, p=2):
        return "-" if x is None else (f"{x:.{p}f}" if isinstance(x, float) else str(x))

    print("| model | batch | seq | threads | ORT latency ms | ORT throughput | ours latency ms | ours throughput "
          "| ratio (ours/ORT thr) | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        o, u = r.get("ort"), r.get("ours")
        olat = o["latency_ms"]["mean"] if o else None
        othr = o["throughput"] if o else None
        ulat = (u["latency_ms"] or {}).get("mean") if u else None
        uthr = u["throughput"] if u else None
        ratio = uthr / othr if (uthr and othr) else None
        diff = r.get("max_abs_diff")
        print(f"| {r['model']} | {r['batch']} | {r['seq']} | {r['threads']} | "
              f"{f(olat) if o else 'ERR'} | {f(othr, 1) if o else 'ERR'} | "
              f"{f(ulat) if u else ('ERR' if 'ours_error' in r else '-')} | {f(uthr, 1) if u else '-'} | "
              f"{f(ratio)} | {'-' if diff is None else f'{diff:.2e}'} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(model=model, iterations=a.iterations, warmup=a.warmup, rows=rows), fh, indent=1)
    return 0 if all("ort_error" not in r and "ours_error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
