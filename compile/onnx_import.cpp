// ONNX loading (protobuf, initializers, external data, Constant nodes) and 1:1 lowering.
#include "compile/onnx_import.hpp"
#include "compile/ms_import.hpp"
#include "compile/passes/passes.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace ne {

namespace {

std::string dir_of(const std::string& p) {
  auto s = p.find_last_of('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

std::string join(const std::vector<int64_t>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  NE_CHECK(f.good(), what, ": cannot open '", path, "'");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Path of external data, checked to stay inside the model's directory: first the location as text
// (relative, no '..', no backslash), then as the file system resolves it (symlinks included, with
// std::filesystem::weakly_canonical): the resolved path must lie under the model's directory, or
// under the directory the model file itself resolves to (a model and its data both linked into one
// place, as Hugging Face's hub cache links them into blobs/). Returns the resolved path.
std::string external_path(const std::string& model_dir, const std::string& model_file, const std::string& loc,
                          const std::string& what) {
  NE_CHECK(!loc.empty(), what, ": external data without a location");
  NE_CHECK(loc.find('\0') == std::string::npos, what, ": external data location contains a NUL byte");
  NE_CHECK(loc[0] != '/', what, ": external data location '", loc,
           "' is an absolute path (must be relative to the model's directory)");
  std::stringstream ss(loc);
  std::string part;
  while (std::getline(ss, part, '/'))
    NE_CHECK(part != "..", what, ": external data location '", loc,
             "' leaves the model's directory ('..' is not allowed)");
  NE_CHECK(loc.find('\\') == std::string::npos, what, ": external data location '", loc,
           "' contains a backslash");
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::canonical(fs::path(model_dir.empty() ? "." : model_dir), ec);
  NE_CHECK(!ec, what, ": cannot resolve the model's directory '", model_dir, "': ", ec.message());
  const fs::path target = fs::weakly_canonical(dir / loc, ec);
  NE_CHECK(!ec, what, ": cannot resolve external data location '", loc, "' in '", dir.string(), "': ",
           ec.message());
  auto inside = [&](const fs::path& root) {
    const fs::path rel = target.lexically_relative(root);
    return !rel.empty() && *rel.begin() != ".." && rel != ".";
  };
  bool ok = inside(dir);
  if (!ok && !model_file.empty()) {
    const fs::path real_model = fs::weakly_canonical(fs::path(model_file), ec);
    if (!ec) ok = inside(real_model.parent_path());
  }
  NE_CHECK(ok, what, ": external data location '", loc, "' resolves to '", target.string(),
           "', outside the model's directory '", dir.string(), "' (symbolic links are followed)");
  NE_CHECK(fs::exists(target, ec), what, ": cannot open external data file '", target.string(), "' (location '",
           loc, "'): no such file");
  NE_CHECK(fs::is_regular_file(target, ec), what, ": external data file '", target.string(), "' (location '", loc,
           "') is not a regular file");
  return target.string();
}

}  // namespace

bool onnx_dtype(int t, DType* out) {
  switch (t) {
    case onnx::TensorProto::FLOAT: *out = DType::fp32; return true;
    case onnx::TensorProto::UINT8: *out = DType::u8; return true;
    case onnx::TensorProto::INT8: *out = DType::s8; return true;
    case onnx::TensorProto::INT32: *out = DType::int32; return true;
    case onnx::TensorProto::INT64: *out = DType::int64; return true;
    case onnx::TensorProto::BOOL: *out = DType::boolean; return true;
    case onnx::TensorProto::FLOAT16: *out = DType::fp16; return true;
    case onnx::TensorProto::BFLOAT16: *out = DType::bf16; return true;
    default: return false;
  }
}

static const char* onnx_dtype_name(int t) {
  auto n = onnx::TensorProto_DataType_Name(onnx::TensorProto_DataType(t));
  static thread_local std::string s;
  s = n.empty() ? std::to_string(t) : n;
  return s.c_str();
}

onnx::ModelProto read_onnx_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NE_CHECK(f.good(), path, ": cannot open the ONNX model");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  NE_CHECK(!bytes.empty(), path, ": the file is empty (not an ONNX model)");
  onnx::ModelProto mp;
  google::protobuf::io::ArrayInputStream ais(bytes.data(), int(bytes.size()));
  google::protobuf::io::CodedInputStream cis(&ais);
  cis.SetTotalBytesLimit(INT32_MAX);
  bool ok = mp.ParseFromCodedStream(&cis) && cis.ConsumedEntireMessage();
  NE_CHECK(ok, path, ": not a valid ONNX model (protobuf parse failed: the file is not ONNX or "
                     "is truncated)");
  NE_CHECK(mp.has_graph() && (mp.graph().node_size() > 0 || mp.graph().output_size() > 0), path,
           ": not a valid ONNX model (no graph)");
  NE_CHECK(mp.ir_version() > 0, path, ": not a valid ONNX model (no ir_version)");
  return mp;
}

BoundTensor onnx_tensor_value(const onnx::TensorProto& t, const std::string& model_dir,
                              const std::string& what0, const std::string& model_file) {
  std::string what = what0 + " tensor '" + t.name() + "'";
  BoundTensor r;
  NE_CHECK(onnx_dtype(t.data_type(), &r.dtype), what, ": data type ", onnx_dtype_name(t.data_type()),
           " is not supported");
  NE_CHECK(t.dims_size() <= 16, what, ": rank ", t.dims_size(), " exceeds 16");
  for (auto d : t.dims()) {
    NE_CHECK(d >= 0, what, ": negative dimension ", d);
    r.shape.push_back(d);
  }
  int64_t n;
  try {
    n = shape_numel(r.shape);
  } catch (const Error& e) {
    fail(what, ": ", e.what(), " (dims ", shape_str(r.shape), ")");
  }
  size_t es = dtype_size(r.dtype);
  NE_CHECK(uint64_t(n) <= (uint64_t(1) << 40) / es, what, ": too large (", shape_str(r.shape), ")");
  size_t nbytes = size_t(n) * es;
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string loc;
    uint64_t offset = 0;
    int64_t length = -1;
    auto number = [&](const std::string& key, const std::string& v) -> int64_t {
      char* end = nullptr;
      errno = 0;
      long long x = std::strtoll(v.c_str(), &end, 10);
      NE_CHECK(!v.empty() && end && *end == 0 && errno == 0 && x >= 0, what, ": external data ", key, " '", v,
               "' is not a non-negative integer");
      return x;
    };
    for (auto& kv : t.external_data()) {
      if (kv.key() == "location") loc = kv.value();
      else if (kv.key() == "offset") offset = uint64_t(number("offset", kv.value()));
      else if (kv.key() == "length") length = number("length", kv.value());
    }
    std::string p = external_path(model_dir, model_file, loc, what);
    std::ifstream f(p, std::ios::binary);
    NE_CHECK(f.good(), what, ": cannot open external data file '", p, "'");
    f.seekg(0, std::ios::end);
    uint64_t fsize = uint64_t(f.tellg());
    if (length < 0) length = int64_t(nbytes);
    NE_CHECK(uint64_t(length) == nbytes, what, ": external data length ", length,
             " does not match ", nbytes, " bytes of shape ", shape_str(r.shape));
    NE_CHECK(offset <= fsize && nbytes <= fsize - offset, what, ": external data [", offset, ", +",
             nbytes, ") lies beyond the end of '", p, "' (", fsize, " bytes)");
    r.bytes.resize(nbytes);
    f.seekg(std::streamoff(offset));
    f.read(reinterpret_cast<char*>(r.bytes.data()), std::streamsize(nbytes));
    NE_CHECK(f.good() || nbytes == 0, what, ": reading external data from '", p, "' failed");
    return r;
  }
  // Sizes are checked against the data present before anything is allocated.
  if (t.has_raw_data()) {
    NE_CHECK(t.raw_data().size() == nbytes, what, ": raw_data has ", t.raw_data().size(),
             " bytes, shape ", shape_str(r.shape), " needs ", nbytes);
    r.bytes.resize(nbytes);
    if (nbytes) std::memcpy(r.bytes.data(), t.raw_data().data(), nbytes);
    return r;
  }
  int have = 0;
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT: have = t.float_data_size(); break;
    case onnx::TensorProto::INT64: have = t.int64_data_size(); break;
    default: have = t.int32_data_size(); break;
  }
  NE_CHECK(int64_t(have) == n, what, ": has ", have, " values, shape ", shape_str(r.shape), " needs ", n);
  r.bytes.resize(nbytes);
  uint8_t* dst = r.bytes.data();
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (n) std::memcpy(dst, t.float_data().data(), nbytes);
      break;
    case onnx::TensorProto::INT64:
      if (n) std::memcpy(dst, t.int64_data().data(), nbytes);
      break;
    case onnx::TensorProto::INT32:
      if (n) std::memcpy(dst, t.int32_data().data(), nbytes);
      break;
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL:
      for (int64_t i = 0; i < n; ++i) dst[i] = uint8_t(t.int32_data(int(i)));
      break;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v = uint16_t(t.int32_data(int(i)));
        std::memcpy(dst + 2 * i, &v, 2);
      }
      break;
    default: fail(what, ": unsupported data type");
  }
  return r;
}

