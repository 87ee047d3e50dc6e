// Element-wise ops with ONNX semantics: BinaryAdd, BinaryOp, UnaryOp, Clip, Where, Cast.
//
// Broadcasting goes through BcastPlan (generic_util.hpp): dims are collapsed so that the
// innermost loop is a contiguous run for every input or a broadcast scalar. The cases BERT
// graphs hit most are thereby straight vector loops:
//   same shape            -> one flat run, split in chunks across threads   (kernel "flat")
//   bias [N] + x [.., N]  -> rows of N, both contiguous                     (kernel "rows")
//   mask [B,1,1,S] + x [B,H,S,S] -> rows of S, both contiguous              (kernel "rows")
// kernel() reports which one the last forward() took, so tests can check the fast path ran.
#include <cmath>
#include <type_traits>

#include "executor/ops/generic_util.hpp"

namespace ne {
namespace generic {
namespace {

const char* plan_kind(const BcastPlan<2>& p) {
  if (p.dims.size() == 1 && p.inner_stride(0) == 1 && p.inner_stride(1) == 1) return "flat";
  if (p.inner_stride(0) == 1 && p.inner_stride(1) == 1) return "rows";
  if (p.inner_stride(0) + p.inner_stride(1) == 1) return "rows_scalar";
  return "generic";
}

// out[i] = op(a[i], b[i]) under broadcasting; the four inner-stride cases are separate loops so
// each vectorises.
template <class A, class B, class O, class Op>
void binary_loop(const A* a, const B* b, O* o, const BcastPlan<2>& p, Op op) {
  const int64_t sa = p.inner_stride(0), sb = p.inner_stride(1);
  bcast_run<2>(p, [&](const int64_t* off, int64_t oo, int64_t n) {
    const A* x = a + off[0];
    const B* y = b + off[1];
    O* z = o + oo;
    if (sa && sb) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) z[i] = op(x[i], y[i]);
    } else if (sa) {
      const B yv = y[0];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) z[i] = op(x[i], yv);
    } else if (sb) {
      const A xv = x[0];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) z[i] = op(xv, y[i]);
    } else {
      const O v = op(x[0], y[0]);
      for (int64_t i = 0; i < n; ++i) z[i] = v;
    }
  });
}

// Wrapping integer arithmetic without signed-overflow UB.
template <class T>
T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return T(U(U(a) + U(b)));
  } else {
    return a + b;
  }
}
template <class T>
T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return T(U(U(a) - U(b)));
  } else {
    return a - b;
  }
}
template <class T>
T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
    return T(U(U(a) * U(b)));
  } else {
    return a * b;
  }
}
// Integer division truncates (C semantics, as ONNX Div); x/0 gives 0 and MIN/-1 wraps, instead
// of trapping (ONNX leaves both undefined).
template <class T>
T int_div(T a, T b) {
  if constexpr (std::is_signed_v<T>) {
    if (b == -1) return wrap_sub(T(0), a);
  }
  return b == 0 ? T(0) : T(a / b);
}
// ONNX Mod: fmod=1 is C's remainder (sign of the dividend); fmod=0 takes the divisor's sign.
template <class T>
T int_mod(T a, T b, bool c_fmod) {
  if (b == 0) return 0;
  if constexpr (std::is_signed_v<T>) {
    if (b == -1) return 0;
    T r = T(a % b);
    if (!c_fmod && r != 0 && ((r < 0) != (b < 0))) r = T(r + b);
    return r;
  } else {
    return T(a % b);
  }
}

