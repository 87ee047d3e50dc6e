// Neural Engine dialect: Matmul, Softmax, MultiHeadAttention, LayerNorm, Quantize, StridedSlice,
// PositionIds, TokenTypeIds and the element-wise ops, lowered to our operators
// (docs/NE_DIALECT.md). Semantics from the Neural Engine executor's operators.
#include <climits>
#include <cmath>

#include "common/error.hpp"
#include "compile/ne_dialect_lower.hpp"

namespace ne {
namespace ne_dialect {

namespace {

SShape permute(Lowerer& L, const SShape& s, const std::vector<int64_t>& p, const char* what) {
  if (p.empty()) return s;
  if (p.size() != s.size())
    L.error(std::string(what) + " has " + std::to_string(p.size()) + " entries for a rank-" +
            std::to_string(s.size()) + " tensor " + shape_str(s));
  SShape r;
  for (auto i : p) {
    if (i < 0 || size_t(i) >= s.size()) L.error(std::string(what) + " is not a permutation");
    r.push_back(s[size_t(i)]);
  }
  return r;
}

// Output shape of a batched matmul of A' [..., M, K] and B' [..., K, N] (numpy broadcast).
SShape matmul_shape(Lowerer& L, const SShape& a, const SShape& b) {
  if (a.size() < 2 || b.size() < 2) L.error("Matmul operands must have rank >= 2");
  SShape r;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i + 2 < n; ++i) {
    const size_t ia = i + a.size() - n, ib = i + b.size() - n;
    Sym da = (i + a.size() >= n && ia + 2 < a.size()) ? a[ia] : Sym::k(1);
    Sym db = (i + b.size() >= n && ib + 2 < b.size()) ? b[ib] : Sym::k(1);
    r.push_back(da == Sym::k(1) ? db : da);
  }
  r.push_back(a[a.size() - 2]);
  r.push_back(b[b.size() - 1]);
  return r;
}

// A tensor of ours in the Neural Engine's own shape (a Reshape if ours keeps it otherwise).
std::string as_ne(Lowerer& L, const Tens& t) { return L.reshape(t.name, t.ours, t.ne, ""); }

std::string reshape_attr_out(Lowerer& L, std::map<std::string, std::string>& a, const std::string& src,
                             const SShape& ne_out, const std::string& donor, const std::string& n, SShape* target) {
  *target = ne_out;
  if (a.count("reshape")) {
    auto dims = a.count("reshape_dims") ? ints_of(a["reshape_dims"]) : std::vector<int64_t>{};
    SShape dn = donor.empty() ? SShape{} : L.get(donor).ne;
    *target = L.dst_shape(ints_of(a["reshape"]), numel(ne_out), dims.empty() ? nullptr : &dn, dims);
  }
  return L.reshape(src, ne_out, expand(*target), n);
}

void check_dtype_attr(Lowerer& L, std::map<std::string, std::string>& a) {
  if (!a.count("output_dtype")) return;
  const std::string d = a["output_dtype"];
  if (d != "fp32" && d != "bf16" && d != "s8" && d != "u8")
    L.error("attribute output_dtype='" + d + "' is not supported (fp32, bf16, s8, u8)");
}

// scores = scale · A'·B' (+ mask); optional softmax; written to `out`.
// A perm attribute on a feature-major operand ([h, d, B, S], the twin of token-major [B, S, h, d]:
// fm dim j is tm dim t[j], t = 2,3,0,1) as the perm of the token-major twin: q[i] = t[p[i]].
std::string tm_perm(Lowerer& L, const std::string& p) {
  auto v = ints_of(p);
  if (v.size() != 4) L.error("a feature-major perm '" + p + "' (rank 4 expected)");
  static const int64_t t[4] = {2, 3, 0, 1};
  std::string r;
  for (auto i : v) {
    if (i < 0 || i > 3) L.error("perm '" + p + "' is not a permutation");
    r += (r.empty() ? "" : ",") + std::to_string(t[i]);
  }
  return r;
}

// The extra inputs of the quantized forms (min / max of operands and results) must be scalars:
// ours computes in fp32 and quantizes from its own ranges.
void check_minmax(Lowerer& L, const std::vector<std::string>& ins, size_t from) {
  for (size_t i = from; i < ins.size(); ++i) {
    const TensorInfo* t = L.in.find(ins[i]);
    if (!t || !t->is_weight || t->numel() != 1)
      L.error("input " + std::to_string(i) + " '" + ins[i] + "' must be a min / max scalar (a weight)");
  }
}

std::string matmul(Lowerer& L, const std::string& name, const Tens& A, const Tens& B, const Tens* mask,
                   std::string p0, std::string p1, std::string pd, const std::string& scale,
                   const std::string& out, SShape* ne_out, bool* out_fm) {
  *out_fm = false;
  if (A.fm) p0 = tm_perm(L, p0.empty() ? "0,1,2,3" : p0);
  if (B.fm) p1 = tm_perm(L, p1.empty() ? "0,1,2,3" : p1);
  if ((A.fm || B.fm) && !pd.empty()) {
    auto v = ints_of(pd);
    if (v.size() != 4) L.error("dst_perm '" + pd + "' on a feature-major Matmul (rank 4 expected)");
    static const int64_t t[4] = {2, 3, 0, 1};
    pd.clear();
    for (int i = 0; i < 4; ++i) pd += (i ? "," : "") + std::to_string(v[size_t(t[i])]);
    *out_fm = true;
  }
  SShape sa = permute(L, A.ne, ints_of(p0), "src0_perm"), sb = permute(L, B.ne, ints_of(p1), "src1_perm");
  if (sa.back() != sb[sb.size() - 2])
    L.error("Matmul inner dims differ: " + shape_str(sa) + " x " + shape_str(sb));
  *ne_out = permute(L, matmul_shape(L, sa, sb), ints_of(pd), "dst_perm");
  std::vector<std::string> ins = {as_ne(L, A), as_ne(L, B)};
  std::vector<std::pair<std::string, std::string>> at;
  if (!p0.empty()) at.push_back({"src0_perm", perm_attr(p0)});
  if (!p1.empty()) at.push_back({"src1_perm", perm_attr(p1)});
  if (!pd.empty()) at.push_back({"dst_perm", perm_attr(pd)});
  if (!scale.empty()) at.push_back({"output_scale", scale});
  if (mask) {
    ins.push_back(mask->name);  // [B, 1, 1, S] (PaddingSequence) or any shape that broadcasts
    at.push_back({"append_op", "binary_add"});
  }
  L.emit("Matmul", name, ins, {out}, at);
  return out;
}

void matmul_op(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"src0_perm", "src1_perm", "dst_perm", "output_scale", "format_any", "append_op", "reshape",
                    "reshape_dims", "output_dtype"});
  check_dtype_attr(L, a);
  const bool add = a.count("append_op") && a["append_op"] == "binary_add";
  if (a.count("append_op") && !add) L.error("attribute append_op='" + a["append_op"] + "' is not supported (binary_add)");
  std::vector<std::string> in = op.inputs;
  std::string donor;
  if (a.count("reshape_dims")) donor = in.back(), in.pop_back();
  if (in.size() < size_t(add ? 3 : 2))
    L.error(std::to_string(op.inputs.size()) + " inputs: expected A, B" + (add ? ", mask" : "") +
            (donor.empty() ? "" : ", shape donor") + " [, min / max scalars]");
  check_minmax(L, in, add ? 3 : 2);
  const Tens A = L.get(in[0]), B = L.get(in[1]);
  Tens M;
  if (add) M = L.get(in[2]);
  const std::string n = op.outputs.at(0);
  SShape ne_out, target;
  std::string mm = L.fresh(n + "/matmul");
  bool fm = false;
  matmul(L, op.name, A, B, add ? &M : nullptr, a["src0_perm"], a["src1_perm"], a["dst_perm"], a["output_scale"], mm,
         &ne_out, &fm);
  if (fm && a.count("reshape")) {
    auto v = ints_of(a["reshape"]);
    if (v.size() != 2) L.error("a feature-major reshape '" + a["reshape"] + "' (rank 2 expected)");
    a["reshape"] = std::to_string(v[1]) + "," + std::to_string(v[0]);
  }
  std::string o = reshape_attr_out(L, a, mm, ne_out, donor, n, &target);
  L.set(n, o, target, expand(target));
  L.ts[n].fm = fm;
  if (a.count("output_dtype") && (a["output_dtype"] == "u8" || a["output_dtype"] == "s8"))
    L.ts[n].qdtype = dtype_from_string(a["output_dtype"]);
}

