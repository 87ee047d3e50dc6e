// Data movement with ONNX semantics: Reorder (Transpose), Concat, Split, Slice, Gather, Expand,
// Tile. All are byte movers (dtype-agnostic by element size). Transpose, Slice, Expand and Tile
// are one strided copy each: the output is walked contiguously while the source advances by
// per-dim strides (0 for broadcast dims), with dims collapsed so the inner run is as long as
// possible (a memcpy when it is contiguous in the source).
#include "executor/ops/feature_major.hpp"
#include "executor/ops/generic_util.hpp"

namespace ne {
namespace generic {
namespace {

// strided_copy for collapsed `dims` whose dim j has source stride 1 and whose last dim has
// source stride != 1: tiles of kTile x kTile over (j, last), in parallel over tiles.
void tiled_copy(DType dt, const void* src, int64_t base, const Shape& dims,
                const std::vector<int64_t>& sst, int j, void* dst) {
  constexpr int64_t kTile = 32;
  const int L = int(dims.size()) - 1;
  const auto dst_st = strides_of(dims);
  Shape od;
  std::vector<int64_t> os, ot;
  for (int d = 0; d < L; ++d)
    if (d != j) {
      od.push_back(dims[d]);
      os.push_back(sst[d]);
      ot.push_back(dst_st[d]);
    }
  int64_t nouter = 1;
  for (int64_t d : od) nouter *= d;
  const int64_t nj = (dims[j] + kTile - 1) / kTile, ni = (dims[L] + kTile - 1) / kTile;
  const int64_t tasks = nouter * nj * ni, s = sst[L], dj = dst_st[j];
  const int64_t total = nouter * dims[j] * dims[L];
  dispatch_bytes(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = static_cast<const T*>(src) + base;
    T* y = static_cast<T*>(dst);
#pragma omp parallel for schedule(static) if (total >= kParallelMin)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t ib = t % ni, jb = (t / ni) % nj;
      int64_t o = t / (ni * nj), so = 0, doff = 0;
      for (int d = int(od.size()) - 1; d >= 0; --d) {
        const int64_t k = o % od[d];
        o /= od[d];
        so += k * os[d];
        doff += k * ot[d];
      }
      const int64_t j0 = jb * kTile, j1 = std::min(j0 + kTile, dims[j]);
      const int64_t i0 = ib * kTile, i1 = std::min(i0 + kTile, dims[L]);
      for (int64_t jj = j0; jj < j1; ++jj) {
        const T* sr = x + so + jj;
        T* dr = y + doff + jj * dj;
        for (int64_t ii = i0; ii < i1; ++ii) dr[ii] = sr[ii * s];
      }
    }
  });
}

// Copies dst[i] = src[base + sum(idx_d * strides_d)] over `dims` (dst contiguous).
void strided_copy(DType dt, const void* src, int64_t base, const Shape& dims,
                  const std::vector<int64_t>& strides, void* dst) {
  BcastPlan<1> p;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    if (!p.dims.empty() && p.strides[0].back() == strides[d] * dims[d]) {
      p.dims.back() *= dims[d];
      p.strides[0].back() = strides[d];
      continue;
    }
    p.dims.push_back(dims[d]);
    p.strides[0].push_back(strides[d]);
  }
  for (int64_t d : dims)
    if (d == 0) return;
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.strides[0].push_back(1);
  }
  const int64_t s = p.inner_stride(0);
  // A transpose-like copy (the source-contiguous dim is not the output's inner one) goes in
  // 32x32 tiles so that both sides stay in cache.
  const int L = int(p.dims.size()) - 1;
  int j = -1;
  if (s != 1 && s != 0)
    for (int d = 0; d < L; ++d)
      if (p.strides[0][d] == 1) j = d;
  if (j >= 0) return tiled_copy(dt, src, base, p.dims, p.strides[0], j, dst);
  dispatch_bytes(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = static_cast<const T*>(src) + base;
    T* y = static_cast<T*>(dst);
    bcast_run<1>(p, [&](const int64_t* off, int64_t oo, int64_t n) {
      const T* a = x + off[0];
      T* b = y + oo;
      if (s == 1) std::memcpy(b, a, size_t(n) * sizeof(T));
      else if (s == 0) std::fill(b, b + n, a[0]);
      else
        for (int64_t i = 0; i < n; ++i) b[i] = a[i * s];
    });
  });
}

