// Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity), Shape, ConstantOfShape, Range, the
// Reduce family and ArgMax/ArgMin. Reductions are checked against a double-precision reference;
// the op accumulates fp32 in double too, so the only difference is the final rounding to fp32
// (rel 1e-6), plus libm's few ulp for sqrt/log/exp (rel 1e-5).
#include <algorithm>
#include <limits>

#include "harness.hpp"

using namespace ne_test;

namespace {
std::vector<float> iota_f(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return v;
}
}  // namespace

TEST(Views, ReshapeOnnxRules) {
  auto x = iota_f(3 * 77 * 4);
  Shape s = {3, 77, 4};
  auto r = run_op("Reshape", {}, {f32(s, x), i64c({0, -1, 2, 2})});
  EXPECT_TRUE(r.view);
  EXPECT_EQ(r.out[0].shape, (Shape{3, 77, 2, 2}));
  EXPECT_EQ(r.out[0].vec<float>(), x);
  EXPECT_EQ(run1("Reshape", {{"dst_shape", "-1"}}, {f32(s, x)}).shape, (Shape{3 * 77 * 4}));
}

TEST(Views, ReshapeEdgeCases) {
  // Rank-0 result, allowzero, empty tensors.
  EXPECT_EQ(run1("Reshape", {}, {f32({1, 1}, {5}), i64c({})}).shape, Shape{});
  EXPECT_EQ(run1("Reshape", {{"allowzero", "1"}}, {f32({0, 3}, {}), i64c({3, 0})}).shape, (Shape{3, 0}));
  EXPECT_EQ(run1("Reshape", {}, {f32({0, 3}, {}), i64c({0, 3})}).shape, (Shape{0, 3}));
  EXPECT_EQ(run1("Reshape", {}, {f32({2, 3}, iota_f(6)), i64c({0, 0})}).shape, (Shape{2, 3}));
  expect_error("Reshape", {}, {f32({2, 3}, iota_f(6)), i64c({-1, -1})}, {"more than one -1"});
  expect_error("Reshape", {}, {f32({2, 3}, iota_f(6)), i64c({4, 2})}, {"8 elements", "6"});
  expect_error("Reshape", {}, {f32({2, 3}, iota_f(6)), i64c({-1, 4})}, {"cannot infer"});
  expect_error("Reshape", {{"allowzero", "1"}}, {f32({2, 3}, iota_f(6)), i64c({0, -1})}, {"allowzero"});
  HT ns = i64c({6});
  ns.is_const = false;
  expect_error("Reshape", {}, {f32({2, 3}, iota_f(6)), ns}, {"shape input 'in1' must be constant"});
}

