// com.microsoft ops -> IR (see ms_import.hpp). Semantics from ONNX Runtime's
// docs/ContribOperators.md and its CPU kernels; each op becomes the ops torch's export of the
// same computation lowers to:
//   Attention                -> three InnerProducts (the packed [H, 3H] weight split at compile
//                               time), head-split Reshape views, Matmul(Q, K, mask) -> Softmax ->
//                               Matmul(P, V), merge Reshape (fuse_attention_op makes them one
//                               Attention op)
//   EmbedLayerNormalization  -> Gather + Slice(position table) (+ Gather) adds -> LayerNorm;
//                               mask_index = count of mask == 1 per row
//   SkipLayerNormalization   -> (input + bias) + skip -> LayerNorm (fuse_inner_product folds the
//                               bias and the residual into the InnerProduct before it)
//   BiasGelu / FastGelu / Gelu -> BinaryAdd + Gelu gelu_erf / gelu_tanh
// Each op's attributes are listed; any other attribute, a value with other semantics, or an
// input / output this lowering cannot honour is refused with its name.
#include "compile/ms_import.hpp"

#include <cmath>
#include <cstring>
#include <set>

#include "compile/onnx_import.hpp"

namespace ne {

namespace {
std::string join(const std::vector<int64_t>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r;
}
std::map<std::string, const onnx::AttributeProto*> attrs_of(const onnx::NodeProto& n) {
  std::map<std::string, const onnx::AttributeProto*> a;
  for (auto& x : n.attribute()) a[x.name()] = &x;
  return a;
}
// The first attribute not in `known`, as a reason; "" if all are known.
std::string unknown_attr(const onnx::NodeProto& n, const std::set<std::string>& known) {
  for (auto& x : n.attribute())
    if (!known.count(x.name())) return "attribute '" + x.name() + "' is not supported";
  return "";
}
std::string in_at(const onnx::NodeProto& n, int i) { return i < n.input_size() ? n.input(i) : std::string(); }
std::string out_at(const onnx::NodeProto& n, int i) { return i < n.output_size() ? n.output(i) : std::string(); }
}  // namespace

MsOpLowerer::MsOpLowerer(Model& m, const onnx::GraphProto& g, Emit emit, Tmp tmp)
    : m_(m), g_(g), emit_(std::move(emit)), tmp_(std::move(tmp)) {
  for (auto& n : g_.node())
    for (auto& o : n.output()) producer_[o] = &n;
}

std::vector<std::string> MsOpLowerer::supported() {
  return {"com.microsoft::Attention", "com.microsoft::BiasGelu", "com.microsoft::EmbedLayerNormalization",
          "com.microsoft::FastGelu", "com.microsoft::Gelu", "com.microsoft::SkipLayerNormalization"};
}

bool MsOpLowerer::lower(const onnx::NodeProto& n, std::string* why) {
  const std::string& t = n.op_type();
  // ONNX's library has no schemas for com.microsoft ops: each lowering checks the inputs it reads
  // (in_at: "" past the node's inputs); all of them write output 0.
  if (out_at(n, 0).empty()) {
    *why = "no output";
    return false;
  }
  if (t == "Attention") return attention(n, why);
  if (t == "EmbedLayerNormalization") return embed_layer_norm(n, why);
  if (t == "SkipLayerNormalization") return skip_layer_norm(n, why);
  if (t == "BiasGelu" || t == "FastGelu" || t == "Gelu") return gelu(n, why);
  *why = "";
  return false;
}

std::string MsOpLowerer::scalar(const std::string& base, DType dt, double v) {
  std::string name = tmp_(base);
  switch (dt) {
    case DType::fp32: m_.add_weight(name, dt, {}, std::vector<float>{float(v)}); break;
    case DType::int32: m_.add_weight(name, dt, {}, std::vector<int32_t>{int32_t(v)}); break;
    default: m_.add_weight(name, DType::int64, {}, std::vector<int64_t>{int64_t(v)}); break;
  }
  return name;
}

bool MsOpLowerer::consumed(const std::string& t) const {
  if (t.empty()) return false;
  for (auto& n : g_.node())
    for (auto& i : n.input())
      if (i == t) return true;
  for (auto& o : g_.output())
    if (o.name() == t) return true;
  return false;
}

// Rank from declarations (graph inputs, value_info), tensors written here, and the ops that
// carry a mask to an Attention (Cast, Identity, ReduceSum, Unsqueeze/Squeeze with axes).
int MsOpLowerer::rank_of(const std::string& t, int depth) const {
  if (depth > 16) return -1;
  auto r = ranks_.find(t);
  if (r != ranks_.end()) return r->second;
  auto declared = [&](const onnx::ValueInfoProto& v) {
    return v.name() == t && v.type().has_tensor_type() && v.type().tensor_type().has_shape();
  };
  for (auto& v : g_.input())
    if (declared(v)) return v.type().tensor_type().shape().dim_size();
  for (auto& v : g_.value_info())
    if (declared(v)) return v.type().tensor_type().shape().dim_size();
  if (const TensorInfo* w = m_.find(t))
    if (w->is_weight) return int(w->shape.size());
  auto p = producer_.find(t);
  if (p == producer_.end()) return -1;
  const onnx::NodeProto& n = *p->second;
  if (n.op_type() == "Cast" || n.op_type() == "Identity") return rank_of(in_at(n, 0), depth + 1);
  if (n.op_type() == "ReduceSum" || n.op_type() == "Unsqueeze" || n.op_type() == "Squeeze") {
    int r0 = rank_of(in_at(n, 0), depth + 1);
    if (r0 < 0) return -1;
    int64_t keep = 1;
    int64_t naxes = -1;
    for (auto& a : n.attribute()) {
      if (a.name() == "keepdims") keep = a.i();
      if (a.name() == "axes") naxes = a.ints_size();
    }
    if (naxes < 0 && n.input_size() > 1) {
      const TensorInfo* ax = m_.find(n.input(1));
      if (ax && ax->is_weight) naxes = ax->numel();
    }
    if (naxes < 0) return n.op_type() == "ReduceSum" && !keep ? 0 : -1;
    if (n.op_type() == "Unsqueeze") return r0 + int(naxes);
    if (n.op_type() == "Squeeze") return r0 - int(naxes);
    return keep ? r0 : r0 - int(naxes);
  }
  return -1;
}

std::string MsOpLowerer::attention_mask(const std::string& mask_index, int rank, const std::string& x,
                                        float filter, const std::string& node) {
  std::string key = mask_index + "|" + OpInfo::attr_str(filter);
  auto hit = masks_.find(key);
  if (hit != masks_.end()) return hit->second;
  const std::string base = node + "/mask";
  std::string keep = tmp_(base + "_keep");
  if (rank == 1) {
    // Valid lengths [B] (right padding): keep[b, s] = s < len[b].
    std::string s_shape, s = tmp_(base + "_seq_scalar");
    auto known = seq_of_mask_.find(mask_index);
    if (known != seq_of_mask_.end()) {
      s_shape = known->second;
    } else {
      s_shape = tmp_(base + "_seq");
      emit_(base + "_seq", "Shape", {x}, {s_shape}).set_attr("start", "1");
      m_.ops.back().set_attr("end", "2");
    }
    emit_(base + "_seq_scalar", "Squeeze", {s_shape}, {s}).set_attr("axes", "0");
    std::string pos = tmp_(base + "_pos");
    emit_(base + "_pos", "Range", {scalar(base + "_zero", DType::int64, 0), s, scalar(base + "_one", DType::int64, 1)},
          {pos});
    std::string len = tmp_(base + "_len"), len2 = tmp_(base + "_len2");
    emit_(base + "_len", "Cast", {mask_index}, {len}).set_attr("to", "int64");
    emit_(base + "_len2", "Reshape", {len}, {len2}).set_attr("dst_shape", "-1,1");
    emit_(base + "_keep", "BinaryOp", {pos, len2}, {keep}).set_attr("algorithm", "less");
  } else {
    // Raw mask [B, S]: keep where mask > 0.
    std::string mf = tmp_(base + "_f");
    emit_(base + "_f", "Cast", {mask_index}, {mf}).set_attr("to", "fp32");
    emit_(base + "_keep", "BinaryOp", {mf, scalar(base + "_zero", DType::fp32, 0)}, {keep})
        .set_attr("algorithm", "greater");
  }
  std::string add2 = tmp_(base + "_add"), add4 = tmp_(base);
  emit_(base + "_add", "Where", {keep, scalar(base + "_zero_f", DType::fp32, 0), scalar(base + "_filter", DType::fp32, filter)},
        {add2});
  emit_(base, "Reshape", {add2}, {add4}).set_attr("dst_shape", "0,1,1,-1");
  masks_[key] = add4;
  return add4;
}

bool MsOpLowerer::attention(const onnx::NodeProto& n, std::string* why) {
  *why = unknown_attr(n, {"num_heads", "qkv_hidden_sizes", "scale", "unidirectional", "mask_filter_value",
                          "do_rotary", "rotary_embedding_dim", "past_present_share_buffer"});
  if (!why->empty()) return false;
  auto a = attrs_of(n);
  auto int_attr = [&](const char* k, int64_t def) { return a.count(k) ? a.at(k)->i() : def; };
  for (const char* k : {"unidirectional", "do_rotary", "past_present_share_buffer"})
    if (int_attr(k, 0) != 0) {
      *why = std::string(k) + "=" + std::to_string(int_attr(k, 0)) + " is not supported";
      return false;
    }
  if (!a.count("num_heads") || a.at("num_heads")->i() <= 0) {
    *why = "attribute 'num_heads' missing or not positive";
    return false;
  }
  const int64_t heads = a.at("num_heads")->i();
  static const char* extra[] = {"", "", "", "", "past", "attention_bias", "past_sequence_length"};
  for (int i = 4; i < n.input_size(); ++i)
    if (!n.input(i).empty()) {
      *why = std::string("input '") + (i < 7 ? extra[i] : "#" + std::to_string(i)) + "' is not supported";
      return false;
    }
  for (int i = 1; i < n.output_size(); ++i)
    if (!n.output(i).empty()) {
      *why = "output 'present' is not supported";
      return false;
    }
  const std::string x = in_at(n, 0), wname = in_at(n, 1), bname = in_at(n, 2), mask = in_at(n, 3);
  const TensorInfo* w = m_.find(wname);
  if (!w || !w->is_weight || w->dtype != DType::fp32 || w->shape.size() != 2) {
    *why = "input 'weights' must be a constant fp32 [hidden, q+k+v] initializer";
    return false;
  }
  const int64_t K = w->shape[0], N = w->shape[1];
  int64_t qh = N / 3, kh = N / 3, vh = N / 3;
  if (a.count("qkv_hidden_sizes")) {
    auto& s = a.at("qkv_hidden_sizes")->ints();
    if (s.size() != 3) {
      *why = "attribute 'qkv_hidden_sizes' must have 3 values";
      return false;
    }
    qh = s[0], kh = s[1], vh = s[2];
  } else if (N % 3) {
    *why = "weights' second dim " + std::to_string(N) + " is not 3 * hidden";
    return false;
  }
  if (qh <= 0 || qh != kh || vh <= 0 || qh + kh + vh != N || qh % heads || vh % heads) {
    *why = "attribute 'qkv_hidden_sizes' (" + std::to_string(qh) + "," + std::to_string(kh) + "," +
           std::to_string(vh) + ") does not fit weights [" + std::to_string(K) + "," + std::to_string(N) +
           "] and num_heads " + std::to_string(heads);
    return false;
  }
  const TensorInfo* b = bname.empty() ? nullptr : m_.find(bname);
  if (!bname.empty() && (!b || !b->is_weight || b->dtype != DType::fp32 || b->numel() != N)) {
    *why = "input 'bias' must be a constant fp32 [" + std::to_string(N) + "] initializer";
    return false;
  }
  int mask_rank = -1;
  if (!mask.empty()) {
    mask_rank = rank_of(mask);
    if (mask_rank != 1 && mask_rank != 2) {
      *why = mask_rank < 0 ? "input 'mask_index' of unknown rank (declare its shape)"
                           : "input 'mask_index' of rank " + std::to_string(mask_rank) +
                                 " is not supported (1-D lengths [B] or 2-D raw mask [B, S])";
      return false;
    }
  }
  const double filter = a.count("mask_filter_value") ? double(a.at("mask_filter_value")->f()) : -10000.0;
  const int64_t dq = qh / heads, dv = vh / heads;
  double scale = a.count("scale") ? double(a.at("scale")->f()) : 0.0;
  if (scale == 0.0) scale = 1.0 / std::sqrt(double(dq));

  // Split the packed weight [K, q|k|v] and bias into three constant InnerProduct weights.
  const std::string nm = n.name().empty() ? "Attention" : n.name();
  const float* W = w->as<float>();
  const float* B = b ? b->as<float>() : nullptr;
  const int64_t off[3] = {0, qh, qh + kh}, cols[3] = {qh, kh, vh};
  const char* part[3] = {"q", "k", "v"};
  std::string heads4[3];
  for (int p = 0; p < 3; ++p) {
    std::vector<float> wp(size_t(K * cols[p]));
    for (int64_t k = 0; k < K; ++k)
      std::memcpy(&wp[size_t(k * cols[p])], W + k * N + off[p], size_t(cols[p]) * sizeof(float));
    std::string wn = tmp_(nm + "/" + part[p] + "_weight");
    m_.add_weight(wn, DType::fp32, {K, cols[p]}, wp);
    std::vector<std::string> ins = {x, wn};
    if (B) {
      std::string bn = tmp_(nm + "/" + part[p] + "_bias");
      m_.add_weight(bn, DType::fp32, {cols[p]}, std::vector<float>(B + off[p], B + off[p] + cols[p]));
      ins.push_back(bn);
    }
    std::string y = tmp_(nm + "/" + part[p]), y4 = tmp_(nm + "/" + part[p] + "_heads");
    emit_(nm + "/" + part[p], "InnerProduct", ins, {y});
    emit_(nm + "/" + part[p] + "_heads", "Reshape", {y}, {y4})
        .set_attr("dst_shape", join({0, 0, heads, p == 2 ? dv : dq}));
    heads4[p] = y4;
  }
  std::vector<std::string> qk_in = {heads4[0], heads4[1]};
  if (!mask.empty()) qk_in.push_back(attention_mask(mask, mask_rank, x, float(filter), nm));
  std::string scores = tmp_(nm + "/scores"), probs = tmp_(nm + "/probs"), ctx = tmp_(nm + "/context");
  OpInfo& qk = emit_(nm + "/scores", "Matmul", qk_in, {scores});
  qk.set_attr("src0_perm", "0,2,1,3");
  qk.set_attr("src1_perm", "0,2,3,1");
  qk.set_attr("output_scale", OpInfo::attr_str(scale));
  if (!mask.empty()) qk.set_attr("append_op", "binary_add");
  emit_(nm + "/softmax", "Softmax", {scores}, {probs}).set_attr("axis", "-1");
  OpInfo& pv = emit_(nm + "/context", "Matmul", {probs, heads4[2]}, {ctx});
  pv.set_attr("src1_perm", "0,2,1,3");
  pv.set_attr("dst_perm", "0,2,1,3");
  emit_(nm, "Reshape", {ctx}, {n.output(0)}).set_attr("dst_shape", join({0, 0, vh}));
  return true;
}

bool MsOpLowerer::embed_layer_norm(const onnx::NodeProto& n, std::string* why) {
  *why = unknown_attr(n, {"epsilon", "mask_index_type"});
  if (!why->empty()) return false;
  auto a = attrs_of(n);
  const double eps = a.count("epsilon") ? double(a.at("epsilon")->f()) : 1e-12;
  if (a.count("mask_index_type") && a.at("mask_index_type")->i() != 0 && a.at("mask_index_type")->i() != 1) {
    *why = "mask_index_type=" + std::to_string(a.at("mask_index_type")->i()) + " is not supported (0 or 1)";
    return false;
  }
  const std::string ids = in_at(n, 0), seg = in_at(n, 1), word = in_at(n, 2), pos = in_at(n, 3),
                    seg_table = in_at(n, 4), gamma = in_at(n, 5), beta = in_at(n, 6), mask = in_at(n, 7),
                    pos_ids = in_at(n, 8);
  if (ids.empty() || word.empty() || pos.empty() || gamma.empty() || beta.empty()) {
    *why = "inputs input_ids, word_embedding, position_embedding, gamma and beta are required";
    return false;
  }
  if (seg.empty() != seg_table.empty()) {
    *why = "segment_ids and segment_embedding must be given together";
    return false;
  }
  if (n.input_size() > 9) {
    *why = "more than 9 inputs";
    return false;
  }
  const std::string nm = n.name().empty() ? "EmbedLayerNormalization" : n.name();
  const std::string out = out_at(n, 0), mask_index = out_at(n, 1), sum_out = out_at(n, 2);
  std::string we = tmp_(nm + "/word");
  emit_(nm + "/word", "Gather", {word, ids}, {we}).set_attr("axis", "0");
  std::string pe = tmp_(nm + "/position");
  std::string s;  // Shape(input_ids)[1:2]
  if (pos_ids.empty() || !mask_index.empty()) {
    s = tmp_(nm + "/seq");
    emit_(nm + "/seq", "Shape", {ids}, {s}).set_attr("start", "1");
    m_.ops.back().set_attr("end", "2");
  }
  if (!pos_ids.empty()) {
    emit_(nm + "/position", "Gather", {pos, pos_ids}, {pe}).set_attr("axis", "0");
  } else {
    // Positions 0..S-1: the first S rows of the table (what fuse_embeddings makes of torch's
    // Gather(table, arange[:S])).
    std::string zero = tmp_(nm + "/starts"), axes = tmp_(nm + "/axes");
    m_.add_weight(zero, DType::int64, {1}, std::vector<int64_t>{0});
    m_.add_weight(axes, DType::int64, {1}, std::vector<int64_t>{0});
    emit_(nm + "/position", "Slice", {pos, zero, s, axes}, {pe});
  }
  std::string sum = seg.empty() && !sum_out.empty() ? sum_out : tmp_(nm + "/sum");
  emit_(nm + "/add_position", "BinaryAdd", {we, pe}, {sum});
  if (!seg.empty()) {
    std::string se = tmp_(nm + "/segment");
    emit_(nm + "/segment", "Gather", {seg_table, seg}, {se}).set_attr("axis", "0");
    std::string sum2 = sum_out.empty() ? tmp_(nm + "/sum") : sum_out;
    emit_(nm + "/add_segment", "BinaryAdd", {sum, se}, {sum2});
    sum = sum2;
  }
  emit_(nm, "LayerNorm", {sum, gamma, beta}, {out}).set_attr("epsilon", OpInfo::attr_str(eps));
  m_.ops.back().set_attr("axis", "-1");
  if (!mask_index.empty()) {
    // ORT: mask_index[b] = number of mask[b, :] == 1; zeros without a mask.
    if (!mask.empty()) {
      std::string m32 = tmp_(nm + "/mask_int32"), eq = tmp_(nm + "/mask_eq"), c = tmp_(nm + "/mask_count");
      emit_(nm + "/mask_int32", "Cast", {mask}, {m32}).set_attr("to", "int32");
      emit_(nm + "/mask_eq", "BinaryOp", {m32, scalar(nm + "/one", DType::int32, 1)}, {eq})
          .set_attr("algorithm", "equal");
      emit_(nm + "/mask_count", "Cast", {eq}, {c}).set_attr("to", "int32");
      OpInfo& r = emit_(nm + "/mask_index", "ReduceSum", {c}, {mask_index});
      r.set_attr("axes", "1");
      r.set_attr("keepdims", "0");
    } else {
      std::string b = tmp_(nm + "/batch");
      emit_(nm + "/batch", "Shape", {ids}, {b}).set_attr("start", "0");
      m_.ops.back().set_attr("end", "1");
      OpInfo& c = emit_(nm + "/mask_index", "ConstantOfShape", {b}, {mask_index});
      c.set_attr("value", "0");
      c.set_attr("dtype", "int32");
    }
    ranks_[mask_index] = 1;
    seq_of_mask_[mask_index] = s;
  }
  return true;
}

bool MsOpLowerer::skip_layer_norm(const onnx::NodeProto& n, std::string* why) {
  *why = unknown_attr(n, {"epsilon"});
  if (!why->empty()) return false;
  auto a = attrs_of(n);
  const double eps = a.count("epsilon") ? double(a.at("epsilon")->f()) : 1e-12;
  const std::string x = in_at(n, 0), skip = in_at(n, 1), gamma = in_at(n, 2), beta = in_at(n, 3), bias = in_at(n, 4);
  if (x.empty() || skip.empty() || gamma.empty() || n.input_size() > 5) {
    *why = "inputs input, skip, gamma (beta, bias optional) expected";
    return false;
  }
  static const char* outs[] = {"output", "mean", "inv_std_var", "input_skip_bias_sum"};
  for (int i = 1; i < 3 && i < n.output_size(); ++i)
    if (consumed(n.output(i))) {
      *why = std::string("output '") + outs[i] + "' is not supported";
      return false;
    }
  if (n.output_size() > 4) {
    *why = "more than 4 outputs";
    return false;
  }
  const std::string nm = n.name().empty() ? "SkipLayerNormalization" : n.name();
  const std::string sum_out = out_at(n, 3);
  // (input + bias) + skip: the order torch's Linear + residual lowers to.
  std::string y = x;
  if (!bias.empty()) {
    y = tmp_(nm + "/bias");
    emit_(nm + "/bias", "BinaryAdd", {x, bias}, {y});
  }
  std::string sum = sum_out.empty() ? tmp_(nm + "/sum") : sum_out;
  emit_(nm + "/skip", "BinaryAdd", {y, skip}, {sum});
  OpInfo& ln = emit_(nm, "LayerNorm", {sum, gamma, beta}, {n.output(0)});
  ln.set_attr("epsilon", OpInfo::attr_str(eps));
  ln.set_attr("axis", "-1");
  return true;
}

bool MsOpLowerer::gelu(const onnx::NodeProto& n, std::string* why) {
  *why = unknown_attr(n, {});
  if (!why->empty()) return false;
  const std::string& t = n.op_type();
  const std::string x = in_at(n, 0), bias = in_at(n, 1);
  const size_t max_in = t == "Gelu" ? 1 : 2;
  if (x.empty() || size_t(n.input_size()) > max_in || (t == "BiasGelu" && bias.empty())) {
    *why = t == "Gelu" ? "one input expected" : t == "BiasGelu" ? "inputs A and B expected" : "inputs X, bias? expected";
    return false;
  }
  if (n.output_size() != 1) {
    *why = "one output expected";
    return false;
  }
  const std::string nm = n.name().empty() ? t : n.name();
  std::string y = x;
  if (!bias.empty()) {
    y = tmp_(nm + "/bias");
    emit_(nm + "/bias", "BinaryAdd", {x, bias}, {y});
  }
  emit_(nm, "Gelu", {y}, {n.output(0)}).set_attr("algorithm", t == "FastGelu" ? "gelu_tanh" : "gelu_erf");
  return true;
}

}  // namespace ne