// ---------------------------------------------------------------- Reorder
class ReorderOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    const int r = in[0]->rank();
    auto perm = perm_for(r);
    Shape s(r);
    for (int i = 0; i < r; ++i) s[i] = in[0]->shape[perm[i]];
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const int r = in[0]->rank();
    auto perm = perm_for(r);
    // A rotation (k, k+1, .., r-1, 0, .., k-1) is a 2-D transpose [a, b] -> [b, a] with a the
    // product of dims 0..k-1: the tiled, threaded transpose (the Reorders at the ends of a
    // feature-major chain: [B,S,H] <-> [H,B,S]).
    const size_t es = dtype_size(in[0]->dtype);
    if (r >= 2 && perm[0] != 0 && (es == 1 || es == 2 || es == 4)) {
      const int k = int(perm[0]);
      bool rot = true;
      for (int i = 0; i < r; ++i) rot = rot && perm[i] == (k + i) % r;
      if (rot) {
        int64_t a = 1, b = 1;
        for (int i = 0; i < r; ++i) (i < k ? a : b) *= in[0]->shape[i];
        fm::transpose2d(in[0]->data, out[0]->data, a, b, es);
        return;
      }
    }
    auto st = strides_of(in[0]->shape);
    Shape dims(r);
    std::vector<int64_t> ss(r);
    for (int i = 0; i < r; ++i) {
      dims[i] = in[0]->shape[perm[i]];
      ss[i] = st[perm[i]];
    }
    strided_copy(in[0]->dtype, in[0]->data, 0, dims, ss, out[0]->data);
  }

 private:
  // Output dim i is input dim perm[i]. With the Neural Engine's pair, src_perm names the input's
  // dims and dst_perm lists those names in output order: perm[i] = position of dst_perm[i] in
  // src_perm (src_perm defaults to identity, so dst_perm alone acts like perm).
  std::vector<int64_t> perm_for(int r) const {
    std::vector<int64_t> perm;
    if (info_.has_attr("perm")) {
      perm = info_.attr_ints("perm");
    } else if (info_.has_attr("src_perm") || info_.has_attr("dst_perm")) {
      auto sp = info_.attr_ints("src_perm"), dp = info_.attr_ints("dst_perm");
      if (sp.empty()) for (int i = 0; i < r; ++i) sp.push_back(i);
      if (dp.empty()) dp = sp;
      if (sp.size() != dp.size())
        op_error("src_perm ", shape_str(sp), " and dst_perm ", shape_str(dp),
                 " must have the same length");
      for (int64_t d : dp) {
        auto it = std::find(sp.begin(), sp.end(), d);
        if (it == sp.end())
          op_error("dst_perm ", shape_str(dp), " names dim ", d, " that src_perm ", shape_str(sp),
                   " does not have");
        perm.push_back(it - sp.begin());
      }
    } else {
      for (int i = r - 1; i >= 0; --i) perm.push_back(i);
    }
    if (int(perm.size()) != r)
      op_error("permutation ", shape_str(perm), " has ", perm.size(), " entries, input has rank ", r);
    std::vector<bool> seen(r, false);
    for (int64_t p : perm) {
      if (p < 0 || p >= r || seen[p])
        op_error("permutation ", shape_str(perm), " is not a permutation of 0..", r - 1);
      seen[p] = true;
    }
    return perm;
  }
};

// ---------------------------------------------------------------- Concat / Split
// Shapes as [outer, axis dim, inner].
void outer_inner(const Shape& s, int axis, int64_t* outer, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < int(s.size()); ++i) {
    if (i < axis) *outer *= s[i];
    if (i > axis) *inner *= s[i];
  }
}

class ConcatOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    if (in.empty()) op_error("needs at least one input");
    const Shape& s0 = in[0]->shape;
    const int r = int(s0.size());
    if (r == 0) op_error("inputs must have rank >= 1, '", in[0]->name, "' is a scalar");
    const int axis = norm_axis(info_.attr_int("axis", 0), r);
    Shape s = s0;
    s[axis] = 0;
    for (auto* t : in) {
      if (t->dtype != in[0]->dtype)
        op_error("input '", t->name, "' has dtype ", dtype_name(t->dtype), ", expected ",
                 dtype_name(in[0]->dtype));
      bool ok = t->rank() == r;
      for (int i = 0; ok && i < r; ++i) ok = i == axis || t->shape[i] == s0[i];
      if (!ok)
        op_error("input '", t->name, "' has shape ", shape_str(t->shape), ", expected ", shape_str(s0),
                 " except along axis ", axis);
      s[axis] += t->shape[axis];
    }
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const int axis = norm_axis(info_.attr_int("axis", 0), in[0]->rank());
    int64_t outer, inner;
    outer_inner(out[0]->shape, axis, &outer, &inner);
    const size_t es = dtype_size(in[0]->dtype);
    const size_t orow = size_t(out[0]->shape[axis] * inner) * es;
    std::vector<size_t> off(in.size()), len(in.size());
    size_t acc = 0;
    for (size_t k = 0; k < in.size(); ++k) {
      off[k] = acc;
      len[k] = size_t(in[k]->shape[axis] * inner) * es;
      acc += len[k];
    }
    const int64_t tasks = outer * int64_t(in.size());
    char* dst = out[0]->ptr<char>();
#pragma omp parallel for schedule(static) if (out[0]->nbytes() >= size_t(kParallelMin) * 4)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / int64_t(in.size());
      const size_t k = size_t(t % int64_t(in.size()));
      if (len[k]) std::memcpy(dst + o * orow + off[k], in[k]->ptr<char>() + o * len[k], len[k]);
    }
  }
};

class SplitOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 2);
    const Shape& s = in[0]->shape;
    const int axis = norm_axis(info_.attr_int("axis", 0), int(s.size()));
    auto sizes = split_sizes(in, s[axis], out.size());
    for (size_t k = 0; k < out.size(); ++k) {
      out[k]->shape = s;
      out[k]->shape[axis] = sizes[k];
      out[k]->dtype = in[0]->dtype;
    }
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const int axis = norm_axis(info_.attr_int("axis", 0), in[0]->rank());
    int64_t outer, inner;
    outer_inner(in[0]->shape, axis, &outer, &inner);
    const size_t es = dtype_size(in[0]->dtype);
    const size_t irow = size_t(in[0]->shape[axis] * inner) * es;
    std::vector<size_t> off(out.size()), len(out.size());
    size_t acc = 0;
    for (size_t k = 0; k < out.size(); ++k) {
      off[k] = acc;
      len[k] = size_t(out[k]->shape[axis] * inner) * es;
      acc += len[k];
    }
    const int64_t tasks = outer * int64_t(out.size());
    const char* src = in[0]->ptr<char>();
#pragma omp parallel for schedule(static) if (in[0]->nbytes() >= size_t(kParallelMin) * 4)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / int64_t(out.size());
      const size_t k = size_t(t % int64_t(out.size()));
      if (len[k]) std::memcpy(out[k]->ptr<char>() + o * len[k], src + o * irow + off[k], len[k]);
    }
  }

 private:
  std::vector<int64_t> split_sizes(const TensorList& in, int64_t dim, size_t n) const {
    std::vector<int64_t> sz;
    if (present(in, 1)) sz = const_ints(in[1], "split");
    else sz = info_.attr_ints("split");
    if (sz.empty()) {
      // Equal parts; when uneven the last is smaller (ONNX Split-18).
      if (n == 0) op_error("has no outputs");
      const int64_t c = (dim + int64_t(n) - 1) / int64_t(n);
      for (size_t k = 0; k < n; ++k) sz.push_back(std::max<int64_t>(0, std::min(c, dim - c * int64_t(k))));
      if (c * int64_t(n - 1) >= dim && dim > 0 && n > 1)
        op_error("cannot split dim ", dim, " into ", n, " parts of ", c, " (the last would be empty)");
      return sz;
    }
    if (sz.size() != n)
      op_error("split ", shape_str(sz), " has ", sz.size(), " entries for ", n, " outputs");
    int64_t sum = 0;
    for (int64_t v : sz) {
      if (v < 0) op_error("split ", shape_str(sz), " has a negative size");
      sum += v;
    }
    if (sum != dim) op_error("split ", shape_str(sz), " sums to ", sum, ", expected the axis dim ", dim);
    return sz;
  }
};