TEST(Views, FlattenSqueezeUnsqueezeIdentity) {
  auto x = iota_f(2 * 3 * 4 * 5);
  Shape s = {2, 3, 4, 5};
  auto f = run_op("Flatten", {{"axis", "2"}}, {f32(s, x)});
  EXPECT_TRUE(f.view);
  EXPECT_EQ(f.out[0].shape, (Shape{6, 20}));
  EXPECT_EQ(run1("Flatten", {{"axis", "0"}}, {f32(s, x)}).shape, (Shape{1, 120}));
  EXPECT_EQ(run1("Flatten", {{"axis", "-1"}}, {f32(s, x)}).shape, (Shape{24, 5}));
  EXPECT_EQ(run1("Flatten", {{"axis", "4"}}, {f32(s, x)}).shape, (Shape{120, 1}));
  EXPECT_EQ(run1("Flatten", {}, {f32(s, x)}).shape, (Shape{2, 60}));
  expect_error("Flatten", {{"axis", "5"}}, {f32(s, x)}, {"axis 5"});

  Shape s1 = {1, 3, 1, 5, 1};
  auto x1 = iota_f(15);
  auto q = run_op("Squeeze", {}, {f32(s1, x1)});
  EXPECT_TRUE(q.view);
  EXPECT_EQ(q.out[0].shape, (Shape{3, 5}));
  EXPECT_EQ(run1("Squeeze", {}, {f32(s1, x1), i64c({0, -1})}).shape, (Shape{3, 1, 5}));
  EXPECT_EQ(run1("Squeeze", {{"axes", "2"}}, {f32(s1, x1)}).shape, (Shape{1, 3, 5, 1}));
  EXPECT_EQ(run1("Squeeze", {}, {f32({1}, {3})}).shape, Shape{});
  expect_error("Squeeze", {}, {f32(s1, x1), i64c({1})}, {"cannot squeeze axis 1", "expected 1"});

  auto u = run_op("Unsqueeze", {}, {f32({3, 5}, x1), i64c({0, -1})});
  EXPECT_TRUE(u.view);
  EXPECT_EQ(u.out[0].shape, (Shape{1, 3, 5, 1}));
  EXPECT_EQ(run1("Unsqueeze", {{"axes", "1,3"}}, {f32({3, 5}, x1)}).shape, (Shape{3, 1, 5, 1}));
  EXPECT_EQ(run1("Unsqueeze", {}, {f32({}, {1}), i64c({0})}).shape, (Shape{1}));
  // ONNX test_unsqueeze_unsorted_axes: [3,4,5] axes 5,4,2 -> [3,4,1,5,1,1]
  EXPECT_EQ(run1("Unsqueeze", {}, {f32({3, 4, 5}, iota_f(60)), i64c({5, 4, 2})}).shape, (Shape{3, 4, 1, 5, 1, 1}));
  expect_error("Unsqueeze", {}, {f32({3, 5}, x1), i64c({0, 0})}, {"twice"});
  expect_error("Unsqueeze", {}, {f32({3, 5}, x1), i64c({3})}, {"out of range"});

  auto id = run_op("Identity", {}, {HT::make(DType::int64, {2}, std::vector<int64_t>{1, 2})});
  EXPECT_TRUE(id.view);
  EXPECT_EQ(id.out[0].vec<int64_t>(), (std::vector<int64_t>{1, 2}));
}

TEST(ShapeOps, ShapeConstantOfShapeRange) {
  Shape s = {3, 77, 0, 5};
  auto sh = run_op("Shape", {}, {f32(s, {})});
  EXPECT_EQ(sh.out[0].dt, DType::int64);
  EXPECT_EQ(sh.out[0].vec<int64_t>(), (std::vector<int64_t>{3, 77, 0, 5}));
  EXPECT_EQ(run1("Shape", {{"start", "1"}, {"end", "-1"}}, {f32(s, {})}).vec<int64_t>(), (std::vector<int64_t>{77, 0}));
  EXPECT_EQ(run1("Shape", {{"start", "-10"}, {"end", "10"}}, {f32(s, {})}).vec<int64_t>().size(), 4u);
  EXPECT_EQ(run1("Shape", {{"start", "3"}, {"end", "1"}}, {f32(s, {})}).shape, (Shape{0}));
  EXPECT_EQ(run1("Shape", {}, {f32({}, {1})}).shape, (Shape{0}));

  auto c = run1("ConstantOfShape", {}, {i64c({2, 3})});
  EXPECT_EQ(c.dt, DType::fp32);
  EXPECT_EQ(c.vec<float>(), std::vector<float>(6, 0.f));
  auto c2 = run1("ConstantOfShape", {{"value", "9007199254740993"}, {"dtype", "int64"}}, {i64c({2})});
  EXPECT_EQ(c2.vec<int64_t>(), (std::vector<int64_t>(2, 9007199254740993LL)));  // exact beyond 2^53
  auto c3 = run1("ConstantOfShape", {{"value", "1.5"}}, {i64c({0})});
  EXPECT_EQ(c3.shape, (Shape{0}));
  auto c4 = run1("ConstantOfShape", {{"value", "1"}, {"dtype", "bool"}}, {i64c({})});
  EXPECT_EQ(c4.shape, Shape{});
  EXPECT_EQ(c4.vec<uint8_t>(), std::vector<uint8_t>{1});

  auto sc = [](DType t, double v) {
    if (t == DType::fp32) return HT::make(DType::fp32, {}, std::vector<float>{float(v)}, true);
    if (t == DType::int32) return HT::make(DType::int32, {}, std::vector<int32_t>{int32_t(v)}, true);
    return HT::make(DType::int64, {}, std::vector<int64_t>{int64_t(v)}, true);
  };
  EXPECT_EQ(run1("Range", {}, {sc(DType::int32, 3), sc(DType::int32, 9), sc(DType::int32, 3)}).vec<int32_t>(),
            (std::vector<int32_t>{3, 6}));
  EXPECT_EQ(run1("Range", {}, {sc(DType::int64, 10), sc(DType::int64, 4), sc(DType::int64, -2)}).vec<int64_t>(),
            (std::vector<int64_t>{10, 8, 6}));
  EXPECT_EQ(run1("Range", {}, {sc(DType::int64, 10), sc(DType::int64, 4), sc(DType::int64, 2)}).shape, (Shape{0}));
  EXPECT_EQ(run1("Range", {}, {sc(DType::fp32, 1), sc(DType::fp32, 2), sc(DType::fp32, 0.25)}).vec<float>(),
            (std::vector<float>{1, 1.25f, 1.5f, 1.75f}));
  expect_error("Range", {}, {sc(DType::int64, 1), sc(DType::int64, 2), sc(DType::int64, 0)}, {"delta is 0"});
}