// MultiHeadAttention (the dynamic int8 compiler's Matmul → Softmax → Matmul): Q, K, V, [mask],
// then Q/K/V min / scale (activations: ours are fp32, quantized by the InnerProducts).
void multi_head_attention(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"Q_perm", "K_perm", "V_perm", "dst_perm", "output_scale", "reshape", "output_dtype", "per_token",
                    "stable_softmax"});
  check_dtype_attr(L, a);
  const size_t ni = op.inputs.size();
  if (ni != 3 && ni != 4 && ni != 9 && ni != 10)
    L.error(std::to_string(ni) + " inputs: supported are Q, K, V [, mask] [, Q/K/V min and scale] (3, 4, 9, 10); "
            "the merged-QKV and static forms are not");
  const Tens Q = L.get(op.inputs[0]), K = L.get(op.inputs[1]), V = L.get(op.inputs[2]);
  Tens M;
  const bool has_mask = ni == 4 || ni == 10;
  if (has_mask) M = L.get(op.inputs[3]);
  const std::string n = op.outputs.at(0);
  SShape s_ne, o_ne, target;
  std::string sc = L.fresh(n + "/scores"), pr = L.fresh(n + "/probs"), ctx = L.fresh(n + "/context");
  bool fm = false;
  if (Q.fm || K.fm || V.fm) L.error("feature-major MultiHeadAttention is not supported");
  matmul(L, L.fresh(op.name + "/qk"), Q, K, has_mask ? &M : nullptr, a["Q_perm"], a["K_perm"], "", a["output_scale"],
         sc, &s_ne, &fm);
  L.emit("Softmax", L.fresh(op.name + "/softmax"), {sc}, {pr}, {{"axis", "-1"}});
  Tens P;
  P.name = pr, P.ne = s_ne, P.ours = s_ne;
  matmul(L, op.name, P, V, nullptr, "", a["V_perm"], a["dst_perm"], "", ctx, &o_ne, &fm);
  std::string o = reshape_attr_out(L, a, ctx, o_ne, "", n, &target);
  L.set(n, o, target, expand(target));
  for (size_t i = 1; i < op.outputs.size(); ++i) L.ts[op.outputs[i]].dropped = true;
}

