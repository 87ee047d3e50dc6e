// Shape ops with ONNX semantics. Views (no copy; is_view()): Reshape, Flatten, Squeeze,
// Unsqueeze, Identity. Plan-time producers: Shape (shape_only()), ConstantOfShape, Range.
#include <cmath>

#include "executor/ops/generic_util.hpp"

namespace ne {
namespace generic {
namespace {

// ONNX Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred.
class ReshapeOp : public GenericViewOp {
 public:
  explicit ReshapeOp(const OpInfo& i) : GenericViewOp(i) {
    allowzero_ = i.attr_int("allowzero", 0) != 0;
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 2);
    std::vector<int64_t> want;
    if (present(in, 1)) want = const_ints(in[1], "shape");
    else if (info_.has_attr("dst_shape")) want = info_.attr_ints("dst_shape");
    else op_error("needs a 'shape' input or a 'dst_shape' attribute");
    const Shape& src = in[0]->shape;
    Shape s(want.size());
    int infer = -1;
    bool has_zero = false;
    int64_t known = 1;
    for (size_t i = 0; i < want.size(); ++i) {
      int64_t d = want[i];
      if (d == -1) {
        if (infer >= 0) op_error("target shape ", shape_str(want), " has more than one -1");
        infer = int(i);
        continue;
      }
      if (d < -1) op_error("target shape ", shape_str(want), " has invalid dim ", d);
      if (d == 0 && !allowzero_) {
        if (i >= src.size())
          op_error("target shape ", shape_str(want), " copies dim ", i, " (0) but the input ",
                   shape_str(src), " has rank ", src.size());
        d = src[i];
      }
      if (d == 0) has_zero = true;
      s[i] = d;
      known *= d;
    }
    const int64_t n = in[0]->numel();
    if (infer >= 0) {
      if (allowzero_ && has_zero)
        op_error("target shape ", shape_str(want), " has both 0 and -1 with allowzero=1");
      if (known == 0 || n % known != 0)
        op_error("cannot infer -1 in ", shape_str(want), " for input ", shape_str(src), " (",
                 n, " elements)");
      s[infer] = n / known;
    } else if (known != n) {
      op_error("target shape ", shape_str(want), " -> ", shape_str(s), " has ", known,
               " elements, input ", shape_str(src), " has ", n);
    }
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }

 private:
  bool allowzero_ = false;
};

class FlattenOp : public GenericViewOp {
 public:
  using GenericViewOp::GenericViewOp;
  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    const int r = in[0]->rank();
    int64_t axis = info_.attr_int("axis", 1);  // [-r, r]; negative counts from r
    if (axis < -r || axis > r)
      op_error("axis ", axis, " is out of range for rank ", r, " (expected ", -r, "..", r, ")");
    if (axis < 0) axis += r;
    int64_t a = 1, b = 1;
    for (int i = 0; i < r; ++i) (i < axis ? a : b) *= in[0]->shape[i];
    out[0]->shape = {a, b};
    out[0]->dtype = in[0]->dtype;
  }
};

class SqueezeOp : public GenericViewOp {
 public:
  using GenericViewOp::GenericViewOp;
  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 2);
    bool given = false;
    auto axes_raw = axes_from(in, 1, "axes", &given);
    const Shape& src = in[0]->shape;
    const int r = int(src.size());
    std::vector<bool> drop(r, false);
    if (axes_raw.empty()) {
      for (int i = 0; i < r; ++i) drop[i] = src[i] == 1;
    } else {
      for (int a : norm_axes(axes_raw, r)) {
        if (src[a] != 1)
          op_error("cannot squeeze axis ", a, " of shape ", shape_str(src), ": dim is ", src[a],
                   ", expected 1");
        drop[a] = true;
      }
    }
    Shape s;
    for (int i = 0; i < r; ++i)
      if (!drop[i]) s.push_back(src[i]);
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }
};

