// BinaryAdd, BinaryOp, UnaryOp, Clip, Where, Cast against naive references (double precision
// for fp32 math). Tolerances: results are single fp32 operations or libm calls on fp32, so the
// reference (double, rounded to float) may differ by a few ulp: rel 1e-5 covers libm's <= 4 ulp.
#include <limits>

#include "harness.hpp"

using namespace ne_test;

namespace {

const std::vector<std::pair<Shape, Shape>> kBcastCases = {
    {{3, 77, 5}, {3, 77, 5}},        // same shape
    {{3, 77, 5}, {5}},               // bias-like trailing vector
    {{5}, {3, 77, 5}},               // and the other way round
    {{3, 4, 77, 77}, {3, 1, 1, 77}},  // attention mask
    {{3, 1, 7}, {1, 77, 1}},         // both broadcast
    {{}, {3, 7}},                    // rank-0 scalar
    {{3, 7}, {}},
    {{}, {}},
    {{3, 0, 5}, {5}},                // empty dim
    {{2, 3, 4, 5, 6}, {3, 1, 5, 1}},  // rank 5, interleaved
    {{1, 1, 1}, {7, 1, 1}},
};

double ref_bin(const std::string& alg, double a, double b) {
  if (alg == "add") return a + b;
  if (alg == "sub") return a - b;
  if (alg == "mul") return a * b;
  if (alg == "div") return a / b;
  if (alg == "pow") return std::pow(a, b);
  if (alg == "max") return std::max(a, b);
  if (alg == "min") return std::min(a, b);
  if (alg == "mod") return std::fmod(a, b);
  if (alg == "equal") return a == b;
  if (alg == "greater") return a > b;
  if (alg == "greater_equal") return a >= b;
  if (alg == "less") return a < b;
  if (alg == "less_equal") return a <= b;
  ADD_FAILURE() << alg;
  return 0;
}

bool is_cmp(const std::string& a) {
  return a == "equal" || a == "greater" || a == "greater_equal" || a == "less" || a == "less_equal";
}

}  // namespace

TEST(BinaryOp, Fp32AllAlgorithmsBroadcast) {
  const char* algs[] = {"add", "sub", "mul", "div", "pow", "max", "min", "mod",
                        "equal", "greater", "greater_equal", "less", "less_equal"};
  Rng rng(1234);
  SCOPED_TRACE("seed 1234");
  for (auto& c : kBcastCases) {
    for (const char* alg : algs) {
      SCOPED_TRACE(std::string(alg) + " " + sstr(c.first) + " vs " + sstr(c.second));
      auto av = rng.floats(numel(c.first), 0.5f, 3.f);  // positive: pow stays real
      auto bv = rng.floats(numel(c.second), 0.5f, 3.f);
      // Some equal values so comparisons see ties.
      for (size_t i = 0; i < bv.size() && i < av.size(); i += 3) bv[i] = av[i];
      HT out = run1("BinaryOp", {{"algorithm", alg}}, {f32(c.first, av), f32(c.second, bv)});
      Shape os = bshape(c.first, c.second);
      ASSERT_EQ(out.shape, os);
      const bool cmp = is_cmp(alg);
      ASSERT_EQ(out.dt, cmp ? DType::boolean : DType::fp32);
      const auto ob = out.vec<uint8_t>();
      const auto of = out.vec<float>();
      for (int64_t i = 0; i < numel(os); ++i) {
        auto idx = unravel(i, os);
        double r = ref_bin(alg, av[size_t(bcast_index(idx, c.first))], bv[size_t(bcast_index(idx, c.second))]);
        if (cmp) {
          ASSERT_EQ(ob[size_t(i)], uint8_t(r)) << "at " << i;
        } else {
          float got = of[size_t(i)];
          ASSERT_NEAR(got, r, 1e-5 * std::max(1.0, std::fabs(r))) << "at " << i;
        }
      }
    }
  }
}

