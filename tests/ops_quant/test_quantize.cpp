// Quantize / Dequantize (ONNX QuantizeLinear / DequantizeLinear, exact) and the quant helpers
// (dynamic parameters, min/max, bf16 rounding) against the portable path and ONNX's formulas.
#include "quant_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "executor/operator.hpp"
#include "executor/ops/ip_candidates.hpp"
#include "executor/ops/quant_common.hpp"
#include <dnnl.hpp>

#include "kernels/cpu_features.hpp"
#include "kernels/sparse_gemm/sparse_gemm.hpp"

using namespace quant_ops_test;

namespace {

TEST(Quantize, HalfToEvenAndSaturation) {
  for (bool portable : {false, true}) {
    ne::quant::force_portable(portable);
    SCOPED_TRACE(portable ? "portable" : "detected ISA");
    // scale 1: halves go to even; then + zp; saturation both ends.
    std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49999f, 1000.f, -1000.f, 127.5f, 0.f, -0.f};
    {
      Runner r(info("Quantize", 1, {{"output_dtype", "u8"}, {"scale", "1"}, {"zero_point", "10"}}));
      Arg a = make(DType::fp32, {int64_t(x.size())}, x);
      r.init({&a});
      auto o = r.run({&a});
      ASSERT_EQ(r.out.dtype, DType::u8);
      std::vector<uint8_t> want = {10, 12, 12, 10, 8, 8, 13, 255, 0, 138, 10, 10};
      EXPECT_EQ(o, want);
    }
    {
      Runner r(info("Quantize", 1, {{"output_dtype", "s8"}, {"scale", "1"}, {"zero_point", "-3"}}));
      Arg a = make(DType::fp32, {int64_t(x.size())}, x);
      r.init({&a});
      auto o = r.run({&a});
      ASSERT_EQ(r.out.dtype, DType::s8);
      std::vector<int8_t> want = {-3, -1, -1, -3, -5, -5, 0, 127, -128, 125, -3, -3};
      for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(int8_t(o[i]), want[i]) << i;
    }
    // Random data of an awkward length (vector tails, several threads' chunks) vs the reference.
    for (std::string dt : {"u8", "s8"}) {
      const int64_t n = 100003;
      std::mt19937 g(77);
      std::uniform_real_distribution<float> d(-3.f, 3.f);
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& e : v) e = d(g);
      for (int64_t i = 0; i < 1000; ++i) v[size_t(i)] = float(i - 500) * 0.0125f;  // exact halves of 0.025
      const float s = 0.025f;
      const int zp = dt == "u8" ? 128 : 0;
      Runner r(info("Quantize", 1, {{"output_dtype", dt}, {"scale", "0.025"}, {"zero_point", std::to_string(zp)}}));
      Arg a = make(DType::fp32, {n}, v);
      r.init({&a});
      auto o = r.run({&a});
      for (int64_t i = 0; i < n; ++i) {
        int want = dt == "u8" ? ref_q(v[size_t(i)], s, zp, 0, 255) : ref_q(v[size_t(i)], s, zp, -128, 127);
        int got = dt == "u8" ? int(o[size_t(i)]) : int(int8_t(o[size_t(i)]));
        ASSERT_EQ(got, want) << dt << " at " << i << " x=" << v[size_t(i)];
      }
    }
  }
  ne::quant::force_portable(false);
}

// Values a few ulp around every half step, for awkward scales: the AVX-512 body multiplies by
// 1/scale and must still round exactly as fl(x / scale) does (ONNX), near the halves included.
TEST(Quantize, NearHalfStepsMatchTheDivision) {
  for (bool portable : {false, true}) {
    ne::quant::force_portable(portable);
    for (float s : {0.025f, 4.f / 255.f, 0.0173f, 3.3e-3f, 7.1f, 1e-30f, 3e30f}) {
      SCOPED_TRACE(std::string(portable ? "portable" : "detected ISA") + " scale " + std::to_string(s));
      std::vector<float> x;
      for (int k = -300; k <= 300; ++k) {
        float h = (float(k) + 0.5f) * s;
        float lo = h, hi = h;
        for (int j = 0; j < 4; ++j) lo = std::nextafter(lo, -INFINITY), hi = std::nextafter(hi, INFINITY);
        for (float v = lo; v <= hi; v = std::nextafter(v, INFINITY)) x.push_back(v);
      }
      for (bool sg : {false, true}) {
        const int zp = sg ? 0 : 100;
        std::vector<uint8_t> q(x.size());
        ne::quant::quantize(x.data(), q.data(), int64_t(x.size()), s, zp, sg);
        for (size_t i = 0; i < x.size(); ++i) {
          int want = ref_q(x[i], s, zp, sg ? -128 : 0, sg ? 127 : 255);
          int got = sg ? int(int8_t(q[i])) : int(q[i]);
          ASSERT_EQ(got, want) << "x=" << x[i] << " x/s=" << x[i] / s << (sg ? " s8" : " u8");
        }
      }
    }
  }
  ne::quant::force_portable(false);
}