void put_weight(Model& m, const std::string& name, DType dt, const Shape& shape,
                std::vector<uint8_t> bytes) {
  bool empty = bytes.empty();
  TensorInfo& t = m.add_weight(name, dt, shape, std::move(bytes));
  if (empty) {
    auto holder = std::make_shared<std::vector<uint8_t>>(8, 0);
    t.data = holder->data();
    t.holder = holder;
  }
}

BoundTensor read_onnx_tensor_file(const std::string& path, std::string* name) {
  auto bytes = read_file_bytes(path, "tensor file");
  onnx::TensorProto t;
  NE_CHECK(t.ParseFromArray(bytes.data(), int(bytes.size())), path,
           ": not a valid ONNX TensorProto");
  if (name) *name = t.name();
  return onnx_tensor_value(t, dir_of(path), path + ":", path);
}

// ---------------------------------------------------------------------------------- lowering
namespace {

struct Lowerer {
  const onnx::ModelProto& mp;
  std::string path, dir;
  const CompileOptions& opt;
  int64_t opset = 0;
  Model m;
  std::set<std::string> op_names;
  std::map<std::string, std::vector<std::string>> unsupported;  // "Type (why)" -> node names
  std::map<std::string, int> ranks;  // tensor ranks known from ONNX shape inference
  int tmp_counter = 0;
  // Identity of a weight (torch's reads of a shared parameter: ALBERT's one layer used by every
  // layer) -> its readers read the weight itself, so it is stored once (not folded into copies).
  std::map<std::string, std::string> weight_alias;
  std::set<std::string> graph_outputs;

