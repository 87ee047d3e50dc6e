// Element-wise binary ops with ONNX semantics: BinaryAdd, BinaryOp.
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

#include "executor/ops/generic_elementwise.hpp"
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

}  // namespace

NE_REGISTER_OP("BinaryAdd", BinaryAddOp);
NE_REGISTER_OP("BinaryOp", BinaryOpOp);

}  // namespace generic
}  // namespace ne
