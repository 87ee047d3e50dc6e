// Output-channel grouping (compile/passes/channel_group.hpp, issue 14): the graph run before and
// after gives the same outputs; z16 of the grouped weights (FFN1, Q, K, V) does not drop and rises
// on random 1x4 masks; the permutations are permutations and are what the weights went through.
// z16 is recomputed here from the weights (an independent reference, not the pass's bitsets).
#include <cstdint>
#include <cstring>
#include <random>
#include <set>

#include "compile/passes/channel_group.hpp"
#include "helpers.hpp"

namespace {

// Share of (16-output-channel group, k) rows of W[K, N] (fp32) that are all zero (bitwise), the
// last group partial when N % 16 != 0 (ARCHITECTURE.md "Sparse patterns").
double z16_of(const ne::TensorInfo& w) {
  const int64_t K = w.shape[0], N = w.shape[1], G = (N + 15) / 16;
  int64_t zero = 0;
  for (int64_t g = 0; g < G; ++g)
    for (int64_t k = 0; k < K; ++k) {
      bool all = true;
      for (int64_t n = g * 16; n < std::min(N, g * 16 + 16) && all; ++n) all = w.as<uint32_t>()[k * N + n] == 0;
      zero += all;
    }
  return double(zero) / double(G * K);
}

bool is_permutation(const std::vector<int64_t>& p, int64_t n) {
  if (int64_t(p.size()) != n) return false;
  std::vector<char> seen(size_t(n), 0);
  for (int64_t v : p) {
    if (v < 0 || v >= n || seen[size_t(v)]) return false;
    seen[size_t(v)] = 1;
  }
  return true;
}

// The InnerProducts of a compiled BERT by role, found from the op order of the fused graph
// (per layer: Q, K, V, O, FFN1, FFN2), independently of the pass's pattern matching.
struct Roles {
  std::vector<std::string> q, k, v, o, ffn1, ffn2;  // weight names
};
Roles roles_of(const ne::Model& m) {
  Roles r;
  std::vector<std::string> ips;
  for (auto& op : m.ops)
    if (op.type == "InnerProduct") ips.push_back(op.inputs[1]);
  EXPECT_EQ(ips.size() % 6, 0u);
  for (size_t i = 0; i + 5 < ips.size(); i += 6) {
    r.q.push_back(ips[i]);
    r.k.push_back(ips[i + 1]);
    r.v.push_back(ips[i + 2]);
    r.o.push_back(ips[i + 3]);
    r.ffn1.push_back(ips[i + 4]);
    r.ffn2.push_back(ips[i + 5]);
  }
  return r;
}

const std::vector<int64_t>* perm_of(const ne::ChannelGroupStats& st, const std::string& w) {
  for (auto& p : st.perms)
    if (p.first == w) return &p.second;
  return nullptr;
}

// new[:, j] == old[:, perm[j]] (cols) or new[j, :] == old[perm[j], :] (rows; a vector when rank 1).
bool permuted_cols(const ne::TensorInfo& a, const ne::TensorInfo& b, const std::vector<int64_t>& p) {
  const int64_t R = a.shape[0], C = a.shape[1];
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c)
      if (b.as<uint32_t>()[r * C + c] != a.as<uint32_t>()[r * C + p[size_t(c)]]) return false;
  return true;
}
bool permuted_rows(const ne::TensorInfo& a, const ne::TensorInfo& b, const std::vector<int64_t>& p) {
  const int64_t R = a.shape[0], C = a.shape.size() == 2 ? a.shape[1] : 1;
  for (int64_t r = 0; r < R; ++r)
    if (std::memcmp(b.as<uint32_t>() + r * C, a.as<uint32_t>() + p[size_t(r)] * C, size_t(C) * 4) != 0) return false;
  return true;
}
const std::string& bias_of(const ne::Model& m, const std::string& w) {
  for (auto& op : m.ops)
    if (op.type == "InnerProduct" && op.inputs[1] == w) return op.inputs.at(2);
  static std::string none;
  return none;
}