class UnsqueezeOp : public GenericViewOp {
 public:
  using GenericViewOp::GenericViewOp;
  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 2);
    bool given = false;
    auto axes_raw = axes_from(in, 1, "axes", &given);
    if (axes_raw.empty()) op_error("needs 'axes' (input or attribute)");
    const Shape& src = in[0]->shape;
    const int r = int(src.size() + axes_raw.size());
    std::vector<bool> ins(r, false);
    for (int a : norm_axes(axes_raw, r)) ins[a] = true;
    Shape s;
    size_t j = 0;
    for (int i = 0; i < r; ++i) s.push_back(ins[i] ? 1 : src[j++]);
    out[0]->shape = s;
    out[0]->dtype = in[0]->dtype;
  }
};

class IdentityOp : public GenericViewOp {
 public:
  using GenericViewOp::GenericViewOp;
  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    out[0]->shape = in[0]->shape;
    out[0]->dtype = in[0]->dtype;
  }
};

// int64 [end - start] holding the input's dims start..end (ONNX Shape-15, clamped).
class ShapeOp : public GenericOp {
 public:
  using GenericOp::GenericOp;
  bool shape_only() const override { return true; }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    int64_t s, e;
    range(in[0]->rank(), &s, &e);
    out[0]->shape = {e - s};
    out[0]->dtype = DType::int64;
  }
  void forward(const TensorList& in, const TensorList& out) override {
    int64_t s, e;
    range(in[0]->rank(), &s, &e);
    for (int64_t i = s; i < e; ++i) out[0]->ptr<int64_t>()[i - s] = in[0]->shape[i];
  }

 private:
  void range(int r, int64_t* s, int64_t* e) const {
    int64_t a = info_.attr_int("start", 0), b = info_.attr_int("end", r);
    if (a < 0) a += r;
    if (b < 0) b += r;
    a = std::clamp<int64_t>(a, 0, r);
    b = std::clamp<int64_t>(b, 0, r);
    *s = a;
    *e = std::max(a, b);
  }
};

// Parses a number attribute exactly for the target dtype (int64 values beyond 2^24 survive).
template <class T>
T parse_value(const std::string& v) {
  if (v.empty()) return T(0);
  if constexpr (std::is_integral_v<T>) {
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (end && *end == 0) return T(x);
  }
  return T(std::strtod(v.c_str(), nullptr));
}

class ConstantOfShapeOp : public GenericOp {
 public:
  explicit ConstantOfShapeOp(const OpInfo& i) : GenericOp(i) {
    if (i.has_attr("dtype") && !parse_dtype(i.attr("dtype"), &dt_))
      op_error("unknown dtype '", i.attr("dtype"), "'");
    value_ = i.attr("value", "0");
    char* end = nullptr;
    std::strtod(value_.c_str(), &end);
    if (!end || *end != 0) op_error("attribute value='", value_, "' is not a number");
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    auto dims = const_ints(in[0], "shape");
    for (int64_t d : dims)
      if (d < 0) op_error("shape ", shape_str(dims), " has a negative dim");
    out[0]->shape = dims;
    out[0]->dtype = dt_;
  }

  void forward(const TensorList&, const TensorList& out) override {
    const int64_t n = out[0]->numel();
    auto fill = [&](auto v) {
      auto* p = static_cast<decltype(v)*>(out[0]->data);
      std::fill(p, p + n, v);
    };
    switch (dt_) {
      case DType::fp32: fill(parse_value<float>(value_)); break;
      case DType::bf16: fill(fp32_to_bf16(parse_value<float>(value_))); break;
      case DType::fp16: fill(fp32_to_fp16(parse_value<float>(value_))); break;
      case DType::s8: fill(parse_value<int8_t>(value_)); break;
      case DType::u8: fill(parse_value<uint8_t>(value_)); break;
      case DType::boolean: fill(uint8_t(parse_value<double>(value_) != 0)); break;
      case DType::int32: case DType::s32: fill(parse_value<int32_t>(value_)); break;
      case DType::int64: fill(parse_value<int64_t>(value_)); break;
    }
  }

 private:
  DType dt_ = DType::fp32;
  std::string value_;
};

