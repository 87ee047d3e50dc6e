#!/usr/bin/python3
"""Speed of the same model in the graph forms users bring (issue 22), in one alternating run.

Pairs (each: the form under test, then the reference form of the same size):
  distilbert  DistilBERT-graph (gen_hf.py distilbert, base size: 6 layers, 768) vs the BERT graph
              of the same size (gen_hf.py bert --layers 6), both pruned 1x4 at --sparsity_distil
  roberta     RoBERTa-base (gen_hf.py roberta --size base) vs BERT-base (gen_hf.py bert), both
              pruned 1x4 at --sparsity_roberta
  ortopt      the ORT-optimized graph (com.microsoft ops, scripts/make_ort_optimized.py) of a
              BERT-base export (gen_bert.py --preset bert-base) vs that plain export

Each model is compiled with neural_engine_compile --precision P, then every round runs each model
once with `neural_engine` (OMP_NUM_THREADS=--threads, --batch_size, --seq_len, --iterations,
--w 1), alternating the contenders; the figure is samples/s (" Throughput is"). Prints, per pair,
best and median over the rounds and the ratio form / reference (1.00 = as fast).

  /usr/bin/python3 scripts/bench_export_forms.py --precision int8 --batch 8 --rounds 5
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"


def run(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stdout[-3000:]))
    return r.stdout


def gen(args, out, *gen_args, script="gen_hf.py"):
    if not os.path.exists(os.path.join(out, "model.onnx")):
        run([PY, os.path.join(ROOT, "scripts", script), *gen_args, "--batch", "2", "--seq", "16", "--out", out])
    return out


def compile_ir(args, model_dir):
    ir = os.path.join(model_dir, "ir_" + args.precision)
    if not os.path.exists(os.path.join(ir, "conf.yaml")):
        out = run([os.path.join(args.bin, "neural_engine_compile"), "--model", os.path.join(model_dir, "model.onnx"),
                   "--output_dir", ir, "--precision", args.precision])
        print("  " + out.strip().splitlines()[-1][:200])
    return ir


def throughput(args, ir):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = run([os.path.join(args.bin, "neural_engine"), "--config", os.path.join(ir, "conf.yaml"), "--weight",
               os.path.join(ir, "model.bin"), "--batch_size", str(args.batch), "--seq_len", str(args.seq),
               "--iterations", str(args.iterations), "--w", "1"], env=env)
    m = re.search(r"Throughput is ([0-9.]+)", out)
    if not m:
        sys.exit("no throughput in:\n" + out[-2000:])
    return float(m.group(1))


def alternate(args, pairs):
    """Every round runs each (name, a, b) pair's two IRs once, alternating which goes first;
    returns {name: (samples/s of a per round, of b per round)}."""
    res = {name: ([], []) for name, _, _ in pairs}
    for r in range(args.rounds):
        for name, a, b in pairs:
            order = [(0, a), (1, b)] if r % 2 == 0 else [(1, b), (0, a)]
            for i, ir in order:
                res[name][i].append(throughput(args, ir))
        print("  round %d done" % (r + 1), flush=True)
    return res


def print_ratios(res, names, head_a, head_b):
    """The markdown table: best / median of each contender and their ratio a / b."""
    print("| %s | %s best / median | %s best / median | ratio best / median |" % (names[0], head_a, head_b))
    print("|---|---|---|---|")
    for name in names[1]:
        a, b = res[name]
        print("| %s | %.2f / %.2f | %.2f / %.2f | %.3f / %.3f |" % (
            name, max(a), statistics.median(a), max(b), statistics.median(b), max(a) / max(b),
            statistics.median(a) / statistics.median(b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default="distilbert,roberta,ortopt")
    ap.add_argument("--precision", default="int8", choices=["fp32", "int8", "bf16"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--sparsity_distil", type=float, default=0.8)
    ap.add_argument("--sparsity_roberta", type=float, default=0.9)
    ap.add_argument("--workdir", default="/tmp/ne_bench_export_forms")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    w = lambda n: os.path.join(args.workdir, n)
    pairs = []
    for p in args.pairs.split(","):
        if p == "distilbert":
            s = str(args.sparsity_distil)
            a = gen(args, w("distilbert_1x4_" + s), "--family", "distilbert", "--size", "base", "--prune", "1x4",
                    "--sparsity", s)
            b = gen(args, w("bert6_1x4_" + s), "--family", "bert", "--size", "base", "--layers", "6", "--prune",
                    "1x4", "--sparsity", s)
            pairs.append(("DistilBERT graph %s 1x4 vs BERT graph (6 layers)" % s, a, b))
        elif p == "roberta":
            s = str(args.sparsity_roberta)
            a = gen(args, w("roberta_1x4_" + s), "--family", "roberta", "--size", "base", "--prune", "1x4",
                    "--sparsity", s)
            b = gen(args, w("bert_1x4_" + s), "--family", "bert", "--size", "base", "--prune", "1x4", "--sparsity", s)
            pairs.append(("RoBERTa-base %s 1x4 vs BERT-base" % s, a, b))
        elif p == "ortopt":
            b = gen(args, w("gen_bert_base"), "--preset", "bert-base", script="gen_bert.py")
            a = w("gen_bert_base_ortopt")
            if not os.path.exists(os.path.join(a, "model.onnx")):
                run([PY, os.path.join(ROOT, "scripts", "make_ort_optimized.py"), b, a])
            pairs.append(("ORT-optimized BERT-base vs plain export", a, b))
        else:
            sys.exit("unknown pair " + p)
    print("compiling (%s)" % args.precision)
    irs = [(name, compile_ir(args, a), compile_ir(args, b)) for name, a, b in pairs]
    res = alternate(args, irs)
    cpu = run([os.path.join(args.bin, "neural_engine_cpu")]).strip()
    print("\n%s; %s, batch %d, seq %d, %d threads, %d rounds x %d iterations, samples/s\n" % (
        cpu, args.precision, args.batch, args.seq, args.threads, args.rounds, args.iterations))
    print_ratios(res, ("pair", [n for n, _, _ in irs]), "form", "reference")


if __name__ == "__main__":
    main()
