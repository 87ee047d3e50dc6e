// Reductions with ONNX semantics: ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp
// and ArgMax/ArgMin.
//
// Input dims are collapsed into alternating kept / reduced groups (size-1 dims dropped). Three
// loops cover them: reduced group last ("trailing": contiguous runs), one reduced group between
// kept ones ("middle": accumulate whole inner rows), anything else ("general": a table of the
// reduced elements' offsets). fp32 accumulates in double, integers in int64.
#include <cmath>
#include <type_traits>

#include "executor/ops/generic_util.hpp"

namespace ne {
namespace generic {
namespace {

enum class RKind { sum, mean, max, min, prod, l1, l2, sum_square, log_sum, log_sum_exp };

// double -> T; for integers NaN gives 0 and out-of-range values saturate (no UB).
template <class T>
T from_double(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (v != v) return 0;
    if (v <= double(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return T(v);
  } else {
    return T(v);
  }
}

template <class T>
using AccOf = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

// Per kind: acc type A, init(), add(a, x), fin(a, count) -> T.
template <class T, RKind K>
struct Red {
  using A = AccOf<T>;
  static A init() {
    if constexpr (K == RKind::prod) return A(1);
    else if constexpr (K == RKind::max)
      return std::is_floating_point_v<T> ? A(-INFINITY) : A(std::numeric_limits<T>::lowest());
    else if constexpr (K == RKind::min)
      return std::is_floating_point_v<T> ? A(INFINITY) : A(std::numeric_limits<T>::max());
    else return A(0);
  }
  static void add(A& a, T x) {
    if constexpr (std::is_integral_v<A> && K != RKind::max && K != RKind::min) {
      // Integers wrap in int64 (two's complement) instead of overflowing into UB.
      const uint64_t u = uint64_t(a), v = uint64_t(int64_t(x));
      if constexpr (K == RKind::prod) a = A(u * v);
      else if constexpr (K == RKind::l1) a = A(u + (int64_t(x) < 0 ? 0 - v : v));
      else if constexpr (K == RKind::l2 || K == RKind::sum_square) a = A(u + v * v);
      else a = A(u + v);
    } else if constexpr (K == RKind::sum || K == RKind::mean || K == RKind::log_sum) a += A(x);
    else if constexpr (K == RKind::prod) a *= A(x);
    else if constexpr (K == RKind::max) { if (A(x) > a || x != x) a = A(x); }
    else if constexpr (K == RKind::min) { if (A(x) < a || x != x) a = A(x); }
    else if constexpr (K == RKind::l1) a += A(x) < 0 ? -A(x) : A(x);
    else a += A(x) * A(x);  // l2, sum_square
  }
  // Combines two partial accumulators (the trailing loop keeps four, for instruction-level
  // parallelism; double adds do not reassociate on their own).
  static void merge(A& a, A b) {
    if constexpr (std::is_integral_v<A> && K == RKind::prod) a = A(uint64_t(a) * uint64_t(b));
    else if constexpr (std::is_integral_v<A> && K != RKind::max && K != RKind::min) a = A(uint64_t(a) + uint64_t(b));
    else if constexpr (K == RKind::prod) a *= b;
    else if constexpr (K == RKind::max) { if (b > a || b != b) a = b; }
    else if constexpr (K == RKind::min) { if (b < a || b != b) a = b; }
    else a += b;
  }
  static T fin(A a, int64_t n) {
    if constexpr (K == RKind::mean) return from_double<T>(double(a) / double(n));
    else if constexpr (K == RKind::l2) return from_double<T>(std::sqrt(double(a)));
    else if constexpr (K == RKind::log_sum) return from_double<T>(std::log(double(a)));
    else return T(a);
  }
};

// LogSumExp, online: (max, sum of exp(x - max)).
template <class T>
struct RedLSE {
  struct A {
    double m = -INFINITY, s = 0;
  };
  static A init() { return A{}; }
  static void add(A& a, T xv) {
    const double x = double(xv);
    if (x > a.m) {
      a.s = a.s * std::exp(a.m - x) + 1.0;
      a.m = x;
    } else if (x == x && a.m != -INFINITY) {
      a.s += std::exp(x - a.m);
    } else if (x == -INFINITY) {
      // contributes nothing
    } else {
      a.m = x;  // NaN
      a.s = 1;
    }
  }
  static void merge(A& a, A b) {
    if (b.m != b.m || a.m != a.m) {
      a.m = NAN;
      a.s = 1;
    } else if (b.m == -INFINITY) {
    } else if (a.m == -INFINITY) {
      a = b;
    } else {
      const double m = std::max(a.m, b.m);
      a.s = a.s * std::exp(a.m - m) + b.s * std::exp(b.m - m);
      a.m = m;
    }
  }
  static T fin(A a, int64_t) { return from_double<T>(a.m == -INFINITY ? -INFINITY : a.m + std::log(a.s)); }
};

struct ReducePlan {
  std::vector<int64_t> kdims, kstrides;  // kept groups, outer to inner, with input strides
  std::vector<int64_t> roffs;            // general: offsets of the reduced elements
  int64_t R = 1, nout = 1;
  enum { trailing, middle, general } path = trailing;
  int64_t inner = 1;  // middle: size of the kept group after the reduced one
};

ReducePlan make_reduce_plan(const Shape& s, const std::vector<bool>& red) {
  ReducePlan p;
  std::vector<std::pair<int64_t, bool>> g;  // (size, reduced)
  for (size_t i = 0; i < s.size(); ++i) {
    if (red[i]) p.R *= s[i];
    else p.nout *= s[i];
    if (s[i] == 1) continue;
    if (!g.empty() && g.back().second == red[i]) g.back().first *= s[i];
    else g.emplace_back(s[i], red[i]);
  }
  std::vector<int64_t> st(g.size());
  int64_t acc = 1;
  for (int i = int(g.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= g[i].first;
  }
  int nred = 0;
  for (auto& x : g) nred += x.second;
  for (size_t i = 0; i < g.size(); ++i)
    if (!g[i].second) {
      p.kdims.push_back(g[i].first);
      p.kstrides.push_back(st[i]);
    }
  if (nred == 0 || (nred == 1 && g.back().second)) {
    p.path = ReducePlan::trailing;
  } else if (nred == 1 && !g.back().second) {
    p.path = ReducePlan::middle;
    p.inner = g.back().first;
  } else {
    p.path = ReducePlan::general;
    std::vector<int64_t> rd, rs;
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i].second) {
        rd.push_back(g[i].first);
        rs.push_back(st[i]);
      }
    p.roffs.assign(size_t(p.R), 0);
    for (int64_t r = 0; r < p.R; ++r) {
      int64_t q = r, off = 0;
      for (int d = int(rd.size()) - 1; d >= 0; --d) {
        off += (q % rd[d]) * rs[d];
        q /= rd[d];
      }
      p.roffs[size_t(r)] = off;
    }
  }
  return p;
}

template <class T, class K>
void reduce_run(const T* x, T* y, const ReducePlan& p) {
  using A = decltype(K::init());
  const int64_t R = p.R;
  const bool par = p.nout * std::max<int64_t>(R, 1) >= kParallelMin;
  if (p.nout == 0) return;
  if (R == 0) {  // empty reduction: the identity of the reduction
    for (int64_t o = 0; o < p.nout; ++o) y[o] = K::fin(K::init(), 0);
    return;
  }
  if (p.path == ReducePlan::trailing) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t o = 0; o < p.nout; ++o) {
      A a = K::init(), a1 = K::init(), a2 = K::init(), a3 = K::init();
      const T* xr = x + o * R;
      int64_t r = 0;
      for (; r + 4 <= R; r += 4) {
        K::add(a, xr[r]);
        K::add(a1, xr[r + 1]);
        K::add(a2, xr[r + 2]);
        K::add(a3, xr[r + 3]);
      }
      for (; r < R; ++r) K::add(a, xr[r]);
      K::merge(a, a1);
      K::merge(a2, a3);
      K::merge(a, a2);
      y[o] = K::fin(a, R);
    }
  } else if (p.path == ReducePlan::middle) {
    const int64_t inner = p.inner, outer = p.nout / inner;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t o = 0; o < outer; ++o) {
      std::vector<A> acc(size_t(inner), K::init());
      const T* xo = x + o * R * inner;
      for (int64_t r = 0; r < R; ++r)
        for (int64_t i = 0; i < inner; ++i) K::add(acc[size_t(i)], xo[r * inner + i]);
      for (int64_t i = 0; i < inner; ++i) y[o * inner + i] = K::fin(acc[size_t(i)], R);
    }
  } else {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t o = 0; o < p.nout; ++o) {
      int64_t q = o, base = 0;
      for (int d = int(p.kdims.size()) - 1; d >= 0; --d) {
        base += (q % p.kdims[d]) * p.kstrides[d];
        q /= p.kdims[d];
      }
      A a = K::init();
      for (int64_t r = 0; r < R; ++r) K::add(a, x[base + p.roffs[size_t(r)]]);
      y[o] = K::fin(a, R);
    }
  }
}