// ---------------------------------------------------------------- Slice
class SliceOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 5);
    Shape dims;
    std::vector<int64_t> starts, steps;
    plan(in, &dims, &starts, &steps);
    out[0]->shape = dims;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    Shape dims;
    std::vector<int64_t> starts, steps;
    plan(in, &dims, &starts, &steps);
    auto st = strides_of(in[0]->shape);
    int64_t base = 0;
    std::vector<int64_t> ss(st.size());
    for (size_t d = 0; d < st.size(); ++d) {
      base += starts[d] * st[d];
      ss[d] = st[d] * steps[d];
    }
    strided_copy(in[0]->dtype, in[0]->data, base, dims, ss, out[0]->data);
  }

 private:
  // ONNX Slice: negative starts/ends count from the end, then clamp to [0, dim] (step > 0) or
  // [-1, dim-1] (step < 0, so that end -1 means "through index 0").
  void plan(const TensorList& in, Shape* dims, std::vector<int64_t>* starts_out,
            std::vector<int64_t>* steps_out) const {
    std::vector<int64_t> starts, ends, axes, steps;
    if (in.size() >= 3) {
      starts = const_ints(in[1], "starts");
      ends = const_ints(in[2], "ends");
      if (present(in, 3)) axes = const_ints(in[3], "axes");
      if (present(in, 4)) steps = const_ints(in[4], "steps");
    } else {
      if (in.size() == 2) op_error("needs both 'starts' and 'ends' inputs");
      starts = info_.attr_ints("starts");
      ends = info_.attr_ints("ends");
      axes = info_.attr_ints("axes");
      steps = info_.attr_ints("steps");
    }
    const Shape& s = in[0]->shape;
    const int r = int(s.size());
    if (starts.size() != ends.size())
      op_error("starts ", shape_str(starts), " and ends ", shape_str(ends), " differ in length");
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (axes.size() != starts.size() || steps.size() != starts.size())
      op_error("starts, ends, axes and steps must have the same length, got ", starts.size(), ", ",
               ends.size(), ", ", axes.size(), ", ", steps.size());
    auto ax = norm_axes(axes, r);
    *dims = s;
    starts_out->assign(r, 0);
    steps_out->assign(r, 1);
    for (size_t i = 0; i < ax.size(); ++i) {
      const int a = ax[i];
      const int64_t d = s[a], step = steps[i];
      if (step == 0) op_error("step for axis ", a, " is 0");
      int64_t b = starts[i], e = ends[i];
      if (b < 0) b += d;
      if (e < 0) e += d;
      int64_t n;
      if (step > 0) {
        b = std::clamp<int64_t>(b, 0, d);
        e = std::clamp<int64_t>(e, 0, d);
        n = e > b ? (e - b + step - 1) / step : 0;
      } else {
        b = std::clamp<int64_t>(b, 0, d - 1);
        e = std::clamp<int64_t>(e, -1, d - 1);
        n = b > e ? (b - e + (-step) - 1) / (-step) : 0;
      }
      (*dims)[a] = n;
      (*starts_out)[a] = n ? b : 0;
      (*steps_out)[a] = step;
    }
  }
};

// ---------------------------------------------------------------- Gather
class GatherOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 2);
    const Tensor &x = *in[0], &idx = *in[1];
    if (idx.dtype != DType::int64 && idx.dtype != DType::int32 && idx.dtype != DType::s32)
      op_error("indices '", idx.name, "' must be int32 or int64, got ", dtype_name(idx.dtype));
    if (x.rank() == 0) op_error("data '", x.name, "' must have rank >= 1");
    const int axis = norm_axis(info_.attr_int("axis", 0), x.rank());
    Shape s(x.shape.begin(), x.shape.begin() + axis);
    s.insert(s.end(), idx.shape.begin(), idx.shape.end());
    s.insert(s.end(), x.shape.begin() + axis + 1, x.shape.end());
    out[0]->shape = s;
    out[0]->dtype = x.dtype;
    if (idx.is_const && idx.data) normalized(x, idx, axis);  // fail early on bad constants
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Tensor &x = *in[0], &idx = *in[1];
    const int axis = norm_axis(info_.attr_int("axis", 0), x.rank());
    auto ids = normalized(x, idx, axis);
    int64_t outer, inner;
    outer_inner(x.shape, axis, &outer, &inner);
    const int64_t d = x.shape[axis], ni = int64_t(ids.size());
    const size_t row = size_t(inner) * dtype_size(x.dtype);
    const char* src = x.ptr<char>();
    char* dst = out[0]->ptr<char>();
    const int64_t tasks = outer * ni;
    if (row == 0 || tasks == 0) return;
