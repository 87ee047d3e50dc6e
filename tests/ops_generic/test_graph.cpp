// The generic ops inside the Executor: a plan-time shape chain (Shape -> Gather -> Unsqueeze ->
// Concat -> Reshape), views, a transpose, a reduction and an attention-mask path, run for two
// shapes and again for the first (cached plan), against a naive reference.
#include <gtest/gtest.h>

#include "executor/executor.hpp"

namespace {

ne::Model graph() {
  ne::Model m;
  m.source = "test_graph";
  auto& x = m.tensors["x"];
  x.name = "x";
  x.shape = {-1, -1, -1};
  x.has_shape = true;
  auto& mask = m.tensors["mask"];
  mask.name = "mask";
  mask.dtype = ne::DType::int64;
  mask.shape = {-1, -1};
  mask.has_shape = true;
  m.add_weight<int64_t>("i0", ne::DType::int64, {}, {0});
  m.add_weight<int64_t>("i1", ne::DType::int64, {}, {1});
  m.add_weight<int64_t>("tail", ne::DType::int64, {2}, {-1, 2});
  m.add_weight<float>("one", ne::DType::fp32, {1}, {1.f});
  m.add_weight<float>("big", ne::DType::fp32, {}, {-10000.f});
  m.add_weight<float>("bias", ne::DType::fp32, {4}, {0.5f, -1.f, 2.f, 0.25f});
  m.ops = {
      {"in", "Input", {}, {"x", "mask"}, {}},
      {"sh", "Shape", {"x"}, {"s"}, {}},
      {"g0", "Gather", {"s", "i0"}, {"b"}, {}},
      {"g1", "Gather", {"s", "i1"}, {"q"}, {}},
      {"u0", "Unsqueeze", {"b"}, {"bu"}, {{"axes", "0"}}},
      {"u1", "Unsqueeze", {"q"}, {"qu"}, {{"axes", "0"}}},
      {"cat", "Concat", {"bu", "qu", "tail"}, {"newshape"}, {{"axis", "0"}}},
      {"add", "BinaryAdd", {"x", "bias"}, {"xb"}, {}},
      {"rs", "Reshape", {"xb", "newshape"}, {"r"}, {}},
      {"tr", "Reorder", {"r"}, {"t"}, {{"perm", "0,2,1,3"}}},
      {"sum", "ReduceSum", {"t"}, {"y"}, {{"axes", "-1"}, {"keepdims", "0"}}},
      {"cast", "Cast", {"mask"}, {"mf"}, {{"to", "fp32"}}},
      {"um", "Unsqueeze", {"mf"}, {"m1"}, {{"axes", "1"}}},
      {"inv", "BinaryOp", {"one", "m1"}, {"m2"}, {{"algorithm", "sub"}}},
      {"scale", "BinaryOp", {"m2", "big"}, {"m3"}, {{"algorithm", "mul"}}},
      {"madd", "BinaryAdd", {"y", "m3"}, {"z"}, {}},
      {"out", "Output", {}, {}, {}},
  };
  m.ops.back().inputs = {"z", "newshape"};
  return m;
}

void check(ne::Executor& ex, int64_t B, int64_t S) {
  const int64_t H = 4;
  std::vector<float> x(size_t(B * S * H));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 13) * 0.5f - 2.f;
  std::vector<int64_t> mask(size_t(B * S));
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i % 3) != 2;
  auto out = ex.run({{"x", ne::HostTensor::make(ne::DType::fp32, {B, S, H}, x)},
                     {"mask", ne::HostTensor::make(ne::DType::int64, {B, S}, mask)}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].shape, (ne::Shape{4}));
  EXPECT_EQ(std::vector<int64_t>(out[1].ptr<int64_t>(), out[1].ptr<int64_t>() + 4),
            (std::vector<int64_t>{B, S, -1, 2}));
  ASSERT_EQ(out[0].shape, (ne::Shape{B, H / 2, S}));
  const float bias[] = {0.5f, -1.f, 2.f, 0.25f};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H / 2; ++h)
      for (int64_t s = 0; s < S; ++s) {
        float e = 0;
        for (int64_t k = 0; k < 2; ++k) e += x[size_t((b * S + s) * H + h * 2 + k)] + bias[h * 2 + k];
        e += (1.f - float(mask[size_t(b * S + s)])) * -10000.f;
        ASSERT_FLOAT_EQ(out[0].ptr<float>()[(b * (H / 2) + h) * S + s], e) << b << "," << h << "," << s;
      }
}

}  // namespace

TEST(Graph, ShapeChainViewsAndMaskAcrossShapes) {
  ne::ExecOptions o;
  o.profile = true;
  ne::Executor ex(graph(), o);
  check(ex, 2, 5);
  check(ex, 3, 77);
  check(ex, 2, 5);  // cached plan
  for (auto& p : ex.profile()) {
    if (p.name == "sh" || p.name == "g0" || p.name == "cat") {
      EXPECT_EQ(p.kernel, "plan-time") << p.name;
    }
    if (p.name == "rs") {
      EXPECT_EQ(p.kernel, "view");
    }
  }
}

TEST(Graph, ReshapeFromActivationIsAnError) {
  // A shape computed from activation values cannot decide a plan: Reshape names the tensor.
  ne::Model m;
  m.source = "test_graph";
  auto& x = m.tensors["x"];
  x.name = "x";
  x.shape = {-1};
  x.has_shape = true;
  auto& s = m.tensors["s"];
  s.name = "s";
  s.dtype = ne::DType::int64;
  s.shape = {2};
  s.has_shape = true;
  m.ops = {{"in", "Input", {}, {"x", "s"}, {}},
           {"rs", "Reshape", {"x", "s"}, {"y"}, {}},
           {"out", "Output", {"y"}, {}, {}}};
  ne::Executor ex(m);
  try {
    ex.run({{"x", ne::HostTensor::make(ne::DType::fp32, {4}, std::vector<float>(4))},
            {"s", ne::HostTensor::make(ne::DType::int64, {2}, std::vector<int64_t>{2, 2})}});
    ADD_FAILURE() << "expected an error";
  } catch (const ne::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'rs'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'s'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("must be constant"), std::string::npos) << msg;
  }
}
