// QOperator import: ONNX Runtime's QOperator-format int8 MatMuls (quantize_static /
// quantize_dynamic with QuantFormat.QOperator, and the com.microsoft ops its graph optimizer
// fuses them into) become the same s8 InnerProducts the QDQ import makes (qdq_import.cpp), so
// they reach the sparse kernels. Runs before import_qdq, which then handles the Quantize /
// Dequantize ops left around them.
//
//   QLinearMatMul(a, as, azp, B const [K,N], bs, bzp, ys, yzp)
//       -> InnerProduct(src, W, ws) -> Quantize(., ys, yzp)        (the output stays quantized)
//   QLinearMatMul with both inputs activations (attention)
//       -> Dequantize(a), Dequantize(b) -> Matmul -> Quantize       (fp32 fake quant)
//   Mul(Cast<float>(MatMulInteger(a, B const, azp?, bzp?)), Mul(a_scale, bs const))
//       -> InnerProduct(src, W, ws)
//   com.microsoft QGemm(a, as, azp, B const, bs, bzp?, C?, ys?, yzp?; alpha, transA 0, transB)
//       -> InnerProduct(src, W, ws) [-> BinaryAdd(bias)] [-> Quantize(., ys, yzp)]
//   com.microsoft DynamicQuantizeMatMul(x, B const, bs, bzp?, bias?)
//       -> InnerProduct(x, W, ws) src_scale dynamic [-> BinaryAdd(bias)]
//   com.microsoft MatMulIntegerToFloat(a, B const, as, bs, azp?, bzp?, bias?)
//       -> InnerProduct(src, W, ws) [-> BinaryAdd(bias)]
//
// src: the activation a and its (constant, per-tensor) scale / zero point become the
// InnerProduct's src_scale / src_zero_point / src_dtype; when a is a QuantizeLinear's output with
// the same parameters, src is that QuantizeLinear's fp32 input (so the LayerNorm / shared-src
// passes see the usual form); when a comes from DynamicQuantizeLinear, src is its input with
// src_scale: dynamic (the executor's dynamic quantization is DynamicQuantizeLinear's).
// W: the integer weight B (u8 or s8) with zero point bzp (per tensor or per column) becomes
// symmetric s8: exactly W = B - bzp with ws = bs when every B - bzp lies in [-127, 127] (always
// so for ORT's 7-bit reduce_range weights and for symmetric ones); otherwise B is dequantized,
// (B - bzp) * bs, and requantized symmetrically per output channel (round half to even), which
// costs up to half a new step per weight. Zeros stay zeros either way (B == bzp -> 0), so block
// sparsity is kept. Bias (fp32, or QGemm's int32 C times alpha * as * bs) is a BinaryAdd that
// fuse_inner_product folds into the InnerProduct.
#include <algorithm>
#include <cmath>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

const std::map<std::string, std::set<std::string>>& qop_contrib_ops() {
  static const std::map<std::string, std::set<std::string>> t = {
      {"QGemm", {"alpha", "transA", "transB"}},
      {"DynamicQuantizeMatMul", {}},
      {"MatMulIntegerToFloat", {}}};
  return t;
}

namespace {

struct Ctx {
  Graph& g;
  Model& m;
  const OpInfo& op;
  [[noreturn]] void error(const std::string& why) const {
    fail(m.source, ": ", op.type, " node '", op.name, "': ", why);
  }
};

std::string in_at(const OpInfo& op, size_t k) { return k < op.inputs.size() ? op.inputs[k] : std::string(); }

// Values of a constant u8 / s8 / int32 / fp32 tensor.
bool values(const Model& m, const std::string& t, std::vector<double>* v, DType* dt = nullptr) {
  const TensorInfo* w = m.find(t);
  if (t.empty() || !w || !w->is_weight) return false;
  int64_t n = w->numel();
  v->resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (w->dtype) {
      case DType::fp32: (*v)[size_t(i)] = w->as<float>()[i]; break;
      case DType::u8: (*v)[size_t(i)] = w->as<uint8_t>()[i]; break;
      case DType::s8: (*v)[size_t(i)] = w->as<int8_t>()[i]; break;
      case DType::int32: case DType::s32: (*v)[size_t(i)] = w->as<int32_t>()[i]; break;
      default: return false;
    }
  }
  if (dt) *dt = w->dtype;
  return true;
}

// How the InnerProduct gets its src.
struct Src {
  std::string tensor;
  bool dynamic = false;
  double scale = 0;
  int64_t zp = 0;
  DType dt = DType::u8;
};

