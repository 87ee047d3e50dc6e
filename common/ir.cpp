#include <cstdio>
#include "common/ir.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

namespace ne {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

float fp16_to_fp32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) u = sign;
    else {  // subnormal
      int e = -1;
      do { ++e; man <<= 1; } while (!(man & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) u = sign | 0x7f800000 | man << 13;
  else u = sign | (exp + 112) << 23 | man << 13;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    man |= 0x800000;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = uint32_t(exp) << 10 | man >> 13, rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return uint16_t(sign | h);
}

namespace {
class MappedBlob : public Blob {
 public:
  MappedBlob(const std::string& path) {
    path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) fail(path, ": cannot open (", std::strerror(errno), ")");
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, ": not a regular file");
    }
    size_ = size_t(st.st_size);
    if (size_ > 0) {
      void* p = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        fail(path, ": mmap failed (", std::strerror(errno), ")");
      }
      data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  void release_resident() const override {
    if (data_) madvise(const_cast<uint8_t*>(data_), size_, MADV_DONTNEED);
  }
  ~MappedBlob() override {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  }
};

class OwnedBlob : public Blob {
 public:
  explicit OwnedBlob(std::vector<uint8_t> b) : bytes_(std::move(b)) {
    data_ = bytes_.data();
    size_ = bytes_.size();
  }

 private:
  std::vector<uint8_t> bytes_;
};
}  // namespace

std::shared_ptr<Blob> map_file(const std::string& path) { return std::make_shared<MappedBlob>(path); }
std::shared_ptr<Blob> make_blob(std::vector<uint8_t> bytes) {
  return std::make_shared<OwnedBlob>(std::move(bytes));
}

// ---- OpInfo attributes ----
bool OpInfo::has_attr(const std::string& k) const {
  for (auto& a : attrs)
    if (a.first == k) return true;
  return false;
}
std::string OpInfo::attr(const std::string& k, const std::string& def) const {
  for (auto& a : attrs)
    if (a.first == k) return a.second;
  return def;
}
static std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> r;
  std::string cur;
  for (char c : s) {
    if (c == ',' || c == '[' || c == ']') {
      if (!cur.empty()) r.push_back(cur);
      cur.clear();
    } else if (c != ' ') cur += c;
  }
  if (!cur.empty()) r.push_back(cur);
  return r;
}
int64_t OpInfo::attr_int(const std::string& k, int64_t def) const {
  if (!has_attr(k)) return def;
  std::string v = attr(k);
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  NE_CHECK(end && *end == 0 && !v.empty(), "operator '", name, "' (", type, "): attribute ", k,
           "='", v, "' is not an integer");
  return x;
}
float OpInfo::attr_float(const std::string& k, float def) const {
  if (!has_attr(k)) return def;
  std::string v = attr(k);
  char* end = nullptr;
  float x = std::strtof(v.c_str(), &end);
  NE_CHECK(end && *end == 0 && !v.empty(), "operator '", name, "' (", type, "): attribute ", k,
           "='", v, "' is not a number");
  return x;
}
std::vector<int64_t> OpInfo::attr_ints(const std::string& k) const {
  std::vector<int64_t> r;
  for (auto& s : split_list(attr(k))) {
    char* end = nullptr;
    long long x = std::strtoll(s.c_str(), &end, 10);
    NE_CHECK(end && *end == 0, "operator '", name, "' (", type, "): attribute ", k, "='",
             attr(k), "' is not a list of integers");
    r.push_back(x);
  }
  return r;
}
std::vector<float> OpInfo::attr_floats(const std::string& k) const {
  std::vector<float> r;
  for (auto& s : split_list(attr(k))) {
    char* end = nullptr;
    float x = std::strtof(s.c_str(), &end);
    NE_CHECK(end && *end == 0, "operator '", name, "' (", type, "): attribute ", k, "='",
             attr(k), "' is not a list of numbers");
    r.push_back(x);
  }
  return r;
}
std::string OpInfo::attr_str(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

void OpInfo::set_attr(const std::string& k, const std::string& v) {
  for (auto& a : attrs)
    if (a.first == k) { a.second = v; return; }
  attrs.emplace_back(k, v);
}
void OpInfo::erase_attr(const std::string& k) {
  for (auto it = attrs.begin(); it != attrs.end(); ++it)
    if (it->first == k) { attrs.erase(it); return; }
}

// ---- Model ----
std::vector<std::string> Model::input_names() const {
  std::vector<std::string> r;
  for (auto& op : ops)
    if (op.type == "Input")
      for (auto& o : op.outputs)
        if (!is_weight(o)) r.push_back(o);
  return r;
}
std::vector<std::string> Model::output_names() const {
  std::vector<std::string> r;
  for (auto& op : ops)
    if (op.type == "Output")
      for (auto& i : op.inputs) r.push_back(i);
  return r;
}
const TensorInfo* Model::find(const std::string& n) const {
  auto it = tensors.find(n);
  return it == tensors.end() ? nullptr : &it->second;
}
bool Model::is_weight(const std::string& n) const {
  auto t = find(n);
  return t && t->is_weight;
}
TensorInfo& Model::add_weight(const std::string& n, DType dt, const Shape& shape,
                              std::vector<uint8_t> bytes) {
  NE_CHECK(uint64_t(shape_numel(shape)) * dtype_size(dt) == bytes.size(), "weight '", n,
           "': ", bytes.size(), " bytes do not match shape ", shape_str(shape), " of ",
           dtype_name(dt));
  auto holder = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  const size_t nb = holder->size();
  if (nb == 0) holder->push_back(0);  // zero-element weights still get a valid (unused) pointer
  TensorInfo& t = tensors[n];
  t = TensorInfo();
  t.name = n;
  t.dtype = dt;
  t.shape = shape;
  t.has_shape = true;
  t.is_weight = true;
  t.nbytes = nb;
  t.data = holder->data();
  t.holder = holder;
  return t;
}

void validate(const Model& m) {
  std::set<std::string> produced, opnames;
  for (auto& kv : m.tensors)
    if (kv.second.is_weight) produced.insert(kv.first);
  for (size_t i = 0; i < m.ops.size(); ++i) {
    const OpInfo& op = m.ops[i];
    NE_CHECK(!op.name.empty(), m.source, ": operator #", i, " has no name");
    NE_CHECK(opnames.insert(op.name).second, m.source, ": operator name '", op.name,
             "' is used twice");
    NE_CHECK(op.type != "Input" || op.inputs.empty(), m.source, ": Input operator '", op.name,
             "' must have outputs only (it has inputs)");
    NE_CHECK(op.type != "Output" || op.outputs.empty(), m.source, ": Output operator '", op.name,
             "' must have inputs only (it has outputs)");
    for (auto& in : op.inputs) {
      if (in.empty()) continue;  // optional input left out
      NE_CHECK(produced.count(in), m.source, ": operator '", op.name, "' (", op.type,
               ") uses tensor '", in, "' which no earlier operator produces and is not a weight");
    }
    for (auto& out : op.outputs) {
      if (op.type == "Input" && m.is_weight(out)) continue;
      NE_CHECK(!produced.count(out) || op.type == "Input", m.source, ": tensor '", out,
               "' is produced twice (again by operator '", op.name, "')");
      produced.insert(out);
    }
  }
}

}  // namespace ne
