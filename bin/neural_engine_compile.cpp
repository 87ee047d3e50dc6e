// neural_engine_compile --model model.onnx --output_dir DIR [--precision fp32|int8|int8_dynamic|bf16]
//   [--int8_mode static|dynamic] [--int8_src u8|s8] [--calib_dir DIR] [--calib_method minmax|percentile]
//   [--emulate] [--slim] [--group_channels] [--no_fuse] [--no_ln_quant_fusion]
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstdio>
#include <map>

#include "common/cli_flags.hpp"
#include "compile/compile.hpp"
#include "compile/quantize.hpp"

DEFINE_string(model, "", "ONNX model to compile");
DEFINE_string(output_dir, "", "directory for conf.yaml and model.bin");
DEFINE_string(precision, "fp32",
              "fp32 | int8 | int8_dynamic | bf16: int8 quantizes InnerProducts with constant "
              "weights (s8 per-channel weights, u8 src), bf16 converts their weights");
DEFINE_string(int8_mode, "static", "static (calibrated src scales) | dynamic (src_scale: dynamic)");
DEFINE_string(int8_src, "u8", "int8 activation type: u8 (asymmetric) | s8 (symmetric)");
DEFINE_string(calib_method, "minmax", "int8 calibration range: minmax | percentile (99.99)");
DEFINE_string(calib_dir, "",
              "int8 calibration inputs: DIR/<input>.npy or DIR/<set>/<input>.npy (default: "
              "4 generated sets of batch 2, seq 128)");
DEFINE_bool(emulate, false,
            "write an fp32 model emulating the int8 / bf16 numerics (accuracy studies)");
DEFINE_string(attention_dtype, "bf16",
              "int8 / bf16 precision: attention's Q·Kᵀ and P·V products in bf16 (fp32 accumulation) or fp32");
DEFINE_bool(transpose, false,
            "feature-major encoder chains: [hidden, tokens] activations between the InnerProducts, "
            "2 Reorders per chain (docs/OPS.md \"Feature-major mode\")");
DEFINE_bool(slim, false, "remove all-zero FFN channels and attention heads");
DEFINE_bool(group_channels, false,
            "permute FFN1 / V / Q·K output channels (undone in FFN2 / O / within heads) so 16-channel AMX "
            "groups share all-zero k rows (z16); outputs unchanged");
DEFINE_bool(no_fuse, false, "only lower ONNX ops 1:1 (no folding or fusion)");
DEFINE_bool(no_ln_quant_fusion, false,
            "int8 static: keep LayerNorm and the Quantize of its output separate (default: one LayerNorm "
            "with a quantized second output; also NE_NO_LN_QUANT_FUSION=1)");

int main(int argc, char** argv) {
  NE_PARSE_COMMAND_LINE(&argc, &argv, "neural_engine_compile --model model.onnx --output_dir DIR [--precision ...]");
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_model.empty() || FLAGS_output_dir.empty()) {
    std::fprintf(stderr, "neural_engine_compile: --model and --output_dir are required\n");
    return 2;
  }
  try {
    ne::CompileOptions opt;
    opt.precision = FLAGS_precision;
    opt.calib_dir = FLAGS_calib_dir;
    opt.int8_mode = FLAGS_int8_mode;
    opt.int8_src = FLAGS_int8_src;
    opt.calib_method = FLAGS_calib_method;
    opt.transpose = FLAGS_transpose;
    opt.attention_dtype = FLAGS_attention_dtype;
    opt.slim = FLAGS_slim;
    opt.group_channels = FLAGS_group_channels;
    opt.fuse = !FLAGS_no_fuse;
    opt.ln_quant_fusion = !FLAGS_no_ln_quant_fusion;
    ne::Model m = ne::compile_onnx(FLAGS_model, opt);
    if (FLAGS_emulate) m = ne::emulate_fp32(m);
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