// The quantized activation `a` with scale input `as` and zero point `azp` (may be empty).
Src activation(const Ctx& c, const std::string& a, const std::string& as, const std::string& azp) {
  Src s;
  // Dynamic: a, as, azp are DynamicQuantizeLinear's three outputs.
  if (OpInfo* d = c.g.prod(a, "DynamicQuantizeLinear")) {
    if (d->outputs.size() >= 3 && d->outputs[0] == a && d->outputs[1] == as && (azp.empty() || d->outputs[2] == azp)) {
      s.tensor = d->inputs[0];
      s.dynamic = true;
      return s;
    }
    c.error("input '" + a + "' comes from DynamicQuantizeLinear '" + d->name +
            "' but its scale / zero point are not that node's outputs");
  }
  std::vector<double> sv, zv;
  if (!values(c.m, as, &sv) || sv.size() != 1)
    c.error("the activation scale '" + as + "' must be a constant scalar (per-tensor static quantization) "
            "or DynamicQuantizeLinear's output");
  s.scale = sv[0];
  DType zdt = DType::u8;
  if (!azp.empty()) {
    if (!values(c.m, azp, &zv, &zdt) || zv.size() != 1)
      c.error("the activation zero point '" + azp + "' must be a constant scalar");
    s.zp = int64_t(zv[0]);
  }
  OpInfo* q = c.g.prod(a, "Quantize");
  std::vector<double> qs, qz;
  DType qdt = DType::u8;
  if (q && q->inputs.size() >= 2 && !q->has_attr("scale") && values(c.m, q->inputs[1], &qs) && qs.size() == 1) {
    if (q->inputs.size() > 2 && !q->inputs[2].empty()) {
      if (!values(c.m, q->inputs[2], &qz, &qdt) || qz.size() != 1) qz.clear();
    } else {
      qz = {0.0};
    }
    if (azp.empty()) zdt = qdt;
    if (float(qs[0]) == float(s.scale) && qz.size() == 1 && int64_t(qz[0]) == s.zp && qdt == zdt) s.tensor = q->inputs[0];
  }
  if (!(zdt == DType::u8 || zdt == DType::s8)) c.error("the activation zero point must be u8 or s8");
  if (zdt == DType::s8 && s.zp != 0)
    c.error("s8 activations with zero point " + std::to_string(s.zp) +
            " are not supported (s8 activations must be symmetric: zero point 0; u8 may have any)");
  if (!(s.scale > 0) || !std::isfinite(s.scale)) c.error("the activation scale must be positive and finite");
  s.dt = zdt;
  if (s.tensor.empty()) s.tensor = a;  // already quantized: the InnerProduct reads it as is
  return s;
}

// Integer weight B (constant, 2-D, u8 / s8) with scale / zero point, per tensor or per column,
// times `mult`, as a symmetric s8 weight [K, N] and its fp32 scale ([1] or [N]).
void weight(const Ctx& c, const std::string& b, const std::string& bs, const std::string& bzp, bool trans_b,
            double mult, std::string* wname, std::string* sname) {
  const TensorInfo* w = c.m.find(b);
  if (!w || !w->is_weight)
    c.error("the weight input '" + b + "' is not a constant (only constant weights become InnerProducts)");
  if (w->dtype != DType::u8 && w->dtype != DType::s8)
    c.error("the weight '" + b + "' is " + dtype_name(w->dtype) + " (u8 or s8 expected)");
  if (w->shape.size() != 2) c.error("the weight '" + b + "' has shape " + shape_str(w->shape) + " (2-D expected)");
  const int64_t K = trans_b ? w->shape[1] : w->shape[0], N = trans_b ? w->shape[0] : w->shape[1];
  std::vector<double> bv, sv, zv;
  values(c.m, b, &bv);
  if (!values(c.m, bs, &sv) || !(sv.size() == 1 || int64_t(sv.size()) == N))
    c.error("the weight scale '" + bs + "' must be a constant with 1 or N = " + std::to_string(N) + " elements");
  DType zdt = w->dtype;
  if (!bzp.empty()) {
    if (!values(c.m, bzp, &zv, &zdt) || !(zv.size() == 1 || int64_t(zv.size()) == N))
      c.error("the weight zero point '" + bzp + "' must be a constant with 1 or N = " + std::to_string(N) + " elements");
    if (zdt != w->dtype) c.error("the weight zero point '" + bzp + "' has another dtype than the weight");
  } else {
    zv = {0.0};
  }
  for (double s : sv)
    if (!(s > 0) || !std::isfinite(s)) c.error("the weight scale '" + bs + "' has a value that is not positive and finite");
  auto at = [&](int64_t k, int64_t n) { return bv[size_t(trans_b ? n * K + k : k * N + n)]; };
  auto zp = [&](int64_t n) { return zv[zv.size() == 1 ? 0 : size_t(n)]; };
  auto sc = [&](int64_t n) { return sv[sv.size() == 1 ? 0 : size_t(n)] * mult; };
  bool exact = true;
  for (int64_t k = 0; k < K && exact; ++k)
    for (int64_t n = 0; n < N; ++n) {
      double d = at(k, n) - zp(n);
      if (d < -127 || d > 127) {
        exact = false;
        break;
      }
    }
  std::vector<int8_t> q(size_t(K * N));
  std::vector<float> s;
  if (exact) {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) q[size_t(k * N + n)] = int8_t(at(k, n) - zp(n));
    if (sv.size() == 1) s = {float(sc(0))};
    else for (int64_t n = 0; n < N; ++n) s.push_back(float(sc(n)));
  } else {
    // Dequantize, then symmetric per output channel: scale = max|W[:,n]| / 127.
    s.assign(size_t(N), 1.f);
    for (int64_t n = 0; n < N; ++n) {
      double mx = 0;
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, std::fabs((at(k, n) - zp(n)) * sc(n)));
      if (mx > 0) s[size_t(n)] = float(mx / 127);
      for (int64_t k = 0; k < K; ++k) {
        double v = std::nearbyint(float((at(k, n) - zp(n)) * sc(n)) / s[size_t(n)]);
        q[size_t(k * N + n)] = int8_t(std::max(-127.0, std::min(127.0, v)));
      }
    }
  }
  *wname = c.g.add_const(b + "_s8", DType::s8, {K, N}, q);
  *sname = c.g.add_const(b + "_s8_scale", DType::fp32, {int64_t(s.size())}, s);
}