void expect_same_outputs(const ne::Model& a, const ne::Model& b, const std::string& fixture, double tol) {
  auto in = ne_test::fixture_inputs(fixture);
  auto x = ne_test::run_model(a, in), y = ne_test::run_model(b, in);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(ne_test::max_abs_diff(x[i], y[i]), tol) << fixture << " output " << i;
}

// Rows (bits) covered by each group of `order`, summed.
int64_t nonzero_rows(const std::vector<uint64_t>& bits, int64_t words, const std::vector<int64_t>& order,
                     int64_t per_group) {
  int64_t n = 0;
  for (size_t g = 0; g < order.size(); g += size_t(per_group))
    for (int64_t w = 0; w < words; ++w) {
      uint64_t u = 0;
      for (size_t i = g; i < std::min(order.size(), g + size_t(per_group)); ++i) u |= bits[size_t(order[i] * words + w)];
      n += __builtin_popcountll(u);
    }
  return n;
}

TEST(ChannelGroup, GreedyOrderIsAPermutation) {
  const unsigned seed = 14;
  std::mt19937 rng(seed);
  for (int64_t units : {1, 3, 7, 16, 33}) {
    for (int64_t words : {1, 3}) {
      for (int64_t per_group : {1, 4, 16}) {
        std::vector<uint64_t> bits(size_t(units * words));
        for (auto& b : bits) b = (uint64_t(rng()) << 32 | rng()) & (uint64_t(rng()) << 32 | rng());
        auto order = ne::pass::greedy_group_order(bits, units, words, per_group);
        EXPECT_TRUE(is_permutation(order, units))
            << "seed " << seed << " units " << units << " words " << words << " per_group " << per_group;
        // The swaps keep it a permutation and never raise the groups' non-zero rows.
        const int64_t before = nonzero_rows(bits, words, order, per_group);
        ne::pass::refine_group_order(bits, units, words, per_group, &order, 10);
        EXPECT_TRUE(is_permutation(order, units)) << "after refine, seed " << seed << " units " << units;
        EXPECT_LE(nonzero_rows(bits, words, order, per_group), before) << "seed " << seed << " units " << units;
      }
    }
  }
}

TEST(ChannelGroup, GreedyFindsDisjointFamilies) {
  // 8 units, 4 to a group: even units use rows 0..9, odd units rows 10..19 (interleaved: each
  // group of the identity order touches all 20 rows). The grouping puts the families apart.
  std::vector<uint64_t> bits(8);
  for (int u = 0; u < 8; ++u) bits[size_t(u)] = (u % 2 ? 0x3FFull << 10 : 0x3FFull) & ~(uint64_t(1) << (u / 2));
  auto order = ne::pass::greedy_group_order(bits, 8, 1, 4);
  ASSERT_TRUE(is_permutation(order, 8));
  for (int g = 0; g < 2; ++g)
    for (int i = 1; i < 4; ++i) EXPECT_EQ(order[size_t(g * 4 + i)] % 2, order[size_t(g * 4)] % 2) << "group " << g;
}

TEST(ChannelGroup, RefineSwapsStrayUnits) {
  // Two families (even units rows 0..9, odd 10..19), one unit of each in the other's group:
  // one swap separates them (20 rows per group -> 10). (Two of each per group is a local minimum
  // of single swaps: the greedy start avoids it, GreedyFindsDisjointFamilies.)
  std::vector<uint64_t> bits(8);
  for (int u = 0; u < 8; ++u) bits[size_t(u)] = u % 2 ? 0x3FFull << 10 : 0x3FFull;
  std::vector<int64_t> order = {0, 2, 4, 1, 3, 5, 7, 6};
  EXPECT_EQ(nonzero_rows(bits, 1, order, 4), 40);
  EXPECT_GT(ne::pass::refine_group_order(bits, 8, 1, 4, &order, 10), 0);
  EXPECT_TRUE(is_permutation(order, 8));
  EXPECT_EQ(nonzero_rows(bits, 1, order, 4), 20);
}

