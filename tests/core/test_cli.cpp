// The hand-written IR (embeddings -> 2 x [InnerProduct+gelu -> InnerProduct+residual -> LayerNorm])
// against a float64 numpy reference, through the library and through bin/neural_engine; and the
// command line's bad-input errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/npy.hpp"
#include "executor/executor.hpp"
#include "tests/core/test_util.hpp"
#include "tests/inspect/mini_json.hpp"

namespace {
const std::string kHand = std::string(NE_TEST_DATA) + "/hand_ir";
const std::string kBin = std::string(NE_BIN_DIR) + "/neural_engine";

ne::HostTensor load(const std::string& p) {
  ne::NpyArray a = ne::read_npy(p);
  ne::HostTensor h;
  h.dtype = a.dtype;
  h.shape = a.shape;
  h.bytes = a.bytes;
  return h;
}

// Reference is float64; fp32 evaluation of 2 layers of width <= 40 stays well inside 1e-5.
// A NaN or Inf in the output fails (max_abs_diff is then NaN).
void expect_close(const ne::HostTensor& got, const ne::NpyArray& ref, double tol) {
  ASSERT_EQ(got.shape, ref.shape);
  ASSERT_EQ(int(got.dtype), int(ne::DType::fp32));
  ASSERT_EQ(int(ref.dtype), int(ne::DType::fp32));
  const float* g = got.ptr<float>();
  const float* r = reinterpret_cast<const float*>(ref.bytes.data());
  EXPECT_TRUE(ne_test::all_finite(g, got.numel()));
  EXPECT_LE(ne_test::max_abs_diff(g, r, got.numel()), tol);
}
}  // namespace

TEST(HandIR, LibraryMatchesReference) {
  ne::Executor ex(ne::load_ir(kHand + "/conf.yaml", kHand + "/model.bin"));
  auto out = ex.run({{"input_ids", load(kHand + "/input_ids.npy")},
                     {"position_ids", load(kHand + "/position_ids.npy")}});
  ASSERT_EQ(out.size(), 1u);
  expect_close(out[0], ne::read_npy(kHand + "/ref_x2.npy"), 1e-5);
}

TEST(HandIR, CommandLineMatchesReference) {
  std::string d = ne_test::tmp_dir("cli");
  std::string out;
  int rc = ne_test::run_cmd(kBin + " --config " + kHand + "/conf.yaml --weight " + kHand +
                                "/model.bin --input input_ids=" + kHand + "/input_ids.npy,position_ids=" +
                                kHand + "/position_ids.npy --output_dir " + d + " --iterations 2 --w 1",
                            &out);
  ASSERT_EQ(rc, 0) << out;
  expect_close(load(d + "/x2.npy"), ne::read_npy(kHand + "/ref_x2.npy"), 1e-5);
}

TEST(HandIR, BenchmarkLinesProfileAndReport) {
  std::string d = ne_test::tmp_dir("bench");
  std::string out;
  int rc = ne_test::run_cmd(kBin + " --config " + kHand + "/conf.yaml --weight " + kHand +
                                "/model.bin --batch_size 8 --seq_len 32 --iterations 4 --w 1 --profile"
                                " --report_json " + d + "/r.json",
                            &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(" Batch Size is 8"), std::string::npos) << out;
  EXPECT_NE(out.find(" Latency is "), std::string::npos) << out;
  EXPECT_NE(out.find(" Throughput is "), std::string::npos) << out;
  EXPECT_NE(out.find("P99"), std::string::npos) << out;
  EXPECT_NE(out.find("l0_fc1"), std::string::npos) << out;  // profile rows
  std::string js = ne_test::read_file(d + "/r.json");
  for (auto key : {"\"latency_ms\"", "\"p99\"", "\"throughput\"", "\"arena_bytes\"", "\"weight_resident_bytes\"",
                   "\"profile\"", "\"kernel\""})
    EXPECT_NE(js.find(key), std::string::npos) << key << "\n" << js;
}

