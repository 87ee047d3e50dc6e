// conf.yaml + model.bin reader and writer (Intel Neural Engine schema).
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

#include "common/checksum.hpp"
#include "common/ir.hpp"

namespace ne {

namespace {

// Limits on untrusted conf.yaml files (YAML nesting is bounded by yaml-cpp's own depth guard,
// 2000 levels, reported as a parse error).
constexpr uint64_t kMaxConfBytes = uint64_t(1) << 30;
constexpr size_t kMaxOps = 1000000;

std::string scalar_or_list(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  if (n.IsSequence()) {
    std::string r;
    for (size_t i = 0; i < n.size(); ++i) {
      NE_CHECK(n[i].IsScalar(), "nested lists are not allowed in attributes");
      r += (i ? "," : "") + n[i].Scalar();
    }
    return r;
  }
  if (n.IsNull()) return "";
  fail("expected a scalar or a list");
}

int64_t to_i64(const YAML::Node& n, const std::string& what) {
  NE_CHECK(n.IsScalar(), what, ": expected an integer");
  const std::string& s = n.Scalar();
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  NE_CHECK(!s.empty() && end && *end == 0 && errno == 0, what, ": '", s, "' is not an integer");
  return v;
}

// Reads {dtype, shape, location} of one tensor entry into `t` (fields present only).
void read_tensor_entry(const YAML::Node& n, TensorInfo& t, const std::string& ctx) {
  if (!n || n.IsNull()) return;
  NE_CHECK(n.IsMap(), ctx, ": tensor '", t.name, "' must be a map ({dtype, shape, location})");
  if (n["dtype"]) {
    NE_CHECK(n["dtype"].IsScalar(), ctx, ": tensor '", t.name, "': dtype must be a string");
    DType d;
    NE_CHECK(parse_dtype(n["dtype"].Scalar(), &d), ctx, ": tensor '", t.name, "': unknown dtype '",
             n["dtype"].Scalar(), "' (expected fp32, bf16, fp16, s8, u8, s32, int32, int64)");
    t.dtype = d;
  }
  if (n["shape"]) {
    const YAML::Node& s = n["shape"];
    NE_CHECK(s.IsSequence(), ctx, ": tensor '", t.name, "': shape must be a list");
    NE_CHECK(s.size() <= 16, ctx, ": tensor '", t.name, "': rank ", s.size(), " exceeds 16");
    t.shape.clear();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t d = to_i64(s[i], ctx + ": tensor '" + t.name + "' shape");
      NE_CHECK(d >= -1, ctx, ": tensor '", t.name, "': dimension ", d, " < -1");
      t.shape.push_back(d);
    }
    t.has_shape = true;
  }
  if (n["location"]) {
    const YAML::Node& l = n["location"];
    NE_CHECK(l.IsSequence() && l.size() == 2, ctx, ": tensor '", t.name,
             "': location must be [byte_offset, byte_size]");
    int64_t off = to_i64(l[0], ctx + ": tensor '" + t.name + "' location");
    int64_t sz = to_i64(l[1], ctx + ": tensor '" + t.name + "' location");
    NE_CHECK(off >= 0 && sz >= 0, ctx, ": tensor '", t.name, "': negative location");
    t.is_weight = true;
    t.offset = uint64_t(off);
    t.nbytes = uint64_t(sz);
  }
}

void read_tensor_map(const YAML::Node& n, std::vector<std::string>& names, Model& m,
                     const std::string& ctx, const std::string& opname, const char* field) {
  if (!n || n.IsNull()) return;
  NE_CHECK(n.IsMap(), ctx, ": operator '", opname, "': '", field, "' must be a map of tensors");
  for (auto it = n.begin(); it != n.end(); ++it) {
    NE_CHECK(it->first.IsScalar(), ctx, ": operator '", opname, "': tensor name must be a string");
    std::string tn = it->first.Scalar();
    names.push_back(tn);
    auto found = m.tensors.find(tn);
    TensorInfo tmp;
    TensorInfo& t = found != m.tensors.end() ? found->second : tmp;
    t.name = tn;
    bool had = t.has_shape || t.is_weight;
    read_tensor_entry(it->second, t, ctx);
    if (found == m.tensors.end() && (t.has_shape || t.is_weight || (it->second && it->second.IsMap() && it->second["dtype"])))
      m.tensors[tn] = t;
    (void)had;
  }
}

// `weight_file: {size: N, checksum: "page64:..."}`: what the writer recorded of model.bin.
struct WeightRecord {
  bool has_size = false;
  uint64_t size = 0;
  std::string checksum;  // "" when not recorded
};

WeightRecord read_weight_record(const YAML::Node& n, const std::string& conf_path) {
  WeightRecord r;
  if (!n || n.IsNull()) return r;
  NE_CHECK(n.IsMap(), conf_path, ": 'weight_file' must be a map {size: N, checksum: \"...\"}");
  if (n["size"]) {
    int64_t v = to_i64(n["size"], conf_path + ": weight_file size");
    NE_CHECK(v >= 0, conf_path, ": weight_file size ", v, " is negative");
    r.has_size = true;
    r.size = uint64_t(v);
  }
  if (n["checksum"]) {
    NE_CHECK(n["checksum"].IsScalar(), conf_path, ": weight_file checksum must be a string");
    r.checksum = n["checksum"].Scalar();
  }
  return r;
}

// Refuses a model.bin that is not the one the writer recorded in conf.yaml.
void verify_weight_record(const WeightRecord& r, const Blob& blob, const std::string& conf_path,
                          const std::string& bin_path) {
  const char* hint = ": it is not the model.bin written with this conf.yaml";
  NE_CHECK(!r.has_size || r.size == blob.size(), bin_path, " is ", blob.size(), " bytes but ",
           conf_path, " records weight_file size ", r.size, hint,
           " (another model's weights, or a truncated copy?)");
  if (r.checksum.empty()) return;
  const std::string method = r.checksum.substr(0, r.checksum.find(':'));
  if (method != kWeightChecksumMethod) {
    std::fprintf(stderr, "warning: %s: weight_file checksum method '%s' is unknown (this engine knows %s); "
                 "%s not verified\n", conf_path.c_str(), method.c_str(), kWeightChecksumMethod,
                 bin_path.c_str());
    return;
  }
  std::string got = weight_file_checksum(blob.data(), blob.size());
  NE_CHECK(got == r.checksum, bin_path, " has checksum ", got, " but ", conf_path,
           " records weight_file checksum ", r.checksum, hint,
           " (another model's weights, or a modified file?)");
}

}  // namespace