template <RKind K>
class ReduceOp : public GenericOp {
 public:
  explicit ReduceOp(const OpInfo& i) : GenericOp(i) {
    keepdims_ = i.attr_int("keepdims", 1) != 0;
    noop_empty_ = i.attr_int("noop_with_empty_axes", 0) != 0;
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 2);
    if (!dispatch_numeric(in[0]->dtype, [](auto) {}))
      op_error("dtype ", dtype_name(in[0]->dtype), " is not supported (fp32, int32, int64, s8, u8)");
    std::vector<bool> red;
    const bool noop = reduced(in, &red);
    Shape s;
    for (size_t i = 0; i < red.size(); ++i) {
      if (!red[i] || noop) s.push_back(in[0]->shape[i]);
      else if (keepdims_) s.push_back(1);
    }
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    std::vector<bool> red;
    if (reduced(in, &red)) {
      if (in[0]->nbytes()) std::memcpy(out[0]->data, in[0]->data, in[0]->nbytes());
      return;
    }
    auto p = make_reduce_plan(in[0]->shape, red);
    path_ = p.path == ReducePlan::trailing ? "trailing" : p.path == ReducePlan::middle ? "middle" : "general";
    dispatch_numeric(in[0]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (K == RKind::log_sum_exp)
        reduce_run<T, RedLSE<T>>(in[0]->ptr<T>(), out[0]->ptr<T>(), p);
      else
        reduce_run<T, Red<T, K>>(in[0]->ptr<T>(), out[0]->ptr<T>(), p);
    });
  }

  std::string kernel() const override { return path_; }

 private:
  // Marks reduced dims; returns true for a no-op (empty axes with noop_with_empty_axes).
  bool reduced(const TensorList& in, std::vector<bool>* red) const {
    bool given = false;
    auto axes = axes_from(in, 1, "axes", &given);
    const int r = in[0]->rank();
    red->assign(size_t(r), axes.empty());
    if (axes.empty()) return noop_empty_;
    for (int a : norm_axes(axes, r)) (*red)[size_t(a)] = true;
    return false;
  }

  bool keepdims_ = true, noop_empty_ = false;
  std::string path_ = "none";
};

