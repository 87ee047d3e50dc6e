#!/usr/bin/python3
"""Train a small BERT-like classifier on a synthetic task, prune it to 1x4 block sparsity
(80% and 90%), and export dense / sparse80 / sparse90 ONNX models plus held-out and
calibration data, so that the engine's fp32 / int8 / bf16 paths can be judged on accuracy.

Tasks (--task). Every sequence is [CLS]=1 then L-1 tokens (L uniform in [min_len, seq]),
padded at the end with [PAD]=0 (attention_mask 0); only the CLS position is classified.

  triple_products (default; 2 classes; min_len 28, seq 32). 18 marker types (ids 2..19) form
    6 triples (2,3,4), (5,6,7), ... ; each marker type occurs 0..2 times, at random positions,
    among filler tokens (ids 20..vocab-1). A triple's score is the product of its three counts
    (0, 1, 2, 4 or 8: non-zero only when all three types are present). Label = 1 when the
    summed score of triples 1-3 exceeds that of triples 4-6. The data are drawn so the two
    sums differ by exactly 1 (probability --p_margin1, default 0.7) or exactly 2, so every
    sequence is a near tie. The label is a deterministic function of the input (Bayes-optimal
    accuracy 100%, no label noise), but it needs exact counts of 18 types and products of
    them, which a 2-layer hidden-128 model only partly learns in the budget (1800 dense steps):
    dense fp32 lands at ~90.5% held-out (the BERT-mini on SST-2/MRPC range), and 1x4 pruning
    to 80% / 90% (+ fine-tuning) costs ~3 / ~2.5 points. Margin-1 sequences are the hard ones:
    a larger --p_margin1 is harder (0.6 with 1200 dense steps gave 92.1%, 0.7 with 1200 89.2%).
    Training the three models takes ~6 minutes on one core of a Zen 4 EPYC with OpenBLAS.
  first_marker (4 classes; min_len 16, seq 32; the task of the first version, which
    saturates at ~99.8% for every model and precision). Filler tokens are drawn from ids
    6..vocab-1; each of the 4 marker tokens (ids 2..5) appears 1..3 times at random positions.
    Label = which marker occurs FIRST in the sequence.

Model: scripts/gen_bert.py's Encoder (HF-BERT math: word + position embeddings, LayerNorm
eps 1e-12, extended mask (1 - mask) * -10000 computed in the graph, erf GELU), then
hidden[:, 0] -> Linear + tanh (pooler) -> Linear -> logits [B, 4].

Pruning: every encoder Linear (query, key, value, attn_out, ffn1, ffn2) in `1x4` blocks of the
ONNX MatMul layout W[K,N] (1 input channel x 4 consecutive output channels; in the torch weight
[N,K] that is 4 consecutive rows x 1 column), scored by block L2 norm, per-weight (uniform)
sparsity, exactly round(s * blocks) zero blocks at the end. Gradual schedule (Zhu & Gupta 2017,
cubic): s_t = s_f + (s_i - s_f)(1 - t/T)^3, masks recomputed every `prune_every` steps with
fine-tuning in between, then fine-tuning with the mask fixed. 90% continues from the 80% model.
Embeddings, LayerNorms, pooler and classifier stay dense (as in the pruning literature).

Outputs in OUT/ (eval.py and `scripts/run_executor.py --mode accuracy --data_dir OUT/heldout`
read this layout; keep it):
  dense.onnx sparse80.onnx sparse90.onnx    opset 14; inputs input_ids, attention_mask
                                            (int64 [batch, sequence], dynamic axes); output
                                            logits (float32 [batch, n_classes]); prediction =
                                            argmax over the last axis
  heldout/batch_NNN/input_ids.npy           int64 [heldout_batch, seq] (NNN = 000, 001, ...)
  heldout/batch_NNN/attention_mask.npy      int64 [heldout_batch, seq]
  heldout/batch_NNN/labels.npy              int64 [heldout_batch], class index
  heldout/labels.npy                        all batches' labels concatenated, in batch order
  calib/batch_NNN/{input_ids,attention_mask}.npy   separate split (no labels) for int8 calibration
  meta.json  task (name, n_classes, parameters), config, training, torch_accuracy (per model),
             models (per model: file, torch accuracy, sparsity per weight), op types, timings
  train.log  the training log
Held-out, calibration and training data come from distinct seeds (seed+1000, seed+2000, seed).
Seeded and deterministic (torch single-threaded). Run with /usr/bin/python3.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gen_bert  # noqa: E402  (Encoder, LINEARS, block_sparsity)

PAD, CLS = 0, 1
MARKERS = (2, 3, 4, 5)
FILLER0 = 6


# ----------------------------------------------------------------------------- data
def make_first_marker(rng, n, seq, min_len, vocab):
    """Returns input_ids [n, seq] int64, attention_mask [n, seq] int64, labels [n] int64."""
    ids = np.zeros((n, seq), np.int64)
    mask = np.zeros((n, seq), np.int64)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        L = rng.randint(min_len, seq + 1)
        body = rng.randint(FILLER0, vocab, size=L - 1)
        counts = rng.randint(1, 4, size=len(MARKERS))
        pos = rng.choice(L - 1, size=int(counts.sum()), replace=False)
        toks = np.repeat(np.array(MARKERS), counts)
        body[pos] = toks
        labels[i] = toks[np.argmin(pos)] - MARKERS[0]
        ids[i, 0] = CLS
        ids[i, 1:L] = body
        mask[i, :L] = 1
    return ids, mask, labels


TP_GROUPS, TP_ARITY, TP_MAX_COUNT = 6, 3, 2
TP_MARKER0 = 2
TP_FILLER0 = TP_MARKER0 + TP_GROUPS * TP_ARITY  # 20


def make_triple_products(rng, n, seq, min_len, vocab, p_margin1=0.7):
    """Task triple_products (see the module docstring). Returns input_ids [n, seq] int64,
    attention_mask [n, seq] int64, labels [n] int64 (0/1)."""
    T = TP_GROUPS * TP_ARITY
    assert vocab > TP_FILLER0 + 1 and min_len >= 2
    ids = np.zeros((n, seq), np.int64)
    mask = np.zeros((n, seq), np.int64)
    labels = np.zeros(n, np.int64)
    half = TP_GROUPS // 2
    for i in range(n):
        L = rng.randint(min_len, seq + 1)
        body = rng.randint(TP_FILLER0, vocab, size=L - 1)
        margin = 1 if rng.rand() < p_margin1 else 2
        while True:  # rejection sampling: |score difference| == margin, markers fit in the sequence
            c = rng.randint(0, TP_MAX_COUNT + 1, size=T)
            score = c.reshape(TP_GROUPS, TP_ARITY).prod(1)
            d = int(score[:half].sum() - score[half:].sum())
            if abs(d) == margin and c.sum() <= L - 1:
                break
        toks = np.repeat(np.arange(TP_MARKER0, TP_MARKER0 + T), c)
        body[rng.choice(L - 1, size=len(toks), replace=False)] = toks
        ids[i, 0] = CLS
        ids[i, 1:L] = body
        mask[i, :L] = 1
        labels[i] = int(d > 0)
    return ids, mask, labels


TASKS = {
    "triple_products": dict(
        n_classes=2, min_len=28, seq=32, dense_steps=1800, prune_steps=400, finetune_steps=250,
        description="[CLS] + L-1 tokens (L uniform in [min_len, seq]), end-padded with 0 (mask 0); "
                    "18 marker types (ids 2..19) in 6 triples of consecutive ids, each type 0..2 times at "
                    "random positions among fillers uniform in [20, vocab); triple score = product of its 3 "
                    "counts; label = 1 if the summed score of triples 1-3 > that of triples 4-6; the sums "
                    "differ by exactly 1 (probability p_margin1) or 2; deterministic labels (Bayes 100%)"),
    "first_marker": dict(
        n_classes=len(MARKERS), min_len=16, seq=32, dense_steps=600, prune_steps=300, finetune_steps=200,
        description="[CLS] + L-1 tokens (L uniform in [min_len, seq]), end-padded with 0 (mask 0); "
                    "fillers uniform in [6, vocab); each marker 2,3,4,5 appears 1..3 times; "
                    "label = index of the marker that occurs first"),
}


def make_batch_fn(task, p_margin1):
    if task == "first_marker":
        return make_first_marker
    return lambda rng, n, seq, min_len, vocab: make_triple_products(rng, n, seq, min_len, vocab, p_margin1)


make_batch = make_first_marker  # set by main() to the selected task's generator


# ----------------------------------------------------------------------------- model
class Classifier(nn.Module):
    def __init__(self, c, n_classes):
        super().__init__()
        self.encoder = gen_bert.Encoder(c)
        self.pooler = nn.Linear(c["hidden"], c["hidden"])
        self.classifier = nn.Linear(c["hidden"], n_classes)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids, attention_mask)
        return self.classifier(torch.tanh(self.pooler(h[:, 0])))


def encoder_linears(model):
    out = {}
    for li, layer in enumerate(model.encoder.layer):
        for nm in gen_bert.LINEARS:
            out[f"layer.{li}.{nm}"] = getattr(layer, nm)
    return out


# ----------------------------------------------------------------------------- 1x4 pruning
def block_mask_1x4(w_nk, sparsity):
    """w_nk: torch Linear weight [N, K] (= W[K,N]^T). 1x4 in W[K,N] = 4 consecutive output
    channels (rows of w_nk) x 1 input channel. Returns a {0,1} mask [N, K] with exactly
    round(sparsity * blocks) zero blocks (smallest L2 norms; ties broken by index)."""
    N, K = w_nk.shape
    assert N % 4 == 0, "1x4 pruning needs out features % 4 == 0"
    norms = w_nk.detach().double().reshape(N // 4, 4, K).pow(2).sum(1).reshape(-1)
    nzero = int(round(sparsity * norms.numel()))
    keep = torch.ones(norms.numel(), dtype=torch.float32)
    if nzero > 0:
        order = np.argsort(norms.numpy(), kind="stable")
        keep[torch.from_numpy(order[:nzero].copy())] = 0.0
    return keep.reshape(N // 4, 1, K).expand(N // 4, 4, K).reshape(N, K).contiguous()


def apply_masks(lins, masks):
    with torch.no_grad():
        for k, lin in lins.items():
            if k in masks:
                lin.weight.mul_(masks[k])


# ----------------------------------------------------------------------------- train / eval
def evaluate(model, batches):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for ids, mask, lab in batches:
            pred = model(torch.from_numpy(ids), torch.from_numpy(mask)).argmax(-1).numpy()
            correct += int((pred == lab).sum())
            total += len(lab)
    model.train()
    return correct / total


def train_phase(model, opt_lr, steps, rng, cfg, lins=None, masks=None, prune=None, log=None, tag="", probe=None):
    """prune: None or (s_init, s_final, prune_steps, prune_every); masks is updated in place."""
    opt = torch.optim.AdamW(model.parameters(), lr=opt_lr, weight_decay=0.01)
    warm = min(100, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / max(1, warm)) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    lossf = nn.CrossEntropyLoss()
    model.train()
    t0 = time.time()
    for step in range(steps):
        if prune is not None:
            s_i, s_f, T, every = prune
            if step % every == 0 and step <= T:
                s = s_f + (s_i - s_f) * (1.0 - step / T) ** 3
                for k, lin in lins.items():
                    masks[k] = block_mask_1x4(lin.weight, s)
                apply_masks(lins, masks)
        ids, mask, lab = make_batch(rng, cfg["batch"], cfg["seq"], cfg["min_len"], cfg["vocab"])
        logits = model(torch.from_numpy(ids), torch.from_numpy(mask))
        loss = lossf(logits, torch.from_numpy(lab))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if masks:
            apply_masks(lins, masks)
        if log and (step % 200 == 0 or step == steps - 1):
            pa = f" probe acc {evaluate(model, probe):.3f}" if probe else ""
            log(f"[{tag}] step {step}/{steps} loss {loss.item():.4f}{pa} ({time.time() - t0:.0f}s)")


def export(model, path, opset, example):
    model.eval()
    names = ["input_ids", "attention_mask"]
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["logits"] = {0: "batch"}
    torch.onnx.export(model, example, path, input_names=names, output_names=["logits"],
                      dynamic_axes=dyn, opset_version=opset, do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return sorted({n.op_type for n in m.graph.node})


def weight_report(lins):
    rep = []
    for k, lin in lins.items():
        wkn = np.ascontiguousarray(lin.weight.detach().numpy().T)
        rep.append(dict(name=k, shape=list(wkn.shape), sparsity=gen_bert.block_sparsity(wkn),
                        zeros=float((wkn == 0).mean())))
    return rep


def save_split(root, batches, with_labels):
    os.makedirs(root, exist_ok=True)
    for i, (ids, mask, lab) in enumerate(batches):
        d = os.path.join(root, f"batch_{i:03d}")
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "input_ids.npy"), ids)
        np.save(os.path.join(d, "attention_mask.npy"), mask)
        if with_labels:
            np.save(os.path.join(d, "labels.npy"), lab)
    if with_labels:
        np.save(os.path.join(root, "labels.npy"), np.concatenate([b[2] for b in batches]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", choices=sorted(TASKS), default="triple_products")
    ap.add_argument("--p_margin1", type=float, default=0.7,
                    help="triple_products: share of sequences whose two sums differ by 1 (else by 2)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--seq", type=int, help="default per task (32)")
    ap.add_argument("--min_len", type=int, help="default per task (triple_products 28, first_marker 16)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dense_steps", type=int, help="default per task (triple_products 1800, first_marker 600)")
    ap.add_argument("--prune_steps", type=int, help="gradual pruning steps per target (default per task: 400 / 300)")
    ap.add_argument("--prune_every", type=int, default=25)
    ap.add_argument("--finetune_steps", type=int, help="fixed-mask steps per target (default per task: 250 / 200)")
    ap.add_argument("--heldout_batches", type=int, default=32)
    ap.add_argument("--heldout_batch", type=int, default=128)
    ap.add_argument("--calib_batches", type=int, default=4)
    ap.add_argument("--calib_batch", type=int, default=64)
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    tdef = TASKS[a.task]
    for k in ("seq", "min_len", "dense_steps", "prune_steps", "finetune_steps"):
        if getattr(a, k) is None:
            setattr(a, k, tdef[k])
    global make_batch
    make_batch = make_batch_fn(a.task, a.p_margin1)
    n_classes = tdef["n_classes"]

    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)
    logf = open(os.path.join(a.out, "train.log"), "w")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    c = dict(layers=a.layers, hidden=a.hidden, heads=a.heads, ffn=a.ffn, vocab=a.vocab, max_pos=a.seq,
             token_types=False, gelu="erf")
    cfg = dict(batch=a.batch, seq=a.seq, min_len=a.min_len, vocab=a.vocab)
    model = Classifier(c, n_classes)
    lins = encoder_linears(model)

    # fixed data splits (distinct seeds from the training stream)
    rng_eval = np.random.RandomState(a.seed + 1000)
    heldout = [make_batch(rng_eval, a.heldout_batch, a.seq, a.min_len, a.vocab) for _ in range(a.heldout_batches)]
    rng_cal = np.random.RandomState(a.seed + 2000)
    calib = [make_batch(rng_cal, a.calib_batch, a.seq, a.min_len, a.vocab) for _ in range(a.calib_batches)]
    save_split(os.path.join(a.out, "heldout"), heldout, True)
    save_split(os.path.join(a.out, "calib"), calib, False)
    rng = np.random.RandomState(a.seed)
    example = (torch.from_numpy(heldout[0][0][:2]), torch.from_numpy(heldout[0][1][:2]))

    results = {}
    timings = {}

    # 1. dense
    t0 = time.time()
    train_phase(model, a.lr, a.dense_steps, rng, cfg, log=log, tag="dense", probe=heldout[:2])
    timings["dense_train_s"] = round(time.time() - t0, 1)
    acc = evaluate(model, heldout)
    log(f"dense held-out accuracy {acc:.4f}")
    op_types = export(model, os.path.join(a.out, "dense.onnx"), a.opset, example)
    results["dense"] = dict(file="dense.onnx", target_sparsity=0.0, torch_accuracy=acc, weights=weight_report(lins))

    # 2. gradual 1x4 pruning 0 -> 0.8, fine-tune; then 0.8 -> 0.9, fine-tune
    masks = {}
    s_prev = 0.0
    for target, name in ((0.8, "sparse80"), (0.9, "sparse90")):
        t0 = time.time()
        train_phase(model, a.lr * 0.5, a.prune_steps, rng, cfg, lins, masks,
                    prune=(s_prev, target, a.prune_steps - a.prune_every, a.prune_every), log=log, tag=f"prune{name}")
        acc_pruned = evaluate(model, heldout)
        train_phase(model, a.lr * 0.3, a.finetune_steps, rng, cfg, lins, masks, log=log, tag=f"ft{name}")
        timings[f"{name}_prune_finetune_s"] = round(time.time() - t0, 1)
        acc = evaluate(model, heldout)
        rep = weight_report(lins)
        worst = min(w["sparsity"]["1x4"] for w in rep)
        log(f"{name}: held-out accuracy after pruning {acc_pruned:.4f}, after fine-tuning {acc:.4f}; "
            f"min 1x4 sparsity {worst:.4f}")
        export(model, os.path.join(a.out, f"{name}.onnx"), a.opset, example)
        results[name] = dict(file=f"{name}.onnx", target_sparsity=target, torch_accuracy=acc,
                             torch_accuracy_before_finetune=acc_pruned, weights=rep)
        s_prev = target

    timings["total_s"] = round(time.time() - t_start, 1)
    meta = dict(
        task=dict(name=a.task, n_classes=n_classes, description=tdef["description"],
                  pad_id=PAD, cls_id=CLS, min_len=a.min_len, seq=a.seq,
                  **(dict(markers=list(MARKERS)) if a.task == "first_marker" else
                     dict(markers=list(range(TP_MARKER0, TP_FILLER0)), groups=TP_GROUPS, arity=TP_ARITY,
                          max_count=TP_MAX_COUNT, filler0=TP_FILLER0, p_margin1=a.p_margin1))),
        torch_accuracy={k: v["torch_accuracy"] for k, v in results.items()},
        config=dict(c, pooling="cls hidden[:,0] -> Linear+tanh -> Linear", n_classes=n_classes, opset=a.opset),
        training=dict(batch=a.batch, lr=a.lr, dense_steps=a.dense_steps, prune_steps=a.prune_steps,
                      prune_every=a.prune_every, finetune_steps=a.finetune_steps, seed=a.seed, threads=a.threads,
                      optimizer="AdamW wd 0.01, warmup + cosine, grad clip 1.0",
                      pruning="1x4 in W[K,N], block L2 norm, per-weight, cubic gradual schedule, then fixed mask"),
        heldout=dict(dir="heldout", batches=a.heldout_batches, batch=a.heldout_batch, seed=a.seed + 1000),
        calib=dict(dir="calib", batches=a.calib_batches, batch=a.calib_batch, seed=a.seed + 2000),
        inputs=dict(input_ids="int64 [batch, sequence]", attention_mask="int64 [batch, sequence]"),
        outputs=dict(logits=f"float32 [batch, {n_classes}]"),
        op_types=op_types, torch=torch.__version__, timings=timings, models=results,
    )
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log(f"done in {timings['total_s']}s: " + ", ".join(f"{k} {v['torch_accuracy']:.4f}" for k, v in results.items()))
    log(f"ONNX op types: {op_types}")


if __name__ == "__main__":
    main()