void softmax(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"axis", "output_dtype"});
  check_dtype_attr(L, a);
  check_minmax(L, op.inputs, 1);
  const Tens x = L.get(op.inputs.at(0));
  if (x.fm) L.error("a feature-major Softmax input is not supported");
  int64_t axis = a.count("axis") ? std::stoll(a["axis"]) : -1;
  if (axis < 0) axis += int64_t(x.ne.size());
  std::string src = x.name;
  SShape sh = x.ours;
  if (axis != int64_t(x.ne.size()) - 1) src = as_ne(L, x), sh = x.ne;  // other axes: in its own shape
  else if (x.ours.empty() || x.ours.back() != x.ne.back()) src = as_ne(L, x), sh = x.ne;
  const std::string n = op.outputs.at(0);
  L.emit("Softmax", op.name, {src}, {n}, {{"axis", std::to_string(axis == int64_t(x.ne.size()) - 1 ? -1 : axis)}});
  L.set(n, n, x.ne, sh);
  if (a.count("output_dtype") && (a["output_dtype"] == "u8" || a["output_dtype"] == "s8"))
    L.ts[n].qdtype = dtype_from_string(a["output_dtype"]);
}

void layer_norm(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"epsilon", "transpose_mode", "output_dtype"});
  check_dtype_attr(L, a);
  if (op.inputs.size() != 3) L.error("expects 3 inputs (x, gamma, beta)");
  const Tens x = L.get(op.inputs[0]);
  const bool tmode = a.count("transpose_mode") && perm_attr(a["transpose_mode"]) == "1,0";
  if (a.count("transpose_mode") && !tmode && perm_attr(a["transpose_mode"]) != "0,1")
    L.error("attribute transpose_mode='" + a["transpose_mode"] + "' is not supported (1,0 or 0,1)");
  if (tmode != x.fm)
    L.error(std::string("input '") + op.inputs[0] + "' is " + (x.fm ? "feature-major" : "token-major") +
            (tmode ? " but transpose_mode is 1,0" : " but transpose_mode is not 1,0"));
  if (x.ours.empty() || x.ours.back() != x.ne.back()) L.error("normalised dim differs from the Neural Engine's");
  std::vector<std::string> ins = {x.name};
  for (int i = 1; i < 3; ++i) {
    const std::string nm = L.weight_f32(op.inputs[size_t(i)]);
    ins.push_back(nm);
  }
  const std::string n = op.outputs.at(0);
  L.emit("LayerNorm", op.name, ins, {n},
         {{"epsilon", a.count("epsilon") ? a["epsilon"] : std::string("1e-12")}, {"axis", "-1"}});
  L.set(n, n, x.ne, x.ours);
  L.ts[n].fm = x.fm;
}

