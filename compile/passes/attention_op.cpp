// Matmul(Q, K[, mask]) -> Softmax(axis -1) -> Matmul(P, V)  ==>  Attention(Q, K, V[, mask])
// (docs/OPS.md Attention): the executor then keeps each (batch, head) score tile in cache
// instead of writing the [B, H, S, S] scores to memory and reading them back twice.
// Runs last (after slim, quantization and any layout rewrite, which all see the three ops).
// Conditions: the scores and the probabilities each read by exactly the next op and not model
// outputs; the first Matmul without dst_perm, the second without src0_perm (P read in place);
// the Softmax along the last axis; no weight inputs.
#include <algorithm>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {
bool identity(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != int64_t(i)) return false;
  return true;
}
}  // namespace

int fuse_attention_op(Model& m) {
  int n = 0;
  Graph g(m);
  std::vector<size_t> dead;
  for (size_t i = 0; i < m.ops.size(); ++i) {
    OpInfo& pv = m.ops[i];
    if (pv.type != "Matmul" || pv.inputs.size() != 2 || !identity(pv.attr_ints("src0_perm"))) continue;
    const std::string probs = pv.inputs[0];
    OpInfo* sm = g.prod(probs, "Softmax");
    if (!sm || !g.single_use(probs) || g.is_output(probs) || sm->inputs.size() != 1) continue;
    if (sm->attr("axis", "-1") != "-1") continue;
    const std::string scores = sm->inputs[0];
    OpInfo* qk = g.prod(scores, "Matmul");
    if (!qk || !g.single_use(scores) || g.is_output(scores) || !identity(qk->attr_ints("dst_perm"))) continue;
    if (qk->inputs.size() < 2 || qk->inputs.size() > 3) continue;
    if (g.is_const(qk->inputs[0]) || g.is_const(qk->inputs[1]) || g.is_const(pv.inputs[1])) continue;
    if (qk->attr("compute_dtype", "fp32") != pv.attr("compute_dtype", "fp32")) continue;
    OpInfo at;
    at.name = pv.name;
    at.type = "Attention";
    at.inputs = {qk->inputs[0], qk->inputs[1], pv.inputs[1]};
    if (qk->inputs.size() == 3) at.inputs.push_back(qk->inputs[2]);
    at.outputs = pv.outputs;
    auto copy = [&](const OpInfo& from, const char* k, const char* as) {
      if (from.has_attr(k)) at.set_attr(as, from.attr(k));
    };
    copy(*qk, "src0_perm", "qk_src0_perm");
    copy(*qk, "src1_perm", "qk_src1_perm");
    copy(*qk, "output_scale", "output_scale");
    copy(pv, "src1_perm", "pv_src1_perm");
    copy(pv, "dst_perm", "dst_perm");
    copy(pv, "compute_dtype", "compute_dtype");
    dead.push_back(size_t(g.index_of(qk)));
    dead.push_back(size_t(g.index_of(sm)));
    m.ops[i] = at;
    m.tensors.erase(scores);
    m.tensors.erase(probs);
    ++n;
  }
  std::sort(dead.begin(), dead.end());
  for (auto it = dead.rbegin(); it != dead.rend(); ++it) m.ops.erase(m.ops.begin() + long(*it));
  return n;
}

int unfuse_attention_op(Model& m) {
  int n = 0;
  Graph g(m);
  std::vector<OpInfo> ops;
  ops.reserve(m.ops.size());
  for (const OpInfo& at : m.ops) {
    if (at.type != "Attention" || at.inputs.size() < 3 || at.inputs.size() > 4 || at.outputs.size() != 1) {
      ops.push_back(at);
      continue;
    }
    const std::string scores = g.new_name(at.name + "/scores"), probs = g.new_name(at.name + "/probs");
    OpInfo qk, sm, pv;
    qk.name = g.new_op_name(at.name + "/qk");
    qk.type = "Matmul";
    qk.inputs = {at.inputs[0], at.inputs[1]};
    if (at.inputs.size() == 4) qk.inputs.push_back(at.inputs[3]);
    qk.outputs = {scores};
    auto copy = [&](OpInfo& to, const char* k, const char* as) {
      if (at.has_attr(k)) to.set_attr(as, at.attr(k));
    };
    copy(qk, "qk_src0_perm", "src0_perm");
    copy(qk, "qk_src1_perm", "src1_perm");
    copy(qk, "output_scale", "output_scale");
    if (at.inputs.size() == 4) qk.set_attr("append_op", "binary_add");
    copy(qk, "compute_dtype", "compute_dtype");
    sm.name = g.new_op_name(at.name + "/softmax");
    sm.type = "Softmax";
    sm.inputs = {scores};
    sm.outputs = {probs};
    sm.set_attr("axis", "-1");
    pv.name = at.name;
    pv.type = "Matmul";
    pv.inputs = {probs, at.inputs[2]};
    pv.outputs = at.outputs;
    copy(pv, "pv_src1_perm", "src1_perm");
    copy(pv, "dst_perm", "dst_perm");
    copy(pv, "compute_dtype", "compute_dtype");
    ops.push_back(qk);
    ops.push_back(sm);
    ops.push_back(pv);
    ++n;
  }
  m.ops = std::move(ops);
  return n;
}

}  // namespace pass
}  // namespace ne