#pragma omp parallel for schedule(static) if (out[0]->nbytes() >= size_t(kParallelMin) * 4)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / ni, j = t % ni;
      std::memcpy(dst + size_t(t) * row, src + size_t(o * d + ids[j]) * row, row);
    }
  }

 private:
  // Indices as int64 in [0, dim), negative ones wrapped; an out-of-range one is an error.
  std::vector<int64_t> normalized(const Tensor& x, const Tensor& idx, int axis) const {
    const int64_t n = idx.numel(), d = x.shape[axis];
    std::vector<int64_t> r(static_cast<size_t>(n));
    const bool i64 = idx.dtype == DType::int64;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = i64 ? idx.ptr<int64_t>()[i] : idx.ptr<int32_t>()[i];
      const int64_t w = v < 0 ? v + d : v;
      if (w < 0 || w >= d)
        op_error("index ", v, " (element ", i, " of '", idx.name, "') is out of range for axis ",
                 axis, " of size ", d, " in data '", x.name, "' ", shape_str(x.shape),
                 " (expected ", -d, "..", d - 1, ")");
      r[size_t(i)] = w;
    }
    return r;
  }
};

// ---------------------------------------------------------------- Expand / Tile
class ExpandOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 2);
    auto want = const_ints(in[1], "shape");
    Shape s;
    if (!broadcast_shape(in[0]->shape, want, &s))
      op_error("input shape ", shape_str(in[0]->shape), " does not broadcast with ", shape_str(want));
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Shape& o = out[0]->shape;
    auto p = make_bcast_plan<1>({&in[0]->shape}, o);
    const int64_t s = p.inner_stride(0);
    dispatch_bytes(in[0]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* x = in[0]->ptr<T>();
      T* y = out[0]->ptr<T>();
      bcast_run<1>(p, [&](const int64_t* off, int64_t oo, int64_t n) {
        if (s) std::memcpy(y + oo, x + off[0], size_t(n) * sizeof(T));
        else std::fill(y + oo, y + oo + n, x[off[0]]);
      });
    });
  }
};

// Tile is a broadcast: x viewed as [1,d0,1,d1,..] expanded to [r0,d0,r1,d1,..] is exactly the
// row-major layout of the tiled output [r0*d0, r1*d1, ..].
class TileOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 2);
    auto rep = const_ints(in[1], "repeats");
    const Shape& s = in[0]->shape;
    if (rep.size() != s.size())
      op_error("repeats ", shape_str(rep), " has ", rep.size(), " entries, input ", shape_str(s),
               " has rank ", s.size());
    Shape o(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (rep[i] < 0) op_error("repeats ", shape_str(rep), " has a negative entry");
      o[i] = s[i] * rep[i];
    }
    out[0]->shape = o;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Shape& s = in[0]->shape;
    const Shape& o = out[0]->shape;
    Shape xs, os;
    for (size_t i = 0; i < s.size(); ++i) {
      xs.push_back(1);
      xs.push_back(s[i]);
      os.push_back(s[i] ? o[i] / s[i] : 0);
      os.push_back(s[i]);
    }
    if (shape_numel(o) == 0) return;
    std::vector<int64_t> st(xs.size(), 0);
    auto is = strides_of(s);
    for (size_t i = 0; i < s.size(); ++i) st[2 * i + 1] = is[i];
    strided_copy(in[0]->dtype, in[0]->data, 0, os, st, out[0]->data);
  }
};

}  // namespace

NE_REGISTER_OP("Reorder", ReorderOp);
NE_REGISTER_OP("Concat", ConcatOp);
NE_REGISTER_OP("Split", SplitOp);
NE_REGISTER_OP("Slice", SliceOp);
NE_REGISTER_OP("Gather", GatherOp);
NE_REGISTER_OP("Expand", ExpandOp);
NE_REGISTER_OP("Tile", TileOp);

}  // namespace generic
}  // namespace ne
