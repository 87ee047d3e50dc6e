// Transposed (feature-major) mode, `neural_engine_compile --transpose` (ARCHITECTURE.md
// "Transposed (feature-major) mode", docs/OPS.md "Feature-major mode").
//
// Runs on the fused graph after quantization. It recognises whole encoder layers
//
//   x ─┬─ IP q ─ Reshape [B,S,h,d] ─┐
//      ├─ IP k ─ Reshape ───────────┴ Matmul(src0_perm 0,2,1,3, src1_perm 0,2,3,1, [mask]) ─ Softmax ─┐
//      ├─ IP v ─ Reshape ──────────────────────────── Matmul(src1_perm 0,2,1,3, dst_perm 0,2,1,3) ───┘
//      │                                               ─ Reshape [B,S,H] ─ IP ao (sum x) ─ LayerNorm ln1 ─┬─ IP f1 ─ IP f2 (sum ln1) ─ LayerNorm ln2 ─ y
//      └──────────────────────────────────────────────────────────────────────────────────────────────────┘
//
// (any InnerProduct variant: fp32 / s8 / bf16 weights, sparse or dense), chains layers whose y
// is the next layer's x, and rewrites each chain so that its activations are [H, B, S]:
//   - Reorder(x0, perm 2,0,1) where the chain begins, Reorder(y_n, perm 1,2,0) where it ends
//     (writing the original tensor name, so the rest of the graph is unchanged);
//   - every InnerProduct gets `layout: feature_major` (src [K, B, S], dst [N, B, S], residual in
//     the same layout);
//   - LayerNorms get `transpose_mode: 1,0` (normalise dim 0);
//   - the head split is Reshape([H,B,S] -> [h,d,B,S]) and the merge Reshape([h,d,B,S] -> [H,B,S]),
//     with shapes Concat(const, Shape(x_t, 1, 3)) computed at plan time;
//   - scores = Matmul(Q, K, src0_perm 2,0,3,1, src1_perm 2,0,1,3) -> [B,h,S,S] (mask and scale
//     kept); context = Matmul(P, V, src1_perm 2,0,3,1, dst_perm 1,3,0,2) -> [h,d,B,S].
// Anything else is left alone, and the pass says why on stderr.
#include <cstdio>
#include <map>
#include <set>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"
#include "compile/quantize.hpp"

namespace ne {
namespace pass {

namespace {

struct Layer {
  std::string x, y;  // input (token-major, rank 3) and the ln2 output
  int q = -1, k = -1, v = -1, rq = -1, rk = -1, rv = -1, scores = -1, softmax = -1, ctx = -1, rc = -1,
      ao = -1, ln1 = -1, f1 = -1, f2 = -1, ln2 = -1;
  int64_t hidden = 0, heads = 0, head_dim = 0;
};

bool has_sum(const OpInfo& op) { return op.attr("append_op").find("sum") != std::string::npos; }
bool perm_is(const OpInfo& op, const char* key, const std::vector<int64_t>& want) {
  std::vector<int64_t> p = op.attr_ints(key);
  if (p.empty()) {
    for (size_t i = 0; i < want.size(); ++i)
      if (want[i] != int64_t(i)) return false;
    return true;
  }
  return p == want;
}

class Matcher {
 public:
  explicit Matcher(Graph& g) : g(g), m(g.m) {}
  std::string why;