// ---------------------------------------------------------------- ArgMax / ArgMin
template <bool IsMax>
class ArgOp : public GenericOp {
 public:
  explicit ArgOp(const OpInfo& i) : GenericOp(i) {
    keepdims_ = i.attr_int("keepdims", 1) != 0;
    last_ = i.attr_int("select_last_index", 0) != 0;
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    if (!dispatch_numeric(in[0]->dtype, [](auto) {}))
      op_error("dtype ", dtype_name(in[0]->dtype), " is not supported (fp32, int32, int64, s8, u8)");
    if (in[0]->rank() == 0) op_error("input '", in[0]->name, "' must have rank >= 1");
    const int axis = norm_axis(info_.attr_int("axis", 0), in[0]->rank());
    if (in[0]->shape[axis] == 0 && in[0]->numel() == 0 && shape_has_nonzero_rest(in[0]->shape, axis))
      op_error("cannot take ", IsMax ? "ArgMax" : "ArgMin", " over empty axis ", axis, " of ",
               shape_str(in[0]->shape));
    Shape s = in[0]->shape;
    if (keepdims_) s[axis] = 1;
    else s.erase(s.begin() + axis);
    out[0]->shape = s;
    out[0]->dtype = DType::int64;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Shape& sh = in[0]->shape;
    const int axis = norm_axis(info_.attr_int("axis", 0), int(sh.size()));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < int(sh.size()); ++i) {
      if (i < axis) outer *= sh[i];
      if (i > axis) inner *= sh[i];
    }
    const int64_t D = sh[axis];
    if (D == 0 || outer * inner == 0) return;
    int64_t* y = out[0]->ptr<int64_t>();
    const bool last = last_;
    dispatch_numeric(in[0]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* x = in[0]->ptr<T>();
#pragma omp parallel for schedule(static) if (outer * inner * D >= kParallelMin)
      for (int64_t t = 0; t < outer * inner; ++t) {
        const int64_t o = t / inner, i = t % inner;
        const T* xp = x + o * D * inner + i;
        T best = xp[0];
        int64_t bi = 0;
        // NaN wins (numpy argmax/argmin): the first one, or the last with select_last_index.
        for (int64_t d = 1; d < D; ++d) {
          const T v = xp[d * inner];
          const bool bnan = best != best;
          bool take;
          if (v != v) take = !bnan || last;
          else if (bnan) take = false;
          else take = IsMax ? (v > best || (last && v == best)) : (v < best || (last && v == best));
          if (take) {
            best = v;
            bi = d;
          }
        }
        y[t] = bi;
      }
    });
  }

 private:
  static bool shape_has_nonzero_rest(const Shape& s, int axis) {
    for (int i = 0; i < int(s.size()); ++i)
      if (i != axis && s[i] == 0) return false;
    return true;
  }
  bool keepdims_ = true, last_ = false;
};

