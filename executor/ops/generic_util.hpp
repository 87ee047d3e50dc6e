// Shared helpers for the generic (ONNX-semantics) operators in executor/ops/generic_*.cpp:
// a base class with axis / constant-input checks, dtype dispatch, and a broadcasting plan that
// collapses dims so the innermost loop is a contiguous run (or a broadcast scalar).
// Internal to the generic ops; no ISA flags, vectorised by the compiler.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "executor/operator.hpp"

namespace ne {
namespace generic {

// Element-wise loops with fewer elements than this run on one thread.
constexpr int64_t kParallelMin = 1 << 15;
// Innermost runs longer than this are split into chunks so a few long rows still parallelise.
constexpr int64_t kChunk = 1 << 14;

template <class T>
struct Tag {
  using type = T;
};

inline bool is_integer(DType t) {
  return t == DType::s8 || t == DType::u8 || t == DType::int32 || t == DType::s32 ||
         t == DType::int64;
}

// Calls f(Tag<T>{}) for the numeric dtypes; returns false for others (bool, fp16, bf16).
template <class F>
bool dispatch_numeric(DType t, F&& f) {
  switch (t) {
    case DType::fp32: f(Tag<float>{}); return true;
    case DType::int32: case DType::s32: f(Tag<int32_t>{}); return true;
    case DType::int64: f(Tag<int64_t>{}); return true;
    case DType::s8: f(Tag<int8_t>{}); return true;
    case DType::u8: f(Tag<uint8_t>{}); return true;
    default: return false;
  }
}

// Calls f(Tag<UintN>{}) with an unsigned type of the dtype's size: for ops that only move bytes.
template <class F>
void dispatch_bytes(DType t, F&& f) {
  switch (dtype_size(t)) {
    case 1: f(Tag<uint8_t>{}); break;
    case 2: f(Tag<uint16_t>{}); break;
    case 4: f(Tag<uint32_t>{}); break;
    default: f(Tag<uint64_t>{}); break;
  }
}

// Row-major element strides of a shape.
inline std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (int i = int(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// numpy / ONNX multidirectional broadcast; false when incompatible.
inline bool broadcast_shape(const Shape& a, const Shape& b, Shape* out) {
  size_t r = std::max(a.size(), b.size());
  Shape o(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da == db || db == 1) o[i] = da;
    else if (da == 1) o[i] = db;
    else return false;
  }
  *out = o;
  return true;
}

// How N inputs map onto an output under broadcasting, with dims collapsed: size-1 output dims
// dropped and neighbours merged wherever every input is contiguous (or broadcast) across both.
// The innermost stride of every input is then 0 (broadcast) or 1 (contiguous).
template <int N>
struct BcastPlan {
  Shape dims;                                  // collapsed output dims, never empty
  std::array<std::vector<int64_t>, N> strides;  // per input, element strides per dim (0 = bcast)

  int64_t inner() const { return dims.back(); }
  int64_t rows() const {
    int64_t r = 1;
    for (size_t i = 0; i + 1 < dims.size(); ++i) r *= dims[i];
    return r;
  }
  int64_t total() const { return rows() * inner(); }
  int64_t inner_stride(int k) const { return strides[k].back(); }
  // Offsets of the first element of row r, per input.
  void row_offsets(int64_t r, int64_t* off) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = int(dims.size()) - 2; d >= 0; --d) {
      int64_t i = r % dims[d];
      r /= dims[d];
      for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
  }
};

// `ins` must each broadcast to `out` (checked by the caller in reshape()).
template <int N>
BcastPlan<N> make_bcast_plan(const std::array<const Shape*, N>& ins, const Shape& out) {
  const int r = int(out.size());
  BcastPlan<N> p;
  std::array<std::vector<int64_t>, N> full;
  for (int k = 0; k < N; ++k) {
    const Shape& s = *ins[k];
    full[k].assign(r, 0);
    int64_t acc = 1;
    for (int i = int(s.size()) - 1; i >= 0; --i) {
      int o = i + (r - int(s.size()));
      full[k][o] = (s[i] == 1 && out[o] != 1) ? 0 : acc;
      acc *= s[i];
    }
  }
  for (int d = 0; d < r; ++d) {
    if (out[d] == 1) continue;
    if (!p.dims.empty()) {
      bool merge = true;
      for (int k = 0; k < N; ++k)
        if (p.strides[k].back() != full[k][d] * out[d]) merge = false;
      if (merge) {
        p.dims.back() *= out[d];
        for (int k = 0; k < N; ++k) p.strides[k].back() = full[k][d];
        continue;
      }
    }
    p.dims.push_back(out[d]);
    for (int k = 0; k < N; ++k) p.strides[k].push_back(full[k][d]);
  }
  if (p.dims.empty()) {  // scalar output
    p.dims.push_back(1);
    for (int k = 0; k < N; ++k) p.strides[k].push_back(0);
  }
  return p;
}

// Runs f(off[N], out_offset, n) over every inner run of the plan (split in chunks), in parallel
// when the output is large. Offsets are element offsets into each input / the output.
template <int N, class F>
void bcast_run(const BcastPlan<N>& p, F&& f) {
  const int64_t total = p.total();
  if (total == 0) return;
  const int64_t inner = p.inner(), rows = p.rows();
  const int64_t chunk = std::min(inner, kChunk);
  const int64_t nch = (inner + chunk - 1) / chunk;
  const int64_t tasks = rows * nch;
#pragma omp parallel for schedule(static) if (total >= kParallelMin && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r = t / nch, c = t % nch;
    int64_t off[N];
    p.row_offsets(r, off);
    const int64_t s = c * chunk;
    for (int k = 0; k < N; ++k) off[k] += s * p.strides[k].back();
    f(off, r * inner + s, std::min(chunk, inner - s));
  }
}

// Base of the generic ops: checks with messages that name the op.
class GenericOp : public Operator {
 public:
  using Operator::Operator;

