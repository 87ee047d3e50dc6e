// The BERT layer structure (see layer_match.hpp).
#include "compile/passes/layer_match.hpp"

#include <cstring>

namespace ne {
namespace pass {

std::vector<std::string> post_ops(const OpInfo& ip) {
  std::vector<std::string> r;
  std::string cur;
  for (char c : ip.attr("append_op") + ",") {
    if (c == ',') {
      if (!cur.empty()) r.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  return r;
}
bool has_sum(const OpInfo& ip) {
  for (auto& p : post_ops(ip))
    if (p == "sum") return true;
  return false;
}
int bias_index(const OpInfo& ip) { return ip.inputs.size() == (has_sum(ip) ? 4u : 3u) ? 2 : -1; }

const TensorInfo* own_f32(Graph& g, const std::string& name, size_t rank) {
  const TensorInfo* t = g.m.find(name);
  if (!t || !t->is_weight || !t->data || t->dtype != DType::fp32 || t->shape.size() != rank) return nullptr;
  if (g.uses(name) != 1) return nullptr;
  return t;
}

bool reshape_dims(Graph& g, const OpInfo& r, std::vector<int64_t>* d) {
  if (r.inputs.size() >= 2) return g.const_ints(r.inputs[1], d);
  *d = r.attr_ints("dst_shape");
  return !d->empty();
}

// Keeps the listed rows of a [R, C] fp32 weight (or the listed entries of a [R] vector).
void keep_rows(Model& m, const std::string& name, const std::vector<int64_t>& rows) {
  const TensorInfo t = *m.find(name);  // copy: add_weight overwrites the entry
  const int64_t C = t.shape.size() == 2 ? t.shape[1] : 1;
  std::vector<float> v(size_t(rows.size() * C));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(&v[i * size_t(C)], t.as<float>() + rows[i] * C, size_t(C) * sizeof(float));
  Shape s = t.shape;
  s[0] = int64_t(rows.size());
  m.add_weight(name, DType::fp32, s, v);
}
// Keeps the listed columns of a [R, C] fp32 weight.
void keep_cols(Model& m, const std::string& name, const std::vector<int64_t>& cols) {
  const TensorInfo t = *m.find(name);
  const int64_t R = t.shape[0], C = t.shape[1];
  std::vector<float> v(size_t(R) * cols.size());
  for (int64_t r = 0; r < R; ++r)
    for (size_t j = 0; j < cols.size(); ++j) v[size_t(r) * cols.size() + j] = t.as<float>()[r * C + cols[j]];
  m.add_weight(name, DType::fp32, {R, int64_t(cols.size())}, v);
}

namespace {

// Element-wise ops allowed between the two FFN InnerProducts; `zero_to_zero`: f(0) == 0.
bool channelwise_unary(const OpInfo& op, bool* zero_to_zero) {
  if (op.outputs.size() != 1) return false;
  if (op.type == "Gelu") return op.inputs.size() == 1;
  if (op.type == "UnaryOp" && op.inputs.size() == 1) {
    std::string a = op.attr("algorithm");
    if (a == "relu" || a == "tanh" || a == "neg" || a == "erf" || a == "sin" || a == "abs") return true;
    *zero_to_zero = false;
    return a == "sigmoid" || a == "exp" || a == "softplus";
  }
  return false;
}
bool post_zero_to_zero(const OpInfo& ip) {
  for (auto& p : post_ops(ip))
    if (p != "relu" && p != "gelu_erf" && p != "gelu_tanh" && p != "tanh") return false;
  return true;
}

bool perm_is(const OpInfo& op, const char* key, const std::vector<int64_t>& want) {
  std::vector<int64_t> p = op.attr_ints(key);
  if (p.empty()) {  // identity
    for (size_t i = 0; i < want.size(); ++i)
      if (want[i] != int64_t(i)) return false;
    return true;
  }
  return p == want;
}

// Q/K/V branch: Reshape (view) of a single-use InnerProduct output. Returns the InnerProduct.
OpInfo* head_branch(Graph& g, const std::string& t, OpInfo** reshape) {
  if (!g.single_use(t) || g.is_output(t)) return nullptr;
  OpInfo* r = g.prod(t, "Reshape");
  if (!r || !g.single_use(r->inputs[0]) || g.is_output(r->inputs[0])) return nullptr;
  OpInfo* ip = g.prod(r->inputs[0], "InnerProduct");
  if (!ip || has_sum(*ip) || !ip->attr("append_op").empty() || ip->inputs.size() < 2) return nullptr;
  *reshape = r;
  return ip;
}

// The mask broadcasts over heads: its dim 1 is 1 (declared, or the Reshape / constant making it).
bool mask_per_head_free(Graph& g, const std::string& mask) {
  const TensorInfo* t = g.m.find(mask);
  if (t && t->has_shape && t->shape.size() == 4) return t->shape[1] == 1;
  if (t && t->has_shape && t->shape.size() < 3) return true;  // broadcast from the right
  OpInfo* p = g.prod(mask);
  for (int depth = 0; p && depth < 8; ++depth) {
    if (p->type == "Reshape") {
      std::vector<int64_t> d;
      if (!reshape_dims(g, *p, &d)) return false;
      return d.size() < 3 || (d.size() == 4 && d[1] == 1);
    }
    // Element-wise ops keep the shape of their (broadcast) operands: follow the non-scalar one.
    if (p->type == "BinaryOp" || p->type == "BinaryAdd" || p->type == "UnaryOp" || p->type == "Cast") {
      std::string next;
      for (auto& in : p->inputs) {
        const TensorInfo* ti = g.m.find(in);
        if (ti && ti->is_weight && ti->numel() <= 1) continue;
        if (!next.empty()) return false;
        next = in;
      }
      if (next.empty()) return false;
      const TensorInfo* tn = g.m.find(next);
      if (tn && tn->has_shape && tn->shape.size() == 4) return tn->shape[1] == 1;
      p = g.prod(next);
      continue;
    }
    return false;
  }
  return false;
}

}  // namespace

bool match_ffn(Graph& g, OpInfo& ip2, FfnMatch* f) {
  *f = FfnMatch();
  if (ip2.type != "InnerProduct" || ip2.inputs.size() < 2) return false;
  // Walk back from ip2's src through single-use channel-wise ops to ip1.
  bool z2z = true;
  std::string t = ip2.inputs[0];
  OpInfo* ip1 = nullptr;
  for (int depth = 0; depth < 4; ++depth) {
    if (!g.single_use(t) || g.is_output(t)) return false;
    f->chain.insert(f->chain.begin(), t);
    OpInfo* p = g.prod(t);
    if (!p) return false;
    if (p->type == "InnerProduct") {
      ip1 = p;
      break;
    }
    if (!channelwise_unary(*p, &z2z)) return false;
    t = p->inputs[0];
  }
  if (!ip1 || ip1 == &ip2 || has_sum(*ip1) || ip1->inputs.size() < 2) return false;
  const TensorInfo* w1 = own_f32(g, ip1->inputs[1], 2);
  const TensorInfo* w2 = own_f32(g, ip2.inputs[1], 2);
  if (!w1 || !w2) return false;
  const int b1i = bias_index(*ip1);
  const TensorInfo* b1 = b1i >= 0 ? own_f32(g, ip1->inputs[size_t(b1i)], 1) : nullptr;
  if (b1i >= 0 && !b1) return false;
  const int64_t F = w1->shape[1];
  if (w2->shape[0] != F || (b1 && b1->shape[0] != F)) return false;
  f->ip1 = ip1;
  f->ip2 = &ip2;
  f->zero_to_zero = z2z && post_zero_to_zero(*ip1);
  f->b1_index = b1i;
  f->w1 = w1;
  f->w2 = w2;
  f->b1 = b1;
  f->F = F;
  return true;
}

bool match_attention(Graph& g, OpInfo& pv, AttentionMatch* a) {
  *a = AttentionMatch();
  if (pv.type != "Matmul" || pv.inputs.size() != 2) return false;
  if (!perm_is(pv, "src0_perm", {0, 1, 2, 3}) || !perm_is(pv, "src1_perm", {0, 2, 1, 3}) ||
      !perm_is(pv, "dst_perm", {0, 2, 1, 3}))
    return false;
  OpInfo *rv = nullptr, *rq = nullptr, *rk = nullptr;
  OpInfo* ipv = head_branch(g, pv.inputs[1], &rv);
  if (!ipv || !g.single_use(pv.inputs[0])) return false;
  OpInfo* sm = g.prod(pv.inputs[0], "Softmax");
  if (!sm) return false;
  int64_t axis = sm->attr_int("axis", -1);
  if (axis != -1 && axis != 3) return false;
  if (!g.single_use(sm->inputs[0])) return false;
  OpInfo* qk = g.prod(sm->inputs[0], "Matmul");
  if (!qk || qk->inputs.size() < 2 || qk->inputs.size() > 3) return false;
  if (!perm_is(*qk, "src0_perm", {0, 2, 1, 3}) || !perm_is(*qk, "src1_perm", {0, 2, 3, 1}) ||
      !perm_is(*qk, "dst_perm", {0, 1, 2, 3}))
    return false;
  if (qk->inputs.size() == 3 && !mask_per_head_free(g, qk->inputs[2])) return false;
  OpInfo* ipq = head_branch(g, qk->inputs[0], &rq);
  OpInfo* ipk = head_branch(g, qk->inputs[1], &rk);
  if (!ipq || !ipk) return false;
  // Merge: Matmul -> Reshape [.., .., H*D] -> output InnerProduct (src).
  const std::string& ctx = pv.outputs[0];
  if (!g.single_use(ctx) || g.is_output(ctx)) return false;
  auto cons = g.consumers(ctx);
  if (cons.size() != 1 || cons[0]->type != "Reshape") return false;
  OpInfo* rm = cons[0];
  const std::string& merged = rm->outputs[0];
  if (!g.single_use(merged) || g.is_output(merged)) return false;
  auto cons2 = g.consumers(merged);
  if (cons2.size() != 1 || cons2[0]->type != "InnerProduct" || cons2[0]->inputs[0] != merged) return false;
  OpInfo* ipo = cons2[0];
  // Shapes.
  std::vector<int64_t> dq, dk, dv, dm;
  if (!reshape_dims(g, *rq, &dq) || !reshape_dims(g, *rk, &dk) || !reshape_dims(g, *rv, &dv) ||
      !reshape_dims(g, *rm, &dm))
    return false;
  if (dq.size() != 4 || dq != dk || dq != dv || dq[3] <= 0 || dm.size() != 3) return false;
  const int64_t D = dq[3];
  const TensorInfo *wq = own_f32(g, ipq->inputs[1], 2), *wk = own_f32(g, ipk->inputs[1], 2),
                   *wv = own_f32(g, ipv->inputs[1], 2), *wo = own_f32(g, ipo->inputs[1], 2);
  if (!wq || !wk || !wv || !wo) return false;
  const int64_t HD = wq->shape[1];
  if (HD % D || wk->shape[1] != HD || wv->shape[1] != HD || wo->shape[0] != HD) return false;
  const int64_t H = HD / D;
  if (dq[2] != H && dq[2] != -1) return false;
  if (dm[2] != HD && dm[2] != -1) return false;
  OpInfo* ips[3] = {ipq, ipk, ipv};
  OpInfo* rs[3] = {rq, rk, rv};
  const TensorInfo* ws[3] = {wq, wk, wv};
  for (int i = 0; i < 3; ++i) {
    a->ip[i] = ips[i];
    a->split[i] = rs[i];
    a->w[i] = ws[i];
    int bi = bias_index(*ips[i]);
    a->bias_idx[i] = bi;
    if (bi < 0) continue;
    a->bias[i] = own_f32(g, ips[i]->inputs[size_t(bi)], 1);
    if (!a->bias[i] || a->bias[i]->shape[0] != HD) return false;
  }
  a->pv = &pv;
  a->qk = qk;
  a->merge = rm;
  a->ipo = ipo;
  a->merged = merged;
  a->split_dims = dq;
  a->merge_dims = dm;
  a->D = D;
  a->H = H;
  a->HD = HD;
  a->wo = wo;
  return true;
}

}  // namespace pass
}  // namespace ne
