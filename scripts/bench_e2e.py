#!/usr/bin/python3
"""End-to-end table: our engine on dense and sparse models at fp32 / int8 / bf16, against two
ONNX Runtime baselines on the DENSE model, measured in the same run (same inputs, threads,
batch, sequence, pinning, iterations):

  ORT fp32 dense      the dense fp32 ONNX model;
  ORT int8 QDQ dense  the dense model quantized as onnxruntime.quantization.quantize_static
                      writes it (QDQ format, u8 per-tensor activations, s8 per-channel
                      weights on every MatMul), made by scripts/make_qdq.py --mode static
                      --activation u8 --per_channel 1 and cached in the workdir; ORT runs it
                      through MLAS's int8 kernels (AMX / VNNI where the CPU has them).

  scripts/bench_e2e.py --dense D.onnx [--sparse S1.onnx[,S2.onnx]] [--precisions fp32,int8,bf16]
      [--dense_precisions P (default: --precisions)] [--batch 1,8] [--seq 128] [--threads 2]
      [--iterations 5] [--warmup 2] [--stat mean|p50] [--rounds R] [--workdir DIR]
      [--instances N --cores C]   (adds an N x C multi-instance row per sparse model/precision)
      [--engine_qdq]              (adds our engine on the very QDQ file ORT runs)
      [--calib_dir D]             (QDQ calibration inputs; default D's inputs/, else generated)
      [--no_qdq] [--json F] [--markdown F]

Precisions: fp32, int8, bf16 (neural_engine_compile --precision P); "int8:t" = int8 with
--transpose (feature-major chains). The dense model always gets fp32.
--rounds R: the whole set of contenders of one (batch, seq, threads) runs R times, in
alternating order (odd rounds reversed), and each row reports the median over the rounds of
its latency and of its throughput; the ratio columns are ratios of those medians, and with
R > 1 "rounds x ORT fp32 / int8" lists the ratio of each round (against that round's ORT).
Columns: latency = the --stat (mean or p50) wall time of one batch over the timed iterations;
throughput in samples/s (batch / latency for single-instance rows; the sum over instances for
N x C rows); "x ORT fp32" / "x ORT int8" = throughput / ORT's throughput at the same batch,
seq and threads; "lat x fp32" / "lat x int8" = ORT's latency / ours (single-instance rows);
max|diff| = largest difference from ONNX Runtime running the same ONNX file (fp32 rows; and
the --engine_qdq row against ORT on the QDQ file; our own int8/bf16 use their own calibration
and are compared by scripts/cosine_int8.py and the accuracy benchmark instead).
The first lines name the CPU (build/bin/neural_engine_cpu: ne::cpu::describe() and the ISA
tier) and the ORT version; --json / --markdown files carry them too. A contender that cannot
run (ORT missing, make_qdq or a compile failing) prints why and stays in the table as
"not run"; the other rows still print.
"""
import argparse, json, os, shutil, statistics, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_vs_ort as B  # noqa: E402

ROOT = B.ROOT
ORT_JS = os.path.join(ROOT, "scripts", "ort_run.js")
ORT_FP32, ORT_INT8 = "ORT fp32 dense", "ORT int8 QDQ dense"


def warn(msg):
    print("bench_e2e: " + msg, file=sys.stderr)


def sparsity_of(model):
    meta = os.path.join(os.path.dirname(model), "meta.json")
    if os.path.exists(meta):
        m = json.load(open(meta))
        cfg = m.get("config", {})
        if cfg.get("prune", "none") != "none":
            return "%s %d%%" % (cfg["prune"], round(100 * cfg.get("sparsity", 0)))
    return "dense"


def dir_tag(model):
    return os.path.basename(os.path.dirname(os.path.abspath(model)))


def cpu_info(bindir):
    """(short 'model name, isa tier', full describe() line) from neural_engine_cpu."""
    exe = os.path.join(bindir, "neural_engine_cpu")
    try:
        line = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        isa = subprocess.run([exe, "--isa"], capture_output=True, text=True, timeout=30).stdout.strip()
        line = line[0] if line else ""
        name = line.split("|")[0].strip()
        name = name[4:].strip() if name.startswith("cpu:") else name
        return "%s, %s" % (name or "unknown CPU", isa or "unknown ISA"), line
    except OSError as e:
        warn("cannot run %s (%s): CPU unknown" % (exe, e))
        return "unknown (%s missing)" % exe, ""


