// InnerProduct fusion:
//   Matmul(x, W) with W a constant 2-D fp32 weight [K, N]     -> InnerProduct(x, W)
//   Matmul(x, W[N, K], src1_perm 1,0, output_scale a) (ONNX Gemm transB=1, alpha a: nn.Linear
//   heads)                                                     -> InnerProduct(x, a * W^T)
//     (the transformed weight made once per (W, perm, a) and shared by every reader)
//   InnerProduct(x, W) + b, b a constant [N]                  -> InnerProduct(x, W, b)
//     (b of N elements as [1, .., 1, N], or one element, no wider than the output: as [N])
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

// A Matmul whose second input is a constant 2-D fp32 weight and whose attributes are at most
// src1_perm 1,0 and output_scale (the lowering of ONNX Gemm with transA=0): the weight as an
// InnerProduct reads it, [K, N] with the scale folded in, or "" when the Matmul is not one.
// `made` memoizes by (weight, transpose, scale): readers of one weight share one copy.
std::string ip_weight(Graph& g, const OpInfo& op, std::map<std::string, std::string>* made) {
  if (op.inputs.size() != 2) return "";
  bool trans = false;
  double alpha = 1.0;
  for (auto& kv : op.attrs) {
    if (kv.first == "src1_perm" && op.attr_ints("src1_perm") == std::vector<int64_t>{1, 0}) trans = true;
    else if (kv.first == "src1_perm" && op.attr_ints("src1_perm") == std::vector<int64_t>{0, 1}) {}
    else if (kv.first == "output_scale") alpha = op.attr_float("output_scale", 1.f);
    else return "";
  }
  const std::string& wn = op.inputs[1];
  const TensorInfo* w = g.m.find(wn);
  if (!w || !w->is_weight || w->dtype != DType::fp32 || w->shape.size() != 2) return "";
  if (!trans && alpha == 1.0) return wn;
  const std::string key = wn + (trans ? "|T|" : "|N|") + OpInfo::attr_str(alpha);
  auto it = made->find(key);
  if (it != made->end()) return it->second;
  const int64_t R = w->shape[0], C = w->shape[1];  // stored [R, C]; the IP weight is [K, N]
  const int64_t K = trans ? C : R, N = trans ? R : C;
  const float* src = w->as<float>();
  const float a = float(alpha);
  std::vector<float> v(static_cast<size_t>(K * N));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) v[size_t(k * N + n)] = a * (trans ? src[n * C + k] : src[k * N + n]);
  std::string name = g.add_const(wn + (trans ? "_t" : "") + (alpha != 1.0 ? "_scaled" : ""), DType::fp32, {K, N}, v);
  made->emplace(key, name);
  return name;
}

// A constant fp32 bias for an InnerProduct of N outputs whose src has rank `rank` (-1: unknown):
// its name as a [N] weight (itself, or a reshaped / broadcast copy, made once), or "".
std::string ip_bias(Graph& g, const std::string& bn, int64_t N, int rank, std::map<std::string, std::string>* made) {
  const TensorInfo* b = g.m.find(bn);
  if (!b || !b->is_weight || b->dtype != DType::fp32) return "";
  if (b->shape.size() == 1 && b->shape[0] == N) return bn;
  if (rank < 0 || int(b->shape.size()) > rank) return "";  // would widen the output
  const int64_t numel = b->numel();
  if (numel != N && numel != 1) return "";
  for (size_t i = 0; i + 1 < b->shape.size(); ++i)
    if (b->shape[i] != 1) return "";
  if (numel == N && N != 1 && (b->shape.empty() || b->shape.back() != N)) return "";
  const std::string key = bn + "|bias|" + std::to_string(N);
  auto it = made->find(key);
  if (it != made->end()) return it->second;
  std::vector<float> v(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) v[size_t(n)] = b->as<float>()[numel == N ? n : 0];
  std::string name = g.add_const(bn + "_n", DType::fp32, {N}, v);
  made->emplace(key, name);
  return name;
}
}  // namespace

int fuse_inner_product(Model& m) {
  int n = 0;
  Graph g(m);
  std::map<std::string, std::string> made;  // (source weight, transform) -> the weight made
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& op = m.ops[k];
    // Matmul with a constant weight (transposed / scaled: ONNX Gemm).
    if (op.type == "Matmul") {
      std::string w = ip_weight(g, op, &made);
      if (!w.empty()) {
        op.type = "InnerProduct";
        op.attrs.clear();
        op.inputs[1] = w;
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
        const TensorInfo* w = m.find(ip->inputs[1]);
        const std::string b = ip_bias(g, op.inputs[1 - s], w->shape[1], g.rank_of(ip->inputs[0]), &made);
        if (b.empty()) continue;
        OpInfo f = *ip;
        f.name = op.name;
        f.inputs.assign(ip->inputs.begin(), ip->inputs.begin() + fixed_inputs(m, *ip));
        f.inputs.push_back(b);
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