// "model name" of the first CPU in /proc/cpuinfo (the kernel's copy of the CPUID brand string).
std::string proc_cpu_model() {
  std::string info = ne_test::read_file("/proc/cpuinfo");
  size_t p = info.find("model name");
  if (p == std::string::npos) return "";
  p = info.find(':', p) + 1;
  std::string m = info.substr(p, info.find('\n', p) - p);
  size_t a = m.find_first_not_of(" \t");
  return a == std::string::npos ? "" : m.substr(a, m.find_last_not_of(" \t") + 1 - a);
}

// --report_json parses as JSON and says which CPU the run was on: the model as /proc/cpuinfo
// names it, the ISA tier the kernels used (NE_MAX_ISA caps it), AMX exactly when that tier is
// the AMX one; the run summary prints the same CPU line.
TEST(HandIR, ReportNamesTheCpu) {
  const std::vector<std::string> tiers = {"generic", "sse41", "avx2", "avx512_core", "avx512_core_vnni",
                                          "avx512_core_bf16", "avx512_core_amx"};
  const std::string model = proc_cpu_model();
  std::string d = ne_test::tmp_dir("cpu");
  std::string detected;
  for (std::string cap : {"", "avx2"}) {
    std::string out;
    std::string env = cap.empty() ? "" : "NE_MAX_ISA=" + cap + " ";
    ASSERT_EQ(ne_test::run_cmd(env + kBin + " --config " + kHand + "/conf.yaml --weight " + kHand +
                                   "/model.bin --seq_len 8 --iterations 1 --w 0 --report_json " + d + "/r.json",
                               &out),
              0)
        << out;
    mini_json::Value r;
    ASSERT_NO_THROW(r = mini_json::parse(ne_test::read_file(d + "/r.json"))) << ne_test::read_file(d + "/r.json");
    const mini_json::Value& cpu = r["cpu"];
    ASSERT_EQ(cpu["model"].kind, mini_json::Value::Str);
    if (!model.empty()) {
      EXPECT_EQ(cpu["model"].str, model);
    }
    const std::string isa = cpu["isa"].str;
    EXPECT_NE(std::find(tiers.begin(), tiers.end(), isa), tiers.end()) << isa;
    ASSERT_EQ(cpu["amx"].kind, mini_json::Value::Bool);
    EXPECT_EQ(cpu["amx"].b, isa == "avx512_core_amx");
    if (cap.empty()) {
      detected = isa;
      EXPECT_EQ(cpu["isa_detected"].str, isa);
      EXPECT_NE(out.find("\n CPU is " + cpu["model"].str + " (" + isa + ")\n"), std::string::npos) << out;
    } else if (std::find(tiers.begin(), tiers.end(), detected) - tiers.begin() >= 2) {  // AVX2 or better
      EXPECT_EQ(isa, "avx2");
      EXPECT_FALSE(cpu["amx"].b);
      EXPECT_EQ(cpu["isa_detected"].str, detected);
      EXPECT_NE(out.find(" CPU is " + cpu["model"].str + " (avx2"), std::string::npos) << out;
    }
    // The fields that were there before the cpu record, with their types.
    EXPECT_EQ(r["batch"].num, 1);
    EXPECT_EQ(r["seq"].num, 8);
    EXPECT_EQ(r["latency_ms"]["p99"].kind, mini_json::Value::Num);
    EXPECT_EQ(r["memory"]["weight_sharing"].num, 0);
    ASSERT_EQ(r["profile"].kind, mini_json::Value::Arr);
    EXPECT_FALSE(r["profile"].arr.empty());
    EXPECT_EQ(r["profile"][0]["kernel"].kind, mini_json::Value::Str);
  }
}