 protected:
  static bool present(const TensorList& in, size_t i) {
    return i < in.size() && in[i] != nullptr && !in[i]->name.empty();
  }

  // Normalises an axis in [-rank, rank-1] (or [-rank-1, rank] with `extra`).
  int norm_axis(int64_t axis, int rank, const char* what = "axis", int extra = 0) const {
    const int hi = rank + extra;
    if (axis < -hi || axis >= hi)
      op_error(what, " ", axis, " is out of range for rank ", rank, " (expected ", -hi, "..",
               hi - 1, ")");
    return int(axis < 0 ? axis + hi : axis);
  }

  // Normalised, unique axes.
  std::vector<int> norm_axes(const std::vector<int64_t>& axes, int rank,
                             const char* what = "axes") const {
    std::vector<int> r;
    for (int64_t a : axes) {
      int n = norm_axis(a, rank, what);
      if (std::find(r.begin(), r.end(), n) != r.end())
        op_error(what, " contains axis ", a, " twice (rank ", rank, ")");
      r.push_back(n);
    }
    return r;
  }

  void require_const(const Tensor* t, const char* role) const {
    if (!t->is_const || (t->data == nullptr && t->numel() != 0))
      op_error(role, " input '", t->name,
               "' must be constant or computed from shapes (it decides the output shape)");
  }

  // Values of a constant int32/int64 input (a "(const)" input of OPS.md), as int64.
  std::vector<int64_t> const_ints(const Tensor* t, const char* role) const {
    require_const(t, role);
    if (t->rank() > 1)
      op_error(role, " input '", t->name, "' must be 1-D or a scalar, got ", shape_str(t->shape));
    std::vector<int64_t> v(size_t(t->numel()));
    if (t->dtype == DType::int64) {
      if (!v.empty()) std::memcpy(v.data(), t->data, v.size() * 8);
    } else if (t->dtype == DType::int32 || t->dtype == DType::s32) {
      for (size_t i = 0; i < v.size(); ++i) v[i] = t->ptr<int32_t>()[i];
    } else {
      op_error(role, " input '", t->name, "' must be int64 or int32, got ", dtype_name(t->dtype));
    }
    return v;
  }

  // Scalar (any numeric dtype) read as double; `t` need not be const (read at forward time).
  double scalar_value(const Tensor* t, const char* role) const {
    if (t->numel() != 1)
      op_error(role, " input '", t->name, "' must hold one value, got shape ", shape_str(t->shape));
    switch (t->dtype) {
      case DType::fp32: return t->ptr<float>()[0];
      case DType::int32: case DType::s32: return t->ptr<int32_t>()[0];
      case DType::int64: return double(t->ptr<int64_t>()[0]);
      case DType::s8: return t->ptr<int8_t>()[0];
      case DType::u8: case DType::boolean: return t->ptr<uint8_t>()[0];
      case DType::bf16: return bf16_to_fp32(t->ptr<uint16_t>()[0]);
      case DType::fp16: return fp16_to_fp32(t->ptr<uint16_t>()[0]);
    }
    return 0;
  }

  // Attribute axes or the const input i (if present), and whether any were given.
  std::vector<int64_t> axes_from(const TensorList& in, size_t i, const char* attr_name,
                                 bool* given) const {
    if (present(in, i)) {
      *given = true;
      return const_ints(in[i], attr_name);
    }
    *given = info_.has_attr(attr_name);
    return info_.attr_ints(attr_name);
  }
};

// A view op: output 0 is input 0's bytes under another shape. forward() is not called by the
// executor, but copies when given separate buffers (direct use in tests and tools).
class GenericViewOp : public GenericOp {
 public:
  using GenericOp::GenericOp;
  bool is_view() const override { return true; }
  void forward(const TensorList& in, const TensorList& out) override {
    if (out[0]->data != in[0]->data && in[0]->nbytes())
      std::memmove(out[0]->data, in[0]->data, in[0]->nbytes());
  }
  std::string kernel() const override { return "view"; }
};

}  // namespace generic
}  // namespace ne