def ort_available():
    """None if onnxruntime-node loads the way ort_run.js loads it, else the reason."""
    if not shutil.which("node"):
        return "node is not on PATH"
    d = os.path.join(ROOT, "third_party", "ort", "node_modules", "onnxruntime-node")
    js = "try{require(%s)}catch(e){require('onnxruntime-node')}" % json.dumps(d)
    p = subprocess.run(["node", "-e", js], capture_output=True, text=True)
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines() or ["?"]
        why = next((l for l in lines if "Error" in l or "Cannot find" in l), lines[0])
        return "onnxruntime-node does not load (run scripts/install_ort.sh): %s" % why.strip()[:200]
    return None


def make_qdq_model(a, names, vocab):
    """The dense model as quantize_static writes it, cached in the workdir. (path, error)."""
    qd = os.path.join(a.workdir, "qdq", dir_tag(a.dense))
    out = os.path.join(qd, "model.onnx")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(a.dense):
        return out, None
    calib = a.calib_dir or os.path.join(os.path.dirname(os.path.abspath(a.dense)), "inputs")
    if not (os.path.isdir(calib) and any(f.endswith(".npy") or os.path.isdir(os.path.join(calib, f))
                                         for f in os.listdir(calib))):
        if vocab is None:
            return None, "no calibration inputs (%s) and no vocabulary size to generate them" % calib
        calib = os.path.join(qd + "_calib")  # seed 1: not the benchmark's inputs (seed 0)
        B.make_inputs(names, vocab, 2, min(B.ints(a.seq)), 1, calib)
    os.makedirs(os.path.dirname(qd), exist_ok=True)
    log = qd + ".make_qdq.log"
    cmd = [B.PY, os.path.join(ROOT, "scripts", "make_qdq.py"), "--model", a.dense, "--out", qd,
           "--mode", "static", "--activation", "u8", "--per_channel", "1", "--calib_dir", calib, "--no_ref"]
    warn("making the QDQ model: " + " ".join(cmd))
    rc, txt, _ = B.run(cmd, dict(os.environ), log)
    if rc != 0 or not os.path.exists(out):
        tail = " | ".join(txt.strip().splitlines()[-3:])
        return None, "make_qdq failed (rc %d, see %s): %s" % (rc, log, tail[-400:])
    return out, None


