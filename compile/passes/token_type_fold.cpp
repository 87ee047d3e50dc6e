// Token types that are one constant everywhere (RoBERTa / XLM-RoBERTa exported without a
// token_type_ids input: transformers expands its all-zero `token_type_ids` buffer to the input's
// shape, then looks it up):
//     Add(Gather(word_table, T), Gather(type_table, Expand(u, Shape(T))))
// with u derived from a constant whose every element is c (a Slice of the zero buffer) and
// rank(u) <= rank(T). Every looked-up row is type_table[c], and the lookup's shape, T.shape + [H],
// is the other operand's: the Add reads the [H] row instead (broadcast), and the Expand, its
// shape arithmetic and the Gather go away.
#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {

// Whether every element of t is the integer c (t derived from a constant through ops that only
// select or move elements); *rank = t's rank when known (-1 otherwise).
bool uniform_int(Graph& g, const std::string& t, int64_t* c, int depth = 0) {
  if (depth > 16) return false;
  std::vector<int64_t> v;
  if (g.const_ints(t, &v)) {
    if (v.empty()) return false;
    for (auto x : v)
      if (x != v[0]) return false;
    *c = v[0];
    return true;
  }
  OpInfo* p = g.prod(t);
  if (!p || p->inputs.empty()) return false;
  const std::string& ty = p->type;
  if (ty == "Slice" || ty == "Reshape" || ty == "Unsqueeze" || ty == "Squeeze" || ty == "Identity" ||
      ty == "Reorder" || ty == "Expand" || (ty == "Cast" && (p->attr("to") == "int64" || p->attr("to") == "int32")))
    return uniform_int(g, p->inputs[0], c, depth + 1);
  return false;
}

}  // namespace

int fold_uniform_token_types(Model& m) {
  int n = 0;
  Graph g(m);
  for (auto& op : m.ops) {
    if (!is_binary(&op, "add")) continue;
    for (int s = 0; s < 2; ++s) {
      OpInfo* tg = g.prod(op.inputs[size_t(s)], "Gather");
      OpInfo* wg = g.prod(op.inputs[size_t(1 - s)], "Gather");
      if (!tg || !wg || tg->inputs.size() != 2 || wg->inputs.size() != 2) continue;
      if (tg->attr_int("axis", 0) != 0 || wg->attr_int("axis", 0) != 0) continue;
      const TensorInfo* tt = m.find(tg->inputs[0]);
      const TensorInfo* wt = m.find(wg->inputs[0]);
      if (!tt || !wt || !tt->is_weight || !wt->is_weight || tt->dtype != DType::fp32 || tt->shape.size() != 2 ||
          wt->shape.size() != 2 || tt->shape[1] != wt->shape[1])
        continue;
      const std::string& T = wg->inputs[1];
      OpInfo* ex = g.prod(tg->inputs[1], "Expand");
      if (!ex || ex->inputs.size() != 2) continue;
      OpInfo* sh = g.prod(ex->inputs[1], "Shape");
      const int ru = g.rank_of(ex->inputs[0]), rt = g.rank_of(T);
      if (!sh || sh->inputs[0] != T || sh->attr_int("start", 0) != 0 ||
          (sh->has_attr("end") && sh->attr_int("end", 0) != rt))
        continue;
      int64_t c;
      if (!uniform_int(g, ex->inputs[0], &c) || ru < 0 || rt < 0 || ru > rt) continue;
      if (c < 0) c += tt->shape[0];
      if (c < 0 || c >= tt->shape[0]) continue;
      const int64_t H = tt->shape[1];
      std::vector<float> row(tt->as<float>() + c * H, tt->as<float>() + (c + 1) * H);
      op.inputs[size_t(s)] = g.add_const(tg->outputs[0] + "_row", DType::fp32, {H}, row);
      ++n;
      g.rebuild();
      break;
    }
  }
  return n;
}

}  // namespace pass
}  // namespace ne
