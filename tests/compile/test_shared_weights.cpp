// Real exports (scripts/gen_hf.py, made at test time: torch re-implementations of the Hugging Face
// families, tiny sizes) for two compiler properties:
//   - ALBERT's one shared layer (torch reads its parameters through Identity nodes) is stored once
//     in the IR, in fp32, int8 and bf16, with and without --transpose: no two weights hold the same
//     bytes, and model.bin is about the size of the unique parameters;
//   - nn.Linear heads (Gemm transB=1 on the first token: poolers, classifiers) become InnerProducts
//     with their bias and post-ops (tanh, relu, gelu) fused, quantized with the rest.
// Every output is compared with the torch reference the generator writes (fp32: max |d| <= 1e-4,
// the bound the fixtures use; int8 / bf16: cosine per row >= 0.99 against the fp32 reference).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "executor/weight_cache.hpp"
#include "helpers.hpp"

namespace {

const char* kPython = "/usr/bin/python3";  // Debian's python with torch (scripts/gen_hf.py)

struct Gen {
  const char* name;
  const char* args;
};
// One python process generates all of them (torch's import dominates: ~5 s, then ~1 s a model).
const Gen kModels[] = {
    {"albert", "--family albert --head base --opset 14"},
    {"bert_base_17", "--family bert --head base --opset 17"},
    {"bert_cls_11", "--family bert --head seq-cls --opset 11"},
    {"distilbert_cls_17", "--family distilbert --head seq-cls --opset 17"},
    {"roberta_cls_14", "--family roberta --head seq-cls --opset 14"},
    {"electra_cls_11", "--family electra --head seq-cls --opset 11"},
};

// The directory holding DIR/<name>/{model.onnx, inputs, ref}; "" with *why when it cannot be made.
const std::string& generated(std::string* why) {
  static std::string dir, err;
  static bool done = false;
  struct Cleanup {  // the generated models go with the process
    ~Cleanup() {
      if (!dir.empty()) std::system(("rm -rf '" + dir + "'").c_str());
    }
  };
  static Cleanup cleanup;
  if (!done) {
    done = true;
    char tmpl[] = "/tmp/ne_test_shared_XXXXXX";
    const std::string scripts = std::string(NE_TEST_DATA) + "/../../scripts";
    if (access(kPython, X_OK) != 0) {
      err = std::string(kPython) + " not found";
    } else if (!mkdtemp(tmpl)) {
      err = "mkdtemp failed";
    } else {
      std::string py = "import sys; sys.path.insert(0, '" + scripts + "'); import gen_hf\n";
      for (auto& g : kModels) {
        py += "gen_hf.main('" + std::string(g.args) + " --quiet --out " + tmpl + "/" + g.name + "'.split())\n";
      }
      const std::string script = std::string(tmpl) + "/gen.py";
      std::ofstream(script) << py;
      const std::string cmd = std::string(kPython) + " " + script + " > " + tmpl + "/gen.log 2>&1";
      if (std::system(cmd.c_str()) != 0) err = "gen_hf.py failed: see " + std::string(tmpl) + "/gen.log";
      else dir = tmpl;
    }
  }
  if (why) *why = err;
  return dir;
}

#define NE_REQUIRE_GENERATED(dir)                                                      \
  std::string why_;                                                                    \
  const std::string dir = generated(&why_);                                            \
  if (dir.empty() && why_.find("not found") != std::string::npos) GTEST_SKIP() << why_; \
  ASSERT_FALSE(dir.empty()) << why_

std::map<std::string, ne::HostTensor> npy_dir(const std::string& d) {
  std::map<std::string, ne::HostTensor> r;
  DIR* dd = opendir(d.c_str());
  if (!dd) return r;
  while (dirent* e = readdir(dd)) {
    std::string f = e->d_name;
    if (f.size() > 4 && f.substr(f.size() - 4) == ".npy") r[f.substr(0, f.size() - 4)] = ne_test::to_host(ne::read_npy(d + "/" + f));
  }
  closedir(dd);
  return r;
}

// Runs m on the model's inputs; checks each output against ref/<output>.npy: finite, and
// fp32: max |d| <= 1e-4; otherwise cosine per row (last dim) >= 0.99.
void check_outputs(const std::string& dir, const ne::Model& m, bool exact, const std::string& what) {
  auto in = npy_dir(dir + "/inputs");
  auto ref = npy_dir(dir + "/ref");
  auto out = ne_test::run_model(m, in);
  auto names = m.output_names();
  ASSERT_EQ(out.size(), names.size()) << what;
  ASSERT_EQ(ref.size(), names.size()) << what;
  for (size_t i = 0; i < out.size(); ++i) {
    auto r = ref.find(names[i]);
    ASSERT_NE(r, ref.end()) << what << ": no reference for output " << names[i];
    const ne::HostTensor &a = out[i], &b = r->second;
    ASSERT_EQ(a.shape, b.shape) << what << " " << names[i];
    ASSERT_EQ(int(a.dtype), int(ne::DType::fp32)) << what << " " << names[i];
    const float* x = a.ptr<float>();
    const float* y = b.ptr<float>();
    const int64_t n = a.numel();
    double maxd = 0;
    for (int64_t k = 0; k < n; ++k) {
      ASSERT_TRUE(std::isfinite(x[k])) << what << " " << names[i] << "[" << k << "] = " << x[k];
      maxd = ne_test::max_keep_nan(maxd, std::fabs(double(x[k]) - y[k]));  // a NaN / Inf reference fails too
    }
    const double worst_cos = ne_test::min_cosine(a, b);
    if (exact) EXPECT_LE(maxd, 1e-4) << what << " " << names[i] << ": " << ne_test::counts_str(m);
    else EXPECT_GE(worst_cos, 0.99) << what << " " << names[i] << " (max |d| " << maxd << ")";
    std::cout << "  " << what << " " << names[i] << ": max |d| " << maxd << ", worst cosine " << worst_cos << "\n";
  }
}

ne::Model compile(const std::string& onnx, const std::string& precision, bool transpose) {
  ne::CompileOptions o;
  o.precision = precision;
  o.transpose = transpose;
  return ne::compile_onnx(onnx, o);
}

uint64_t file_size(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

// ALBERT tiny (2 layers of one shared layer; embedding 32, hidden 64, FFN 128): its parameters are
// 201,472 fp32 bytes (50,368 values), 8 of them matrices (embedding_hidden_mapping_in, Q, K, V,
// attention dense, FFN in, FFN out, pooler). Before sharing, the layer's 6 matrices were stored per
// layer: fp32 model.bin 332,864 bytes, int8 133,952, bf16 197,696.
TEST(SharedWeights, AlbertStoredOnce) {
  NE_REQUIRE_GENERATED(dir);
  const std::string d = dir + "/albert";
  // Bound per precision: the unique parameters, matrices in the precision's width (s8 + fp32
  // scales; bf16), vectors fp32, plus 64-byte alignment per weight (~4 KB for ~40 weights).
  // (After sharing: fp32 201,792, int8 87,360, bf16 123,968.)
  const std::map<std::string, uint64_t> bound = {{"fp32", 201472 + 4096}, {"int8", 87360 + 2048}, {"bf16", 123968 + 2048}};
  for (const char* prec : {"fp32", "int8", "bf16"})
    for (bool tr : {false, true}) {
      const std::string what = std::string("albert ") + prec + (tr ? " --transpose" : "");
      ne::Model m = compile(d + "/model.onnx", prec, tr);
      // 2 layers x 6 + embedding mapping + pooler, all reading one of 8 matrices.
      std::set<std::string> ip_weights;
      int ips = 0;
      for (auto& op : m.ops)
        if (op.type == "InnerProduct") {
          ++ips;
          ip_weights.insert(op.inputs[1]);
          const ne::TensorInfo* w = m.find(op.inputs[1]);
          ASSERT_TRUE(w && w->is_weight) << what << ": " << op.name;
          EXPECT_EQ(int(w->dtype), int(std::string(prec) == "int8" ? ne::DType::s8
                                       : std::string(prec) == "bf16" ? ne::DType::bf16 : ne::DType::fp32))
              << what << ": " << op.name;
        }
      EXPECT_EQ(ips, 14) << what << ": " << ne_test::counts_str(m);
      EXPECT_EQ(ip_weights.size(), 8u) << what;
      EXPECT_EQ(ne_test::count_of(m, "Matmul") + ne_test::count_of(m, "Identity"), 0) << ne_test::counts_str(m);
      // No two weights (over 64 bytes) hold the same bytes.
      std::map<std::pair<uint64_t, uint64_t>, std::string> seen;
      uint64_t bytes = 0;
      int n = 0;
      std::set<std::string> used;
      for (auto& op : m.ops)
        for (auto& i : op.inputs) used.insert(i);
      for (auto& kv : m.tensors) {
        const ne::TensorInfo& t = kv.second;
        if (!t.is_weight || !used.count(kv.first)) continue;
        ++n;
        bytes += t.nbytes;
        if (t.nbytes <= 64) continue;
        auto key = std::make_pair(ne::hash_bytes(t.data, t.nbytes), t.nbytes);
        auto ins = seen.emplace(key, kv.first);
        EXPECT_TRUE(ins.second) << what << ": weights " << ins.first->second << " and " << kv.first << " are copies";
      }
      char tmpl[] = "/tmp/ne_test_albert_ir_XXXXXX";
      ASSERT_TRUE(mkdtemp(tmpl));
      ne::save_ir(m, tmpl);
      const uint64_t bin = file_size(std::string(tmpl) + "/model.bin");
      std::cout << what << ": " << n << " weights, " << bytes << " bytes, model.bin " << bin << "\n";
      EXPECT_LE(bin, bound.at(prec)) << what;
      check_outputs(d, m, std::string(prec) == "fp32", what);
      // The saved IR runs the same.
      ne::Model back = ne::load_ir(std::string(tmpl) + "/conf.yaml", std::string(tmpl) + "/model.bin");
      check_outputs(d, back, std::string(prec) == "fp32", what + " (saved)");
      std::system((std::string("rm -rf ") + tmpl).c_str());
    }
}

// nn.Linear heads: Gemm(x[B, H], W[N, H], b, transB=1) -> InnerProduct([H, N] weight) with bias and
// post-op fused: no Matmul left (attention is an Attention op), no Tanh / Relu / Gelu op.
struct Head {
  const char* model;
  int ips;  // encoder (2 layers x 6; ELECTRA + embeddings_project) + head
};
class GemmHeads : public ::testing::TestWithParam<Head> {};

TEST_P(GemmHeads, FusedIntoInnerProducts) {
  NE_REQUIRE_GENERATED(dir);
  const Head h = GetParam();
  const std::string d = dir + "/" + h.model;
  for (const char* prec : {"fp32", "int8", "bf16"}) {
    const std::string what = std::string(h.model) + " " + prec;
    ne::Model m = compile(d + "/model.onnx", prec, false);
    EXPECT_EQ(ne_test::count_of(m, "InnerProduct"), h.ips) << what << ": " << ne_test::counts_str(m);
    for (auto t : {"Matmul", "Gelu", "Identity"})
      EXPECT_EQ(ne_test::count_of(m, t), 0) << what << " still has " << t << ": " << ne_test::counts_str(m);
    for (auto& op : m.ops)  // (RoBERTa's position ids keep a UnaryOp `not`)
      if (op.type == "UnaryOp")
        for (auto a : {"tanh", "relu", "sigmoid", "gelu_erf", "gelu_tanh"})
          EXPECT_NE(op.attr("algorithm"), a) << what << ": " << op.name << " not fused";
    for (auto& op : m.ops)
      if (op.type == "InnerProduct") {
        const ne::TensorInfo* w = m.find(op.inputs[1]);
        ASSERT_TRUE(w && w->is_weight) << what << ": " << op.name;
        EXPECT_EQ(int(w->dtype), int(std::string(prec) == "int8" ? ne::DType::s8
                                     : std::string(prec) == "bf16" ? ne::DType::bf16 : ne::DType::fp32))
            << what << ": " << op.name << " not converted";
      }
    check_outputs(d, m, std::string(prec) == "fp32", what);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, GemmHeads,
                         ::testing::Values(Head{"bert_base_17", 13},       // + pooler (tanh)
                                           Head{"bert_cls_11", 14},        // + pooler, classifier
                                           Head{"distilbert_cls_17", 14},  // + pre_classifier (relu), classifier
                                           Head{"roberta_cls_14", 14},     // + dense (tanh), out_proj
                                           Head{"electra_cls_11", 15}),    // + dense (gelu), out_proj
                         [](const ::testing::TestParamInfo<Head>& i) { return std::string(i.param.model); });

}  // namespace
