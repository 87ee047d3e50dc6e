// Reorder, Concat, Split, Slice, Gather, Expand, Tile against per-element references. These
// move bytes only, so results must match exactly.
#include "harness.hpp"

using namespace ne_test;

namespace {

std::vector<float> iota_f(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return v;
}

std::string ints_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// out[idx] = in[idx permuted]
std::vector<float> ref_transpose(const std::vector<float>& x, const Shape& s, const std::vector<int64_t>& perm,
                                 Shape* os) {
  os->clear();
  for (auto p : perm) os->push_back(s[size_t(p)]);
  std::vector<float> y(x.size());
  for (int64_t i = 0; i < numel(*os); ++i) {
    auto oi = unravel(i, *os);
    std::vector<int64_t> ii(s.size());
    for (size_t d = 0; d < perm.size(); ++d) ii[size_t(perm[d])] = oi[d];
    int64_t f = 0;
    for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + ii[d];
    y[size_t(i)] = x[size_t(f)];
  }
  return y;
}

}  // namespace

TEST(Reorder, PermsAndNePair) {
  Shape s = {3, 5, 7, 2};
  auto x = iota_f(numel(s));
  const std::vector<std::vector<int64_t>> perms = {
      {0, 2, 1, 3}, {0, 2, 3, 1}, {3, 2, 1, 0}, {1, 0, 2, 3}, {0, 1, 2, 3}, {2, 0, 3, 1},
      // rotations: the 2-D transpose fast path
      {1, 2, 3, 0}, {2, 3, 0, 1}, {3, 0, 1, 2}};
  for (auto& p : perms) {
    SCOPED_TRACE(ints_str(p));
    Shape es;
    auto e = ref_transpose(x, s, p, &es);
    auto r = run1("Reorder", {{"perm", ints_str(p)}}, {f32(s, x)});
    EXPECT_EQ(r.shape, es);
    EXPECT_EQ(r.vec<float>(), e);
    // Neural Engine pair: dst_perm alone, and src_perm relabelling the dims.
    auto r2 = run1("Reorder", {{"src_perm", "0,1,2,3"}, {"dst_perm", ints_str(p)}}, {f32(s, x)});
    EXPECT_EQ(r2.vec<float>(), e);
  }
  // src_perm 2,3,0,1 names input dims; dst_perm 0,1,2,3 asks for names 0..3 in order, which sit
  // at input positions 2,3,0,1.
  Shape es;
  auto e = ref_transpose(x, s, {2, 3, 0, 1}, &es);
  auto r3 = run1("Reorder", {{"src_perm", "2,3,0,1"}, {"dst_perm", "0,1,2,3"}}, {f32(s, x)});
  EXPECT_EQ(r3.shape, es);
  EXPECT_EQ(r3.vec<float>(), e);
  // Default: reverse dims. int64 and bool payloads.
  auto rd = run1("Reorder", {}, {HT::make(DType::int64, {2, 3}, std::vector<int64_t>{0, 1, 2, 3, 4, 5})});
  EXPECT_EQ(rd.shape, (Shape{3, 2}));
  EXPECT_EQ(rd.vec<int64_t>(), (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));
  auto rs = run1("Reorder", {}, {f32({}, {5})});
  EXPECT_EQ(rs.vec<float>(), std::vector<float>{5});
  auto re = run1("Reorder", {{"perm", "1,0"}}, {f32({0, 3}, {})});
  EXPECT_EQ(re.shape, (Shape{3, 0}));
  // Large enough to run in parallel.
  Shape big = {3, 77, 12, 64};
  auto xb = iota_f(numel(big));
  auto rb = run1("Reorder", {{"perm", "0,2,1,3"}}, {f32(big, xb)});
  EXPECT_EQ(rb.vec<float>(), ref_transpose(xb, big, {0, 2, 1, 3}, &es));
  // The feature-major chain ends: [B,S,H] -> [H,B,S] -> [B,S,H], parallel tiles with tails.
  Shape bsh = {3, 77, 100};
  auto xr = iota_f(numel(bsh));
  auto rr = run1("Reorder", {{"perm", "2,0,1"}}, {f32(bsh, xr)});
  EXPECT_EQ(rr.vec<float>(), ref_transpose(xr, bsh, {2, 0, 1}, &es));
  auto rr2 = run1("Reorder", {{"perm", "1,2,0"}}, {f32(rr.shape, rr.vec<float>())});
  EXPECT_EQ(rr2.shape, bsh);
  EXPECT_EQ(rr2.vec<float>(), xr);
  // Transposes that move the source-contiguous dim go in tiles: several tiles and ragged edges.
  for (auto& p : std::vector<std::vector<int64_t>>{{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 1, 2, 0}}) {
    SCOPED_TRACE(ints_str(p));
    auto rt = run1("Reorder", {{"perm", ints_str(p)}}, {f32(big, xb)});
    EXPECT_EQ(rt.vec<float>(), ref_transpose(xb, big, p, &es));
  }
  Shape m = {67, 45};
  auto xm = iota_f(numel(m));
  auto rm = run1("Reorder", {}, {HT::make(DType::int64, m, std::vector<int64_t>(xm.begin(), xm.end()))});
  auto em = ref_transpose(xm, m, {1, 0}, &es);
  EXPECT_EQ(rm.vec<int64_t>(), std::vector<int64_t>(em.begin(), em.end()));
}

