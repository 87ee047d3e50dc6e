// Model slim (see slim.hpp).
#include "compile/passes/slim.hpp"

#include <cstdio>
#include <cstring>
#include <map>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {

namespace {

using pass::Graph;

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
// Index of the bias input, or -1.
int bias_index(const OpInfo& ip) { return ip.inputs.size() == (has_sum(ip) ? 4u : 3u) ? 2 : -1; }

// A fp32 weight used only once in the graph, with the given rank.
const TensorInfo* own_f32(Graph& g, const std::string& name, size_t rank) {
  const TensorInfo* t = g.m.find(name);
  if (!t || !t->is_weight || !t->data || t->dtype != DType::fp32 || t->shape.size() != rank) return nullptr;
  if (g.uses(name) != 1) return nullptr;
  return t;
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

bool rows_zero(const TensorInfo& w, int64_t r0, int64_t r1) {
  const int64_t C = w.shape[1];
  for (int64_t i = r0 * C; i < r1 * C; ++i)
    if (w.as<float>()[i] != 0.f) return false;
  return true;
}
bool cols_zero(const TensorInfo& w, int64_t c0, int64_t c1) {
  const int64_t R = w.shape[0], C = w.shape[1];
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = c0; c < c1; ++c)
      if (w.as<float>()[r * C + c] != 0.f) return false;
  return true;
}
bool range_zero(const TensorInfo* b, int64_t i0, int64_t i1) {
  if (!b) return true;
  for (int64_t i = i0; i < i1; ++i)
    if (b->as<float>()[i] != 0.f) return false;
  return true;
}

// Updates a declared activation shape's last dim (when declared and equal to `from`).
void fix_last_dim(Model& m, const std::string& t, int64_t from, int64_t to) {
  auto it = m.tensors.find(t);
  if (it == m.tensors.end() || it->second.is_weight || !it->second.has_shape || it->second.shape.empty()) return;
  if (it->second.shape.back() == from) it->second.shape.back() = to;
}

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

std::string join(const std::vector<int64_t>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r;
}

// A Reshape's target shape (attr dst_shape, or a constant shape input).
bool reshape_dims(Graph& g, const OpInfo& r, std::vector<int64_t>* d) {
  if (r.inputs.size() >= 2) return g.const_ints(r.inputs[1], d);
  *d = r.attr_ints("dst_shape");
  return !d->empty();
}
void set_reshape_dims(Graph& g, OpInfo& r, const std::vector<int64_t>& d) {
  if (r.inputs.size() >= 2)
    r.inputs[1] = g.add_const(r.inputs[1] + "_slim", DType::int64, {int64_t(d.size())}, d);
  else
    r.set_attr("dst_shape", join(d));
}

int64_t model_weight_bytes(const Model& m) {
  int64_t b = 0;
  for (const auto& kv : m.tensors)
    if (kv.second.is_weight) b += int64_t(kv.second.nbytes);
  return b;
}
int64_t ip_macs(const Model& m) {
  int64_t s = 0;
  for (const auto& op : m.ops)
    if (op.type == "InnerProduct" && op.inputs.size() >= 2)
      if (const TensorInfo* w = m.find(op.inputs[1]); w && w->shape.size() == 2) s += w->shape[0] * w->shape[1];
  return s;
}

// ------------------------------------------------------------------------------------ FFN
void slim_ffn(Graph& g, OpInfo& ip2, SlimStats& st) {
  Model& m = g.m;
  if (ip2.inputs.size() < 2) return;
  // Walk back from ip2's src through single-use channel-wise ops to ip1.
  std::vector<std::string> chain;  // tensors between ip1 and ip2 (ip1's output first)
  bool z2z = true;
  std::string t = ip2.inputs[0];
  OpInfo* ip1 = nullptr;
  for (int depth = 0; depth < 4; ++depth) {
    if (!g.single_use(t) || g.is_output(t)) return;
    chain.insert(chain.begin(), t);
    OpInfo* p = g.prod(t);
    if (!p) return;
    if (p->type == "InnerProduct") {
      ip1 = p;
      break;
    }
    if (!channelwise_unary(*p, &z2z)) return;
    t = p->inputs[0];
  }
  if (!ip1 || ip1 == &ip2 || has_sum(*ip1) || ip1->inputs.size() < 2) return;
  const TensorInfo* w1 = own_f32(g, ip1->inputs[1], 2);
  const TensorInfo* w2 = own_f32(g, ip2.inputs[1], 2);
  if (!w1 || !w2) return;
  const int b1i = bias_index(*ip1);
  const TensorInfo* b1 = b1i >= 0 ? own_f32(g, ip1->inputs[size_t(b1i)], 1) : nullptr;
  if (b1i >= 0 && !b1) return;
  const int64_t F = w1->shape[1];
  if (w2->shape[0] != F || (b1 && b1->shape[0] != F)) return;
  z2z = z2z && post_zero_to_zero(*ip1);
  ++st.ffn_blocks;
  st.ffn_channels += F;
  std::vector<int64_t> keep;
  for (int64_t f = 0; f < F; ++f) {
    bool dead = rows_zero(*w2, f, f + 1) || (z2z && cols_zero(*w1, f, f + 1) && range_zero(b1, f, f + 1));
    if (!dead) keep.push_back(f);
  }
  if (keep.empty()) keep.push_back(0);
  if (int64_t(keep.size()) == F) return;
  const int64_t F2 = int64_t(keep.size());
  keep_cols(m, ip1->inputs[1], keep);
  if (b1) keep_rows(m, ip1->inputs[size_t(b1i)], keep);
  keep_rows(m, ip2.inputs[1], keep);
  for (auto& c : chain) fix_last_dim(m, c, F, F2);
  st.ffn_channels_removed += F - F2;
  char b[256];
  std::snprintf(b, sizeof b, "ffn %s -> %s: %lld of %lld channels removed", ip1->name.c_str(), ip2.name.c_str(),
                (long long)(F - F2), (long long)F);
  st.log.push_back(b);
}

// ------------------------------------------------------------------------------ attention
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

void slim_attention(Graph& g, OpInfo& pv, SlimStats& st) {
  Model& m = g.m;
  if (pv.type != "Matmul" || pv.inputs.size() != 2) return;
  if (!perm_is(pv, "src0_perm", {0, 1, 2, 3}) || !perm_is(pv, "src1_perm", {0, 2, 1, 3}) ||
      !perm_is(pv, "dst_perm", {0, 2, 1, 3}))
    return;
  OpInfo *rv = nullptr, *rq = nullptr, *rk = nullptr;
  OpInfo* ipv = head_branch(g, pv.inputs[1], &rv);
  if (!ipv || !g.single_use(pv.inputs[0])) return;
  OpInfo* sm = g.prod(pv.inputs[0], "Softmax");
  if (!sm) return;
  int64_t axis = sm->attr_int("axis", -1);
  if (axis != -1 && axis != 3) return;
  if (!g.single_use(sm->inputs[0])) return;
  OpInfo* qk = g.prod(sm->inputs[0], "Matmul");
  if (!qk || qk->inputs.size() < 2 || qk->inputs.size() > 3) return;
  if (!perm_is(*qk, "src0_perm", {0, 2, 1, 3}) || !perm_is(*qk, "src1_perm", {0, 2, 3, 1}) ||
      !perm_is(*qk, "dst_perm", {0, 1, 2, 3}))
    return;
  if (qk->inputs.size() == 3 && !mask_per_head_free(g, qk->inputs[2])) return;
  OpInfo* ipq = head_branch(g, qk->inputs[0], &rq);
  OpInfo* ipk = head_branch(g, qk->inputs[1], &rk);
  if (!ipq || !ipk) return;
  // Merge: Matmul -> Reshape [.., .., H*D] -> output InnerProduct (src).
  const std::string& ctx = pv.outputs[0];
  if (!g.single_use(ctx) || g.is_output(ctx)) return;
  auto cons = g.consumers(ctx);
  if (cons.size() != 1 || cons[0]->type != "Reshape") return;
  OpInfo* rm = cons[0];
  const std::string& merged = rm->outputs[0];
  if (!g.single_use(merged) || g.is_output(merged)) return;
  auto cons2 = g.consumers(merged);
  if (cons2.size() != 1 || cons2[0]->type != "InnerProduct" || cons2[0]->inputs[0] != merged) return;
  OpInfo* ipo = cons2[0];
  // Shapes.
  std::vector<int64_t> dq, dk, dv, dm;
  if (!reshape_dims(g, *rq, &dq) || !reshape_dims(g, *rk, &dk) || !reshape_dims(g, *rv, &dv) ||
      !reshape_dims(g, *rm, &dm))
    return;
  if (dq.size() != 4 || dq != dk || dq != dv || dq[3] <= 0 || dm.size() != 3) return;
  const int64_t D = dq[3];
  const TensorInfo *wq = own_f32(g, ipq->inputs[1], 2), *wk = own_f32(g, ipk->inputs[1], 2),
                   *wv = own_f32(g, ipv->inputs[1], 2), *wo = own_f32(g, ipo->inputs[1], 2);
  if (!wq || !wk || !wv || !wo) return;
  const int64_t HD = wq->shape[1];
  if (HD % D || wk->shape[1] != HD || wv->shape[1] != HD || wo->shape[0] != HD) return;
  const int64_t H = HD / D;
  if (dq[2] != H && dq[2] != -1) return;
  if (dm[2] != HD && dm[2] != -1) return;
  const TensorInfo* bias[3] = {nullptr, nullptr, nullptr};
  OpInfo* ips[3] = {ipq, ipk, ipv};
  for (int i = 0; i < 3; ++i) {
    int bi = bias_index(*ips[i]);
    if (bi < 0) continue;
    bias[i] = own_f32(g, ips[i]->inputs[size_t(bi)], 1);
    if (!bias[i] || bias[i]->shape[0] != HD) return;
  }
  ++st.attention_blocks;
  st.heads += H;
  std::vector<int64_t> keep_heads, keep_ch;
  for (int64_t h = 0; h < H; ++h) {
    bool v_zero = cols_zero(*wv, h * D, (h + 1) * D) && range_zero(bias[2], h * D, (h + 1) * D);
    bool o_zero = rows_zero(*wo, h * D, (h + 1) * D);
    if (!v_zero && !o_zero) keep_heads.push_back(h);
  }
  if (keep_heads.empty()) keep_heads.push_back(0);
  const int64_t H2 = int64_t(keep_heads.size());
  if (H2 == H) return;
  for (int64_t h : keep_heads)
    for (int64_t d = 0; d < D; ++d) keep_ch.push_back(h * D + d);
  for (int i = 0; i < 3; ++i) {
    keep_cols(m, ips[i]->inputs[1], keep_ch);
    if (bias[i]) keep_rows(m, ips[i]->inputs[size_t(bias_index(*ips[i]))], keep_ch);
    fix_last_dim(m, ips[i]->outputs[0], HD, H2 * D);
  }
  keep_rows(m, ipo->inputs[1], keep_ch);
  std::vector<int64_t> nd = dq;
  if (nd[2] == H) nd[2] = H2;
  for (OpInfo* r : {rq, rk, rv}) set_reshape_dims(g, *r, nd);
  if (dm[2] == HD) {
    dm[2] = H2 * D;
    set_reshape_dims(g, *rm, dm);
  }
  fix_last_dim(m, merged, HD, H2 * D);
  st.heads_removed += H - H2;
  char b[256];
  std::snprintf(b, sizeof b, "attention %s: %lld of %lld heads removed (head dim %lld)", pv.name.c_str(),
                (long long)(H - H2), (long long)H, (long long)D);
  st.log.push_back(b);
}

}  // namespace

