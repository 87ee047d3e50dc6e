// neural_engine: runs an IR (conf.yaml + model.bin) or an ONNX model; latency, throughput,
// per-operator profile, outputs as .npy. Flags follow Intel Neural Engine's binary.
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "common/npy.hpp"
#include "common/proc_mem.hpp"
#include "report/cpu_report.hpp"
#include "bin/launcher.hpp"
#include "report/run_report.hpp"
#include "common/cli_flags.hpp"
#include "executor/executor.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/ne_dialect.hpp"  // load_model_ir: our IRs and the Neural Engine's dialect
#define NE_LOAD_IR ne::load_model_ir
#else
#define NE_LOAD_IR ne::load_ir
#endif
#include "executor/input_gen.hpp"
#include "executor/weight_cache.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/compile.hpp"
#endif

DEFINE_string(config, "", "IR conf.yaml");
DEFINE_string(weight, "", "IR model.bin");
DEFINE_string(model, "", "an ONNX model, compiled in memory (instead of --config/--weight)");
DEFINE_int32(batch_size, 1, "batch of generated inputs");
DEFINE_int32(seq_len, 128, "sequence length of generated inputs");
DEFINE_int32(iterations, 10, "timed iterations");
DEFINE_int32(w, 2, "warm-up iterations");
DEFINE_string(input, "", "real inputs: name=a.npy,name2=b.npy");
DEFINE_string(output_dir, "", "write every model output as DIR/<name>.npy");
DEFINE_bool(profile, false, "print a per-operator table");
DEFINE_string(report_json, "", "write the run as JSON to this file");
DEFINE_double(sparse_threshold, -1, "block sparsity above which sparse kernels run (default per pattern: 1x4 0.3, 4x1 0.7, from the measured break-even; env NE_SPARSE_THRESHOLD)");
DEFINE_int32(seed, 1, "seed of generated inputs");
DEFINE_string(precision, "fp32", "with --model: fp32|int8|bf16");
DEFINE_bool(group_channels, false,
            "with --model: permute output channels so 16-channel AMX groups share all-zero k rows "
            "(neural_engine_compile --group_channels)");
DEFINE_int32(instances, 0, "start this many instances (processes), each pinned to its own cores, sharing weights");
DEFINE_int32(cores_per_instance, 1, "with --instances: cores (and OpenMP threads) per instance");