// --help lists the tool's own flags (each DEFINE_* of its main file, read here from the source),
// one line each with its default, and nothing of glog's or gflags'; --helpfull lists those too.
TEST(CommandLineHelp, OwnFlagsOnlyAndHelpfullForAll) {
  const std::string src = std::string(NE_TEST_DATA) + "/../../";
  for (auto tool : {std::make_pair("neural_engine", "bin/neural_engine.cpp"),
                    std::make_pair("neural_engine_compile", "bin/neural_engine_compile.cpp")}) {
    std::string code = ne_test::read_file(src + tool.second);
    ASSERT_FALSE(code.empty()) << tool.second;
    std::vector<std::string> names;
    for (size_t p = code.find("\nDEFINE_"); p != std::string::npos; p = code.find("\nDEFINE_", p + 1)) {
      size_t a = code.find('(', p) + 1;
      names.push_back(code.substr(a, code.find(',', a) - a));
    }
    ASSERT_GT(names.size(), 5u) << tool.second;
    std::string out;
    ASSERT_EQ(ne_test::run_cmd(std::string(NE_BIN_DIR) + "/" + tool.first + " --help", &out), 0) << out;
    size_t lines = 0;
    for (size_t p = out.find("\n  --"); p != std::string::npos; p = out.find("\n  --", p + 1)) ++lines;
    EXPECT_EQ(lines, names.size()) << out;
    for (auto& n : names) EXPECT_NE(out.find("\n  --" + n + "="), std::string::npos) << n << "\n" << out;
    for (auto lib : {"logtostderr", "minloglevel", "flagfile", "tryfromenv", "undefok"})  // glog's, gflags'
      EXPECT_EQ(out.find(lib), std::string::npos) << lib << "\n" << out;
    ASSERT_EQ(ne_test::run_cmd(std::string(NE_BIN_DIR) + "/" + tool.first + " --helpfull", &out), 1) << out;
    EXPECT_NE(out.find("logtostderr"), std::string::npos) << out;
    EXPECT_NE(out.find("flagfile"), std::string::npos) << out;
    EXPECT_NE(out.find(names[0]), std::string::npos) << out;
  }
  std::string out;
  ASSERT_EQ(ne_test::run_cmd(kBin + " --help", &out), 0);
  EXPECT_NE(out.find("\n  --batch_size=1 "), std::string::npos) << out;  // defaults as defined
  EXPECT_NE(out.find("\n  --precision=\"fp32\" "), std::string::npos) << out;
  EXPECT_NE(out.find("  timed iterations\n"), std::string::npos) << out;
}

struct BadCase {
  const char* name;
  std::string args;
  std::vector<std::string> expect;
};

TEST(CommandLineBadInput, ClearErrorsAndNonZeroExit) {
  std::string d = ne_test::tmp_dir("clibad");
  ne_test::write_file(d + "/notnpy.npy", "hello");
  float f[21] = {0};
  ne::write_npy(d + "/float_ids.npy", ne::DType::fp32, {3, 7}, f);
  int32_t ids3[2 * 3 * 4] = {0};
  ne::write_npy(d + "/rank3.npy", ne::DType::int32, {2, 3, 4}, ids3);
  ne_test::write_file(d + "/bad.yaml", "model: [unclosed\n");
  std::string conf = ne_test::read_file(kHand + "/conf.yaml");
  auto p = conf.find("type: LayerNorm");
  conf.replace(p, 15, "type: LayerNormX");
  ne_test::write_file(d + "/unknown.yaml", conf);
  std::string bin = ne_test::read_file(kHand + "/model.bin");
  ne_test::write_file(d + "/trunc.bin", bin.substr(0, bin.size() / 2));
  std::string hand = " --config " + kHand + "/conf.yaml --weight " + kHand + "/model.bin";
  std::vector<BadCase> cases = {
      {"missing config", " --config " + d + "/none.yaml --weight " + d + "/none.bin", {"none.yaml"}},
      {"yaml does not parse", " --config " + d + "/bad.yaml --weight " + kHand + "/model.bin", {"bad.yaml", "YAML"}},
      {"unknown op", " --config " + d + "/unknown.yaml --weight " + kHand + "/model.bin", {"LayerNormX"}},
      {"truncated bin", " --config " + kHand + "/conf.yaml --weight " + d + "/trunc.bin", {"trunc.bin", "past the end"}},
      {"input not npy", hand + " --input input_ids=" + d + "/notnpy.npy", {"notnpy.npy", "not a .npy"}},
      {"input dtype", hand + " --input input_ids=" + d + "/float_ids.npy", {"input_ids", "dtype"}},
      {"input rank", hand + " --input input_ids=" + d + "/rank3.npy", {"input_ids", "rank"}},
      {"input unknown", hand + " --input bogus=" + d + "/float_ids.npy", {"bogus"}},
      {"input missing file", hand + " --input input_ids=" + d + "/absent.npy", {"absent.npy"}},
  };
  for (auto& c : cases) {
    std::string out;
    int rc = ne_test::run_cmd(kBin + c.args + " --iterations 1 --w 0", &out);
    EXPECT_NE(rc, 0) << c.name << "\n" << out;
    EXPECT_LT(rc, 128) << c.name << ": crashed\n" << out;
    for (auto& e : c.expect) EXPECT_NE(out.find(e), std::string::npos) << c.name << ": no '" << e << "' in\n" << out;
    EXPECT_NE(out.find("error: "), std::string::npos) << c.name << "\n" << out;
  }
}