  // An InnerProduct with a constant 2-D weight, token-major. N via *n.
  bool plain_ip(const OpInfo* op, int64_t* k, int64_t* n) {
    if (!op || op->type != "InnerProduct") return false;
    if (op->attr("layout", "token_major") != "token_major") return false;
    const TensorInfo* w = op->inputs.size() > 1 ? m.find(op->inputs[1]) : nullptr;
    if (!w || !w->is_weight || w->shape.size() != 2) return false;
    *k = w->shape[0];
    *n = w->shape[1];
    return true;
  }
  OpInfo* only_consumer(const std::string& t, const std::string& type) {
    if (!g.single_use(t) || g.is_output(t)) return nullptr;
    OpInfo* c = g.consumers(t)[0];
    return c->type == type ? c : nullptr;
  }
  int idx(const OpInfo* op) { return g.index_of(op); }
  bool fail(const std::string& w) {
    why = w;
    return false;
  }
  // Target shape of a head-split Reshape: 4 values, the last two (heads, head_dim).
  bool split_shape(const OpInfo* r, int64_t hidden, int64_t* heads, int64_t* d) {
    std::vector<int64_t> s;
    if (r->inputs.size() > 1 && !r->inputs[1].empty()) {
      if (!g.const_ints(r->inputs[1], &s)) return false;
    } else {
      s = r->attr_ints("dst_shape");
    }
    if (s.size() != 4) return false;
    int64_t h = s[2], dd = s[3];
    if (h == -1 && dd > 0 && hidden % dd == 0) h = hidden / dd;
    if (dd == -1 && h > 0 && hidden % h == 0) dd = hidden / h;
    if (h <= 0 || dd <= 0 || h * dd != hidden) return false;
    *heads = h;
    *d = dd;
    return true;
  }
  bool layernorm(const OpInfo* ln, int64_t hidden) {
    if (!ln || ln->type != "LayerNorm" || ln->has_attr("transpose_mode")) return false;
    const int64_t a = ln->attr_int("axis", -1);
    if (a != -1 && a != 2) return false;
    for (size_t i = 1; i < ln->inputs.size(); ++i) {
      const TensorInfo* t = m.find(ln->inputs[i]);
      if (!t || !t->is_weight || t->numel() != hidden) return false;
    }
    return ln->inputs.size() >= 2;
  }