// Quantize: ours quantizes inside the InnerProduct (dynamic, or from the recorded range).
void quantize(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"output_dtype", "per_token"});
  const std::string d = a.count("output_dtype") ? a["output_dtype"] : "u8";
  if (d != "u8" && d != "s8" && d != "bf16") L.error("attribute output_dtype='" + d + "' is not supported (u8, s8, bf16)");
  const Tens x = L.get(op.inputs.at(0));
  if (op.outputs.size() == 3 || (a.count("per_token") && truthy(a["per_token"]))) {
    if (op.inputs.size() != 1) L.error("a dynamic Quantize takes 1 input");
    res_precision(L, "int8_dynamic");
  } else if (op.inputs.size() == 3) {  // static: [min, max] of the fp32 activation
    auto lo = L.floats_of(op.inputs[1]), hi = L.floats_of(op.inputs[2]);
    if (lo.size() != 1 || hi.size() != 1) L.error("min / max must be scalars");
    L.res.ranges[x.name] = {lo[0], hi[0]};
  } else if (op.inputs.size() != 1) {
    L.error(std::to_string(op.inputs.size()) + " inputs: expected x [, min, max]");
  }
  L.set(op.outputs[0], x.name, x.ne, x.ours, x.dtype);
  L.ts[op.outputs[0]].fm = x.fm;
  if (d != "bf16") L.ts[op.outputs[0]].qdtype = dtype_from_string(d);
  for (size_t i = 1; i < op.outputs.size(); ++i) L.ts[op.outputs[i]].dropped = true;
}

// Reorder src_perm 0,1 -> dst_perm 1,0 of a 2-D activation: where transpose_mode_int8 chains
// start and end. Ours keeps the token-major twin, so it is a no-op that flips the layout flag.
void reorder(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"src_perm", "dst_perm", "output_dtype"});
  check_dtype_attr(L, a);
  const std::string sp = a.count("src_perm") ? perm_attr(a["src_perm"]) : "";
  const std::string dp = a.count("dst_perm") ? perm_attr(a["dst_perm"]) : "";
  if (sp != "0,1" || dp != "1,0") L.error("only src_perm 0,1 -> dst_perm 1,0 (the transposed chains' Reorder) is supported");
  if (op.inputs.size() != 1) L.error("expects 1 input");
  const Tens x = L.get(op.inputs[0]);
  if (x.ne.size() != 2 && !(x.ne.size() == 3 && x.ne[0] == Sym{1, 0, 1, true}))
    L.error("reorders a rank-" + std::to_string(x.ne.size()) + " tensor " + shape_str(x.ne) + " (2-D [tokens, H] expected)");
  L.set(op.outputs.at(0), x.name, x.ne, x.ours, x.dtype);
  L.ts[op.outputs[0]].fm = !x.fm;
  L.ts[op.outputs[0]].qdtype = x.qdtype;
  L.res.transposed = true;
}