// neural_engine_compile --slim, then neural_engine on the IR: same outputs as the reference.
TEST(CompileCommandLine, SlimKeepsOutputs) {
  const std::string m = std::string(NE_TEST_DATA) + "/models/tiny_channel_50";
  const std::string compiler = std::string(NE_BIN_DIR) + "/neural_engine_compile";
  std::string d = ne_test::tmp_dir("slimcli");
  std::string out;
  ASSERT_EQ(ne_test::run_cmd(compiler + " --model " + m + "/model.onnx --slim --output_dir " + d + "/ir", &out), 0) << out;
  EXPECT_NE(out.find("[slim]"), std::string::npos) << out;
  std::string in = " --input input_ids=" + m + "/inputs/input_ids.npy,attention_mask=" + m +
                   "/inputs/attention_mask.npy,token_type_ids=" + m + "/inputs/token_type_ids.npy";
  ASSERT_EQ(ne_test::run_cmd(kBin + " --config " + d + "/ir/conf.yaml --weight " + d + "/ir/model.bin" + in +
                                 " --output_dir " + d + "/out --iterations 1 --w 0",
                             &out),
            0)
      << out;
  expect_close(load(d + "/out/last_hidden_state.npy"), ne::read_npy(m + "/ref/last_hidden_state.npy"), 1e-4);
}

// neural_engine_compile --group_channels, then neural_engine on the IR; and neural_engine --model
// --group_channels: same outputs as the reference (issue 14).
TEST(CompileCommandLine, GroupChannelsKeepsOutputs) {
  const std::string m = std::string(NE_TEST_DATA) + "/models/heads2_1x4_90";
  const std::string compiler = std::string(NE_BIN_DIR) + "/neural_engine_compile";
  std::string d = ne_test::tmp_dir("groupcli");
  std::string out;
  ASSERT_EQ(ne_test::run_cmd(compiler + " --model " + m + "/model.onnx --group_channels --output_dir " + d + "/ir", &out),
            0)
      << out;
  EXPECT_NE(out.find("[group_channels] group_channels: ffn1 z16"), std::string::npos) << out;
  std::string in = " --input input_ids=" + m + "/inputs/input_ids.npy,attention_mask=" + m +
                   "/inputs/attention_mask.npy,token_type_ids=" + m + "/inputs/token_type_ids.npy";
  ASSERT_EQ(ne_test::run_cmd(kBin + " --config " + d + "/ir/conf.yaml --weight " + d + "/ir/model.bin" + in +
                                 " --output_dir " + d + "/out --iterations 1 --w 0",
                             &out),
            0)
      << out;
  expect_close(load(d + "/out/last_hidden_state.npy"), ne::read_npy(m + "/ref/last_hidden_state.npy"), 1e-4);
  ASSERT_EQ(ne_test::run_cmd(kBin + " --model " + m + "/model.onnx --group_channels" + in + " --output_dir " + d +
                                 "/out2 --iterations 1 --w 0",
                             &out),
            0)
      << out;
  EXPECT_NE(out.find("[group_channels]"), std::string::npos) << out;
  expect_close(load(d + "/out2/last_hidden_state.npy"), ne::read_npy(m + "/ref/last_hidden_state.npy"), 1e-4);
}