template <class T>
T clamp_cast(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return 0;
    if (v <= double(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return T(v);
  } else {
    return T(v);
  }
}

enum class BinAlg {
  add, sub, mul, div, pow, max, min, mod,
  equal, greater, greater_equal, less, less_equal, and_, or_, xor_
};

struct BinAlgName {
  const char* name;
  BinAlg alg;
};
const BinAlgName kBinAlgs[] = {
    {"add", BinAlg::add},       {"sub", BinAlg::sub},
    {"mul", BinAlg::mul},       {"div", BinAlg::div},
    {"pow", BinAlg::pow},       {"max", BinAlg::max},
    {"min", BinAlg::min},       {"mod", BinAlg::mod},
    {"equal", BinAlg::equal},   {"greater", BinAlg::greater},
    {"greater_equal", BinAlg::greater_equal}, {"less", BinAlg::less},
    {"less_equal", BinAlg::less_equal},       {"and", BinAlg::and_},
    {"or", BinAlg::or_},        {"xor", BinAlg::xor_}};

// s32 and int32 are the same element type.
DType canon(DType t) { return t == DType::s32 ? DType::int32 : t; }

bool is_compare(BinAlg a) { return a >= BinAlg::equal && a <= BinAlg::less_equal; }
bool is_logic(BinAlg a) { return a >= BinAlg::and_; }

class BinaryOpOp : public GenericOp {
 public:
  explicit BinaryOpOp(const OpInfo& i) : GenericOp(i) {
    std::string a = i.attr("algorithm");
    std::string all;
    for (auto& n : kBinAlgs) {
      if (a == n.name) { alg_ = n.alg; found_ = true; }
      all += std::string(all.empty() ? "" : " ") + n.name;
    }
    if (!found_) op_error("unknown algorithm '", a, "' (expected one of: ", all, ")");
    fmod_ = i.attr_int("fmod", 0) != 0;
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 2);
    const DType ta = in[0]->dtype, tb = in[1]->dtype;
    if (alg_ == BinAlg::pow) {
      auto ok = [](DType t) { return t == DType::fp32 || t == DType::int32 || t == DType::s32 || t == DType::int64; };
      if (!ok(ta) || !ok(tb))
        op_error("pow supports fp32/int32/int64 base and exponent, got ", dtype_name(ta), " and ",
                 dtype_name(tb));
    } else {
      if (canon(ta) != canon(tb))
        op_error("inputs '", in[0]->name, "' and '", in[1]->name, "' must have the same dtype, got ",
                 dtype_name(ta), " and ", dtype_name(tb));
      if (is_logic(alg_) && ta != DType::boolean)
        op_error("logical algorithm needs bool inputs, got ", dtype_name(ta));
      if (!is_logic(alg_) && ta == DType::boolean && alg_ != BinAlg::equal)
        op_error("algorithm '", info_.attr("algorithm"), "' does not take bool inputs");
      if (ta == DType::bf16 || ta == DType::fp16)
        op_error("dtype ", dtype_name(ta), " is not supported (cast to fp32 first)");
    }
    Shape s;
    if (!broadcast_shape(in[0]->shape, in[1]->shape, &s))
      op_error("shapes ", shape_str(in[0]->shape), " and ", shape_str(in[1]->shape),
               " do not broadcast (trailing dims must be equal or 1)");
    out[0]->shape = s;
    out[0]->dtype = (is_compare(alg_) || is_logic(alg_)) ? DType::boolean : ta;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Tensor &a = *in[0], &b = *in[1];
    Shape s;
    broadcast_shape(a.shape, b.shape, &s);
    auto p = make_bcast_plan<2>({&a.shape, &b.shape}, s);
    kind_ = plan_kind(p);
    if (alg_ == BinAlg::pow) return run_pow(a, b, out[0], p);
    if (is_logic(alg_)) {
      auto x = a.ptr<uint8_t>(), y = b.ptr<uint8_t>();
      auto z = out[0]->ptr<uint8_t>();
      if (alg_ == BinAlg::and_) binary_loop(x, y, z, p, [](uint8_t u, uint8_t v) -> uint8_t { return (u != 0) & (v != 0); });
      else if (alg_ == BinAlg::or_) binary_loop(x, y, z, p, [](uint8_t u, uint8_t v) -> uint8_t { return (u != 0) | (v != 0); });
      else binary_loop(x, y, z, p, [](uint8_t u, uint8_t v) -> uint8_t { return (u != 0) ^ (v != 0); });
      return;
    }
    if (a.dtype == DType::boolean) {  // equal
      binary_loop(a.ptr<uint8_t>(), b.ptr<uint8_t>(), out[0]->ptr<uint8_t>(), p,
                  [](uint8_t u, uint8_t v) -> uint8_t { return (u != 0) == (v != 0); });
      return;
    }
    dispatch_numeric(a.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      run_typed<T>(a.ptr<T>(), b.ptr<T>(), out[0], p);
    });
  }

  std::string kernel() const override { return kind_; }

 private:
  template <class T>
  void run_typed(const T* x, const T* y, Tensor* o, const BcastPlan<2>& p) {
    T* z = o->ptr<T>();
    uint8_t* zb = o->ptr<uint8_t>();
    constexpr bool is_f = std::is_floating_point_v<T>;
    switch (alg_) {
      case BinAlg::add: binary_loop(x, y, z, p, [](T u, T v) { return wrap_add(u, v); }); break;
      case BinAlg::sub: binary_loop(x, y, z, p, [](T u, T v) { return wrap_sub(u, v); }); break;
      case BinAlg::mul: binary_loop(x, y, z, p, [](T u, T v) { return wrap_mul(u, v); }); break;
      case BinAlg::div:
        if constexpr (is_f) binary_loop(x, y, z, p, [](T u, T v) { return u / v; });
        else binary_loop(x, y, z, p, [](T u, T v) { return int_div(u, v); });
        break;
      case BinAlg::max:  // NaN propagates (numpy maximum, ONNX reference)
        binary_loop(x, y, z, p, [](T u, T v) { return (u > v || u != u) ? u : v; });
        break;
      case BinAlg::min:
        binary_loop(x, y, z, p, [](T u, T v) { return (u < v || u != u) ? u : v; });
        break;
      case BinAlg::mod:
        // Float Mod is fmod whatever the attribute says (ONNX reference implementation).
        if constexpr (is_f) binary_loop(x, y, z, p, [](T u, T v) { return std::fmod(u, v); });
        else if (fmod_) binary_loop(x, y, z, p, [](T u, T v) { return int_mod(u, v, true); });
        else binary_loop(x, y, z, p, [](T u, T v) { return int_mod(u, v, false); });
        break;
      case BinAlg::equal: binary_loop(x, y, zb, p, [](T u, T v) -> uint8_t { return u == v; }); break;
      case BinAlg::greater: binary_loop(x, y, zb, p, [](T u, T v) -> uint8_t { return u > v; }); break;
      case BinAlg::greater_equal: binary_loop(x, y, zb, p, [](T u, T v) -> uint8_t { return u >= v; }); break;
      case BinAlg::less: binary_loop(x, y, zb, p, [](T u, T v) -> uint8_t { return u < v; }); break;
      case BinAlg::less_equal: binary_loop(x, y, zb, p, [](T u, T v) -> uint8_t { return u <= v; }); break;
      default: op_error("internal: unhandled algorithm");
    }
  }

  // Pow(T base, T1 exponent) -> T (ONNX allows the exponent's type to differ).
  void run_pow(const Tensor& a, const Tensor& b, Tensor* o, const BcastPlan<2>& p) {
    auto with_exp = [&](auto base_tag) {
      using A = typename decltype(base_tag)::type;
      dispatch_numeric(b.dtype, [&](auto exp_tag) {
        using B = typename decltype(exp_tag)::type;
        if constexpr (std::is_same_v<A, float> && std::is_same_v<B, float>)
          binary_loop(a.ptr<A>(), b.ptr<B>(), o->ptr<A>(), p, [](float u, float v) { return std::pow(u, v); });
        else
          binary_loop(a.ptr<A>(), b.ptr<B>(), o->ptr<A>(), p,
                      [](A u, B v) { return clamp_cast<A>(std::pow(double(u), double(v))); });
      });
    };
    if (a.dtype == DType::fp32) with_exp(Tag<float>{});
    else if (a.dtype == DType::int64) with_exp(Tag<int64_t>{});
    else with_exp(Tag<int32_t>{});
  }

  BinAlg alg_ = BinAlg::add;
  bool found_ = false;
  bool fmod_ = false;
  std::string kind_ = "none";
};