// ---------------------------------------------------------------- Reduce
namespace {
double ref_reduce(const std::string& k, const std::vector<double>& v) {
  double a;
  if (k == "ReduceSum" || k == "ReduceMean") {
    a = 0;
    for (double x : v) a += x;
    return k == "ReduceMean" ? a / double(v.size()) : a;
  }
  if (k == "ReduceProd") { a = 1; for (double x : v) a *= x; return a; }
  if (k == "ReduceMax") { a = -INFINITY; for (double x : v) a = std::max(a, x); return a; }
  if (k == "ReduceMin") { a = INFINITY; for (double x : v) a = std::min(a, x); return a; }
  if (k == "ReduceL1") { a = 0; for (double x : v) a += std::fabs(x); return a; }
  if (k == "ReduceSumSquare" || k == "ReduceL2") {
    a = 0;
    for (double x : v) a += x * x;
    return k == "ReduceL2" ? std::sqrt(a) : a;
  }
  if (k == "ReduceLogSum") { a = 0; for (double x : v) a += x; return std::log(a); }
  // LogSumExp
  a = 0;
  for (double x : v) a += std::exp(x);
  return std::log(a);
}
}  // namespace

TEST(Reduce, AllKindsAxesKeepdims) {
  const char* kinds[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                         "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"};
  struct C { std::vector<int64_t> axes; const char* path; };
  const C cases[] = {{{-1}, "trailing"}, {{1}, "middle"}, {{0, 2}, "general"}, {{1, 2}, "middle"}, {{2, 3}, "trailing"},
                     {{0}, "middle"},   {{}, "trailing"},  {{0, 1, 2, 3}, "trailing"}, {{1, 3}, "general"}};
  Shape s = {3, 7, 5, 2};
  Rng rng(555);
  SCOPED_TRACE("seed 555");
  auto x = rng.floats(numel(s), 0.5f, 1.5f);  // positive: LogSum defined, Prod bounded
  for (const char* k : kinds)
    for (auto& c : cases)
      for (int keep = 0; keep < 2; ++keep) {
        SCOPED_TRACE(std::string(k) + " axes " + std::to_string(c.axes.size()) + " first " +
                     (c.axes.empty() ? "-" : std::to_string(c.axes[0])) + " keepdims " + std::to_string(keep));
        std::vector<HT> ins = {f32(s, x)};
        if (!c.axes.empty()) ins.push_back(i64c(c.axes));
        auto r = run_op(k, {{"keepdims", std::to_string(keep)}}, ins);
        EXPECT_EQ(r.kernel, c.path);
        std::vector<bool> red(4, c.axes.empty());
        for (auto a : c.axes) red[size_t(a < 0 ? a + 4 : a)] = true;
        Shape os, ks;  // output shape; kept-dims shape
        for (int d = 0; d < 4; ++d) {
          if (!red[size_t(d)]) { os.push_back(s[size_t(d)]); ks.push_back(s[size_t(d)]); }
          else if (keep) os.push_back(1);
        }
        ASSERT_EQ(r.out[0].shape, os);
        auto o = r.out[0].vec<float>();
        std::vector<std::vector<double>> groups(size_t(numel(ks)));
        for (int64_t i = 0; i < numel(s); ++i) {
          auto idx = unravel(i, s);
          int64_t g = 0;
          for (int d = 0; d < 4; ++d)
            if (!red[size_t(d)]) g = g * s[size_t(d)] + idx[size_t(d)];
          groups[size_t(g)].push_back(x[size_t(i)]);
        }
        for (size_t g = 0; g < groups.size(); ++g) {
          double e = ref_reduce(k, groups[g]);
          ASSERT_NEAR(o[g], e, 1e-5 * std::max(1.0, std::fabs(e))) << g;
        }
      }
}

