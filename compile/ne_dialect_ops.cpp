// Neural Engine dialect: one lowering per operator type, into our operators (docs/NE_DIALECT.md).
// Semantics follow the Neural Engine executor (intel-extension-for-transformers, deprecated
// runtime): its InnerProduct computes src[M, K] x W with W stored [N, K] unless src1_perm is
// 1,0 (stored [K, N]); `reshape` / `reshape_dims` reshape the output, taking the -1 dims in
// order from a shape-donor input (the last one); Gather reads (indices, table); Reshape's
// `dims` fill -1s from the donor, `mul` merges dims.
#include <cmath>

#include "common/error.hpp"
#include "compile/ne_dialect_lower.hpp"

namespace ne {
namespace ne_dialect {

std::vector<int64_t> ints_of(const std::string& v) {
  std::vector<int64_t> r;
  OpInfo tmp;
  tmp.attrs.push_back({"v", v});
  return tmp.attr_ints("v");
}

bool truthy(const std::string& v) { return v == "True" || v == "true" || v == "1"; }

std::string perm_attr(const std::string& v) {  // normalise "0, 2,1,3" -> "0,2,1,3"
  std::string r;
  for (auto i : ints_of(v)) r += (r.empty() ? "" : ",") + std::to_string(i);
  return r;
}

void res_precision(Lowerer& L, const std::string& p) {
  if (L.res.precision == "fp32") L.res.precision = p;
  else if (L.res.precision != p) L.error("mixes weight precisions " + L.res.precision + " and " + p);
}

namespace {

// ---------------------------------------------------------------- PaddingSequence
// The Neural Engine writes 0 for the first len(b) positions of row b and padding_value
// (-10000) after them, len(b) = 1 + the last position whose mask is non-zero, broadcast to
// dst_shape (e.g. [B, heads, S, S]). Lowered to the additive mask (1 - mask) · padding_value as
// [B, 1, 1, S] (broadcast by its readers): equal for right-padded masks (see NE_DIALECT.md).
void padding_sequence(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"dst_shape", "dims", "padding_value", "seq_len_first", "mode"});
  if (a.count("seq_len_first")) L.error("attribute seq_len_first='" + a["seq_len_first"] + "' is not supported (a [B, S] mask only)");
  if (a.count("mode")) L.error("attribute mode='" + a["mode"] + "' is not supported (BERT-family encoders only)");
  if (op.inputs.size() != 1) L.error("expects 1 input (the [B, S] mask)");
  const Tens m = L.get(op.inputs[0]);
  if (m.ne.size() != 2) L.error("mask '" + op.inputs[0] + "' must be [B, S], is " + shape_str(m.ne));
  const float pad = a.count("padding_value") ? std::stof(a["padding_value"]) : -10000.f;
  if (!std::isfinite(pad)) L.error("padding_value must be finite");
  const std::string n = op.outputs.at(0);
  std::string x = L.reshape(m.name, m.ours, {m.ours[0], Sym::k(1), Sym::k(1), m.ours[1]}, L.fresh(n + "/mask4"));
  std::string c = L.fresh(n + "/cast");
  L.emit("Cast", L.fresh(n + "/ne_cast"), {x}, {c}, {{"to", "fp32"}});
  std::string s = L.fresh(n + "/inverted");
  L.emit("BinaryOp", L.fresh(n + "/ne_sub"), {L.const_f32(n + "/one", 1.f), c}, {s}, {{"algorithm", "sub"}});
  L.emit("BinaryOp", op.name, {s, L.const_f32(n + "/padding_value", pad)}, {n}, {{"algorithm", "mul"}});
  // The Neural Engine's shape, for the record; readers broadcast ours.
  SShape ne_shape;
  if (a.count("dst_shape")) {
    auto want = ints_of(a["dst_shape"]);
    auto dims = a.count("dims") ? ints_of(a["dims"]) : std::vector<int64_t>{};
    size_t pi = 0, bi = 0;
    for (auto w : want) {
      if (w == -1 && pi < 2) ne_shape.push_back(m.ne[pi++]);
      else if (w == 0 && bi < dims.size()) ne_shape.push_back(m.ne[size_t(dims[bi++])]);
      else ne_shape.push_back(Sym::k(w));
    }
  }
  L.set(n, n, {m.ours[0], Sym::k(1), Sym::k(1), m.ours[1]}, {m.ours[0], Sym::k(1), Sym::k(1), m.ours[1]});
}

// ---------------------------------------------------------------- Reshape
void reshape_op(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"dst_shape", "dims", "mul", "unsqueeze", "squeeze", "output_dtype"});
  if (a.count("output_dtype") && a["output_dtype"] != "fp32" && a["output_dtype"] != "bf16")
    L.error("attribute output_dtype='" + a["output_dtype"] + "' is not supported (fp32, bf16: activations stay fp32)");
  if (op.inputs.empty() || op.inputs.size() > 2) L.error("expects 1 or 2 inputs (tensor, shape donor)");
  const Tens x = L.get(op.inputs[0]);
  SShape target;
  if (a.count("unsqueeze")) {
    target = x.ne;
    int64_t u = std::stoll(a["unsqueeze"]);
    if (u == -1) target.push_back(Sym::k(1));
    else if (u >= 0 && size_t(u) <= target.size()) target.insert(target.begin() + u, Sym::k(1));
    else L.error("unsqueeze " + a["unsqueeze"] + " is out of range");
  } else if (a.count("squeeze")) {
    target = x.ne;
    int64_t q = std::stoll(a["squeeze"]);
    if (q == -1 && !target.empty()) target.pop_back();
    else if (q >= 0 && size_t(q) < target.size()) target.erase(target.begin() + q);
    else L.error("squeeze " + a["squeeze"] + " is out of range");
  } else {
    std::vector<int64_t> want;
    if (a.count("dst_shape")) want = ints_of(a["dst_shape"]);
    else for (auto& d : x.ne) want.push_back(d.is_const() ? d.c : -1);
    auto dims = a.count("dims") ? ints_of(a["dims"]) : std::vector<int64_t>{};
    SShape donor = op.inputs.size() == 2 ? L.get(op.inputs[1]).ne : x.ne;
    // dst_size: the Neural Engine infers the last -1 from the input's size; a weight read as a
    // prefix (position embeddings reshaped to [1, S, H]) has no -1 left to infer.
    target = L.dst_shape(want, numel(x.ne), dims.empty() ? nullptr : &donor, dims);
    if (a.count("mul")) target = L.merge_dims(target, ints_of(a["mul"]), false);
  }
  const std::string n = op.outputs.at(0);
  std::string src = x.name;
  SShape from = x.ours;
  Sym nt = numel(target), nx = numel(x.ne);
  if (nt != nx) {
    // The Neural Engine's Reshape is a view of the first numel(target) elements: allowed for a
    // weight read by rows (the position table's first S rows).
    const TensorInfo* w = L.in.find(x.name);
    Sym row = Sym::k(1), rows;
    for (size_t i = 1; i < x.ne.size(); ++i) row = row * x.ne[i];
    if (!w || !w->is_weight || x.ne.empty() || !sym_div(nt, row, &rows))
      L.error("reshapes " + shape_str(x.ne) + " ('" + x.name + "') to " + shape_str(target) +
              ": element counts differ (only a weight may be read as its first rows)");
    src = L.fresh(n + "/rows");
    L.emit("Slice", L.fresh(n + "/ne_rows"),
           {x.name, L.const_i64(n + "/starts", {0}), L.sym_tensor(rows), L.const_i64(n + "/axes", {0})}, {src});
    from = x.ours;
    from[0] = rows;
  }
  const SShape ours = expand(target);
  std::string o = L.reshape(src, from, ours, n);
  L.set(n, o, target, ours, x.dtype);
}

