#!/usr/bin/python3
"""Speed of a Neural-Engine-dialect IR against our own compiler's IR of the same model and
precision (issue 23), in one alternating run.

For each family and precision: scripts/gen_ne_ir.py writes the IR the Neural Engine's compiler
writes (fp32, bf16 = autocast bf16, dynamic_int8 = autocast dynamic_int8, sparse_int8_transposed
= its sparse example: static QDQ int8 of a 1x4-pruned model, then transpose_mode_int8); our IR is
neural_engine_compile of the same ONNX (the QDQ model for the sparse form) with the matching
precision: fp32, bf16, int8_dynamic, int8 --transpose (for the sparse form both from the QDQ
model and from the pruned fp32 model with our calibration).

Every round runs each IR once with `neural_engine` (OMP_NUM_THREADS=--threads, --batch_size,
--seq_len, --iterations, --w 1), alternating the two; the figure is samples/s (" Throughput is").
Prints best and median per contender and the ratio NE / ours (1.00 = as fast).

  /usr/bin/python3 scripts/bench_ne_dialect.py --families bert --precisions fp32,sparse_int8_transposed
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench_export_forms import alternate, print_ratios, run  # noqa: E402  (one runner for the alternating benchmarks)

PY = "/usr/bin/python3"
OURS = {"fp32": ["--precision", "fp32"], "bf16": ["--precision", "bf16"],
        "dynamic_int8": ["--precision", "int8_dynamic"],
        "sparse_int8_transposed": ["--precision", "int8", "--transpose"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="bert,distilbert,roberta,minilm")
    ap.add_argument("--precisions", default="fp32,bf16,dynamic_int8,sparse_int8_transposed")
    ap.add_argument("--hidden", type=int, default=256, help="the Neural Engine's head table: 256 -> 4 heads")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/ne_bench_dialect")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    pairs = []
    for fam in args.families.split(","):
        for prec in args.precisions.split(","):
            ne_dir = os.path.join(args.workdir, "ne_%s_%s" % (fam, prec))
            if not os.path.exists(os.path.join(ne_dir, "conf.yaml")):
                run([PY, os.path.join(ROOT, "scripts", "gen_ne_ir.py"), "--family", fam, "--precision", prec,
                     "--hidden", str(args.hidden), "--heads", str(args.heads), "--ffn", str(args.ffn),
                     "--layers", str(args.layers), "--sparsity", str(args.sparsity), "--no_ref", "--out", ne_dir])
            src = json.load(open(os.path.join(ne_dir, "meta.json")))["source"]
            srcs = [("", src)]
            if prec == "sparse_int8_transposed":  # also our own int8 path: the pruned fp32 model, calibrated
                srcs = [(" (ours from the QDQ model)", src), (" (ours from fp32, calibrated)", os.path.join(ne_dir, "src"))]
            for tag, sdir in srcs:
                ours = os.path.join(args.workdir, "ours_%s_%s%s" % (fam, prec, "_fp32src" if "fp32" in tag else ""))
                if not os.path.exists(os.path.join(ours, "conf.yaml")):
                    run([os.path.join(args.bin, "neural_engine_compile"), "--model", os.path.join(sdir, "model.onnx"),
                         "--output_dir", ours] + OURS[prec])
                pairs.append(("%s %s%s" % (fam, prec, tag), ne_dir, ours))
    res = alternate(args, pairs)
    cpu = run([os.path.join(args.bin, "neural_engine_cpu")]).strip().splitlines()[0]
    print("\n%s; hidden %d, %d layers, batch %d, seq %d, %d threads, %d rounds x %d iterations, samples/s\n" % (
        cpu, args.hidden, args.layers, args.batch, args.seq, args.threads, args.rounds, args.iterations))
    print_ratios(res, ("model, precision", [n for n, _, _ in pairs]), "NE IR", "our IR")


if __name__ == "__main__":
    main()
