// Attention written the DistilBERT way (transformers' modeling_distilbert.py, eager), made into
// the form fuse_attention / fuse_attention_op recognise (docs/OPS.md Attention):
//
//  1. The query scaled before the product:  Matmul(q / c, k)  ->  Matmul(q, k) output_scale 1/c
//     (also q * c). The product is linear in q, and output_scale scales the product alone
//     (before any mask is added), so the rewrite is exact up to fp32 rounding.
//
//  2. masked_fill with a constant:
//       Where(Cast<bool>?(Expand(m, Shape(scores))), fill, scores)      fill a scalar <= -1e30 (finfo.min, -inf)
//     -> BinaryAdd(scores, Cast<fp32>(m) * fill)   (fill = -inf: Where(m, -inf, 0))
//     m is the [B,1,1,S] boolean mask (mask == 0 reshaped). After the softmax both forms give the
//     same probabilities: a masked score is fill (or fill + score, which rounds to fill in fp32
//     for |score| < 1e22 when |fill| >= 1e30, and stays -inf for fill = -inf; so even a row whose
//     every position is masked gives the same, uniform, softmax), an unmasked one is the score. The
//     additive mask is [B,1,1,S] instead of [B,H,S,S], and the scores Matmul takes it as its
//     `binary_add` post-op (fuse_attention).
//
//  3. The mask's Reshape(Equal(mask, 0), [dim0(x), 1, 1, dim1(x)]), with the dims taken from the
//     layer input x, becomes Reshape dst_shape 0,1,1,-1 of the [B,S] mask itself (the same
//     tensor for any mask of x's batch and sequence, the only masks the model accepts), so the
//     layer input has no Shape readers left and --transpose can match the layer.
#include <cmath>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {

// A single-use, non-output tensor produced by an op of type `type`.
OpInfo* only_prod(Graph& g, const std::string& t, const std::string& type) {
  OpInfo* p = g.prod(t, type);
  return p && g.single_use(t) && !g.is_output(t) ? p : nullptr;
}

// Step 3: Reshape(bool [B,S], shape [d, 1, 1, d']) where the shape is built at run time from
// other tensors' dims (Concat of Unsqueezed Gathers of Shapes) -> dst_shape 0,1,1,-1.
bool fold_mask_reshape(Graph& g, OpInfo* r) {
  if (!r || r->type != "Reshape" || r->inputs.size() != 2 || g.is_const(r->inputs[1])) return false;
  if (g.rank_of(r->inputs[0]) != 2) return false;
  OpInfo* cat = g.prod(r->inputs[1], "Concat");
  if (!cat || cat->inputs.size() != 4) return false;
  std::vector<int64_t> one;
  for (int i : {1, 2})
    if (!g.const_ints(cat->inputs[size_t(i)], &one) || one.size() != 1 || one[0] != 1) return false;
  for (int i : {0, 3}) {  // run-time dims: Unsqueeze(Gather(Shape(t), k)) (any t)
    const std::string& d = cat->inputs[size_t(i)];
    if (g.is_const(d)) return false;
    OpInfo* u = g.prod(d);
    if (!u || (u->type != "Unsqueeze" && u->type != "Reshape")) return false;
    OpInfo* ga = g.prod(u->inputs[0], "Gather");
    if (!ga || !g.prod(ga->inputs[0], "Shape")) return false;
  }
  r->inputs.resize(1);
  r->set_attr("dst_shape", "0,1,1,-1");
  r->erase_attr("allowzero");
  return true;
}

}  // namespace

