#!/usr/bin/python3
"""Generate the tiny matrix of Hugging Face-style exports (scripts/gen_hf.py) in one process.

  /usr/bin/python3 scripts/gen_hf_matrix.py OUTDIR [--families ...] [--heads ...] [--opsets ...]
      [--exporter transformers|optimum] [--check_ort] [--jobs N]

Writes OUTDIR/<family>_<head>_o<opset>/ (model.onnx, inputs/, ref/, meta.json) for every
combination (default 7 families x 4 heads x opsets 11 14 17 = 84 models, tiny size) and
OUTDIR/matrix.json (per model: op_types, node count, ORT max |diff| with --check_ort).
--check_ort runs ONNX Runtime on each (one node process per model) and fails if any
output differs from torch by more than 1e-4. Exit status 1 if any model failed.
"""
import argparse
import json
import os
import sys
import time
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_hf  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--families", nargs="+", default=list(gen_hf.FAMILIES), choices=gen_hf.FAMILIES)
    ap.add_argument("--heads", nargs="+", default=list(gen_hf.HEADS), choices=gen_hf.HEADS)
    ap.add_argument("--opsets", nargs="+", type=int, default=[11, 14, 17])
    ap.add_argument("--exporter", default="transformers", choices=sorted(gen_hf.EXPORTERS))
    ap.add_argument("--check_ort", action="store_true")
    a = ap.parse_args(argv)
    gen_hf.torch.set_num_threads(1)
    # the tracer's warnings (masked_fill's torch.tensor constant, ...) are the same in real exports
    warnings.filterwarnings("ignore", category=gen_hf.torch.jit.TracerWarning)
    t0 = time.time()
    results, failed = {}, []
    for fam in a.families:
        for head in a.heads:
            for opset in a.opsets:
                name = f"{fam}_{head}_o{opset}"
                args = ["--family", fam, "--head", head, "--opset", str(opset), "--exporter", a.exporter,
                        "--out", os.path.join(a.outdir, name), "--quiet"]
                if a.check_ort:
                    args.append("--check_ort")
                t = time.time()
                try:
                    meta = gen_hf.generate(gen_hf.parse_args(args))
                    results[name] = dict(ok=True, nodes=meta["num_nodes"], op_types=meta["op_types"],
                                         outputs=list(meta["outputs"]), ort_max_abs_diff=meta.get("ort_max_abs_diff"),
                                         seconds=round(time.time() - t, 2))
                    d = meta.get("ort_max_abs_diff")
                    print(f"ok   {name:28s} {meta['num_nodes']:4d} nodes" + (f"  ORT {d:.2e}" if d is not None else ""),
                          flush=True)
                except Exception as ex:  # report every failure, keep going
                    failed.append(name)
                    results[name] = dict(ok=False, error=f"{type(ex).__name__}: {ex}")
                    print(f"FAIL {name}: {type(ex).__name__}: {ex}", flush=True)
                    traceback.print_exc()
    total = time.time() - t0
    os.makedirs(a.outdir, exist_ok=True)
    with open(os.path.join(a.outdir, "matrix.json"), "w") as fh:
        json.dump(dict(seconds=round(total, 1), failed=failed, models=results), fh, indent=1)
    print(f"{len(results) - len(failed)}/{len(results)} models in {total:.1f} s" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