// Two compiled models with model.bin files of the same size: conf.yaml of one with the weights of
// the other is refused in one line naming both files (it used to run and print garbage).
TEST(CompileCommandLine, WeightsOfAnotherModelAreRefused) {
  const std::string models = std::string(NE_TEST_DATA) + "/models/";
  const std::string compiler = std::string(NE_BIN_DIR) + "/neural_engine_compile";
  std::string d = ne_test::tmp_dir("wfcli");
  std::string out;
  ASSERT_EQ(ne_test::run_cmd(compiler + " --model " + models + "tiny/model.onnx --output_dir " + d + "/a", &out), 0) << out;
  ASSERT_EQ(ne_test::run_cmd(compiler + " --model " + models + "tiny_1x4_90/model.onnx --output_dir " + d + "/b", &out), 0)
      << out;
  ASSERT_EQ(ne_test::read_file(d + "/a/model.bin").size(), ne_test::read_file(d + "/b/model.bin").size());
  ASSERT_EQ(ne_test::run_cmd(kBin + " --config " + d + "/a/conf.yaml --weight " + d + "/a/model.bin --iterations 1 --w 0",
                             &out),
            0)
      << out;
  int rc = ne_test::run_cmd(kBin + " --config " + d + "/a/conf.yaml --weight " + d + "/b/model.bin --iterations 1 --w 0",
                            &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_EQ(out.rfind("error: ", 0), 0u) << out;
  EXPECT_NE(out.find(d + "/a/conf.yaml"), std::string::npos) << out;
  EXPECT_NE(out.find(d + "/b/model.bin"), std::string::npos) << out;
  EXPECT_NE(out.find("checksum"), std::string::npos) << out;
  EXPECT_EQ(out.find("Latency"), std::string::npos) << out;
}

// neural_engine_compile --transpose, then neural_engine --profile: the column LayerNorm shows as
// `layernorm_ba`, the chain has exactly 2 Reorders, and the outputs match the reference.
TEST(CompileCommandLine, TransposeProfileShowsLayernormBa) {
  const std::string m = std::string(NE_TEST_DATA) + "/models/tiny_1x4_90";
  const std::string compiler = std::string(NE_BIN_DIR) + "/neural_engine_compile";
  std::string d = ne_test::tmp_dir("transposecli");
  std::string out;
  ASSERT_EQ(ne_test::run_cmd(compiler + " --model " + m + "/model.onnx --transpose --output_dir " + d + "/ir", &out), 0)
      << out;
  EXPECT_NE(out.find("[transpose] chain 1: 2 encoder layers"), std::string::npos) << out;
  std::string in = " --input input_ids=" + m + "/inputs/input_ids.npy,attention_mask=" + m +
                   "/inputs/attention_mask.npy,token_type_ids=" + m + "/inputs/token_type_ids.npy";
  ASSERT_EQ(ne_test::run_cmd(kBin + " --config " + d + "/ir/conf.yaml --weight " + d + "/ir/model.bin" + in +
                                 " --output_dir " + d + "/out --iterations 1 --w 0 --profile",
                             &out),
            0)
      << out;
  auto count = [&](const std::string& needle) {
    int n = 0;
    for (size_t p = out.find(needle); p != std::string::npos; p = out.find(needle, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("layernorm_ba"), 4) << out;  // 2 layers x 2 LayerNorms
  EXPECT_EQ(count(" Reorder "), 2) << out;
  expect_close(load(d + "/out/last_hidden_state.npy"), ne::read_npy(m + "/ref/last_hidden_state.npy"), 1e-4);
}

// Weight sharing across processes: an instance killed while packing, or in the middle of its
// runs, leaves nothing that breaks the next start, which gives correct outputs.
TEST(WeightSharingCommandLine, KilledInstancesDoNotBreakTheNextStart) {
  std::string cache = ne_test::tmp_dir("wscache");
  std::string d = ne_test::tmp_dir("wsout");
  std::string env = "WEIGHT_SHARING=1 NE_CACHE_DIR=" + cache + " ";
  std::string run = kBin + " --config " + kHand + "/conf.yaml --weight " + kHand + "/model.bin --input input_ids=" +
                    kHand + "/input_ids.npy,position_ids=" + kHand + "/position_ids.npy";
  std::string out;
  // 1. killed while packing
  int rc = ne_test::run_cmd(env + "NE_TEST_DIE_WHILE_PACKING=1 " + run + " --iterations 1 --w 0", &out);
  EXPECT_EQ(rc, 128 + 9) << out;
  ne_test::run_cmd("ls " + cache, &out);
  EXPECT_NE(out.find(".tmp."), std::string::npos) << "expected the dead packer's temp file: " << out;
  // 2. killed mid-run (SIGKILL while iterating)
  rc = ne_test::run_cmd("timeout -s KILL 1 env " + env + run + " --iterations 100000000 --w 0", &out);
  EXPECT_EQ(rc, 128 + 9) << out;
  // 3. the next start: correct outputs, no stale temp files
  rc = ne_test::run_cmd(env + run + " --output_dir " + d + " --iterations 2 --w 1 --report_json " + d + "/r.json", &out);
  ASSERT_EQ(rc, 0) << out;
  expect_close(load(d + "/x2.npy"), ne::read_npy(kHand + "/ref_x2.npy"), 1e-5);
  ne_test::run_cmd("ls " + cache, &out);
  EXPECT_EQ(out.find(".tmp."), std::string::npos) << out;
  EXPECT_NE(out.find(".pack"), std::string::npos) << out;
  std::string js = ne_test::read_file(d + "/r.json");
  EXPECT_NE(js.find("\"weight_sharing\": 1"), std::string::npos) << js;
  EXPECT_NE(js.find("\"packed_private_bytes\": 0"), std::string::npos) << js;
}

// The launcher: two instances, each on its own core, one summary.
TEST(LauncherCommandLine, TwoInstancesSummary) {
  std::string cache = ne_test::tmp_dir("lcache");
  std::string out;
  int rc = ne_test::run_cmd("NE_CACHE_DIR=" + cache + " " + kBin + " --config " + kHand + "/conf.yaml --weight " +
                                kHand + "/model.bin --instances 2 --cores_per_instance 1 --batch_size 2 --seq_len 8"
                                " --iterations 3 --w 1 --report_json " + cache + "/all.json",
                            &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(" Instance 0"), std::string::npos) << out;
  EXPECT_NE(out.find(" Instance 1"), std::string::npos) << out;
  EXPECT_NE(out.find(" Instances is 2 x 1 cores"), std::string::npos) << out;
  EXPECT_NE(out.find(" CPU is "), std::string::npos) << out;
  // The summary report: the instances' own reports, their summed throughput, the CPU.
  mini_json::Value r;
  ASSERT_NO_THROW(r = mini_json::parse(ne_test::read_file(cache + "/all.json"))) << ne_test::read_file(cache + "/all.json");
  EXPECT_EQ(r["instances"].num, 2);
  ASSERT_EQ(r["per_instance"].arr.size(), 2u);
  EXPECT_NEAR(r["throughput"].num, r["per_instance"][0]["throughput"].num + r["per_instance"][1]["throughput"].num,
              1e-6 * r["throughput"].num);
  EXPECT_EQ(r["per_instance"][0]["batch"].num, 2);
  EXPECT_EQ(r["cpu"]["isa"].str, r["per_instance"][1]["cpu"]["isa"].str);
  // Too many cores is refused clearly.
  rc = ne_test::run_cmd(kBin + " --config " + kHand + "/conf.yaml --weight " + kHand +
                            "/model.bin --instances 64 --cores_per_instance 64",
                        &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("cores"), std::string::npos) << out;
}