// ONNX Range: n = max(ceil((limit - start) / delta), 0); out[i] = start + i * delta.
class RangeOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 3, 3);
    const char* roles[] = {"start", "limit", "delta"};
    for (int i = 0; i < 3; ++i) {
      require_const(in[i], roles[i]);
      if (in[i]->dtype != in[0]->dtype)
        op_error("start, limit and delta must share a dtype, got ", dtype_name(in[0]->dtype),
                 " and ", dtype_name(in[i]->dtype));
    }
    const DType t = in[0]->dtype;
    if (t != DType::fp32 && t != DType::int32 && t != DType::s32 && t != DType::int64)
      op_error("dtype ", dtype_name(t), " is not supported (fp32, int32, int64)");
    out[0]->shape = {count(in)};
    out[0]->dtype = t;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const int64_t n = out[0]->numel();
    if (in[0]->dtype == DType::fp32) {
      const float s = in[0]->ptr<float>()[0], d = in[2]->ptr<float>()[0];
      for (int64_t i = 0; i < n; ++i) out[0]->ptr<float>()[i] = s + float(i) * d;
    } else if (in[0]->dtype == DType::int64) {
      const int64_t s = in[0]->ptr<int64_t>()[0], d = in[2]->ptr<int64_t>()[0];
      for (int64_t i = 0; i < n; ++i) out[0]->ptr<int64_t>()[i] = s + i * d;
    } else {
      const int32_t s = in[0]->ptr<int32_t>()[0], d = in[2]->ptr<int32_t>()[0];
      for (int64_t i = 0; i < n; ++i) out[0]->ptr<int32_t>()[i] = int32_t(s + i * d);
    }
  }

 private:
  int64_t count(const TensorList& in) const {
    for (int i = 0; i < 3; ++i)
      if (in[i]->numel() != 1)
        op_error("input '", in[i]->name, "' must be a scalar, got ", shape_str(in[i]->shape));
    if (in[0]->dtype == DType::fp32) {
      const double s = in[0]->ptr<float>()[0], l = in[1]->ptr<float>()[0], d = in[2]->ptr<float>()[0];
      if (d == 0) op_error("delta is 0");
      const double n = std::ceil((l - s) / d);
      if (!(n < 1e12)) {
        if (n > 0) op_error("range of ", n, " elements is too large");
        return 0;
      }
      return n > 0 ? int64_t(n) : 0;
    }
    const int64_t s = int64_t(scalar_value(in[0], "start")), l = int64_t(scalar_value(in[1], "limit")),
                  d = int64_t(scalar_value(in[2], "delta"));
    if (in[0]->dtype == DType::int64) {  // exact for large int64 too
      const int64_t s8 = in[0]->ptr<int64_t>()[0], l8 = in[1]->ptr<int64_t>()[0],
                    d8 = in[2]->ptr<int64_t>()[0];
      if (d8 == 0) op_error("delta is 0");
      const __int128 diff = __int128(l8) - s8;
      __int128 q = diff / d8;
      if (q * d8 != diff && ((diff > 0) == (d8 > 0))) ++q;  // ceil
      return q > 0 ? int64_t(q) : 0;
    }
    if (d == 0) op_error("delta is 0");
    const int64_t diff = l - s;
    int64_t q = diff / d;
    if (q * d != diff && ((diff > 0) == (d > 0))) ++q;
    return q > 0 ? q : 0;
  }
};

}  // namespace

NE_REGISTER_OP("Reshape", ReshapeOp);
NE_REGISTER_OP("Flatten", FlattenOp);
NE_REGISTER_OP("Squeeze", SqueezeOp);
NE_REGISTER_OP("Unsqueeze", UnsqueezeOp);
NE_REGISTER_OP("Identity", IdentityOp);
NE_REGISTER_OP("Shape", ShapeOp);
NE_REGISTER_OP("ConstantOfShape", ConstantOfShapeOp);
NE_REGISTER_OP("Range", RangeOp);

}  // namespace generic
}  // namespace ne
