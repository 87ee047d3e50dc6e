#!/usr/bin/python3
"""The Neural Engine examples' run_executor.py, on the `neural_engine` Python module.

  scripts/run_executor.py --input_model ir_dir|model.onnx --mode performance --batch_size 8 --seq_len 128
  scripts/run_executor.py --input_model ir_dir --mode accuracy --data_dir build/accuracy/models/heldout

--input_model: an IR directory (conf.yaml + model.bin) or an ONNX model (compiled in memory with
--precision). accuracy mode runs the batches as stored (--batch_size is not used). performance: generated inputs (ids within the embedding table, masks all ones), as
`neural_engine` does; prints ` Batch Size is`, ` Latency is` (ms per sample), ` Throughput is`
(samples/s) and the batch latency percentiles. accuracy: --data_dir holds batch_NNN/<input>.npy +
batch_NNN/labels.npy (as scripts/accuracy/train_prune.py writes), or <input>.npy + labels.npy;
the prediction is the argmax of the model's logits output (the output named `logits`, else the
first) over its last axis; prints ` Accuracy is` (fraction of rows right) and ` Samples is`.
The module is found in build/python (or PYTHONPATH / --module_dir).
"""
import argparse
import glob
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def import_module(module_dir):
    for d in [module_dir, os.environ.get("NE_PYTHON_DIR"), os.path.join(ROOT, "build", "python")]:
        if d and os.path.isdir(d) and d not in sys.path:
            sys.path.insert(0, d)
    import neural_engine  # noqa: E402
    return neural_engine


def load_graph(ne, args):
    p = args.input_model
    kw = {}
    if args.sparse_threshold is not None:
        kw["sparse_threshold"] = args.sparse_threshold
    if os.path.isdir(p):
        conf, binf = os.path.join(p, "conf.yaml"), os.path.join(p, "model.bin")
        return ne.load(conf, binf, weight_sharing=args.weight_sharing, **kw)
    if p.endswith(".yaml"):
        return ne.load(p, os.path.join(os.path.dirname(p), "model.bin"), weight_sharing=args.weight_sharing, **kw)
    return ne.compile(p, precision=args.precision, **kw)


def batches(data_dir, input_names):
    import numpy as np
    dirs = sorted(d for d in glob.glob(os.path.join(data_dir, "batch_*")) if os.path.isdir(d))
    if not dirs:
        dirs = [data_dir]
    for d in dirs:
        feeds = {}
        for n in input_names:
            f = os.path.join(d, n + ".npy")
            if os.path.isfile(f):
                feeds[n] = np.load(f)
        lab = os.path.join(d, "labels.npy")
        if not os.path.isfile(lab):
            raise SystemExit(f"error: {lab}: no labels (accuracy mode needs labels.npy beside the inputs)")
        missing = [n for n in input_names if n not in feeds]
        if missing:
            raise SystemExit(f"error: {d}: no {', '.join(m + '.npy' for m in missing)} for the model's inputs")
        yield feeds, np.load(lab)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input_model", required=True, help="IR directory (conf.yaml + model.bin), conf.yaml, or .onnx")
    ap.add_argument("--mode", choices=["performance", "accuracy"], default="performance")
    ap.add_argument("--batch_size", type=int, default=1)
    ap.add_argument("--seq_len", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--data_dir", help="accuracy: batch_NNN/<input>.npy + labels.npy")
    ap.add_argument("--precision", default="fp32", help="for an ONNX --input_model: fp32|int8|int8_dynamic|bf16")
    ap.add_argument("--sparse_threshold", type=float, default=None)
    ap.add_argument("--weight_sharing", action="store_true", help="packed weights shared through NE_CACHE_DIR")
    ap.add_argument("--module_dir", help="directory holding the neural_engine module (default build/python)")
    args = ap.parse_args(argv)
    ne = import_module(args.module_dir)
    try:
        g = load_graph(ne, args)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.mode == "performance":
        r = g.benchmark(batch_size=args.batch_size, seq_len=args.seq_len, iterations=args.iterations,
                        warmup=args.warmup, profile=False)
        lat = r["latency_ms"]
        print(f" Batch Size is {r['batch']}")
        print(f" Latency is {r['latency_per_sample_ms']:.3f} ms")
        print(f" Throughput is {r['throughput']:.2f}")
        print(f" Batch latency is {lat['mean']:.3f} ms (P50 {lat['p50']:.3f}, P90 {lat['p90']:.3f}, P99 {lat['p99']:.3f})")
        cpu = r["cpu"]
        print(f" CPU is {cpu['model']} ({cpu['isa']})")
        return 0
    if not args.data_dir:
        print("error: --mode accuracy needs --data_dir", file=sys.stderr)
        return 2
    import numpy as np
    names = [i["name"] for i in g.inputs]
    outs = [o["name"] for o in g.outputs]
    logits_name = "logits" if "logits" in outs else outs[0]
    right = total = 0
    first_batch = None
    t0 = time.perf_counter()
    for feeds, labels in batches(args.data_dir, names):
        first_batch = first_batch or int(labels.shape[0])
        try:
            y = g.inference(feeds)[logits_name]
        except (ValueError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        pred = np.argmax(y.reshape(len(labels), -1) if y.ndim != 2 else y, axis=-1)
        right += int(np.sum(pred == labels.reshape(-1)))
        total += int(labels.size)
    secs = time.perf_counter() - t0
    if total == 0:
        print(f"error: {args.data_dir}: no samples", file=sys.stderr)
        return 1
    print(f" Batch Size is {first_batch}")
    print(f" Accuracy is {right / total:.4f}")
    print(f" Samples is {total}")
    print(f" Throughput is {total / secs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