  bool match(const std::string& x, Layer* L) {
    L->x = x;
    if (g.is_output(x)) return fail("'" + x + "' is a model output");
    std::vector<OpInfo*> cons = g.consumers(x);
    if (cons.size() != 4) return fail("'" + x + "' has " + std::to_string(cons.size()) + " readers, not 4 (q, k, v, residual)");
    std::vector<OpInfo*> proj;
    OpInfo* ao = nullptr;
    for (OpInfo* c : cons) {
      int64_t K, N;
      if (!plain_ip(c, &K, &N)) return fail("reader '" + c->name + "' of '" + x + "' is not a token-major InnerProduct");
      if (has_sum(*c)) {
        if (c->inputs.back() != x || c->inputs[0] == x || ao) return fail("residual InnerProduct '" + c->name + "' not recognised");
        ao = c;
      } else {
        if (c->inputs[0] != x || !c->attr("append_op").empty()) return fail("projection '" + c->name + "' has post-ops or reads x elsewhere");
        proj.push_back(c);
      }
    }
    if (proj.size() != 3 || !ao) return fail("'" + x + "' is not read by q, k, v and a residual InnerProduct");
    int64_t Kx = 0, H = 0;
    plain_ip(proj[0], &Kx, &H);
    L->hidden = Kx;
    OpInfo *scores = nullptr, *ctx = nullptr;
    for (OpInfo* p : proj) {
      int64_t K, N;
      plain_ip(p, &K, &N);
      if (K != Kx || N != Kx) return fail("projection '" + p->name + "' is not [H, H]");
      OpInfo* r = only_consumer(p->outputs[0], "Reshape");
      if (!r || r->inputs[0] != p->outputs[0]) return fail("projection '" + p->name + "' is not followed by one Reshape");
      int64_t h, d;
      if (!split_shape(r, Kx, &h, &d)) return fail("Reshape '" + r->name + "' is not a [B,S,heads,head_dim] split");
      if (L->heads && (h != L->heads || d != L->head_dim)) return fail("heads differ between q, k, v");
      L->heads = h, L->head_dim = d;
      OpInfo* mm = only_consumer(r->outputs[0], "Matmul");
      if (!mm) return fail("Reshape '" + r->name + "' is not read by one Matmul");
      if (mm->inputs[0] == r->outputs[0] && perm_is(*mm, "src0_perm", {0, 2, 1, 3})) {
        if (L->q >= 0) return fail("two q");
        L->q = idx(p), L->rq = idx(r), scores = mm;
      } else if (mm->inputs.size() > 1 && mm->inputs[1] == r->outputs[0] && perm_is(*mm, "src1_perm", {0, 2, 3, 1})) {
        if (L->k >= 0) return fail("two k");
        L->k = idx(p), L->rk = idx(r);
        if (scores && scores != mm) return fail("q and k feed different Matmuls");
        scores = mm;
      } else if (mm->inputs.size() == 2 && mm->inputs[1] == r->outputs[0] && perm_is(*mm, "src1_perm", {0, 2, 1, 3}) &&
                 perm_is(*mm, "dst_perm", {0, 2, 1, 3}) && perm_is(*mm, "src0_perm", {0, 1, 2, 3})) {
        if (L->v >= 0) return fail("two v");
        L->v = idx(p), L->rv = idx(r), ctx = mm;
      } else {
        return fail("Matmul '" + mm->name + "' after projection '" + p->name + "' has unexpected inputs or perms");
      }
    }
    if (L->q < 0 || L->k < 0 || L->v < 0) return fail("q, k, v not all found");
    if (scores->inputs[0] != m.ops[L->rq].outputs[0] || scores->inputs[1] != m.ops[L->rk].outputs[0] ||
        !perm_is(*scores, "dst_perm", {0, 1, 2, 3}))
      return fail("scores Matmul '" + scores->name + "' not recognised");
    if (scores->inputs.size() > 2 && scores->attr("append_op") != "binary_add")
      return fail("scores Matmul '" + scores->name + "' has a third input but no binary_add");
    OpInfo* sm = only_consumer(scores->outputs[0], "Softmax");
    if (!sm || (sm->attr_int("axis", -1) != -1 && sm->attr_int("axis", -1) != 3)) return fail("no Softmax on the last axis after the scores");
    if (only_consumer(sm->outputs[0], "Matmul") != ctx || ctx->inputs[0] != sm->outputs[0])
      return fail("Softmax output is not the context Matmul's first input");
    OpInfo* rc = only_consumer(ctx->outputs[0], "Reshape");
    if (!rc) return fail("context Matmul '" + ctx->name + "' is not followed by one Reshape");
    if (only_consumer(rc->outputs[0], "InnerProduct") != ao || ao->inputs[0] != rc->outputs[0])
      return fail("head merge Reshape '" + rc->name + "' does not feed the residual InnerProduct");
    int64_t K, N;
    plain_ip(ao, &K, &N);
    if (K != Kx || N != Kx) return fail("attention output '" + ao->name + "' is not [H, H]");
    L->scores = idx(scores), L->softmax = idx(sm), L->ctx = idx(ctx), L->rc = idx(rc), L->ao = idx(ao);
    // FFN.
    OpInfo* ln1 = only_consumer(ao->outputs[0], "LayerNorm");
    if (!ln1 || ln1->inputs[0] != ao->outputs[0] || !layernorm(ln1, Kx)) return fail("no LayerNorm after '" + ao->name + "'");
    const std::string& a = ln1->outputs[0];
    std::vector<OpInfo*> lc = g.consumers(a);
    if (g.is_output(a) || lc.size() != 2) return fail("LayerNorm '" + ln1->name + "' output is not read by the FFN only");
    OpInfo *f1 = nullptr, *f2 = nullptr;
    for (OpInfo* c : lc) {
      int64_t k2, n2;
      if (!plain_ip(c, &k2, &n2)) return fail("reader '" + c->name + "' of '" + a + "' is not a token-major InnerProduct");
      if (has_sum(*c)) f2 = c;
      else f1 = c;
    }
    if (!f1 || !f2 || f1->inputs[0] != a || f2->inputs.back() != a || f2->inputs[0] != f1->outputs[0] ||
        !g.single_use(f1->outputs[0]) || g.is_output(f1->outputs[0]))
      return fail("FFN after '" + ln1->name + "' not recognised");
    int64_t k1, n1, k2, n2;
    plain_ip(f1, &k1, &n1);
    plain_ip(f2, &k2, &n2);
    if (k1 != Kx || k2 != n1 || n2 != Kx) return fail("FFN weights are not [H, F], [F, H]");
    OpInfo* ln2 = only_consumer(f2->outputs[0], "LayerNorm");
    if (!ln2 || ln2->inputs[0] != f2->outputs[0] || !layernorm(ln2, Kx)) return fail("no LayerNorm after '" + f2->name + "'");
    L->ln1 = idx(ln1), L->f1 = idx(f1), L->f2 = idx(f2), L->ln2 = idx(ln2);
    L->y = ln2->outputs[0];
    return true;
  }