// a + b (+ c), broadcast; output dtype = a's.
class BinaryAddOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 2, 3);
    Shape s = in[0]->shape;
    for (size_t i = 1; i < in.size(); ++i) {
      if (in[i]->dtype != in[0]->dtype)
        op_error("input '", in[i]->name, "' has dtype ", dtype_name(in[i]->dtype), ", expected ",
                 dtype_name(in[0]->dtype), " like '", in[0]->name, "'");
      if (!broadcast_shape(s, in[i]->shape, &s))
        op_error("shape ", shape_str(in[i]->shape), " of '", in[i]->name, "' does not broadcast with ",
                 shape_str(in[0]->shape), " (trailing dims must be equal or 1)");
    }
    if (!dispatch_numeric(in[0]->dtype, [](auto) {}))
      op_error("dtype ", dtype_name(in[0]->dtype), " is not supported (fp32, int32, int64, s8, u8)");
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    Shape s = in[0]->shape;
    for (size_t i = 1; i < in.size(); ++i) broadcast_shape(s, in[i]->shape, &s);
    if (in.size() == 2) {
      auto p = make_bcast_plan<2>({&in[0]->shape, &in[1]->shape}, s);
      kind_ = plan_kind(p);
      dispatch_numeric(in[0]->dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        binary_loop(in[0]->ptr<T>(), in[1]->ptr<T>(), out[0]->ptr<T>(), p,
                    [](T u, T v) { return wrap_add(u, v); });
      });
      return;
    }
    auto p = make_bcast_plan<3>({&in[0]->shape, &in[1]->shape, &in[2]->shape}, s);
    const bool contig = p.inner_stride(0) && p.inner_stride(1) && p.inner_stride(2);
    kind_ = contig ? (p.dims.size() == 1 ? "flat3" : "rows3") : "generic3";
    dispatch_numeric(in[0]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T *a = in[0]->ptr<T>(), *b = in[1]->ptr<T>(), *c = in[2]->ptr<T>();
      T* o = out[0]->ptr<T>();
      const int64_t sa = p.inner_stride(0), sb = p.inner_stride(1), sc = p.inner_stride(2);
      bcast_run<3>(p, [&](const int64_t* off, int64_t oo, int64_t n) {
        const T *x = a + off[0], *y = b + off[1], *w = c + off[2];
        T* z = o + oo;
        if (contig) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) z[i] = wrap_add(wrap_add(x[i], y[i]), w[i]);
        } else {
          for (int64_t i = 0; i < n; ++i)
            z[i] = wrap_add(wrap_add(x[i * sa], y[i * sb]), w[i * sc]);
        }
      });
    });
  }

  std::string kernel() const override { return kind_; }

 private:
  std::string kind_ = "none";
};

