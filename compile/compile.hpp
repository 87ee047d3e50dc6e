// The compiler: ONNX model -> IR (ne::Model), with constant/shape folding and fusions.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "common/ir.hpp"

namespace ne {

// A host tensor handed to the compiler as a constant (see CompileOptions::bound_inputs).
struct BoundTensor {
  DType dtype = DType::fp32;
  Shape shape;
  std::vector<uint8_t> bytes;
};

struct CompileOptions {
  // fp32 | int8 | bf16 (docs/OPS.md "Precision"); "int8_dynamic" = int8 with int8_mode dynamic.
  // int8: InnerProducts with constant weights become s8 (per-channel symmetric weights) with
  // src quantized statically (calibrated) or dynamically; every other op stays fp32.
  // bf16: InnerProduct weights bf16 (RNE), everything else fp32.
  std::string precision = "fp32";
  std::string int8_mode = "static";  // static (calibrated src scale) | dynamic (per call)
  std::string int8_src = "u8";       // u8 asymmetric | s8 symmetric activations
  std::string calib_method = "minmax";  // minmax | percentile (99.99)
  // Generated calibration inputs when calib_dir is empty: calib_sets sets of
  // [calib_batch, calib_seq] (seq capped at the position table's rows).
  int calib_sets = 4, calib_batch = 2, calib_seq = 128;
  // int8 / bf16: attention's activation-by-activation Matmuls in bf16 (products) or fp32.
  std::string attention_dtype = "bf16";
  bool transpose = false;          // feature-major sparse chains (later issue)
  bool slim = false;               // remove all-zero channels / heads (later issue)
  // Permute output channels (FFN1, V, Q/K within heads) so 16-channel groups share zero k rows
  // (AMX z16), undone in the consumer weights: outputs unchanged (compile/passes/channel_group.hpp).
  // Runs on the fp32 weights, before int8 / bf16 conversion.
  bool group_channels = false;
  // int8 static: a LayerNorm whose output is quantized (the Quantize Q, K, V share) writes the
  // quantized copy itself (pass::fuse_layernorm_quantize). Off: --no_ln_quant_fusion, or the
  // environment variable NE_NO_LN_QUANT_FUSION=1.
  bool ln_quant_fusion = true;
  // int8 static calibration inputs: DIR/<input>.npy (one set) or DIR/<set>/<input>.npy.
  std::string calib_dir;
  bool fuse = true;  // false: only lower ONNX ops 1:1 (for tests)
  // Graph inputs replaced by constants before compiling (they disappear from the model's
  // inputs). Used for inputs that feed shape positions (Reshape's shape, Slice's starts, ...),
  // which the IR requires to be known at plan time; see onnx_shape_inputs().
  std::map<std::string, BoundTensor> bound_inputs;
};

// Loads, lowers, folds and fuses. Throws ne::Error naming the file (and node) on failure;
// a model with unsupported operators gets ONE error listing every unsupported op type and
// the names of its nodes.
Model compile_onnx(const std::string& onnx_path, const CompileOptions& opt = {});

// The passes after import, on a model of IR operators (an imported ONNX graph, or a lowered
// Neural Engine IR): fold, fuse, quantize / convert, transpose, finalize. `where` names the
// source in messages. int8 static: `preset_ranges` (tensor -> [min, max]) replace calibration.
Model compile_model(Model m, const CompileOptions& opt, const std::string& where,
                    const std::map<std::string, std::pair<float, float>>* preset_ranges = nullptr);

// Names of the graph inputs of an ONNX model that feed positions whose values decide shapes
// (Reshape's shape, Slice's starts/ends/axes/steps, Unsqueeze/Squeeze/Reduce axes, Expand /
// Tile / ConstantOfShape shapes, Split sizes, Range). Bind them with CompileOptions.
std::vector<std::string> onnx_shape_inputs(const std::string& onnx_path);

// The ONNX op types the compiler lowers (for reports and the conformance runner); com.microsoft
// ops (compile/ms_import.cpp) as "com.microsoft::Type".
std::vector<std::string> supported_onnx_ops();

// Reads an ONNX TensorProto file (as in ONNX's test_data_set_*/input_*.pb): name and value.
// Throws ne::Error naming the file.
BoundTensor read_onnx_tensor_file(const std::string& path, std::string* name = nullptr);

}  // namespace ne
