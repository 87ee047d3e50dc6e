// Model slim (compile/passes/slim.hpp): the graph run before and after gives the same outputs,
// with fewer channels, heads, weight bytes and MACs.
#ifdef NE_HAVE_COMPILE
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/npy.hpp"
#include "compile/compile.hpp"
#include "compile/passes/slim.hpp"
#include "executor/executor.hpp"
#include "tests/core/test_util.hpp"
#include "tests/inspect/mini_json.hpp"

namespace {

std::string model_dir(const std::string& n) { return std::string(NE_TEST_DATA) + "/models/" + n; }
std::string read_text(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::map<std::string, ne::HostTensor> inputs_of(const std::string& fixture) {
  std::map<std::string, ne::HostTensor> in;
  for (const char* n : {"input_ids", "attention_mask", "token_type_ids"}) {
    std::string p = model_dir(fixture) + "/inputs/" + n + ".npy";
    if (!std::ifstream(p).good()) continue;
    ne::NpyArray a = ne::read_npy(p);
    ne::HostTensor h;
    h.dtype = a.dtype;
    h.shape = a.shape;
    h.bytes = std::move(a.bytes);
    in[n] = std::move(h);
  }
  return in;
}

std::vector<ne::HostTensor> run(const ne::Model& m, const std::map<std::string, ne::HostTensor>& in) {
  ne::Executor ex(m);
  return ex.run(in);
}

using ne_test::max_abs_diff;  // NaN (fails EXPECT_LE) if either side holds a NaN / Inf

// Rewrites weight `name` [R, C] (or [R]) through f(r, c, value).
template <class F>
void edit(ne::Model& m, const std::string& name, F f) {
  const ne::TensorInfo t = *m.find(name);
  ASSERT_EQ(t.dtype, ne::DType::fp32);
  const int64_t R = t.shape[0], C = t.shape.size() == 2 ? t.shape[1] : 1;
  std::vector<float> v(t.as<float>(), t.as<float>() + R * C);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) v[size_t(r * C + c)] = f(r, c, v[size_t(r * C + c)]);
  m.add_weight(name, ne::DType::fp32, t.shape, v);
}

struct Names {
  std::map<std::string, std::string> w, b;  // "layer.0.ffn2" -> initializer / bias initializer
};
Names names_of(const std::string& fixture) {
  Names n;
  mini_json::Value meta = mini_json::parse(read_text(model_dir(fixture) + "/meta.json"));
  for (const auto& w : meta["weights"].arr) {
    n.w[w["name"].str] = w["onnx_initializer"].str;
    n.b[w["name"].str] = w["bias_initializer"].str;
  }
  return n;
}

const ne::OpInfo* reshape_reading(const ne::Model& m, const std::string& t) {
  for (const auto& op : m.ops)
    if (op.type == "Reshape" && !op.inputs.empty() && op.inputs[0] == t) return &op;
  return nullptr;
}
const ne::OpInfo* op_with_weight(const ne::Model& m, const std::string& w) {
  for (const auto& op : m.ops)
    if (op.type == "InnerProduct" && op.inputs.size() > 1 && op.inputs[1] == w) return &op;
  return nullptr;
}

TEST(Slim, RemovesZeroFfnChannelsAndHeadsOutputsUnchanged) {
  ne::Model m = ne::compile_onnx(model_dir("tiny") + "/model.onnx");
  Names nm = names_of("tiny");
  const int D = 16;  // tiny: hidden 64, 4 heads
  // Layer 0: half of the FFN channels dead by W2 rows; channels 1 and 3 dead by W1 columns + b1
  // (gelu(0) = 0); head 1 zeroed in Q, K, V (columns and biases).
  edit(m, nm.w["layer.0.ffn2"], [](int64_t r, int64_t, float v) { return r % 2 == 0 ? 0.f : v; });
  edit(m, nm.w["layer.0.ffn1"], [](int64_t, int64_t c, float v) { return c == 1 || c == 3 ? 0.f : v; });
  edit(m, nm.b["layer.0.ffn1"], [](int64_t r, int64_t, float v) { return r == 1 || r == 3 ? 0.f : v; });
  for (const char* p : {"query", "key", "value"}) {
    edit(m, nm.w[std::string("layer.0.") + p], [&](int64_t, int64_t c, float v) { return c / D == 1 ? 0.f : v; });
    edit(m, nm.b[std::string("layer.0.") + p], [&](int64_t r, int64_t, float v) { return r / D == 1 ? 0.f : v; });
  }
  // Layer 1: the first quarter of FFN channels; head 3 dead in the output projection only.
  edit(m, nm.w["layer.1.ffn2"], [](int64_t r, int64_t, float v) { return r < 64 ? 0.f : v; });
  edit(m, nm.w["layer.1.attn_out"], [&](int64_t r, int64_t, float v) { return r / D == 3 ? 0.f : v; });
  // A column of W1 that is zero but whose bias is not: must stay.
  edit(m, nm.w["layer.1.ffn1"], [](int64_t, int64_t c, float v) { return c == 200 ? 0.f : v; });

  const auto in = inputs_of("tiny");
  const auto before = run(m, in);
  ne::Model s = m;
  ne::SlimStats st;
  ne::slim_model(s, &st);
  SCOPED_TRACE(st.summary());
  EXPECT_EQ(st.ffn_blocks, 2);
  EXPECT_EQ(st.ffn_channels, 512);
  EXPECT_EQ(st.ffn_channels_removed, 128 + 2 + 64);
  EXPECT_EQ(st.attention_blocks, 2);
  EXPECT_EQ(st.heads, 8);
  EXPECT_EQ(st.heads_removed, 2);
  EXPECT_LT(st.weight_bytes_after, st.weight_bytes_before);
  EXPECT_LT(st.ip_macs_per_token_after, st.ip_macs_per_token_before);
  EXPECT_EQ(s.find(nm.w["layer.0.ffn1"])->shape, (ne::Shape{64, 126}));
  EXPECT_EQ(s.find(nm.w["layer.0.ffn2"])->shape, (ne::Shape{126, 64}));
  EXPECT_EQ(s.find(nm.b["layer.0.ffn1"])->shape, (ne::Shape{126}));
  EXPECT_EQ(s.find(nm.w["layer.0.value"])->shape, (ne::Shape{64, 48}));
  EXPECT_EQ(s.find(nm.w["layer.1.attn_out"])->shape, (ne::Shape{48, 64}));
  // The head count in the head-split Reshapes and the merge Reshape.
  const ne::OpInfo* q0 = op_with_weight(s, nm.w["layer.0.query"]);
  ASSERT_NE(q0, nullptr);
  const ne::OpInfo* rq = reshape_reading(s, q0->outputs[0]);
  ASSERT_NE(rq, nullptr);
  EXPECT_EQ(rq->attr_ints("dst_shape"), (std::vector<int64_t>{0, 0, 3, 16}));
  ne::validate(s);

  const auto after = run(s, in);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) EXPECT_LE(max_abs_diff(before[i], after[i]), 1e-5);
  // Another shape (batch 1, seq 7) through the cached-plan path.
  std::map<std::string, ne::HostTensor> in2;
  for (auto& kv : in) {
    ne::HostTensor h;
    h.dtype = kv.second.dtype;
    h.shape = {1, 7};
    h.bytes.assign(kv.second.bytes.begin(), kv.second.bytes.begin() + 7 * 8);
    in2[kv.first] = h;
  }
  auto b2 = run(m, in2), a2 = run(s, in2);
  for (size_t i = 0; i < a2.size(); ++i) EXPECT_LE(max_abs_diff(b2[i], a2[i]), 1e-5);
}