int fuse_masked_attention(Model& m) {
  int n = 0;
  Graph g(m);
  // 1. Query scaled before the product.
  for (auto& op : m.ops) {
    if (op.type != "Matmul" || op.inputs.size() != 2) continue;
    OpInfo* s = only_prod(g, op.inputs[0], "BinaryOp");
    if (!s || (!is_binary(s, "div") && !is_binary(s, "mul"))) continue;
    std::string v;
    double c;
    bool first;
    if (!split_const(g, s, &v, &c, &first) || c == 0 || !std::isfinite(c)) continue;
    if (is_binary(s, "div") && first) continue;  // c / q is not a scale
    const TensorInfo* cw = m.find(s->inputs[first ? 0 : 1]);
    if (!cw || cw->dtype != DType::fp32) continue;
    const double k = is_binary(s, "div") ? 1.0 / c : c;
    op.inputs[0] = v;
    op.set_attr("output_scale", OpInfo::attr_str(op.attr_float("output_scale", 1.f) * k));
    ++n;
    g.rebuild();
  }
  // 2. + 3. masked_fill.
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo* w = &m.ops[k];
    if (w->type != "Where" || w->inputs.size() != 3) continue;
    const std::string scores = w->inputs[2];
    OpInfo* mm = g.prod(scores, "Matmul");
    if (!mm || mm->inputs.size() != 2 || g.is_output(scores)) continue;
    double fill;
    if (!g.const_scalar(w->inputs[1], &fill) || !(fill <= -1e30)) continue;
    const TensorInfo* fw = m.find(w->inputs[1]);
    if (!fw || fw->dtype != DType::fp32) continue;
    // The condition: [Cast<bool>] Expand(m4, Shape(scores)) or m4 itself, m4 a rank-4 bool.
    std::string cond = w->inputs[0];
    if (OpInfo* c = g.prod(cond, "Cast")) {
      if (c->attr("to") != "bool") continue;
      cond = c->inputs[0];
    }
    if (OpInfo* e = g.prod(cond, "Expand")) {
      OpInfo* sh = g.prod(e->inputs[1], "Shape");
      if (!sh || sh->inputs[0] != scores || sh->has_attr("start") || sh->has_attr("end")) continue;
      cond = e->inputs[0];
    }
    OpInfo* r = g.prod(cond, "Reshape");
    if (r) fold_mask_reshape(g, r);
    if (g.rank_of(cond) != 4) continue;
    // Every reader of the scores other than this Where must be the Shape feeding its Expand.
    bool others = false;
    for (OpInfo* c : g.consumers(scores))
      if (c != w && !(c->type == "Shape" && !c->has_attr("start"))) others = true;
    if (others) continue;
    // The additive mask: Cast(m4) * fill as BERT's (finite fill: 0 * fill = 0 where kept), or
    // Where(m4, -inf, 0) for fill = -inf (0 * -inf would be NaN).
    std::vector<OpInfo> mask_ops;
    std::string add_mask = g.new_name(w->outputs[0] + "_additive");
    if (std::isfinite(fill)) {
      OpInfo cast;
      cast.name = g.new_op_name(w->name + "_mask_cast");
      cast.type = "Cast";
      cast.inputs = {cond};
      cast.outputs = {g.new_name(w->outputs[0] + "_mask_f32")};
      cast.set_attr("to", "fp32");
      OpInfo mul;
      mul.name = g.new_op_name(w->name + "_additive_mask");
      mul.type = "BinaryOp";
      mul.inputs = {cast.outputs[0], w->inputs[1]};
      mul.outputs = {add_mask};
      mul.set_attr("algorithm", "mul");
      mask_ops = {cast, mul};
    } else {
      std::string zero = g.add_const(w->outputs[0] + "_zero", DType::fp32, {}, std::vector<float>{0.f});
      OpInfo where;
      where.name = g.new_op_name(w->name + "_additive_mask");
      where.type = "Where";
      where.inputs = {cond, w->inputs[1], zero};
      where.outputs = {add_mask};
      mask_ops = {where};
    }
    OpInfo add;
    add.name = w->name;
    add.type = "BinaryAdd";
    add.inputs = {scores, add_mask};
    add.outputs = w->outputs;
    m.ops[k] = add;
    m.ops.insert(m.ops.begin() + long(k), mask_ops.begin(), mask_ops.end());
    k += mask_ops.size();
    ++n;
    g.rebuild();
  }
  return n;
}

}  // namespace pass
}  // namespace ne
