// Drives one operator directly (create_op -> init -> reshape -> allocate -> forward), like the
// executor does, plus index helpers for the naive references in the tests. The references share
// no code with executor/ops/generic_*.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"

namespace ne_test {

using ne::DType;
using ne::Shape;

// A test tensor owning its bytes. `absent` stands for an optional input left out (nullptr).
struct HT {
  DType dt = DType::fp32;
  Shape shape;
  std::vector<uint8_t> bytes;
  bool is_const = false;
  bool absent = false;

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  template <class T>
  std::vector<T> vec() const {
    std::vector<T> v(bytes.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
    return v;
  }
  template <class T>
  static HT make(DType dt, const Shape& s, const std::vector<T>& v, bool is_const = false) {
    HT h;
    h.dt = dt;
    h.shape = s;
    h.is_const = is_const;
    h.bytes.resize(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(h.bytes.data(), v.data(), h.bytes.size());
    EXPECT_EQ(int64_t(v.size()), h.numel()) << "test bug: data size vs shape";
    return h;
  }
  static HT none() {
    HT h;
    h.absent = true;
    return h;
  }
};

inline HT f32(const Shape& s, const std::vector<float>& v) { return HT::make(DType::fp32, s, v); }
inline HT i64c(const std::vector<int64_t>& v) {  // a constant 1-D int64 (shape / axes input)
  return HT::make(DType::int64, {int64_t(v.size())}, v, true);
}

inline Shape bshape(const Shape& a, const Shape& b) {  // broadcast, for references
  size_t r = std::max(a.size(), b.size());
  Shape o(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    o[i] = da == 1 ? db : da;
  }
  return o;
}

// Multi-index of flat index i in shape s.
inline std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (int d = int(s.size()) - 1; d >= 0; --d) {
    idx[d] = s[d] ? i % s[d] : 0;
    if (s[d]) i /= s[d];
  }
  return idx;
}
// Flat index in `s` of output multi-index `oidx` under broadcasting (right-aligned, dims of 1).
inline int64_t bcast_index(const std::vector<int64_t>& oidx, const Shape& s) {
  int64_t f = 0;
  const size_t off = oidx.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + (s[d] == 1 ? 0 : oidx[d + off]);
  return f;
}

struct Result {
  std::vector<HT> out;
  std::string kernel;
  bool view = false;
};

// Runs op `type` with `attrs` on `ins`; `n_out` outputs. Outputs carry 64 guard bytes that must
// survive forward(). Views are executed like the executor does (the output shares the input's
// bytes; forward() is not called).
inline Result run_op(const std::string& type, const std::vector<std::pair<std::string, std::string>>& attrs,
                     const std::vector<HT>& ins, int n_out = 1) {
  ne::OpInfo info;
  info.name = "op_" + type;
  info.type = type;
  info.attrs = attrs;
  for (size_t i = 0; i < ins.size(); ++i) info.inputs.push_back(ins[i].absent ? "" : "in" + std::to_string(i));
  for (int i = 0; i < n_out; ++i) info.outputs.push_back("out" + std::to_string(i));
  auto op = ne::create_op(info);
  if (!op) ne::fail("op type ", type, " is not registered");
  std::vector<ne::Tensor> ti(ins.size()), to(static_cast<size_t>(n_out));
  ne::TensorList li, lo;
  std::vector<std::vector<uint8_t>> in_copy(ins.size());
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].absent) { li.push_back(nullptr); continue; }
    in_copy[i] = ins[i].bytes;
    in_copy[i].resize(in_copy[i].size() + 8);
    ti[i].name = info.inputs[i];
    ti[i].dtype = ins[i].dt;
    ti[i].shape = ins[i].shape;
    ti[i].data = in_copy[i].data();
    ti[i].is_const = ins[i].is_const;
    li.push_back(&ti[i]);
  }
  for (int i = 0; i < n_out; ++i) {
    to[size_t(i)].name = info.outputs[size_t(i)];
    lo.push_back(&to[size_t(i)]);
  }
  op->init(li);
  op->reshape(li, lo);
  Result r;
  r.view = op->is_view();
  const size_t kGuard = 64;
  std::vector<std::vector<uint8_t>> ob(static_cast<size_t>(n_out));
  if (r.view) {
    EXPECT_EQ(to[0].nbytes(), ti[0].nbytes()) << type << ": a view must keep the byte size";
    to[0].data = ti[0].data;
  } else {
    for (int i = 0; i < n_out; ++i) {
      ob[size_t(i)].assign(to[size_t(i)].nbytes() + kGuard, 0xAB);
      to[size_t(i)].data = ob[size_t(i)].data();
    }
    op->forward(li, lo);
    r.kernel = op->kernel();
  }
  for (int i = 0; i < n_out; ++i) {
    HT h;
    h.dt = to[size_t(i)].dtype;
    h.shape = to[size_t(i)].shape;
    const uint8_t* p = static_cast<const uint8_t*>(to[size_t(i)].data);
    h.bytes.assign(p, p + to[size_t(i)].nbytes());
    if (!r.view)
      for (size_t g = 0; g < kGuard; ++g)
        if (ob[size_t(i)][h.bytes.size() + g] != 0xAB) {
          ADD_FAILURE() << type << ": wrote past the end of output " << i;
          break;
        }
    r.out.push_back(std::move(h));
  }
  for (size_t i = 0; i < ins.size(); ++i)
    if (!ins[i].absent && !r.view && !ins[i].bytes.empty()) {
      EXPECT_EQ(0, std::memcmp(in_copy[i].data(), ins[i].bytes.data(), ins[i].bytes.size()))
          << type << ": modified input " << i;
    }
  return r;
}

inline HT run1(const std::string& type, const std::vector<std::pair<std::string, std::string>>& attrs,
               const std::vector<HT>& ins) {
  return run_op(type, attrs, ins).out.at(0);
}

// Expects run_op to throw ne::Error whose message contains every string in `parts`.
inline void expect_error(const std::string& type, const std::vector<std::pair<std::string, std::string>>& attrs,
                         const std::vector<HT>& ins, const std::vector<std::string>& parts, int n_out = 1) {
  try {
    run_op(type, attrs, ins, n_out);
    ADD_FAILURE() << type << ": expected ne::Error containing '" << (parts.empty() ? "" : parts[0]) << "'";
  } catch (const ne::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("op_" + type), std::string::npos) << "message does not name the op: " << m;
    for (auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "missing '" << p << "' in: " << m;
  }
}

// Seeded data; the seed is in the test's trace on failure.
struct Rng {
  explicit Rng(uint32_t seed) : g(seed), seed(seed) {}
  std::vector<float> floats(int64_t n, float lo = -3.f, float hi = 3.f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(g);
    return v;
  }
  template <class T>
  std::vector<T> ints(int64_t n, int64_t lo, int64_t hi) {
    std::uniform_int_distribution<int64_t> d(lo, hi);
    std::vector<T> v(static_cast<size_t>(n));
    for (auto& x : v) x = T(d(g));
    return v;
  }
  std::mt19937 g;
  uint32_t seed;
};

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

inline std::string sstr(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace ne_test
