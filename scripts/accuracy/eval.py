#!/usr/bin/python3
"""Accuracy of our engine per model x precision on the held-out set of train_prune.py.

  /usr/bin/python3 scripts/accuracy/eval.py --models DIR
      [--engine build/bin/neural_engine] [--compile build/bin/neural_engine_compile]
      [--work DIR/eval] [--precisions fp32,int8,bf16] [--model_names dense,sparse80,sparse90]
      [--threads 2] [--timeout 300] [--no_ort] [--fp32_via model|ir] [--json FILE]

For every model in DIR/meta.json (dense, sparse80, sparse90):
  ORT fp32 (reference)   node scripts/ort_run.js M.onnx --input ... --output_dir ...
  ours fp32              neural_engine --model M.onnx (default; --fp32_via ir compiles first)
  ours int8              neural_engine_compile --model M.onnx --precision int8
                             --calib_dir DIR/calib --output_dir IR, then
                         neural_engine --config IR/conf.yaml --weight IR/model.bin
  ours bf16              the same with --precision bf16 (no --calib_dir)
each run per held-out batch with --input input_ids=…,attention_mask=… --output_dir OUT
--iterations 1 --w 0, reading OUT/logits.npy.
A step that fails (compiler or engine error, missing output, wrong shape, timeout) gives
"n/a (error: …)" in its row; the script never stops on it.

Prints a markdown table: model, 1x4 sparsity (mean over the encoder weights), precision,
runtime, accuracy, drop vs. the same model's ORT fp32 accuracy (absolute percentage points,
positive = worse), agreement with ORT fp32 (% same argmax), max |logit - ORT fp32 logit|.
Then a second table, per runtime x precision: dense accuracy, each sparse model's accuracy
and its relative drop 100 * (dense - sparse) / dense (the pruning literature's form).
Also writes WORK/results.md and WORK/results.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class StepError(Exception):
    pass


def short(msg, n=160):
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[: n - 1] + "…"


def run(cmd, timeout, env=None, log=None):
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           env=env, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        raise StepError(f"timeout after {timeout}s: {os.path.basename(cmd[0])}")
    except OSError as e:
        raise StepError(f"{cmd[0]}: {e}")
    if log:
        with open(log, "a") as f:
            f.write("$ " + " ".join(cmd) + f"\n{p.stdout}\n[rc {p.returncode}, {time.time() - t0:.2f}s]\n")
    if p.returncode != 0:
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        errs = [l for l in lines if "error" in l.lower()]
        msg = (errs[-1] if errs else (lines[-1] if lines else "")).strip()
        tool = os.path.basename(cmd[0])
        if msg.startswith(tool + ":"):
            msg = msg[len(tool) + 1:].strip()
        raise StepError(f"{tool} rc {p.returncode}: {msg}")
    return p.stdout


def load_logits(out_dir, n_rows, n_classes):
    f = os.path.join(out_dir, "logits.npy")
    if not os.path.exists(f):
        have = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
        raise StepError(f"no logits.npy in output (have {have})")
    x = np.load(f)
    if x.shape != (n_rows, n_classes):
        raise StepError(f"logits shape {x.shape}, expected {(n_rows, n_classes)}")
    return x.astype(np.float32)


def summary_table(results, names):
    """Pruning cost per runtime x precision, in the form of the pruning literature: the dense
    model's accuracy, each sparse model's accuracy and its relative drop
    100 * (dense - sparse) / dense (percent of the dense accuracy; positive = worse)."""
    acc = {(r["model"], r["runtime"], r["precision"]): r.get("accuracy") for r in results}
    dense = "dense" if "dense" in names else None
    sparse = [n for n in names if n != dense]
    if dense is None or not sparse:
        return []
    head = "| runtime | precision | dense % | " + " | ".join(f"{n} % | {n} rel. drop %" for n in sparse) + " |"
    out = ["Dense vs. sparse (rel. drop = 100 * (dense - sparse) / dense, same runtime and precision):", "",
           head, "|" + "---|" * (3 + 2 * len(sparse))]
    seen = []
    for r in results:
        k = (r["runtime"], r["precision"])
        if k not in seen:
            seen.append(k)
    for rt, prec in seen:
        d = acc.get((dense, rt, prec))
        cells = [rt, prec, "n/a" if d is None else f"{100 * d:.2f}"]
        for n in sparse:
            s_ = acc.get((n, rt, prec))
            cells.append("n/a" if s_ is None else f"{100 * s_:.2f}")
            cells.append("" if s_ is None or not d else f"{100 * (d - s_) / d:+.2f}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="train_prune.py output directory")
    ap.add_argument("--engine", default=os.path.join(ROOT, "build/bin/neural_engine"))
    ap.add_argument("--compile", default=os.path.join(ROOT, "build/bin/neural_engine_compile"))
    ap.add_argument("--work", help="scratch directory (default MODELS/eval)")
    ap.add_argument("--precisions", default="fp32,int8,bf16")
    ap.add_argument("--model_names", help="subset, comma-separated (default: all in meta.json)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300, help="per command, seconds")
    ap.add_argument("--node", default="node")
    ap.add_argument("--ort_script", default=os.path.join(ROOT, "scripts/ort_run.js"))
    ap.add_argument("--no_ort", action="store_true", help="skip ORT (no agreement / diff columns)")
    ap.add_argument("--fp32_via", choices=["model", "ir"], default="model",
                    help="fp32: neural_engine --model M.onnx, or compile an fp32 IR first")
    ap.add_argument("--json", help="also write results JSON here")
    a = ap.parse_args(argv)

    mdir = os.path.abspath(a.models)
    with open(os.path.join(mdir, "meta.json")) as f:
        meta = json.load(f)
    work = os.path.abspath(a.work or os.path.join(mdir, "eval"))
    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    log = os.path.join(work, "commands.log")
    n_classes = meta["task"]["n_classes"]
    hdir = os.path.join(mdir, meta["heldout"]["dir"])
    batches = sorted(d for d in os.listdir(hdir) if d.startswith("batch_"))
    labels = [np.load(os.path.join(hdir, b, "labels.npy")) for b in batches]
    rows_per = [len(l) for l in labels]
    all_labels = np.concatenate(labels)
    calib = os.path.join(mdir, meta["calib"]["dir"])
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), GLOG_minloglevel="2")
    names = a.model_names.split(",") if a.model_names else list(meta["models"])
    precisions = [p for p in a.precisions.split(",") if p]

    def inputs_arg(b):
        d = os.path.join(hdir, b)
        return f"input_ids={d}/input_ids.npy,attention_mask={d}/attention_mask.npy"

    def run_batches(tag, cmd_for_batch):
        outs = []
        for b, n in zip(batches, rows_per):
            od = os.path.join(work, "out", tag, b)
            os.makedirs(od, exist_ok=True)
            run(cmd_for_batch(b, od), a.timeout, env, log)
            outs.append(load_logits(od, n, n_classes))
        return np.concatenate(outs)

    results = []
    t_all = time.time()
    for name in names:
        m = meta["models"][name]
        onnx_path = os.path.join(mdir, m["file"])
        sp = float(np.mean([w["sparsity"]["1x4"] for w in m["weights"]]))
        ref = None
        ref_acc = None
        rows = []

        def row(runtime, prec, logits=None, err=None, secs=None):
            r = dict(model=name, sparsity_1x4=sp, precision=prec, runtime=runtime, seconds=secs)
            if err is not None:
                r["error"] = err
            else:
                pred = logits.argmax(-1)
                r["accuracy"] = float((pred == all_labels).mean())
                if ref is not None:
                    r["agree_ort"] = float((pred == ref.argmax(-1)).mean())
                    r["max_abs_diff"] = float(np.abs(logits - ref).max())
            r["torch_accuracy"] = m.get("torch_accuracy")
            rows.append(r)
            return r

        if not a.no_ort:
            t0 = time.time()
            try:
                ref = run_batches(f"{name}/ort_fp32", lambda b, od: [
                    a.node, a.ort_script, onnx_path, "--input", inputs_arg(b), "--output_dir", od,
                    "--threads", str(a.threads), "--iterations", "1", "--warmup", "0"])
                ref_acc = float((ref.argmax(-1) == all_labels).mean())
                row("ORT", "fp32", ref, secs=time.time() - t0)
            except StepError as e:
                ref = None
                row("ORT", "fp32", err=short(str(e).replace(mdir + os.sep, "")), secs=time.time() - t0)

        for prec in precisions:
            t0 = time.time()
            try:
                if prec == "fp32" and a.fp32_via == "model":
                    logits = run_batches(f"{name}/ours_fp32", lambda b, od: [
                        a.engine, "--model", onnx_path, "--input", inputs_arg(b), "--output_dir", od,
                        "--iterations", "1", "--w", "0"])
                else:
                    ir = os.path.join(work, "ir", f"{name}_{prec}")
                    os.makedirs(ir, exist_ok=True)
                    cmd = [a.compile, "--model", onnx_path, "--precision", prec, "--output_dir", ir]
                    if prec == "int8":
                        cmd += ["--calib_dir", calib]
                    if not os.path.exists(a.compile):
                        raise StepError(f"no compiler at {a.compile}")
                    run(cmd, a.timeout, env, log)
                    for f in ("conf.yaml", "model.bin"):
                        if not os.path.exists(os.path.join(ir, f)):
                            raise StepError(f"compiler wrote no {f}")
                    logits = run_batches(f"{name}/ours_{prec}", lambda b, od: [
                        a.engine, "--config", os.path.join(ir, "conf.yaml"), "--weight", os.path.join(ir, "model.bin"),
                        "--input", inputs_arg(b), "--output_dir", od, "--iterations", "1", "--w", "0"])
                r = row("ours", prec, logits, secs=time.time() - t0)
            except StepError as e:
                r = row("ours", prec, err=short(str(e).replace(mdir + os.sep, "")), secs=time.time() - t0)
        base = ref_acc
        if base is None:  # no ORT: drop vs. our own fp32
            base = next((r["accuracy"] for r in rows if r["runtime"] == "ours" and r["precision"] == "fp32"
                         and "accuracy" in r), None)
        for r in rows:
            if "accuracy" in r and base is not None:
                r["drop_pp"] = 100.0 * (base - r["accuracy"])
        results.extend(rows)
        for r in rows:
            print(f"# {name} {r['runtime']} {r['precision']}: "
                  + (f"acc {r['accuracy']:.4f}" if "accuracy" in r else f"n/a ({r['error']})")
                  + f" [{r['seconds']:.1f}s]", file=sys.stderr, flush=True)

    def pct(x):
        return "" if x is None else f"{100.0 * x:.2f}"

    lines = [
        f"Held-out: {len(all_labels)} sequences in {len(batches)} batches; task {meta['task']['name']} "
        f"({n_classes} classes); drop = {'our' if a.no_ort else 'ORT'} fp32 accuracy of the same model − this "
        f"accuracy (percentage points); threads {a.threads}.",
        "",
        "| model | 1x4 sparsity | precision | runtime | accuracy % | drop vs fp32 (pp) | agree w/ ORT fp32 % | max abs logit diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | {100 * r['sparsity_1x4']:.1f}% | {r['precision']} | {r['runtime']} | "
                         f"n/a (error: {r['error'].replace('|', '/')}) | | | |")
        else:
            d = r.get("drop_pp")
            lines.append(f"| {r['model']} | {100 * r['sparsity_1x4']:.1f}% | {r['precision']} | {r['runtime']} | "
                         f"{pct(r['accuracy'])} | {'' if d is None else f'{d:+.2f}'} | {pct(r.get('agree_ort'))} | "
                         + ("" if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.3g}") + " |")
    lines += ["", *summary_table(results, names)]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(work, "results.md"), "w") as f:
        f.write(table + "\n")
    out = dict(models_dir=mdir, engine=a.engine, compile=a.compile, threads=a.threads,
               n_heldout=int(len(all_labels)), seconds=round(time.time() - t_all, 1), rows=results)
    for p in [os.path.join(work, "results.json")] + ([a.json] if a.json else []):
        with open(p, "w") as f:
            json.dump(out, f, indent=1)
    print(f"\n(eval took {out['seconds']}s; commands and their output in {log})", file=sys.stderr)


if __name__ == "__main__":
    main()
