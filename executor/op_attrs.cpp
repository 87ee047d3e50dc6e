#include "executor/op_attrs.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "executor/operator.hpp"

namespace ne {

namespace {

using K = AttrKind;

// Functions, not globals: the table may be built during another file's static initialisation
// (declare_op_attrs). Kept in step with the operators by tests/core/test_op_attrs.cpp (every value here constructs
// its op; every op type registered has an entry; docs/OPS.md names the same attributes).
const std::vector<std::string>& kIpPostOps() {
  static const std::vector<std::string> v = {"relu", "gelu_erf", "gelu", "gelu_tanh", "tanh", "sigmoid", "logistic", "sum"};
  return v;
}
const std::vector<std::string>& kLayouts() {
  static const std::vector<std::string> v = {"token_major", "feature_major"};
  return v;
}
const std::vector<std::string>& kComputeDtypes() {
  static const std::vector<std::string> v = {"fp32", "bf16"};
  return v;
}
// "0,1": weight [K, N] (ours); "1,0": weight stored [N, K] (the Neural Engine's), transposed at load.
const std::vector<std::string>& kIpSrc1Perm() {
  static const std::vector<std::string> v = {"0,1", "1,0"};
  return v;
}
const std::vector<std::string>& kBinaryAlgs() {
  static const std::vector<std::string> v = {"add", "sub", "mul", "div", "pow", "max", "min", "mod", "equal",
                                              "greater", "greater_equal", "less", "less_equal", "and", "or", "xor"};
  return v;
}
const std::vector<std::string>& kUnaryAlgs() {
  static const std::vector<std::string> v = {
    "sqrt", "exp", "log", "erf", "tanh", "relu", "sigmoid", "neg", "abs", "reciprocal", "floor", "ceil", "round",
    "sin", "cos", "not", "sign", "softplus", "leaky_relu", "elu", "hard_sigmoid", "selu", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "softsign", "hard_swish", "mish", "gelu_erf", "gelu_tanh"};
  return v;
}

std::vector<AttrSpec> ip_common() {
  return {{"append_op", K::list_of, kIpPostOps()},
          {"layout", K::one_of, kLayouts()},
          {"src1_perm", K::one_of, kIpSrc1Perm()}};
}
std::vector<AttrSpec> plus(std::vector<AttrSpec> a, const std::vector<AttrSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
std::vector<AttrSpec> reduce_attrs() {
  return {{"axes", K::ints}, {"keepdims", K::integer}, {"noop_with_empty_axes", K::integer}};
}
std::vector<AttrSpec> arg_attrs() {
  return {{"axis", K::integer}, {"keepdims", K::integer}, {"select_last_index", K::integer}};
}

std::vector<OpAttrSchema> make_table() {
  std::vector<OpAttrSchema> t = {
      // Graph boundary
      {"Input", {}},
      {"Output", {}},
      // Dense compute
      {"InnerProduct", plus(ip_common(), {{"output_dtype", K::dtype, {}, {DType::fp32}}})},
      {"InnerProduct.bf16", plus(ip_common(), {{"output_dtype", K::dtype, {}, {DType::fp32, DType::bf16}}})},
      {"InnerProduct.s8", plus(ip_common(), {{"output_dtype", K::dtype, {}, {DType::fp32, DType::u8, DType::s8}},
                                             {"src_dtype", K::dtype, {}, {DType::u8, DType::s8}},
                                             {"src_scale", K::number_or, {"dynamic"}},
                                             {"src_zero_point", K::integer},
                                             {"dst_scale", K::number},
                                             {"dst_zero_point", K::integer}})},
      {"Matmul", {{"src0_perm", K::perm},
                  {"src1_perm", K::perm},
                  {"dst_perm", K::perm},
                  {"output_scale", K::number},
                  {"append_op", K::one_of, {"binary_add"}},
                  {"compute_dtype", K::one_of, kComputeDtypes()}}},
      {"Attention", {{"qk_src0_perm", K::perm},
                     {"qk_src1_perm", K::perm},
                     {"output_scale", K::number},
                     {"pv_src1_perm", K::perm},
                     {"dst_perm", K::perm},
                     {"compute_dtype", K::one_of, kComputeDtypes()}}},
      {"Softmax", {{"axis", K::integer}}},
      {"LayerNorm", {{"epsilon", K::number},
                     {"axis", K::integer},
                     {"transpose_mode", K::one_of, {"1,0", "0,1"}},
                     {"quantize_dtype", K::dtype, {}, {DType::u8, DType::s8}},
                     {"quantize_scale", K::number},
                     {"quantize_zero_point", K::integer}}},
      {"Gelu", {{"algorithm", K::one_of, {"gelu_erf", "erf", "gelu_tanh", "tanh"}}}},
      // Element-wise
      {"BinaryAdd", {}},
      {"BinaryOp", {{"algorithm", K::one_of, kBinaryAlgs()}, {"fmod", K::integer}}},
      {"UnaryOp", {{"algorithm", K::one_of, kUnaryAlgs()}, {"alpha", K::number}, {"beta", K::number}, {"gamma", K::number}}},
      {"Clip", {{"min", K::number}, {"max", K::number}}},
      {"Where", {}},
      {"Cast", {{"to", K::dtype}}},
      // Shape and data movement
      {"Reshape", {{"dst_shape", K::ints}, {"allowzero", K::integer}}},
      {"Flatten", {{"axis", K::integer}}},
      {"Squeeze", {{"axes", K::ints}}},
      {"Unsqueeze", {{"axes", K::ints}}},
      {"Reorder", {{"perm", K::perm}, {"src_perm", K::perm}, {"dst_perm", K::ints}}},
      {"Concat", {{"axis", K::integer}}},
      {"Split", {{"axis", K::integer}, {"split", K::ints}}},
      {"Slice", {{"starts", K::ints}, {"ends", K::ints}, {"axes", K::ints}, {"steps", K::ints}}},
      {"Gather", {{"axis", K::integer}}},
      {"Expand", {}},
      {"Tile", {}},
      {"Shape", {{"start", K::integer}, {"end", K::integer}}},
      {"ConstantOfShape", {{"value", K::number}, {"dtype", K::dtype}}},
      {"Range", {}},
      {"Identity", {}},
      {"CumSum", {{"exclusive", K::integer}, {"reverse", K::integer}}},
      {"ArgMax", arg_attrs()},
      {"ArgMin", arg_attrs()},
      // Precision
      {"Quantize", {{"output_dtype", K::dtype, {}, {DType::u8, DType::s8}}, {"scale", K::number}, {"zero_point", K::integer}}},
      {"Dequantize", {{"scale", K::number}, {"zero_point", K::integer}}},
  };
  for (const char* r : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                        "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"})
    t.push_back({r, reduce_attrs()});
  return t;
}

std::string normalise(const std::string& v) {
  std::string r;
  for (char c : v)
    if (c != ' ' && c != '[' && c != ']') r += c;
  return r;
}
std::vector<std::string> split_items(const std::string& v) {
  std::vector<std::string> r;
  std::string cur;
  for (char c : normalise(v) + ",") {
    if (c == ',') {
      if (!cur.empty()) r.push_back(cur);
      cur.clear();
    } else cur += c;
  }
  return r;
}
bool is_int(const std::string& s) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  std::strtoll(s.c_str(), &end, 10);
  return end && *end == 0 && errno != ERANGE;
}
bool is_number(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  double x = std::strtod(s.c_str(), &end);
  return end && *end == 0 && !std::isnan(x);
}
std::string joined(const std::vector<std::string>& v) {
  std::string r;
  for (auto& s : v) r += (r.empty() ? "" : ", ") + s;
  return r;
}

}  // namespace

