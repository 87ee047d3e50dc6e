#!/usr/bin/python3
"""z16 before / after output-channel grouping (neural_engine_compile --group_channels), per weight kind.

Compiles DIR/model.onnx (a scripts/gen_bert.py model: DIR/meta.json names each weight's role)
twice, without and with --group_channels, runs neural_engine_inspect on both IRs and prints one
markdown row per kind (query, key, value, attn_out, ffn1, ffn2): mean z16 before -> after and the
1x4 block sparsity before -> after (grouping moves whole 1x4 blocks: it must not change).

  /usr/bin/python3 scripts/group_channels_z16.py --model_dir build/models/bb_1x4_90 [--bin build/bin]
"""
import argparse
import json
import os
import subprocess
import sys
import time

KINDS = ["query", "key", "value", "attn_out", "ffn1", "ffn2"]


def inspect(bin_dir, ir, out):
    subprocess.run([os.path.join(bin_dir, "neural_engine_inspect"), "--config", ir + "/conf.yaml", "--weight",
                    ir + "/model.bin", "--output_dir", out, "--images=false", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    with open(out + "/report.json") as f:
        return {w["tensor"]: w for w in json.load(f)["weights"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", required=True)
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--work", default=None, help="where the IRs and reports go (default MODEL_DIR/group_z16)")
    a = ap.parse_args()
    work = a.work or os.path.join(a.model_dir, "group_z16")
    with open(os.path.join(a.model_dir, "meta.json")) as f:
        meta = json.load(f)
    role = {w["onnx_initializer"]: w["name"].split(".")[-1] for w in meta["weights"]}
    reports = {}
    for tag, extra in (("plain", []), ("grouped", ["--group_channels"])):
        ir = os.path.join(work, tag)
        t0 = time.time()
        p = subprocess.run([os.path.join(a.bin, "neural_engine_compile"), "--model",
                            os.path.join(a.model_dir, "model.onnx"), "--output_dir", ir] + extra,
                           check=True, capture_output=True, text=True)
        for line in p.stderr.splitlines():
            if "[group_channels]" in line:
                print(line.strip(), file=sys.stderr)
        print(f"compile {tag}: {time.time() - t0:.1f} s", file=sys.stderr)
        reports[tag] = inspect(a.bin, ir, os.path.join(work, tag + "_inspect"))
    c = meta["config"]
    print(f"| {c['preset']} {c['prune']} {c['sparsity']} | kind | weights | z16 before | z16 after | 1x4 sparsity before -> after |")
    print("|---|---|---|---|---|---|")
    for k in KINDS:
        names = [t for t in reports["plain"] if role.get(t) == k]
        if not names:
            continue
        zb = sum(reports["plain"][t]["z16"] for t in names) / len(names)
        za = sum(reports["grouped"][t]["z16"] for t in names) / len(names)
        sb = sum(reports["plain"][t]["sparsity"]["1x4"] for t in names) / len(names)
        sa = sum(reports["grouped"][t]["sparsity"]["1x4"] for t in names) / len(names)
        print(f"| | {k} | {len(names)} | {100 * zb:.1f}% | {100 * za:.1f}% | {100 * sb:.1f}% -> {100 * sa:.1f}% |")


if __name__ == "__main__":
    main()