std::string SlimStats::summary() const {
  char b[512];
  std::snprintf(b, sizeof b,
                "slim: FFN channels %lld of %lld removed (%d blocks); heads %lld of %lld removed (%d blocks); "
                "weights %.2f -> %.2f MB; InnerProduct MACs/token %lld -> %lld",
                (long long)ffn_channels_removed, (long long)ffn_channels, ffn_blocks, (long long)heads_removed,
                (long long)heads, attention_blocks, weight_bytes_before / 1e6, weight_bytes_after / 1e6,
                (long long)ip_macs_per_token_before, (long long)ip_macs_per_token_after);
  return b;
}

void slim_model(Model& m, SlimStats* stats) {
  SlimStats local;
  SlimStats& st = stats ? *stats : local;
  st = SlimStats();
  st.weight_bytes_before = model_weight_bytes(m);
  st.ip_macs_per_token_before = ip_macs(m);
  const int fused_attention = pass::unfuse_attention_op(m);  // heads are found on the 3-op form
  {
    Graph g(m);
    // Ops are edited in place (weights, attrs, a new shape constant); the op list keeps its
    // size and order, so the Graph's maps stay valid for the patterns still to visit.
    for (size_t i = 0; i < m.ops.size(); ++i)
      if (m.ops[i].type == "Matmul") slim_attention(g, m.ops[i], st);
    g.rebuild();
    for (size_t i = 0; i < m.ops.size(); ++i)
      if (m.ops[i].type == "InnerProduct") slim_ffn(g, m.ops[i], st);
  }
  if (fused_attention) pass::fuse_attention_op(m);
  if (st.ffn_channels_removed || st.heads_removed) pass::finalize_inputs(m);  // new / unused constants
  st.weight_bytes_after = model_weight_bytes(m);
  st.ip_macs_per_token_after = ip_macs(m);
}

