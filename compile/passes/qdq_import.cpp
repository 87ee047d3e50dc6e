// QDQ import: ONNX quantization ops (lowered 1:1 as Quantize / Dequantize with the ONNX inputs
// x, scale, zero_point and attr `axis`, and as MatMulInteger / DynamicQuantizeLinear) become
// IR operators of docs/OPS.md.
//
//  With fusion (ONNX Runtime quantize_static, QDQ format):
//    Matmul(Dequantize(Quantize(x, s, zp), s, zp), Dequantize(Wq s8 const [K,N], ws, 0))
//      -> InnerProduct(x, Wq, ws) src_scale s, src_zero_point zp, src_dtype u8|s8
//    ws per tensor ([1]) or per output channel ([N], axis 1); weight zero points must be 0.
//  (ORT quantize_dynamic):
//    (q, qs, qzp) = DynamicQuantizeLinear(x)
//    Mul(Cast<float>(MatMulInteger(q, Wq s8 const, qzp, 0?)), Mul(qs, ws const))
//      -> InnerProduct(x, Wq, ws) src_scale dynamic, src_dtype u8
//  Later, fuse_inner_product adds the bias and post-ops as for fp32.
//  Always, for what is left: Dequantize / Quantize of constants are folded (weights computed
//  here), per-tensor Quantize / Dequantize of activations get attrs scale, zero_point (and
//  output_dtype): an fp32 fake-quant pair, as ONNX Runtime computes it. Per-axis activation
//  quantization and unfused MatMulInteger / DynamicQuantizeLinear are refused with the node name.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "compile/passes/graph.hpp"
#include "compile/passes/passes.hpp"

