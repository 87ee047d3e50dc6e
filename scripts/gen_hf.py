#!/usr/bin/python3
"""Reproduce Hugging Face ONNX exports of BERT-class encoders, without `transformers`.

Each family is a re-implementation of transformers' *eager* forward code (torch.nn modules
with the same parameter and buffer names as transformers, so a state_dict from the Hub would
load), exported with torch.onnx.export the way `python -m transformers.onnx` and
`optimum-cli export onnx` call it:

  dynamic axes on every input and named output, do_constant_folding=True, inputs passed
  as keyword arguments, traced on the exporter's dummy shape (transformers.onnx: batch 2 x
  sequence 8; optimum: batch 2 x sequence 16), so that shapes baked in at trace time show.

Families (config as the Hub checkpoints have it; --size base = the real sizes):
  bert         BertModel: mask (1 - mask[:, None, None, :]) * finfo(fp32).min (--mask_value
               -10000: transformers < 4.21), Q.K^T / sqrt(d) + mask, GELU (erf), pooler
  minilm       BertModel with MiniLM sizes (base: 12/384/12/1536)
  distilbert   DistilBertModel: q / sqrt(d) before Q.K^T; mask by masked_fill(mask == 0,
               finfo.min) (--mask_value -inf: the older -float("inf")); no token types
  roberta      RobertaModel: padding_idx 1, position ids from input_ids
               (create_position_ids_from_input_ids), max_position_embeddings = max_pos + 2,
               type_vocab_size 1 with token types from the zero buffer, LayerNorm eps 1e-5
  xlm-roberta  as roberta (XLMRobertaModel; base vocab 250002)
  albert       AlbertModel: factorized embeddings (embedding_size) + embedding_hidden_mapping_in,
               ONE shared layer applied num_hidden_layers times, gelu_new (tanh), pooler
  electra      ElectraModel: embeddings_project when embedding_size != hidden; no pooler;
               ElectraClassificationHead (dense, gelu, out_proj)

Heads (--head): base (last_hidden_state [+ the pooler output]), seq-cls (logits), token-cls
(logits), qa (start_logits, end_logits). Exporter differences (--exporter):
  transformers  names batch/sequence; default opset 11; a model output that the OnnxConfig does
                not name stays in the graph under torch's automatic name (BertModel's pooler output)
  optimum       names batch_size/sequence_length; default opset 14 (electra 11); outputs that
                the config does not name are dropped before tracing (optimum's ModelPatcher)

Writes DIR/model.onnx, DIR/inputs/<input>.npy (int64; row 0 full, rows 1.. with trailing
padding: attention_mask 0 and the pad id, 0 or 1 for RoBERTa), DIR/ref/<output>.npy (torch
fp32), DIR/meta.json. --check_ort runs ONNX Runtime (scripts/ort_run.js) on the same inputs
and asserts max |ort - torch| <= 1e-4. Always run with /usr/bin/python3 (Debian's torch).
The torch modules (families, heads) are in gen_hf_models.py.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_bert import block_sparsity, prune_kn  # noqa: E402  (W[K,N] pruning, shared)
from gen_hf_models import FAMILY, HFModel  # noqa: E402  (the torch modules)

FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "albert", "electra", "minilm")
HEADS = ("base", "seq-cls", "token-cls", "qa")
PRUNE = ("none", "1x4", "4x1")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Sizes: layers, hidden, heads, ffn, vocab, max_pos, embedding_size (None = hidden)
TINY = dict(layers=2, hidden=64, heads=4, ffn=128, vocab=200, max_pos=128, embedding_size=None)
SIZES = {
    "bert": dict(base=dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=30522, max_pos=512)),
    "minilm": dict(base=dict(layers=12, hidden=384, heads=12, ffn=1536, vocab=30522, max_pos=512),
                   # MiniLM's head dim (32) at tiny scale
                   tiny=dict(hidden=96, heads=3, ffn=192)),
    "distilbert": dict(base=dict(layers=6, hidden=768, heads=12, ffn=3072, vocab=30522, max_pos=512)),
    "roberta": dict(base=dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=50265, max_pos=512)),
    "xlm-roberta": dict(base=dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=250002, max_pos=512)),
    "albert": dict(base=dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=30000, max_pos=512,
                             embedding_size=128),
                   tiny=dict(embedding_size=32)),
    "electra": dict(base=dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=30522, max_pos=512),
                    small=dict(layers=12, hidden=256, heads=4, ffn=1024, vocab=30522, max_pos=512,
                               embedding_size=128),
                    tiny=dict(embedding_size=32)),
}
# Inputs each exporter's OnnxConfig declares (transformers.onnx and optimum agree)
INPUTS = {f: ("input_ids", "attention_mask", "token_type_ids") for f in FAMILIES}
for _f in ("distilbert", "roberta", "xlm-roberta"):
    INPUTS[_f] = ("input_ids", "attention_mask")
EXPORTERS = {
    "transformers": dict(batch="batch", seq="sequence", trace=(2, 8), opset={}),
    "optimum": dict(batch="batch_size", seq="sequence_length", trace=(2, 16),
                    opset={"electra": 11}),
}
DEFAULT_OPSET = {"transformers": 11, "optimum": 14}


def onnx_outputs(c):
    """The outputs the exporter's OnnxConfig names, with their dynamic axes."""
    e = EXPORTERS[c["exporter"]]
    b, s = e["batch"], e["seq"]
    h = c["head"]
    if h == "base":
        return {"last_hidden_state": {0: b, 1: s}}
    if h == "seq-cls":
        return {"logits": {0: b}}
    if h == "token-cls":
        return {"logits": {0: b, 1: s}}
    return {"start_logits": {0: b, 1: s}, "end_logits": {0: b, 1: s}}


