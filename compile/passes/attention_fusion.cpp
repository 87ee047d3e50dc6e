// Attention fusion into Matmul attributes (docs/OPS.md Matmul):
//   Matmul(Reorder(a, p), Reorder(b, q))      -> Matmul(a, b) src0_perm p, src1_perm q
//   Matmul(..) / c  or  Matmul(..) * c         -> output_scale *= 1/c or c  (c a scalar constant)
//   Matmul(..) + mask                          -> Matmul(.., mask) append_op binary_add
//   Reorder(Matmul(..), p)                     -> Matmul dst_perm p
// With the head split / merge Reshapes as views, a BERT layer's attention becomes
// Reshape views + Matmul(Q, K, mask) + Softmax + Matmul(P, V).
#include <cstdio>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {
std::string join(const std::vector<int64_t>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r;
}
bool valid_perm(const std::vector<int64_t>& p) {
  std::vector<bool> seen(p.size(), false);
  for (auto v : p) {
    if (v < 0 || v >= int64_t(p.size()) || seen[size_t(v)]) return false;
    seen[size_t(v)] = true;
  }
  return !p.empty();
}
// A single-use Matmul (not InnerProduct) producing t.
OpInfo* mm_of(Graph& g, const std::string& t) {
  OpInfo* p = g.prod(t, "Matmul");
  return p && g.single_use(t) && !g.is_output(t) ? p : nullptr;
}
bool has_mask(const OpInfo& mm) { return mm.inputs.size() > 2; }
}  // namespace

int fuse_attention(Model& m) {
  int n = 0;
  Graph g(m);
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& op = m.ops[k];
    if (op.type == "Matmul") {
      for (int s = 0; s < 2; ++s) {
        OpInfo* re = g.prod(op.inputs[s], "Reorder");
        std::string key = s == 0 ? "src0_perm" : "src1_perm";
        if (!re || !g.single_use(op.inputs[s]) || g.is_output(op.inputs[s])) continue;
        std::vector<int64_t> p = re->attr_ints("perm"), q = op.attr_ints(key);
        if (!valid_perm(p) || p.size() < 2) continue;
        if (!q.empty() && q.size() != p.size()) continue;
        std::vector<int64_t> c(p.size());
        for (size_t i = 0; i < p.size(); ++i) c[i] = q.empty() ? p[i] : p[size_t(q[i])];
        op.inputs[s] = re->inputs[0];
        op.set_attr(key, join(c));
        ++n;
      }
      g.rebuild();
      continue;
    }
    // Scale.
    if (is_binary(&op, "div") || is_binary(&op, "mul")) {
      std::string v;
      double c;
      bool first;
      if (!split_const(g, &op, &v, &c, &first)) continue;
      if (op.attr("algorithm") == "div" && first) continue;  // c / x is not a scale
      OpInfo* mm = mm_of(g, v);
      if (!mm || has_mask(*mm) || mm->has_attr("dst_perm") || c == 0) continue;
      const TensorInfo* cw = m.find(op.inputs[first ? 0 : 1]);
      if (cw->dtype != DType::fp32) continue;
      double scale = mm->attr_float("output_scale", 1.f) * (op.attr("algorithm") == "div" ? 1.0 / c : c);
      OpInfo f = *mm;
      f.name = op.name;
      f.outputs = op.outputs;
      f.set_attr("output_scale", OpInfo::attr_str(scale));
      op = f;
      ++n;
      g.rebuild();
      continue;
    }
    // Mask.
    if (is_binary(&op, "add")) {
      for (int s = 0; s < 2; ++s) {
        OpInfo* mm = mm_of(g, op.inputs[s]);
        const std::string& mask = op.inputs[1 - s];
        if (!mm || has_mask(*mm) || mm->has_attr("dst_perm") || mask == op.inputs[s]) continue;
        // The mask must not widen the product's shape: rank(mask) <= rank(product).
        int rm = g.rank_of(mask);
        int ra = int(mm->attr_ints("src0_perm").size());
        if (ra == 0) ra = g.rank_of(mm->inputs[0]);
        if (rm < 0 || ra < 2 || rm > ra) continue;
        OpInfo f = *mm;
        f.name = op.name;
        f.inputs = {mm->inputs[0], mm->inputs[1], mask};
        f.outputs = op.outputs;
        f.set_attr("append_op", "binary_add");
        op = f;
        ++n;
        g.rebuild();
        break;
      }
      continue;
    }
    // Output transpose.
    if (op.type == "Reorder") {
      OpInfo* mm = mm_of(g, op.inputs[0]);
      std::vector<int64_t> p = op.attr_ints("perm");
      if (!mm || mm->has_attr("dst_perm") || !valid_perm(p) || p.size() < 2) continue;
      OpInfo f = *mm;
      f.name = op.name;
      f.outputs = op.outputs;
      f.set_attr("dst_perm", join(p));
      op = f;
      ++n;
      g.rebuild();
    }
  }
  return n;
}

}  // namespace pass
}  // namespace ne