Model load_ir(const std::string& conf_path, const std::string& bin_path) {
  Model m;
  m.source = conf_path;
  {
    struct stat st;
    NE_CHECK(stat(conf_path.c_str(), &st) == 0, conf_path, ": cannot open (", std::strerror(errno), ")");
    NE_CHECK(S_ISREG(st.st_mode), conf_path, ": not a regular file");
    NE_CHECK(uint64_t(st.st_size) <= kMaxConfBytes, conf_path, ": ", st.st_size,
             " bytes is too large for a conf.yaml (limit ", kMaxConfBytes, ")");
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(conf_path);
  } catch (const YAML::Exception& e) {
    fail(conf_path, ": YAML does not parse: ", e.what());
  }
  // Every yaml-cpp call below may throw (bad conversions, invalid nodes): report those as the
  // file's error, never as a bare YAML exception.
  WeightRecord record;
  try {
    NE_CHECK(root.IsMap(), conf_path, ": expected a map with a 'model' key at the top");
    YAML::Node model = root["model"];
    NE_CHECK(model && model.IsMap(), conf_path, ": expected a 'model:' map at the top level");
    if (root["version"]) m.version = int(to_i64(root["version"], conf_path + ": version"));
    else if (model["version"]) m.version = int(to_i64(model["version"], conf_path + ": version"));
    record = read_weight_record(root["weight_file"], conf_path);
    if (model["name"] && model["name"].IsScalar()) m.name = model["name"].Scalar();
    YAML::Node ops = model["operator"];
    NE_CHECK(ops && ops.IsMap(), conf_path, ": expected 'model: operator:' to be a map of operators");
    NE_CHECK(ops.size() <= kMaxOps, conf_path, ": ", ops.size(), " operators exceed the limit of ",
             kMaxOps);
    for (auto it = ops.begin(); it != ops.end(); ++it) {
      OpInfo op;
      NE_CHECK(it->first.IsScalar(), conf_path, ": operator name must be a string");
      op.name = it->first.Scalar();
      const YAML::Node body = it->second;  // a copy: it-> points into a temporary
      NE_CHECK(body.IsMap(), conf_path, ": operator '", op.name, "' must be a map");
      NE_CHECK(body["type"] && body["type"].IsScalar(), conf_path, ": operator '", op.name,
               "' has no 'type'");
      op.type = body["type"].Scalar();
      try {
        read_tensor_map(body["input"], op.inputs, m, conf_path, op.name, "input");
        read_tensor_map(body["output"], op.outputs, m, conf_path, op.name, "output");
        if (body["attr"] && !body["attr"].IsNull()) {
          NE_CHECK(body["attr"].IsMap(), conf_path, ": operator '", op.name, "': attr must be a map");
          for (auto a = body["attr"].begin(); a != body["attr"].end(); ++a) {
            NE_CHECK(a->first.IsScalar(), "attribute names must be strings");
            op.attrs.emplace_back(a->first.Scalar(), scalar_or_list(a->second));
          }
        }
      } catch (const YAML::Exception& e) {
        fail(conf_path, ": operator '", op.name, "': ", e.what());
      } catch (const Error& e) {
        std::string w = e.what();
        if (w.rfind(conf_path, 0) == 0) throw;
        fail(conf_path, ": operator '", op.name, "': ", w);
      }
      m.ops.push_back(std::move(op));
    }
  } catch (const YAML::Exception& e) {
    fail(conf_path, ": ", e.what());
  }

  // Resolve weights against model.bin.
  bool any_weight = false;
  for (auto& kv : m.tensors) any_weight |= kv.second.is_weight;
  std::shared_ptr<Blob> blob;
  if (any_weight || !bin_path.empty()) {
    NE_CHECK(!bin_path.empty(), conf_path, ": has weights but no model.bin was given (--weight)");
    blob = map_file(bin_path);
    verify_weight_record(record, *blob, conf_path, bin_path);
  }
  for (auto& kv : m.tensors) {
    TensorInfo& t = kv.second;
    if (!t.is_weight) continue;
    NE_CHECK(t.has_shape, conf_path, ": weight '", t.name, "' has no shape");
    for (int64_t d : t.shape)
      NE_CHECK(d >= 0, conf_path, ": weight '", t.name, "' has a dynamic dimension in ", shape_str(t.shape));
    uint64_t need = 0;
    try {
      need = uint64_t(shape_numel(t.shape));
    } catch (const Error& e) {
      fail(conf_path, ": weight '", t.name, "': shape ", shape_str(t.shape), ": ", e.what());
    }
    NE_CHECK(need <= (uint64_t(1) << 48) / dtype_size(t.dtype), conf_path, ": weight '", t.name,
             "': shape ", shape_str(t.shape), " is implausibly large");
    need *= dtype_size(t.dtype);
    NE_CHECK(t.nbytes == need, conf_path, ": weight '", t.name, "': location size ", t.nbytes,
             " bytes does not match shape ", shape_str(t.shape), " x ", dtype_name(t.dtype), " = ",
             need, " bytes");
    NE_CHECK(t.offset <= blob->size() && t.nbytes <= blob->size() - t.offset, bin_path,
             ": weight '", t.name, "' at [", t.offset, ", ", t.nbytes,
             "] lies past the end of the file (", blob->size(), " bytes; truncated?)");
    t.data = blob->data() + t.offset;
    t.holder = blob;
  }
  m.blob = blob;
  validate(m);
  return m;
}

