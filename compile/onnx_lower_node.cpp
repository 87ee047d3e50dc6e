// One ONNX node -> IR ops (docs/OPS.md), 1:1 but for opset < 13 Softmax and com.microsoft's
// quantized MatMuls: Lowerer::lower_node, lower_softmax_v1, lower_qop_contrib.
#include "compile/onnx_import_internal.hpp"
#include "compile/passes/passes.hpp"

#include <cmath>
#include <cstring>
#include <algorithm>
#include <map>
#include <set>

namespace ne::onnx_internal {

namespace {

std::string join(const std::vector<int64_t>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r;
}

}  // namespace

#define A_INT(name, def) (a.count(name) ? a.at(name)->i() : int64_t(def))
#define A_FLOAT(name, def) (a.count(name) ? double(a.at(name)->f()) : double(def))
#define A_INTS(name)                                                                  \
  (a.count(name) ? std::vector<int64_t>(a.at(name)->ints().begin(), a.at(name)->ints().end()) \
                 : std::vector<int64_t>())

bool Lowerer::lower_node(const onnx::NodeProto& n, std::string* why) {
  auto a = attrs_of(n);
  const std::string& t = n.op_type();
  std::vector<std::string> in(n.input().begin(), n.input().end());
  for (auto& i : in) i = resolve(i);
  std::vector<std::string> out(n.output().begin(), n.output().end());
  const std::string& nm = n.name();
  // Arity and attribute types were checked against ONNX's schema for this opset (check_schema, for
  // every node before any is read): in[k] / out[k] below stay within the schema's minimum counts.
  auto need_outputs = [&](size_t k) {
    for (size_t i = k; i < out.size(); ++i)
      if (!out[i].empty()) {
        *why = "optional output #" + std::to_string(i);
        return false;
      }
    out.resize(std::min(out.size(), k));
    return true;
  };

  if (t == "Constant") {
    NE_CHECK(out.size() == 1, path, ": Constant node '", nm, "' must have one output");
    if (a.count("value")) {
      add_weight(out[0], onnx_tensor_value(a.at("value")->t(), dir, path + ": Constant '" + nm + "'", path));
    } else if (a.count("value_float")) {
      m.add_weight(out[0], DType::fp32, {}, std::vector<float>{a.at("value_float")->f()});
    } else if (a.count("value_floats")) {
      auto& f = a.at("value_floats")->floats();
      m.add_weight(out[0], DType::fp32, {int64_t(f.size())}, std::vector<float>(f.begin(), f.end()));
    } else if (a.count("value_int")) {
      m.add_weight(out[0], DType::int64, {}, std::vector<int64_t>{a.at("value_int")->i()});
    } else if (a.count("value_ints")) {
      auto v = A_INTS("value_ints");
      m.add_weight(out[0], DType::int64, {int64_t(v.size())}, v);
    } else {
      *why = "sparse or string value";
      return false;
    }
    return true;
  }
  if (t == "Add") {
    emit(nm, "BinaryAdd", in, out);
    return true;
  }
  if (binary_ops().count(t)) {
    auto& op = emit(nm, "BinaryOp", in, out);
    op.set_attr("algorithm", binary_ops().at(t));
    if (t == "Mod") op.set_attr("fmod", std::to_string(A_INT("fmod", 0)));
    return true;
  }
  if (unary_ops().count(t)) {
    auto& op = emit(nm, "UnaryOp", in, out);
    op.set_attr("algorithm", unary_ops().at(t));
    if (t == "LeakyRelu") op.set_attr("alpha", OpInfo::attr_str(A_FLOAT("alpha", 0.01)));
    if (t == "Elu") op.set_attr("alpha", OpInfo::attr_str(A_FLOAT("alpha", 1.0)));
    if (t == "HardSigmoid") {
      op.set_attr("alpha", OpInfo::attr_str(A_FLOAT("alpha", 0.2)));
      op.set_attr("beta", OpInfo::attr_str(A_FLOAT("beta", 0.5)));
    }
    if (t == "Selu") {
      op.set_attr("alpha", OpInfo::attr_str(A_FLOAT("alpha", 1.67326319217681884765625)));
      op.set_attr("gamma", OpInfo::attr_str(A_FLOAT("gamma", 1.05070102214813232421875)));
    }
    return true;
  }
  if (t == "Mean") {
    NE_CHECK(!in.empty(), path, ": node '", nm, "' (Mean) has no inputs");
    std::string acc = in[0];
    for (size_t i = 1; i < in.size(); ++i) {
      std::string o = tmp(out[0]);
      emit(nm, "BinaryAdd", {acc, in[i]}, {o});
      acc = o;
    }
    std::string c = const_tensor(out[0] + "_n", DType::fp32, {}, std::vector<float>{float(in.size())});
    emit(nm, "BinaryOp", {acc, c}, out).set_attr("algorithm", "div");
    return true;
  }
  if (t == "LogSoftmax" || t == "Softmax") {
    const bool log = t == "LogSoftmax";
    int64_t axis = A_INT("axis", opset >= 13 ? -1 : 1);
    if (opset < 13) {
      lower_softmax_v1(nm, in[0], out[0], axis, log);
      return true;
    }
    if (!log) {
      emit(nm, "Softmax", in, out).set_attr("axis", std::to_string(axis));
      return true;
    }
    std::string sm = tmp(out[0]);
    emit(nm, "Softmax", in, {sm}).set_attr("axis", std::to_string(axis));
    emit(nm + "_log", "UnaryOp", {sm}, out).set_attr("algorithm", "log");
    return true;
  }
  if (t == "CumSum") {
    auto& op = emit(nm, "CumSum", in, out);
    op.set_attr("exclusive", std::to_string(A_INT("exclusive", 0)));
    op.set_attr("reverse", std::to_string(A_INT("reverse", 0)));
    return true;
  }
  if (t == "Size") {
    std::string sh = tmp(out[0]);
    emit(nm, "Shape", in, {sh});
    auto& op = emit(nm + "_prod", "ReduceProd", {sh}, out);
    op.set_attr("keepdims", "0");
    return true;
  }
  if (t == "CastLike") {
    const TensorInfo* like = m.find(in[1]);
    if (!like) {
      *why = "target dtype not known at compile time";
      return false;
    }
    emit(nm, "Cast", {in[0]}, out).set_attr("to", dtype_name(like->dtype));
    return true;
  }
  if (t == "ReduceL1" || t == "ReduceLogSum" || t == "ReduceLogSumExp") {
    std::string x = in[0];
    if (t != "ReduceLogSum") {
      std::string u = tmp(out[0]);
      emit(nm + "_pre", "UnaryOp", {x}, {u}).set_attr("algorithm", t == "ReduceL1" ? "abs" : "exp");
      x = u;
    }
    std::vector<std::string> rin = {x};
    if (in.size() > 1) rin.push_back(in[1]);
    std::string r = t == "ReduceL1" ? out[0] : tmp(out[0]);
    auto& op = emit(nm, "ReduceSum", rin, {r});
    if (a.count("axes")) op.set_attr("axes", join(A_INTS("axes")));
    op.set_attr("keepdims", std::to_string(A_INT("keepdims", 1)));
    if (a.count("noop_with_empty_axes"))
      op.set_attr("noop_with_empty_axes", std::to_string(A_INT("noop_with_empty_axes", 0)));
    if (t != "ReduceL1") emit(nm + "_log", "UnaryOp", {r}, out).set_attr("algorithm", "log");
    return true;
  }
  if (t == "Sum" || t == "Max" || t == "Min") {
    NE_CHECK(!in.empty(), path, ": node '", nm, "' (", t, ") has no inputs");
    if (in.size() == 1) {
      emit(nm, "Identity", in, out);
      return true;
    }
    std::string acc = in[0];
    for (size_t i = 1; i < in.size(); ++i) {
      std::string o = i + 1 == in.size() ? out[0] : tmp(out[0]);
      if (t == "Sum") emit(nm, "BinaryAdd", {acc, in[i]}, {o});
      else emit(nm, "BinaryOp", {acc, in[i]}, {o}).set_attr("algorithm", t == "Max" ? "max" : "min");
      acc = o;
    }
    return true;
  }
  if (t == "MatMul") {
    const TensorInfo* w = m.find(in[1]);
    if (w && w->is_weight && w->shape.size() == 2 && w->dtype == DType::fp32)
      emit(nm, "InnerProduct", in, out);
    else
      emit(nm, "Matmul", in, out);
    return true;
  }
  // Quantization ops: lowered with their ONNX inputs; pass::import_qdq turns them into
  // s8 InnerProducts or OPS.md Quantize / Dequantize (compile/passes/qdq_import.cpp).
  if (t == "QuantizeLinear" || t == "DequantizeLinear") {
    if (a.count("saturate") || a.count("block_size")) {
      *why = "float8 / blocked quantization";
      return false;
    }
    auto& op = emit(nm, t == "QuantizeLinear" ? "Quantize" : "Dequantize", in, out);
    if (a.count("axis")) op.set_attr("axis", std::to_string(A_INT("axis", 1)));
    return true;
  }
  if (t == "MatMulInteger" || t == "DynamicQuantizeLinear" || t == "QLinearMatMul") {  // qop_import.cpp
    emit(nm, t, in, out);
    return true;
  }
  if (t == "Gemm") {
    double alpha = A_FLOAT("alpha", 1.0), beta = A_FLOAT("beta", 1.0);
    bool has_c = in.size() > 2 && !in[2].empty();
    std::string mm_out = has_c ? tmp(out[0]) : out[0];
    auto& op = emit(nm, "Matmul", {in[0], in[1]}, {mm_out});
    if (A_INT("transA", 0)) op.set_attr("src0_perm", "1,0");
    if (A_INT("transB", 0)) op.set_attr("src1_perm", "1,0");
    if (alpha != 1.0) op.set_attr("output_scale", OpInfo::attr_str(alpha));
    if (has_c) {
      std::string c = in[2];
      if (beta != 1.0) {
        std::string bc = tmp(out[0]);
        std::string bconst = const_tensor(out[0] + "_beta", DType::fp32, {}, std::vector<float>{float(beta)});
        emit(nm + "_beta", "BinaryOp", {c, bconst}, {bc}).set_attr("algorithm", "mul");
        c = bc;
      }
      emit(nm + "_bias", "BinaryAdd", {mm_out, c}, out);
    }
    return true;
  }
  if (t == "LayerNormalization") {
    if (!need_outputs(1)) return false;
    if (A_INT("stash_type", 1) != 1) {
      *why = "stash_type != 1";
      return false;
    }
    auto& op = emit(nm, "LayerNorm", in, out);
    op.set_attr("epsilon", OpInfo::attr_str(A_FLOAT("epsilon", 1e-5)));
    op.set_attr("axis", std::to_string(A_INT("axis", -1)));
    return true;
  }
  if (t == "Clip") {
    auto& op = emit(nm, "Clip", in, out);
    if (a.count("min")) op.set_attr("min", OpInfo::attr_str(A_FLOAT("min", 0)));
    if (a.count("max")) op.set_attr("max", OpInfo::attr_str(A_FLOAT("max", 0)));
    return true;
  }
  if (t == "Identity") {
    identity(nm, in[0], out[0]);
    return true;
  }
  if (t == "Tile" && in.size() > 2) {  // Tile-1 (opset < 6): tiles and axis inputs
    *why = "'tiles' and 'axis' inputs (opset < 6)";
    return false;
  }
  if (t == "Where" || t == "Expand" || t == "Tile" || t == "Range") {
    emit(nm, t, in, out);
    return true;
  }
  if (t == "Dropout") {
    if (!need_outputs(1)) return false;
    if (in.size() > 2 && !in[2].empty()) {
      const TensorInfo* tm = m.find(in[2]);
      if (!tm || !tm->is_weight || tm->numel() != 1 || tm->data[0] != 0) {
        *why = "training_mode";
        return false;
      }
    }
    identity(nm, in[0], out[0]);
    return true;
  }
  if (t == "Cast") {
    DType dt;
    int to = int(A_INT("to", 0));
    if (!onnx_dtype(to, &dt)) {
      *why = std::string("to=") + onnx_dtype_name(to);
      return false;
    }
    emit(nm, "Cast", in, out).set_attr("to", dtype_name(dt));
    return true;
  }
  if (t == "Reshape") {
    if (a.count("shape")) {  // Reshape-1 (opset < 5): the shape is an attribute
      *why = "'shape' attribute (opset < 5)";
      return false;
    }
    emit(nm, "Reshape", in, out).set_attr("allowzero", std::to_string(A_INT("allowzero", 0)));
    return true;
  }
  if (t == "Flatten") {
    emit(nm, "Flatten", in, out).set_attr("axis", std::to_string(A_INT("axis", 1)));
    return true;
  }
  if (t == "Squeeze" || t == "Unsqueeze") {
    auto& op = emit(nm, t, in, out);
    if (a.count("axes")) op.set_attr("axes", join(A_INTS("axes")));
    return true;
  }
  if (t == "Transpose") {
    auto& op = emit(nm, "Reorder", in, out);
    if (a.count("perm")) op.set_attr("perm", join(A_INTS("perm")));
    return true;
  }
  if (t == "Concat") {
    // Concat-1 (opset < 4) defaults axis to 1; it is required from Concat-4 on.
    emit(nm, "Concat", in, out).set_attr("axis", std::to_string(A_INT("axis", opset < 4 ? 1 : 0)));
    return true;
  }
  if (t == "Split") {
    if (a.count("num_outputs")) {
      *why = "num_outputs (opset 18)";
      return false;
    }
    auto& op = emit(nm, "Split", in, out);
    op.set_attr("axis", std::to_string(A_INT("axis", 0)));
    if (a.count("split")) op.set_attr("split", join(A_INTS("split")));
    return true;
  }
  if (t == "Slice") {
    if (a.count("starts") || a.count("ends")) {  // Slice-1 (opset < 10): attributes, one input
      *why = "'starts' / 'ends' attributes (opset < 10)";
      return false;
    }
    if (in.size() >= 5 && !in[4].empty() && (in[3].empty())) {
      // axes omitted but steps given: materialise axes = 0..n-1 from the starts' length.
      const TensorInfo* s = m.find(in[1]);
      if (!s || !s->is_weight || s->shape.size() != 1) {
        *why = "steps without axes and non-constant starts";
        return false;
      }
      std::vector<int64_t> ax(size_t(s->shape[0]));
      for (size_t i = 0; i < ax.size(); ++i) ax[i] = int64_t(i);
      in[3] = const_tensor(out[0] + "_axes", DType::int64, {int64_t(ax.size())}, ax);
    }
    emit(nm, "Slice", in, out);
    return true;
  }
  if (t == "Gather") {
    emit(nm, "Gather", in, out).set_attr("axis", std::to_string(A_INT("axis", 0)));
    return true;
  }
  if (t == "Shape") {
    auto& op = emit(nm, "Shape", in, out);
    if (a.count("start")) op.set_attr("start", std::to_string(A_INT("start", 0)));
    if (a.count("end")) op.set_attr("end", std::to_string(A_INT("end", 0)));
    return true;
  }
  if (t == "ConstantOfShape") {
    double v = 0;
    DType dt = DType::fp32;
    if (a.count("value")) {
      auto b = onnx_tensor_value(a.at("value")->t(), dir, path + ": node '" + nm + "' value", path);
      NE_CHECK(b.bytes.size() == dtype_size(b.dtype), path, ": node '", nm,
               "': ConstantOfShape value must hold one element");
      dt = b.dtype;
      switch (dt) {
        case DType::fp32: { float f; std::memcpy(&f, b.bytes.data(), 4); v = f; break; }
        case DType::int64: { int64_t x; std::memcpy(&x, b.bytes.data(), 8); v = double(x); break; }
        case DType::int32: { int32_t x; std::memcpy(&x, b.bytes.data(), 4); v = x; break; }
        case DType::s8: v = int8_t(b.bytes[0]); break;
        case DType::u8: case DType::boolean: v = b.bytes[0]; break;
        case DType::fp16: { uint16_t h; std::memcpy(&h, b.bytes.data(), 2); v = fp16_to_fp32(h); break; }
        case DType::bf16: { uint16_t h; std::memcpy(&h, b.bytes.data(), 2); v = bf16_to_fp32(h); break; }
        default: break;
      }
    }
    auto& op = emit(nm, "ConstantOfShape", in, out);
    op.set_attr("value", dt == DType::int64 ? std::to_string(int64_t(v)) : OpInfo::attr_str(v));
    op.set_attr("dtype", dtype_name(dt));
    return true;
  }
  if (t.rfind("Reduce", 0) == 0) {  // ReduceMean, ReduceSum, ReduceMax, ...
    auto& op = emit(nm, t, in, out);
    if (a.count("axes")) op.set_attr("axes", join(A_INTS("axes")));
    op.set_attr("keepdims", std::to_string(A_INT("keepdims", 1)));
    if (a.count("noop_with_empty_axes"))
      op.set_attr("noop_with_empty_axes", std::to_string(A_INT("noop_with_empty_axes", 0)));
    return true;
  }
  if (t == "ArgMax" || t == "ArgMin") {
    auto& op = emit(nm, t, in, out);
    op.set_attr("axis", std::to_string(A_INT("axis", 0)));
    op.set_attr("keepdims", std::to_string(A_INT("keepdims", 1)));
    op.set_attr("select_last_index", std::to_string(A_INT("select_last_index", 0)));
    return true;
  }
  *why = "";
  return false;
}

// com.microsoft QGemm / DynamicQuantizeMatMul / MatMulIntegerToFloat: lowered 1:1 (ONNX inputs,
// attributes as strings) for pass::import_qop; an attribute it does not know is an error here.
void Lowerer::lower_qop_contrib(const onnx::NodeProto& n, const std::string& node_name) {
  const std::string& t = n.op_type();
  const auto& allowed = pass::qop_contrib_ops().at(t);
  for (auto& x : n.attribute()) {
    NE_CHECK(allowed.count(x.name()), path, ": node '", node_name, "' (com.microsoft ", t, "): attribute '",
             x.name(), "' is not supported");
    bool is_float = x.name() == "alpha";
    NE_CHECK(x.type() == (is_float ? onnx::AttributeProto::FLOAT : onnx::AttributeProto::INT), path, ": node '",
             node_name, "' (com.microsoft ", t, "): attribute '", x.name(), "' must be ", is_float ? "a float" : "an int");
  }
  NE_CHECK(n.output_size() == 1 && !n.output(0).empty(), path, ": node '", node_name, "' (com.microsoft ", t,
           "): expects one output");
  std::vector<std::string> in(n.input().begin(), n.input().end());
  auto& op = emit(n.name().empty() ? node_name : n.name(), t, in, {n.output(0)});
  for (auto& x : n.attribute())
    op.set_attr(x.name(), x.name() == "alpha" ? OpInfo::attr_str(x.f()) : std::to_string(x.i()));
}

void Lowerer::lower_softmax_v1(const std::string& nm, const std::string& x, const std::string& y,
                                int64_t axis, bool log) {
  const int r = rank_of(x);
  auto finish = [&](const std::string& src, const std::string& dst, const std::string& name) {
    if (!log) {
      emit(name, "Softmax", {src}, {dst}).set_attr("axis", "-1");
      return;
    }
    std::string sm = tmp(dst);
    emit(name, "Softmax", {src}, {sm}).set_attr("axis", "-1");
    emit(name + "_log", "UnaryOp", {sm}, {dst}).set_attr("algorithm", "log");
  };
  if (axis == -1 || (r > 0 && (axis == r - 1 || axis == -1))) {
    finish(x, y, nm);  // the last axis: one row per softmax either way
    return;
  }
  NE_CHECK(r < 0 || (axis >= -r && axis < r), path, ": node '", nm, "' (",
           log ? "LogSoftmax" : "Softmax", "): axis ", axis, " is out of range for rank ", r);
  std::string flat = tmp(y), sm = tmp(y), shape = tmp(y);
  emit(nm + "_coerce", "Flatten", {x}, {flat}).set_attr("axis", std::to_string(axis));
  finish(flat, sm, nm);
  emit(nm + "_shape", "Shape", {x}, {shape});
  emit(nm + "_restore", "Reshape", {sm, shape}, {y}).set_attr("allowzero", "0");
}

}  // namespace ne::onnx_internal
