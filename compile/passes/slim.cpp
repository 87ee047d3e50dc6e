// Model slim (see slim.hpp).
#include "compile/passes/slim.hpp"

#include <cstdio>
#include <cstring>
#include <map>

#include "compile/passes/graph.hpp"
#include "compile/passes/layer_match.hpp"
#include "compile/passes/passes.hpp"
#include "kernels/sparse_gemm/sparsity.hpp"

namespace ne {

namespace {

using pass::Graph;
using pass::keep_cols;
using pass::keep_rows;

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

std::string join(const std::vector<int64_t>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r;
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
  pass::FfnMatch f;
  if (!pass::match_ffn(g, ip2, &f)) return;
  const int64_t F = f.F;
  ++st.ffn_blocks;
  st.ffn_channels += F;
  std::vector<int64_t> keep;
  for (int64_t c = 0; c < F; ++c) {
    bool dead = rows_zero(*f.w2, c, c + 1) || (f.zero_to_zero && cols_zero(*f.w1, c, c + 1) && range_zero(f.b1, c, c + 1));
    if (!dead) keep.push_back(c);
  }
  if (keep.empty()) keep.push_back(0);
  if (int64_t(keep.size()) == F) return;
  const int64_t F2 = int64_t(keep.size());
  keep_cols(m, f.ip1->inputs[1], keep);
  if (f.b1) keep_rows(m, f.ip1->inputs[size_t(f.b1_index)], keep);
  keep_rows(m, ip2.inputs[1], keep);
  for (auto& c : f.chain) fix_last_dim(m, c, F, F2);
  st.ffn_channels_removed += F - F2;
  char b[256];
  std::snprintf(b, sizeof b, "ffn %s -> %s: %lld of %lld channels removed", f.ip1->name.c_str(), ip2.name.c_str(),
                (long long)(F - F2), (long long)F);
  st.log.push_back(b);
}

// ------------------------------------------------------------------------------ attention
void slim_attention(Graph& g, OpInfo& pv, SlimStats& st) {
  Model& m = g.m;
  pass::AttentionMatch a;
  if (!pass::match_attention(g, pv, &a)) return;
  const int64_t D = a.D, H = a.H, HD = a.HD;
  const TensorInfo* const* bias = a.bias;
  ++st.attention_blocks;
  st.heads += H;
  std::vector<int64_t> keep_heads, keep_ch;
  for (int64_t h = 0; h < H; ++h) {
    bool v_zero = cols_zero(*a.w[2], h * D, (h + 1) * D) && range_zero(bias[2], h * D, (h + 1) * D);
    bool o_zero = rows_zero(*a.wo, h * D, (h + 1) * D);
    if (!v_zero && !o_zero) keep_heads.push_back(h);
  }
  if (keep_heads.empty()) keep_heads.push_back(0);
  const int64_t H2 = int64_t(keep_heads.size());
  if (H2 == H) return;
  for (int64_t h : keep_heads)
    for (int64_t d = 0; d < D; ++d) keep_ch.push_back(h * D + d);
  for (int i = 0; i < 3; ++i) {
    keep_cols(m, a.ip[i]->inputs[1], keep_ch);
    if (bias[i]) keep_rows(m, a.ip[i]->inputs[size_t(a.bias_idx[i])], keep_ch);
    fix_last_dim(m, a.ip[i]->outputs[0], HD, H2 * D);
  }
  keep_rows(m, a.ipo->inputs[1], keep_ch);
  std::vector<int64_t> nd = a.split_dims;
  if (nd[2] == H) nd[2] = H2;
  for (OpInfo* r : a.split) set_reshape_dims(g, *r, nd);
  std::vector<int64_t> dm = a.merge_dims;
  if (dm[2] == HD) {
    dm[2] = H2 * D;
    set_reshape_dims(g, *a.merge, dm);
  }
  fix_last_dim(m, a.merged, HD, H2 * D);
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
    const sparse::DType sdt = t->dtype == DType::fp32 ? sparse::DType::f32 : sparse::DType::bf16;
    std::vector<uint8_t> b;
    int64_t c = 0;
    if (sparse::canonical_zeros(t->data, sdt, size_t(t->numel()), &b, &c) == t->data) continue;
    const DType dt = t->dtype;
    const Shape s = t->shape;
    m.add_weight(op.inputs[1], dt, s, std::move(b));
    changed += c;
  }
  return changed;
}

}  // namespace ne