namespace {
void emit_tensor(YAML::Emitter& e, const TensorInfo* t, bool full, uint64_t offset) {
  e << YAML::BeginMap;
  if (t && full) {
    e << YAML::Key << "dtype" << YAML::Value << dtype_name(t->dtype);
    if (t->has_shape) {
      e << YAML::Key << "shape" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (auto d : t->shape) e << d;
      e << YAML::EndSeq;
    }
    if (t->is_weight) {
      e << YAML::Key << "location" << YAML::Value << YAML::Flow << YAML::BeginSeq << offset
        << t->nbytes << YAML::EndSeq;
    }
  }
  e << YAML::EndMap;
}

std::map<std::string, uint64_t> plan_offsets(const Model& m, uint64_t* total) {
  std::map<std::string, uint64_t> off;
  uint64_t pos = 0;
  for (auto& op : m.ops)
    for (auto* list : {&op.outputs, &op.inputs})
      for (auto& n : *list) {
        const TensorInfo* t = m.find(n);
        if (!t || !t->is_weight || off.count(n)) continue;
        pos = (pos + 63) / 64 * 64;
        off[n] = pos;
        pos += t->nbytes;
      }
  *total = pos;
  return off;
}

// `record`: model.bin's size and checksum (save_ir), or null (in-memory serialisation).
std::string to_yaml(const Model& m, const WeightRecord* record) {
  uint64_t total;
  auto off = plan_offsets(m, &total);
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "version" << YAML::Value << m.version;
  if (record) {
    e << YAML::Key << "weight_file" << YAML::Value << YAML::Flow << YAML::BeginMap;
    e << YAML::Key << "size" << YAML::Value << record->size;
    e << YAML::Key << "checksum" << YAML::Value << YAML::DoubleQuoted << record->checksum;
    e << YAML::EndMap;
  }
  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << m.name;
  e << YAML::Key << "operator" << YAML::Value << YAML::BeginMap;
  for (auto& op : m.ops) {
    e << YAML::Key << op.name << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "type" << YAML::Value << op.type;
    // Weights are declared where they first appear; descriptors with dtype/shape everywhere they
    // are declared by Input, and for every weight (so a consumer-side reader finds them too).
    if (!op.inputs.empty()) {
      e << YAML::Key << "input" << YAML::Value << YAML::BeginMap;
      for (auto& n : op.inputs) {
        e << YAML::Key << n << YAML::Value;
        const TensorInfo* t = m.find(n);
        emit_tensor(e, t, t && t->is_weight, t && t->is_weight ? off.at(n) : 0);
      }
      e << YAML::EndMap;
    }
    if (!op.outputs.empty()) {
      e << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
      for (auto& n : op.outputs) {
        e << YAML::Key << n << YAML::Value;
        const TensorInfo* t = m.find(n);
        emit_tensor(e, t, op.type == "Input" || (t && t->is_weight),
                    t && t->is_weight ? off.at(n) : 0);
      }
      e << YAML::EndMap;
    }
    if (!op.attrs.empty()) {
      e << YAML::Key << "attr" << YAML::Value << YAML::BeginMap;
      for (auto& a : op.attrs) e << YAML::Key << a.first << YAML::Value << a.second;
      e << YAML::EndMap;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndMap << YAML::EndMap << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}
}  // namespace

std::string ir_to_yaml(const Model& m) { return to_yaml(m, nullptr); }

void save_ir(const Model& m, const std::string& dir) {
  // mkdir -p
  for (size_t p = 1; p <= dir.size(); ++p)
    if (p == dir.size() || dir[p] == '/') ::mkdir(dir.substr(0, p).c_str(), 0755);
  uint64_t total;
  auto off = plan_offsets(m, &total);
  std::vector<uint8_t> bin(total, 0);
  for (auto& kv : off) {
    const TensorInfo* t = m.find(kv.first);
    if (t->nbytes) std::memcpy(bin.data() + kv.second, t->data, t->nbytes);
  }
  auto write = [&](const std::string& path, const void* p, size_t n) {
    std::string tmp = path + ".tmp";
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    NE_CHECK(f.good(), tmp, ": cannot open for writing");
    f.write(static_cast<const char*>(p), std::streamsize(n));
    f.close();
    NE_CHECK(f.good(), tmp, ": write failed");
    NE_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": rename failed");
  };
  WeightRecord record;
  record.has_size = true;
  record.size = bin.size();
  record.checksum = weight_file_checksum(bin.data(), bin.size());
  std::string y = to_yaml(m, &record);
  write(dir + "/model.bin", bin.data(), bin.size());
  write(dir + "/conf.yaml", y.data(), y.size());
}

}  // namespace ne