namespace {


std::map<std::string, ne::HostTensor> make_inputs(const ne::Model& m, int batch, int seq, int seed) {
  std::mt19937 rng(seed);
  return ne::generate_inputs(m, batch, seq, rng);
}

double pct(const std::vector<double>& v, double p) { return ne::percentile(v, p); }

std::string safe_file(const std::string& n) {
  std::string r = n;
  for (auto& c : r)
    if (c == '/' || c == '\\' || c == ':') c = '_';
  return r;
}

int run() {
  ne::Model model;
  std::string mapped_path;
  if (!FLAGS_model.empty()) {
#ifdef NE_HAVE_COMPILE
    ne::CompileOptions co;
    co.precision = FLAGS_precision;
    co.group_channels = FLAGS_group_channels;
    model = ne::compile_onnx(FLAGS_model, co);
#else
    ne::fail("--model: this build has no ONNX compiler");
#endif
  } else {
    NE_CHECK(!FLAGS_config.empty(), "give --config conf.yaml --weight model.bin, or --model model.onnx");
    model = NE_LOAD_IR(FLAGS_config, FLAGS_weight);
    mapped_path = FLAGS_weight;
  }
  ne::ExecOptions eo = ne::ExecOptions::from_env();  // NE_SPARSE_THRESHOLD, NE_VERBOSE
  eo.profile = FLAGS_profile || !FLAGS_report_json.empty();
  if (FLAGS_sparse_threshold >= 0) eo.op.sparse_threshold = float(FLAGS_sparse_threshold);
  ne::Executor ex(std::move(model), eo);

  std::map<std::string, ne::HostTensor> inputs;
  int batch = FLAGS_batch_size, seq = FLAGS_seq_len;
  NE_CHECK(batch > 0 && seq > 0, "--batch_size and --seq_len must be positive");
  if (!FLAGS_input.empty()) {
    for (auto& kv : ne::split_flag(FLAGS_input, ',')) {
      auto eq = kv.find('=');
      NE_CHECK(eq != std::string::npos, "--input: expected name=file.npy, got '", kv, "'");
      ne::NpyArray a = ne::read_npy(kv.substr(eq + 1));
      ne::HostTensor h;
      h.dtype = a.dtype;
      h.shape = a.shape;
      h.bytes = std::move(a.bytes);
      inputs[kv.substr(0, eq)] = std::move(h);
    }
    // Generated inputs for whatever was not given.
    auto gen = make_inputs(ex.model(), batch, seq, FLAGS_seed);
    for (auto& kv : gen)
      if (!inputs.count(kv.first)) inputs[kv.first] = kv.second;
    auto& first = inputs.begin()->second;
    if (!first.shape.empty()) batch = int(first.shape[0]);
    if (first.shape.size() > 1) seq = int(first.shape[1]);
  } else {
    inputs = make_inputs(ex.model(), batch, seq, FLAGS_seed);
  }

  std::vector<ne::HostTensor> outputs;
  for (int i = 0; i < FLAGS_w; ++i) outputs = ex.run(inputs);
  ne::instance_barrier();  // under the launcher: start the timed runs together
  ex.reset_profile();
  std::vector<double> lat;
  using clk = std::chrono::steady_clock;
  for (int i = 0; i < FLAGS_iterations; ++i) {
    auto t0 = clk::now();
    outputs = ex.run(inputs);
    lat.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
  }
  if (FLAGS_iterations == 0 && FLAGS_w == 0) outputs = ex.run(inputs);

  double mean = 0;
  for (double v : lat) mean += v;
  mean = lat.empty() ? 0 : mean / double(lat.size());
  double throughput = mean > 0 ? 1000.0 * batch / mean : 0;
  std::cout << " Batch Size is " << batch << "\n";
  std::cout << " Latency is " << std::fixed << std::setprecision(3) << (batch ? mean / batch : 0) << " ms\n";
  std::cout << " Throughput is " << std::setprecision(2) << throughput << "\n";
  std::cout << " Batch latency is " << std::setprecision(3) << mean << " ms (P50 " << pct(lat, 50) << ", P90 "
            << pct(lat, 90) << ", P99 " << pct(lat, 99) << ")\n";
  std::cout << ne::cpu_line() << "\n";

  if (!FLAGS_output_dir.empty()) {
    ::mkdir(FLAGS_output_dir.c_str(), 0755);
    auto names = ex.model().output_names();
    for (size_t i = 0; i < outputs.size(); ++i)
      ne::write_npy(FLAGS_output_dir + "/" + safe_file(names[i]) + ".npy", outputs[i].dtype, outputs[i].shape,
                    outputs[i].bytes.data());
  }

  auto prof = ex.profile();
  double total = 0;
  for (auto& p : prof) total += p.total_ms;
  int iters = std::max(1, FLAGS_iterations);
  if (FLAGS_profile) {
    std::cout << "\n" << std::left << std::setw(44) << "operator" << std::setw(14) << "type" << std::setw(40)
              << "kernel" << std::right << std::setw(10) << "ms/iter" << std::setw(8) << "share"
              << "  reason\n";
    for (auto& p : prof) {
      std::cout << std::left << std::setw(44) << p.name.substr(0, 43) << std::setw(14) << p.type.substr(0, 13)
                << std::setw(40) << p.kernel.substr(0, 39) << std::right << std::setw(10) << std::setprecision(3)
                << p.total_ms / iters << std::setw(7) << std::setprecision(1)
                << (total > 0 ? 100 * p.total_ms / total : 0) << "%  " << p.reason << "\n";
    }
  }
  if (!FLAGS_report_json.empty()) {
    nlohmann::ordered_json j = ne::run_report(ex, batch, seq, FLAGS_iterations, lat, mapped_path);
    ne::instance_barrier_end();
    std::ofstream f(FLAGS_report_json);
    NE_CHECK(f.good(), FLAGS_report_json, ": cannot open for writing");
    // Names and reasons come from the model: invalid UTF-8 is replaced, never thrown on.
    f << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    f.close();
    NE_CHECK(f.good(), FLAGS_report_json, ": write failed");
  }
  else ne::instance_barrier_end();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> original(argv + 1, argv + argc);
  NE_PARSE_COMMAND_LINE(&argc, &argv,
                        "neural_engine --config conf.yaml --weight model.bin [--batch_size N --seq_len S ...]\n"
                        "       neural_engine --model model.onnx ...");
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  try {
    if (FLAGS_instances > 0) {
      std::vector<std::string> args;
      for (size_t i = 0; i < original.size(); ++i) {
        const std::string& a = original[i];
        bool with_value = a == "--instances" || a == "--cores_per_instance" || a == "--report_json" ||
                          a == "-instances" || a == "-cores_per_instance" || a == "-report_json";
        if (with_value) { ++i; continue; }
        if (a.rfind("--instances=", 0) == 0 || a.rfind("--cores_per_instance=", 0) == 0 ||
            a.rfind("--report_json=", 0) == 0 || a.rfind("-instances=", 0) == 0 ||
            a.rfind("-cores_per_instance=", 0) == 0 || a.rfind("-report_json=", 0) == 0)
          continue;
        args.push_back(a);
      }
      return ne::launch_instances(FLAGS_instances, FLAGS_cores_per_instance, args, FLAGS_report_json);
    }
    return run();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
