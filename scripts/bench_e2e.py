#!/usr/bin/python3
"""End-to-end table: our engine on dense and sparse models at fp32 / int8 / bf16, against ONNX
Runtime fp32 on the DENSE model, measured in the same run (same inputs, threads, pinning).

  scripts/bench_e2e.py --dense D.onnx --sparse S1.onnx[,S2.onnx] [--precisions fp32,int8,bf16]
      [--batch 1,8] [--seq 128] [--threads 2] [--iterations 5] [--warmup 2] [--workdir DIR]
      [--instances N --cores C]   (adds an N x C multi-instance row per sparse model/precision)

Columns: latency = mean wall time of one batch; throughput in samples/s; "x ORT" = our
throughput / ORT fp32 dense throughput; "lat x" = ORT latency / ours; max|diff| = largest
difference from ONNX Runtime running the same model (fp32 only; int8/bf16 are compared by
scripts/cosine_int8.py and the accuracy benchmark instead).
"""
import argparse, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_vs_ort as B  # noqa: E402

ROOT = B.ROOT


def sparsity_of(model):
    meta = os.path.join(os.path.dirname(model), "meta.json")
    if os.path.exists(meta):
        m = json.load(open(meta))
        cfg = m.get("config", {})
        if cfg.get("prune", "none") != "none":
            return "%s %d%%" % (cfg["prune"], round(100 * cfg.get("sparsity", 0)))
    return "dense"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", required=True)
    ap.add_argument("--sparse", default="")
    ap.add_argument("--precisions", default="fp32,int8,bf16")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--seq", default="128")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--stat", choices=["mean", "p50"], default="mean",
                    help="latency statistic of the timed runs (p50 is robust to a noisy machine); "
                         "throughput = batch / that latency for single-instance rows")
    ap.add_argument("--instances", type=int, default=0)
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--workdir", default=os.path.join(ROOT, "build", "bench_e2e"))
    ap.add_argument("--engine", default=os.path.join(ROOT, "build", "bin", "neural_engine"))
    ap.add_argument("--compiler", default=os.path.join(ROOT, "build", "bin", "neural_engine_compile"))
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    names, vocab = B.model_info(a.dense)
    ort_js = os.path.join(ROOT, "scripts", "ort_run.js")

    # Compile every configuration once.
    configs = [(a.dense, "fp32")]
    for s in [x for x in a.sparse.split(",") if x]:
        for p in a.precisions.split(","):
            configs.append((s, p))
    irs = {}
    for model, prec in configs:
        # "int8:t" = --precision int8 --transpose (feature-major chains)
        base_prec, transpose = prec.split(":")[0], prec.endswith(":t")
        tag = os.path.basename(os.path.dirname(os.path.abspath(model))) + "_" + prec.replace(":", "")
        ir = os.path.join(a.workdir, "ir", tag)
        if not os.path.exists(os.path.join(ir, "conf.yaml")):
            rc, out, t = B.run([a.compiler, "--model", model, "--precision", base_prec, "--output_dir", ir] +
                               (["--transpose"] if transpose else []), dict(os.environ),
                               os.path.join(a.workdir, tag + ".compile.log"))
            if rc != 0:
                print("compile failed for %s %s: %s" % (model, prec, out[-500:]), file=sys.stderr)
                continue
        irs[(model, prec)] = ir

    rows = []
    for b in B.ints(a.batch):
        for s in B.ints(a.seq):
            d0 = os.path.join(a.workdir, "b%d_s%d" % (b, s))
            files = B.make_inputs(names, vocab, b, s, 0, os.path.join(d0, "inputs"))
            inarg = ",".join("%s=%s" % kv for kv in files.items())
            for t in B.ints(a.threads):
                env = dict(os.environ, OMP_NUM_THREADS=str(t))
                pre = B.pin(t, True)
                d = os.path.join(d0, "t%d" % t)
                os.makedirs(d, exist_ok=True)
                ort = {}
                for model in sorted({m for m, _ in configs}):
                    od = os.path.join(d, "ort_" + os.path.basename(os.path.dirname(os.path.abspath(model))))
                    iters = a.iterations if model == a.dense else 1  # others: outputs only
                    rc, out, _ = B.run(pre + ["node", ort_js, model, "--input", inarg, "--output_dir", od, "--threads", str(t),
                                              "--iterations", str(iters), "--warmup", str(a.warmup if model == a.dense else 0)],
                                       env, od + ".log")
                    if rc == 0:
                        ort[model] = (json.loads(out.strip().splitlines()[-1]), od)
                if a.dense in ort:
                    r = ort[a.dense][0]
                    lat = r["latency_ms"][a.stat]
                    rows.append(dict(model="ORT", sparsity="dense", prec="fp32", b=b, s=s, t=t, inst="1 x %d" % t,
                                     lat=lat, thr=r["throughput"] if a.stat == "mean" else b * 1000.0 / lat, diff=None))
                for (model, prec), ir in irs.items():
                    runs = [(1, t)] + ([(a.instances, a.cores)] if a.instances and model != a.dense else [])
                    for n, c in runs:
                        tag = "%s_%s_%dx%d" % (os.path.basename(ir), prec, n, c)
                        od, rep = os.path.join(d, tag), os.path.join(d, tag + ".json")
                        cmd = [a.engine, "--config", ir + "/conf.yaml", "--weight", ir + "/model.bin", "--input", inarg,
                               "--iterations", str(a.iterations), "--w", str(a.warmup), "--report_json", rep]
                        if n > 1:
                            cmd += ["--instances", str(n), "--cores_per_instance", str(c)]
                            e, p = dict(os.environ), []
                        else:
                            cmd += ["--output_dir", od]
                            e, p = env, pre
                        rc, out, _ = B.run(p + cmd, e, od + ".log")
                        if rc != 0 or not os.path.exists(rep):
                            print("run failed: %s (see %s.log)" % (tag, od), file=sys.stderr)
                            continue
                        r = json.load(open(rep))
                        lat = r["latency_ms"][a.stat] if "latency_ms" in r else r["latency_ms_mean"]
                        thr = r["throughput"] if (a.stat == "mean" or n > 1) else b * 1000.0 / lat
                        diff = None
                        if n == 1 and prec == "fp32" and model in ort:
                            diff = B.max_diff(ort[model][1], od)
                        rows.append(dict(model="ours", sparsity=sparsity_of(model), prec=prec, b=b, s=s, t=t,
                                         inst="%d x %d" % (n, c), lat=lat, thr=thr, diff=diff))
                print("done b%d s%d t%d" % (b, s, t), file=sys.stderr)

    print("| engine | sparsity | precision | batch | seq | instances x cores | latency ms | throughput | x ORT fp32 | lat x | max abs diff vs ORT |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        # Baseline: ORT on the same batch, sequence and thread count (instance rows: the total cores).
        base = [x for x in rows if x["model"] == "ORT" and x["b"] == r["b"] and x["s"] == r["s"] and x["t"] == r["t"]]
        bt = base[0] if base else None
        ratio = "%.2f" % (r["thr"] / bt["thr"]) if bt else "-"
        latx = "%.2f" % (bt["lat"] / r["lat"]) if bt and r["inst"].startswith("1 x") else "-"
        if r["model"] == "ORT" and r is not bt:
            ratio = latx = "-"
        diff = "%.1e" % r["diff"] if r["diff"] is not None else "-"
        print("| %s | %s | %s | %d | %d | %s | %.1f | %.2f | %s | %s | %s |" % (
            r["model"], r["sparsity"], r["prec"].replace(":t", " --transpose"), r["b"], r["s"], r["inst"], r["lat"], r["thr"], ratio, latx, diff))


if __name__ == "__main__":
    main()