// ---------------------------------------------------------------- UnaryOp
enum class UnAlg {
  sqrt, exp, log, erf, tanh, relu, sigmoid, neg, abs, reciprocal, floor, ceil, round, sin, cos,
  not_, sign, softplus, leaky_relu, elu, hard_sigmoid, selu, tan, asin, acos, atan, sinh, cosh,
  asinh, acosh, atanh, softsign, hard_swish, mish, gelu_erf, gelu_tanh
};
struct UnAlgName {
  const char* name;
  UnAlg alg;
};
const UnAlgName kUnAlgs[] = {
    {"sqrt", UnAlg::sqrt}, {"exp", UnAlg::exp}, {"log", UnAlg::log}, {"erf", UnAlg::erf},
    {"tanh", UnAlg::tanh}, {"relu", UnAlg::relu}, {"sigmoid", UnAlg::sigmoid},
    {"neg", UnAlg::neg}, {"abs", UnAlg::abs}, {"reciprocal", UnAlg::reciprocal},
    {"floor", UnAlg::floor}, {"ceil", UnAlg::ceil}, {"round", UnAlg::round},
    {"sin", UnAlg::sin}, {"cos", UnAlg::cos}, {"not", UnAlg::not_}, {"sign", UnAlg::sign},
    {"softplus", UnAlg::softplus}, {"leaky_relu", UnAlg::leaky_relu}, {"elu", UnAlg::elu},
    {"hard_sigmoid", UnAlg::hard_sigmoid}, {"selu", UnAlg::selu}, {"tan", UnAlg::tan},
    {"asin", UnAlg::asin}, {"acos", UnAlg::acos}, {"atan", UnAlg::atan}, {"sinh", UnAlg::sinh},
    {"cosh", UnAlg::cosh}, {"asinh", UnAlg::asinh}, {"acosh", UnAlg::acosh},
    {"atanh", UnAlg::atanh}, {"softsign", UnAlg::softsign}, {"hard_swish", UnAlg::hard_swish},
    {"mish", UnAlg::mish}, {"gelu_erf", UnAlg::gelu_erf}, {"gelu_tanh", UnAlg::gelu_tanh}};