namespace {
std::vector<OpAttrSchema>& table() {
  static std::vector<OpAttrSchema> t = make_table();
  return t;
}
}  // namespace

const std::vector<OpAttrSchema>& op_attr_schemas() { return table(); }

bool declare_op_attrs(OpAttrSchema schema) {
  for (auto& s : table())
    if (s.type == schema.type) {
      s = std::move(schema);
      return true;
    }
  table().push_back(std::move(schema));
  return true;
}

const OpAttrSchema* find_op_attr_schema(const std::string& registered_type) {
  for (auto& s : table())
    if (s.type == registered_type) return &s;
  return nullptr;
}

std::string registered_type_of(const Model& m, const OpInfo& op) {
  if (op.inputs.size() > 1) {
    const TensorInfo* w = m.find(op.inputs[1]);
    if (w && w->is_weight && w->dtype != DType::fp32) {
      const std::string v = op.type + "." + dtype_name(w->dtype);
      const auto types = registered_op_types();
      if (std::find(types.begin(), types.end(), v) != types.end()) return v;
    }
  }
  return op.type;
}

void check_op_attrs(const OpInfo& op, const std::string& registered_type, const std::string& source) {
  const std::string where =
      (source.empty() ? std::string("<in-memory model>") : source) + ": operator '" + op.name + "' (" + op.type + "): ";
  const OpAttrSchema* s = find_op_attr_schema(registered_type);
  if (!s) fail(where, "operator type ", registered_type, " declares no attributes (executor/op_attrs.cpp)");
  std::map<std::string, int> seen;
  for (auto& kv : op.attrs) {
    const std::string& k = kv.first;
    const std::string& v = kv.second;
    if (++seen[k] > 1) fail(where, "attribute '", k, "' is given twice");
    const AttrSpec* a = nullptr;
    for (auto& c : s->attrs)
      if (k == c.name) a = &c;
    if (!a) {
      std::vector<std::string> names;
      for (auto& c : s->attrs) names.push_back(c.name);
      fail(where, "unknown attribute '", k, "' (value '", v, "'): ",
           names.empty() ? registered_type + " takes no attributes"
                         : registered_type + " takes " + joined(names));
    }
    const std::string attr_is = "attribute " + k + "='" + v + "' ";
    switch (a->kind) {
      case K::integer:
        if (!is_int(normalise(v))) fail(where, attr_is, "is not an integer");
        break;
      case K::number:
        if (!is_number(normalise(v))) fail(where, attr_is, "is not a number");
        break;
      case K::ints:
      case K::perm: {
        auto items = split_items(v);
        for (auto& x : items)
          if (!is_int(x)) fail(where, attr_is, "is not a list of integers");
        if (a->kind == K::perm) {
          std::vector<bool> hit(items.size(), false);
          for (auto& x : items) {
            long long d = std::strtoll(x.c_str(), nullptr, 10);
            if (d < 0 || d >= (long long)items.size() || hit[size_t(d)])
              fail(where, attr_is, "is not a permutation of 0..", items.size() ? items.size() - 1 : 0);
            hit[size_t(d)] = true;
          }
        }
        break;
      }
      case K::one_of:
        if (std::find(a->values.begin(), a->values.end(), normalise(v)) == a->values.end())
          fail(where, attr_is, "is not supported (expected one of: ", joined(a->values), ")");
        break;
      case K::list_of:
        for (auto& x : split_items(v))
          if (std::find(a->values.begin(), a->values.end(), x) == a->values.end())
            fail(where, "unknown ", k, " '", x, "' in ", attr_is, "(expected a comma list of: ", joined(a->values), ")");
        break;
      case K::dtype: {
        DType t;
        if (!parse_dtype(normalise(v), &t)) fail(where, attr_is, "is not a dtype name");
        if (!a->dtypes.empty() && std::find(a->dtypes.begin(), a->dtypes.end(), t) == a->dtypes.end()) {
          std::vector<std::string> n;
          for (DType d : a->dtypes) n.push_back(dtype_name(d));
          fail(where, attr_is, "is not supported (expected one of: ", joined(n), ")");
        }
        break;
      }
      case K::number_or:
        if (!is_number(normalise(v)) &&
            std::find(a->values.begin(), a->values.end(), normalise(v)) == a->values.end())
          fail(where, attr_is, "is not a number or one of: ", joined(a->values));
        break;
    }
  }
}