class Exported(nn.Module):
    """What torch.onnx.export sees: a ModelOutput is traced as the tuple of its non-None values.
    optimum's ModelPatcher drops the values its config does not name; transformers.onnx keeps
    them (they become graph outputs with torch's automatic names)."""

    def __init__(self, model, keep):
        super().__init__()
        self.model = model
        self.keep = keep

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = self.model(input_ids, attention_mask, token_type_ids)
        return tuple(v for k, v in out.items() if self.keep is None or k in self.keep)


# ----------------------------------------------------------------------------- weights
def init_weights(model, gen):
    """Random weights at realistic scales (seeded): Linear ~ N(0, 1/K) so attention is far from
    uniform, embeddings std 0.02 (as HF init), LayerNorm gamma 1 + N(0, 0.1) and beta N(0, 0.05),
    biases N(0, 0.05), so that a dropped or swapped gamma, beta or bias changes the outputs."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                std, mean = (0.1, 1.0) if name.endswith("weight") else (0.05, 0.0)
            elif "embeddings." in name and name.endswith("weight") and p.dim() == 2 and "project" not in name:
                std, mean = 0.02, 0.0
            elif name.endswith("weight"):
                std, mean = 1.0 / math.sqrt(p.shape[1]), 0.0
            else:
                std, mean = 0.05, 0.0
            p.copy_(torch.randn(p.shape, generator=gen) * std + mean)


def encoder_linears(model):
    """The encoder layers' Linear modules (qualified name -> module); the shared ALBERT layer once."""
    keys = (".encoder.layer.", ".transformer.layer.", ".albert_layer_groups.")
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and any(k in n for k in keys)}


def prune_model(model, pattern, sparsity):
    """Magnitude block pruning of the encoder Linear weights in the ONNX MatMul layout W[K,N]
    (torch keeps W^T = [N,K]); returns {name: W[K,N]}."""
    out = {}
    with torch.no_grad():
        for name, lin in encoder_linears(model).items():
            wkn = prune_kn(lin.weight.detach().numpy().T.astype(np.float32), pattern, sparsity)
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(wkn.T)))
            out[name] = np.ascontiguousarray(lin.weight.detach().numpy().T)
    return out