TEST(Reduce, EmptyAxesEmptySetAndInts) {
  auto x = iota_f(6);
  // noop_with_empty_axes: identity.
  auto n = run1("ReduceSum", {{"noop_with_empty_axes", "1"}}, {f32({2, 3}, x), i64c({})});
  EXPECT_EQ(n.shape, (Shape{2, 3}));
  EXPECT_EQ(n.vec<float>(), x);
  EXPECT_EQ(run1("ReduceSum", {{"keepdims", "0"}}, {f32({2, 3}, x)}).vec<float>(), std::vector<float>{15});
  auto all = run1("ReduceSum", {}, {f32({2, 3}, x), i64c({})});  // empty axes input: all axes
  EXPECT_EQ(all.shape, (Shape{1, 1}));
  EXPECT_EQ(all.vec<float>(), std::vector<float>{15});
  EXPECT_EQ(run1("ReduceMax", {{"keepdims", "0"}}, {f32({}, {4})}).vec<float>(), std::vector<float>{4});  // rank 0
  EXPECT_EQ(run1("ReduceSum", {{"axes", "1"}, {"keepdims", "0"}}, {f32({2, 3}, x)}).vec<float>(), (std::vector<float>{3, 12}));
  // Empty set (ONNX test_reduce_*_empty_set): identities of each reduction.
  auto e = [&](const char* k) { return run1(k, {{"keepdims", "1"}}, {f32({2, 0, 4}, {}), i64c({1})}); };
  EXPECT_EQ(e("ReduceSum").shape, (Shape{2, 1, 4}));
  EXPECT_EQ(e("ReduceSum").vec<float>(), std::vector<float>(8, 0.f));
  EXPECT_EQ(e("ReduceProd").vec<float>(), std::vector<float>(8, 1.f));
  EXPECT_EQ(e("ReduceMax").vec<float>()[0], -INFINITY);
  EXPECT_EQ(e("ReduceMin").vec<float>()[0], INFINITY);
  EXPECT_EQ(e("ReduceLogSum").vec<float>()[0], -INFINITY);
  EXPECT_EQ(e("ReduceLogSumExp").vec<float>()[0], -INFINITY);
  EXPECT_EQ(e("ReduceL2").vec<float>()[0], 0.f);
  // Integers accumulate in int64.
  auto ri = run1("ReduceSum", {{"keepdims", "0"}}, {HT::make(DType::int32, {3}, std::vector<int32_t>{1 << 30, 1 << 30, -(1 << 30)}), i64c({0})});
  EXPECT_EQ(ri.vec<int32_t>(), std::vector<int32_t>{1 << 30});
  auto rm = run1("ReduceMax", {{"keepdims", "0"}}, {HT::make(DType::int64, {2, 2}, std::vector<int64_t>{-5, 3, 9, -1}), i64c({1})});
  EXPECT_EQ(rm.vec<int64_t>(), (std::vector<int64_t>{3, 9}));
  auto rmean = run1("ReduceMean", {{"keepdims", "0"}}, {HT::make(DType::int32, {3}, std::vector<int32_t>{1, 2, 4})});
  EXPECT_EQ(rmean.vec<int32_t>(), std::vector<int32_t>{2});
  // LogSumExp stays finite for large inputs.
  auto lse = run1("ReduceLogSumExp", {{"keepdims", "0"}}, {f32({2}, {1000.f, 1000.f})}).vec<float>();
  EXPECT_NEAR(lse[0], 1000.0 + std::log(2.0), 1e-3);
  // Large: parallel trailing reduction over BERT-ish rows.
  Shape big = {3, 77, 768};
  Rng rng(9);
  SCOPED_TRACE("seed 9");
  auto xb = rng.floats(numel(big));
  auto mb = run1("ReduceMean", {{"axes", "-1"}}, {f32(big, xb)}).vec<float>();
  for (int64_t r = 0; r < 3 * 77; r += 19) {
    double a = 0;
    for (int64_t j = 0; j < 768; ++j) a += xb[size_t(r * 768 + j)];
    ASSERT_NEAR(mb[size_t(r)], a / 768, 1e-6);
  }
  expect_error("ReduceSum", {}, {f32({2, 3}, x), i64c({2})}, {"out of range"});
  expect_error("ReduceSum", {}, {f32({2, 3}, x), i64c({1, -1})}, {"twice"});
}

