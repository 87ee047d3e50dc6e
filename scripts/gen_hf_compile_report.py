#!/usr/bin/python3
"""What neural_engine_compile / neural_engine do with a gen_hf_matrix.py directory.

  /usr/bin/python3 scripts/gen_hf_compile_report.py MATRIX_DIR [--bin build/bin] [--work DIR]
      [--only NAME ...] [--tol 1e-4] [--json FILE]

For each MATRIX_DIR/<model>/ (model.onnx, inputs/, ref/, meta.json): compile to an IR, print
the compiler's operator summary or its error, run the IR on the model's inputs and compare
every output with the torch reference (max abs diff). A table on stdout, details in --json.
Exit status 0 always: this reports, it does not gate.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np


def run(cmd, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr)


def main(argv=None):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("matrix_dir")
    ap.add_argument("--bin", default=os.path.join(repo, "build", "bin"))
    ap.add_argument("--work", default=None, help="IRs and outputs (default MATRIX_DIR/_engine)")
    ap.add_argument("--only", nargs="+")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    work = a.work or os.path.join(a.matrix_dir, "_engine")
    names = sorted(d for d in os.listdir(a.matrix_dir)
                   if os.path.exists(os.path.join(a.matrix_dir, d, "meta.json")))
    if a.only:
        names = [n for n in names if n in a.only]
    report = {}
    for name in names:
        src = os.path.join(a.matrix_dir, name)
        meta = json.load(open(os.path.join(src, "meta.json")))
        ir = os.path.join(work, name, "ir")
        out = os.path.join(work, name, "out")
        os.makedirs(ir, exist_ok=True)
        os.makedirs(out, exist_ok=True)
        rc, log = run([os.path.join(a.bin, "neural_engine_compile"), "--model", os.path.join(src, "model.onnx"),
                       "--output_dir", ir])
        r = dict(compile_rc=rc)
        if rc != 0:
            r["compile_error"] = "\n".join(l for l in log.strip().splitlines() if l.strip())[-1500:]
            print(f"{name:28s} COMPILE FAIL: {r['compile_error'].splitlines()[0][:150]}")
            report[name] = r
            continue
        m = re.search(r"(\d+) operators \((.*)\)", log)
        r["summary"] = m.group(0) if m else log.strip().splitlines()[-1]
        spec = ",".join(f"{n}={os.path.join(src, 'inputs', i['file'])}" for n, i in meta["inputs"].items())
        rc, log = run([os.path.join(a.bin, "neural_engine"), "--config", os.path.join(ir, "conf.yaml"),
                       "--weight", os.path.join(ir, "model.bin"), "--input", spec, "--output_dir", out,
                       "--iterations", "1", "--w", "0"])
        r["run_rc"] = rc
        if rc != 0:
            r["run_error"] = "\n".join(log.strip().splitlines()[-5:])[-1500:]
            print(f"{name:28s} compiled ({r['summary']}); RUN FAIL: {r['run_error'].splitlines()[-1][:150]}")
            report[name] = r
            continue
        diffs = {}
        for oname, o in meta["outputs"].items():
            ref = np.load(os.path.join(src, "ref", o["file"]))
            path = os.path.join(out, o["file"])
            if not os.path.exists(path):
                diffs[oname] = "missing"
                continue
            got = np.load(path)
            diffs[oname] = (f"shape {list(got.shape)} != {list(ref.shape)}" if got.shape != ref.shape
                            else float(np.abs(got.astype(np.float64) - ref).max()))
        r["max_abs_diff"] = diffs
        ok = all(isinstance(d, float) and d <= a.tol for d in diffs.values())
        r["match"] = ok
        ds = ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in diffs.items())
        print(f"{name:28s} {'MATCH' if ok else 'MISMATCH'} [{ds}]  {r['summary']}")
        report[name] = r
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