// TensorFlow StridedSlice with constant begin / end / strides and the five masks.
void strided_slice(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"begin", "end", "strides", "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                    "shrink_axis_mask", "output_dtype"});
  check_dtype_attr(L, a);
  auto mask = [&](const char* k) { return a.count(k) ? std::stoll(a[k]) : 0; };
  if (mask("ellipsis_mask") || mask("new_axis_mask"))
    L.error("ellipsis_mask / new_axis_mask are not supported (0)");
  const Tens x = L.get(op.inputs.at(0));
  auto b = ints_of(a["begin"]), e = ints_of(a["end"]), s = a.count("strides") ? ints_of(a["strides"]) : std::vector<int64_t>{};
  if (b.size() != e.size() || (!s.empty() && s.size() != b.size()) || b.size() > x.ne.size())
    L.error("begin / end / strides sizes differ or exceed the rank of " + shape_str(x.ne));
  std::vector<int64_t> starts, ends, axes, steps;
  SShape shape = x.ne, after;
  for (size_t i = 0; i < b.size(); ++i) {
    const int64_t st = s.empty() ? 1 : s[i];
    if (st == 0) L.error("stride 0");
    const bool bm = mask("begin_mask") >> i & 1, em = mask("end_mask") >> i & 1, sh = mask("shrink_axis_mask") >> i & 1;
    int64_t lo = bm ? (st > 0 ? 0 : -1) : b[i], hi = em ? (st > 0 ? INT64_MAX : INT64_MIN) : e[i];
    if (sh) hi = lo + 1, lo = lo;
    if (bm && em && st == 1) continue;  // whole dim
    starts.push_back(lo), ends.push_back(hi), axes.push_back(int64_t(i)), steps.push_back(st);
    if (shape[i].is_const()) {
      int64_t D = shape[i].c, l = lo < 0 ? lo + D : lo, h = hi == INT64_MAX ? D : hi < 0 ? hi + D : hi;
      l = std::max<int64_t>(0, std::min(l, D)), h = std::max<int64_t>(0, std::min(h, D));
      shape[i] = Sym::k(st > 0 ? std::max<int64_t>(0, (h - l + st - 1) / st) : 1);
    } else if (st == 1 && lo >= 0 && hi >= lo && hi != INT64_MAX) {
      shape[i] = Sym::k(hi - lo);  // a prefix of a dim at least that long (checked at run time by Slice)
    } else {
      L.error("slices a dynamic dim " + sym_str(shape[i]) + " with a bound the lowering cannot size");
    }
  }
  for (size_t i = 0; i < shape.size(); ++i)
    if (!(i < b.size() && (mask("shrink_axis_mask") >> i & 1))) after.push_back(shape[i]);
  const std::string n = op.outputs.at(0);
  std::string src = as_ne(L, x), o = src;
  if (!axes.empty()) {
    o = after.size() == shape.size() ? n : L.fresh(n + "/sliced");
    L.emit("Slice", op.name,
           {src, L.const_i64(n + "/starts", starts), L.const_i64(n + "/ends", ends), L.const_i64(n + "/axes", axes),
            L.const_i64(n + "/steps", steps)},
           {o});
  }
  o = L.reshape(o, shape, after, o == n ? "" : n);
  L.set(n, o, after, after, x.dtype);
}

// RoBERTa position ids from input_ids (padding id 1): cumsum(ids != 1) · (ids != 1) + 1.
void position_ids(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"mode"});
  if (a["mode"] != "roberta") L.error("attribute mode='" + a["mode"] + "' is not supported (roberta)");
  const Tens ids = L.get(op.inputs.at(0));
  if (ids.ours.size() != 2) L.error("input_ids must be [B, S]");
  const std::string n = op.outputs.at(0);
  auto t = [&](const char* s) { return L.fresh(n + "/" + s); };
  std::string i64 = t("ids64"), eq = t("is_pad"), keep = t("keep"), k64 = t("keep64"), cs = t("cumsum"), pm = t("masked");
  L.emit("Cast", t("ne_cast"), {ids.name}, {i64}, {{"to", "int64"}});
  L.emit("BinaryOp", t("ne_eq"), {i64, L.const_i64(n + "/pad", {1})}, {eq}, {{"algorithm", "equal"}});
  L.emit("UnaryOp", t("ne_not"), {eq}, {keep}, {{"algorithm", "not"}});
  L.emit("Cast", t("ne_cast_keep"), {keep}, {k64}, {{"to", "int64"}});
  L.emit("CumSum", t("ne_cumsum"), {k64, L.const_i64(n + "/axis", {1})}, {cs});
  L.emit("BinaryOp", t("ne_mul"), {cs, k64}, {pm}, {{"algorithm", "mul"}});
  L.emit("BinaryOp", op.name, {pm, L.const_i64(n + "/one", {1})}, {n}, {{"algorithm", "add"}});
  L.set(n, n, ids.ne, ids.ours, DType::int64);
}

// RoBERTa token type ids: row j of every batch is slice[j] (the zero buffer's first S entries).
void token_type_ids(Lowerer& L) {
  const OpInfo& op = *L.cur;
  auto a = L.attrs({"mode"});
  if (a["mode"] != "roberta") L.error("attribute mode='" + a["mode"] + "' is not supported (roberta)");
  if (op.inputs.size() != 2) L.error("expects 2 inputs (input_ids, the token type buffer)");
  const Tens ids = L.get(op.inputs[0]);
  if (ids.ours.size() != 2) L.error("input_ids must be [B, S]");
  const Tens buf = L.get(op.inputs[1]);
  const std::string n = op.outputs.at(0);
  std::string flat = L.reshape(buf.name, buf.ours, {numel(buf.ours)}, "");
  std::string row = L.fresh(n + "/row"), shp = L.fresh(n + "/shape");
  L.emit("Slice", L.fresh(n + "/ne_slice"),
         {flat, L.const_i64(n + "/starts", {0}), L.sym_tensor(ids.ours[1]), L.const_i64(n + "/axes", {0})}, {row});
  L.emit("Shape", L.fresh(n + "/ne_shape"), {ids.name}, {shp});
  L.emit("Expand", op.name, {row, shp}, {n});
  L.set(n, n, ids.ne, ids.ours, buf.dtype);
}