TEST(BinaryOp, IntegerDivModTruncateLikeOnnx) {
  std::vector<int32_t> a = {7, -7, 7, -7, 0, 5, INT32_MIN, 9};
  std::vector<int32_t> b = {2, 2, -2, -2, 3, 0, -1, 3};
  auto div = run1("BinaryOp", {{"algorithm", "div"}},
                  {HT::make(DType::int32, {8}, a), HT::make(DType::int32, {8}, b)}).vec<int32_t>();
  EXPECT_EQ(div, (std::vector<int32_t>{3, -3, -3, 3, 0, 0, INT32_MIN, 3}));  // x/0 -> 0, MIN/-1 wraps
  auto mod = run1("BinaryOp", {{"algorithm", "mod"}},
                  {HT::make(DType::int32, {8}, a), HT::make(DType::int32, {8}, b)}).vec<int32_t>();
  EXPECT_EQ(mod, (std::vector<int32_t>{1, 1, -1, -1, 0, 0, 0, 0}));  // sign of divisor
  auto fmod = run1("BinaryOp", {{"algorithm", "mod"}, {"fmod", "1"}},
                   {HT::make(DType::int32, {8}, a), HT::make(DType::int32, {8}, b)}).vec<int32_t>();
  EXPECT_EQ(fmod, (std::vector<int32_t>{1, -1, 1, -1, 0, 0, 0, 0}));  // sign of dividend
  // ONNX test_mod_mixed_sign_int64 (fmod=0).
  std::vector<int64_t> x = {-4, 7, 5, 4, -7, 8}, y = {2, -3, 8, -2, 3, 5};
  auto m64 = run1("BinaryOp", {{"algorithm", "mod"}},
                  {HT::make(DType::int64, {6}, x), HT::make(DType::int64, {6}, y)}).vec<int64_t>();
  EXPECT_EQ(m64, (std::vector<int64_t>{0, -2, 5, 0, 2, 3}));
  // Float mod is fmod (ONNX reference): test_mod_mixed_sign_float32 with fmod=1.
  auto mf = run1("BinaryOp", {{"algorithm", "mod"}, {"fmod", "1"}},
                 {f32({6}, {-4.3f, 7.2f, 5.0f, 4.3f, -7.2f, 8.0f}),
                  f32({6}, {2.1f, -3.4f, 8.0f, -2.1f, 3.4f, 5.0f})}).vec<float>();
  const double ex[] = {-0.1, 0.4, 5., 0.1, -0.4, 3.};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(mf[size_t(i)], ex[i], 1e-5);
}

TEST(BinaryOp, IntegerTypesBroadcast) {
  Rng rng(77);
  SCOPED_TRACE("seed 77");
  Shape sa = {3, 1, 5}, sb = {4, 1};
  Shape os = bshape(sa, sb);
  auto a64 = rng.ints<int64_t>(numel(sa), -1000, 1000), b64 = rng.ints<int64_t>(numel(sb), 1, 50);
  auto a8 = rng.ints<int8_t>(numel(sa), -100, 100), b8 = rng.ints<int8_t>(numel(sb), -100, 100);
  auto au = rng.ints<uint8_t>(numel(sa), 0, 255), bu = rng.ints<uint8_t>(numel(sb), 1, 255);
  for (const char* alg : {"add", "sub", "mul", "div", "max", "min", "mod", "greater"}) {
    SCOPED_TRACE(alg);
    HT o64 = run1("BinaryOp", {{"algorithm", alg}},
                  {HT::make(DType::int64, sa, a64), HT::make(DType::int64, sb, b64)});
    HT o8 = run1("BinaryOp", {{"algorithm", alg}},
                 {HT::make(DType::s8, sa, a8), HT::make(DType::s8, sb, b8)});
    HT ou = run1("BinaryOp", {{"algorithm", alg}},
                 {HT::make(DType::u8, sa, au), HT::make(DType::u8, sb, bu)});
    const std::string s = alg;
    auto ref = [&](int64_t x, int64_t y) -> int64_t {
      if (s == "add") return x + y;
      if (s == "sub") return x - y;
      if (s == "mul") return x * y;
      if (s == "div") return y == 0 ? 0 : x / y;
      if (s == "max") return std::max(x, y);
      if (s == "min") return std::min(x, y);
      if (s == "greater") return x > y;
      if (y == 0) return 0;
      int64_t r = x % y;  // mod, fmod=0: sign of the divisor
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    };
    for (int64_t i = 0; i < numel(os); ++i) {
      auto idx = unravel(i, os);
      size_t ia = size_t(bcast_index(idx, sa)), ib = size_t(bcast_index(idx, sb));
      if (s == "greater") {
        ASSERT_EQ(o64.vec<uint8_t>()[size_t(i)], ref(a64[ia], b64[ib]));
        ASSERT_EQ(o8.vec<uint8_t>()[size_t(i)], ref(a8[ia], b8[ib]));
        ASSERT_EQ(ou.vec<uint8_t>()[size_t(i)], ref(au[ia], bu[ib]));
      } else {
        ASSERT_EQ(o64.vec<int64_t>()[size_t(i)], ref(a64[ia], b64[ib])) << i;
        ASSERT_EQ(o8.vec<int8_t>()[size_t(i)], int8_t(ref(a8[ia], b8[ib]))) << i;  // wraps
        ASSERT_EQ(ou.vec<uint8_t>()[size_t(i)], uint8_t(ref(au[ia], bu[ib]))) << i;
      }
    }
  }
}