TEST(Reorder, Errors) {
  expect_error("Reorder", {{"perm", "0,0,1"}}, {f32({1, 2, 3}, iota_f(6))}, {"not a permutation"});
  expect_error("Reorder", {{"perm", "0,1"}}, {f32({1, 2, 3}, iota_f(6))}, {"rank 3"});
  expect_error("Reorder", {{"perm", "0,1,3"}}, {f32({1, 2, 3}, iota_f(6))}, {"not a permutation"});
  expect_error("Reorder", {{"src_perm", "0,1,2"}, {"dst_perm", "0,1,5"}}, {f32({1, 2, 3}, iota_f(6))}, {"dst_perm"});
}

TEST(Concat, AxesAndEmptyInputs) {
  Rng rng(8);
  SCOPED_TRACE("seed 8");
  Shape a = {3, 2, 5}, b = {3, 7, 5}, c = {3, 0, 5};
  auto av = rng.floats(numel(a)), bv = rng.floats(numel(b));
  for (const char* ax : {"1", "-2"}) {
    auto r = run1("Concat", {{"axis", ax}}, {f32(a, av), f32(b, bv), f32(c, {})});
    ASSERT_EQ(r.shape, (Shape{3, 9, 5}));
    auto o = r.vec<float>();
    for (int64_t i = 0; i < 3 * 9 * 5; ++i) {
      auto idx = unravel(i, {3, 9, 5});
      float e = idx[1] < 2 ? av[size_t((idx[0] * 2 + idx[1]) * 5 + idx[2])]
                           : bv[size_t((idx[0] * 7 + idx[1] - 2) * 5 + idx[2])];
      ASSERT_EQ(o[size_t(i)], e);
    }
  }
  auto r0 = run1("Concat", {{"axis", "0"}}, {HT::make(DType::int64, {1}, std::vector<int64_t>{4}),
                                             HT::make(DType::int64, {2}, std::vector<int64_t>{5, 6})});
  EXPECT_EQ(r0.vec<int64_t>(), (std::vector<int64_t>{4, 5, 6}));
  expect_error("Concat", {{"axis", "1"}}, {f32({2, 3}, iota_f(6)), f32({3, 3}, iota_f(9))}, {"[3,3]", "axis 1"});
  expect_error("Concat", {{"axis", "2"}}, {f32({2, 3}, iota_f(6))}, {"out of range"});
}

