// compile_onnx: load -> lower -> (fold, fuse) -> finalize.
#include "compile/compile.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "compile/passes/channel_group.hpp"
#include "compile/passes/slim.hpp"

#include "compile/onnx_import.hpp"
#include "compile/passes/passes.hpp"
#include "compile/quantize.hpp"

namespace ne {

namespace {
// Rows of the smallest 2-D fp32 table sliced by a Slice op (the position embeddings after
// fuse_embeddings): generated calibration sequences stay within it. INT64_MAX if none.
int64_t max_positions(const Model& m) {
  int64_t r = INT64_MAX;
  for (auto& op : m.ops)
    if (op.type == "Slice" && !op.inputs.empty()) {
      const TensorInfo* t = m.find(op.inputs[0]);
      if (t && t->is_weight && t->dtype == DType::fp32 && t->shape.size() == 2) r = std::min(r, t->shape[0]);
    }
  return r;
}

// The options' values and combinations, checked before any work (an unknown precision is refused
// before the model is read).
void check_options(const CompileOptions& opt, const std::string& onnx_path) {
  std::string precision = opt.precision, int8_mode = opt.int8_mode;
  if (precision == "int8_dynamic") precision = "int8", int8_mode = "dynamic";
  NE_CHECK(precision == "fp32" || precision == "int8" || precision == "bf16", onnx_path,
           ": precision '", opt.precision, "' is unknown (fp32 | int8 | int8_dynamic | bf16)");
  NE_CHECK(int8_mode == "static" || int8_mode == "dynamic", onnx_path, ": int8 mode '", int8_mode,
           "' is unknown (static | dynamic)");
  NE_CHECK(opt.int8_src == "u8" || opt.int8_src == "s8", onnx_path, ": int8 activation type '",
           opt.int8_src, "' is unknown (u8 | s8)");
  NE_CHECK(!opt.transpose || opt.fuse, onnx_path, ": --transpose works on the fused graph (drop --no_fuse)");
  NE_CHECK(!opt.slim || opt.fuse, onnx_path, ": --slim works on the fused graph (drop --no_fuse)");
  NE_CHECK(!opt.group_channels || opt.fuse, onnx_path,
           ": --group_channels works on the fused graph (drop --no_fuse)");
}
}  // namespace

Model compile_onnx(const std::string& onnx_path, const CompileOptions& opt) {
  check_options(opt, onnx_path);
  onnx::ModelProto mp = read_onnx_model(onnx_path);
  Model m = lower_onnx(mp, onnx_path, opt);
  validate(m);
  return compile_model(std::move(m), opt, onnx_path);
}

Model compile_model(Model m, const CompileOptions& opt, const std::string& where,
                    const std::map<std::string, std::pair<float, float>>* preset_ranges) {
  std::string precision = opt.precision, int8_mode = opt.int8_mode;
  if (precision == "int8_dynamic") precision = "int8", int8_mode = "dynamic";
  const std::string& onnx_path = where;
  check_options(opt, where);
  // QOperator forms (QLinearMatMul, MatMulInteger with zero points, com.microsoft QGemm /
  // DynamicQuantizeMatMul / MatMulIntegerToFloat) -> s8 InnerProducts; then
  // QDQ / MatMulInteger forms -> s8 InnerProducts, Quantize / Dequantize (always: the raw
  // ONNX quantization ops are not IR operators).
  pass::import_qop(m);
  pass::import_qdq(m, opt.fuse);
  if (opt.fuse) {
    for (int round = 0; round < 8; ++round) {
      int changed = pass::fold_constants(m);
      changed += pass::fold_shapes(m);
      changed += pass::remove_dead_ops(m);
      if (!changed) break;
    }
    pass::fuse_layernorm(m);
    pass::fuse_gelu(m);
    pass::remove_dead_ops(m);
    pass::fold_unsqueeze(m);
    pass::fuse_embeddings(m);
    pass::remove_dead_ops(m);
    for (int round = 0; round < 8; ++round) {
      int changed = pass::fuse_inner_product(m);
      changed += pass::fuse_masked_attention(m);
      changed += pass::fuse_attention(m);
      changed += pass::fold_shapes(m);
      changed += pass::fold_uniform_token_types(m);
      changed += pass::eliminate_common_subexpressions(m);
      changed += pass::remove_dead_ops(m);
      if (!changed) break;
    }
  }
  // Pruning leaves -0.0 where negative weights were zeroed: make them +0 so block sparsity
  // (bitwise zeros) sees them, in the IR and in every later tool.
  canonicalize_zeros(m);
  if (opt.slim) {
    SlimStats st;
    slim_model(m, &st);
    std::fprintf(stderr, "[slim] %s\n", st.summary().c_str());
  }
  if (opt.group_channels) {  // on the fp32 weights: quantization scales follow the permuted channels
    ChannelGroupStats st;
    group_channels(m, &st);
    std::fprintf(stderr, "[group_channels] %s\n", st.summary().c_str());
  }
  if (precision == "int8") {
    QuantOptions q;
    q.dynamic = int8_mode == "dynamic";
    q.src_dtype = opt.int8_src == "s8" ? DType::s8 : DType::u8;
    q.calib_method = opt.calib_method;
    std::map<std::string, ActRange> ranges;
    if (!q.dynamic && preset_ranges) {  // ranges the model came with (a Neural Engine IR's min/max)
      for (auto& kv : *preset_ranges) ranges[kv.first] = ActRange{kv.second.first, kv.second.second};
    } else if (!q.dynamic) {
      pass::finalize_inputs(m);
      auto srcs = quantizable_srcs(m);
      if (!srcs.empty()) {
        std::vector<InputSet> sets =
            opt.calib_dir.empty()
                ? generated_calib_sets(m, opt.calib_sets, opt.calib_batch,
                                       std::min<int64_t>(opt.calib_seq, max_positions(m)))
                : load_calib_sets(opt.calib_dir, m);
        ranges = calibrate(m, sets, srcs, q);
      }
    }
    quantize_int8(m, ranges, q);
    if (!q.dynamic) chain_int8(m);
  } else if (precision == "bf16") {
    convert_bf16(m);
  }
  if (opt.transpose) {
    pass::transpose_encoder(m);
    pass::remove_dead_ops(m);
  }
  if (precision == "int8" && int8_mode != "dynamic") {
    share_src_quantization(m);  // after the layer-pattern passes
    // LayerNorm -> Quantize: one op writing both (after transpose: token-major LayerNorms only).
    const char* off = std::getenv("NE_NO_LN_QUANT_FUSION");
    if (opt.ln_quant_fusion && !(off && *off && std::string(off) != "0")) pass::fuse_layernorm_quantize(m);
  }
  NE_CHECK(opt.attention_dtype == "fp32" || opt.attention_dtype == "bf16", onnx_path,
           ": --attention_dtype must be fp32 or bf16, got '", opt.attention_dtype, "'");
  if (precision != "fp32" && opt.attention_dtype == "bf16") mark_matmuls_bf16(m);
  if (opt.fuse) pass::fuse_attention_op(m);
  pass::finalize_inputs(m);
  validate(m);
  return m;
}

}  // namespace ne