# ----------------------------------------------------------------------------- config / inputs
def build_config(a):
    f = a.family
    c = dict(TINY)
    sz = SIZES[f]
    if a.size == "tiny":
        c.update(sz.get("tiny", {}))
    else:
        if a.size not in sz:
            raise SystemExit(f"--size {a.size}: {f} has {['tiny'] + sorted(sz)}")
        c.update(embedding_size=None)
        c.update(sz[a.size])
    for k in ("layers", "hidden", "heads", "ffn", "vocab", "max_pos", "embedding_size"):
        v = getattr(a, k)
        if v is not None:
            c[k] = v
    if c["embedding_size"] is None or f not in ("albert", "electra"):
        c["embedding_size"] = c["hidden"]
    c.update(FAMILY[f])
    c["family"], c["head"], c["size"] = f, a.head, a.size
    c["exporter"] = a.exporter
    c["opset"] = a.opset or EXPORTERS[a.exporter]["opset"].get(f, DEFAULT_OPSET[a.exporter])
    # RoBERTa's position table has padding_idx + 1 = 2 extra rows
    c["max_position_embeddings"] = c["max_pos"] + (2 if f in ("roberta", "xlm-roberta") else 0)
    c["num_labels"] = 2 if a.head == "qa" else a.num_labels
    mv = a.mask_value
    ok = ("finfo", "-inf") if f == "distilbert" else ("finfo", "-10000")
    if mv not in ok:
        raise SystemExit(f"--mask_value {mv}: {f} takes {ok}")
    c["mask_value"] = mv
    for k in ("prune", "sparsity", "batch", "seq", "pad", "seed"):
        c[k] = getattr(a, k)
    if c["hidden"] % c["heads"]:
        raise SystemExit("hidden must be a multiple of heads")
    if c["seq"] > c["max_pos"]:
        raise SystemExit("seq > max_pos")
    if not 0 <= c["pad"] < c["seq"]:
        raise SystemExit("pad must be in [0, seq)")
    if not 11 <= c["opset"] <= 17:
        raise SystemExit("opset must be in 11..17")
    return c


