// ONNX reading: the model file (protobuf), TensorProto values (raw, typed, external data kept
// inside the model's directory), weights, single-tensor files, and which graph inputs decide shapes.
#include "compile/onnx_import.hpp"
#include "compile/onnx_import_internal.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace ne {

namespace {

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

namespace onnx_internal {

std::string dir_of(const std::string& p) {
  auto s = p.find_last_of('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

const char* onnx_dtype_name(int t) {
  auto n = onnx::TensorProto_DataType_Name(onnx::TensorProto_DataType(t));
  static thread_local std::string s;
  s = n.empty() ? std::to_string(t) : n;
  return s.c_str();
}

}  // namespace onnx_internal

using onnx_internal::dir_of;
using onnx_internal::onnx_dtype_name;

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