// Algorithms that also take integer inputs (ONNX Neg/Abs/Sign/Relu).
bool un_int_ok(UnAlg a) {
  return a == UnAlg::neg || a == UnAlg::abs || a == UnAlg::sign || a == UnAlg::relu;
}

template <class F>
void flat_loop(int64_t n, F&& f) {
  const int64_t nch = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < nch; ++c) {
    const int64_t s = c * kChunk, e = std::min(n, s + kChunk);
    f(s, e);
  }
}

template <class T, class F>
void unary_loop(const T* x, T* y, int64_t n, F f) {
  flat_loop(n, [&](int64_t s, int64_t e) {
#pragma omp simd
    for (int64_t i = s; i < e; ++i) y[i] = f(x[i]);
  });
}

class UnaryOpOp : public GenericOp {
 public:
  explicit UnaryOpOp(const OpInfo& i) : GenericOp(i) {
    std::string a = i.attr("algorithm");
    bool found = false;
    std::string all;
    for (auto& n : kUnAlgs) {
      if (a == n.name) { alg_ = n.alg; found = true; }
      all += std::string(all.empty() ? "" : " ") + n.name;
    }
    if (!found) op_error("unknown algorithm '", a, "' (expected one of: ", all, ")");
    // ONNX defaults per op.
    float alpha_def = 0.01f, beta_def = 0.f;
    if (alg_ == UnAlg::elu) alpha_def = 1.f;
    if (alg_ == UnAlg::hard_sigmoid) { alpha_def = 0.2f; beta_def = 0.5f; }
    if (alg_ == UnAlg::selu) alpha_def = 1.67326319217681884765625f;
    alpha_ = i.attr_float("alpha", alpha_def);
    beta_ = i.attr_float("beta", beta_def);
    gamma_ = i.attr_float("gamma", 1.05070102214813232421875f);
  }