int64_t canonicalize_zeros(Model& m) {
  int64_t changed = 0;
  std::map<std::string, bool> done;
  for (const OpInfo& op : m.ops) {
    if (op.type != "InnerProduct" || op.inputs.size() < 2 || done[op.inputs[1]]) continue;
    done[op.inputs[1]] = true;
    const TensorInfo* t = m.find(op.inputs[1]);
    if (!t || !t->is_weight || !t->data || (t->dtype != DType::fp32 && t->dtype != DType::bf16)) continue;
    const int64_t n = t->numel();
    int64_t c = 0;
    if (t->dtype == DType::fp32) {
      for (int64_t i = 0; i < n; ++i) c += t->as<uint32_t>()[i] == 0x80000000u;
    } else {
      for (int64_t i = 0; i < n; ++i) c += t->as<uint16_t>()[i] == 0x8000u;
    }
    if (!c) continue;
    std::vector<uint8_t> b(t->data, t->data + t->nbytes);
    if (t->dtype == DType::fp32) {
      uint32_t* p = reinterpret_cast<uint32_t*>(b.data());
      for (int64_t i = 0; i < n; ++i) if (p[i] == 0x80000000u) p[i] = 0;
    } else {
      uint16_t* p = reinterpret_cast<uint16_t*>(b.data());
      for (int64_t i = 0; i < n; ++i) if (p[i] == 0x8000u) p[i] = 0;
    }
    const DType dt = t->dtype;
    const Shape s = t->shape;
    m.add_weight(op.inputs[1], dt, s, std::move(b));
    changed += c;
  }
  return changed;
}

}  // namespace ne