def make_inputs(c, batch, seq, pad, seed):
    """int64 ids/mask/types; row 0 full, row b >= 1 ends in max(1, pad - b + 1) pads (pad > 0)."""
    rng = np.random.RandomState(seed + 1)
    lo = 3 if c["pad_id"] == 1 else 1  # RoBERTa: no pad (1) or <s>/</s> inside the text
    ids = rng.randint(lo, c["vocab"], size=(batch, seq)).astype(np.int64)
    if c["pad_id"] == 1:
        ids[:, 0] = 0  # <s>
    mask = np.ones((batch, seq), np.int64)
    tt = np.zeros((batch, seq), np.int64)
    for b in range(batch):
        npad = 0 if (b == 0 or pad == 0) else max(1, pad - b + 1)
        valid = seq - npad
        mask[b, valid:] = 0
        ids[b, valid:] = c["pad_id"]
        tt[b, valid // 2:valid] = 1
    inputs = dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    return {n: inputs[n] for n in INPUTS[c["family"]]}


# ----------------------------------------------------------------------------- ONNX analysis
def _topo_closure(graph, source):
    """Nodes whose every non-constant input derives only from graph input `source` (in graph
    order, which torch writes topologically), and the nodes that consume that closure while
    also reading other data (the boundary, e.g. the Add onto attention scores)."""
    consts = {t.name for t in graph.initializer}
    float_tables = {t.name for t in graph.initializer if t.data_type == 1 and len(t.dims) == 2}
    derived = {source}
    closure = []
    for n in graph.node:
        ins = [i for i in n.input if i]
        dyn = [i for i in ins if i not in consts]
        if n.op_type == "Constant":
            consts.update(n.output)
            continue
        if n.op_type == "Gather" and n.input[0] in float_tables:
            continue  # an embedding lookup ends the integer computation: it is a consumer
        if dyn and all(i in derived for i in dyn):
            closure.append(n)
            derived.update(n.output)
    names = {o for n in closure for o in n.output} | {source}
    boundary = [n for n in graph.node if n not in closure and any(i in names for i in n.input)]
    return closure, boundary


def describe_subgraphs(graph):
    """Op types (in order) that depend on each int input only: the mask / position-id / token-type
    computations a fusion pass must match; plus the first consumers outside them."""
    out = {}
    for inp in graph.input:
        closure, boundary = _topo_closure(graph, inp.name)
        kinds = {}
        for b in boundary:
            kinds[b.op_type] = kinds.get(b.op_type, 0) + 1
        out[inp.name] = dict(ops=[n.op_type for n in closure],
                             consumers=[f"{b.op_type}" for b in boundary[:6]],
                             consumer_counts=kinds)
    return out


def shared_initializers(graph):
    """Initializers read by more than one node (ALBERT's shared layer)."""
    uses = {}
    inits = {t.name for t in graph.initializer}
    for n in graph.node:
        for i in set(n.input):
            if i in inits:
                uses[i] = uses.get(i, 0) + 1
    return {k: v for k, v in uses.items() if v > 1}


def find_pruned_initializers(graph, linears):
    """Map each pruned Linear (W[K,N]) to the MatMul initializer(s) holding it."""
    from onnx import numpy_helper
    inits = {t.name: t for t in graph.initializer}
    arrays = {}
    for n in graph.node:
        if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits:
            if n.input[1] not in arrays:
                arrays[n.input[1]] = numpy_helper.to_array(inits[n.input[1]])
    found = {}
    for key, w in linears.items():
        found[key] = [name for name, a in arrays.items() if a.shape == w.shape and np.array_equal(a, w)]
    return found


# ----------------------------------------------------------------------------- ORT
def run_ort(onnx_path, inputs_dir, names, out_dir):
    ort = os.path.join(REPO, "scripts", "ort_run.js")
    spec = ",".join(f"{n}={os.path.join(inputs_dir, n + '.npy')}" for n in names)
    cmd = ["node", ort, onnx_path, "--input", spec, "--output_dir", out_dir, "--iterations", "1", "--warmup", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ort_run.js failed ({r.returncode}): {r.stderr.strip()[-2000:]}")


def check_ort(out_dir, meta, tol=1e-4):
    tmp = tempfile.mkdtemp(prefix="gen_hf_ort_")
    try:
        run_ort(os.path.join(out_dir, "model.onnx"), os.path.join(out_dir, "inputs"), list(meta["inputs"]), tmp)
        worst = 0.0
        for name, o in meta["outputs"].items():
            ref = np.load(os.path.join(out_dir, "ref", o["file"]))
            got = np.load(os.path.join(tmp, o["file"]))
            if got.shape != ref.shape:
                raise AssertionError(f"{name}: ORT shape {got.shape} != torch {ref.shape}")
            d = float(np.abs(got.astype(np.float64) - ref).max())
            worst = max(worst, d)
            if not d <= tol:
                raise AssertionError(f"{name}: max |ort - torch| = {d:.3g} > {tol}")
        return worst
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=FAMILIES)
    ap.add_argument("--head", default="base", choices=HEADS)
    ap.add_argument("--exporter", default="transformers", choices=sorted(EXPORTERS))
    ap.add_argument("--opset", type=int, help="11..17 (default: the exporter's, see above)")
    ap.add_argument("--size", default="tiny", help="tiny (2/64/4/128, vocab 200, max_pos 128) | base (electra: also small)")
    for k in ("layers", "hidden", "heads", "ffn", "vocab", "max_pos", "embedding_size"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--num_labels", type=int, default=3, help="seq-cls / token-cls classes (default 3)")
    ap.add_argument("--mask_value", default="finfo", choices=("finfo", "-10000", "-inf"),
                    help="finfo (modern); -10000 (BERT-likes, transformers < 4.21); -inf (DistilBERT < 4.22; write --mask_value=-inf)")
    ap.add_argument("--prune", default="none", choices=PRUNE)
    ap.add_argument("--sparsity", type=float, default=0.9, help="fraction of blocks zeroed (default 0.9)")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--pad", type=int, default=5, help="trailing pads of row 1 (row b: pad - b + 1, >= 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check_ort", action="store_true", help="assert ONNX Runtime matches torch to 1e-4")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def generate(a):
    import onnx
    c = build_config(a)
    torch.manual_seed(c["seed"])
    gen = torch.Generator().manual_seed(c["seed"])
    model = HFModel(c).eval()
    init_weights(model, gen)
    linears = prune_model(model, c["prune"], c["sparsity"]) if c["prune"] != "none" else {}

    names = list(INPUTS[c["family"]])
    outs = onnx_outputs(c)
    e = EXPORTERS[c["exporter"]]
    keep = set(outs) if c["exporter"] == "optimum" else None
    wrapped = Exported(model, keep).eval()

    inputs = make_inputs(c, c["batch"], c["seq"], c["pad"], c["seed"])
    trace = make_inputs(c, e["trace"][0], e["trace"][1], 0, c["seed"] + 100)
    with torch.no_grad():
        ref_dict = model(**{n: torch.from_numpy(v) for n, v in inputs.items()})
        ref_dict = {k: v for k, v in ref_dict.items() if keep is None or k in keep}

    out_dir = a.out
    os.makedirs(out_dir, exist_ok=True)
    for sub in ("inputs", "ref"):
        shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)
        os.makedirs(os.path.join(out_dir, sub))
    onnx_path = os.path.join(out_dir, "model.onnx")
    dyn = {n: {0: e["batch"], 1: e["seq"]} for n in names}
    dyn.update(outs)
    # exporters pass the dummy inputs as keyword arguments: (dict,)
    torch.onnx.export(wrapped, ({n: torch.from_numpy(v) for n, v in trace.items()},), onnx_path,
                      input_names=names, output_names=list(outs), dynamic_axes=dyn,
                      opset_version=c["opset"], do_constant_folding=True)
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    g = m.graph
    graph_outputs = [o.name for o in g.output]
    if len(graph_outputs) != len(ref_dict):
        raise RuntimeError(f"ONNX outputs {graph_outputs} vs torch outputs {list(ref_dict)}")

    for n in names:
        np.save(os.path.join(out_dir, "inputs", n + ".npy"), inputs[n])
    meta_outputs = {}
    for onnx_name, (hf_name, t) in zip(graph_outputs, ref_dict.items()):
        arr = t.numpy().astype(np.float32)
        fname = onnx_name.replace("/", "_") + ".npy"
        np.save(os.path.join(out_dir, "ref", fname), arr)
        vi = [o for o in g.output if o.name == onnx_name][0]
        shape = [d.dim_param if d.dim_param else d.dim_value for d in vi.type.tensor_type.shape.dim]
        meta_outputs[onnx_name] = dict(hf_name=hf_name, dtype="float32", shape=shape, file=fname,
                                       named_by_exporter=onnx_name in outs, ref_shape=list(arr.shape))

    weights = []
    if linears:
        found = find_pruned_initializers(g, linears)
        for key, w in linears.items():
            weights.append(dict(name=key, shape=list(w.shape), pattern=c["prune"], sparsity=block_sparsity(w),
                                onnx_initializers=found[key]))
    cfg_keys = ("family", "head", "exporter", "opset", "size", "layers", "hidden", "heads", "ffn", "vocab",
                "max_pos", "max_position_embeddings", "embedding_size", "type_vocab", "pad_id", "eps", "act",
                "num_labels", "mask_value", "prune", "sparsity", "batch", "seq", "pad", "seed")
    meta = dict(
        config={k: c[k] for k in cfg_keys},
        generator="scripts/gen_hf.py", torch=torch.__version__, onnx=onnx.__version__,
        hf_class=type(model).__name__ + f"[{c['family']}/{c['head']}]",
        trace_shape=list(e["trace"]),
        inputs={n: dict(dtype="int64", shape=[e["batch"], e["seq"]], file=n + ".npy") for n in names},
        outputs=meta_outputs,
        op_types=sorted({n.op_type for n in g.node}),
        op_counts={t: sum(1 for n in g.node if n.op_type == t) for t in sorted({n.op_type for n in g.node})},
        num_nodes=len(g.node), num_initializers=len(g.initializer),
        shared_initializers=shared_initializers(g),
        subgraphs=describe_subgraphs(g),
        ref_stats={k: dict(mean=float(v.mean()), std=float(v.std()), absmax=float(v.abs().max()))
                   for k, v in ref_dict.items()},
        weights=weights,
    )
    with open(os.path.join(out_dir, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    msg = (f"{out_dir}: {c['family']}/{c['head']} {c['exporter']} opset {c['opset']}, "
           f"{len(g.node)} nodes, outputs {graph_outputs}")
    if a.check_ort:
        d = check_ort(out_dir, meta)
        meta["ort_max_abs_diff"] = d
        with open(os.path.join(out_dir, "meta.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
        msg += f"; ORT max |diff| {d:.3g}"
    if not a.quiet:
        print(msg)
    return meta


def main(argv=None):
    generate(parse_args(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