  int inplace_input() const override { return 0; }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    const DType t = in[0]->dtype;
    if (alg_ == UnAlg::not_) {
      if (t != DType::boolean) op_error("'not' needs a bool input, got ", dtype_name(t));
    } else if (t != DType::fp32 && !(un_int_ok(alg_) && is_integer(t))) {
      op_error("algorithm '", info_.attr("algorithm"), "' needs fp32",
               un_int_ok(alg_) ? " or integer" : "", " input, got ", dtype_name(t));
    }
    out[0]->shape = in[0]->shape;
    out[0]->dtype = t;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const int64_t n = in[0]->numel();
    if (alg_ == UnAlg::not_) {
      unary_loop(in[0]->ptr<uint8_t>(), out[0]->ptr<uint8_t>(), n,
                 [](uint8_t v) -> uint8_t { return v == 0; });
      return;
    }
    if (in[0]->dtype != DType::fp32) {
      dispatch_numeric(in[0]->dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* x = in[0]->ptr<T>();
        T* y = out[0]->ptr<T>();
        switch (alg_) {
          case UnAlg::neg: unary_loop(x, y, n, [](T v) { return wrap_sub(T(0), v); }); break;
          case UnAlg::abs: unary_loop(x, y, n, [](T v) { return v < 0 ? wrap_sub(T(0), v) : v; }); break;
          case UnAlg::sign: unary_loop(x, y, n, [](T v) { return T((v > 0) - (v < 0)); }); break;
          default: unary_loop(x, y, n, [](T v) { return v > 0 ? v : T(0); }); break;  // relu
        }
      });
      return;
    }
    const float* x = in[0]->ptr<float>();
    float* y = out[0]->ptr<float>();
    const float al = alpha_, be = beta_, ga = gamma_;
    switch (alg_) {
      case UnAlg::sqrt: unary_loop(x, y, n, [](float v) { return std::sqrt(v); }); break;
      case UnAlg::exp: unary_loop(x, y, n, [](float v) { return std::exp(v); }); break;
      case UnAlg::log: unary_loop(x, y, n, [](float v) { return std::log(v); }); break;
      case UnAlg::erf: unary_loop(x, y, n, [](float v) { return std::erf(v); }); break;
      case UnAlg::tanh: unary_loop(x, y, n, [](float v) { return std::tanh(v); }); break;
      case UnAlg::relu: unary_loop(x, y, n, [](float v) { return v > 0.f ? v : (v != v ? v : 0.f); }); break;
      case UnAlg::sigmoid:
        unary_loop(x, y, n, [](float v) {
          if (v >= 0) return 1.f / (1.f + std::exp(-v));
          const float e = std::exp(v);
          return e / (1.f + e);
        });
        break;
      case UnAlg::neg: unary_loop(x, y, n, [](float v) { return -v; }); break;
      case UnAlg::abs: unary_loop(x, y, n, [](float v) { return std::fabs(v); }); break;
      case UnAlg::reciprocal: unary_loop(x, y, n, [](float v) { return 1.f / v; }); break;
      case UnAlg::floor: unary_loop(x, y, n, [](float v) { return std::floor(v); }); break;
      case UnAlg::ceil: unary_loop(x, y, n, [](float v) { return std::ceil(v); }); break;
      // ONNX Round: halves to even (the default FP rounding mode).
      case UnAlg::round: unary_loop(x, y, n, [](float v) { return std::nearbyint(v); }); break;
      case UnAlg::sin: unary_loop(x, y, n, [](float v) { return std::sin(v); }); break;
      case UnAlg::cos: unary_loop(x, y, n, [](float v) { return std::cos(v); }); break;
      case UnAlg::tan: unary_loop(x, y, n, [](float v) { return std::tan(v); }); break;
      case UnAlg::asin: unary_loop(x, y, n, [](float v) { return std::asin(v); }); break;
      case UnAlg::acos: unary_loop(x, y, n, [](float v) { return std::acos(v); }); break;
      case UnAlg::atan: unary_loop(x, y, n, [](float v) { return std::atan(v); }); break;
      case UnAlg::sinh: unary_loop(x, y, n, [](float v) { return std::sinh(v); }); break;
      case UnAlg::cosh: unary_loop(x, y, n, [](float v) { return std::cosh(v); }); break;
      case UnAlg::asinh: unary_loop(x, y, n, [](float v) { return std::asinh(v); }); break;
      case UnAlg::acosh: unary_loop(x, y, n, [](float v) { return std::acosh(v); }); break;
      case UnAlg::atanh: unary_loop(x, y, n, [](float v) { return std::atanh(v); }); break;
      case UnAlg::sign: unary_loop(x, y, n, [](float v) { return v > 0 ? 1.f : v < 0 ? -1.f : v; }); break;
      case UnAlg::softplus:  // log(1+e^x) without overflow
        unary_loop(x, y, n, [](float v) {
          return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
        });
        break;
      case UnAlg::softsign: unary_loop(x, y, n, [](float v) { return v / (1.f + std::fabs(v)); }); break;
      case UnAlg::leaky_relu: unary_loop(x, y, n, [al](float v) { return v >= 0 ? v : al * v; }); break;
      case UnAlg::elu: unary_loop(x, y, n, [al](float v) { return v >= 0 ? v : al * std::expm1(v); }); break;
      case UnAlg::hard_sigmoid:
        unary_loop(x, y, n, [al, be](float v) { return std::max(0.f, std::min(1.f, al * v + be)); });
        break;
      case UnAlg::selu:
        unary_loop(x, y, n, [al, ga](float v) { return v > 0 ? ga * v : ga * al * std::expm1(v); });
        break;
      case UnAlg::hard_swish:  // x * max(0, min(1, x/6 + 1/2))
        unary_loop(x, y, n, [](float v) { return v * std::max(0.f, std::min(1.f, v / 6.f + 0.5f)); });
        break;
      case UnAlg::mish:
        unary_loop(x, y, n, [](float v) {
          const float sp = v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
          return v * std::tanh(sp);
        });
        break;
      case UnAlg::gelu_erf:
        unary_loop(x, y, n, [](float v) { return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f)); });
        break;
      case UnAlg::gelu_tanh:
        unary_loop(x, y, n, [](float v) {
          return 0.5f * v * (1.f + std::tanh(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        });
        break;
      case UnAlg::not_: break;
    }
  }

 private:
  UnAlg alg_ = UnAlg::relu;
  float alpha_ = 0, beta_ = 0, gamma_ = 0;
};