 private:
  Graph& g;
  Model& m;
};

std::string join(const std::vector<int64_t>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r;
}


}  // namespace

namespace {
int transpose_layers(Model& m, bool log);
}  // namespace

// The layer pattern is matched on Matmul -> Softmax -> Matmul: a model whose attention is
// already one Attention op (a compiled IR) is unfused first and fused again after.
// Likewise LayerNorms that quantize their output (fuse_layernorm_quantize): unfused into
// LayerNorm + Quantize, which unshare_src_quantization undoes; after the rewrite only the
// token-major LayerNorms take their Quantize back (the feature-major ones keep it separate).
int transpose_encoder(Model& m, bool log) {
  const int fused = unfuse_attention_op(m);
  const int ln_quant = unfuse_layernorm_quantize(m);
  const int shared = unshare_src_quantization(m);  // Q, K, V read the LayerNorm output directly
  const int layers = transpose_layers(m, log);
  if (shared) share_src_quantization(m);
  if (ln_quant) fuse_layernorm_quantize(m);
  if (fused) fuse_attention_op(m);
  return layers;
}

namespace {
int transpose_layers(Model& m, bool log) {
  Graph g(m);
  Matcher mt(g);
  // Candidate layer inputs: the src of every token-major InnerProduct, in order.
  std::map<std::string, Layer> by_x;
  std::vector<std::string> order;
  std::set<std::string> tried;
  std::map<std::string, std::string> failed;  // x -> why
  for (auto& op : m.ops) {
    if (op.type != "InnerProduct" || op.inputs.empty() || !tried.insert(op.inputs[0]).second) continue;
    Layer L;
    if (mt.match(op.inputs[0], &L)) {
      by_x[L.x] = L;
      order.push_back(L.x);
    } else if (g.uses(op.inputs[0]) >= 3) {
      failed[op.inputs[0]] = mt.why;
    }
  }
  if (by_x.empty()) {
    if (log) {
      std::fprintf(stderr, "[transpose] no encoder layer recognised; graph left token-major\n");
      for (auto& f : failed) std::fprintf(stderr, "[transpose]   at '%s': %s\n", f.first.c_str(), f.second.c_str());
    }
    return 0;
  }
  std::set<std::string> ys;
  for (auto& kv : by_x) ys.insert(kv.second.y);

  std::map<int, std::vector<OpInfo>> after;  // ops to insert after op index
  std::set<std::string> touched;             // tensors whose shape changes (drop declared info)
  int chains = 0, layers = 0;
  for (const std::string& x0 : order) {
    if (ys.count(x0)) continue;  // not a chain start
    if (g.rank_of(x0) != 3) {
      if (log)
        std::fprintf(stderr, "[transpose] layer input '%s' is not known to be rank 3 [B, S, H]; chain left token-major\n",
                     x0.c_str());
      continue;
    }
    std::vector<Layer> chain;
    for (std::string x = x0; by_x.count(x);) {
      chain.push_back(by_x[x]);
      x = chain.back().y;
      if (chain.size() > by_x.size()) break;
    }
    ++chains;
    const std::string tag = "fm" + std::to_string(chains);
    // Chain entry: x_t = Reorder(x0) [H, B, S]; bs = Shape(x_t)[1:3]; shapes for the head
    // split and merge.
    const std::string xt = g.new_name(x0 + "_" + tag);
    const std::string bs = g.new_name(tag + "_bs");
    std::vector<OpInfo> pre;
    pre.push_back(make_op(g.new_op_name(tag + "_reorder_in"), "Reorder", {x0}, {xt}, {{"perm", "2,0,1"}}));
    pre.push_back(make_op(g.new_op_name(tag + "_shape"), "Shape", {xt}, {bs}, {{"start", "1"}, {"end", "3"}}));
    std::map<std::pair<int64_t, int64_t>, std::string> split_shapes;
    std::map<int64_t, std::string> merge_shapes;
    auto concat_shape = [&](std::vector<int64_t> head) {
      const std::string c = g.add_const(tag + "_dims", DType::int64, {int64_t(head.size())}, head);
      const std::string s = g.new_name(tag + "_shape_" + join(head));
      pre.push_back(make_op(g.new_op_name(tag + "_concat_" + join(head)), "Concat", {c, bs}, {s}, {{"axis", "0"}}));
      return s;
    };
    std::string cur = xt;
    for (size_t li = 0; li < chain.size(); ++li) {
      const Layer& L = chain[li];
      auto key = std::make_pair(L.heads, L.head_dim);
      if (!split_shapes.count(key)) split_shapes[key] = concat_shape({L.heads, L.head_dim});
      if (!merge_shapes.count(L.hidden)) merge_shapes[L.hidden] = concat_shape({L.hidden});
      for (int i : {L.q, L.k, L.v, L.f1}) {
        m.ops[i].inputs[0] = i == L.f1 ? m.ops[i].inputs[0] : cur;
        m.ops[i].set_attr("layout", "feature_major");
      }
      for (int i : {L.rq, L.rk, L.rv}) {
        m.ops[i].inputs = {m.ops[i].inputs[0], split_shapes[key]};
        m.ops[i].erase_attr("dst_shape");
        m.ops[i].erase_attr("allowzero");
      }
      m.ops[L.rc].inputs = {m.ops[L.rc].inputs[0], merge_shapes[L.hidden]};
      m.ops[L.rc].erase_attr("dst_shape");
      m.ops[L.rc].erase_attr("allowzero");
      m.ops[L.scores].set_attr("src0_perm", "2,0,3,1");
      m.ops[L.scores].set_attr("src1_perm", "2,0,1,3");
      m.ops[L.ctx].set_attr("src1_perm", "2,0,3,1");
      m.ops[L.ctx].set_attr("dst_perm", "1,3,0,2");
      m.ops[L.ao].inputs.back() = cur;
      m.ops[L.ao].set_attr("layout", "feature_major");
      m.ops[L.f2].set_attr("layout", "feature_major");
      for (int i : {L.ln1, L.ln2}) {
        m.ops[i].erase_attr("axis");
        m.ops[i].set_attr("transpose_mode", "1,0");
      }
      for (int i : {L.q, L.k, L.v, L.rq, L.rk, L.rv, L.ctx, L.rc, L.ao, L.ln1, L.f1, L.f2, L.ln2})
        touched.insert(m.ops[i].outputs[0]);
      cur = L.y;
      ++layers;
    }
    // Chain exit: the last LayerNorm writes y_t; Reorder(y_t) writes the original name.
    const Layer& last = chain.back();
    const std::string yt = g.new_name(last.y + "_" + tag);
    m.ops[last.ln2].outputs[0] = yt;
    touched.erase(last.y);  // written token-major again, by the exit Reorder
    after[last.ln2].push_back(
        make_op(g.new_op_name(tag + "_reorder_out"), "Reorder", {yt}, {last.y}, {{"perm", "1,2,0"}}));
    // The entry ops go right before the first op of the chain (all its inputs exist there).
    int first = m.ops.size();
    for (int i : {chain[0].q, chain[0].k, chain[0].v, chain[0].ao}) first = std::min(first, i);
    auto& slot = after[first - 1];
    slot.insert(slot.begin(), pre.begin(), pre.end());
    if (log)
      std::fprintf(stderr, "[transpose] chain %d: %zu encoder layers from '%s' to '%s' feature-major (2 Reorders)\n",
                   chains, chain.size(), x0.c_str(), last.y.c_str());
  }
  if (!layers) return 0;
  std::vector<OpInfo> ops;
  ops.reserve(m.ops.size() + 16);
  for (int i = 0; i < int(m.ops.size()); ++i) {
    ops.push_back(m.ops[size_t(i)]);
    auto it = after.find(i);
    if (it != after.end()) ops.insert(ops.end(), it->second.begin(), it->second.end());
  }
  m.ops = std::move(ops);
  for (auto& t : touched) {
    auto it = m.tensors.find(t);
    if (it != m.tensors.end() && !it->second.is_weight) m.tensors.erase(it);
  }
  return layers;
}

}  // namespace

}  // namespace pass
}  // namespace ne