TEST(Split, EqualGivenAndUneven) {
  auto x = iota_f(3 * 10);
  auto r = run_op("Split", {{"axis", "1"}}, {f32({3, 10}, x)}, 2);
  ASSERT_EQ(r.out[0].shape, (Shape{3, 5}));
  EXPECT_EQ(r.out[1].vec<float>(), (std::vector<float>{5, 6, 7, 8, 9, 15, 16, 17, 18, 19, 25, 26, 27, 28, 29}));
  auto r2 = run_op("Split", {{"axis", "-1"}}, {f32({3, 10}, x), i64c({2, 0, 8})}, 3);
  EXPECT_EQ(r2.out[0].vec<float>(), (std::vector<float>{0, 1, 10, 11, 20, 21}));
  EXPECT_EQ(r2.out[1].shape, (Shape{3, 0}));
  EXPECT_EQ(r2.out[2].shape, (Shape{3, 8}));
  EXPECT_EQ(r2.out[2].vec<float>()[0], 2.f);
  auto r3 = run_op("Split", {{"split", "3,7"}}, {f32({10}, iota_f(10))}, 2);
  EXPECT_EQ(r3.out[0].vec<float>(), (std::vector<float>{0, 1, 2}));
  auto r4 = run_op("Split", {}, {f32({7}, iota_f(7))}, 3);  // ceil: 3,3,1 (Split-18)
  EXPECT_EQ(r4.out[2].vec<float>(), (std::vector<float>{6}));
  expect_error("Split", {}, {f32({10}, iota_f(10)), i64c({2, 3})}, {"sums to 5"}, 2);
  HT nc = i64c({5, 5});
  nc.is_const = false;
  expect_error("Split", {}, {f32({10}, iota_f(10)), nc}, {"must be constant", "in1"}, 2);
}

namespace {
// ONNX Slice reference, written from the spec text independently of the op.
std::vector<float> ref_slice(const std::vector<float>& x, const Shape& s, std::vector<int64_t> starts,
                             std::vector<int64_t> ends, std::vector<int64_t> axes, std::vector<int64_t> steps,
                             Shape* os) {
  const int r = int(s.size());
  std::vector<int64_t> st(size_t(r), 0), sp(size_t(r), 1);
  *os = s;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
    int64_t d = s[size_t(a)], b = starts[i], e = ends[i], k = steps[i];
    b = b < 0 ? std::max<int64_t>(b + d, 0) : b;
    e = e < 0 ? std::max<int64_t>(e + d, k > 0 ? 0 : -1) : e;
    if (k > 0) {
      b = std::min(b, d);
      e = std::min(e, d);
    } else {
      b = std::min(b, d - 1);
      e = std::min(e, d - 1);
    }
    int64_t n = 0;
    for (int64_t j = b; k > 0 ? j < e : j > e; j += k) ++n;
    (*os)[size_t(a)] = n;
    st[size_t(a)] = b;
    sp[size_t(a)] = k;
  }
  std::vector<float> y(size_t(numel(*os)));
  for (int64_t i = 0; i < numel(*os); ++i) {
    auto oi = unravel(i, *os);
    int64_t f = 0;
    for (int d = 0; d < r; ++d) f = f * s[size_t(d)] + st[size_t(d)] + oi[size_t(d)] * sp[size_t(d)];
    y[size_t(i)] = x[size_t(f)];
  }
  return y;
}
}  // namespace

TEST(Slice, OnnxClampingNegativeSteps) {
  Shape s = {3, 77, 10};
  auto x = iota_f(numel(s));
  const int64_t BIG = INT64_MAX, SMALL = INT64_MIN;
  struct C { std::vector<int64_t> starts, ends, axes, steps; };
  const C cases[] = {
      {{0, 1}, {2, 76}, {0, 1}, {1, 1}},
      {{1}, {BIG}, {1}, {1}},            // end clamps
      {{-3}, {-1}, {-1}, {1}},           // negative starts/ends, negative axis
      {{BIG}, {SMALL}, {1}, {-1}},       // full reverse
      {{-1}, {-BIG}, {2}, {-3}},         // reverse with stride
      {{5}, {2}, {2}, {1}},              // empty
      {{0, 0, 0}, {3, 77, 10}, {0, 1, 2}, {2, 5, 3}},
      {{100}, {200}, {1}, {1}},          // start beyond the end
      {{-100}, {2}, {0}, {1}},
      {{2, 8}, {-BIG, 1}, {0, 2}, {-1, -2}},
  };
  for (auto& c : cases) {
    SCOPED_TRACE("starts " + ints_str(c.starts) + " ends " + ints_str(c.ends) + " axes " + ints_str(c.axes) +
                 " steps " + ints_str(c.steps));
    Shape es;
    auto e = ref_slice(x, s, c.starts, c.ends, c.axes, c.steps, &es);
    auto r = run1("Slice", {}, {f32(s, x), i64c(c.starts), i64c(c.ends), i64c(c.axes), i64c(c.steps)});
    EXPECT_EQ(r.shape, es);
    EXPECT_EQ(r.vec<float>(), e);
  }
  // Attribute form, axes and steps defaulted; int32 const inputs.
  Shape es;
  auto r = run1("Slice", {{"starts", "1,2"}, {"ends", "3,5"}}, {f32(s, x)});
  EXPECT_EQ(r.vec<float>(), ref_slice(x, s, {1, 2}, {3, 5}, {0, 1}, {1, 1}, &es));
  auto r32 = run1("Slice", {}, {f32(s, x), HT::make(DType::int32, {1}, std::vector<int32_t>{1}, true),
                                HT::make(DType::int32, {1}, std::vector<int32_t>{-1}, true)});
  EXPECT_EQ(r32.vec<float>(), ref_slice(x, s, {1}, {-1}, {0}, {1}, &es));
  expect_error("Slice", {}, {f32(s, x), i64c({0}), i64c({1}), i64c({0}), i64c({0})}, {"step"});
  expect_error("Slice", {}, {f32(s, x), i64c({0}), i64c({1}), i64c({3})}, {"out of range"});
  HT ns = i64c({0});
  ns.is_const = false;
  expect_error("Slice", {}, {f32(s, x), ns, i64c({1})}, {"'in1'", "must be constant"});
}

