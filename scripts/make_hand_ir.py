#!/usr/bin/python3
"""Writes a small IR by hand in the Neural Engine's style, with inputs and a reference output
computed independently in numpy (float64):
  embeddings (Gather word + Gather position + BinaryAdd + LayerNorm)
  -> 2 x [InnerProduct + gelu_erf -> InnerProduct + bias + residual sum -> LayerNorm]
Usage: make_hand_ir.py OUT_DIR [--batch 3 --seq 7 --hidden 24 --ffn 40 --vocab 50 --seed 0]
"""
import argparse, math, os
import numpy as np


def erf(x):
    return np.vectorize(math.erf)(x)


def layernorm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seq", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=24)
    ap.add_argument("--ffn", type=int, default=40)
    ap.add_argument("--vocab", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    H, F, V, P = a.hidden, a.ffn, a.vocab, 64
    w = {}
    w["word_emb"] = rng.normal(0, 0.5, (V, H)).astype(np.float32)
    w["pos_emb"] = rng.normal(0, 0.5, (P, H)).astype(np.float32)
    w["emb_ln_g"] = rng.uniform(0.5, 1.5, H).astype(np.float32)
    w["emb_ln_b"] = rng.normal(0, 0.1, H).astype(np.float32)
    for l in range(2):
        w[f"l{l}_fc1_w"] = rng.normal(0, 1 / math.sqrt(H), (H, F)).astype(np.float32)
        w[f"l{l}_fc1_b"] = rng.normal(0, 0.1, F).astype(np.float32)
        w[f"l{l}_fc2_w"] = rng.normal(0, 1 / math.sqrt(F), (F, H)).astype(np.float32)
        w[f"l{l}_fc2_b"] = rng.normal(0, 0.1, H).astype(np.float32)
        w[f"l{l}_ln_g"] = rng.uniform(0.5, 1.5, H).astype(np.float32)
        w[f"l{l}_ln_b"] = rng.normal(0, 0.1, H).astype(np.float32)

    ids = rng.integers(0, V, (a.batch, a.seq)).astype(np.int32)
    pos = np.tile(np.arange(a.seq, dtype=np.int32), (a.batch, 1))

    # Reference in float64.
    d = {k: v.astype(np.float64) for k, v in w.items()}
    x = d["word_emb"][ids] + d["pos_emb"][pos]
    x = layernorm(x, d["emb_ln_g"], d["emb_ln_b"], 1e-12)
    for l in range(2):
        h = x @ d[f"l{l}_fc1_w"] + d[f"l{l}_fc1_b"]
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        y = h @ d[f"l{l}_fc2_w"] + d[f"l{l}_fc2_b"] + x
        x = layernorm(y, d[f"l{l}_ln_g"], d[f"l{l}_ln_b"], 1e-12)

    os.makedirs(a.out, exist_ok=True)
    blob = bytearray()
    loc = {}
    for k, v in w.items():
        blob += b"\0" * ((64 - len(blob) % 64) % 64)
        loc[k] = (len(blob), v.nbytes)
        blob += v.tobytes()
    open(os.path.join(a.out, "model.bin"), "wb").write(bytes(blob))

    def wt(k):
        v = w[k]
        return "{dtype: fp32, shape: [%s], location: [%d, %d]}" % (", ".join(map(str, v.shape)), *loc[k])

    L = ["version: 1", "model:", "  name: hand_encoder", "  operator:", "    input_data:", "      type: Input", "      output:",
         "        input_ids: {dtype: int32, shape: [-1, -1]}", "        position_ids: {dtype: int32, shape: [-1, -1]}"]
    for k in w:
        L.append(f"        {k}: {wt(k)}")
    L += ["    word_embeddings:", "      type: Gather", "      input: {word_emb: {}, input_ids: {}}",
          "      output: {word_out: {}}", "      attr: {axis: 0}",
          "    position_embeddings:", "      type: Gather", "      input: {pos_emb: {}, position_ids: {}}",
          "      output: {pos_out: {}}",
          "    embeddings_add:", "      type: BinaryAdd", "      input: {word_out: {}, pos_out: {}}", "      output: {emb_sum: {}}",
          "    embeddings_ln:", "      type: LayerNorm", "      input: {emb_sum: {}, emb_ln_g: {}, emb_ln_b: {}}",
          "      output: {x0: {}}", "      attr: {epsilon: 1.0e-12}"]
    for l in range(2):
        L += [f"    l{l}_fc1:", "      type: InnerProduct", f"      input: {{x{l}: {{}}, l{l}_fc1_w: {{}}, l{l}_fc1_b: {{}}}}",
              f"      output: {{l{l}_h: {{}}}}", "      attr: {append_op: gelu_erf}",
              f"    l{l}_fc2:", "      type: InnerProduct",
              f"      input: {{l{l}_h: {{}}, l{l}_fc2_w: {{}}, l{l}_fc2_b: {{}}, x{l}: {{}}}}",
              f"      output: {{l{l}_y: {{}}}}", "      attr: {append_op: sum}",
              f"    l{l}_ln:", "      type: LayerNorm", f"      input: {{l{l}_y: {{}}, l{l}_ln_g: {{}}, l{l}_ln_b: {{}}}}",
              f"      output: {{x{l + 1}: {{}}}}", "      attr: {epsilon: 1.0e-12}"]
    L += ["    output_data:", "      type: Output", "      input: {x2: {}}"]
    open(os.path.join(a.out, "conf.yaml"), "w").write("\n".join(L) + "\n")
    np.save(os.path.join(a.out, "input_ids.npy"), ids)
    np.save(os.path.join(a.out, "position_ids.npy"), pos)
    np.save(os.path.join(a.out, "ref_x2.npy"), x.astype(np.float32))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