  Lowerer(const onnx::ModelProto& mp_, const std::string& p, const CompileOptions& o)
      : mp(mp_), path(p), dir(dir_of(p)), opt(o) {}

  std::string unique_op_name(std::string n, const std::string& type) {
    if (n.empty()) n = type;
    std::string base = n;
    for (int i = 1; op_names.count(n) || n == "input_data" || n == "output_data"; ++i)
      n = base + "_" + std::to_string(i);
    op_names.insert(n);
    return n;
  }
  std::string tmp(const std::string& base) { return base + "__ne" + std::to_string(tmp_counter++); }

  const std::string& resolve(const std::string& t) const {
    auto it = weight_alias.find(t);
    return it == weight_alias.end() ? t : it->second;
  }
  // Identity (or inference Dropout) of in -> out: an alias when `in` is a weight.
  void identity(const std::string& nm, const std::string& in, const std::string& out) {
    if (m.is_weight(in) && !graph_outputs.count(out)) weight_alias[out] = resolve(in);
    else emit(nm, "Identity", {in}, {out});
  }

  OpInfo& emit(const std::string& name, const std::string& type, std::vector<std::string> in,
               std::vector<std::string> out) {
    for (auto& i : in) i = resolve(i);
    while (!in.empty() && in.back().empty()) in.pop_back();  // trailing optional inputs
    OpInfo op;
    op.name = unique_op_name(name, type);
    op.type = type;
    op.inputs = std::move(in);
    op.outputs = std::move(out);
    m.ops.push_back(std::move(op));
    return m.ops.back();
  }

  void add_weight(const std::string& name, const BoundTensor& b) {
    put_weight(m, name, b.dtype, b.shape, b.bytes);
  }
  template <class T>
  std::string const_tensor(const std::string& base, DType dt, const Shape& s, std::vector<T> v) {
    std::string n = tmp(base);
    m.add_weight(n, dt, s, v);
    return n;
  }