TEST(Slim, DenseModelUnchanged) {
  ne::Model m = ne::compile_onnx(model_dir("tiny") + "/model.onnx");
  const std::string yaml = ne::ir_to_yaml(m);
  ne::SlimStats st;
  ne::slim_model(m, &st);
  EXPECT_EQ(st.ffn_channels_removed, 0);
  EXPECT_EQ(st.heads_removed, 0);
  EXPECT_EQ(st.ffn_blocks, 2);
  EXPECT_EQ(st.attention_blocks, 2);
  EXPECT_EQ(ne::ir_to_yaml(m), yaml);
}

TEST(Slim, KeepsOneHeadAndOneChannel) {
  ne::Model m = ne::compile_onnx(model_dir("tiny") + "/model.onnx");
  Names nm = names_of("tiny");
  edit(m, nm.w["layer.0.ffn2"], [](int64_t, int64_t, float) { return 0.f; });
  edit(m, nm.w["layer.0.attn_out"], [](int64_t, int64_t, float) { return 0.f; });
  const auto in = inputs_of("tiny");
  const auto before = run(m, in);
  ne::Model s = m;
  ne::SlimStats st;
  ne::slim_model(s, &st);
  EXPECT_EQ(st.heads_removed, 3);
  EXPECT_EQ(st.ffn_channels_removed, 255);
  const auto after = run(s, in);
  for (size_t i = 0; i < after.size(); ++i) EXPECT_LE(max_abs_diff(before[i], after[i]), 1e-5);
}

// scripts/zero_channels.py on the tiny fixture, then compile + slim (skipped without onnx).
TEST(Slim, ZeroChannelsScript) {
  if (std::system("/usr/bin/python3 -c 'import onnx, numpy' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with onnx and numpy is not available";
  const std::string out = ::testing::TempDir() + "ne_slim_zero";
  std::string cmd = "rm -rf '" + out + "' && /usr/bin/python3 " + std::string(NE_SOURCE_DIR) +
                    "/scripts/zero_channels.py --model_dir " + model_dir("tiny") +
                    " --ffn 0.5 --heads 0.25 --seed 3 --out " + out + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ne::Model m = ne::compile_onnx(out + "/model.onnx");
  const auto in = inputs_of("tiny");
  const auto before = run(m, in);
  ne::SlimStats st;
  ne::slim_model(m, &st);
  SCOPED_TRACE(st.summary());
  EXPECT_EQ(st.ffn_channels_removed, 256);  // 50% of 2 x 256
  EXPECT_EQ(st.heads_removed, 2);           // 25% of 2 x 4
  const auto after = run(m, in);
  for (size_t i = 0; i < after.size(); ++i) EXPECT_LE(max_abs_diff(before[i], after[i]), 1e-5);
}

}  // namespace
#endif  // NE_HAVE_COMPILE