// ---------------------------------------------------------------- Clip
class ClipOp : public GenericOp {
 public:
  using GenericOp::GenericOp;
  int inplace_input() const override { return 0; }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 3);
    if (!dispatch_numeric(in[0]->dtype, [](auto) {}))
      op_error("dtype ", dtype_name(in[0]->dtype), " is not supported (fp32, int32, int64, s8, u8)");
    for (size_t i = 1; i < in.size(); ++i)
      if (present(in, i) && in[i]->numel() != 1 && !in[i]->shape.empty())
        op_error(i == 1 ? "min" : "max", " input '", in[i]->name, "' must be a scalar, got ",
                 shape_str(in[i]->shape));
    out[0]->shape = in[0]->shape;
    out[0]->dtype = in[0]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    dispatch_numeric(in[0]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
      if constexpr (std::is_floating_point_v<T>) {
        lo = -std::numeric_limits<T>::infinity();
        hi = std::numeric_limits<T>::infinity();
      }
      if (present(in, 1)) lo = clamp_cast<T>(scalar_value(in[1], "min"));
      else if (info_.has_attr("min")) lo = clamp_cast<T>(info_.attr_float("min", 0));
      if (present(in, 2)) hi = clamp_cast<T>(scalar_value(in[2], "max"));
      else if (info_.has_attr("max")) hi = clamp_cast<T>(info_.attr_float("max", 0));
      // ONNX: min > max sets everything to max.
      unary_loop(in[0]->ptr<T>(), out[0]->ptr<T>(), in[0]->numel(), [lo, hi](T v) {
        if (v != v) return v;
        return std::min(std::max(v, lo), hi);
      });
    });
  }
};

// ---------------------------------------------------------------- Where
class WhereOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 3, 3);
    if (in[0]->dtype != DType::boolean)
      op_error("condition '", in[0]->name, "' must be bool, got ", dtype_name(in[0]->dtype));
    if (in[1]->dtype != in[2]->dtype)
      op_error("'", in[1]->name, "' and '", in[2]->name, "' must have the same dtype, got ",
               dtype_name(in[1]->dtype), " and ", dtype_name(in[2]->dtype));
    Shape s;
    if (!broadcast_shape(in[0]->shape, in[1]->shape, &s) || !broadcast_shape(s, in[2]->shape, &s))
      op_error("shapes ", shape_str(in[0]->shape), ", ", shape_str(in[1]->shape), " and ",
               shape_str(in[2]->shape), " do not broadcast");
    out[0]->shape = s;
    out[0]->dtype = in[1]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    Shape s;
    broadcast_shape(in[0]->shape, in[1]->shape, &s);
    broadcast_shape(s, in[2]->shape, &s);
    auto p = make_bcast_plan<3>({&in[0]->shape, &in[1]->shape, &in[2]->shape}, s);
    const int64_t sc = p.inner_stride(0), sx = p.inner_stride(1), sy = p.inner_stride(2);
    const uint8_t* c = in[0]->ptr<uint8_t>();
    dispatch_bytes(in[1]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T *x = in[1]->ptr<T>(), *y = in[2]->ptr<T>();
      T* o = out[0]->ptr<T>();
      bcast_run<3>(p, [&](const int64_t* off, int64_t oo, int64_t n) {
        const uint8_t* cc = c + off[0];
        const T *xx = x + off[1], *yy = y + off[2];
        T* z = o + oo;
        if (sc && sx && sy) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) z[i] = cc[i] ? xx[i] : yy[i];
        } else {
          for (int64_t i = 0; i < n; ++i) z[i] = cc[i * sc] ? xx[i * sx] : yy[i * sy];
        }
      });
    });
  }
};

// ---------------------------------------------------------------- Cast
// Sources are read as float (fp32/bf16/fp16) or int64 (integers, bool), then stored.
template <class D>
void store_from_float(const float* v, D* d, int64_t n, DType to) {
  flat_loop(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float f = v[i];
      if (to == DType::boolean) d[i] = D(f != 0.f);
      else if (to == DType::bf16) d[i] = D(fp32_to_bf16(f));
      else if (to == DType::fp16) d[i] = D(fp32_to_fp16(f));
      else if constexpr (std::is_floating_point_v<D>) d[i] = f;
      else d[i] = clamp_cast<D>(f);  // truncates toward zero; NaN -> 0; saturates
    }
  });
}