SShape broadcast(Lowerer& L, const SShape& a, const SShape& b) {
  SShape r(std::max(a.size(), b.size()));
  for (size_t i = 0; i < r.size(); ++i) {
    Sym da = i + a.size() >= r.size() ? a[i + a.size() - r.size()] : Sym::k(1);
    Sym db = i + b.size() >= r.size() ? b[i + b.size() - r.size()] : Sym::k(1);
    if (da == Sym::k(1)) r[i] = db;
    else if (db == Sym::k(1) || da == db) r[i] = da;
    else L.error("operands " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
  }
  return r;
}

// Element-wise ops run in the Neural Engine's shapes.
void elementwise(Lowerer& L) {
  const OpInfo& op = *L.cur;
  static const std::map<std::string, std::string> algs = {{"add", "add"}, {"sub", "sub"},  {"mul", "mul"},
                                                          {"div", "div"}, {"gt", "greater"}, {"ge", "greater_equal"},
                                                          {"lt", "less"}, {"le", "less_equal"}, {"eq", "equal"},
                                                          {"min", "min"}, {"max", "max"}};
  std::vector<std::pair<std::string, std::string>> at;
  std::string type = op.type;
  if (op.type == "BinaryAdd") {
    auto a = L.attrs({"append_op"});
    if (a.count("append_op") && a["append_op"] != "sum") L.error("attribute append_op='" + a["append_op"] + "' is not supported");
  } else if (op.type == "BinaryOp") {
    auto a = L.attrs({"algorithm"});
    auto it = algs.find(a["algorithm"]);
    if (it == algs.end()) L.error("attribute algorithm='" + a["algorithm"] + "' is not supported (add sub mul div gt ge lt le eq min max)");
    at.push_back({"algorithm", it->second});
  } else {  // Gelu
    auto a = L.attrs({"algorithm"});
    const std::string g = a.count("algorithm") ? a["algorithm"] : "gelu_erf";
    if (g != "gelu_erf" && g != "gelu_tanh") L.error("attribute algorithm='" + g + "' is not supported (gelu_erf, gelu_tanh)");
    at.push_back({"algorithm", g});
  }
  std::vector<std::string> ins;
  SShape shape;
  DType dt = DType::fp32;
  for (size_t i = 0; i < op.inputs.size(); ++i) {
    const Tens t = L.get(op.inputs[i]);
    const bool same = t.ours.size() == t.ne.size() && std::equal(t.ours.begin(), t.ours.end(), t.ne.begin());
    ins.push_back(same ? t.name : as_ne(L, t));
    shape = i ? broadcast(L, shape, t.ne) : t.ne;
    if (i == 0) dt = t.dtype;
  }
  const std::string n = op.outputs.at(0);
  L.emit(type, op.name, ins, {n}, at);
  L.set(n, n, shape, shape, dt);
}

}  // namespace

void lower_attention_ops(Lowerer& L) {
  const std::string& t = L.cur->type;
  if (t == "Matmul") return matmul_op(L);
  if (t == "MultiHeadAttention") return multi_head_attention(L);
  if (t == "Softmax") return softmax(L);
  if (t == "LayerNorm") return layer_norm(L);
  if (t == "Quantize") return quantize(L);
  if (t == "Reorder") return reorder(L);
  if (t == "StridedSlice") return strided_slice(L);
  if (t == "PositionIds") return position_ids(L);
  if (t == "TokenTypeIds") return token_type_ids(L);
  if (t == "BinaryAdd" || t == "BinaryOp" || t == "Gelu") return elementwise(L);
  L.error("operator type '" + t + "' is not in the Neural Engine vocabulary this lowering covers "
          "(docs/NE_DIALECT.md lists it)");
}

}  // namespace ne_dialect
}  // namespace ne
