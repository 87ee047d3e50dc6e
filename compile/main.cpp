// neural_engine_compile --model model.onnx --output_dir DIR [--precision fp32] [--no_fuse]
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstdio>
#include <map>

#include "compile/compile.hpp"

DEFINE_string(model, "", "ONNX model to compile");
DEFINE_string(output_dir, "", "directory for conf.yaml and model.bin");
DEFINE_string(precision, "fp32", "fp32 | int8 | bf16 (only fp32 for now)");
DEFINE_string(calib_dir, "", "input .npy sets for int8 calibration (later)");
DEFINE_bool(transpose, false, "feature-major sparse chains (later)");
DEFINE_bool(slim, false, "remove all-zero channels and heads (later)");
DEFINE_bool(no_fuse, false, "only lower ONNX ops 1:1 (no folding or fusion)");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("neural_engine_compile --model model.onnx --output_dir DIR");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_model.empty() || FLAGS_output_dir.empty()) {
    std::fprintf(stderr, "neural_engine_compile: --model and --output_dir are required\n");
    return 2;
  }
  try {
    ne::CompileOptions opt;
    opt.precision = FLAGS_precision;
    opt.calib_dir = FLAGS_calib_dir;
    opt.transpose = FLAGS_transpose;
    opt.slim = FLAGS_slim;
    opt.fuse = !FLAGS_no_fuse;
    ne::Model m = ne::compile_onnx(FLAGS_model, opt);
    ne::save_ir(m, FLAGS_output_dir);
    std::map<std::string, int> counts;
    for (auto& op : m.ops) counts[op.type]++;
    std::printf("compiled %s -> %s/conf.yaml + model.bin: %zu operators (", FLAGS_model.c_str(),
                FLAGS_output_dir.c_str(), m.ops.size());
    bool first = true;
    for (auto& kv : counts) {
      std::printf("%s%s %d", first ? "" : ", ", kv.first.c_str(), kv.second);
      first = false;
    }
    std::printf(")\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "neural_engine_compile: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