class CastOp : public GenericOp {
 public:
  explicit CastOp(const OpInfo& i) : GenericOp(i) {
    if (!i.has_attr("to")) op_error("attribute 'to' is required (a dtype name)");
    if (!parse_dtype(i.attr("to"), &to_))
      op_error("unknown dtype '", i.attr("to"),
               "' in 'to' (expected fp32 bf16 fp16 s8 u8 int32 int64 bool)");
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    out[0]->shape = in[0]->shape;
    out[0]->dtype = to_;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Tensor& x = *in[0];
    Tensor& y = *out[0];
    const int64_t n = x.numel();
    if (n == 0) return;
    if (x.dtype == y.dtype || (is_integer(x.dtype) && is_integer(y.dtype) &&
                               dtype_size(x.dtype) == 4 && dtype_size(y.dtype) == 4)) {
      std::memcpy(y.data, x.data, x.nbytes());
      return;
    }
    const bool src_float = x.dtype == DType::fp32 || x.dtype == DType::bf16 || x.dtype == DType::fp16;
    if (src_float) {
      std::vector<float> tmp;
      const float* f = x.ptr<float>();
      if (x.dtype != DType::fp32) {
        tmp.resize(size_t(n));
        const uint16_t* h = x.ptr<uint16_t>();
        const bool bf = x.dtype == DType::bf16;
        flat_loop(n, [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; ++i) tmp[i] = bf ? bf16_to_fp32(h[i]) : fp16_to_fp32(h[i]);
        });
        f = tmp.data();
      }
      switch (y.dtype) {
        case DType::fp32: std::memcpy(y.data, f, size_t(n) * 4); break;
        case DType::bf16: case DType::fp16: store_from_float(f, y.ptr<uint16_t>(), n, y.dtype); break;
        case DType::boolean: store_from_float(f, y.ptr<uint8_t>(), n, y.dtype); break;
        case DType::s8: store_from_float(f, y.ptr<int8_t>(), n, y.dtype); break;
        case DType::u8: store_from_float(f, y.ptr<uint8_t>(), n, y.dtype); break;
        case DType::int32: case DType::s32: store_from_float(f, y.ptr<int32_t>(), n, y.dtype); break;
        case DType::int64: store_from_float(f, y.ptr<int64_t>(), n, y.dtype); break;
      }
      return;
    }
    // Integer / bool source.
    auto load = [&](auto tag) {
      using S = typename decltype(tag)::type;
      const S* s = x.ptr<S>();
      auto put = [&](auto dtag) {
        using D = typename decltype(dtag)::type;
        D* d = y.ptr<D>();
        const DType to = y.dtype;
        flat_loop(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const int64_t v = int64_t(s[i]);
            if (to == DType::boolean) d[i] = D(v != 0);
            else if (to == DType::bf16) d[i] = D(fp32_to_bf16(float(v)));
            else if (to == DType::fp16) d[i] = D(fp32_to_fp16(float(v)));
            else d[i] = D(v);  // integers wrap (two's complement), floats round to nearest
          }
        });
      };
      switch (y.dtype) {
        case DType::fp32: put(Tag<float>{}); break;
        case DType::bf16: case DType::fp16: put(Tag<uint16_t>{}); break;
        case DType::boolean: case DType::u8: put(Tag<uint8_t>{}); break;
        case DType::s8: put(Tag<int8_t>{}); break;
        case DType::int32: case DType::s32: put(Tag<int32_t>{}); break;
        case DType::int64: put(Tag<int64_t>{}); break;
      }
    };
    switch (x.dtype) {
      case DType::boolean: case DType::u8: load(Tag<uint8_t>{}); break;
      case DType::s8: load(Tag<int8_t>{}); break;
      case DType::int32: case DType::s32: load(Tag<int32_t>{}); break;
      default: load(Tag<int64_t>{}); break;
    }
  }

 private:
  DType to_ = DType::fp32;
};

}  // namespace

NE_REGISTER_OP("BinaryAdd", BinaryAddOp);
NE_REGISTER_OP("BinaryOp", BinaryOpOp);
NE_REGISTER_OP("UnaryOp", UnaryOpOp);
NE_REGISTER_OP("Clip", ClipOp);
NE_REGISTER_OP("Where", WhereOp);
NE_REGISTER_OP("Cast", CastOp);

}  // namespace generic
}  // namespace ne
