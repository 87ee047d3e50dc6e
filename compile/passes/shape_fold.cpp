// Shape-chain folding. Dynamic-axis exports compute shapes at run time:
//   Shape(x) -> Gather(i) -> Unsqueeze -> Concat(.., consts) -> Reshape(y, ·)
// Each element of such a value is either a constant or "dim j of tensor t". A Reshape whose
// shape is made only of constants and of dims of its own input at the same position becomes a
// Reshape with `dst_shape` (0 = copy the input dim, one unknown -> -1), so it follows the run-time
// batch and sequence. Other shape inputs (Slice ends, Expand, ...) that are consecutive dims of one
// tensor become one Shape(start, end) op (computed at plan time by the executor).
#include <utility>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {

struct Elem {
  bool is_const = true;
  int64_t v = 0;       // constant value
  std::string t;       // dim `idx` of tensor `t`
  int64_t idx = 0;
};
struct Value {
  std::vector<Elem> e;
  bool scalar = false;
  // Shape(t) of a tensor of unknown rank: dims start, start+1, ... (only Gather may read it).
  bool open = false;
  std::string t;
  int64_t start = 0;
};

bool resolve_any(Graph& g, const std::string& name, Value* out, int depth);
bool resolve(Graph& g, const std::string& name, Value* out, int depth = 0) {
  return resolve_any(g, name, out, depth) && !out->open;
}
bool resolve_any(Graph& g, const std::string& name, Value* out, int depth) {
  if (depth > 32) return false;
  std::vector<int64_t> c;
  if (g.const_ints(name, &c)) {
    const TensorInfo* w = g.m.find(name);
    if (w->shape.size() > 1) return false;
    out->scalar = w->shape.empty();
    out->e.clear();
    for (auto v : c) out->e.push_back(Elem{true, v, "", 0});
    return true;
  }
  OpInfo* p = g.prod(name);
  if (!p || p->outputs.size() != 1) return false;
  const std::string& ty = p->type;
  if (ty == "Shape") {
    int r = g.rank_of(p->inputs[0]);
    int64_t start = p->attr_int("start", 0), end = p->has_attr("end") ? p->attr_int("end", 0) : INT64_MAX;
    if (r >= 0) {
      if (start < 0) start += r;
      if (end < 0) end += r;
      start = std::max<int64_t>(0, std::min<int64_t>(start, r));
      end = std::max<int64_t>(0, std::min<int64_t>(end, r));
    } else if (start >= 0 && end == INT64_MAX) {
      *out = Value();
      out->open = true;
      out->t = p->inputs[0];
      out->start = start;
      return true;
    } else if (start < 0 || end < 0) {
      return false;
    }
    out->scalar = false;
    out->e.clear();
    for (int64_t i = start; i < end; ++i) out->e.push_back(Elem{false, 0, p->inputs[0], i});
    return true;
  }
  if (ty == "Gather" && p->attr_int("axis", 0) == 0 && p->inputs.size() == 2) {
    Value d;
    std::vector<int64_t> idx;
    if (!resolve_any(g, p->inputs[0], &d, depth + 1) || d.scalar || !g.const_ints(p->inputs[1], &idx))
      return false;
    const TensorInfo* iw = g.m.find(p->inputs[1]);
    if (iw->shape.size() > 1) return false;
    out->scalar = iw->shape.empty();
    out->e.clear();
    if (d.open) {
      for (auto i : idx) {
        if (i < 0) return false;
        out->e.push_back(Elem{false, 0, d.t, d.start + i});
      }
      return true;
    }
    for (auto i : idx) {
      if (i < 0) i += int64_t(d.e.size());
      if (i < 0 || i >= int64_t(d.e.size())) return false;
      out->e.push_back(d.e[size_t(i)]);
    }
    return true;
  }
  if (ty == "Unsqueeze" || ty == "Squeeze") {
    Value d;
    if (!resolve(g, p->inputs[0], &d, depth + 1)) return false;
    std::vector<int64_t> axes = p->attr_ints("axes");
    if (!p->has_attr("axes") && p->inputs.size() > 1 && !g.const_ints(p->inputs[1], &axes)) return false;
    if (ty == "Unsqueeze") {
      if (!d.scalar || axes.size() != 1 || (axes[0] != 0 && axes[0] != -1)) return false;
      d.scalar = false;
    } else {
      if (d.scalar || d.e.size() != 1 || (!axes.empty() && (axes.size() != 1 || (axes[0] != 0 && axes[0] != -1))))
        return false;
      d.scalar = true;
    }
    *out = d;
    return true;
  }
  if (ty == "Concat") {
    if (p->attr_int("axis", 0) != 0 && p->attr_int("axis", 0) != -1) return false;
    out->e.clear();
    out->scalar = false;
    for (auto& i : p->inputs) {
      Value d;
      if (!resolve(g, i, &d, depth + 1) || d.scalar) return false;
      out->e.insert(out->e.end(), d.e.begin(), d.e.end());
    }
    return true;
  }
  if (ty == "Reshape" && p->inputs.size() == 2) {  // a 1-D value reshaped to [-1] / [n]: itself
    Value d;
    std::vector<int64_t> sh;
    if (!g.const_ints(p->inputs[1], &sh) || sh.size() != 1) return false;
    if (!resolve(g, p->inputs[0], &d, depth + 1) || d.scalar) return false;
    if (sh[0] != -1 && sh[0] != int64_t(d.e.size())) return false;
    *out = d;
    return true;
  }
  if (ty == "Where" && p->inputs.size() == 3) {
    // torch's expand(): Where(Equal(s, ConstantOfShape(Shape(s)) * -1), ones, s) replaces -1
    // entries of s by 1; a shape made of dims and non-negative constants has none: s itself.
    Value d;
    if (!resolve(g, p->inputs[2], &d, depth + 1) || d.scalar) return false;
    for (auto& e : d.e)
      if (e.is_const && e.v < 0) return false;
    OpInfo* eq = g.prod(p->inputs[0]);
    if (!is_binary(eq, "equal") || eq->inputs[0] != p->inputs[2]) return false;
    OpInfo* mul = g.prod(eq->inputs[1]);
    double c;
    std::string v;
    if (!is_binary(mul, "mul") || !split_const(g, mul, &v, &c) || c != -1) return false;
    OpInfo* cos = g.prod(v, "ConstantOfShape");
    if (!cos || cos->attr_float("value", 0) != 1) return false;
    *out = d;
    return true;
  }
  if (ty == "Cast") {
    std::string to = p->attr("to");
    if (to != "int64" && to != "int32") return false;
    return resolve(g, p->inputs[0], out, depth + 1);
  }
  if (ty == "Identity") return resolve(g, p->inputs[0], out, depth + 1);
  if (ty == "Reshape" && p->inputs.size() == 1 && p->has_attr("dst_shape")) {
    // fold_unsqueeze's views: scalar -> [1] (an Unsqueeze) and [1] -> scalar (a Squeeze).
    Value d;
    if (!resolve(g, p->inputs[0], &d, depth + 1) || d.e.size() != 1) return false;
    std::vector<int64_t> s = p->attr_ints("dst_shape");
    if (s.size() == 1 && (s[0] == 1 || s[0] == -1)) d.scalar = false;
    else if (s.empty() && p->attr("dst_shape").empty()) d.scalar = true;
    else return false;
    *out = d;
    return true;
  }
  if (ty == "Slice" && p->inputs.size() >= 3) {
    Value d;
    std::vector<int64_t> st, en, ax{0}, sp{1};
    if (!resolve(g, p->inputs[0], &d, depth + 1) || d.scalar) return false;
    if (!g.const_ints(p->inputs[1], &st) || !g.const_ints(p->inputs[2], &en)) return false;
    if (p->inputs.size() > 3 && !p->inputs[3].empty() && !g.const_ints(p->inputs[3], &ax)) return false;
    if (p->inputs.size() > 4 && !p->inputs[4].empty() && !g.const_ints(p->inputs[4], &sp)) return false;
    if (st.size() != 1 || en.size() != 1 || ax.size() != 1 || sp.size() != 1) return false;
    if ((ax[0] != 0 && ax[0] != -1) || sp[0] != 1) return false;
    int64_t n = int64_t(d.e.size()), s = st[0], e = en[0];
    if (s < 0) s += n;
    if (e < 0) e += n;
    s = std::max<int64_t>(0, std::min(s, n));
    e = std::max<int64_t>(0, std::min(e, n));
    out->scalar = false;
    out->e.assign(d.e.begin() + s, d.e.begin() + std::max(s, e));
    return true;
  }
  return false;
}