// ---------------------------------------------------------------- Gather
void gather(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"axis", "batch_dims", "append_op", "reshape", "reshape_dims", "mul", "keep_dims"});
  if (a.count("axis") && std::stoll(a["axis"]) != 0) L.error("attribute axis='" + a["axis"] + "' is not supported (0)");
  if (a.count("batch_dims") && std::stoll(a["batch_dims"]) != 0)
    L.error("attribute batch_dims='" + a["batch_dims"] + "' is not supported (0)");
  const bool add = a.count("append_op") && a["append_op"] == "binary_add";
  if (a.count("append_op") && !add) L.error("attribute append_op='" + a["append_op"] + "' is not supported (binary_add)");
  if (a.count("keep_dims") && !truthy(a["keep_dims"])) L.error("attribute keep_dims='" + a["keep_dims"] + "' is not supported (true)");
  if (op.inputs.size() < 2 + (add ? 1 : 0)) L.error("too few inputs (indices, table, [addend], [shape donor])");
  const Tens idx = L.get(op.inputs[0]);
  const std::string table = op.inputs[1];
  SShape tshape = L.weight_shape(table);
  if (tshape.size() != 2) L.error("table '" + table + "' must be 2-D");
  const std::string n = op.outputs.at(0);
  SShape ne = idx.ne, ours = idx.ours;
  ne.push_back(tshape[1]);
  ours.push_back(tshape[1]);
  std::string g = L.fresh(n + "/gathered");
  L.emit("Gather", L.fresh(n + "/ne_gather"), {L.weight_f32(table), idx.name}, {g}, {{"axis", "0"}});
  SShape pre = ne;
  if (a.count("reshape")) {
    auto dims = a.count("reshape_dims") ? ints_of(a["reshape_dims"]) : std::vector<int64_t>{};
    SShape donor = dims.empty() ? SShape{} : L.get(op.inputs.back()).ne;
    pre = L.dst_shape(ints_of(a["reshape"]), numel(ne), dims.empty() ? nullptr : &donor, dims);
  }
  SShape target = a.count("mul") && a.count("reshape") ? L.merge_dims(pre, ints_of(a["mul"]), true) : pre;
  if (!add) {
    std::string o = L.reshape(g, ours, expand(target), n);
    L.set(n, o, target, expand(target));
    return;
  }
  // binary_add: the addend is added to the gathered rows viewed as `pre` (its elements broadcast
  // over the leading dims: the position rows [1, S·H] over the batch).
  std::string v = L.reshape(g, ours, expand(pre), "");
  const Tens ad = L.get(op.inputs[2]);
  SShape pv = expand(pre), av;
  Sym an = numel(ad.ne), acc = Sym::k(1);
  size_t k = pv.size();
  while (k > 0 && acc != an) acc = acc * pv[--k];
  if (acc != an) L.error("addend '" + op.inputs[2] + "' " + shape_str(ad.ne) + " does not broadcast over " + shape_str(pre));
  for (size_t i = 0; i < pv.size(); ++i) av.push_back(i < k ? Sym::k(1) : pv[i]);
  std::string addend = L.reshape(ad.name, ad.ours, av, "");
  std::string sum = expand(pre).size() == expand(target).size() &&
                            std::equal(pv.begin(), pv.end(), expand(target).begin())
                        ? n
                        : L.fresh(n + "/sum");
  L.emit("BinaryAdd", op.name, {v, addend}, {sum});
  std::string o = L.reshape(sum, pv, expand(target), n);
  L.set(n, o, target, expand(target));
}

