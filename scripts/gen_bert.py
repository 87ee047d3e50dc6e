#!/usr/bin/python3
"""Generate a random BERT-class encoder as ONNX, with reference inputs and outputs.

Plain torch (no `transformers`), HF-BERT math:
  embeddings word + position (+ token_type) -> LayerNorm(eps 1e-12)
  per layer: Q,K,V Linear; scores = Q K^T / sqrt(d) + (1 - mask[:,None,None,:]) * -10000;
             softmax; .V; merge heads; O Linear + residual + LayerNorm;
             FFN1 Linear -> GELU (erf | tanh) -> FFN2 Linear + residual + LayerNorm.
Weights are random (seeded). Encoder Linear weights can be magnitude-pruned to a
structured pattern, named in the ONNX MatMul layout W[K,N] (K = in, N = out):
  1x4     blocks of 1 input channel x 4 consecutive output channels
  1x16    blocks of 1 input channel x 16 consecutive output channels (the AMX tile's 16
          channels: a zero block is a (16-channel group, k) row an AMX K-gather kernel skips)
  4x1     blocks of 4 consecutive input channels x 1 output channel
  2:4     keep the 2 largest of every 4 consecutive input channels, per output channel
  channel whole input channels (rows of W[K,N])

Writes DIR/model.onnx (+ DIR/model.onnx.data with --external_data),
DIR/inputs/<name>.npy, DIR/ref/last_hidden_state.npy, DIR/meta.json.
Always run with /usr/bin/python3 (Debian's torch 1.13, onnx 1.12).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn

PRESETS = {
    "tiny": dict(layers=2, hidden=64, heads=4, ffn=256, vocab=100, max_pos=128, token_types=True),
    "tiny_notok": dict(layers=2, hidden=64, heads=4, ffn=256, vocab=100, max_pos=128, token_types=False),
    "distilbert": dict(layers=6, hidden=768, heads=12, ffn=3072, vocab=30522, max_pos=512, token_types=False),
    "bert-base": dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=30522, max_pos=512, token_types=True),
    "heads16": dict(layers=2, hidden=256, heads=16, ffn=1024, vocab=100, max_pos=128, token_types=True),
}
DEFAULTS = dict(layers=2, hidden=64, heads=4, ffn=256, vocab=100, max_pos=512, token_types=True,
                gelu="erf", opset=14, prune="none", sparsity=0.9, batch=2, seq=16, pad=0, seed=0)
PATTERNS = ("1x4", "1x16", "4x1", "2:4", "channel")
# (rows, columns) of a block in W[K,N], for the block-magnitude patterns
BLOCKS = {"1x4": (1, 4), "1x16": (1, 16), "4x1": (4, 1)}


# ----------------------------------------------------------------------------- model
def gelu_erf(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):  # HF "gelu_new"
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab"], c["hidden"])
        self.position_embeddings = nn.Embedding(c["max_pos"], c["hidden"])
        self.token_type_embeddings = nn.Embedding(2, c["hidden"]) if c["token_types"] else None
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.register_buffer("position_ids", torch.arange(c["max_pos"]).expand((1, -1)))

    def forward(self, input_ids, token_type_ids=None):
        seq_length = input_ids.size(1)
        position_ids = self.position_ids[:, 0:seq_length]
        e = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            e = e + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(e)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden"]
        self.nh = c["heads"]
        self.dh = h // c["heads"]
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_ln = nn.LayerNorm(h, eps=1e-12)
        self.ffn1 = nn.Linear(h, c["ffn"])
        self.ffn2 = nn.Linear(c["ffn"], h)
        self.ffn_ln = nn.LayerNorm(h, eps=1e-12)
        self.act = gelu_tanh if c["gelu"] == "tanh" else gelu_erf

    def split(self, x):
        s = x.size()[:-1] + (self.nh, self.dh)
        return x.view(s).permute(0, 2, 1, 3)

    def forward(self, x, ext_mask):
        q = self.split(self.query(x))
        k = self.split(self.key(x))
        v = self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)
        scores = scores + ext_mask
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(ctx.size()[:-2] + (self.nh * self.dh,))
        x = self.attn_ln(self.attn_out(ctx) + x)
        return self.ffn_ln(self.ffn2(self.act(self.ffn1(x))) + x)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embeddings = Embeddings(c)
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["layers"])])

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        ext = attention_mask[:, None, None, :].to(torch.float32)
        ext = (1.0 - ext) * -10000.0
        x = self.embeddings(input_ids, token_type_ids)
        for l in self.layer:
            x = l(x, ext)
        return x


LINEARS = ("query", "key", "value", "attn_out", "ffn1", "ffn2")


def init_weights(model, c, gen):
    """BERT-like init (std 0.02 embeddings/biases) but scaled so outputs are not degenerate:
    Linear weights ~ N(0, 1/K) (0.036 at hidden 768, close to BERT's 0.02) so attention scores
    are O(1) and softmax is far from uniform; LayerNorm gamma/beta perturbed so that a swapped
    or ignored gamma/beta shows up in the output."""
    def normal(t, std, mean=0.0):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=gen) * std + mean)

    for name, p in model.named_parameters():
        if "LayerNorm" in name or "_ln" in name:
            normal(p, 0.1, 1.0) if name.endswith("weight") else normal(p, 0.05)
        elif "embeddings" in name:
            normal(p, 0.02)
        elif name.endswith("weight"):  # Linear weight [N, K]
            normal(p, 1.0 / math.sqrt(p.shape[1]))
        else:
            normal(p, 0.02)


# ----------------------------------------------------------------------------- pruning (W[K,N])
def _keep_largest_blocks(scores, sparsity):
    """Boolean mask (same shape as scores) of blocks to keep: zero exactly round(s*n) smallest."""
    flat = scores.reshape(-1)
    nzero = int(round(sparsity * flat.size))
    keep = np.ones(flat.size, dtype=bool)
    if nzero > 0:
        order = np.argsort(flat, kind="stable")
        keep[order[:nzero]] = False
    return keep.reshape(scores.shape)


def prune_kn(w, pattern, sparsity):
    """w: W[K,N] float32. Returns a pruned copy."""
    K, N = w.shape
    w = w.copy()
    if pattern == "none":
        return w
    if pattern == "channel":
        keep = _keep_largest_blocks(np.linalg.norm(w, axis=1), sparsity)
        w[~keep, :] = 0.0
        return w
    if pattern in BLOCKS:
        br, bc = BLOCKS[pattern]
        Kp, Np = -(-K // br) * br, -(-N // bc) * bc
        p = np.zeros((Kp, Np), np.float32)
        p[:K, :N] = w
        blocks = p.reshape(Kp // br, br, Np // bc, bc)
        norms = np.sqrt((blocks.astype(np.float64) ** 2).sum(axis=(1, 3)))
        keep = _keep_largest_blocks(norms, sparsity)
        blocks *= keep[:, None, :, None]
        return blocks.reshape(Kp, Np)[:K, :N].copy()
    if pattern == "2:4":
        Kp = -(-K // 4) * 4
        p = np.zeros((Kp, N), np.float32)
        p[:K] = w
        g = p.reshape(Kp // 4, 4, N)
        rank = np.argsort(np.argsort(-np.abs(g), axis=1, kind="stable"), axis=1, kind="stable")
        g[rank >= 2] = 0.0
        return g.reshape(Kp, N)[:K].copy()
    raise ValueError(pattern)


def z16(w):
    """AMX z of W[K,N]: the fraction of (16-output-channel group, k) rows that are all zero
    (group g = columns 16g..16g+15, the last one possibly partial). By value: -0.0 is zero."""
    K, N = w.shape
    G = -(-N // 16)
    if K == 0 or G == 0:
        return 0.0
    zero_rows = 0
    for g in range(G):
        zero_rows += int((~(w[:, 16 * g:16 * g + 16] != 0).any(axis=1)).sum())
    return float(zero_rows / (G * K))


def block_sparsity(w):
    """Sparsity of W[K,N] under every pattern (partial tail blocks count as blocks), and z16.
    Zero = value zero (numpy w != 0: -0.0 is zero). z16 equals 1x16 by definition (a 1x16
    block is a (16-channel group, k) row); it is computed on its own as a check."""
    K, N = w.shape
    nz = w != 0
    out = {}

    def blocks_zero(br, bc):
        Kp, Np = -(-K // br) * br, -(-N // bc) * bc
        p = np.zeros((Kp, Np), bool)
        p[:K, :N] = nz
        any_nz = p.reshape(Kp // br, br, Np // bc, bc).any(axis=(1, 3))
        return float(1.0 - any_nz.mean())

    out["1x4"] = blocks_zero(*BLOCKS["1x4"])
    out["4x1"] = blocks_zero(*BLOCKS["4x1"])
    Kp = -(-K // 4) * 4
    p = np.zeros((Kp, N), bool)
    p[:K] = nz
    cnt = p.reshape(Kp // 4, 4, N).sum(axis=1)
    out["2:4"] = float((cnt <= 2).mean())
    out["channel"] = float((~nz.any(axis=1)).mean())
    out["1x16"] = blocks_zero(*BLOCKS["1x16"])
    out["z16"] = z16(w)
    assert abs(out["z16"] - out["1x16"]) < 1e-12, (out["z16"], out["1x16"])
    return out


# ----------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--layers", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--ffn", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--max_pos", type=int)
    ap.add_argument("--token_types", dest="token_types", action="store_true", default=None)
    ap.add_argument("--no_token_types", dest="token_types", action="store_false")
    ap.add_argument("--gelu", choices=["erf", "tanh"])
    ap.add_argument("--opset", type=int, help="ONNX opset, 11..17 (default 14)")
    ap.add_argument("--prune", choices=("none",) + PATTERNS)
    ap.add_argument("--sparsity", type=float, help="fraction of blocks zeroed (default 0.9; ignored by 2:4)")
    ap.add_argument("--batch", type=int, help="reference input batch (default 2)")
    ap.add_argument("--seq", type=int, help="reference input sequence length (default 16)")
    ap.add_argument("--pad", type=int, help="masked (0) positions at the end of rows 1.. (default 0)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--external_data", action="store_true",
                    help="store weights in DIR/model.onnx.data (onnx external data)")
    ap.add_argument("--no_ref", action="store_true", help="skip inputs/ and ref/ (big presets)")
    ap.add_argument("--out", required=True, help="output directory")
    a = ap.parse_args(argv)
    c = dict(DEFAULTS)
    if a.preset:
        c.update(PRESETS[a.preset])
    for k in list(DEFAULTS):
        v = getattr(a, k, None)
        if v is not None:
            c[k] = v
    c["preset"] = a.preset
    c["external_data"] = a.external_data
    if c["hidden"] % c["heads"]:
        ap.error("hidden must be a multiple of heads")
    if not 11 <= c["opset"] <= 17:
        ap.error("opset must be in 11..17")
    if c["seq"] > c["max_pos"]:
        ap.error("seq > max_pos")
    if c["pad"] >= c["seq"]:
        ap.error("pad must be < seq")
    return a, c


def make_inputs(c):
    rng = np.random.RandomState(c["seed"] + 1)
    B, S, P = c["batch"], c["seq"], c["pad"]
    ids = rng.randint(0, c["vocab"], size=(B, S)).astype(np.int64)
    mask = np.ones((B, S), np.int64)
    tt = np.zeros((B, S), np.int64)
    for b in range(B):
        valid = S - (P if b >= 1 else 0)
        mask[b, valid:] = 0
        ids[b, valid:] = 0  # [PAD]
        tt[b, valid // 2:valid] = 1  # second segment
    inputs = {"input_ids": ids, "attention_mask": mask}
    if c["token_types"]:
        inputs["token_type_ids"] = tt
    return inputs


def find_matmul_weights(graph, linears):
    """Map each pruned Linear (W[K,N] numpy) to the ONNX initializer that is a MatMul's 2nd input."""
    from onnx import numpy_helper
    inits = {t.name: t for t in graph.initializer}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    cands = []
    for n in graph.node:
        if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits:
            cands.append((n, numpy_helper.to_array(inits[n.input[1]])))
    found = {}
    for key, w in linears.items():
        hits = [(n, a) for n, a in cands if a.shape == w.shape and np.array_equal(a, w)]
        if len(hits) != 1:
            raise RuntimeError(f"{key}: {len(hits)} MatMul initializers match W[K,N] {w.shape}")
        n, _ = hits[0]
        bias = None
        for cn in consumers.get(n.output[0], []):
            if cn.op_type == "Add":
                other = [i for i in cn.input if i != n.output[0]]
                if other and other[0] in inits:
                    bias = other[0]
        found[key] = dict(onnx_initializer=n.input[1], onnx_node=n.name, onnx_op=n.op_type, bias_initializer=bias)
    return found


def main(argv=None):
    a, c = parse_args(argv if argv is not None else sys.argv[1:])
    import onnx

    torch.manual_seed(c["seed"])
    gen = torch.Generator().manual_seed(c["seed"])
    model = Encoder(c).eval()
    init_weights(model, c, gen)

    # prune in the W[K,N] layout (torch Linear weight is [N,K] = W^T)
    linears = {}
    with torch.no_grad():
        for li, layer in enumerate(model.layer):
            for nm in LINEARS:
                lin = getattr(layer, nm)
                wkn = prune_kn(lin.weight.detach().numpy().T.astype(np.float32), c["prune"], c["sparsity"])
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(wkn.T)))
                linears[f"layer.{li}.{nm}"] = np.ascontiguousarray(lin.weight.detach().numpy().T)

    inputs = make_inputs(c)
    names = list(inputs)
    os.makedirs(c_out := a.out, exist_ok=True)
    with torch.no_grad():
        ref = model(*[torch.from_numpy(inputs[n]) for n in names]).numpy()

    onnx_path = os.path.join(c_out, "model.onnx")
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["last_hidden_state"] = {0: "batch", 1: "sequence"}
    tmp_path = onnx_path + ".tmp"
    torch.onnx.export(model, tuple(torch.from_numpy(inputs[n]) for n in names), tmp_path,
                      input_names=names, output_names=["last_hidden_state"], dynamic_axes=dyn,
                      opset_version=c["opset"], do_constant_folding=True)
    m = onnx.load(tmp_path)
    os.remove(tmp_path)
    onnx.checker.check_model(m)
    found = find_matmul_weights(m.graph, linears)

    data_name = "model.onnx.data"
    if os.path.exists(os.path.join(c_out, data_name)):
        os.remove(os.path.join(c_out, data_name))
    if c["external_data"]:
        onnx.save_model(m, onnx_path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
    else:
        onnx.save_model(m, onnx_path)

    if not a.no_ref:
        os.makedirs(os.path.join(c_out, "inputs"), exist_ok=True)
        os.makedirs(os.path.join(c_out, "ref"), exist_ok=True)
        for n in names:
            np.save(os.path.join(c_out, "inputs", n + ".npy"), inputs[n])
        np.save(os.path.join(c_out, "ref", "last_hidden_state.npy"), ref.astype(np.float32))

    weights = []
    for key, w in linears.items():
        weights.append(dict(name=key, shape=list(w.shape), pattern=c["prune"],
                            sparsity=block_sparsity(w), **found[key]))
    meta = dict(
        config={k: c[k] for k in ("preset", "layers", "hidden", "heads", "ffn", "vocab", "max_pos",
                                  "token_types", "gelu", "opset", "prune", "sparsity", "batch", "seq",
                                  "pad", "seed", "external_data")},
        generator="scripts/gen_bert.py", torch=torch.__version__, onnx=onnx.__version__,
        inputs={n: dict(dtype="int64", shape=["batch", "sequence"]) for n in names},
        outputs={"last_hidden_state": dict(dtype="float32", shape=["batch", "sequence", c["hidden"]])},
        op_types=sorted({n.op_type for n in m.graph.node}),
        ref_stats=dict(mean=float(ref.mean()), std=float(ref.std()), absmax=float(np.abs(ref).max())),
        weights=weights,
    )
    with open(os.path.join(c_out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {onnx_path}: {c['layers']} layers, hidden {c['hidden']}, heads {c['heads']}, "
          f"ffn {c['ffn']}, opset {c['opset']}, prune {c['prune']}; ops {meta['op_types']}")


if __name__ == "__main__":
    main()