namespace ne {
namespace pass {

namespace {

// Values of a constant fp32 / u8 / s8 / int32 tensor, as doubles.
bool const_values(const Model& m, const std::string& t, std::vector<double>* v) {
  const TensorInfo* w = m.find(t);
  if (!w || !w->is_weight) return false;
  int64_t n = w->numel();
  v->resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (w->dtype) {
      case DType::fp32: (*v)[i] = w->as<float>()[i]; break;
      case DType::u8: (*v)[i] = w->as<uint8_t>()[i]; break;
      case DType::s8: (*v)[i] = w->as<int8_t>()[i]; break;
      case DType::int32: case DType::s32: (*v)[i] = w->as<int32_t>()[i]; break;
      default: return false;
    }
  }
  return true;
}

struct QParams {
  std::vector<double> scale, zp;
  DType zp_dtype = DType::u8;  // the quantized type (zero point's dtype; u8 when absent)
  int64_t axis = 1;
};

// Scale and zero point of a Quantize / Dequantize (inputs 1, 2) when they are constants.
bool qparams(const Model& m, const OpInfo& op, QParams* q) {
  if (op.inputs.size() < 2 || !const_values(m, op.inputs[1], &q->scale) || q->scale.empty())
    return false;
  q->axis = op.attr_int("axis", 1);
  if (op.inputs.size() > 2 && !op.inputs[2].empty()) {
    if (!const_values(m, op.inputs[2], &q->zp) || q->zp.size() != q->scale.size()) return false;
    q->zp_dtype = m.find(op.inputs[2])->dtype;
  } else {
    q->zp.assign(q->scale.size(), 0.0);
    q->zp_dtype = DType::u8;
  }
  return true;
}

bool all_zero(const std::vector<double>& v) {
  for (double x : v)
    if (x != 0) return false;
  return true;
}

// Matmul(DQ(Q(x)), DQ(Wq)) -> InnerProduct s8 with static src quantization.
bool fuse_qdq_matmul(Graph& g, OpInfo& op) {
  Model& m = g.m;
  if (op.type != "Matmul" || op.inputs.size() != 2 || !op.attrs.empty()) return false;
  OpInfo* dqw = g.prod(op.inputs[1], "Dequantize");
  OpInfo* dqa = g.prod(op.inputs[0], "Dequantize");
  if (!dqw || !dqa) return false;
  const TensorInfo* w = m.find(dqw->inputs[0]);
  if (!w || !w->is_weight || w->dtype != DType::s8 || w->shape.size() != 2) return false;
  int64_t N = w->shape[1];
  QParams wq, aq, qq;
  if (!qparams(m, *dqw, &wq) || !all_zero(wq.zp)) return false;
  bool per_channel = int64_t(wq.scale.size()) == N && N != 1;
  if (per_channel && !(wq.axis == 1 || wq.axis == -1)) return false;
  if (!per_channel && wq.scale.size() != 1) return false;
  OpInfo* q = g.prod(dqa->inputs[0], "Quantize");
  if (!q || !qparams(m, *dqa, &aq) || !qparams(m, *q, &qq) || aq.scale.size() != 1 ||
      qq.scale != aq.scale || qq.zp != aq.zp || qq.zp_dtype != aq.zp_dtype)
    return false;
  if (aq.zp_dtype != DType::u8 && !(aq.zp_dtype == DType::s8 && aq.zp[0] == 0)) return false;
  std::vector<float> ws(wq.scale.begin(), wq.scale.end());
  std::string wsn = g.add_const(dqw->inputs[0] + "_scale", DType::fp32, {int64_t(ws.size())}, ws);
  op.type = "InnerProduct";
  op.inputs = {q->inputs[0], dqw->inputs[0], wsn};
  op.set_attr("src_scale", OpInfo::attr_str(aq.scale[0]));
  op.set_attr("src_zero_point", std::to_string(int64_t(aq.zp[0])));
  op.set_attr("src_dtype", dtype_name(aq.zp_dtype));
  return true;
}

// Mul(Cast(MatMulInteger(DQL(x).q, Wq, DQL(x).zp, 0)), Mul(DQL(x).scale, ws)) -> InnerProduct
// with dynamic src quantization.
bool fuse_matmul_integer(Graph& g, OpInfo& op) {
  Model& m = g.m;
  if (!is_binary(&op, "mul") || op.inputs.size() != 2) return false;
  for (int s = 0; s < 2; ++s) {
    OpInfo* cast = g.prod(op.inputs[s], "Cast");
    OpInfo* smul = g.prod(op.inputs[1 - s]);
    if (!cast || cast->attr("to") != "fp32" || !smul || !is_binary(smul, "mul")) continue;
    OpInfo* mmi = g.prod(cast->inputs[0], "MatMulInteger");
    if (!mmi || mmi->inputs.size() < 2) continue;
    OpInfo* dql = g.prod(mmi->inputs[0], "DynamicQuantizeLinear");
    if (!dql || dql->outputs.size() < 3 || dql->outputs[0] != mmi->inputs[0]) continue;
    if (mmi->inputs.size() > 2 && !mmi->inputs[2].empty() && mmi->inputs[2] != dql->outputs[2])
      continue;
    const TensorInfo* w = m.find(mmi->inputs[1]);
    if (!w || !w->is_weight || w->dtype != DType::s8 || w->shape.size() != 2) continue;
    std::vector<double> wzp;
    if (mmi->inputs.size() > 3 && !mmi->inputs[3].empty() &&
        (!const_values(m, mmi->inputs[3], &wzp) || !all_zero(wzp)))
      continue;
    // The scale product: one side the dynamic scale, the other the constant weight scale.
    std::vector<double> ws;
    int k = smul->inputs[0] == dql->outputs[1] ? 1 : smul->inputs[1] == dql->outputs[1] ? 0 : -1;
    if (k < 0 || !const_values(m, smul->inputs[k], &ws)) continue;
    int64_t N = w->shape[1];
    if (!(int64_t(ws.size()) == N || ws.size() == 1)) continue;
    std::vector<float> wsf(ws.begin(), ws.end());
    std::string wsn = g.add_const(mmi->inputs[1] + "_scale", DType::fp32, {int64_t(wsf.size())}, wsf);
    std::string x = dql->inputs[0];
    op.type = "InnerProduct";
    op.attrs.clear();
    op.inputs = {x, mmi->inputs[1], wsn};
    op.set_attr("src_scale", "dynamic");
    op.set_attr("src_dtype", "u8");
    return true;
  }
  return false;
}

// Dequantize / Quantize of a constant -> constant (per tensor or along `axis`).
bool fold_const_q(Model& m, const OpInfo& op, std::vector<OpInfo>* drop) {
  const TensorInfo* x = m.find(op.inputs[0]);
  if (!x || !x->is_weight) return false;
  QParams q;
  NE_CHECK(qparams(m, op, &q), m.source, ": ", op.type, "Linear node '", op.name,
           "': scale and zero point must be constants");
  int64_t n = x->numel(), r = int64_t(x->shape.size());
  int64_t axis = q.axis < 0 ? q.axis + r : q.axis;
  int64_t inner = 1, dim = 1;
  if (q.scale.size() > 1) {
    NE_CHECK(axis >= 0 && axis < r && x->shape[axis] == int64_t(q.scale.size()), m.source, ": ",
             op.type, "Linear node '", op.name, "': ", q.scale.size(), " scales do not match axis ",
             q.axis, " of ", shape_str(x->shape));
    dim = x->shape[axis];
    for (int64_t d = axis + 1; d < r; ++d) inner *= x->shape[d];
  }
  std::vector<double> xv;
  NE_CHECK(const_values(m, op.inputs[0], &xv), m.source, ": node '", op.name, "': input dtype ",
           dtype_name(x->dtype), " is not supported");
  std::string out = op.outputs[0];
  Shape shape = x->shape;
  if (op.type == "Dequantize") {
    std::vector<float> y(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      size_t c = size_t(q.scale.size() > 1 ? (i / inner) % dim : 0);
      y[size_t(i)] = float((xv[size_t(i)] - q.zp[c]) * q.scale[c]);
    }
    m.add_weight(out, DType::fp32, shape, y);
  } else {
    std::vector<uint8_t> y(static_cast<size_t>(n));
    double lo = q.zp_dtype == DType::s8 ? -128 : 0, hi = q.zp_dtype == DType::s8 ? 127 : 255;
    for (int64_t i = 0; i < n; ++i) {
      size_t c = size_t(q.scale.size() > 1 ? (i / inner) % dim : 0);
      double v = std::nearbyint(float(xv[size_t(i)]) / float(q.scale[c])) + q.zp[c];
      v = std::max(lo, std::min(hi, v));
      y[size_t(i)] = q.zp_dtype == DType::s8 ? uint8_t(int8_t(v)) : uint8_t(v);
    }
    m.add_weight(out, q.zp_dtype, shape, y);
  }
  drop->push_back(op);
  return true;
}

}  // namespace

int import_qdq(Model& m, bool fuse) {
  bool any = false;
  for (auto& op : m.ops)
    any |= op.type == "Quantize" || op.type == "Dequantize" || op.type == "MatMulInteger" ||
           op.type == "DynamicQuantizeLinear";
  if (!any) return 0;
  int n = 0;
  Graph g(m);
  if (fuse) {
    for (size_t k = 0; k < m.ops.size(); ++k) {
      if (fuse_qdq_matmul(g, m.ops[k]) || fuse_matmul_integer(g, m.ops[k])) {
        ++n;
        g.rebuild();
      }
    }
    remove_dead_ops(m);
  }
  // Constants.
  std::vector<OpInfo> drop;
  std::vector<OpInfo> keep;
  for (auto& op : m.ops) {
    if ((op.type == "Quantize" || op.type == "Dequantize") && fold_const_q(m, op, &drop)) {
      ++n;
      continue;
    }
    keep.push_back(op);
  }
  m.ops = std::move(keep);
  // Activations: per-tensor fake-quant ops.
  for (auto& op : m.ops) {
    if (op.type == "MatMulInteger" || op.type == "DynamicQuantizeLinear")
      fail(m.source, ": ", op.type, " node '", op.name,
           "' is supported only in ONNX Runtime's quantization patterns "
           "(DynamicQuantizeLinear or QuantizeLinear -> MatMulInteger with a constant u8 / s8 weight "
           "-> Cast to float -> Mul by Mul(activation scale, weight scale); qop_import.cpp)",
           fuse ? "" : "; it needs fusion (not --no_fuse)");
    if (op.type != "Quantize" && op.type != "Dequantize") continue;
    if (op.inputs.size() == 1 && op.has_attr("scale")) continue;  // already IR form
    QParams q;
    NE_CHECK(qparams(m, op, &q), m.source, ": ", op.type, "Linear node '", op.name,
             "': scale and zero point must be constants");
    NE_CHECK(q.scale.size() == 1, m.source, ": ", op.type, "Linear node '", op.name,
             "': per-axis quantization of an activation is not supported (per-tensor only)");
    op.inputs.resize(1);
    op.attrs.clear();
    op.set_attr("scale", OpInfo::attr_str(q.scale[0]));
    op.set_attr("zero_point", std::to_string(int64_t(q.zp[0])));
    if (op.type == "Quantize") op.set_attr("output_dtype", dtype_name(q.zp_dtype));
    ++n;
  }
  remove_dead_ops(m);
  return n;
}

}  // namespace pass
}  // namespace ne