// ---------------------------------------------------------------- InnerProduct
// A feature-major shape attribute ([h, d, B, S] or [H, M]) as its token-major twin.
std::vector<int64_t> tm_shape(Lowerer& L, const std::vector<int64_t>& v) {
  if (v.size() == 4) return {v[2], v[3], v[0], v[1]};
  if (v.size() == 2) return {v[1], v[0]};
  L.error("a feature-major reshape of rank " + std::to_string(v.size()) + " (2 or 4 expected)");
}

void inner_product(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"src0_perm", "src1_perm", "dst_perm", "output_scale", "format_any", "output_dtype", "append_op",
                    "reshape", "reshape_dims", "squeeze_dims", "per_token", "gelu_split"});
  const std::string app = a.count("append_op") ? a["append_op"] : "";
  static const std::set<std::string> posts = {"", "sum", "binary_add", "gelu_erf", "gelu_tanh", "tanh", "sigmoid", "relu"};
  if (!posts.count(app))
    L.error("attribute append_op='" + app + "' is not supported (sum, binary_add, gelu_erf, gelu_tanh, tanh, sigmoid, relu)");
  if (a.count("gelu_split") && truthy(a["gelu_split"])) L.error("attribute gelu_split='" + a["gelu_split"] + "' is not supported (false)");
  if (a.count("src0_perm") && perm_attr(a["src0_perm"]) != "0,1")
    L.error("attribute src0_perm='" + a["src0_perm"] + "' is not supported here (0,1; feature-major IRs: see NE_DIALECT.md)");
  if (a.count("dst_perm") && perm_attr(a["dst_perm"]) != "0,1")
    L.error("attribute dst_perm='" + a["dst_perm"] + "' is not supported here (0,1)");
  if (a.count("output_scale") && std::fabs(std::stod(a["output_scale"]) - 1.0) > 0)
    L.error("attribute output_scale='" + a["output_scale"] + "' is not supported (1)");
  if (a.count("output_dtype")) {
    const std::string d = a["output_dtype"];
    if (d != "fp32" && d != "bf16" && d != "s8" && d != "u8")
      L.error("attribute output_dtype='" + d + "' is not supported (fp32, bf16, s8, u8)");
  }
  const bool post = app == "sum" || app == "binary_add";
  std::vector<std::string> in = op.inputs;
  std::string donor;
  if (a.count("reshape_dims")) {
    if (in.empty()) L.error("reshape_dims needs a shape-donor input");
    donor = in.back();
    in.pop_back();
  }
  // The Neural Engine's InnerProduct::MapTensors: src0, src1, bias, post (sum / binary_add
  // addend), src0 min / max, src1 min / max, dst min / max (-1: absent).
  int bi = -1, pi = -1, s0min = -1;
  switch (in.size()) {
    case 2: break;
    case 3: (post ? pi : bi) = 2; break;
    case 4: bi = 2, pi = post ? 3 : -1; break;
    case 6: s0min = 2; break;
    case 7: (post ? pi : bi) = 2, s0min = 3; break;
    case 8:
      if (post) bi = 2, pi = 3, s0min = 4;
      else s0min = 2;  // + dst min / max
      break;
    case 9: (post ? pi : bi) = 2, s0min = 3; break;
    case 10: bi = 2, pi = post ? 3 : -1, s0min = 4; break;
    default: L.error(std::to_string(op.inputs.size()) + " inputs: expected 2 to 10 (+1 shape donor with reshape_dims)");
  }
  if (in.size() == 4 && !post) L.error("4 inputs without append_op sum / binary_add");
  // Token-major: src0 = activation, src1 = weight (src1_perm 1,0: stored [K, N]; 0,1 or absent:
  // [N, K]). Transposed (transpose_mode_int8): src0 = the weight [N, K], src1 = the activation,
  // held feature-major by the Neural Engine (ours keeps it token-major: dst = x · Wᵀ).
  const TensorInfo* t0 = L.in.find(in[0]);
  const bool transposed = t0 && t0->is_weight && !(L.in.find(in[1]) && L.in.find(in[1])->is_weight);
  const std::string src = transposed ? in[1] : in[0], w = transposed ? in[0] : in[1];
  const int wmin = s0min < 0 ? -1 : transposed ? s0min : s0min + 2, xmin = s0min < 0 ? -1 : transposed ? s0min + 2 : s0min;
  const std::string bias = bi >= 0 ? in[size_t(bi)] : "", addend = pi >= 0 ? in[size_t(pi)] : "";
  std::string s1 = a.count("src1_perm") ? perm_attr(a["src1_perm"]) : "0,1";
  if (s1 != "0,1" && s1 != "1,0") L.error("attribute src1_perm='" + a["src1_perm"] + "' is not supported (0,1 or 1,0)");
  if (transposed && a.count("src1_perm")) L.error("src1_perm with the weight as src0 (transposed form)");
  const bool stored_nk = transposed || s1 == "0,1";  // the Neural Engine's default: weight [N, K]
  const Tens x = L.get(src);
  if (transposed != x.fm)
    L.error(std::string("the activation '") + src + "' is " + (x.fm ? "feature-major" : "token-major") +
            " but the weight is src" + (transposed ? "0 (transposed form)" : "1 (token-major form)"));
  std::vector<float> scale;
  const TensorInfo* wt = L.in.find(w);
  float sxzp = 0;  // static u8 src: the Neural Engine folded -s_x·zp_x·s_w[n]·Σ_k W_q[k, n] into the bias
  if (wt && wt->dtype == DType::s8) {
    if (wmin < 0) L.error("s8 weight '" + w + "' has no min / max (scale) inputs");
    const std::string& w_max = in[size_t(wmin + 1)];
    scale = L.floats_of(w_max);
    const bool dynamic = w_max.size() > 6 && w_max.compare(w_max.size() - 6, 6, "_scale") == 0;
    if (!dynamic) {
      // Static: per-channel min / max. From a QDQ model they are -128·s and 127·s (s the
      // weight's scale); otherwise the symmetric max|.| / 127 of the Neural Engine's executor.
      std::vector<float> mn = L.floats_of(in[size_t(wmin)]);
      if (mn.size() != scale.size()) L.error("weight min / max sizes differ");
      for (size_t i = 0; i < scale.size(); ++i) {
        const float hi = scale[i], lo = mn[i];
        const bool qdq = hi > 0 && std::fabs(lo + hi * 128.f / 127.f) <= 1e-5f * hi;
        scale[i] = qdq ? hi / 127.f : std::max(std::fabs(lo), std::fabs(hi)) / 127.f;
      }
      std::vector<float> lo = L.floats_of(in[size_t(xmin)]), hi = L.floats_of(in[size_t(xmin + 1)]);
      if (lo.size() != 1 || hi.size() != 1) L.error("src min / max must be scalars (per-tensor)");
      L.res.ranges[x.name] = {lo[0], hi[0]};
      if (x.qdtype == DType::u8) sxzp = -lo[0];  // min = -zp_x·s_x
    }
    res_precision(L, dynamic ? "int8_dynamic" : "int8");
  } else if (wmin >= 0 && wt && wt->dtype != DType::fp32 && wt->dtype != DType::bf16) {
    L.error("min / max inputs with a " + std::string(dtype_name(wt->dtype)) + " weight '" + w + "'");
  }
  DType was;
  std::string wf = L.weight_fp32(w, stored_nk, scale.empty() ? nullptr : &scale, &was);
  if (was == DType::bf16) res_precision(L, "bf16");
  const int64_t N = L.in.find(wf) ? L.in.find(wf)->shape[1] : L.out.tensors.at(wf).shape[1];
  std::vector<std::string> ins = {x.name, wf};
  if (!bias.empty()) {
    std::string bn = L.weight_f32(bias);
    if (sxzp != 0) {  // undo the zero-point fold: b = b' + s_x·zp_x·s_w[n]·Σ_k W_q[k, n]
      std::vector<float> b = L.floats_of(bias);
      const int64_t R = wt->shape[0], C = wt->shape[1];
      const int8_t* q = wt->as<int8_t>();
      if (b.size() != size_t(N)) L.error("bias '" + bias + "' has " + std::to_string(b.size()) + " values for N = " + std::to_string(N));
      for (int64_t j = 0; j < N; ++j) {
        int64_t sum = 0;
        for (int64_t k = 0; k < (stored_nk ? C : R); ++k) sum += stored_nk ? q[j * C + k] : q[k * C + j];
        b[size_t(j)] += sxzp * scale[scale.size() == 1 ? 0 : size_t(j)] * float(sum);
      }
      bn = L.fresh(bias + "/zero_point_restored");
      L.out.add_weight(bn, DType::fp32, {N}, b);
    }
    ins.push_back(bn);
  }
  SShape ne_out = {Sym::k(1), Sym::k(N)}, ours = x.ours;
  for (size_t i = 0; i + 1 < x.ne.size(); ++i) ne_out[0] = ne_out[0] * x.ne[i];
  if (ours.empty()) L.error("src '" + src + "' has rank 0");
  ours.back() = Sym::k(N);
  const std::string n = op.outputs.at(0);
  SShape target = ne_out;
  if (a.count("reshape")) {
    auto dims = a.count("reshape_dims") ? ints_of(a["reshape_dims"]) : std::vector<int64_t>{};
    SShape dn = donor.empty() ? SShape{} : L.get(donor).ne;
    auto want = ints_of(a["reshape"]);
    if (transposed) want = tm_shape(L, want);  // feature-major [h, d, B, S] -> token-major [B, S, h, d]
    target = L.dst_shape(want, numel(ne_out), donor.empty() ? nullptr : &dn, dims);
  }
  if (a.count("squeeze_dims")) {
    if (transposed) L.error("attribute squeeze_dims='" + a["squeeze_dims"] + "' is not supported in the transposed form");
    auto sq = ints_of(a["squeeze_dims"]);
    for (auto it = sq.rbegin(); it != sq.rend(); ++it) {
      int64_t d = *it < 0 ? *it + int64_t(target.size()) : *it;
      if (d < 0 || size_t(d) >= target.size() || target[size_t(d)] != Sym::k(1))
        L.error("squeeze_dims " + a["squeeze_dims"] + " does not name a dim of size 1 in " + shape_str(target));
      target.erase(target.begin() + d);
    }
  }
  std::vector<std::pair<std::string, std::string>> at;
  if (!app.empty() && app != "binary_add") at.push_back({"append_op", app});
  const SShape want_ours = expand(target);
  const bool direct = ours.size() == want_ours.size() && std::equal(ours.begin(), ours.end(), want_ours.begin());
  std::string ipo = direct && app != "binary_add" ? n : L.fresh(n + "/ip");
  if (app == "sum") {
    const Tens r = L.get(addend);
    ins.push_back(L.reshape(r.name, r.ours, ours, ""));
  }
  L.emit("InnerProduct", op.name, ins, {ipo}, at);
  if (app == "binary_add") {
    const Tens r = L.get(addend);
    std::string s = direct ? n : L.fresh(n + "/sum");
    L.emit("BinaryAdd", L.fresh(n + "/ne_binary_add"), {ipo, L.reshape(r.name, r.ours, ours, "")}, {s});
    ipo = s;
  }
  std::string o = L.reshape(ipo, ours, want_ours, n);
  L.set(n, o, target, want_ours);
  L.ts[n].fm = transposed;
  if (a.count("output_dtype") && (a["output_dtype"] == "u8" || a["output_dtype"] == "s8"))
    L.ts[n].qdtype = dtype_from_string(a["output_dtype"]);
  for (size_t i = 1; i < op.outputs.size(); ++i) L.ts[op.outputs[i]].dropped = true;  // dst min / scale
}

}  // namespace

void lower_op(Lowerer& L) {
  const std::string& t = L.cur->type;
  static const std::set<std::string> fm_aware = {"InnerProduct", "LayerNorm", "Quantize", "Reorder", "Matmul",
                                                 "MultiHeadAttention", "Softmax"};
  if (!fm_aware.count(t))
    for (auto& n : L.cur->inputs) {
      auto it = L.ts.find(n);
      if (it != L.ts.end() && it->second.fm)
        L.error("reads '" + n + "', held feature-major (a transposed chain); this operator type is not lowered "
                "inside such chains");
    }
  if (t == "PaddingSequence") return padding_sequence(L);
  if (t == "Reshape") return reshape_op(L);
  if (t == "Gather") return gather(L);
  if (t == "InnerProduct") return inner_product(L);
  lower_attention_ops(L);
}

}  // namespace ne_dialect
}  // namespace ne