TEST(BinaryOp, LogicAndBoolEqual) {
  std::vector<uint8_t> a = {0, 0, 1, 1}, b = {0, 1, 0, 1};
  auto run = [&](const char* alg) {
    return run1("BinaryOp", {{"algorithm", alg}},
                {HT::make(DType::boolean, {4}, a), HT::make(DType::boolean, {4}, b)}).vec<uint8_t>();
  };
  EXPECT_EQ(run("and"), (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(run("or"), (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(run("xor"), (std::vector<uint8_t>{0, 1, 1, 0}));
  EXPECT_EQ(run("equal"), (std::vector<uint8_t>{1, 0, 0, 1}));
  // Broadcast a [2,1] against [1,2].
  auto o = run_op("BinaryOp", {{"algorithm", "and"}},
                  {HT::make(DType::boolean, {2, 1}, std::vector<uint8_t>{0, 1}),
                   HT::make(DType::boolean, {1, 2}, std::vector<uint8_t>{1, 1})}).out[0];
  EXPECT_EQ(o.shape, (Shape{2, 2}));
  EXPECT_EQ(o.vec<uint8_t>(), (std::vector<uint8_t>{0, 0, 1, 1}));
}

TEST(BinaryOp, PowMixedTypes) {
  // ONNX test_pow_types_*: base type kept, exponent of another type.
  auto r1 = run1("BinaryOp", {{"algorithm", "pow"}},
                 {HT::make(DType::int32, {3}, std::vector<int32_t>{1, 2, 3}),
                  f32({3}, {4, 5, 6})}).vec<int32_t>();
  EXPECT_EQ(r1, (std::vector<int32_t>{1, 32, 729}));
  auto r2 = run1("BinaryOp", {{"algorithm", "pow"}},
                 {f32({3}, {1, 2, 3}), HT::make(DType::int64, {3}, std::vector<int64_t>{4, 5, 6})}).vec<float>();
  EXPECT_EQ(r2, (std::vector<float>{1, 32, 729}));
}

TEST(BinaryOp, NanPropagatesThroughMaxMin) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto mx = run1("BinaryOp", {{"algorithm", "max"}}, {f32({2}, {nan, 1}), f32({2}, {1, nan})}).vec<float>();
  EXPECT_TRUE(std::isnan(mx[0]) && std::isnan(mx[1]));
  auto mn = run1("BinaryOp", {{"algorithm", "min"}}, {f32({2}, {nan, 1}), f32({2}, {1, nan})}).vec<float>();
  EXPECT_TRUE(std::isnan(mn[0]) && std::isnan(mn[1]));
}

TEST(BinaryOp, Errors) {
  expect_error("BinaryOp", {{"algorithm", "add"}}, {f32({3, 4}, std::vector<float>(12)), f32({5}, std::vector<float>(5))},
               {"[3,4]", "[5]", "broadcast"});
  expect_error("BinaryOp", {{"algorithm", "frobnicate"}}, {f32({1}, {1}), f32({1}, {1})}, {"frobnicate", "add"});
  expect_error("BinaryOp", {{"algorithm", "add"}},
               {f32({1}, {1}), HT::make(DType::int32, {1}, std::vector<int32_t>{1})}, {"same dtype"});
  expect_error("BinaryOp", {{"algorithm", "and"}}, {f32({1}, {1}), f32({1}, {1})}, {"bool"});
}

// The fast paths named in generic_binary.cpp: a test fails if they silently stop running.
TEST(BinaryAdd, FastPathsRunAndMatch) {
  Rng rng(99);
  SCOPED_TRACE("seed 99");
  struct Case { Shape a, b; const char* kernel; };
  const Case cases[] = {
      {{3, 77, 129}, {3, 77, 129}, "flat"},
      {{3, 77, 129}, {129}, "rows"},
      {{3, 4, 77, 77}, {3, 1, 1, 77}, "rows"},
      {{3, 77, 1}, {3, 77, 129}, "rows_scalar"},
      {{3, 1, 7}, {1, 5, 1}, "rows_scalar"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(sstr(c.a) + " + " + sstr(c.b));
    auto av = rng.floats(numel(c.a)), bv = rng.floats(numel(c.b));
    auto r = run_op("BinaryAdd", {}, {f32(c.a, av), f32(c.b, bv)});
    EXPECT_EQ(r.kernel, c.kernel);
    Shape os = bshape(c.a, c.b);
    ASSERT_EQ(r.out[0].shape, os);
    auto o = r.out[0].vec<float>();
    for (int64_t i = 0; i < numel(os); ++i) {
      auto idx = unravel(i, os);
      float e = av[size_t(bcast_index(idx, c.a))] + bv[size_t(bcast_index(idx, c.b))];
      ASSERT_EQ(o[size_t(i)], e) << i;  // one fp32 add: exact
    }
  }
}

TEST(BinaryAdd, ThreeInputsAndInt) {
  Rng rng(5);
  SCOPED_TRACE("seed 5");
  Shape sa = {3, 77, 33}, sb = {33}, sc = {3, 77, 33};
  auto a = rng.floats(numel(sa)), b = rng.floats(numel(sb)), c = rng.floats(numel(sc));
  auto r = run_op("BinaryAdd", {}, {f32(sa, a), f32(sb, b), f32(sc, c)});
  EXPECT_EQ(r.kernel, "rows3");
  auto o = r.out[0].vec<float>();
  for (int64_t i = 0; i < numel(sa); ++i)
    ASSERT_EQ(o[size_t(i)], (a[size_t(i)] + b[size_t(i % 33)]) + c[size_t(i)]);
  auto o3 = run1("BinaryAdd", {}, {f32({2, 1}, {1, 2}), f32({1, 3}, {10, 20, 30}), f32({}, {100})});
  EXPECT_EQ(o3.shape, (Shape{2, 3}));
  EXPECT_EQ(o3.vec<float>(), (std::vector<float>{111, 121, 131, 112, 122, 132}));
  auto oi = run1("BinaryAdd", {}, {HT::make(DType::int64, {2}, std::vector<int64_t>{1, INT64_MAX}),
                                   HT::make(DType::int64, {}, std::vector<int64_t>{1})});
  EXPECT_EQ(oi.vec<int64_t>(), (std::vector<int64_t>{2, INT64_MIN}));
  expect_error("BinaryAdd", {}, {f32({3}, {1, 2, 3}), f32({4}, {1, 2, 3, 4})}, {"broadcast"});
}

// ---------------------------------------------------------------- UnaryOp
TEST(UnaryOp, AllAlgorithmsFp32) {
  struct U { const char* alg; double (*f)(double); float lo, hi; };
  const U algs[] = {
      {"sqrt", [](double x) { return std::sqrt(x); }, 0, 9},
      {"exp", [](double x) { return std::exp(x); }, -5, 5},
      {"log", [](double x) { return std::log(x); }, 0.01f, 9},
      {"erf", [](double x) { return std::erf(x); }, -3, 3},
      {"tanh", [](double x) { return std::tanh(x); }, -5, 5},
      {"relu", [](double x) { return x > 0 ? x : 0.0; }, -3, 3},
      {"sigmoid", [](double x) { return 1 / (1 + std::exp(-x)); }, -20, 20},
      {"neg", [](double x) { return -x; }, -3, 3},
      {"abs", [](double x) { return std::fabs(x); }, -3, 3},
      {"reciprocal", [](double x) { return 1 / x; }, 0.1f, 3},
      {"floor", [](double x) { return std::floor(x); }, -3, 3},
      {"ceil", [](double x) { return std::ceil(x); }, -3, 3},
      {"round", [](double x) { return std::nearbyint(x); }, -3, 3},
      {"sin", [](double x) { return std::sin(x); }, -3, 3},
      {"cos", [](double x) { return std::cos(x); }, -3, 3},
      {"sign", [](double x) { return double((x > 0) - (x < 0)); }, -3, 3},
      {"softplus", [](double x) { return std::log(1 + std::exp(x)); }, -20, 20},
      {"leaky_relu", [](double x) { return x >= 0 ? x : 0.01 * x; }, -3, 3},
      {"elu", [](double x) { return x >= 0 ? x : std::exp(x) - 1; }, -3, 3},
      {"hard_sigmoid", [](double x) { return std::max(0.0, std::min(1.0, 0.2 * x + 0.5)); }, -4, 4},
      {"selu", [](double x) { return x > 0 ? 1.0507009873554805 * x : 1.0507009873554805 * 1.6732632423543772 * (std::exp(x) - 1); }, -3, 3},
      {"softsign", [](double x) { return x / (1 + std::fabs(x)); }, -3, 3},
  };
  Rng rng(2024);
  SCOPED_TRACE("seed 2024");
  Shape s = {3, 77, 5};
  for (auto& u : algs) {
    SCOPED_TRACE(u.alg);
    auto x = rng.floats(numel(s), u.lo, u.hi);
    if (std::string(u.alg) == "round") x[0] = 2.5f, x[1] = -2.5f, x[2] = 1.5f, x[3] = 0.5f;
    auto r = run_op("UnaryOp", {{"algorithm", u.alg}}, {f32(s, x)});
    ASSERT_EQ(r.out[0].shape, s);
    auto y = r.out[0].vec<float>();
    for (size_t i = 0; i < y.size(); ++i) {
      double e = u.f(double(x[i]));
      ASSERT_NEAR(y[i], e, 1e-5 * std::max(1.0, std::fabs(e)) + 1e-7) << "x=" << x[i];
    }
    if (std::string(u.alg) == "round") {  // halves to even
      EXPECT_EQ(y[0], 2.f);
      EXPECT_EQ(y[1], -2.f);
      EXPECT_EQ(y[2], 2.f);
      EXPECT_EQ(y[3], 0.f);
    }
  }
}

TEST(UnaryOp, AlphaBetaIntAndNot) {
  auto y = run1("UnaryOp", {{"algorithm", "leaky_relu"}, {"alpha", "0.5"}}, {f32({2}, {-2, 3})}).vec<float>();
  EXPECT_EQ(y, (std::vector<float>{-1, 3}));
  y = run1("UnaryOp", {{"algorithm", "hard_sigmoid"}, {"alpha", "0.5"}, {"beta", "0.6"}}, {f32({3}, {-1, 0, 1})}).vec<float>();
  EXPECT_NEAR(y[0], 0.1, 1e-6);
  EXPECT_NEAR(y[1], 0.6, 1e-6);
  EXPECT_NEAR(y[2], 1.0, 1e-6);
  auto yi = run1("UnaryOp", {{"algorithm", "abs"}}, {HT::make(DType::int32, {3}, std::vector<int32_t>{-5, 0, 7})}).vec<int32_t>();
  EXPECT_EQ(yi, (std::vector<int32_t>{5, 0, 7}));
  auto yr = run1("UnaryOp", {{"algorithm", "relu"}}, {HT::make(DType::int64, {2}, std::vector<int64_t>{-5, 7})}).vec<int64_t>();
  EXPECT_EQ(yr, (std::vector<int64_t>{0, 7}));
  auto yn = run1("UnaryOp", {{"algorithm", "not"}}, {HT::make(DType::boolean, {2}, std::vector<uint8_t>{0, 1})}).vec<uint8_t>();
  EXPECT_EQ(yn, (std::vector<uint8_t>{1, 0}));
  auto ys = run1("UnaryOp", {{"algorithm", "exp"}}, {f32({}, {0})});  // rank 0
  EXPECT_EQ(ys.shape, Shape{});
  EXPECT_EQ(ys.vec<float>(), std::vector<float>{1});
  auto ye = run1("UnaryOp", {{"algorithm", "exp"}}, {f32({0, 3}, {})});
  EXPECT_EQ(ye.shape, (Shape{0, 3}));
  // Large inputs: no overflow to inf/NaN in the stable forms.
  y = run1("UnaryOp", {{"algorithm", "softplus"}}, {f32({2}, {100, -100})}).vec<float>();
  EXPECT_NEAR(y[0], 100, 1e-4);
  EXPECT_NEAR(y[1], 0, 1e-30);
  y = run1("UnaryOp", {{"algorithm", "sigmoid"}}, {f32({2}, {-100, 100})}).vec<float>();
  EXPECT_NEAR(y[0], 0.f, 1e-30);  // e^-100 is a denormal in fp32
  EXPECT_EQ(y[1], 1.f);
  expect_error("UnaryOp", {{"algorithm", "sqrt"}}, {HT::make(DType::int32, {1}, std::vector<int32_t>{4})}, {"fp32"});
  expect_error("UnaryOp", {{"algorithm", "nope"}}, {f32({1}, {1})}, {"nope"});
}

TEST(Clip, InputsAttrsAndDtypes) {
  auto y = run1("Clip", {}, {f32({5}, {-3, -1, 0, 1, 3}), f32({}, {-1}), f32({}, {2})}).vec<float>();
  EXPECT_EQ(y, (std::vector<float>{-1, -1, 0, 1, 2}));
  y = run1("Clip", {}, {f32({3}, {-3, 0, 3}), HT::none(), f32({}, {1})}).vec<float>();  // max only
  EXPECT_EQ(y, (std::vector<float>{-3, 0, 1}));
  y = run1("Clip", {{"min", "-0.5"}, {"max", "0.5"}}, {f32({3}, {-3, 0.25f, 3})}).vec<float>();
  EXPECT_EQ(y, (std::vector<float>{-0.5f, 0.25f, 0.5f}));
  y = run1("Clip", {}, {f32({2}, {-3, 3})}).vec<float>();  // no bounds: identity
  EXPECT_EQ(y, (std::vector<float>{-3, 3}));
  y = run1("Clip", {}, {f32({2}, {-3, 3}), f32({}, {2}), f32({}, {1})}).vec<float>();  // min > max -> max
  EXPECT_EQ(y, (std::vector<float>{1, 1}));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  y = run1("Clip", {}, {f32({2}, {nan, 5}), f32({}, {0}), f32({}, {1})}).vec<float>();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 1.f);
  auto y8 = run1("Clip", {}, {HT::make(DType::s8, {3}, std::vector<int8_t>{-128, 0, 127}),
                              HT::make(DType::s8, {}, std::vector<int8_t>{-5}), HT::none()}).vec<int8_t>();
  EXPECT_EQ(y8, (std::vector<int8_t>{-5, 0, 127}));
  auto yi = run1("Clip", {}, {HT::make(DType::int64, {3}, std::vector<int64_t>{-9, 5, 9}),
                              HT::make(DType::int64, {}, std::vector<int64_t>{-2}),
                              HT::make(DType::int64, {}, std::vector<int64_t>{6})}).vec<int64_t>();
  EXPECT_EQ(yi, (std::vector<int64_t>{-2, 5, 6}));
}

TEST(Where, BroadcastAllDtypes) {
  Rng rng(31);
  SCOPED_TRACE("seed 31");
  Shape sc = {3, 1, 77}, sx = {4, 1}, sy = {3, 4, 77};
  auto c = rng.ints<uint8_t>(numel(sc), 0, 1);
  auto x = rng.floats(numel(sx)), y = rng.floats(numel(sy));
  auto r = run1("Where", {}, {HT::make(DType::boolean, sc, c), f32(sx, x), f32(sy, y)});
  Shape os = bshape(bshape(sc, sx), sy);
  ASSERT_EQ(r.shape, os);
  auto o = r.vec<float>();
  for (int64_t i = 0; i < numel(os); ++i) {
    auto idx = unravel(i, os);
    float e = c[size_t(bcast_index(idx, sc))] ? x[size_t(bcast_index(idx, sx))] : y[size_t(bcast_index(idx, sy))];
    ASSERT_EQ(o[size_t(i)], e);
  }
  auto ri = run1("Where", {}, {HT::make(DType::boolean, {2}, std::vector<uint8_t>{1, 0}),
                               HT::make(DType::int64, {2}, std::vector<int64_t>{1, 2}),
                               HT::make(DType::int64, {}, std::vector<int64_t>{-7})}).vec<int64_t>();
  EXPECT_EQ(ri, (std::vector<int64_t>{1, -7}));
  auto rb = run1("Where", {}, {HT::make(DType::boolean, {2, 1}, std::vector<uint8_t>{1, 0}),
                               HT::make(DType::boolean, {1, 2}, std::vector<uint8_t>{1, 0}),
                               HT::make(DType::boolean, {}, std::vector<uint8_t>{1})});
  EXPECT_EQ(rb.shape, (Shape{2, 2}));
  EXPECT_EQ(rb.vec<uint8_t>(), (std::vector<uint8_t>{1, 0, 1, 1}));
  expect_error("Where", {}, {f32({1}, {1}), f32({1}, {1}), f32({1}, {1})}, {"bool"});
  expect_error("Where", {}, {HT::make(DType::boolean, {2}, std::vector<uint8_t>{1, 0}), f32({3}, {1, 2, 3}), f32({1}, {1})},
               {"broadcast"});
}

TEST(Cast, OnnxRounding) {
  std::vector<float> x = {-2.7f, -0.5f, 0.f, 0.5f, 2.7f, 300.f, -300.f, 1e10f};
  auto toi = run1("Cast", {{"to", "int32"}}, {f32({8}, x)}).vec<int32_t>();
  EXPECT_EQ(toi, (std::vector<int32_t>{-2, 0, 0, 0, 2, 300, -300, INT32_MAX}));  // trunc, saturate
  auto to8 = run1("Cast", {{"to", "s8"}}, {f32({8}, x)}).vec<int8_t>();
  EXPECT_EQ(to8, (std::vector<int8_t>{-2, 0, 0, 0, 2, 127, -128, 127}));
  auto tob = run1("Cast", {{"to", "bool"}}, {f32({8}, x)}).vec<uint8_t>();
  EXPECT_EQ(tob, (std::vector<uint8_t>{1, 1, 0, 1, 1, 1, 1, 1}));
  auto t64 = run1("Cast", {{"to", "int64"}}, {f32({2}, {-1.5f, 3.99f})}).vec<int64_t>();
  EXPECT_EQ(t64, (std::vector<int64_t>{-1, 3}));
  auto tf = run1("Cast", {{"to", "fp32"}}, {HT::make(DType::int64, {3}, std::vector<int64_t>{-3, 0, 16777217})}).vec<float>();
  EXPECT_EQ(tf, (std::vector<float>{-3.f, 0.f, 16777216.f}));
  auto bf = run1("Cast", {{"to", "bool"}}, {HT::make(DType::int32, {3}, std::vector<int32_t>{0, 5, -1})}).vec<uint8_t>();
  EXPECT_EQ(bf, (std::vector<uint8_t>{0, 1, 1}));
  auto fb = run1("Cast", {{"to", "fp32"}}, {HT::make(DType::boolean, {2}, std::vector<uint8_t>{1, 0})}).vec<float>();
  EXPECT_EQ(fb, (std::vector<float>{1, 0}));
  auto w8 = run1("Cast", {{"to", "u8"}}, {HT::make(DType::int32, {2}, std::vector<int32_t>{257, -1})}).vec<uint8_t>();
  EXPECT_EQ(w8, (std::vector<uint8_t>{1, 255}));  // integers wrap
  // fp32 -> bf16 / fp16 -> fp32 round trip on exactly representable values.
  std::vector<float> v = {1.f, -2.5f, 0.f, 65504.f, 0.25f};
  HT h = run1("Cast", {{"to", "fp16"}}, {f32({5}, v)});
  EXPECT_EQ(h.dt, DType::fp16);
  EXPECT_EQ(run1("Cast", {{"to", "fp32"}}, {h}).vec<float>(), v);
  HT b = run1("Cast", {{"to", "bf16"}}, {f32({5}, {1.f, -2.5f, 0.f, 65536.f, 0.25f})});
  EXPECT_EQ(run1("Cast", {{"to", "int32"}}, {b}).vec<int32_t>(), (std::vector<int32_t>{1, -2, 0, 65536, 0}));
  expect_error("Cast", {{"to", "complex128"}}, {f32({1}, {1})}, {"complex128"});
}
