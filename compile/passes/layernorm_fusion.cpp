// LayerNorm fusion: the decomposed form torch exports for nn.LayerNorm (opset < 17)
//   mean = ReduceMean(x, -1); d = x - mean; v = ReduceMean(d^2, -1)   (Pow(d,2) or d*d)
//   y = d / Sqrt(v + eps) * gamma + beta
// -> LayerNorm(x, gamma, beta) epsilon=eps axis=-1.
#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {
bool last_axis_mean(Graph& g, const OpInfo* op) {
  if (!op || op->type != "ReduceMean" || op->attr_int("keepdims", 1) != 1) return false;
  std::vector<int64_t> axes = op->attr_ints("axes");
  if (!op->has_attr("axes") && op->inputs.size() > 1 && !g.const_ints(op->inputs[1], &axes)) return false;
  if (axes.size() != 1) return false;
  if (axes[0] == -1) return true;
  int r = g.rank_of(op->inputs[0]);
  return r > 0 && axes[0] == r - 1;
}
// The non-constant operand and the 1-D fp32 constant of a binary op.
bool split_vector(Graph& g, const OpInfo* op, std::string* var, std::string* vec) {
  if (!op || op->inputs.size() != 2) return false;
  for (int k = 0; k < 2; ++k) {
    const TensorInfo* w = g.m.find(op->inputs[k]);
    if (w && w->is_weight && w->dtype == DType::fp32 && w->shape.size() == 1 && !g.is_const(op->inputs[1 - k])) {
      *vec = op->inputs[k];
      *var = op->inputs[1 - k];
      return true;
    }
  }
  return false;
}
}  // namespace

int fuse_layernorm(Model& m) {
  int n = 0;
  Graph g(m);
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& anchor = m.ops[k];
    std::string scaled, beta, normed, gamma;
    if (!is_binary(&anchor, "add") || !split_vector(g, &anchor, &scaled, &beta)) continue;
    OpInfo* mul = g.prod(scaled);
    if (!is_binary(mul, "mul") || !split_vector(g, mul, &normed, &gamma)) continue;
    OpInfo* div = g.prod(normed);
    if (!is_binary(div, "div")) continue;
    std::string d = div->inputs[0];
    OpInfo* sq = g.prod(div->inputs[1]);
    if (!is_unary(sq, "sqrt")) continue;
    OpInfo* add_eps = g.prod(sq->inputs[0]);
    std::string var;
    double eps;
    if (!is_binary(add_eps, "add") || !split_const(g, add_eps, &var, &eps)) continue;
    OpInfo* mean2 = g.prod(var);
    if (!last_axis_mean(g, mean2)) continue;
    OpInfo* pw = g.prod(mean2->inputs[0]);
    bool squared = false;
    double two;
    std::string base;
    if (is_binary(pw, "pow") && split_const(g, pw, &base, &two) && two == 2.0 && base == d) squared = true;
    if (is_binary(pw, "mul") && pw->inputs[0] == d && pw->inputs[1] == d) squared = true;
    if (!squared) continue;
    OpInfo* sub = g.prod(d);
    if (!is_binary(sub, "sub")) continue;
    std::string x = sub->inputs[0];
    OpInfo* mean1 = g.prod(sub->inputs[1]);
    if (!last_axis_mean(g, mean1) || mean1->inputs[0] != x) continue;
    const TensorInfo* gw = m.find(gamma);
    const TensorInfo* bw = m.find(beta);
    if (gw->shape != bw->shape) continue;
    OpInfo ln;
    ln.name = anchor.name;
    ln.type = "LayerNorm";
    ln.inputs = {x, gamma, beta};
    ln.outputs = anchor.outputs;
    ln.set_attr("epsilon", OpInfo::attr_str(eps));
    ln.set_attr("axis", "-1");
    anchor = ln;
    g.rebuild();
    ++n;
  }
  return n;
}

}  // namespace pass
}  // namespace ne