// heads2_1x4_90: 1 layer, hidden 64, 2 heads of 32 (two groups per head), FFN 256, every encoder
// weight pruned 1x4 at 90% (random blocks: z16 ~ 0.9^4 = 0.66).
TEST(ChannelGroup, Bert1x4OutputsUnchangedZ16Rises) {
  const std::string f = "heads2_1x4_90";
  NE_REQUIRE_FIXTURE(f);
  const ne::Model m = ne::compile_onnx(ne_test::fixture_dir(f) + "/model.onnx");
  ne::Model g = m;
  ne::ChannelGroupStats st;
  ne::group_channels(g, &st);
  SCOPED_TRACE(st.summary());
  for (auto& l : st.log) std::cout << "  " << l << "\n";
  std::cout << st.summary() << "\n";
  EXPECT_EQ(st.ffn_blocks, 1);
  EXPECT_EQ(st.attention_blocks, 1);
  ne::validate(g);
  expect_same_outputs(m, g, f, 1e-5);

  const Roles r = roles_of(m);
  ASSERT_EQ(r.ffn1.size(), 1u);
  // z16 per kind, from the weights themselves.
  for (auto* names : {&r.q, &r.k, &r.v, &r.ffn1}) {
    const std::string& w = (*names)[0];
    const double before = z16_of(*m.find(w)), after = z16_of(*g.find(w));
    std::cout << w << ": z16 " << before << " -> " << after << "\n";
    EXPECT_GE(after, before) << w;
    if (names == &r.ffn1 || names == &r.v) {
      EXPECT_GT(after, before) << w << " (random 1x4 90%)";
    }
  }
  EXPECT_GT(z16_of(*g.find(r.q[0])) + z16_of(*g.find(r.k[0])), z16_of(*m.find(r.q[0])) + z16_of(*m.find(r.k[0])));
  // The pass's figures agree with the reference.
  EXPECT_NEAR(st.ffn1.z16_before(), z16_of(*m.find(r.ffn1[0])), 1e-12);
  EXPECT_NEAR(st.ffn1.z16_after(), z16_of(*g.find(r.ffn1[0])), 1e-12);
  EXPECT_NEAR(st.v.z16_after(), z16_of(*g.find(r.v[0])), 1e-12);

  // Each permutation is one, and it is what the weights (and their consumers) went through.
  const std::vector<int64_t>* pf = perm_of(st, r.ffn1[0]);
  const std::vector<int64_t>* pq = perm_of(st, r.q[0]);
  const std::vector<int64_t>* pk = perm_of(st, r.k[0]);
  const std::vector<int64_t>* pv = perm_of(st, r.v[0]);
  ASSERT_TRUE(pf && pq && pk && pv);
  ASSERT_TRUE(is_permutation(*pf, 256));
  for (auto* p : {pq, pk, pv}) {
    ASSERT_TRUE(is_permutation(*p, 64));
    for (int64_t j = 0; j < 64; ++j) EXPECT_EQ((*p)[size_t(j)] / 32, j / 32) << "channel " << j << " left its head";
    for (int64_t j = 0; j < 64; j += 4)  // whole 1x4 blocks move (unit 4)
      for (int64_t i = 1; i < 4; ++i) EXPECT_EQ((*p)[size_t(j + i)], (*p)[size_t(j)] + i);
  }
  EXPECT_EQ(*pq, *pk);
  EXPECT_TRUE(permuted_cols(*m.find(r.ffn1[0]), *g.find(r.ffn1[0]), *pf));
  EXPECT_TRUE(permuted_rows(*m.find(bias_of(m, r.ffn1[0])), *g.find(bias_of(g, r.ffn1[0])), *pf));
  EXPECT_TRUE(permuted_rows(*m.find(r.ffn2[0]), *g.find(r.ffn2[0]), *pf));
  EXPECT_TRUE(permuted_cols(*m.find(r.v[0]), *g.find(r.v[0]), *pv));
  EXPECT_TRUE(permuted_rows(*m.find(r.o[0]), *g.find(r.o[0]), *pv));
  EXPECT_TRUE(permuted_cols(*m.find(r.q[0]), *g.find(r.q[0]), *pq));
  EXPECT_TRUE(permuted_cols(*m.find(r.k[0]), *g.find(r.k[0]), *pk));
  // O's and FFN2's outputs (columns) are left alone: their bytes per column set are unchanged.
  EXPECT_EQ(z16_of(*m.find(r.o[0])), z16_of(*g.find(r.o[0])));
  EXPECT_EQ(z16_of(*m.find(r.ffn2[0])), z16_of(*g.find(r.ffn2[0])));
  // 1x4 blocks stay whole, so the 1x4 block sparsity the AVX-512 kernels see is unchanged.

  // Another shape (batch 1, seq 7) through the cached-plan path.
  auto in = ne_test::fixture_inputs(f);
  std::map<std::string, ne::HostTensor> in2;
  for (auto& kv : in) {
    ne::HostTensor h;
    h.dtype = kv.second.dtype;
    h.shape = {1, 7};
    h.bytes.assign(kv.second.bytes.begin(), kv.second.bytes.begin() + 7 * 8);
    in2[kv.first] = h;
  }
  auto a2 = ne_test::run_model(m, in2), b2 = ne_test::run_model(g, in2);
  for (size_t i = 0; i < a2.size(); ++i) EXPECT_LE(ne_test::max_abs_diff(a2[i], b2[i]), 1e-5);
}