// The tensor and dim that dim j of t provably equals, walking back through ops that keep that
// dim: element-wise ops, token-major InnerProducts (all dims but the last), Reorders, Reshape
// views copying the dim (dst_shape 0), Matmuls (batch dims from both operands when they agree,
// the row dim from the first, the column dim from the second; a mask input is the product's
// post-op). DistilBERT's head split / merge Reshapes take the batch from the layer input while
// reshaping the projections: this lets them fold like BERT's.
std::pair<std::string, int64_t> dim_root(Graph& g, std::string t, int64_t j, int depth = 0) {
  for (; depth < 64; ++depth) {
    OpInfo* p = g.prod(t);
    if (!p || p->inputs.empty() || j < 0) break;
    const std::string& ty = p->type;
    if (ty == "LayerNorm" || ty == "Cast" || ty == "UnaryOp" || ty == "Gelu" || ty == "Softmax" ||
        ty == "Identity" || ty == "Clip") {
      if (ty == "LayerNorm" && p->has_attr("transpose_mode")) break;
      t = p->inputs[0];
    } else if (ty == "InnerProduct") {
      if (p->attr("layout", "token_major") != "token_major" || p->has_attr("src1_perm")) break;
      const int r = g.rank_of(p->inputs[0]);
      if (r < 2 || j >= r - 1) break;
      t = p->inputs[0];
    } else if (ty == "Reorder") {
      std::vector<int64_t> perm = p->attr_ints("perm");
      if (j >= int64_t(perm.size())) break;
      j = perm.at(size_t(j));
      t = p->inputs[0];
    } else if (ty == "Reshape" && p->inputs.size() == 1 && p->has_attr("dst_shape")) {
      std::vector<int64_t> d = p->attr_ints("dst_shape");
      if (j >= int64_t(d.size()) || d.at(size_t(j)) != 0 || p->attr_int("allowzero", 0)) break;
      t = p->inputs[0];
    } else if (ty == "BinaryAdd" || ty == "BinaryOp") {
      if (p->inputs.size() != 2) break;
      const int r = g.rank_of(p->outputs[0]);
      const int ra = g.rank_of(p->inputs[0]), rb = g.rank_of(p->inputs[1]);
      if (r < 0 || ra != r || j >= r) break;
      if (g.is_const(p->inputs[1])) {  // a constant operand of rank <= r broadcasting as 1
        const TensorInfo* c = g.m.find(p->inputs[1]);
        const int64_t jc = j - (r - int64_t(c->shape.size()));
        if (jc >= 0 && c->shape.at(size_t(jc)) != 1) break;
        t = p->inputs[0];
        continue;
      }
      if (rb != r) break;
      auto a = dim_root(g, p->inputs[0], j, depth + 1), b = dim_root(g, p->inputs[1], j, depth + 1);
      if (a != b) break;
      return a;
    } else if (ty == "Matmul") {
      const int r = g.rank_of(p->inputs[0]);
      if (r < 2 || g.rank_of(p->inputs[1]) != r || j >= r) break;
      auto perm = [&](const char* k) {
        std::vector<int64_t> v = p->attr_ints(k);
        if (v.empty())
          for (int i = 0; i < r; ++i) v.push_back(i);
        return v;
      };
      std::vector<int64_t> pd = perm("dst_perm"), p0 = perm("src0_perm"), p1 = perm("src1_perm");
      if (int(pd.size()) != r || int(p0.size()) != r || int(p1.size()) != r) break;
      const int64_t jp = pd.at(size_t(j));
      if (jp == r - 2) {
        t = p->inputs[0], j = p0.at(size_t(jp));
      } else if (jp == r - 1) {
        t = p->inputs[1], j = p1.at(size_t(jp));
      } else {
        auto a = dim_root(g, p->inputs[0], p0.at(size_t(jp)), depth + 1);
        auto b = dim_root(g, p->inputs[1], p1.at(size_t(jp)), depth + 1);
        if (a != b) break;
        return a;
      }
    } else {
      break;
    }
  }
  return {t, j};
}

}  // namespace