TEST(Gather, AxesIndicesAndErrors) {
  Rng rng(4242);
  SCOPED_TRACE("seed 4242");
  Shape ds = {5, 6, 7};
  auto d = rng.floats(numel(ds));
  for (int axis : {0, 1, 2, -1, -3}) {
    const int a = axis < 0 ? axis + 3 : axis;
    const int64_t n = ds[size_t(a)];
    Shape is = {3, 4};
    auto idx = rng.ints<int64_t>(numel(is), -n, n - 1);  // negative indices wrap
    std::vector<int32_t> idx32(idx.begin(), idx.end());
    for (int use32 = 0; use32 < 2; ++use32) {
      SCOPED_TRACE("axis " + std::to_string(axis) + (use32 ? " int32" : " int64"));
      HT ih = use32 ? HT::make(DType::int32, is, idx32) : HT::make(DType::int64, is, idx);
      auto r = run1("Gather", {{"axis", std::to_string(axis)}}, {f32(ds, d), ih});
      Shape os(ds.begin(), ds.begin() + a);
      os.insert(os.end(), is.begin(), is.end());
      os.insert(os.end(), ds.begin() + a + 1, ds.end());
      ASSERT_EQ(r.shape, os);
      auto o = r.vec<float>();
      for (int64_t i = 0; i < numel(os); ++i) {
        auto oi = unravel(i, os);
        std::vector<int64_t> di(oi.begin(), oi.begin() + a);
        int64_t j = idx[size_t(oi[size_t(a)] * 4 + oi[size_t(a) + 1])];
        di.push_back(j < 0 ? j + n : j);
        di.insert(di.end(), oi.begin() + a + 2, oi.end());
        int64_t f = 0;
        for (size_t k = 0; k < 3; ++k) f = f * ds[k] + di[k];
        ASSERT_EQ(o[size_t(i)], d[size_t(f)]) << i;
      }
    }
  }
  // Scalar index drops the axis; embedding-style lookup.
  auto rs = run1("Gather", {{"axis", "1"}}, {f32({2, 3}, {0, 1, 2, 3, 4, 5}), HT::make(DType::int64, {}, std::vector<int64_t>{-1})});
  EXPECT_EQ(rs.shape, (Shape{2}));
  EXPECT_EQ(rs.vec<float>(), (std::vector<float>{2, 5}));
  auto re = run1("Gather", {}, {f32({2, 3}, iota_f(6)), HT::make(DType::int64, {0}, std::vector<int64_t>{})});
  EXPECT_EQ(re.shape, (Shape{0, 3}));
  // Out of range: names the op and the index.
  expect_error("Gather", {}, {f32({5, 2}, iota_f(10)), HT::make(DType::int64, {3}, std::vector<int64_t>{0, 5, 1})},
               {"index 5", "size 5"});
  expect_error("Gather", {}, {f32({5, 2}, iota_f(10)), HT::make(DType::int32, {1}, std::vector<int32_t>{-6})},
               {"index -6"});
  expect_error("Gather", {}, {f32({5, 2}, iota_f(10)), f32({1}, {0})}, {"int32 or int64"});
  expect_error("Gather", {{"axis", "2"}}, {f32({5, 2}, iota_f(10)), HT::make(DType::int64, {1}, std::vector<int64_t>{0})},
               {"out of range"});
}