// Head dim 16 (tiny): a head is one group, attention is left alone (said in the log); FFN grouped.
TEST(ChannelGroup, TinyHeadDim16FfnOnly) {
  const std::string f = "tiny_1x4_90";
  NE_REQUIRE_FIXTURE(f);
  const ne::Model m = ne::compile_onnx(ne_test::fixture_dir(f) + "/model.onnx");
  ne::Model g = m;
  ne::ChannelGroupStats st;
  ne::group_channels(g, &st);
  SCOPED_TRACE(st.summary());
  EXPECT_EQ(st.ffn_blocks, 2);
  EXPECT_EQ(st.attention_blocks, 2);
  EXPECT_EQ(st.ffn1.permuted, 2);
  EXPECT_EQ(st.v.permuted + st.q.permuted + st.k.permuted, 0);
  EXPECT_GT(st.ffn1.z16_after(), st.ffn1.z16_before());
  bool said = false;
  for (auto& l : st.log) said = said || l.find("head dim 16") != std::string::npos;
  EXPECT_TRUE(said);
  const Roles r = roles_of(m);
  for (auto& w : r.ffn1) EXPECT_GT(z16_of(*g.find(w)), z16_of(*m.find(w))) << w;
  for (auto& w : r.v) EXPECT_EQ(z16_of(*g.find(w)), z16_of(*m.find(w))) << w;
  expect_same_outputs(m, g, f, 1e-5);
}

// 1x16 pruning: z16 is already the block sparsity; grouping keeps it (never lowers z16).
TEST(ChannelGroup, Pattern1x16KeepsZ16) {
  const std::string f = "tiny_1x16_90";
  NE_REQUIRE_FIXTURE(f);
  const ne::Model m = ne::compile_onnx(ne_test::fixture_dir(f) + "/model.onnx");
  ne::Model g = m;
  ne::ChannelGroupStats st;
  ne::group_channels(g, &st);
  SCOPED_TRACE(st.summary());
  for (auto& w : roles_of(m).ffn1) EXPECT_GE(z16_of(*g.find(w)), z16_of(*m.find(w))) << w;
  EXPECT_GE(st.ffn1.z16_after(), st.ffn1.z16_before());
  expect_same_outputs(m, g, f, 1e-5);
}