void check_model_attrs(const Model& m) {
  for (auto& op : m.ops) check_op_attrs(op, registered_type_of(m, op), m.source);
}

int lower_inner_product_src1_perm(Model& m) {
  int n = 0;
  std::map<std::string, std::string> done;  // weight -> its transposed tensor (a shared weight is transposed once)
  for (auto& op : m.ops) {
    if (op.type != "InnerProduct" || !op.has_attr("src1_perm")) continue;
    const std::string perm = normalise(op.attr("src1_perm"));
    const std::string where = (m.source.empty() ? std::string("<in-memory model>") : m.source) + ": operator '" +
                              op.name + "' (" + op.type + "): ";
    // The Neural Engine's meaning (its InnerProduct reads the weight as oneDNN's [N, K] and
    // transposes it when src1_perm is 1,0): "1,0" = stored [K, N], ours; "0,1" = stored [N, K].
    if (perm == "1,0") {
      op.erase_attr("src1_perm");
      continue;
    }
    if (perm != "0,1")
      fail(where, "attribute src1_perm='", op.attr("src1_perm"), "' is not supported (expected one of: ",
           joined(kIpSrc1Perm()), ")");
    if (op.inputs.size() < 2) fail(where, "attribute src1_perm='0,1' needs a weight (input 1)");
    const std::string wname = op.inputs[1];
    auto it = done.find(wname);
    if (it == done.end()) {
      const TensorInfo* w = m.find(wname);
      if (!w || !w->is_weight)
        fail(where, "attribute src1_perm='0,1' needs a constant weight; '", wname, "' is computed at run time");
      if (w->shape.size() != 2)
        fail(where, "attribute src1_perm='0,1': weight '", wname, "' ", shape_str(w->shape), " must be 2-D");
      const int64_t N = w->shape[0], K = w->shape[1];
      const size_t es = dtype_size(w->dtype);
      if (w->nbytes != uint64_t(N * K) * es || !w->data)
        fail(where, "attribute src1_perm='0,1': weight '", wname, "' has ", w->nbytes, " bytes, shape ",
             shape_str(w->shape), " x ", dtype_name(w->dtype), " needs ", uint64_t(N * K) * es);
      std::vector<uint8_t> t(w->nbytes);
      const uint8_t* src = w->data;
      for (int64_t r = 0; r < N; ++r)      // src [N, K] row r -> dst [K, N] column r
        for (int64_t c = 0; c < K; ++c) std::memcpy(&t[size_t(c * N + r) * es], src + size_t(r * K + c) * es, es);
      std::string tname = wname + "/transposed";
      while (m.tensors.count(tname)) tname += "_";
      const DType dt = w->dtype;
      m.add_weight(tname, dt, {K, N}, std::move(t));
      it = done.emplace(wname, tname).first;
    }
    op.inputs[1] = it->second;
    op.erase_attr("src1_perm");
    ++n;
  }
  return n;
}

}  // namespace ne
