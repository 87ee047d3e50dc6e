// Element-wise unary ops with ONNX semantics: UnaryOp (sqrt, exp, erf, gelu, ...), Clip.
#include <cmath>
#include <type_traits>

#include "executor/ops/generic_elementwise.hpp"
#include "executor/ops/generic_util.hpp"

namespace ne {
namespace generic {
namespace {

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

}  // namespace

NE_REGISTER_OP("UnaryOp", UnaryOpOp);
NE_REGISTER_OP("Clip", ClipOp);

}  // namespace generic
}  // namespace ne
