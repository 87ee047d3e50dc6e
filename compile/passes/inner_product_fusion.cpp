// InnerProduct fusion:
//   Matmul(x, W) with W a constant 2-D fp32 weight [K, N]     -> InnerProduct(x, W)
//   InnerProduct(x, W) + b, b a constant [N]                  -> InnerProduct(x, W, b)
//   Gelu / UnaryOp tanh, relu, sigmoid of an InnerProduct     -> append_op gelu_erf, ...
//   InnerProduct(...) + r, r an activation of the same rank   -> append_op sum, r last input
// Each step rewrites the later op in place (it keeps its output name); the InnerProduct it
// replaces is left to remove_dead_ops(). Only single-use InnerProduct outputs are fused.
#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {
std::vector<std::string> post_ops(const OpInfo& ip) {
  std::vector<std::string> r;
  std::string s = ip.attr("append_op"), cur;
  for (char c : s) {
    if (c == ',') { if (!cur.empty()) r.push_back(cur); cur.clear(); }
    else if (c != ' ') cur += c;
  }
  if (!cur.empty()) r.push_back(cur);
  return r;
}
bool has_sum(const OpInfo& ip) {
  for (auto& p : post_ops(ip)) if (p == "sum") return true;
  return false;
}
// Inputs before the bias: src, weight, and weight_scale for an s8 weight (docs/OPS.md).
size_t fixed_inputs(const Model& m, const OpInfo& ip) {
  const TensorInfo* w = ip.inputs.size() > 1 ? m.find(ip.inputs[1]) : nullptr;
  return w && w->dtype == DType::s8 ? 3 : 2;
}
bool has_bias(const Model& m, const OpInfo& ip) {
  return ip.inputs.size() == fixed_inputs(m, ip) + (has_sum(ip) ? 2u : 1u);
}

// A single-use InnerProduct producing t (nullptr otherwise).
OpInfo* ip_of(Graph& g, const std::string& t) {
  OpInfo* p = g.prod(t, "InnerProduct");
  return p && g.single_use(t) && !g.is_output(t) ? p : nullptr;
}

void append(OpInfo* op, const std::string& post) {
  std::string s = op->attr("append_op");
  op->set_attr("append_op", s.empty() ? post : s + "," + post);
}
}  // namespace

int fuse_inner_product(Model& m) {
  int n = 0;
  Graph g(m);
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& op = m.ops[k];
    // Matmul with a constant weight.
    if (op.type == "Matmul" && op.inputs.size() == 2 && op.attrs.empty()) {
      const TensorInfo* w = m.find(op.inputs[1]);
      if (w && w->is_weight && w->dtype == DType::fp32 && w->shape.size() == 2) {
        op.type = "InnerProduct";
        ++n;
        g.rebuild();
      }
      continue;
    }
    // Bias.
    if (is_binary(&op, "add")) {
      for (int s = 0; s < 2; ++s) {
        OpInfo* ip = ip_of(g, op.inputs[s]);
        if (!ip || has_bias(m, *ip) || !post_ops(*ip).empty()) continue;
        const TensorInfo* b = m.find(op.inputs[1 - s]);
        const TensorInfo* w = m.find(ip->inputs[1]);
        if (!b || !b->is_weight || b->dtype != DType::fp32 || b->shape.size() != 1 ||
            b->shape[0] != w->shape[1])
          continue;
        OpInfo f = *ip;
        f.name = op.name;
        f.inputs.assign(ip->inputs.begin(), ip->inputs.begin() + fixed_inputs(m, *ip));
        f.inputs.push_back(op.inputs[1 - s]);
        f.outputs = op.outputs;
        op = f;
        ++n;
        g.rebuild();
        break;
      }
      if (op.type == "InnerProduct") continue;
      // Residual add.
      for (int s = 0; s < 2; ++s) {
        OpInfo* ip = ip_of(g, op.inputs[s]);
        const std::string& r = op.inputs[1 - s];
        if (!ip || has_sum(*ip) || g.is_const(r) || r == op.inputs[s]) continue;
        int rr = g.rank_of(r), ri = g.rank_of(ip->inputs[0]);
        if (rr < 0 || rr != ri) continue;
        OpInfo f = *ip;
        f.name = op.name;
        f.inputs.push_back(r);
        f.outputs = op.outputs;
        append(&f, "sum");
        op = f;
        ++n;
        g.rebuild();
        break;
      }
      continue;
    }
    // Activations.
    std::string post;
    if (op.type == "Gelu") post = op.attr("algorithm", "gelu_erf");
    else if (is_unary(&op, "tanh")) post = "tanh";
    else if (is_unary(&op, "relu")) post = "relu";
    else if (is_unary(&op, "sigmoid")) post = "sigmoid";
    if (post.empty()) continue;
    OpInfo* ip = ip_of(g, op.inputs[0]);
    if (!ip || has_sum(*ip)) continue;  // keep `sum` last: the residual is the last input
    OpInfo f = *ip;
    f.name = op.name;
    f.outputs = op.outputs;
    append(&f, post);
    op = f;
    ++n;
    g.rebuild();
  }
  return n;
}

}  // namespace pass
}  // namespace ne