  // attributes
  std::map<std::string, const onnx::AttributeProto*> attrs_of(const onnx::NodeProto& n) {
    std::map<std::string, const onnx::AttributeProto*> a;
    for (auto& x : n.attribute()) a[x.name()] = &x;
    return a;
  }

  bool lower_node(const onnx::NodeProto& n, std::string* why);
  void check_schema(const onnx::NodeProto& n, const std::string& node_name) const;
  void infer_ranks();
  int rank_of(const std::string& t) const {
    auto it = ranks.find(t);
    return it == ranks.end() ? -1 : it->second;
  }
  // Softmax (log: LogSoftmax) with opset < 13 semantics: the input is coerced to 2-D at `axis`
  // ([d0..d(axis-1), d(axis)..d(r-1)]) and normalised per row. On the last axis that is the
  // per-axis softmax of opset 13 (emitted as one Softmax); otherwise Flatten(axis) -> Softmax
  // (last axis) -> Reshape to the input's shape.
  void lower_softmax_v1(const std::string& nm, const std::string& x, const std::string& y,
                        int64_t axis, bool log);
  void lower_qop_contrib(const onnx::NodeProto& n, const std::string& node_name);
  void run();
};

#define A_INT(name, def) (a.count(name) ? a.at(name)->i() : int64_t(def))
#define A_FLOAT(name, def) (a.count(name) ? double(a.at(name)->f()) : double(def))
#define A_INTS(name)                                                                  \
  (a.count(name) ? std::vector<int64_t>(a.at(name)->ints().begin(), a.at(name)->ints().end()) \
                 : std::vector<int64_t>())

const std::map<std::string, std::string>& binary_ops() {
  static const std::map<std::string, std::string> t = {
      {"Sub", "sub"},         {"Mul", "mul"},         {"Div", "div"},
      {"Pow", "pow"},         {"Equal", "equal"},     {"Greater", "greater"},
      {"GreaterOrEqual", "greater_equal"},            {"Less", "less"},
      {"LessOrEqual", "less_equal"},                  {"And", "and"},
      {"Or", "or"},           {"Xor", "xor"},         {"Mod", "mod"}};
  return t;
}
const std::map<std::string, std::string>& unary_ops() {
  static const std::map<std::string, std::string> t = {
      {"Sqrt", "sqrt"},   {"Exp", "exp"},           {"Log", "log"},       {"Erf", "erf"},
      {"Tanh", "tanh"},   {"Relu", "relu"},         {"Sigmoid", "sigmoid"}, {"Neg", "neg"},
      {"Abs", "abs"},     {"Reciprocal", "reciprocal"}, {"Floor", "floor"}, {"Ceil", "ceil"},
      {"Round", "round"}, {"Sin", "sin"},           {"Cos", "cos"},       {"Not", "not"},
      {"Sign", "sign"},   {"Softplus", "softplus"}, {"LeakyRelu", "leaky_relu"},
      {"Elu", "elu"},     {"HardSigmoid", "hard_sigmoid"}, {"Selu", "selu"}};
  return t;
}
const std::set<std::string>& simple_ops() {
  static const std::set<std::string> t = {
      "Add",      "MatMul",    "Gemm",      "Softmax",   "LayerNormalization", "Clip",
      "Where",    "Cast",      "Reshape",   "Flatten",   "Squeeze",  "Unsqueeze", "Transpose",
      "Concat",   "Split",     "Slice",     "Gather",    "Expand",   "Tile",      "Shape",
      "ConstantOfShape",       "Range",     "Identity",  "Dropout",  "ReduceMean", "ReduceSum",
      "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare", "ArgMax", "ArgMin",
      "Constant", "Sum",       "Max",       "Min",       "Mean",     "LogSoftmax", "Size",
      "CastLike", "ReduceL1",  "ReduceLogSum", "ReduceLogSumExp", "QuantizeLinear",
      "DequantizeLinear", "MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "CumSum"};
  return t;
}

bool is_lowered(const std::string& t) {
  return simple_ops().count(t) || binary_ops().count(t) || unary_ops().count(t);
}

// A node's name in messages: its name, or "Type(first output)" for an unnamed node.
std::string node_name_of(const onnx::NodeProto& n) {
  return n.name().empty() ? n.op_type() + "(" + (n.output_size() ? n.output(0) : "") + ")" : n.name();
}

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

// A default-domain node the compiler reads, against ONNX's schema of it for the model's opset
// (input and output counts, attribute names and types): before anything reads the node's inputs,
// outputs or attributes. An op the opset does not define yet (CastLike in an opset-13 model) or no
// longer defines is an error naming the node, the op and the opset, never a skipped check.
void Lowerer::check_schema(const onnx::NodeProto& n, const std::string& node_name) const {
  const std::string& t = n.op_type();
  auto where = [&] { return str_cat(path, ": node '", node_name, "' (", t, "): "); };
  const onnx::OpSchema* s = onnx::OpSchemaRegistry::Schema(t, int(std::min<int64_t>(opset, INT32_MAX)), "");
  if (!s) {
    const onnx::OpSchema* latest = onnx::OpSchemaRegistry::Schema(t, "");
    NE_CHECK(latest, where(), "not an operator of ai.onnx (no ONNX schema)");
    int since = latest->since_version();  // the earliest version: the first opset that finds one
    for (int v = int(opset) + 1; v <= latest->since_version(); ++v)
      if (const onnx::OpSchema* e = onnx::OpSchemaRegistry::Schema(t, v, "")) {
        since = e->since_version();
        break;
      }
    fail(where(), "not defined in opset ", opset, " of ai.onnx (since opset ", since, ")");
  }
  NE_CHECK(!s->deprecated(), where(), "deprecated in opset ", opset, " of ai.onnx (since opset ",
           s->since_version(), ")");
  try {
    s->Verify(n);
  } catch (const std::exception& e) {
    // A model newer than this build's ONNX library is checked against the newest schema it knows.
    const auto& range = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
    auto it = range.find(onnx::ONNX_DOMAIN);
    std::string note;
    if (it != range.end() && opset > it->second.second)
      note = str_cat(" (checked against ", t, "-", s->since_version(), ": the model's opset ", opset,
                     " is newer than the ", it->second.second, " this build's ONNX library knows)");
    fail(where(), "does not match the ONNX schema of opset ", opset, ": ", e.what(), note);
  }
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

std::vector<const onnx::NodeProto*> topo_order(const onnx::GraphProto& g,
                                               const std::set<std::string>& available);

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

// Ranks of the graph's tensors from ONNX's own shape inference (on a copy without the big
// weights' bytes): they decide how opset < 13 Softmax lowers. A model shape inference cannot handle just
// leaves ranks unknown (the general lowering is then used).
void Lowerer::infer_ranks() {
  // The model without its initializers' bytes (copying a BERT-base's weights would cost ~440 MB),
  // then each initializer's name, type and dims, with the data only where it may be shape data.
  onnx::ModelProto copy;
  copy.set_ir_version(mp.ir_version());
  *copy.mutable_opset_import() = mp.opset_import();
  *copy.mutable_functions() = mp.functions();
  {
    const onnx::GraphProto& g = mp.graph();
    onnx::GraphProto* cg = copy.mutable_graph();
    cg->set_name(g.name());
    *cg->mutable_node() = g.node();
    *cg->mutable_input() = g.input();
    *cg->mutable_output() = g.output();
    *cg->mutable_value_info() = g.value_info();
  }
  for (auto& init : mp.graph().initializer()) {
    int64_t n = 1;
    for (auto d : init.dims()) n *= d;
    onnx::TensorProto* t = copy.mutable_graph()->add_initializer();
    if (n <= 64 && init.data_location() != onnx::TensorProto::EXTERNAL) {
      t->CopyFrom(init);  // small constants may be shape data; weights are not
      continue;
    }
    t->set_name(init.name());
    t->set_data_type(init.data_type());
    *t->mutable_dims() = init.dims();
  }
  try {
    onnx::shape_inference::InferShapes(copy);
  } catch (const std::exception&) {
  }
  auto take = [&](const onnx::ValueInfoProto& vi) {
    if (vi.type().has_tensor_type() && vi.type().tensor_type().has_shape())
      ranks[vi.name()] = vi.type().tensor_type().shape().dim_size();
  };
  for (auto& vi : copy.graph().value_info()) take(vi);
  for (auto& vi : copy.graph().input()) take(vi);
  for (auto& vi : copy.graph().output()) take(vi);
  for (auto& init : copy.graph().initializer()) ranks[init.name()] = init.dims_size();
  // ONNX's inference stops at ops whose output shape depends on values (opset-10 Slice with
  // computed starts, Reshape to a computed shape): carry ranks on through them. `len` holds
  // the lengths of 1-D shape-like tensors (Shape, Concat of them, constants).
  std::map<std::string, int> len;
  for (auto& init : copy.graph().initializer())
    if (init.dims_size() == 1) len[init.name()] = int(init.dims(0));
  auto R = [&](const std::string& t) { return rank_of(t); };
  auto L = [&](const std::string& t) {
    auto it = len.find(t);
    return it == len.end() ? -1 : it->second;
  };
  auto ints = [](const onnx::NodeProto& n, const char* name) -> int {
    for (auto& a : n.attribute())
      if (a.name() == name) return a.ints_size();
    return -1;
  };
  std::set<std::string> avail;
  for (auto& init : copy.graph().initializer()) avail.insert(init.name());
  for (auto& vi : copy.graph().input()) avail.insert(vi.name());
  // A node's k-th input, "" past its inputs (an older opset's form has fewer: Reshape-1).
  auto in_at = [](const onnx::NodeProto& n, int k) { return k < n.input_size() ? n.input(k) : std::string(); };
  for (auto* n : topo_order(copy.graph(), avail)) {
    const std::string& t = n->op_type();
    if (n->output_size() == 0) continue;
    const std::string& o = n->output(0);
    int r = -1;
    const int r0 = n->input_size() ? R(in_at(*n, 0)) : -1;
    if (t == "Constant") {
      for (auto& a : n->attribute())
        if (a.name() == "value") {
          r = a.t().dims_size();
          if (r == 1) len[o] = int(a.t().dims(0));
        } else if (a.name() == "value_ints" || a.name() == "value_floats") {
          r = 1;
          len[o] = a.name() == "value_ints" ? a.ints_size() : a.floats_size();
        } else if (a.name() == "value_int" || a.name() == "value_float") {
          r = 0;
        }
    } else if (t == "Shape") {
      r = 1;
      if (r0 >= 0) len[o] = r0;
    } else if (t == "Concat") {
      r = r0;
      int sum = 0;
      for (auto& i : n->input()) sum = (sum < 0 || L(i) < 0) ? -1 : sum + L(i);
      if (r == 1 && sum >= 0) len[o] = sum;
    } else if (t == "Unsqueeze") {
      int k = ints(*n, "axes");
      if (k < 0 && n->input_size() > 1) k = L(in_at(*n, 1));
      if (r0 >= 0 && k >= 0) r = r0 + k;
      if (r == 1 && r0 == 0 && k == 1) len[o] = 1;
    } else if (t == "Squeeze") {
      int k = ints(*n, "axes");
      if (k < 0 && n->input_size() > 1) k = L(in_at(*n, 1));
      if (r0 >= 0 && k >= 0) r = r0 - k;
    } else if (t == "Reshape" || t == "Expand" || t == "ConstantOfShape") {
      const int k = L(in_at(*n, t == "ConstantOfShape" ? 0 : 1));
      r = t == "Expand" ? (k >= 0 && r0 >= 0 ? std::max(k, r0) : -1) : k;
    } else if (t == "Gather") {
      const int ri = n->input_size() > 1 ? R(in_at(*n, 1)) : -1;
      if (r0 >= 0 && ri >= 0) r = r0 - 1 + ri;
      if (r == 1 && len.count(in_at(*n, 0)) && ri == 1) len[o] = L(in_at(*n, 1));
    } else if (t == "MatMul" || t == "Add" || t == "Sub" || t == "Mul" || t == "Div" || t == "Pow" ||
               t == "Equal" || t == "Where" || t == "And" || t == "Or" || t == "Less" || t == "Greater" ||
               t == "Max" || t == "Min" || t == "Sum") {
      r = 0;
      for (auto& i : n->input()) r = (r < 0 || R(i) < 0) ? -1 : std::max(r, R(i));
    } else if (t == "Gemm" || t == "Flatten") {
      r = 2;
    } else if (t == "Range") {
      r = 1;
    } else if (t.rfind("Reduce", 0) == 0) {
      int keep = 1;
      for (auto& a : n->attribute())
        if (a.name() == "keepdims") keep = int(a.i());
      const int k = ints(*n, "axes");
      r = keep ? r0 : (r0 >= 0 && k >= 0 ? r0 - k : -1);
    } else if (t == "Cast" || t == "Softmax" || t == "LogSoftmax" || t == "Erf" || t == "Sqrt" ||
               t == "Tanh" || t == "Relu" || t == "Sigmoid" || t == "Neg" || t == "Not" || t == "Identity" ||
               t == "Dropout" || t == "LayerNormalization" || t == "Transpose" || t == "Slice" ||
               t == "CumSum" || t == "Split" || t == "Exp" || t == "Log" || t == "Abs" || t == "Clip") {
      r = r0;
      if ((t == "Cast" || t == "Identity" || t == "Slice") && len.count(in_at(*n, 0)) && t != "Slice")
        len[o] = L(in_at(*n, 0));
    }
    for (auto& out : n->output())
      if (!out.empty() && !ranks.count(out) && r >= 0) ranks[out] = r;
  }
}

std::vector<const onnx::NodeProto*> topo_order(const onnx::GraphProto& g,
                                               const std::set<std::string>& available) {
  std::set<std::string> have = available;
  std::vector<const onnx::NodeProto*> order, pending;
  for (auto& n : g.node()) pending.push_back(&n);
  bool progress = true;
  while (!pending.empty() && progress) {
    progress = false;
    std::vector<const onnx::NodeProto*> rest;
    for (auto* n : pending) {
      bool ready = true;
      for (auto& i : n->input())
        if (!i.empty() && !have.count(i)) ready = false;
      if (ready) {
        order.push_back(n);
        for (auto& o : n->output()) have.insert(o);
        progress = true;
      } else {
        rest.push_back(n);
      }
    }
    pending.swap(rest);
  }
  for (auto* n : pending) order.push_back(n);  // unresolved: validate() will name the tensor
  return order;
}

void Lowerer::run() {
  const onnx::GraphProto& g = mp.graph();
  for (auto& o : mp.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  NE_CHECK(opset > 0, path, ": the model imports no default-domain opset");
  // Every default-domain node the compiler reads, checked against ONNX's schema first (rank
  // inference and the com.microsoft lowering read the graph's nodes too). Ops it does not read are
  // listed as unsupported below.
  for (auto& n : g.node())
    if ((n.domain().empty() || n.domain() == "ai.onnx") && is_lowered(n.op_type()))
      check_schema(n, node_name_of(n));
  m.name = g.name().empty() ? "model" : g.name();
  m.source = path;
  for (auto& o : g.output()) graph_outputs.insert(o.name());
  for (auto& n : g.node())
    if (n.op_type() == "Softmax" || n.op_type() == "LogSoftmax") {
      if (opset < 13) infer_ranks();
      break;
    }

  // Weights: initializers, then bound inputs.
  std::set<std::string> available;
  for (auto& init : g.initializer()) {
    add_weight(init.name(), onnx_tensor_value(init, dir, path + ": initializer", path));
    available.insert(init.name());
  }
  OpInfo input;
  input.name = "input_data";
  input.type = "Input";
  for (auto& vi : g.input()) {
    const std::string& name = vi.name();
    available.insert(name);
    if (m.is_weight(name) && !opt.bound_inputs.count(name)) continue;  // old-style initializer input
    auto b = opt.bound_inputs.find(name);
    if (b != opt.bound_inputs.end()) {
      add_weight(name, b->second);
      continue;
    }
    NE_CHECK(vi.type().has_tensor_type(), path, ": graph input '", name, "' is not a tensor");
    auto& tt = vi.type().tensor_type();
    TensorInfo ti;
    ti.name = name;
    if (!onnx_dtype(tt.elem_type(), &ti.dtype))
      unsupported[std::string("input dtype ") + onnx_dtype_name(tt.elem_type())].push_back(name);
    if (tt.has_shape()) {
      ti.has_shape = true;
      for (auto& d : tt.shape().dim()) ti.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
    m.tensors[name] = ti;
    input.outputs.push_back(name);
  }
  m.ops.push_back(input);
  op_names.insert("input_data");

  // com.microsoft ops (ONNX Runtime's transformer optimizer): compile/ms_import.cpp.
  MsOpLowerer ms(m, g, [this](const std::string& nm, const std::string& type, std::vector<std::string> in,
                              std::vector<std::string> out) -> OpInfo& { return emit(nm, type, in, out); },
                 [this](const std::string& base) { return tmp(base); });
  for (auto* n : topo_order(g, available)) {
    const std::string node_name = node_name_of(*n);
    if (n->domain() == "com.microsoft" && pass::qop_contrib_ops().count(n->op_type())) {
      lower_qop_contrib(*n, node_name);  // QOperator int8 MatMuls: pass::import_qop
      continue;
    }
    if (!(n->domain().empty() || n->domain() == "ai.onnx")) {
      std::string why;
      if (MsOpLowerer::is_ms_domain(n->domain()) && ms.lower(*n, &why)) continue;
      unsupported[n->domain() + "::" + n->op_type() + (why.empty() ? "" : " (" + why + ")")].push_back(node_name);
      continue;
    }
    const std::string& t = n->op_type();
    if (!is_lowered(t)) {
      unsupported[t].push_back(node_name);
      continue;
    }
    std::string why;
    if (!lower_node(*n, &why)) unsupported[t + (why.empty() ? "" : " (" + why + ")")].push_back(node_name);
  }

  if (!unsupported.empty()) {
    std::string msg = path + ": unsupported ONNX operators (opset " + std::to_string(opset) + "):";
    for (auto& kv : unsupported) {
      msg += "\n  " + kv.first + ": ";
      for (size_t i = 0; i < kv.second.size(); ++i) msg += (i ? ", " : "") + kv.second[i];
    }
    fail(msg);
  }

  OpInfo output;
  output.name = "output_data";
  output.type = "Output";
  for (auto& o : g.output()) output.inputs.push_back(o.name());
  m.ops.push_back(output);
  op_names.insert("output_data");
}

}  // namespace

Model lower_onnx(const onnx::ModelProto& mp, const std::string& path, const CompileOptions& opt) {
  Lowerer l(mp, path, opt);
  l.run();
  return std::move(l.m);
}

std::vector<std::string> supported_onnx_ops() {
  std::set<std::string> s = simple_ops();
  for (auto& kv : binary_ops()) s.insert(kv.first);
  for (auto& kv : unary_ops()) s.insert(kv.first);
  for (auto& t : MsOpLowerer::supported()) s.insert(t);
  return std::vector<std::string>(s.begin(), s.end());
}

std::vector<std::string> onnx_shape_inputs(const std::string& onnx_path) {
  auto mp = read_onnx_model(onnx_path);
  // (op type, input positions whose values decide output shapes); -1 = all inputs.
  static const std::map<std::string, std::vector<int>> pos = {
      {"Reshape", {1}},   {"Expand", {1}},  {"Tile", {1}},    {"ConstantOfShape", {0}},
      {"Slice", {1, 2, 3, 4}}, {"Squeeze", {1}}, {"Unsqueeze", {1}}, {"Split", {1}},
      {"Range", {0, 1, 2}}, {"ReduceSum", {1}}, {"ReduceMean", {1}}, {"ReduceMax", {1}},
      {"ReduceMin", {1}}, {"ReduceProd", {1}}, {"ReduceL2", {1}}, {"ReduceSumSquare", {1}},
      {"ReduceL1", {1}}, {"ReduceLogSum", {1}}, {"ReduceLogSumExp", {1}}};
  std::set<std::string> graph_inputs, init;
  for (auto& i : mp.graph().initializer()) init.insert(i.name());
  for (auto& i : mp.graph().input())
    if (!init.count(i.name())) graph_inputs.insert(i.name());
  // Tensors whose values decide shapes, then everything they are computed from.
  std::map<std::string, const onnx::NodeProto*> producer;
  for (auto& n : mp.graph().node())
    for (auto& o : n.output()) producer[o] = &n;
  std::vector<std::string> todo;
  for (auto& n : mp.graph().node()) {
    auto it = pos.find(n.op_type());
    if (it == pos.end()) continue;
    for (int p : it->second)
      if (p < n.input_size() && !n.input(p).empty()) todo.push_back(n.input(p));
  }
  std::set<std::string> seen;
  std::vector<std::string> r;
  while (!todo.empty()) {
    std::string t = todo.back();
    todo.pop_back();
    if (!seen.insert(t).second) continue;
    if (graph_inputs.count(t)) r.push_back(t);
    auto pr = producer.find(t);
    if (pr != producer.end() && pr->second->op_type() != "Shape")
      for (auto& i : pr->second->input()) todo.push_back(i);
  }
  std::sort(r.begin(), r.end());
  return r;
}

}  // namespace ne