// ---------------------------------------------------------------- CumSum (ONNX opset 11/14)
// y[.., i, ..] = sum of x[.., j, ..] over j <= i (j < i with exclusive; j >= i / j > i with
// reverse) along the constant scalar `axis` input. fp32, int32, int64.
class CumSumOp : public GenericOp {
 public:
  explicit CumSumOp(const OpInfo& i) : GenericOp(i) {
    exclusive_ = i.attr_int("exclusive", 0) != 0;
    reverse_ = i.attr_int("reverse", 0) != 0;
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 2);
    const DType t = in[0]->dtype;
    if (t != DType::fp32 && t != DType::int32 && t != DType::s32 && t != DType::int64)
      op_error("dtype ", dtype_name(t), " is not supported (fp32, int32, int64)");
    if (in[0]->rank() == 0) op_error("input '", in[0]->name, "' must have rank >= 1");
    if (in[1]->numel() != 1) op_error("axis input '", in[1]->name, "' must be a scalar, got ", shape_str(in[1]->shape));
    axis_ = norm_axis(int64_t(scalar_value(in[1], "axis")), in[0]->rank());
    out[0]->shape = in[0]->shape;
    out[0]->dtype = t;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Shape& sh = in[0]->shape;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < int(sh.size()); ++i) {
      if (i < axis_) outer *= sh[i];
      if (i > axis_) inner *= sh[i];
    }
    const int64_t D = sh[size_t(axis_)];
    if (outer * inner * D == 0) return;
    const bool excl = exclusive_, rev = reverse_;
    dispatch_numeric(in[0]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* x = in[0]->ptr<T>();
      T* y = out[0]->ptr<T>();
#pragma omp parallel for schedule(static) if (outer * inner * D >= kParallelMin)
      for (int64_t t = 0; t < outer * inner; ++t) {
        const int64_t o = t / inner, i = t % inner;
        const T* xp = x + o * D * inner + i;
        T* yp = y + o * D * inner + i;
        T acc = T(0);
        for (int64_t k = 0; k < D; ++k) {
          const int64_t d = rev ? D - 1 - k : k;
          const T v = xp[d * inner];  // read before the write: x and y may alias
          if (excl) {
            yp[d * inner] = acc;
            acc = T(acc + v);
          } else {
            acc = T(acc + v);
            yp[d * inner] = acc;
          }
        }
      }
    });
  }

 private:
  bool exclusive_ = false, reverse_ = false;
  int axis_ = 0;
};

}  // namespace

NE_REGISTER_OP("CumSum", CumSumOp);
NE_REGISTER_OP("ReduceSum", ReduceOp<RKind::sum>);
NE_REGISTER_OP("ReduceMean", ReduceOp<RKind::mean>);
NE_REGISTER_OP("ReduceMax", ReduceOp<RKind::max>);
NE_REGISTER_OP("ReduceMin", ReduceOp<RKind::min>);
NE_REGISTER_OP("ReduceProd", ReduceOp<RKind::prod>);
NE_REGISTER_OP("ReduceL1", ReduceOp<RKind::l1>);
NE_REGISTER_OP("ReduceL2", ReduceOp<RKind::l2>);
NE_REGISTER_OP("ReduceSumSquare", ReduceOp<RKind::sum_square>);
NE_REGISTER_OP("ReduceLogSum", ReduceOp<RKind::log_sum>);
NE_REGISTER_OP("ReduceLogSumExp", ReduceOp<RKind::log_sum_exp>);
NE_REGISTER_OP("ArgMax", ArgOp<true>);
NE_REGISTER_OP("ArgMin", ArgOp<false>);

}  // namespace generic
}  // namespace ne
