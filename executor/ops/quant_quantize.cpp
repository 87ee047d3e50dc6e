// Quantize / Dequantize (docs/OPS.md "Precision"): per-tensor ONNX QuantizeLinear /
// DequantizeLinear. Quantize: fp32 -> u8/s8, q = sat(nearbyint(x / scale) + zero_point) (round
// half to even). Dequantize: u8/s8/s32 -> fp32, (x − zero_point) · scale.
#include <omp.h>

#include <cmath>

#include "executor/operator.hpp"
#include "executor/ops/quant_common.hpp"

namespace ne {
namespace {

class QuantizeOp : public Operator {
 public:
  explicit QuantizeOp(const OpInfo& i) : Operator(i) {
    const std::string odt = i.attr("output_dtype", "u8");
    if (!parse_dtype(odt, &odt_) || (odt_ != DType::u8 && odt_ != DType::s8))
      op_error("output_dtype '", odt, "' must be u8 or s8");
    if (!i.has_attr("scale")) op_error("missing attribute 'scale'");
    scale_ = i.attr_float("scale", 1.f);
    if (!(scale_ > 0) || !std::isfinite(scale_)) op_error("scale ", scale_, " must be a positive finite number");
    zp_ = i.attr_int("zero_point", 0);
    const int64_t lo = odt_ == DType::u8 ? 0 : -128, hi = odt_ == DType::u8 ? 255 : 127;
    if (zp_ < lo || zp_ > hi) op_error("zero_point ", zp_, " out of range for ", dtype_name(odt_));
  }
  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    if (in[0]->dtype != DType::fp32) op_error("x '", in[0]->name, "' must be fp32, got ", dtype_name(in[0]->dtype));
    out[0]->dtype = odt_;
    out[0]->shape = in[0]->shape;
  }
  void forward(const TensorList& in, const TensorList& out) override {
    quant::quantize(in[0]->ptr<float>(), out[0]->data, in[0]->numel(), scale_, int(zp_), odt_ == DType::s8);
  }
  std::string kernel() const override { return quant::use_avx512() ? "quantize_avx512" : "quantize_portable"; }

 private:
  DType odt_ = DType::u8;
  float scale_ = 1.f;
  int64_t zp_ = 0;
};

class DequantizeOp : public Operator {
 public:
  explicit DequantizeOp(const OpInfo& i) : Operator(i) {
    if (!i.has_attr("scale")) op_error("missing attribute 'scale'");
    scale_ = i.attr_float("scale", 1.f);
    zp_ = i.attr_int("zero_point", 0);
  }
  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    const DType d = in[0]->dtype;
    if (d != DType::u8 && d != DType::s8 && d != DType::s32 && d != DType::int32)
      op_error("x '", in[0]->name, "' must be u8, s8 or s32, got ", dtype_name(d));
    out[0]->dtype = DType::fp32;
    out[0]->shape = in[0]->shape;
  }
  void forward(const TensorList& in, const TensorList& out) override {
    const int64_t n = in[0]->numel();
    float* y = out[0]->ptr<float>();
    switch (in[0]->dtype) {
      case DType::u8: run(in[0]->ptr<uint8_t>(), y, n); break;
      case DType::s8: run(in[0]->ptr<int8_t>(), y, n); break;
      default: run(in[0]->ptr<int32_t>(), y, n); break;
    }
  }

 private:
  template <class T>
  void run(const T* x, float* y, int64_t n) const {
    const float s = scale_;
    const int32_t zp = int32_t(zp_);
    // ONNX: (x − zp) computed in int32, then times scale in fp32.
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) y[i] = float(int32_t(x[i]) - zp) * s;
  }
  float scale_ = 1.f;
  int64_t zp_ = 0;
};

NE_REGISTER_OP("Quantize", QuantizeOp);
NE_REGISTER_OP("Dequantize", DequantizeOp);

}  // namespace
}  // namespace ne