OpInfo inner_product(const OpInfo& anchor, const Src& s, const std::string& w, const std::string& ws,
                     const std::string& out) {
  OpInfo ip;
  ip.name = anchor.name;
  ip.type = "InnerProduct";
  ip.inputs = {s.tensor, w, ws};
  ip.outputs = {out};
  if (s.dynamic) {
    ip.set_attr("src_scale", "dynamic");
    ip.set_attr("src_dtype", "u8");
  } else {
    ip.set_attr("src_scale", OpInfo::attr_str(s.scale));
    ip.set_attr("src_zero_point", std::to_string(s.zp));
    ip.set_attr("src_dtype", dtype_name(s.dt));
  }
  return ip;
}

OpInfo simple(const std::string& name, const std::string& type, std::vector<std::string> in, std::string out) {
  OpInfo o;
  o.name = name;
  o.type = type;
  o.inputs = std::move(in);
  o.outputs = {std::move(out)};
  return o;
}

// InnerProduct [+ bias Add] [+ Quantize(ys, yzp)] writing `out`.
void emit(Graph& g, const OpInfo& anchor, const Src& s, const std::string& w, const std::string& ws,
          const std::string& bias, const std::string& ys, const std::string& yzp, const std::string& out,
          std::vector<OpInfo>* r) {
  std::string q_in = ys.empty() ? out : g.new_name(out + "_fp32");
  std::string ip_out = bias.empty() ? q_in : g.new_name(out + "_nobias");
  r->push_back(inner_product(anchor, s, w, ws, ip_out));
  if (!bias.empty()) r->push_back(simple(g.new_op_name(anchor.name + "_bias"), "BinaryAdd", {ip_out, bias}, q_in));
  if (!ys.empty()) {
    std::vector<std::string> qi = {q_in, ys};
    if (!yzp.empty()) qi.push_back(yzp);
    r->push_back(simple(g.new_op_name(anchor.name + "_requantize"), "Quantize", qi, out));
  }
}

// fp32 bias input of the contrib ops: a constant [N] (or [1, N]) fp32.
std::string bias_input(const Ctx& c, const std::string& b, int64_t N) {
  if (b.empty()) return b;
  const TensorInfo* t = c.m.find(b);
  if (!t || !t->is_weight || t->dtype != DType::fp32 || t->numel() != N)
    c.error("the bias '" + b + "' must be a constant fp32 tensor of N = " + std::to_string(N) + " elements");
  std::vector<float> v(t->as<float>(), t->as<float>() + N);
  return c.g.add_const(b + "_bias", DType::fp32, {N}, v);
}

int64_t n_of(const Model& m, const std::string& w) { return m.find(w)->shape[1]; }