// No layer structure (the unfused graph: MatMuls, no InnerProducts): unchanged, and it says so.
TEST(ChannelGroup, NoLayerStructureUnchanged) {
  NE_REQUIRE_FIXTURE("tiny_1x4_90");
  ne::CompileOptions o;
  o.fuse = false;
  ne::Model m = ne::compile_onnx(ne_test::fixture_dir("tiny_1x4_90") + "/model.onnx", o);
  const std::string yaml = ne::ir_to_yaml(m);
  ne::ChannelGroupStats st;
  ne::group_channels(m, &st);
  EXPECT_EQ(st.ffn_blocks + st.attention_blocks, 0);
  EXPECT_TRUE(st.perms.empty());
  EXPECT_NE(st.summary().find("left unchanged"), std::string::npos) << st.summary();
  EXPECT_EQ(ne::ir_to_yaml(m), yaml);
  // Through compile_onnx: the fused-graph requirement is checked.
  o.group_channels = true;
  EXPECT_THROW(ne::compile_onnx(ne_test::fixture_dir("tiny_1x4_90") + "/model.onnx", o), ne::Error);
}

// A QDQ model imports as s8 InnerProducts: no fp32 weights to permute, left alone, and said so.
TEST(ChannelGroup, QdqModelLeftUnchanged) {
  NE_REQUIRE_FIXTURE("tiny_qdq");
  ne::CompileOptions o;
  const ne::Model a = ne::compile_onnx(ne_test::fixture_dir("tiny_qdq") + "/model.onnx", o);
  o.group_channels = true;
  ::testing::internal::CaptureStderr();
  const ne::Model b = ne::compile_onnx(ne_test::fixture_dir("tiny_qdq") + "/model.onnx", o);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("[group_channels] group_channels: no FFN or attention block"), std::string::npos) << err;
  EXPECT_NE(err.find("left unchanged"), std::string::npos) << err;
  EXPECT_EQ(ne::ir_to_yaml(a), ne::ir_to_yaml(b));
  for (auto& kv : a.tensors)
    if (kv.second.is_weight && kv.second.data) {
      const ne::TensorInfo* t = b.find(kv.first);
      ASSERT_NE(t, nullptr) << kv.first;
      ASSERT_EQ(t->nbytes, kv.second.nbytes) << kv.first;
      EXPECT_EQ(std::memcmp(t->data, kv.second.data, t->nbytes), 0) << kv.first;
    }
}

// compile_onnx(group_channels) for fp32 / int8 / bf16 (and with --transpose): the pass runs on the fp32 weights before
// quantization, the log line is printed, outputs match the ungrouped compile of the same precision.
TEST(ChannelGroup, CompileOptionAllPrecisions) {
  const std::string f = "heads2_1x4_90";
  NE_REQUIRE_FIXTURE(f);
  // Tolerances: fp32 summation order only; int8 per-channel weight scales and the per-tensor src
  // ranges are the same numbers permuted (calibration sees the same activations), bf16 rounding
  // is per element: both differ from the ungrouped model only by accumulation order, but
  // through 1 layer of LayerNorm with int8/bf16 rounding of the reordered sums: 1e-3.
  for (const char* prec : {"fp32", "int8", "bf16", "fp32+transpose", "int8+transpose"}) {
    ne::CompileOptions o;
    const std::string p = prec;
    o.precision = p.substr(0, 4);
    o.transpose = p.find("transpose") != std::string::npos;
    const ne::Model a = ne::compile_onnx(ne_test::fixture_dir(f) + "/model.onnx", o);
    o.group_channels = true;
    ::testing::internal::CaptureStderr();
    const ne::Model b = ne::compile_onnx(ne_test::fixture_dir(f) + "/model.onnx", o);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("[group_channels] group_channels: ffn1 z16"), std::string::npos) << err;
    const std::string w1 = roles_of(a).ffn1.at(0);  // moved (as s8 / bf16 / fp32)
    ASSERT_EQ(a.find(w1)->nbytes, b.find(w1)->nbytes);
    EXPECT_NE(std::memcmp(a.find(w1)->data, b.find(w1)->data, a.find(w1)->nbytes), 0) << prec;
    expect_same_outputs(a, b, f, o.precision == "fp32" ? 1e-5 : 1e-3);
  }
}

}  // namespace
