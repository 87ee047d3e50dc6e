// The executor alone, with test-only operators registered here: plan caching across shapes,
// views, in-place buffers, plan-time shape chains, the memory planner, input checks.
#include <gtest/gtest.h>

#include "executor/executor.hpp"
#include "executor/op_attrs.hpp"

namespace {

// y = x + c (c from attr), any shape, fp32.
class TAddConst : public ne::Operator {
 public:
  using Operator::Operator;
  void reshape(const ne::TensorList& in, const ne::TensorList& out) override {
    out[0]->dtype = in[0]->dtype;
    out[0]->shape = in[0]->shape;
  }
  void forward(const ne::TensorList& in, const ne::TensorList& out) override {
    float c = info_.attr_float("c", 0);
    for (int64_t i = 0; i < in[0]->numel(); ++i) out[0]->ptr<float>()[i] = in[0]->ptr<float>()[i] + c;
  }
};
// y = a + b, may overwrite a.
class TAddInplace : public TAddConst {
 public:
  using TAddConst::TAddConst;
  int inplace_input() const override { return 0; }
  void forward(const ne::TensorList& in, const ne::TensorList& out) override {
    for (int64_t i = 0; i < in[0]->numel(); ++i)
      out[0]->ptr<float>()[i] = in[0]->ptr<float>()[i] + in[1]->ptr<float>()[i];
  }
};
// Flatten to 1-D, as a view.
class TView : public ne::Operator {
 public:
  using Operator::Operator;
  bool is_view() const override { return true; }
  void reshape(const ne::TensorList& in, const ne::TensorList& out) override {
    out[0]->dtype = in[0]->dtype;
    out[0]->shape = {in[0]->numel()};
  }
  void forward(const ne::TensorList&, const ne::TensorList&) override { FAIL() << "view forward"; }
};
// int64 shape of its input (plan time).
class TShape : public ne::Operator {
 public:
  using Operator::Operator;
  bool shape_only() const override { return true; }
  void reshape(const ne::TensorList& in, const ne::TensorList& out) override {
    out[0]->dtype = ne::DType::int64;
    out[0]->shape = {int64_t(in[0]->shape.size())};
  }
  void forward(const ne::TensorList& in, const ne::TensorList& out) override {
    for (size_t i = 0; i < in[0]->shape.size(); ++i) out[0]->ptr<int64_t>()[i] = in[0]->shape[i];
  }
};
// y = x * (product of the const int64 input's values): needs a plan-time value in reshape.
class TScaleByShape : public ne::Operator {
 public:
  using Operator::Operator;
  void reshape(const ne::TensorList& in, const ne::TensorList& out) override {
    if (!in[1]->is_const) op_error("input '", in[1]->name, "' must be constant");
    out[0]->dtype = in[0]->dtype;
    out[0]->shape = in[0]->shape;
  }
  void forward(const ne::TensorList& in, const ne::TensorList& out) override {
    int64_t p = 1;
    for (int64_t i = 0; i < in[1]->numel(); ++i) p *= in[1]->ptr<int64_t>()[i];
    for (int64_t i = 0; i < in[0]->numel(); ++i) out[0]->ptr<float>()[i] = in[0]->ptr<float>()[i] * float(p);
  }
};
NE_REGISTER_OP("T_AddConst", TAddConst);
static const bool t_add_const_attrs = ne::declare_op_attrs({"T_AddConst", {{"c", ne::AttrKind::number}}});
static const bool t_no_attrs = [] {
  for (const char* t : {"T_AddInplace", "T_View", "T_Shape", "T_ScaleByShape"}) ne::declare_op_attrs({t, {}});
  return true;
}();
NE_REGISTER_OP("T_AddInplace", TAddInplace);
NE_REGISTER_OP("T_View", TView);
NE_REGISTER_OP("T_Shape", TShape);
NE_REGISTER_OP("T_ScaleByShape", TScaleByShape);

ne::Model chain_model() {
  ne::Model m;
  m.source = "test";
  m.tensors["x"].name = "x";
  m.tensors["x"].shape = {-1, -1};
  m.tensors["x"].has_shape = true;
  m.ops = {
      {"in", "Input", {}, {"x"}, {}},
      {"a1", "T_AddConst", {"x"}, {"t1"}, {{"c", "1"}}},
      {"a2", "T_AddConst", {"t1"}, {"t2"}, {{"c", "2"}}},
      {"ip", "T_AddInplace", {"t2", "t1"}, {"t3"}, {}},  // t3 = t2 + t1 may reuse t2
      {"v", "T_View", {"t3"}, {"t4"}, {}},
      {"sh", "T_Shape", {"x"}, {"s"}, {}},
      {"sc", "T_ScaleByShape", {"t4", "s"}, {"t5"}, {}},
      {"a3", "T_AddConst", {"t1"}, {"t6"}, {{"c", "0.5"}}},
      {"out", "Output", {}, {}, {}},
  };
  m.ops.back().inputs = {"t5", "t6"};
  return m;
}

ne::HostTensor filled(ne::Shape s, float start) {
  std::vector<float> v(size_t(ne::shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + float(i);
  return ne::HostTensor::make(ne::DType::fp32, s, v);
}

void check_chain(ne::Executor& ex, ne::Shape s) {
  auto x = filled(s, 0.25f);
  auto out = ex.run({{"x", x}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape, (ne::Shape{ne::shape_numel(s)}));
  EXPECT_EQ(out[1].shape, s);
  float scale = float(s[0] * s[1]);
  for (int64_t i = 0; i < x.numel(); ++i) {
    float xi = x.ptr<float>()[i];
    EXPECT_FLOAT_EQ(out[0].ptr<float>()[i], ((xi + 3) + (xi + 1)) * scale);
    EXPECT_FLOAT_EQ(out[1].ptr<float>()[i], xi + 1.5f);
  }
}

}  // namespace

TEST(Executor, PlansPerShapeAndCachesThem) {
  ne::Executor ex(chain_model());
  check_chain(ex, {2, 3});
  check_chain(ex, {5, 7});
  check_chain(ex, {2, 3});  // cached plan again
  check_chain(ex, {1, 1});
}

TEST(Executor, ProfileNamesKernels) {
  ne::ExecOptions o;
  o.profile = true;
  ne::Executor ex(chain_model(), o);
  check_chain(ex, {3, 4});
  auto p = ex.profile();
  ASSERT_EQ(p.size(), 7u);
  EXPECT_EQ(p[3].kernel, "view");
  EXPECT_EQ(p[4].kernel, "plan-time");
  EXPECT_EQ(p[0].calls, 1);
}

TEST(Executor, MemoryPlanReusesBuffers) {
  // A long chain of same-size ops: only two buffers are ever live at once.
  ne::Model m;
  m.tensors["x"].name = "x";
  m.ops.push_back({"in", "Input", {}, {"x"}, {}});
  std::string prev = "x";
  for (int i = 0; i < 20; ++i) {
    std::string o = "t" + std::to_string(i);
    m.ops.push_back({"a" + std::to_string(i), "T_AddConst", {prev}, {o}, {{"c", "1"}}});
    prev = o;
  }
  m.ops.push_back({"out", "Output", {prev}, {}, {}});
  ne::Executor ex(std::move(m));
  auto out = ex.run({{"x", filled({64, 64}, 0)}});
  EXPECT_FLOAT_EQ(out[0].ptr<float>()[10], 30.f);
  auto ms = ex.memory();
  size_t one = 64 * 64 * 4;
  EXPECT_LE(ms.arena_bytes, 3 * one);
  EXPECT_GE(ms.arena_bytes, ms.peak_live_bytes);
  EXPECT_LE(ms.arena_bytes, ms.peak_live_bytes * 3 / 2);
}

TEST(Executor, InputChecks) {
  ne::Model m = chain_model();
  ne::Executor ex(std::move(m));
  // wrong dtype
  auto bad = ne::HostTensor::make<int32_t>(ne::DType::int32, {2, 2}, {1, 2, 3, 4});
  try {
    ex.run({{"x", bad}});
    FAIL();
  } catch (const ne::Error& e) {
    std::string s = e.what();
    EXPECT_NE(s.find("'x'"), std::string::npos) << s;
    EXPECT_NE(s.find("dtype"), std::string::npos) << s;
  }
  // wrong rank
  try {
    ex.run({{"x", filled({2, 2, 2}, 0)}});
    FAIL();
  } catch (const ne::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
  }
  // missing / unknown input
  EXPECT_THROW(ex.run({}), ne::Error);
  EXPECT_THROW(ex.run({{"x", filled({2, 2}, 0)}, {"nope", filled({1}, 0)}}), ne::Error);
}

TEST(Executor, UnknownOpTypesListedTogether) {
  ne::Model m;
  m.tensors["x"].name = "x";
  m.ops = {{"in", "Input", {}, {"x"}, {}},
           {"f1", "Frobnicate", {"x"}, {"y"}, {}},
           {"f2", "Blorp", {"y"}, {"z"}, {}},
           {"out", "Output", {"z"}, {}, {}}};
  try {
    ne::Executor ex(std::move(m));
    FAIL();
  } catch (const ne::Error& e) {
    std::string s = e.what();
    EXPECT_NE(s.find("Frobnicate (f1)"), std::string::npos) << s;
    EXPECT_NE(s.find("Blorp (f2)"), std::string::npos) << s;
  }
}

TEST(Executor, OperatorErrorsNameTheOperator) {
  ne::Model m;
  m.tensors["x"].name = "x";
  m.tensors["y"].name = "y";
  m.ops = {{"in", "Input", {}, {"x", "y"}, {}},
           {"sc", "T_ScaleByShape", {"x", "y"}, {"z"}, {}},
           {"out", "Output", {"z"}, {}, {}}};
  ne::Executor ex(std::move(m));
  try {
    ex.run({{"x", filled({2}, 0)}, {"y", filled({2}, 0)}});
    FAIL();
  } catch (const ne::Error& e) {
    EXPECT_NE(std::string(e.what()).find("operator 'sc'"), std::string::npos) << e.what();
  }
}

#include "executor/sparse_dispatch.hpp"
#include "kernels/cpu_features.hpp"

// Pruning by mask multiplication leaves -0.0; the decision must count it as zero.
TEST(SparseDecision, NegativeZerosCountAsZeros) {
  const int K = 64, N = 64;
  std::vector<float> w(K * N, -0.0f);
  for (int k = 0; k < K; k += 10)
    for (int n = 0; n < 4; ++n) w[k * N + n] = 1.f;  // 7 of 16*64 1x4 blocks non-zero
  ne::OpConfig cfg;
  ne::SparseDecision d = ne::decide_sparse(w.data(), ne::sparse::DType::f32, K, N, cfg);
  EXPECT_NEAR(d.sparsity[0], 1.0 - 7.0 / (64 * 16), 1e-12);
  EXPECT_NE(d.reason.find("99.3%"), std::string::npos) << d.reason;
  if (ne::cpu::mayiuse(ne::cpu::Isa::avx512_core)) {
    EXPECT_TRUE(d.sparse) << d.reason;
  } else {  // no fp32 block-sparse kernel but the scalar reference on this CPU: dense, saying why
    EXPECT_FALSE(d.sparse) << d.reason;
    EXPECT_NE(d.reason.find("scalar reference"), std::string::npos) << d.reason;
  }
  std::vector<uint8_t> store;
  const float* c = static_cast<const float*>(ne::canonical_zeros(w.data(), ne::sparse::DType::f32, w.size(), &store));
  EXPECT_NE(c, w.data());
  uint32_t bits;
  std::memcpy(&bits, &c[1 * N + 5], 4);
  EXPECT_EQ(bits, 0u);
  cfg.sparse_threshold = 0.999f;
  EXPECT_FALSE(ne::decide_sparse(w.data(), ne::sparse::DType::f32, K, N, cfg).sparse);
}

#include "kernels/cpu_features.hpp"

// Without AVX512_VNNI oneDNN's u8*s8 path can saturate (int16 pair sums): the s8 InnerProduct
// must then run the exact int32 kernels, also for a dense weight with large values.
TEST(Int8WithoutVnni, ExactKernelAndExactResult) {
  ne::cpu::set_isa_cap(ne::cpu::Isa::avx2);
  const int M = 5, K = 64, N = 32;
  std::vector<int8_t> w(K * N);
  for (int i = 0; i < K * N; ++i) w[i] = int8_t(i % 2 ? 127 : 120);  // dense, large
  std::vector<float> ws(N, 0.01f);
  ne::Model m;
  m.tensors["x"].name = "x";
  m.tensors["x"].dtype = ne::DType::fp32;
  m.add_weight<int8_t>("w", ne::DType::s8, {K, N}, w);
  m.add_weight<float>("ws", ne::DType::fp32, {N}, ws);
  m.ops = {{"in", "Input", {}, {"x", "w", "ws"}, {}},
           {"fc", "InnerProduct", {"x", "w", "ws"}, {"y"}, {{"src_scale", "0.01"}, {"src_zero_point", "0"}}},
           {"out", "Output", {"y"}, {}, {}}};
  ne::ExecOptions o;
  o.profile = true;
  ne::Executor ex(std::move(m), o);
  std::vector<float> x(M * K, 2.55f);  // quantizes to u8 255: u8*s8 pairs = 255*127*2 > int16
  auto out = ex.run({{"x", ne::HostTensor::make(ne::DType::fp32, {M, K}, x)}});
  ne::cpu::clear_isa_cap();
  auto prof = ex.profile();
  ASSERT_EQ(prof.size(), 1u);
  EXPECT_NE(prof[0].reason.find("AVX512_VNNI"), std::string::npos) << prof[0].kernel << ": " << prof[0].reason;
  for (int n = 0; n < N; ++n) {
    double acc = 0;
    for (int k = 0; k < K; ++k) acc += 255.0 * w[k * N + n];
    EXPECT_NEAR(out[0].ptr<float>()[n], acc * 0.01 * 0.01, 1e-3) << n;
  }
}

// Inputs are read in place (TensorView): no arena space for them, never written, even where an
// in-place op follows the input directly or through a view; InputError for bad inputs.
TEST(Executor, InputsReadInPlaceAndNeverWritten) {
  ne::Model m;
  m.source = "test";
  m.tensors["x"].name = "x";
  m.tensors["y"].name = "y";
  m.ops = {
      {"in", "Input", {}, {"x", "y"}, {}},
      {"ip", "T_AddInplace", {"x", "y"}, {"t1"}, {}},   // may not overwrite x (an input)
      {"v", "T_View", {"y"}, {"yv"}, {}},
      {"v2", "T_View", {"x"}, {"xv"}, {}},
      {"ip2", "T_AddInplace", {"yv", "xv"}, {"t2"}, {}},  // nor y through its view
      {"out", "Output", {"t1", "t2"}, {}, {}},
  };
  ne::Executor ex(std::move(m));
  ne::HostTensor x = filled({16, 16}, 1), y = filled({16, 16}, 100);
  const ne::HostTensor x0 = x, y0 = y;
  std::map<std::string, ne::TensorView> v{{"x", {x.dtype, x.shape, x.bytes.data(), x.bytes.size()}},
                                          {"y", {y.dtype, y.shape, y.bytes.data(), y.bytes.size()}}};
  auto out = ex.run_views(v);
  ASSERT_EQ(out.size(), 2u);
  for (int64_t i = 0; i < 256; ++i) {
    EXPECT_FLOAT_EQ(out[0].ptr<float>()[i], x0.ptr<float>()[i] + y0.ptr<float>()[i]);
    EXPECT_FLOAT_EQ(out[1].ptr<float>()[i], x0.ptr<float>()[i] + y0.ptr<float>()[i]);
  }
  EXPECT_EQ(x.bytes, x0.bytes);
  EXPECT_EQ(y.bytes, y0.bytes);
  // The arena holds t1 and t2 only (two 1 KiB buffers), not the inputs.
  EXPECT_LE(ex.memory().arena_bytes, size_t(2 * 1024));
  // Bad inputs are InputErrors (the Python module's ValueError).
  EXPECT_THROW(ex.run({{"x", filled({2, 2}, 0)}}), ne::InputError);
  v["x"].nbytes -= 4;
  EXPECT_THROW(ex.run_views(v), ne::InputError);
  v["x"].nbytes += 4;
  v["x"].data = x.bytes.data() + 1;  // misaligned floats
  EXPECT_THROW(ex.run_views(v), ne::InputError);
  // Planning errors (an op's reshape refusing its inputs) are InputErrors with the op's message.
  ne::Model m2;
  m2.source = "test";
  m2.tensors["x"].name = "x";
  m2.tensors["s"].name = "s";
  m2.tensors["s"].dtype = ne::DType::int64;
  m2.ops = {
      {"in", "Input", {}, {"x", "s"}, {}},
      {"sc", "T_ScaleByShape", {"x", "s"}, {"t"}, {}},  // s must be constant: a run-time input is refused
      {"out", "Output", {"t"}, {}, {}},
  };
  ne::Executor ex2(std::move(m2));
  try {
    ex2.run({{"x", filled({2, 2}, 0)}, {"s", ne::HostTensor::make<int64_t>(ne::DType::int64, {1}, {2})}});
    FAIL() << "no error";
  } catch (const ne::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("must be constant"), std::string::npos) << e.what();
  }
}