def compile_ir(a, model, prec, tag):
    """IR dir for (model, prec), compiled once into the workdir. (dir, error)."""
    ir = os.path.join(a.workdir, "ir", tag)
    conf = os.path.join(ir, "conf.yaml")
    if os.path.exists(conf) and os.path.getmtime(conf) >= os.path.getmtime(model):  # else the model changed
        return ir, None
    base_prec, transpose = prec.split(":")[0], prec.endswith(":t")
    cmd = [a.compiler, "--model", model, "--output_dir", ir]
    if base_prec != "qdq":  # a QDQ file imports as int8 with its own scales
        cmd += ["--precision", base_prec]
    cmd += ["--transpose"] if transpose else []
    log = os.path.join(a.workdir, tag + ".compile.log")
    try:
        rc, out, _ = B.run(cmd, dict(os.environ), log)
    except OSError as e:
        return None, "cannot run %s: %s" % (a.compiler, e)
    if rc != 0 or not os.path.exists(os.path.join(ir, "conf.yaml")):
        return None, "compile failed (see %s): %s" % (log, " | ".join(out.strip().splitlines()[-2:])[-300:])
    return ir, None


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", required=True)
    ap.add_argument("--sparse", default="")
    ap.add_argument("--precisions", default="fp32,int8,bf16", help="for the sparse models")
    ap.add_argument("--dense_precisions", default=None,
                    help="our engine on the dense model (default: --precisions; fp32 always)")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--seq", default="128")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--stat", choices=["mean", "p50"], default="mean",
                    help="latency statistic of the timed runs (p50 is robust to a noisy machine); "
                         "throughput = batch / that latency for single-instance rows")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every contender R times in alternating order, report the median")
    ap.add_argument("--instances", type=int, default=0)
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--engine_qdq", action="store_true",
                    help="also our engine on the QDQ model ORT's int8 row runs (QDQ import)")
    ap.add_argument("--no_qdq", action="store_true", help="skip the ORT int8 QDQ baseline")
    ap.add_argument("--calib_dir", help="calibration inputs for the QDQ model (make_qdq --calib_dir)")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "build", "bench_e2e"))
    ap.add_argument("--engine", default=os.path.join(ROOT, "build", "bin", "neural_engine"))
    ap.add_argument("--compiler", default=os.path.join(ROOT, "build", "bin", "neural_engine_compile"))
    ap.add_argument("--json", help="also write the rows (and the CPU) as JSON here")
    ap.add_argument("--markdown", help="also write the printed header and table here")
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    a.dense = os.path.abspath(a.dense)
    a.workdir = os.path.abspath(a.workdir)
    os.makedirs(a.workdir, exist_ok=True)
    names, vocab = B.model_info(a.dense)
    cpu, cpu_line = cpu_info(os.path.dirname(os.path.abspath(a.engine)))
    notes = []

    def note(msg):
        warn(msg)
        notes.append(msg)

    ort_err = ort_available()
    if ort_err:
        note("ONNX Runtime unavailable: %s; the ORT rows are not run" % ort_err)

    # The QDQ model (its calibration runs in ORT; a cached one is used even without ORT).
    qdq, qdq_err = None, None
    if not a.no_qdq or a.engine_qdq:
        cached = os.path.join(a.workdir, "qdq", dir_tag(a.dense), "model.onnx")
        if ort_err and not os.path.exists(cached):
            qdq_err = "no QDQ model: make_qdq calibrates in ONNX Runtime, which is unavailable"
        else:
            qdq, qdq_err = make_qdq_model(a, names, vocab)
        if qdq_err:
            note(qdq_err)

    # Our configurations: (label, model, prec, sparsity) compiled once each.
    dprec = a.dense_precisions if a.dense_precisions is not None else a.precisions
    configs = [(a.dense, p) for p in ["fp32"] + [p for p in dprec.split(",") if p and p != "fp32"]]
    sparse = [os.path.abspath(x) for x in a.sparse.split(",") if x]
    for s in sparse:
        configs += [(s, p) for p in a.precisions.split(",") if p]
    ours = []  # dict(model, prec, ir, err, onnx)
    for model, prec in configs:
        tag = dir_tag(model) + "_" + prec.replace(":", "")
        ir, err = compile_ir(a, model, prec, tag)
        if err:
            note("%s %s: %s" % (dir_tag(model), prec, err))
        ours.append(dict(label="ours", model=model, prec=prec, ir=ir, err=err and "compile failed",
                         sparsity=sparsity_of(model)))
    if a.engine_qdq:
        ir, err = (None, "no QDQ model") if qdq is None else compile_ir(a, qdq, "qdq", "qdq_" + dir_tag(a.dense))
        if err and qdq is not None:
            note("QDQ import: " + err)
            err = "QDQ import compile failed"
        ours.insert(len([c for c in configs if c[0] == a.dense]),
                    dict(label="ours (QDQ file)", model=qdq or "", prec="int8 QDQ", ir=ir, err=err, sparsity="dense"))

    ort_version = None
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

                def ort_cmd(model, od, iters, warm):
                    return pre + ["node", ORT_JS, model, "--input", inarg, "--output_dir", od, "--threads", str(t),
                                  "--iterations", str(iters), "--warmup", str(warm)]

                # Untimed ORT reference outputs for the sparse fp32 rows' max|diff|.
                ref = {}
                if not ort_err:
                    for model in sorted({c["model"] for c in ours if c["prec"] == "fp32" and c["model"] != a.dense}):
                        od = os.path.join(d, "ort_" + dir_tag(model))
                        rc, out, _ = B.run(ort_cmd(model, od, 1, 0), env, od + ".log")
                        if rc == 0:
                            ref[model] = od
                        else:
                            warn("ORT reference run failed for %s (see %s.log)" % (model, od))

                # The contenders of this (b, s, t).
                cont = []
                base = dict(b=b, s=s, t=t, lat=None, thr=None, diff=None, rounds=[], err=None)
                for label, model in ((ORT_FP32, a.dense), (ORT_INT8, qdq)):
                    if label == ORT_INT8 and a.no_qdq:
                        continue
                    err = ort_err and "ONNX Runtime unavailable"
                    if label == ORT_INT8 and not err and qdq is None:
                        err = "no QDQ model (make_qdq failed)"
                    od = os.path.join(d, "ort_" + ("qdq_" if label == ORT_INT8 else "") + dir_tag(a.dense))
                    cont.append(dict(base, kind="ort", label=label, sparsity="dense",
                                     prec="fp32" if label == ORT_FP32 else "int8 QDQ", inst="1 x %d" % t,
                                     model=model, od=od, err=err, rounds=[]))
                    if label == ORT_FP32 and not err:
                        ref[a.dense] = od
                    if label == ORT_INT8 and not err:
                        ref[qdq] = od
                for c in ours:
                    runs = [(1, t)] + ([(a.instances, a.cores)] if a.instances and c["model"] in sparse else [])
                    for n, cc in runs:
                        tag = "%s_%dx%d" % (os.path.basename(c["ir"] or "none"), n, cc)
                        cont.append(dict(base, kind="ours", label=c["label"], sparsity=c["sparsity"], prec=c["prec"],
                                         inst="%d x %d" % (n, cc), n=n, c=cc, ir=c["ir"], model=c["model"],
                                         od=os.path.join(d, tag), err=c["err"], rounds=[]))

                for r in range(a.rounds):
                    order = cont if r % 2 == 0 else cont[::-1]
                    for x in order:
                        if x["err"]:
                            continue
                        log = "%s.r%d.log" % (x["od"], r)
                        if x["kind"] == "ort":
                            rc, out, _ = B.run(ort_cmd(x["model"], x["od"], a.iterations, a.warmup), env, log)
                            try:
                                rep = json.loads(out.strip().splitlines()[-1]) if rc == 0 else None
                            except (ValueError, IndexError):
                                rep = None
                            if rep is None:
                                x["err"] = "failed (see %s)" % log
                                warn("%s b%d s%d t%d: %s" % (x["label"], b, s, t, x["err"]))
                                continue
                            ort_version = rep.get("ort_version", ort_version)
                            lat = rep["latency_ms"][a.stat]
                            thr = rep["throughput"] if a.stat == "mean" else b * 1000.0 / lat
                        else:
                            rep_f = "%s.r%d.json" % (x["od"], r)
                            if os.path.exists(rep_f):
                                os.remove(rep_f)
                            cmd = [a.engine, "--config", x["ir"] + "/conf.yaml", "--weight", x["ir"] + "/model.bin",
                                   "--input", inarg, "--iterations", str(a.iterations), "--w", str(a.warmup),
                                   "--report_json", rep_f]
                            if x["n"] > 1:  # the engine pins its instances itself
                                cmd += ["--instances", str(x["n"]), "--cores_per_instance", str(x["c"])]
                                e, p = dict(os.environ), []
                            else:
                                cmd += ["--output_dir", x["od"]]
                                e, p = env, pre
                            rc, out, _ = B.run(p + cmd, e, log)
                            if rc != 0 or not os.path.exists(rep_f):
                                x["err"] = "failed (see %s)" % log
                                warn("%s %s %s b%d s%d t%d: %s" % (x["label"], x["sparsity"], x["prec"], b, s, t, x["err"]))
                                continue
                            rep = json.load(open(rep_f))
                            lat = rep["latency_ms"][a.stat] if "latency_ms" in rep else rep["latency_ms_mean"]
                            thr = rep["throughput"] if (a.stat == "mean" or x["n"] > 1) else b * 1000.0 / lat
                        x["rounds"].append(dict(lat=lat, thr=thr))
                    print("done b%d s%d t%d round %d/%d" % (b, s, t, r + 1, a.rounds), file=sys.stderr)

                for x in cont:
                    if x["rounds"] and not x["err"]:
                        x["lat"] = median([q["lat"] for q in x["rounds"]])
                        x["thr"] = median([q["thr"] for q in x["rounds"]])
                        # fp32 against ORT on the same fp32 file; the QDQ import against ORT on the QDQ file.
                        if x["kind"] == "ours" and x["n"] == 1 and x["prec"] in ("fp32", "int8 QDQ") and x["model"] in ref:
                            x["diff"] = B.max_diff(ref[x["model"]], x["od"])
                    rows.append(x)
                print("done b%d s%d t%d" % (b, s, t), file=sys.stderr)

    # ---- the table
    def baseline(r, label):
        for x in rows:
            if x["label"] == label and x["b"] == r["b"] and x["s"] == r["s"] and x["t"] == r["t"] and x["thr"]:
                return x
        return None

    def fmt(v, p=2):
        return "-" if v is None else "%.*f" % (p, v)

    multi = a.rounds > 1
    head = ["CPU: %s." % cpu]
    if cpu_line:
        head.append("(`neural_engine_cpu`: %s)" % cpu_line)
    head.append("ONNX Runtime %s (onnxruntime-node, CPU EP, intra-op threads = threads, all graph optimisations); "
                "ORT int8 = the dense model as quantize_static QDQ (u8 per-tensor activations, s8 per-channel "
                "weights, scripts/make_qdq.py --mode static)." % (ort_version or "?"))
    head.append("latency = %s of %d timed batches (%d warm-up)%s; pinned with numactl -C 0-(threads-1)." % (
        a.stat, a.iterations, a.warmup,
        "; median of %d rounds, contenders in alternating order (odd rounds reversed) per batch/seq/threads" % a.rounds
        if multi else "; one round"))
    cols = ["engine", "sparsity", "precision", "batch", "seq", "instances x cores", "latency ms", "throughput",
            "x ORT fp32", "x ORT int8", "lat x fp32", "lat x int8"]
    if multi:
        cols += ["rounds x ORT fp32", "rounds x ORT int8"]
    cols += ["max abs diff vs ORT"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        single = r["inst"].startswith("1 x")
        bf, bi = baseline(r, ORT_FP32), baseline(r, ORT_INT8)
        cells = [r["label"], r["sparsity"], r["prec"].replace(":t", " --transpose"), str(r["b"]), str(r["s"]), r["inst"]]
        if r["thr"] is None:
            why = r["err"] or "no result"
            cells += ["not run: " + why] + ["-"] * (len(cols) - len(cells) - 1)
        else:
            cells += [fmt(r["lat"], 1), fmt(r["thr"])]
            for bb in (bf, bi):
                cells.append(fmt(r["thr"] / bb["thr"]) if bb else "-")
            for bb in (bf, bi):
                cells.append(fmt(bb["lat"] / r["lat"]) if bb and single else "-")
            if multi:
                for bb in (bf, bi):
                    if bb and len(bb["rounds"]) == len(r["rounds"]):
                        # Round k of r against round k of its baseline (same order pass).
                        cells.append(" / ".join("%.2f" % (q["thr"] / p["thr"]) for q, p in zip(r["rounds"], bb["rounds"])))
                    else:
                        cells.append("-")
            cells.append("%.1e" % r["diff"] if r["diff"] is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(head) + "\n\n" + "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join("note: " + n for n in notes) + "\n"
    print(text, end="")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.json:
        keep = ("label", "kind", "sparsity", "prec", "b", "s", "t", "inst", "lat", "thr", "diff", "rounds", "err", "model")
        with open(a.json, "w") as f:
            json.dump(dict(cpu=cpu, cpu_describe=cpu_line, ort_version=ort_version, stat=a.stat, rounds=a.rounds,
                           iterations=a.iterations, warmup=a.warmup, qdq_model=qdq, notes=notes,
                           rows=[{k: r.get(k) for k in keep} for r in rows]), f, indent=1)
    return 0 if all(r["thr"] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