TEST(Expand, BothWays) {
  // ONNX: shape may be smaller than the input (broadcast both ways).
  auto r = run1("Expand", {}, {f32({3, 1}, {1, 2, 3}), i64c({2, 1, 6})});
  ASSERT_EQ(r.shape, (Shape{2, 3, 6}));
  auto o = r.vec<float>();
  for (int64_t i = 0; i < 36; ++i) ASSERT_EQ(o[size_t(i)], float((i / 6) % 3 + 1));
  auto r2 = run1("Expand", {}, {f32({3, 4}, iota_f(12)), i64c({1, 1})});
  EXPECT_EQ(r2.shape, (Shape{3, 4}));
  EXPECT_EQ(r2.vec<float>(), iota_f(12));
  auto r3 = run1("Expand", {}, {f32({}, {7}), i64c({2, 2})});
  EXPECT_EQ(r3.vec<float>(), (std::vector<float>{7, 7, 7, 7}));
  auto r4 = run1("Expand", {}, {HT::make(DType::boolean, {1, 3}, std::vector<uint8_t>{1, 0, 1}), i64c({2, 1})});
  EXPECT_EQ(r4.vec<uint8_t>(), (std::vector<uint8_t>{1, 0, 1, 1, 0, 1}));
  expect_error("Expand", {}, {f32({3}, {1, 2, 3}), i64c({4})}, {"broadcast"});
}

TEST(Tile, Reference) {
  Shape s = {2, 3, 1};
  auto x = iota_f(6);
  std::vector<int64_t> rep = {3, 1, 4};
  auto r = run1("Tile", {}, {f32(s, x), i64c(rep)});
  Shape os = {6, 3, 4};
  ASSERT_EQ(r.shape, os);
  auto o = r.vec<float>();
  for (int64_t i = 0; i < numel(os); ++i) {
    auto oi = unravel(i, os);
    ASSERT_EQ(o[size_t(i)], x[size_t((oi[0] % 2) * 3 + (oi[1] % 3))]);
  }
  auto r0 = run1("Tile", {}, {f32({2}, {1, 2}), i64c({0})});
  EXPECT_EQ(r0.shape, (Shape{0}));
  expect_error("Tile", {}, {f32({2}, {1, 2}), i64c({1, 2})}, {"rank 1"});
}

// forward() takes shapes from the tensors it is given, not from the last reshape() (cached plans).
TEST(PlanCache, ForwardAfterReshapeForAnotherShape) {
  ne::OpInfo info;
  info.name = "g";
  info.type = "Gather";
  info.inputs = {"d", "i"};
  info.outputs = {"o"};
  auto op = ne::create_op(info);
  ASSERT_TRUE(op);
  std::vector<float> d1 = iota_f(12), d2 = iota_f(20);
  std::vector<int64_t> i1 = {2, 0}, i2 = {4, 1, 3};
  ne::Tensor td1{"d", DType::fp32, {6, 2}, d1.data()}, ti1{"i", DType::int64, {2}, i1.data()};
  ne::Tensor td2{"d", DType::fp32, {5, 4}, d2.data()}, ti2{"i", DType::int64, {3}, i2.data()};
  ne::Tensor o1{"o"}, o2{"o"};
  op->reshape({&td1, &ti1}, {&o1});
  op->reshape({&td2, &ti2}, {&o2});
  std::vector<float> b1(size_t(o1.numel())), b2(size_t(o2.numel()));
  o1.data = b1.data();
  o2.data = b2.data();
  op->forward({&td1, &ti1}, {&o1});
  EXPECT_EQ(b1, (std::vector<float>{4, 5, 0, 1}));
  op->forward({&td2, &ti2}, {&o2});
  EXPECT_EQ(b2, (std::vector<float>{16, 17, 18, 19, 4, 5, 6, 7, 12, 13, 14, 15}));
}