int fold_shapes(Model& m) {
  int n = 0;
  Graph g(m);
  // Reshape(x, shape-chain) -> Reshape(x) dst_shape.
  for (auto& op : m.ops) {
    if (op.type != "Reshape" || op.inputs.size() != 2 || g.is_const(op.inputs[1])) continue;
    Value v;
    if (!resolve(g, op.inputs[1], &v) || v.scalar) continue;
    bool allowzero = op.attr_int("allowzero", 0) != 0;
    std::vector<int64_t> dst;
    int unknown = -1, n_unknown = 0;
    bool has_infer = false, ok = true;
    for (size_t i = 0; i < v.e.size(); ++i) {
      const Elem& e = v.e[i];
      if (e.is_const) {
        if (e.v == -1) has_infer = true;
        if (e.v == 0 && allowzero) {}  // literal zero: kept
        dst.push_back(e.v);
      } else if (!allowzero && ((e.t == op.inputs[0] && e.idx == int64_t(i)) ||
                                dim_root(g, e.t, e.idx) == dim_root(g, op.inputs[0], int64_t(i)))) {
        dst.push_back(0);
      } else {
        dst.push_back(-1);
        unknown = int(i);
        ++n_unknown;
      }
    }
    (void)unknown;
    if (n_unknown > 1 || (n_unknown == 1 && has_infer) || !ok) continue;
    std::string s;
    for (size_t i = 0; i < dst.size(); ++i) s += (i ? "," : "") + std::to_string(dst[i]);
    op.inputs.resize(1);
    op.set_attr("dst_shape", s);
    ++n;
  }
  if (n) g.rebuild();
  // Other shape-position inputs whose value is dims [j0, j1) of one tensor -> Shape(start, end).
  struct Insert {
    size_t before;
    OpInfo op;
  };
  std::vector<Insert> inserts;
  static const std::map<std::string, std::vector<int>> positions = {
      {"Slice", {1, 2}}, {"Expand", {1}}, {"Tile", {1}}, {"ConstantOfShape", {0}}, {"Reshape", {1}}};
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpInfo& op = m.ops[k];
    auto it = positions.find(op.type);
    if (it == positions.end()) continue;
    for (int p : it->second) {
      if (p >= int(op.inputs.size()) || op.inputs[p].empty() || g.is_const(op.inputs[p])) continue;
      OpInfo* pr = g.prod(op.inputs[p]);
      if (pr && pr->type == "Shape") continue;  // already minimal
      Value v;
      if (!resolve(g, op.inputs[p], &v) || v.scalar || v.e.empty()) continue;
      bool ok = true;
      for (size_t i = 0; i < v.e.size(); ++i)
        ok &= !v.e[i].is_const && v.e[i].t == v.e[0].t && v.e[i].idx == v.e[0].idx + int64_t(i);
      if (!ok) continue;
      OpInfo sh;
      sh.name = g.new_op_name(op.name + "_shape");
      sh.type = "Shape";
      sh.inputs = {v.e[0].t};
      std::string out = g.new_name(op.inputs[p] + "_dims");
      sh.outputs = {out};
      sh.set_attr("start", std::to_string(v.e[0].idx));
      sh.set_attr("end", std::to_string(v.e[0].idx + int64_t(v.e.size())));
      op.inputs[p] = out;
      inserts.push_back({k, sh});
      ++n;
    }
  }
  for (size_t i = inserts.size(); i-- > 0;)
    m.ops.insert(m.ops.begin() + long(inserts[i].before), inserts[i].op);
  return n;
}

}  // namespace pass
}  // namespace ne