bool lower_qlinear_matmul(Graph& g, const OpInfo& op, std::vector<OpInfo>* r) {
  Ctx c{g, g.m, op};
  if (op.inputs.size() != 8 || op.outputs.size() != 1) c.error("expects 8 inputs and 1 output");
  const std::string &a = op.inputs[0], &b = op.inputs[3], &y = op.outputs[0];
  if (!g.is_const(b)) {
    // Both operands activations (attention): fp32 fake quant, as ONNX Runtime computes it.
    std::string da = g.new_name(a + "_dq"), db = g.new_name(b + "_dq"), mm = g.new_name(y + "_fp32");
    r->push_back(simple(g.new_op_name(op.name + "_dqa"), "Dequantize", {a, op.inputs[1], op.inputs[2]}, da));
    r->push_back(simple(g.new_op_name(op.name + "_dqb"), "Dequantize", {b, op.inputs[4], op.inputs[5]}, db));
    r->push_back(simple(op.name, "Matmul", {da, db}, mm));
    r->push_back(simple(g.new_op_name(op.name + "_q"), "Quantize", {mm, op.inputs[6], op.inputs[7]}, y));
    return true;
  }
  Src s = activation(c, a, op.inputs[1], op.inputs[2]);
  std::string w, ws;
  weight(c, b, op.inputs[4], op.inputs[5], false, 1.0, &w, &ws);
  emit(g, op, s, w, ws, "", op.inputs[6], op.inputs[7], y, r);
  return true;
}

bool lower_qgemm(Graph& g, const OpInfo& op, std::vector<OpInfo>* r) {
  Ctx c{g, g.m, op};
  for (auto& kv : op.attrs)
    if (!qop_contrib_ops().at("QGemm").count(kv.first)) c.error("attribute '" + kv.first + "' is not supported");
  if (op.inputs.size() < 6 || op.outputs.size() != 1) c.error("expects 6 to 9 inputs and 1 output");
  if (op.attr_int("transA", 0) != 0) c.error("attribute 'transA' = " + op.attr("transA") + " is not supported (0 only)");
  const bool tb = op.attr_int("transB", 0) != 0;
  const double alpha = op.has_attr("alpha") ? double(op.attr_float("alpha", 1.f)) : 1.0;
  if (!(alpha > 0) || !std::isfinite(alpha))
    c.error("attribute 'alpha' = " + op.attr("alpha") + " is not supported (a positive finite value only)");
  Src s = activation(c, op.inputs[0], op.inputs[1], op.inputs[2]);
  if (s.dynamic) c.error("input A must be statically quantized (QGemm's a_scale is a constant)");
  std::string w, ws;
  weight(c, op.inputs[3], op.inputs[4], in_at(op, 5), tb, alpha, &w, &ws);
  const int64_t N = n_of(g.m, w);
  std::string bias;
  if (!in_at(op, 6).empty()) {
    std::vector<double> cv, bsv;
    DType cdt;
    if (!values(g.m, op.inputs[6], &cv, &cdt) || cdt != DType::int32 || !(cv.size() == 1 || int64_t(cv.size()) == N))
      c.error("input C '" + op.inputs[6] + "' must be a constant int32 tensor of 1 or N = " + std::to_string(N) +
              " elements");
    values(g.m, op.inputs[4], &bsv);
    // C is added to the int32 accumulator: its real value is C * alpha * a_scale * b_scale[n].
    std::vector<float> bf(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n)
      bf[size_t(n)] = float(cv[cv.size() == 1 ? 0 : size_t(n)] * alpha * s.scale * bsv[bsv.size() == 1 ? 0 : size_t(n)]);
    bias = g.add_const(op.inputs[6] + "_fp32", DType::fp32, {N}, bf);
  }
  std::string ys = in_at(op, 7), yzp = in_at(op, 8);
  if (ys.empty() && !yzp.empty()) c.error("y_zero_point without y_scale");
  emit(g, op, s, w, ws, bias, ys, yzp, op.outputs[0], r);
  return true;
}

bool lower_dynamic_quantize_matmul(Graph& g, const OpInfo& op, std::vector<OpInfo>* r) {
  Ctx c{g, g.m, op};
  if (!op.attrs.empty()) c.error("attribute '" + op.attrs[0].first + "' is not supported");
  if (op.inputs.size() < 3 || op.outputs.size() != 1) c.error("expects 3 to 5 inputs and 1 output");
  Src s;
  s.tensor = op.inputs[0];
  s.dynamic = true;
  std::string w, ws;
  weight(c, op.inputs[1], op.inputs[2], in_at(op, 3), false, 1.0, &w, &ws);
  emit(g, op, s, w, ws, bias_input(c, in_at(op, 4), n_of(g.m, w)), "", "", op.outputs[0], r);
  return true;
}