TEST(ArgMaxMin, AxesTiesAndSelectLast) {
  Rng rng(17);
  SCOPED_TRACE("seed 17");
  Shape s = {3, 7, 5};
  auto x = rng.ints<int32_t>(numel(s), 0, 4);  // many ties
  std::vector<float> xf(x.begin(), x.end());
  for (int axis : {0, 1, 2, -1})
    for (int last = 0; last < 2; ++last)
      for (int ismax = 0; ismax < 2; ++ismax)
        for (int keep = 0; keep < 2; ++keep) {
          const int a = axis < 0 ? axis + 3 : axis;
          SCOPED_TRACE("axis " + std::to_string(axis) + " last " + std::to_string(last) + " max " +
                       std::to_string(ismax) + " keep " + std::to_string(keep));
          const char* type = ismax ? "ArgMax" : "ArgMin";
          auto r = run1(type, {{"axis", std::to_string(axis)}, {"keepdims", std::to_string(keep)},
                               {"select_last_index", std::to_string(last)}},
                        {f32(s, xf)});
          auto ri = run1(type, {{"axis", std::to_string(axis)}, {"keepdims", std::to_string(keep)},
                                {"select_last_index", std::to_string(last)}},
                         {HT::make(DType::int32, s, x)});
          Shape os = s;
          if (keep) os[size_t(a)] = 1;
          else os.erase(os.begin() + a);
          ASSERT_EQ(r.shape, os);
          ASSERT_EQ(r.dt, DType::int64);
          Shape ks = s;
          ks[size_t(a)] = 1;
          auto o = r.vec<int64_t>(), oi = ri.vec<int64_t>();
          for (int64_t i = 0; i < numel(ks); ++i) {
            auto idx = unravel(i, ks);
            int64_t best = -1;
            float bv = 0;
            for (int64_t j = 0; j < s[size_t(a)]; ++j) {
              idx[size_t(a)] = j;
              float v = xf[size_t((idx[0] * s[1] + idx[1]) * s[2] + idx[2])];
              bool better = best < 0 || (ismax ? v > bv : v < bv) || (last && v == bv);
              if (better) { best = j; bv = v; }
            }
            ASSERT_EQ(o[size_t(i)], best) << i;
            ASSERT_EQ(oi[size_t(i)], best) << i;
          }
        }
  expect_error("ArgMax", {{"axis", "3"}}, {f32(s, xf)}, {"out of range"});
  expect_error("ArgMax", {{"axis", "1"}}, {f32({2, 0}, {})}, {"empty axis"});
}

// Every op type OPS.md assigns to the generic family is registered under its exact name.
TEST(Registry, AllGenericOpsRegistered) {
  const char* types[] = {"BinaryAdd", "BinaryOp", "UnaryOp", "Clip", "Where", "Cast", "Reshape", "Flatten",
                         "Squeeze", "Unsqueeze", "Reorder", "Concat", "Split", "Slice", "Gather", "Expand",
                         "Tile", "Shape", "ConstantOfShape", "Range", "Identity", "ReduceMean", "ReduceSum",
                         "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare", "ArgMax",
                         "ArgMin"};
  auto reg = ne::registered_op_types();
  for (const char* t : types)
    EXPECT_NE(std::find(reg.begin(), reg.end(), t), reg.end()) << t << " is not registered";
  // The view ops are views; Shape is shape-only.
  for (const char* t : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}) {
    ne::OpInfo i;
    i.name = "v";
    i.type = t;
    EXPECT_TRUE(ne::create_op(i)->is_view()) << t;
  }
  ne::OpInfo s;
  s.name = "s";
  s.type = "Shape";
  EXPECT_TRUE(ne::create_op(s)->shape_only());
}