TEST(Quantize, BadAttributes) {
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "u8"}})), ne::Error);
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "fp32"}, {"scale", "1"}})), ne::Error);
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "u8"}, {"scale", "-1"}})), ne::Error);
  EXPECT_THROW(ne::create_op(info("Quantize", 1, {{"output_dtype", "s8"}, {"scale", "1"}, {"zero_point", "200"}})),
               ne::Error);
}

TEST(Dequantize, OnnxSemantics) {
  {
    std::vector<uint8_t> x = {0, 1, 128, 255};
    Runner r(info("Dequantize", 1, {{"scale", "0.5"}, {"zero_point", "128"}}));
    Arg a = make(DType::u8, {4}, x);
    r.init({&a});
    auto o = r.run({&a});
    ASSERT_EQ(r.out.dtype, DType::fp32);
    const float* f = reinterpret_cast<const float*>(o.data());
    EXPECT_EQ(std::vector<float>(f, f + 4), (std::vector<float>{-64.f, -63.5f, 0.f, 63.5f}));
  }
  {
    std::vector<int8_t> x = {-128, -1, 0, 127};
    Runner r(info("Dequantize", 1, {{"scale", "0.25"}, {"zero_point", "-1"}}));
    Arg a = make(DType::s8, {2, 2}, x);
    r.init({&a});
    auto o = r.run({&a});
    const float* f = reinterpret_cast<const float*>(o.data());
    EXPECT_EQ(std::vector<float>(f, f + 4), (std::vector<float>{-31.75f, 0.f, 0.25f, 32.f}));
    EXPECT_EQ(r.out.shape, (Shape{2, 2}));
  }
  {
    std::vector<int32_t> x = {-1000000, 0, 7, 2147483000};
    Runner r(info("Dequantize", 1, {{"scale", "0.001"}}));
    Arg a = make(DType::s32, {4}, x);
    r.init({&a});
    auto o = r.run({&a});
    const float* f = reinterpret_cast<const float*>(o.data());
    for (int i = 0; i < 4; ++i) EXPECT_EQ(f[i], float(x[size_t(i)]) * 0.001f) << i;
  }
}

TEST(QuantHelpers, DynamicParamsFollowDynamicQuantizeLinear) {
  float s;
  int zp;
  ne::quant::dynamic_qparams(-1.f, 3.f, false, &s, &zp);
  EXPECT_FLOAT_EQ(s, 4.f / 255.f);
  EXPECT_EQ(zp, 64);  // nearbyint(63.75)
  ne::quant::dynamic_qparams(0.5f, 2.f, false, &s, &zp);  // widened to include 0
  EXPECT_FLOAT_EQ(s, 2.f / 255.f);
  EXPECT_EQ(zp, 0);
  ne::quant::dynamic_qparams(-4.f, -1.f, false, &s, &zp);
  EXPECT_EQ(zp, 255);
  ne::quant::dynamic_qparams(-1.f, 3.f, true, &s, &zp);
  EXPECT_FLOAT_EQ(s, 3.f / 127.f);
  EXPECT_EQ(zp, 0);
  ne::quant::dynamic_qparams(0.f, 0.f, false, &s, &zp);
  EXPECT_EQ(s, 1.f);
  EXPECT_EQ(zp, 0);
}

TEST(QuantHelpers, MinMaxAndBf16MatchPortable) {
  const int64_t n = 70001;
  std::mt19937 g(5);
  std::uniform_real_distribution<float> d(-10.f, 10.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = d(g);
  v[12345] = -11.f;
  v[n - 1] = 12.f;
  for (bool portable : {false, true}) {
    ne::quant::force_portable(portable);
    float mn, mx;
    ne::quant::minmax(v.data(), n, &mn, &mx);
    EXPECT_EQ(mn, -11.f);
    EXPECT_EQ(mx, 12.f);
    std::vector<uint16_t> b(static_cast<size_t>(n));
    ne::quant::to_bf16(v.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[size_t(i)], ref_bf16(v[size_t(i)])) << i;
  }
  ne::quant::force_portable(false);
}

}  // namespace