bool lower_matmul_integer_to_float(Graph& g, const OpInfo& op, std::vector<OpInfo>* r) {
  Ctx c{g, g.m, op};
  if (!op.attrs.empty()) c.error("attribute '" + op.attrs[0].first + "' is not supported");
  if (op.inputs.size() < 4 || op.outputs.size() != 1) c.error("expects 4 to 7 inputs and 1 output");
  Src s = activation(c, op.inputs[0], op.inputs[2], in_at(op, 4));
  std::string w, ws;
  weight(c, op.inputs[1], op.inputs[3], in_at(op, 5), false, 1.0, &w, &ws);
  emit(g, op, s, w, ws, bias_input(c, in_at(op, 6), n_of(g.m, w)), "", "", op.outputs[0], r);
  return true;
}

// Mul(Cast<fp32>(MatMulInteger(a, B, azp?, bzp?)), Mul(a_scale, b_scale)) anchored at the outer Mul.
bool lower_matmul_integer(Graph& g, const OpInfo& op, std::vector<OpInfo>* r) {
  if (!is_binary(&op, "mul") || op.inputs.size() != 2) return false;
  for (int side = 0; side < 2; ++side) {
    OpInfo* cast = g.prod(op.inputs[side], "Cast");
    if (!cast || cast->attr("to") != "fp32" || !g.single_use(op.inputs[side])) continue;
    OpInfo* mmi = g.prod(cast->inputs[0], "MatMulInteger");
    if (!mmi || !g.single_use(cast->inputs[0])) continue;
    Ctx c{g, g.m, *mmi};
    if (mmi->inputs.size() < 2) c.error("expects 2 to 4 inputs");
    if (!g.is_const(mmi->inputs[1]))
      c.error("the weight input '" + mmi->inputs[1] + "' is not a constant (only constant weights are supported)");
    // The scale: Mul(a_scale, b_scale const) (either order), or one constant product (static).
    const std::string& p = op.inputs[1 - side];
    std::string a_scale, b_scale;
    OpInfo* pm = g.prod(p);
    if (pm && is_binary(pm, "mul") && pm->inputs.size() == 2) {
      for (int k = 0; k < 2; ++k)
        if (g.is_const(pm->inputs[k]) && !g.is_const(pm->inputs[1 - k])) b_scale = pm->inputs[k], a_scale = pm->inputs[1 - k];
      if (b_scale.empty() && g.is_const(pm->inputs[0]) && g.is_const(pm->inputs[1])) {
        // Both constant (static): the one-element side is the activation's.
        const TensorInfo* t0 = g.m.find(pm->inputs[0]);
        int k = t0->numel() == 1 ? 0 : 1;
        a_scale = pm->inputs[k], b_scale = pm->inputs[1 - k];
      }
    }
    if (a_scale.empty())
      c.error("is supported with its output cast to float and multiplied by Mul(activation scale, constant weight "
              "scale) (ONNX Runtime's quantize_dynamic pattern); '" + p + "' is not such a product");
    Src s = activation(c, mmi->inputs[0], a_scale, in_at(*mmi, 2));
    std::string w, ws;
    weight(c, mmi->inputs[1], b_scale, in_at(*mmi, 3), false, 1.0, &w, &ws);
    emit(g, op, s, w, ws, "", "", "", op.outputs[0], r);
    return true;
  }
  return false;
}

}  // namespace

int import_qop(Model& m) {
  bool any = false;
  for (auto& op : m.ops)
    any |= op.type == "QLinearMatMul" || op.type == "MatMulInteger" || qop_contrib_ops().count(op.type);
  if (!any) return 0;
  Graph g(m);
  std::vector<OpInfo> out;
  int n = 0;
  for (auto& op : m.ops) {
    std::vector<OpInfo> r;
    bool done = false;
    if (op.type == "QLinearMatMul") done = lower_qlinear_matmul(g, op, &r);
    else if (op.type == "QGemm") done = lower_qgemm(g, op, &r);
    else if (op.type == "DynamicQuantizeMatMul") done = lower_dynamic_quantize_matmul(g, op, &r);
    else if (op.type == "MatMulIntegerToFloat") done = lower_matmul_integer_to_float(g, op, &r);
    else if (op.type == "BinaryOp" || op.type == "BinaryAdd") done = lower_matmul_integer(g, op, &r);
    if (!done) {
      out.push_back(op);
      continue;
    }
    ++n;
    for (auto& o : r) out.push_back(std::move(o));
  }
  m.ops = std::move(out);
  remove_dead_ops(m);
  return n;
}

}  // namespace pass
}  // namespace ne
